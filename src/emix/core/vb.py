"""Variational Bayes for Gaussian mixtures, as pure functions.

The model (Bishop 2006, section 10.2; Blei & Jordan 2006 for the Dirichlet
process) puts conjugate priors on the mixture's parameters:

- mixing weights: a symmetric Dirichlet ``Dir(gamma_0, ..., gamma_0)``
  (``'dirichlet_distribution'``), or a truncated stick-breaking Dirichlet
  process ``v_k ~ Beta(1, gamma_0)``, ``pi_k = v_k prod_{j<k} (1 - v_j)``
  (``'dirichlet_process'``);
- each component's mean and precision: a Gauss-Wishart
  ``N(mu_k | m_0, (beta_0 Lambda_k)^-1) W(Lambda_k | W_0, nu_0)``, with
  ``W_0^-1 = Psi_0`` (scikit-learn's ``covariance_prior``), restricted to the
  diagonal (``'diag'``), to ``lambda I`` (``'spherical'``) or shared by all
  components (``'tied'``) as scikit-learn restricts it.

The variational posterior ``q(Z) q(pi) prod_k q(mu_k, Lambda_k)`` keeps these
forms. Its coordinate ascent is an EM loop over the same additive statistics
as maximum likelihood:

E-step (Bishop 10.46, 10.64-10.67)
    ``log rho_nk = E[log pi_k] + 1/2 E[log |Lambda_k|] - D / (2 beta_k)
    - nu_k / 2 (x_n - m_k)^T W_k (x_n - m_k) - D/2 log 2 pi``. This is
    ``log a_k + log N(x_n | m_k, (nu_k W_k)^-1)`` with
    ``log a_k = E[log pi_k] + 1/2 (E[log |Lambda_k|] - log |nu_k W_k|) - D / (2 beta_k)``,
    so emix's Gaussian E-step kernels (:func:`emix.core.em.e_step`), given
    the "effective" parameters of :func:`effective_params` (weights ``a_k``,
    means ``m_k``, precisions ``nu_k W_k``), give exactly the variational
    responsibilities and their statistics ``N_k``, ``sum r (x - m_k)``,
    ``sum r (x - m_k)(x - m_k)^T`` (summed over blocks, Dask partitions and
    mini-batches like EM's). With
    ``E[log |Lambda_k|] = sum_{i=1}^D psi((nu_k + 1 - i) / 2) + D log 2 + log |W_k|``,
    ``E[log pi_k] = psi(gamma_k) - psi(sum_j gamma_j)`` (Dirichlet) or
    ``psi(g_k1) - psi(g_k1 + g_k2) + sum_{j<k} (psi(g_j2) - psi(g_j1 + g_j2))``
    (stick breaking, Blei & Jordan 2006, eq. 21).

M-step (Bishop 10.58, 10.60-10.63; Blei & Jordan 2006, eqs. 18-19)
    with ``N_k``, ``xbar_k`` and ``S_k`` the responsibility-weighted count,
    mean and covariance (the maximum-likelihood M-step's, ``reg_covar``
    added to ``S_k`` as scikit-learn does):
    ``gamma_k = gamma_0 + N_k`` or ``(g_k1, g_k2) = (1 + N_k, gamma_0 + sum_{j>k} N_j)``;
    ``beta_k = beta_0 + N_k``; ``m_k = (beta_0 m_0 + N_k xbar_k) / beta_k``;
    ``nu_k = nu_0 + N_k``;
    ``W_k^-1 = Psi_0 + N_k S_k + beta_0 N_k / beta_k (xbar_k - m_0)(xbar_k - m_0)^T``.
    As in scikit-learn the stored ``covariances`` are ``W_k^-1 / nu_k`` (the
    inverse of ``E[Lambda_k] = nu_k W_k``) and ``precisions_cholesky`` their
    inverse Cholesky factors. Tied: one ``nu = nu_0 + N / K`` and
    ``W^-1 = Psi_0 + (N / K) S + beta_0 / K sum_k N_k / beta_k (xbar_k - m_0)(...)^T``.

Evidence lower bound
    After the M-step the bound (up to terms that do not depend on the data
    or the variational parameters) reduces to
    ``L = -sum_nk w_n r_nk log r_nk - sum_k log B(W_k, nu_k) - log C(gamma)
    - D/2 sum_k log beta_k``: the responsibilities' entropy, the Wishart
    normalizers ``log B`` (Bishop B.79, with ``W_k = (nu_k covariances_k)^-1``
    and without its ``log pi`` constant), and the Dirichlet normalizer
    ``log C(gamma)`` (Bishop B.23) or ``-sum_k log Beta(g_k1, g_k2)``. This is
    scikit-learn's ``lower_bound_`` (not divided by the number of rows). The
    entropy comes from the additive statistics too:
    ``-sum w r log r = sum_n w_n log Z_n - sum_k N_k c_k + 1/2 sum_k Q_k`` with
    ``log Z_n`` the E-step's ``loglik``, ``c_k = log a_k + 1/2 log |nu_k W_k|
    - D/2 log 2 pi`` and ``Q_k = tr(nu_k W_k S2_k)`` from the scatter
    ``S2_k`` around the E-step's means ``m_k``.

References
----------
Bishop, C. M. (2006). Pattern Recognition and Machine Learning, ch. 10.2 and
appendix B. Springer.
Blei, D. M. and Jordan, M. I. (2006). Variational inference for Dirichlet
process mixtures. Bayesian Analysis 1(1), 121-144.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import betaln, digamma, gammaln

from ..exceptions import DegenerateComponentError
from ..families.gaussian._common import NotPositiveDefinite
from .loop import run_em
from .numerics import LOG_2PI, eps_nk
from .types import FitResult, GaussianParams

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
#: the covariance structures with a conjugate (Gauss-)Wishart posterior here
STRUCTURES = ("full", "tied", "diag", "spherical")


@dataclass(frozen=True)
class VBPrior:
    """The resolved prior (scikit-learn's ``*_prior_`` attributes).

    Attributes
    ----------
    prior_type : {'dirichlet_process', 'dirichlet_distribution'}
    weight_concentration : float
        ``gamma_0``.
    mean_precision : float
        ``beta_0``.
    mean : ndarray of shape (D,)
        ``m_0``.
    degrees_of_freedom : float
        ``nu_0``.
    covariance : ndarray or float
        ``Psi_0 = W_0^-1``: (D, D) full and tied, (D,) diag, a float spherical.
    """

    prior_type: str
    weight_concentration: float
    mean_precision: float
    mean: np.ndarray
    degrees_of_freedom: float
    covariance: object


@dataclass(frozen=True)
class VBParams:
    """Variational posterior parameters (scikit-learn's fitted attributes).

    ``weight_concentration`` is a (K,) array (Dirichlet) or the pair of (K,)
    Beta parameters (stick breaking); ``degrees_of_freedom`` is (K,), or a
    float for 'tied'; ``covariances`` and ``precisions_cholesky`` have the
    structure's shapes (``covariances = W^-1 / nu``).
    """

    weight_concentration: object
    mean_precision: np.ndarray
    means: np.ndarray
    degrees_of_freedom: object
    covariances: np.ndarray
    precisions_cholesky: np.ndarray

    @property
    def n_components(self):
        return self.means.shape[0]

    def replace(self, **changes) -> VBParams:
        return replace(self, **changes)


# ------------------------------------------------------------ expectations
def expected_log_weights(weight_concentration, prior_type):
    """``E[log pi_k]`` under ``q(pi)`` (float64, shape (K,)).

    Dirichlet: ``psi(gamma_k) - psi(sum_j gamma_j)`` (Bishop 10.66). Stick
    breaking: ``E[log v_k] + sum_{j<k} E[log (1 - v_j)]`` with ``v_k ~
    Beta(g_k1, g_k2)`` (Blei & Jordan 2006, eq. 21).
    """
    if prior_type == "dirichlet_process":
        a, b = (np.asarray(x, dtype=np.float64) for x in weight_concentration)
        d_ab = digamma(a + b)
        log_v = digamma(a) - d_ab
        log_1mv = digamma(b) - d_ab
        return log_v + np.concatenate([[0.0], np.cumsum(log_1mv)[:-1]])
    g = np.asarray(weight_concentration, dtype=np.float64)
    return digamma(g) - digamma(g.sum())


def expected_weights(weight_concentration, prior_type):
    """``E[pi_k]`` under ``q(pi)``, normalized to sum to 1 (scikit-learn's
    ``weights_``): ``gamma_k / sum_j gamma_j``, or for stick breaking
    ``E[v_k] prod_{j<k} E[1 - v_j]``."""
    if prior_type == "dirichlet_process":
        a, b = (np.asarray(x, dtype=np.float64) for x in weight_concentration)
        ev = a / (a + b)
        w = ev * np.concatenate([[1.0], np.cumprod(b / (a + b))[:-1]])
    else:
        w = np.asarray(weight_concentration, dtype=np.float64)
    return w / w.sum()


def _log_det_chol(precisions_cholesky, name, D):
    """``log |U|`` of each component's precision factor (``1/2 log |P_k|``):
    (K,), or a float for 'tied'."""
    pc = np.asarray(precisions_cholesky, dtype=np.float64)
    if name == "full":
        return np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)
    if name == "tied":
        return float(np.log(np.diag(pc)).sum())
    if name == "diag":
        return np.log(pc).sum(axis=1)
    return D * np.log(pc)


def _expected_log_det_shift(dof, D):
    """``E[log |Lambda|] - log |nu W| = D log 2 + sum_{i<D} psi((nu - i) / 2) - D log nu``
    (Bishop 10.65 minus ``log |nu W|``)."""
    nu = np.asarray(dof, dtype=np.float64)
    i = np.arange(D).reshape((D,) + (1,) * nu.ndim)
    return D * math.log(2.0) + digamma(0.5 * (nu - i)).sum(axis=0) - D * np.log(nu)


def log_effective_weights(params: VBParams, prior_type, D):
    """``log a_k`` of the module docstring (float64, (K,))."""
    return expected_log_weights(params.weight_concentration, prior_type) + 0.5 * (
        _expected_log_det_shift(params.degrees_of_freedom, D) - D / np.asarray(params.mean_precision, np.float64)
    )


def effective_params(params: VBParams, prior_type) -> GaussianParams:
    """Gaussian-mixture parameters whose E-step is the variational E-step:
    weights ``a_k`` (unnormalized, float64), means ``m_k`` and precisions
    ``nu_k W_k`` (see the module docstring). ``log`` of their weighted
    densities is scikit-learn's ``_estimate_weighted_log_prob``."""
    D = params.means.shape[1]
    with np.errstate(under="ignore"):
        weights = np.exp(log_effective_weights(params, prior_type, D))
    return GaussianParams(weights=weights, means=params.means, covariances=params.covariances,
                          precisions_cholesky=params.precisions_cholesky)


# ------------------------------------------------------------------ M-step
def m_step(stats, structure, prior: VBPrior, reg_covar, dtype) -> VBParams:
    """Variational M-step from summed statistics (module docstring).

    ``N_k`` gets ``10 eps`` and ``S_k`` gets ``reg_covar`` on its diagonal,
    as in the maximum-likelihood M-step (and scikit-learn). Computed in
    float64; means, covariances and factors are returned in ``dtype``.

    Raises
    ------
    DegenerateComponentError
        If a posterior scale matrix is not positive definite (only possible
        with a degenerate ``covariance_prior``).
    """
    name = structure.name
    nk = np.asarray(stats.nk, dtype=np.float64) + eps_nk(dtype)
    K = nk.shape[0]
    delta = np.asarray(stats.s1, dtype=np.float64) / nk[:, None]
    xk = np.asarray(stats.shift, dtype=np.float64) + delta
    sk = structure.covariances(np.asarray(stats.s2, dtype=np.float64), nk, delta, reg_covar, np.float64)
    g0 = float(prior.weight_concentration)
    if prior.prior_type == "dirichlet_process":
        tail = np.concatenate([np.cumsum(nk[::-1])[-2::-1], [0.0]])  # sum_{j>k} N_j
        wc = (1.0 + nk, g0 + tail)
    else:
        wc = g0 + nk
    b0 = float(prior.mean_precision)
    m0 = np.asarray(prior.mean, dtype=np.float64)
    beta = b0 + nk
    means = (b0 * m0 + nk[:, None] * xk) / beta[:, None]
    diff = xk - m0
    psi0 = prior.covariance
    nu0 = float(prior.degrees_of_freedom)
    if name == "full":
        nu = nu0 + nk
        cov = (np.asarray(psi0, np.float64) + nk[:, None, None] * sk
               + (nk * b0 / beta)[:, None, None] * diff[:, :, None] * diff[:, None, :])
        cov /= nu[:, None, None]
    elif name == "tied":
        n_share = nk.sum() / K
        nu = nu0 + n_share
        cov = np.asarray(psi0, np.float64) + sk * n_share + (b0 / K) * ((nk / beta) * diff.T) @ diff
        cov /= nu
    elif name == "diag":
        nu = nu0 + nk
        cov = np.asarray(psi0, np.float64) + nk[:, None] * (sk + (b0 / beta)[:, None] * diff**2)
        cov /= nu[:, None]
    elif name == "spherical":
        nu = nu0 + nk
        cov = float(psi0) + nk * (sk + b0 / beta * np.mean(diff**2, axis=1))
        cov /= nu
    else:
        raise ValueError(f"Variational Bayes supports covariance_type in {list(STRUCTURES)}. Got {name!r}.")
    cov = cov.astype(dtype)
    try:
        prec_chol = structure.prec_chol_from_cov(cov)
    except NotPositiveDefinite as exc:
        raise DegenerateComponentError.for_component(
            exc.component, float(stats.nk[exc.component]), name, reg_covar
        ) from None
    return VBParams(weight_concentration=wc, mean_precision=beta, means=means.astype(dtype),
                    degrees_of_freedom=nu, covariances=cov, precisions_cholesky=prec_chol)


# ------------------------------------------------------------------- bound
def responsibility_entropy(stats, eff: GaussianParams, structure):
    """``-sum_nk w_n r_nk log r_nk`` from the statistics of an E-step run
    with the effective parameters ``eff`` (module docstring): no pass over
    the rows beyond the E-step's own."""
    D = eff.means.shape[1]
    name = structure.name
    with np.errstate(divide="ignore"):
        log_a = np.log(np.asarray(eff.weights, dtype=np.float64))
    const = log_a + _log_det_chol(eff.precisions_cholesky, name, D) - 0.5 * D * LOG_2PI
    nk = np.asarray(stats.nk, dtype=np.float64)
    used = nk > 0  # a component of zero weight gets no responsibility
    P = np.asarray(structure.precisions(np.asarray(eff.precisions_cholesky, dtype=np.float64)))
    s2 = np.asarray(stats.s2, dtype=np.float64)
    quad = float(np.sum(P * s2)) if P.ndim == s2.ndim else float(np.sum(P[:, None] * s2))
    return float(stats.loglik) - float(np.sum(nk[used] * const[used])) + 0.5 * quad


def bound_terms(params: VBParams, prior_type, structure):
    """The parameter part of the bound after an M-step:
    ``-sum_k log B(W_k, nu_k) - log C(gamma) - D/2 sum_k log beta_k``
    (module docstring; scikit-learn drops the same constants)."""
    D = params.means.shape[1]
    name = structure.name
    nu = np.asarray(params.degrees_of_freedom, dtype=np.float64)
    # log |W_k|^(1/2) = log |U_k| - D/2 log nu_k, with U_k U_k^T = nu_k W_k
    half_log_det_w = _log_det_chol(params.precisions_cholesky, name, D) - 0.5 * D * np.log(nu)
    i = np.arange(D).reshape((D,) + (1,) * nu.ndim)
    # -log B(W, nu) without its D(D-1)/4 log pi
    neg_log_b = nu * half_log_det_w + 0.5 * nu * D * math.log(2.0) + gammaln(0.5 * (nu - i)).sum(axis=0)
    log_wishart = -(params.n_components * float(neg_log_b) if name == "tied" else float(np.sum(neg_log_b)))
    wc = params.weight_concentration
    if prior_type == "dirichlet_process":
        log_norm_weight = -float(np.sum(betaln(np.asarray(wc[0], np.float64), np.asarray(wc[1], np.float64))))
    else:
        g = np.asarray(wc, dtype=np.float64)
        log_norm_weight = float(gammaln(g.sum()) - gammaln(g).sum())
    beta = np.asarray(params.mean_precision, dtype=np.float64)
    return -log_wishart - log_norm_weight - 0.5 * D * float(np.sum(np.log(beta)))


# -------------------------------------------------------------------- loop
def host_stats(stats):
    """``stats`` with its arrays as float64 numpy arrays (statistics summed on
    a PyTorch/CuPy device come to the host: K x D x D numbers)."""
    from ..backends import _xp

    def h(a):
        return np.asarray(_xp.to_numpy(a), dtype=np.float64)

    return replace(stats, nk=h(stats.nk), s1=h(stats.s1), s2=h(stats.s2), shift=h(stats.shift))


def device_params(eff: GaussianParams, xp, like) -> GaussianParams:
    """Effective parameters (numpy, from :func:`effective_params`) on the
    namespace ``xp`` and device of the array ``like``: means and factors in
    ``like``'s dtype, the weights ``a_k`` in the accumulation dtype (float64)."""
    from ..backends import _xp

    dev = _xp.device(like)
    f64 = _xp.accumulation_dtype(xp, like)

    def put(a, dtype):
        return xp.asarray(np.ascontiguousarray(a), dtype=dtype, device=dev)

    return GaussianParams(weights=put(np.asarray(eff.weights, np.float64), f64),
                          means=put(eff.means, like.dtype),
                          covariances=put(np.asarray(eff.covariances), like.dtype),
                          precisions_cholesky=put(np.asarray(eff.precisions_cholesky), like.dtype))


def fit(reduce, params0: VBParams, structure, *, tol, max_iter, reg_covar, prior: VBPrior,
        lower_bound0=-math.inf, callback=None, xp=None, like=None) -> FitResult:
    """Coordinate ascent on the variational posterior from ``params0`` until
    the bound changes by less than ``tol`` or ``max_iter`` iterations: the
    one EM loop (:func:`emix.core.loop.run_em`) with the variational E-step,
    M-step and bound. ``reduce(step)`` sums ``step(X_block, w_block)`` over
    the data (any emix reducer). The bound recorded at iteration ``i`` is
    that of the E-step's responsibilities and the parameters after its
    M-step, scikit-learn's ``lower_bound_``.

    ``xp`` and ``like`` (an array of the data's namespace, device and dtype):
    data on a PyTorch/CuPy device. The E-step runs there (the Gaussian kernels
    with ``xp``, given the effective parameters of :func:`device_params`);
    its statistics (K x D x D numbers) come to the host, where the M-step and
    the bound run in float64 with the numpy code above, so the parameters
    are those of the numpy fit to rounding. ``params0`` stays numpy."""
    from . import em

    dtype = params0.means.dtype
    kind = prior.prior_type

    on_device = xp is not None and xp is not np

    def e(current):
        eff = effective_params(current, kind)
        if on_device:
            eff_dev = device_params(eff, xp, like)
            stats = host_stats(reduce(lambda Xb, wb: em.e_step(Xb, wb, eff_dev, structure, xp)))
        else:
            stats = reduce(lambda Xb, wb: em.e_step(Xb, wb, eff, structure, np))
        # the entropy needs the parameters of this E-step: carried in ``loglik``
        return replace(stats, loglik=responsibility_entropy(stats, eff, structure))

    def m(stats, current):
        return m_step(stats, structure, prior, reg_covar, dtype)

    def bound(stats, params):
        return stats.loglik + bound_terms(params, kind, structure)

    return run_em(e, m, params0, tol=tol, max_iter=max_iter, lower_bound0=lower_bound0,
                  callback=callback, bound=bound)
