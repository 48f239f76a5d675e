"""Multivariate Student-t family: heavy-tailed components, robust to outliers.

Density of component ``k`` (``D`` features, location ``mu_k``, scale matrix
``Sigma_k``, degrees of freedom ``nu_k``; McLachlan & Peel 2000, chapter 7)::

    log t(x | mu, Sigma, nu) = log G((nu + D)/2) - log G(nu/2) - D/2 log(nu pi)
                               - 1/2 log|Sigma| - (nu + D)/2 log(1 + m / nu),

with ``m = (x - mu)^T Sigma^{-1} (x - mu)`` the squared Mahalanobis distance.
(The covariance of the component is ``Sigma nu / (nu - 2)`` for ``nu > 2``;
``covariances_`` holds the scale matrix ``Sigma``, as mixtools and teigen do.)

EM with latent scale weights
----------------------------
Write ``x | tau ~ N(mu, Sigma / tau)``, ``tau ~ Gamma(nu/2, nu/2)``. Given
``x`` in component ``k`` (McLachlan & Peel 2000, chapter 7; Peel &
McLachlan 2000)::

    u_nk   = E[tau | x_n, k]     = (nu_k + D) / (nu_k + m_nk)
    E[log tau | x_n, k]          = log u_nk + psi((nu_k + D)/2) - log((nu_k + D)/2)

The expected complete-data log-likelihood splits into a part in the mixing
weights, a part in ``(mu, Sigma)`` and a part in ``nu``, so each is maximized
on its own with the E-step's quantities:

- ``mu_k = sum_n r_nk u_nk x_n / sum_n r_nk u_nk``;
- ``Sigma_k`` maximizes ``-1/2 [n_k log|Sigma_k| + tr(W_k Sigma_k^{-1})]``
  with ``n_k = sum_n r_nk`` and ``W_k = sum_n r_nk u_nk (x_n - mu_k)(x_n - mu_k)^T``
  -- exactly the Gaussian covariance M-step with scatter ``W_k`` and sizes
  ``n_k``, so every Gaussian covariance structure (scikit-learn's four and
  mclust's 14, :mod:`emix.families.gaussian`) carries over, with its own
  ``reg_covar`` rule;
- ``nu_k`` is the root in ``nu`` of (McLachlan & Peel 2000, chapter 7)::

      log(nu/2) - psi(nu/2) + 1 + (1/n_k) sum_n r_nk (E[log tau_nk] - u_nk) = 0,

  or, for one shared ``nu``, the same with both sums taken over all
  components. The left side decreases in ``nu`` (the ``nu`` part of
  the expected log-likelihood is concave), so the root clipped to
  ``dof_bounds`` maximizes it there; it is found by Brent's method on
  ``log nu``.

Each M-step maximizes (or, for mclust's iterative models, increases) its part
of the expected complete-data log-likelihood at the E-step's expectations, so
the observed log-likelihood never decreases (an EM, or ECM in Meng & Rubin's
sense, not Liu & Rubin's ECME, whose ``nu`` step maximizes the observed
likelihood and needs a second pass over the data per iteration).

Statistics (additive over rows; ``rw = w_n r_nk``, ``ru = rw u_nk``, ``c_k``
the shift: the means the E-step used, or at initialization the weighted means
of the rows given)::

    s0   = sum ru                    s0c = s0 * c_k (so that mean = (s0c + s1) / s0
    s1   = sum ru (x - c_k)                    even for sums taken at different shifts)
    s2   = structure scatter of ru around c_k
    elog = sum rw (E[log tau] - u)

all accumulated in float64 from rows centered near the means, so float32 data
far from the origin keeps its accuracy (docs/design.md, numerics).

References
----------
McLachlan, G. J. & Peel, D. (2000). *Finite Mixture Models*, chapter 7. Wiley.
Peel, D. & McLachlan, G. J. (2000). Robust mixture modelling using the t
distribution. *Statistics and Computing* 10, 339-348.
Liu, C. & Rubin, D. B. (1995). ML estimation of the t distribution using EM
and its extensions, ECM and ECME. *Statistica Sinica* 5, 19-39.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.optimize import brentq
from scipy.special import betaln, digamma, gammaln

from ..core.numerics import LOG_2PI, eps_nk
from ..exceptions import DegenerateComponentError
from .base import ComponentFamily
from .gaussian import get_structure
from .gaussian._common import NotPositiveDefinite

DOF_MODES = ("per_component", "shared")


def _real(name, value, *, positive=True):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number. Got {value!r}.")
    v = float(value)
    if not math.isfinite(v) or (positive and not v > 0):
        raise ValueError(f"{name} must be a finite number > 0. Got {value!r}.")
    return v


def log_gamma_ratio(a, b):
    """``log G(a + b) - log G(a)``, accurate for large ``a`` too (as
    ``log G(b) - log B(a, b)``; the plain difference of ``gammaln`` loses
    about ``log10(a)`` digits)."""
    return gammaln(b) - betaln(a, b)


def dof_equation_root(c, bounds):
    """The ``nu`` in ``bounds`` that solves ``log(nu/2) - psi(nu/2) + 1 + c = 0``
    (``c`` = mean of ``E[log tau] - E[tau]``, which is ``<= -1`` by Jensen's
    inequality), clipped to ``bounds``: the maximizer of the concave ``nu``
    part of the expected complete-data log-likelihood on ``bounds``."""
    lo, hi = bounds

    def f(t):
        half = 0.5 * math.exp(t)
        return math.log(half) - float(digamma(half)) + 1.0 + c

    t_lo, t_hi = math.log(lo), math.log(hi)
    if not math.isfinite(c) or f(t_hi) >= 0.0:
        return hi
    if f(t_lo) <= 0.0:
        return lo
    return math.exp(brentq(f, t_lo, t_hi, xtol=1e-12, rtol=4 * np.finfo(float).eps, maxiter=200))


class StudentT(ComponentFamily):
    """Multivariate Student-t components (see the module docstring).

    Parameters
    ----------
    covariance_type : str, default='full'
        Structure of the scale matrices: 'full', 'tied', 'diag', 'spherical'
        or one of mclust's models ('EII', ..., 'VVV'; 'E'/'V' for one
        feature), stored in the shapes of :class:`emix.GaussianMixture`.
    reg_covar : float >= 0, default=1e-6
        Added to the diagonal of every scale matrix (each structure's rule,
        as for Gaussians).
    dof : {'per_component', 'shared'} or float > 0, default='per_component'
        Degrees of freedom estimated per component, one value shared by all
        components, or fixed at the given value (a very large value gives
        Gaussian components).
    dof_init : float > 0, default=10.0
        Degrees of freedom of the initial components (estimated modes only).
    dof_bounds : (float, float), default=(0.5, 200.0)
        Estimated degrees of freedom stay in ``[low, high]``.

    Component parameters: ``means`` (K, D), ``covariances`` and
    ``precisions_cholesky`` (the scale matrices and their precision Cholesky
    factors, in the covariance structure's shapes), ``dof`` (K,).
    """

    name = "student_t"
    param_names = ("means", "covariances", "precisions_cholesky", "dof")

    def __init__(self, covariance_type="full", reg_covar=1e-6, dof="per_component", dof_init=10.0,
                 dof_bounds=(0.5, 200.0)):
        self.structure = get_structure(covariance_type)
        self.covariance_type = covariance_type
        if isinstance(reg_covar, (bool, np.bool_)) or not isinstance(reg_covar, numbers.Real) \
                or not (math.isfinite(reg_covar) and reg_covar >= 0):
            raise ValueError(f"reg_covar must be a finite number >= 0. Got {reg_covar!r}.")
        self.reg_covar = float(reg_covar)
        if isinstance(dof, str):
            if dof not in DOF_MODES:
                raise ValueError(f"dof must be 'per_component', 'shared' or a number > 0. Got {dof!r}.")
            self.dof = dof
        else:
            self.dof = _real("dof", dof)
        self.dof_init = _real("dof_init", dof_init)
        try:
            lo, hi = dof_bounds
        except (TypeError, ValueError):
            raise TypeError(f"dof_bounds must be a pair (low, high). Got {dof_bounds!r}.") from None
        lo, hi = _real("dof_bounds[0]", lo), _real("dof_bounds[1]", hi)
        if not lo < hi:
            raise ValueError(f"dof_bounds must satisfy 0 < low < high. Got {dof_bounds!r}.")
        self.dof_bounds = (lo, hi)
        if not lo <= self.dof_init <= hi:
            raise ValueError(f"dof_init must lie within dof_bounds {self.dof_bounds}. Got {dof_init!r}.")

    @property
    def fixed_dof(self):
        """The user's fixed degrees of freedom, or None when they are estimated."""
        return None if isinstance(self.dof, str) else self.dof

    def config(self):
        return {"name": self.name, "options": {
            "covariance_type": self.covariance_type, "reg_covar": self.reg_covar, "dof": self.dof,
            "dof_init": self.dof_init, "dof_bounds": list(self.dof_bounds)}}

    def encode(self, X, meta=None):
        X, meta = super().encode(X, meta)
        if self.covariance_type in ("E", "V") and X.shape[1] != 1:
            raise ValueError(f"covariance_type={self.covariance_type!r} is for univariate data (one feature). "
                             f"Got {X.shape[1]} features; use {'EII' if self.covariance_type == 'E' else 'VII'}.")
        return X, meta

    # ------------------------------------------------------------ densities
    def _maha_logdet(self, X, comp):
        """(n, K) squared Mahalanobis distances, (K,) ``-1/2 log|Sigma_k|``
        and, for rows where a distance overflows (coordinates near 1e150 and
        beyond), the (n, K) log distances computed at a per-row scale (else
        None). In float64, from the Gaussian structure's log density (its
        kernels center the rows near the means before any expanded product)."""
        X = np.asarray(X, dtype=np.float64)
        means = np.asarray(comp["means"], dtype=np.float64)
        pc = comp["precisions_cholesky"]
        D = X.shape[1]
        with np.errstate(over="ignore", invalid="ignore"):
            lg = np.asarray(self.structure.log_prob(X, means, pc), dtype=np.float64)
        # the log density at each mean: Mahalanobis term 0
        at_mean = np.diagonal(np.asarray(self.structure.log_prob(means, means, pc), dtype=np.float64)).copy()
        with np.errstate(invalid="ignore"):
            maha = np.maximum(2.0 * (at_mean[None, :] - lg), 0.0)
        far = ~np.all(np.isfinite(maha) & (maha < 1e300), axis=1)
        log_maha = None
        if far.any():
            # m(x) = s^2 m(x / s) with the means scaled too, s = the row's largest coordinate
            log_maha = np.full(maha.shape, np.nan)
            for i in np.flatnonzero(far):
                scale = max(float(np.max(np.abs(X[i]))), float(np.max(np.abs(means))), 1.0)
                lg_s = np.asarray(self.structure.log_prob(X[i:i + 1] / scale, means / scale, pc), dtype=np.float64)
                m_s = np.maximum(2.0 * (at_mean - lg_s[0]), 0.0)
                with np.errstate(divide="ignore"):
                    log_maha[i] = 2.0 * np.log(scale) + np.log(m_s)
            with np.errstate(over="ignore"):
                maha[far] = np.exp(log_maha[far])  # inf beyond float64: u = 0 there
        return maha, at_mean + 0.5 * D * LOG_2PI, log_maha

    @staticmethod
    def _log1p_ratio(maha, log_maha, nu):
        """``log(1 + m / nu)``, finite for distances that overflow."""
        out = np.log1p(maha / nu[None, :])
        if log_maha is not None:
            rows = ~np.isnan(log_maha).all(axis=1)
            out[rows] = np.logaddexp(log_maha[rows] - np.log(nu)[None, :], 0.0)
        return out

    def log_prob(self, X, comp):
        """(n, K) ``log t(x_n | mu_k, Sigma_k, nu_k)`` in float64. Finite for
        every finite row: far from every component the heavier tail (smaller
        ``nu_k``) takes the row, as in the limit."""
        return self.log_prob_cached(X, comp)[0]

    def log_prob_cached(self, X, comp):
        """The log densities and, as the E-step's cache, the Mahalanobis
        distances and ``log(1 + m / nu)`` they were computed from (the
        statistics reuse them)."""
        D = X.shape[1]
        nu = np.asarray(comp["dof"], dtype=np.float64)
        maha, half_logdet_prec, log_maha = self._maha_logdet(X, comp)
        l1p = self._log1p_ratio(maha, log_maha, nu)
        const = log_gamma_ratio(0.5 * nu, 0.5 * D) - 0.5 * D * np.log(nu * np.pi) + half_logdet_prec
        return const[None, :] - 0.5 * (nu + D)[None, :] * l1p, (maha, l1p)

    def scale_weights(self, X, comp):
        """(n, K) ``u_nk = E[tau | x_n, k] = (nu_k + D) / (nu_k + m_nk)``:
        the weight row ``n`` gets in component ``k``'s M-step (small for
        rows far from the component: the down-weighting of outliers)."""
        D = X.shape[1]
        nu = np.asarray(comp["dof"], dtype=np.float64)
        maha = self._maha_logdet(X, comp)[0]
        return (nu + D)[None, :] / (nu[None, :] + maha)

    # ----------------------------------------------------------- statistics
    def suff_stats(self, X, rw, comp, cache=None):
        X = np.asarray(X, dtype=np.float64)
        rw = np.asarray(rw, dtype=np.float64)
        D = X.shape[1]
        nk = rw.sum(axis=0)
        if comp is None:  # initialization: u = 1, shifted at this call's weighted means
            u = 1.0
            with np.errstate(divide="ignore", invalid="ignore"):
                shift = np.where(nk[:, None] > 0, (rw.T @ X) / nk[:, None], 0.0)
            elog = np.zeros_like(nk)
        else:
            nu = np.asarray(comp["dof"], dtype=np.float64)
            if cache is None:
                maha, _, log_maha = self._maha_logdet(X, comp)
                cache = (maha, self._log1p_ratio(maha, log_maha, nu))
            maha, l1p = cache
            u = (nu + D)[None, :] / (nu[None, :] + maha)
            log_u = np.log1p(D / nu)[None, :] - l1p
            elog = (rw * (log_u - u)).sum(axis=0) + nk * (digamma(0.5 * (nu + D)) - np.log(0.5 * (nu + D)))
            shift = np.asarray(comp["means"], dtype=np.float64)
        ru = rw * u
        s0 = ru.sum(axis=0)
        g = shift.mean(axis=0)
        s1 = ru.T @ (X - g) - s0[:, None] * (shift - g)
        s2 = np.asarray(self.structure.scatter(X, ru, shift), dtype=np.float64)
        return {"s0": s0, "s0c": s0[:, None] * shift, "s1": s1, "s2": s2, "elog": elog}

    def m_step(self, sums, nk, comp_prev):
        nk = np.asarray(nk, dtype=np.float64)
        s0_raw = np.asarray(sums["s0"], dtype=np.float64)
        K, D = sums["s1"].shape
        tiny = np.finfo(np.float64).tiny * 1e10
        fallback = np.zeros((K, D)) if comp_prev is None else np.asarray(comp_prev["means"], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where(s0_raw[:, None] > tiny, sums["s0c"] / s0_raw[:, None], fallback)
        s0 = s0_raw + eps_nk(np.float64)
        delta = sums["s1"] / s0[:, None]
        means = shift + delta
        # W_k = s2_k - s0_k delta delta^T, divided by n_k: the structure computes
        # s2 - nk d' d'^T with d' = delta sqrt(s0 / nk)
        cov = self.structure.covariances(sums["s2"], nk, delta * np.sqrt(s0 / nk)[:, None], self.reg_covar,
                                         np.float64)
        try:
            prec_chol = self.structure.prec_chol_from_cov(cov)
        except NotPositiveDefinite as exc:
            raise DegenerateComponentError.for_component(
                exc.component, float(nk[exc.component]), self.covariance_type, self.reg_covar) from None
        return {"means": means, "covariances": cov, "precisions_cholesky": prec_chol,
                "dof": self._dof_m_step(sums["elog"], nk, comp_prev, K)}

    def _dof_m_step(self, elog, nk, comp_prev, K):
        if self.fixed_dof is not None:
            return np.full(K, self.fixed_dof)
        if comp_prev is None:
            return np.full(K, self.dof_init)
        elog = np.asarray(elog, dtype=np.float64)
        if self.dof == "shared":
            return np.full(K, dof_equation_root(float(elog.sum() / nk.sum()), self.dof_bounds))
        return np.array([dof_equation_root(float(e / n), self.dof_bounds) for e, n in zip(elog, nk)])

    # ----------------------------------------------------------------- misc
    def n_parameters(self, comp):
        K, D = np.shape(comp["means"])
        free_dof = 0 if self.fixed_dof is not None else (1 if self.dof == "shared" else K)
        return int(K * D + self.structure.n_cov_parameters(K, D) + free_dof)

    def sample(self, comp, counts, rng):
        """``x = mu_k + z / sqrt(g)``, ``z ~ N(0, Sigma_k)``, ``g ~ chi2(nu_k) / nu_k``;
        rows grouped by component."""
        means = np.asarray(comp["means"], dtype=np.float64)
        Z = self.structure.draw(rng, np.zeros_like(means), comp["covariances"], counts)
        g = np.concatenate([rng.chisquare(nu, int(n)) / nu for nu, n in zip(comp["dof"], counts)])
        loc = np.repeat(means, np.asarray(counts, dtype=int), axis=0)
        return loc + Z / np.sqrt(g)[:, None]

    def check_params(self, comp, K, D):
        out = {}
        means = np.asarray(comp["means"], dtype=np.float64)
        if means.shape != (K, D) or not np.all(np.isfinite(means)):
            raise ValueError(f"means must be a finite array of shape ({K}, {D}). Got shape {means.shape}.")
        out["means"] = means
        shape = self.structure.cov_shape(K, D)
        cov = np.asarray(comp["covariances"], dtype=np.float64)
        if cov.shape != shape or not np.all(np.isfinite(cov)):
            raise ValueError(f"covariances for covariance_type={self.covariance_type!r} must be a finite array of "
                             f"shape {shape}. Got shape {cov.shape}.")
        out["covariances"] = cov
        if comp.get("precisions_cholesky") is None:
            try:
                out["precisions_cholesky"] = self.structure.prec_chol_from_cov(cov)
            except NotPositiveDefinite as exc:
                raise ValueError(f"covariances[{exc.component}] is not positive definite.") from None
        else:
            pc = np.asarray(comp["precisions_cholesky"], dtype=np.float64)
            if pc.shape != shape or not np.all(np.isfinite(pc)):
                raise ValueError(f"precisions_cholesky must be a finite array of shape {shape}. Got {pc.shape}.")
            out["precisions_cholesky"] = pc
        dof = np.asarray(comp["dof"], dtype=np.float64)
        if dof.shape != (K,) or not np.all(np.isfinite(dof)) or np.any(dof <= 0):
            raise ValueError(f"dof must be a finite array of shape ({K},) with values > 0. Got {comp['dof']!r}.")
        out["dof"] = dof
        return out

    def singular_reason(self, comp, weights, n_samples):
        """A component at the ``reg_covar`` floor, numerically singular or
        with too few points for its own covariance (:mod:`emix._singular`)."""
        from .._singular import gaussian_reason

        return gaussian_reason(weights, comp["means"], comp["covariances"], self.covariance_type, self.reg_covar,
                               n_samples)


__all__ = ["DOF_MODES", "StudentT", "dof_equation_root", "log_gamma_ratio"]
