"""The EM algorithm as pure functions.

``e_step`` maps a block of rows and the current parameters to additive
sufficient statistics; ``m_step`` maps summed statistics to new parameters;
``fit`` is the only loop. How rows are split into blocks (in memory, chunked,
Dask...) is the caller's ``reduce`` function, so every way of fitting shares
this code.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..exceptions import DegenerateComponentError
from ..families.gaussian._common import NotPositiveDefinite
from .numerics import eps_nk, logsumexp, normalize_log
from .types import FitResult, GaussianParams, SuffStats


def weighted_log_prob(X, params: GaussianParams, structure) -> np.ndarray:
    """(n, K) array of ``log pi_k + log N(x_n | mu_k, Sigma_k)``."""
    lp = structure.log_prob(X, params.means, params.precisions_cholesky)
    with np.errstate(divide="ignore"):
        lp += np.log(params.weights).astype(lp.dtype, copy=False)
    return lp


def log_resp(X, params: GaussianParams, structure):
    """Per-row ``log p(x_n)`` and (n, K) log responsibilities."""
    lp = weighted_log_prob(X, params, structure)
    norm = logsumexp(lp, axis=1)
    lp -= norm[:, None]
    return norm, lp


def stats_from_resp(X, sample_weight, resp, shift, structure, loglik=0.0) -> SuffStats:
    """Sufficient statistics of rows ``X`` with responsibilities ``resp``.

    ``resp`` is multiplied by ``sample_weight`` (if given) here. The statistics
    are centered at ``shift`` (one row per component) and returned in float64.
    """
    if sample_weight is not None:
        resp = resp * sample_weight[:, None].astype(resp.dtype, copy=False)
        sum_w = float(np.sum(sample_weight, dtype=np.float64))
    else:
        sum_w = float(X.shape[0])
    nk = np.sum(resp, axis=0, dtype=np.float64)
    shift_x = shift.astype(X.dtype, copy=False)
    g = shift_x.mean(axis=0)
    # s1_k = sum_n r_nk (x_n - c_k) = r^T (X - g) - nk (c_k - g)
    s1 = (resp.T @ (X - g)).astype(np.float64) - nk[:, None] * (shift_x - g).astype(np.float64)
    s2 = np.asarray(structure.scatter(X, resp, shift_x), dtype=np.float64)
    return SuffStats(nk=nk, s1=s1, s2=s2, shift=shift, loglik=float(loglik), sum_w=sum_w)


def e_step(X, sample_weight, params: GaussianParams, structure) -> SuffStats:
    """E-step on a block of rows: responsibilities, then their statistics,
    shifted at the current means.

    A structure may provide a fused ``suff_stats(X, sample_weight, params)``
    that computes the same thing sharing work between the two halves.
    """
    fused = getattr(structure, "suff_stats", None)
    if fused is not None:
        return fused(X, sample_weight, params)
    norm, resp = normalize_log(weighted_log_prob(X, params, structure))
    return stats_from_resp(X, sample_weight, resp, params.means, structure, _loglik(norm, sample_weight))


def _loglik(norm, sample_weight):
    if sample_weight is None:
        return float(np.sum(norm, dtype=np.float64))
    return float(np.dot(norm.astype(np.float64), sample_weight.astype(np.float64)))


def m_step(stats: SuffStats, structure, reg_covar: float, dtype) -> GaussianParams:
    """Weighted maximum-likelihood parameters from summed statistics.

    ``10 * eps`` is added to every ``n_k`` and ``reg_covar`` to every
    covariance diagonal, once, here.

    Raises
    ------
    DegenerateComponentError
        If a covariance is not positive definite.
    """
    nk = stats.nk + eps_nk(dtype)
    delta = stats.s1 / nk[:, None]
    means = (stats.shift.astype(np.float64) + delta).astype(dtype)
    weights = (nk / nk.sum()).astype(dtype)
    cov = structure.covariances(stats.s2, nk, delta, reg_covar, dtype)
    try:
        prec_chol = structure.prec_chol_from_cov(cov)
    except NotPositiveDefinite as exc:
        raise DegenerateComponentError.for_component(
            exc.component, float(stats.nk[exc.component]), structure.name, reg_covar
        ) from None
    return GaussianParams(weights=weights, means=means, covariances=cov, precisions_cholesky=prec_chol)


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
) -> FitResult:
    """Run EM from ``params0`` until the mean log-likelihood changes by less
    than ``tol`` or ``max_iter`` iterations.

    ``reduce(step)`` must call ``step(X_block, w_block)`` on every block of
    the data and return the sum of the results. As in scikit-learn, the lower
    bound recorded at iteration ``i`` is the mean log-likelihood of the
    parameters entering that iteration; the returned parameters are those
    after its M-step.
    """
    params = params0
    dtype = params0.means.dtype
    lower_bound = lower_bound0
    history = []
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        prev = lower_bound
        current = params
        stats = reduce(lambda Xb, wb: e_step(Xb, wb, current, structure))
        params = m_step(stats, structure, reg_covar, dtype)
        lower_bound = stats.loglik / stats.sum_w
        history.append(lower_bound)
        change = lower_bound - prev
        if callback is not None:
            callback(n_iter, lower_bound, change)
        if abs(change) < tol:
            converged = True
            break
    return FitResult(
        params=params,
        n_iter=n_iter,
        converged=converged,
        lower_bound=lower_bound,
        history=tuple(history),
    )
