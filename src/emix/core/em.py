"""The EM algorithm as pure functions.

``e_step`` maps a block of rows and the current parameters to additive
sufficient statistics; ``m_step`` maps summed statistics to new parameters;
``fit`` is the only loop. How rows are split into blocks (in memory, chunked,
Dask...) is the caller's ``reduce`` function, so every way of fitting shares
this code.

Every function takes the array namespace ``xp`` (see :mod:`emix.backends._xp`),
found once per public call by the caller; callers that pass none get the
namespace of the data (numpy for numpy arrays, without importing anything). Structures
are called with ``xp=`` only for non-numpy namespaces, so a structure that
supports numpy only keeps its plain signature.
"""

from __future__ import annotations

import math
from dataclasses import replace as stats_replace
from typing import Callable

import numpy as np

from ..backends import _xp
from ..exceptions import DegenerateComponentError
from ..families.gaussian._common import NotPositiveDefinite
from .loop import run_em
from .numerics import eps_nk, logsumexp, normalize_log
from .types import FitResult, GaussianParams, SuffStats


def _kw(xp):
    """Keyword arguments for structure methods: none on the numpy path."""
    return {} if xp is np else {"xp": xp}


def _ns(xp, a):
    """``xp``, or when a caller passed none (older callers), the namespace of ``a``."""
    if xp is not None:
        return xp
    return np if isinstance(a, np.ndarray) else _xp.namespace(a)


def weighted_log_prob(X, params: GaussianParams, structure, xp=None):
    """(n, K) array of ``log pi_k + log N(x_n | mu_k, Sigma_k)``; with a noise
    component (``params.noise_weight`` set) (n, K + 1), the last column
    ``log pi_0 - log V``."""
    xp = _ns(xp, X)
    lp = structure.log_prob(X, params.means, params.precisions_cholesky, **_kw(xp))
    with _xp.errstate(xp, divide="ignore"):
        lp += xp.astype(xp.log(params.weights), lp.dtype, copy=False)
    if params.noise_weight is not None:
        with np.errstate(divide="ignore"):
            col = np.log(np.float64(params.noise_weight)) - params.log_volume
        lp = np.concatenate([lp, np.full((lp.shape[0], 1), col, dtype=lp.dtype)], axis=1)
    return lp


def log_resp(X, params: GaussianParams, structure, xp=None):
    """Per-row ``log p(x_n)`` and (n, K) log responsibilities."""
    xp = _ns(xp, X)
    lp = weighted_log_prob(X, params, structure, xp)
    norm = logsumexp(lp, axis=1, xp=xp)
    lp -= norm[:, None]
    return norm, lp


def stats_from_resp(X, sample_weight, resp, shift, structure, loglik=0.0, xp=None) -> SuffStats:
    """Sufficient statistics of rows ``X`` with responsibilities ``resp``.

    ``resp`` is multiplied by ``sample_weight`` (if given) here. The statistics
    are centered at ``shift`` (one row per component) and returned in float64.
    """
    xp = _ns(xp, X)
    f64 = _xp.accumulation_dtype(xp, X)
    if sample_weight is not None:
        resp = resp * xp.astype(sample_weight[:, None], resp.dtype, copy=False)
        sum_w = float(xp.sum(sample_weight, dtype=f64))
    else:
        sum_w = float(X.shape[0])
    nk = xp.sum(resp, axis=0, dtype=f64)
    shift_x = xp.astype(shift, X.dtype, copy=False)
    g = xp.mean(shift_x, axis=0)
    # s1_k = sum_n r_nk (x_n - c_k) = r^T (X - g) - nk (c_k - g)
    s1 = xp.astype(resp.T @ (X - g), f64) - nk[:, None] * xp.astype(shift_x - g, f64)
    s2 = structure.scatter(X, resp, shift_x, **_kw(xp))
    s2 = np.asarray(s2, dtype=np.float64) if xp is np else xp.astype(s2, f64)
    return SuffStats(nk=nk, s1=s1, s2=s2, shift=shift, loglik=float(loglik), sum_w=sum_w)


def e_step(X, sample_weight, params: GaussianParams, structure, xp=None) -> SuffStats:
    """E-step on a block of rows: responsibilities, then their statistics,
    shifted at the current means.

    A structure may provide a fused ``suff_stats(X, sample_weight, params)``
    that computes the same thing sharing work between the two halves.
    """
    xp = _ns(xp, X)
    if params.noise_weight is not None:
        return _noise_e_step(X, sample_weight, params, structure)
    fused = getattr(structure, "suff_stats", None)
    if fused is not None:
        return fused(X, sample_weight, params, **_kw(xp))
    norm, resp = normalize_log(weighted_log_prob(X, params, structure, xp), xp=xp)
    return stats_from_resp(
        X, sample_weight, resp, params.means, structure, _loglik(norm, sample_weight, xp), xp=xp
    )


def _noise_e_step(X, sample_weight, params, structure) -> SuffStats:
    """E-step with a uniform noise component (numpy only): responsibilities
    over the K + 1 columns of :func:`weighted_log_prob`; the Gaussian columns
    give the usual statistics, the noise column its sum ``n0``. The fused
    kernels are not used here, so the default path stays untouched."""
    K = params.n_components
    norm, resp = normalize_log(weighted_log_prob(X, params, structure, np), xp=np)
    r0 = resp[:, K].astype(np.float64)
    n0 = float(r0.sum()) if sample_weight is None else float(r0 @ sample_weight.astype(np.float64))
    stats = stats_from_resp(
        X, sample_weight, resp[:, :K], params.means, structure, _loglik(norm, sample_weight), xp=np
    )
    return stats_replace(stats, n0=n0)


def _loglik(norm, sample_weight, xp=np):
    if xp is not np:
        f64 = _xp.accumulation_dtype(xp, norm)
        if sample_weight is None:
            return float(xp.sum(norm, dtype=f64))
        return float(xp.sum(xp.astype(norm, f64) * xp.astype(sample_weight, f64)))
    if sample_weight is None:
        return float(np.sum(norm, dtype=np.float64))
    return float(np.dot(norm.astype(np.float64), sample_weight.astype(np.float64)))


def m_step(stats: SuffStats, structure, reg_covar: float, dtype, xp=None, prior=None,
           equal_proportions=False, log_volume=None) -> GaussianParams:
    """Weighted maximum-likelihood parameters from summed statistics.

    ``10 * eps`` is added to every ``n_k`` and ``reg_covar`` to every
    covariance diagonal, once, here. With a ``prior``
    (:class:`emix.core.prior.ConjugatePrior`, numpy only) the posterior mode
    instead (:func:`emix.core.prior.map_m_step`). ``equal_proportions`` and
    ``log_volume`` (a uniform noise component of volume ``exp(log_volume)``)
    change only the mixing weights (:func:`mixing_m_step`; numpy only).

    Raises
    ------
    DegenerateComponentError
        If a covariance is not positive definite.
    """
    if equal_proportions or log_volume is not None:
        params = m_step(stats, structure, reg_covar, dtype, xp, prior)
        return mixing_m_step(params, stats, dtype, equal_proportions, log_volume)
    if prior is not None:
        from .prior import map_m_step

        return map_m_step(stats, structure, prior, reg_covar, dtype)
    xp = _ns(xp, stats.nk)
    nk = stats.nk + eps_nk(dtype, xp)
    delta = stats.s1 / nk[:, None]
    means = xp.astype(xp.astype(stats.shift, nk.dtype) + delta, dtype)
    weights = xp.astype(nk / xp.sum(nk), dtype)
    cov = structure.covariances(stats.s2, nk, delta, reg_covar, dtype, **_kw(xp))
    try:
        prec_chol = structure.prec_chol_from_cov(cov, **_kw(xp))
    except NotPositiveDefinite as exc:
        raise DegenerateComponentError.for_component(
            exc.component, float(stats.nk[exc.component]), structure.name, reg_covar
        ) from None
    return GaussianParams(weights=weights, means=means, covariances=cov, precisions_cholesky=prec_chol)


def mixing_m_step(params: GaussianParams, stats: SuffStats, dtype, equal_proportions=False,
                  log_volume=None) -> GaussianParams:
    """The mixing weights' M-step under mclust's options (Fraley & Raftery
    2002, section 4; Banfield & Raftery 1993 for the noise component).

    The weight part of the expected complete-data log-likelihood is
    ``n0 log pi_0 + sum_k n_k log pi_k`` with ``pi_0 + sum_k pi_k = 1``
    (``pi_0 = n0 = 0`` without noise). Free weights: ``pi_k = n_k / T``,
    ``pi_0 = n0 / T``, ``T = n0 + sum_k n_k``. Equal weights ``pi_k = p``:
    maximizing ``n0 log(1 - K p) + (sum_k n_k) log p`` gives again
    ``pi_0 = n0 / T`` and ``p = (1 - pi_0) / K``.
    """
    nk = np.asarray(stats.nk, dtype=np.float64) + eps_nk(dtype)
    K = nk.shape[0]
    n0 = float(stats.n0) if log_volume is not None else 0.0
    total = float(nk.sum()) + n0
    pi0 = n0 / total
    if equal_proportions:
        weights = np.full(K, (1.0 - pi0) / K)
    else:
        weights = nk / total
    return params.replace(
        weights=weights.astype(dtype),
        noise_weight=None if log_volume is None else pi0,
        log_volume=None if log_volume is None else float(log_volume),
    )


Reduce = Callable[[Callable], SuffStats]


def fit(
    reduce: Reduce,
    params0: GaussianParams,
    structure,
    *,
    tol: float,
    max_iter: int,
    reg_covar: float,
    lower_bound0: float = -math.inf,
    callback=None,
    xp=None,
    prior=None,
    equal_proportions=False,
) -> FitResult:
    """Run EM from ``params0`` until the mean log-likelihood changes by less
    than ``tol`` or ``max_iter`` iterations.

    ``reduce(step)`` must call ``step(X_block, w_block)`` on every block of
    the data and return the sum of the results. As in scikit-learn, the lower
    bound recorded at iteration ``i`` is the mean log-likelihood of the
    parameters entering that iteration; the returned parameters are those
    after its M-step. ``xp`` is the array namespace (by default that of
    ``params0.means``). ``prior``: see :func:`m_step`. A noise component
    (``params0.noise_weight`` set) keeps its volume ``params0.log_volume``;
    ``equal_proportions``: see :func:`mixing_m_step`.
    """
    if xp is None:
        xp = _xp.namespace(params0.means)
    dtype = params0.means.dtype
    log_volume = params0.log_volume if params0.noise_weight is not None else None
    mixing = bool(equal_proportions) or log_volume is not None

    def e(current):
        return reduce(lambda Xb, wb: e_step(Xb, wb, current, structure, xp))

    if mixing:
        def m(stats, _):
            return m_step(stats, structure, reg_covar, dtype, xp, prior, equal_proportions, log_volume)
    else:
        def m(stats, _):
            return m_step(stats, structure, reg_covar, dtype, xp, prior)

    return run_em(e, m, params0, tol=tol, max_iter=max_iter, lower_bound0=lower_bound0, callback=callback)
