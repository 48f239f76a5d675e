"""Singular fits: components that are not real estimates.

Maximum likelihood for Gaussian (and Student-t) mixtures has no global
maximum: a component that shrinks onto a few points, or onto a lower
dimensional set of them (rows with equal values in a column, fewer rows than
dimensions), makes the likelihood grow without bound (Day 1969; Kiefer &
Wolfowitz 1956). ``reg_covar`` keeps the covariances invertible, so emix
never sees the infinity, but such an optimum sits *at the floor*: along
some direction the component's variance is reg_covar itself, not anything
the data estimated, and its likelihood (``-1/2 log reg_covar`` per point,
as large as the floor is small) beats every real model's. mclust has no
floor: its EM stops with "singular covariance" when a covariance's
reciprocal condition number falls below ``emControl()$eps``, and the cell's
BIC is NA (Fraley & Raftery 2002, sec. 7; Fraley, Raftery, Murphy & Scrucca
2012, mclust technical report 597, ``emControl``).

The rule
--------
With ``lambda_k`` the smallest eigenvalue of component ``k``'s covariance
``Sigma_k``, ``v_k`` its eigenvector, and ``s_k = v_k^T Sigma v_k`` the
variance of the fitted mixture along ``v_k`` (``Sigma = sum_j pi_j
(Sigma_j + d_j d_j^T)``, ``d_j = mu_j - sum_i pi_i mu_i``: at an EM fixed
point the data's own covariance, so no pass over the data is needed; for the
spherical structures the mean variance ``tr(Sigma) / D``), component ``k``
is **singular** when

1. it sits at the floor: ``lambda_k <= FLOOR_FACTOR * reg_covar`` (1000)
   **and** ``lambda_k <= RELATIVE_LIMIT * s_k`` (1e-3): the component is
   thin both next to the regularization and next to the data. The second
   clause keeps data measured in small units (where every real variance is
   within 1000 reg_covar, so reg_covar is no longer small) from being
   declared singular throughout; the first keeps tight but well estimated
   clusters of widely separated data (tiny next to the data, far above
   the floor) from it; or
2. it is numerically singular, whatever ``reg_covar``: ``lambda_k <=
   NUMERICAL_LIMIT * s_k`` (1e-10), or ``lambda_k`` is not a positive
   finite number. This is mclust's test (with ``reg_covar=0`` emix's fits
   meet the same exact singularities), made relative to the data so that
   it does not depend on units; or
3. it has too few points for the covariance parameters that are its own:
   an effective size ``n_k = pi_k N`` (``N`` the number of rows the fit saw;
   sample weights count after their normalization to a mean of 1) below
   :func:`min_component_size`: ``D + 1`` for a component with its own
   orientation ('full', and mclust's ``**V`` models), 2 for one with only
   its own volume or shape ('diag', 'spherical', ``V``, and the other
   models with a ``V``), 1 otherwise (a fully shared covariance: 'tied',
   ``E``, EII, EEI, EEE).

For a family without covariances (Poisson, Bernoulli, categorical) the
likelihood is bounded and probabilities of exactly 0 or 1 are legitimate
maximum likelihood estimates (latent classes), so only rule 3 applies, with
a minimum of one point (an empty component). A mixed family is singular
when one of its members is.

How it is used
--------------
- Inside one fit (``n_init`` restarts) a restart that ends singular is
  dropped like a restart whose component collapsed (a
  :class:`~emix.exceptions.DegenerateRestartWarning`) and the best
  non-singular restart is kept. More restarts therefore never give a
  singular answer when one restart found a regular optimum.
- When every restart ends singular the best of them is kept and a
  :class:`~emix.exceptions.SingularFitWarning` names the component and the
  reason.
- :func:`emix.select` records such a cell with its reason in the row's
  ``singular`` field and does not rank it (mclust's NA cell); the command
  line's table and the HTML report show the reason.
"""

from __future__ import annotations

import numpy as np

#: A component whose smallest covariance eigenvalue is within this factor of
#: ``reg_covar`` (and see :data:`RELATIVE_LIMIT`) sits at the floor.
FLOOR_FACTOR = 1e3
#: ... when that eigenvalue is also at most this fraction of the mixture's
#: variance in the same direction.
RELATIVE_LIMIT = 1e-3
#: Numerically singular whatever ``reg_covar`` (e.g. ``reg_covar=0``).
NUMERICAL_LIMIT = 1e-10


def _np(a):
    if a is None or isinstance(a, np.ndarray):
        return a
    from .backends import _xp

    return np.asarray(_xp.to_numpy(a))


def min_component_size(covariance_type, n_features):
    """The smallest effective size a component may have under
    ``covariance_type`` before its fit counts as singular (rule 3 of the
    module notes): ``D + 1`` with its own orientation, 2 with only its own
    volume or shape, 1 with a fully shared covariance."""
    name = str(covariance_type)
    D = int(n_features)
    if name == "full" or (len(name) == 3 and name[2] == "V"):
        return float(D + 1)
    if name in ("diag", "spherical", "V") or (len(name) == 3 and "V" in name):
        return 2.0
    return 1.0


def size_reason(weights, n_samples, min_size, what=None):
    """Rule 3: the first component whose effective size ``pi_k N`` is below
    ``min_size``, as a reason string, or None (also when ``n_samples`` is
    unknown)."""
    if n_samples is None:
        return None
    nk = _np(weights).astype(np.float64) * float(n_samples)
    bad = np.flatnonzero(~(nk >= min_size))
    if not len(bad):
        return None
    k = int(bad[np.argmin(nk[bad])]) if np.all(np.isfinite(nk[bad])) else int(bad[0])
    why = "" if what is None else f" for {what}"
    return f"component {k} has {nk[k]:.3g} effective points (at least {min_size:g} needed{why})"


def _component_eigen(cov, covariance_type, K, D):
    """``(lam, v)``: each component's smallest eigenvalue (K,) and its
    eigenvector (K, D), or ``v`` None for spherical storage."""
    cov = cov.astype(np.float64)
    if covariance_type == "spherical" and cov.ndim == 1:
        return cov.copy(), None
    if covariance_type == "diag" and cov.ndim == 2:
        j = np.argmin(cov, axis=1)
        v = np.zeros((K, D))
        v[np.arange(K), j] = 1.0
        return cov[np.arange(K), j], v
    if cov.ndim == 2:  # tied: one (D, D) matrix for every component
        w, U = np.linalg.eigh(cov)
        return np.full(K, w[0]), np.broadcast_to(U[:, 0], (K, D)).copy()
    w, U = np.linalg.eigh(cov)  # (K, D, D)
    return w[:, 0], U[:, :, 0]


def _full_covariances(cov, covariance_type, K, D):
    cov = cov.astype(np.float64)
    if covariance_type == "spherical" and cov.ndim == 1:
        return cov[:, None, None] * np.eye(D)
    if covariance_type == "diag" and cov.ndim == 2:
        return np.einsum("kd,de->kde", cov, np.eye(D))
    if cov.ndim == 2:
        return np.broadcast_to(cov, (K, D, D))
    return cov


def _regular_by_bound(pi, mu, cov, prec_chol, reg_covar):
    """True where rules 1-2 surely pass, decided without eigen-decompositions
    from the precision factors ``U`` (``U U^T = Sigma^-1``) of full (K, D, D)
    storage: each smallest eigenvalue is at least ``1 / tr(Sigma_k^-1) = 1 /
    |U_k|_F^2`` and the mixture's variance in any direction at most the trace
    of its covariance, so bounds above the limits give the same verdict as
    the eigenvalues (False: undecided, the eigenvalues decide)."""
    if prec_chol is None or cov.ndim != 3:
        return False
    U = _np(prec_chol)
    if U.shape != cov.shape:
        return False
    U = U.astype(np.float64)
    if not np.all(np.isfinite(U)):
        return False
    lb = 1.0 / np.einsum("kij,kij->k", U, U)
    d = mu - pi @ mu
    tr_total = float(pi @ np.trace(cov.astype(np.float64), axis1=1, axis2=2) + pi @ np.sum(d * d, axis=1))
    if not (np.isfinite(tr_total) and tr_total > 0):
        return False
    floor = FLOOR_FACTOR * float(reg_covar)
    return bool(np.all(lb > 0) and np.all(lb > NUMERICAL_LIMIT * tr_total)
                and np.all((lb > floor) | (lb > RELATIVE_LIMIT * tr_total)))


def covariance_reason(weights, means, covariances, covariance_type, reg_covar, precisions_cholesky=None):
    """Rules 1 and 2 of the module notes for one fit: a reason string
    naming the first singular component, or None.

    Parameters
    ----------
    weights : array of shape (K,)
        Mixing weights (with a noise component they sum to less than one;
        they are renormalized here).
    means : array of shape (K, D)
    covariances : array
        In the storage of ``covariance_type`` ((K, D, D), (D, D) tied,
        (K, D) diag, (K,) spherical).
    covariance_type : str
    reg_covar : float
    precisions_cholesky : array or None
        The fit's precision factors: with full (K, D, D) storage, a bound
        from them settles most regular fits without eigen-decompositions
        (the verdict is the same).
    """
    pi = _np(weights).astype(np.float64)
    mu = _np(means).astype(np.float64)
    cov = _np(covariances)
    K, D = mu.shape
    if not (np.all(np.isfinite(pi)) and pi.sum() > 0):
        return "the mixing weights are not finite"
    pi = pi / pi.sum()
    if not np.all(np.isfinite(cov)):
        return "a covariance is not finite"
    if _regular_by_bound(pi, mu, cov, precisions_cholesky, reg_covar):
        return None
    lam, v = _component_eigen(cov, covariance_type, K, D)
    d = mu - pi @ mu
    if v is None:  # spherical: the mixture's mean variance over the features
        s = np.full(K, float(pi @ (cov.astype(np.float64) + np.sum(d * d, axis=1) / D)))
    elif covariance_type == "diag" and cov.ndim == 2:
        j = np.argmax(v, axis=1)
        s = pi @ (cov.astype(np.float64)[:, j] + d[:, j] ** 2)
    else:
        full = _full_covariances(cov, covariance_type, K, D)
        total = np.einsum("k,kde->de", pi, full) + (d * pi[:, None]).T @ d
        s = np.einsum("kd,de,ke->k", v, total, v)
    floor = FLOOR_FACTOR * float(reg_covar)
    for k in range(K):
        lk, sk = float(lam[k]), float(s[k])
        if not (np.isfinite(lk) and lk > 0):
            return f"component {k}'s covariance is not positive definite (smallest eigenvalue {lk:.3g})"
        rel = lk / sk if sk > 0 else np.inf
        if rel <= NUMERICAL_LIMIT:
            return (f"component {k}'s covariance is numerically singular: its smallest eigenvalue "
                    f"{lk:.3g} is {rel:.2g} of the mixture's variance in that direction")
        if lk <= floor and rel <= RELATIVE_LIMIT:
            return (f"component {k} collapsed onto the reg_covar floor: its smallest covariance eigenvalue "
                    f"{lk:.3g} is within {FLOOR_FACTOR:g} x reg_covar ({float(reg_covar):g}) and "
                    f"{rel:.2g} of the mixture's variance in that direction")
    return None


def gaussian_reason(weights, means, covariances, covariance_type, reg_covar, n_samples,
                    precisions_cholesky=None):
    """The three rules for a Gaussian (or Student-t scale) mixture: the
    size rule first, then the covariance rules; None when regular."""
    D = _np(means).shape[1]
    need = min_component_size(covariance_type, D)
    what = {float(D + 1): "its own orientation", 2.0: "its own variances"}.get(need) if need > 1 else None
    reason = size_reason(weights, n_samples, need, what)
    if reason is None:
        reason = covariance_reason(weights, means, covariances, covariance_type, reg_covar,
                                   precisions_cholesky)
    return reason


def model_reason(model, n_samples):
    """Why a fitted :class:`~emix.GaussianMixture` or
    :class:`~emix.MixtureModel` (any family) is singular on ``n_samples``
    rows, or None. For reports and loaded models (a fit records its own
    verdict)."""
    if hasattr(model, "_gm") and getattr(model, "family", None) == "gaussian":
        model = model._gm
    family = getattr(model, "family_", None)
    if family is not None and hasattr(family, "singular_reason"):
        comp = {p: getattr(model, p + "_") for p in family.param_names}
        return family.singular_reason(comp, model.weights_, n_samples)
    if hasattr(model, "covariances_") and hasattr(model, "means_"):
        return gaussian_reason(model.weights_, model.means_, model.covariances_, model.covariance_type,
                               getattr(model, "reg_covar", 0.0), n_samples,
                               getattr(model, "precisions_cholesky_", None))
    return None


__all__ = ["FLOOR_FACTOR", "RELATIVE_LIMIT", "NUMERICAL_LIMIT", "min_component_size", "size_reason",
           "covariance_reason", "gaussian_reason", "model_reason"]
