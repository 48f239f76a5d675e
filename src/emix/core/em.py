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
from . import small as _small
from .loop import run_em
from .numerics import LOG_2PI, eps_nk, logsumexp, normalize_log
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
    ``log pi_0 - log V``.

    Never NaN for finite ``X``: rows far from every component (see
    :data:`FAR_LOG_PROB`) are recomputed in the scaled form of
    :func:`far_log_prob`. An entry whose value is below the most negative
    number of the dtype is ``-inf`` (the density underflows).
    """
    xp = _ns(xp, X)
    lp = _raw_weighted_log_prob(X, params, structure, xp)
    rows = _far_rows(None, xp, lp)
    if rows is not None:
        ref, rel = _far(X, rows, params, structure, xp)
        with np.errstate(over="ignore"):  # -inf where the density underflows
            _put_rows(xp, lp, rows, ref[:, None] + rel)
    return lp


def _raw_weighted_log_prob(X, params, structure, xp):
    """:func:`weighted_log_prob` before the far rows are redone (they may hold
    ``-inf`` or NaN)."""
    with _xp.errstate(xp, over="ignore", invalid="ignore"):
        lp = structure.log_prob(X, params.means, params.precisions_cholesky, **_kw(xp))
    with _xp.errstate(xp, divide="ignore"):
        lp += xp.astype(xp.log(params.weights), lp.dtype, copy=False)
    if params.noise_weight is not None:
        with np.errstate(divide="ignore"):
            col = np.log(np.float64(params.noise_weight)) - params.log_volume
        lp = np.concatenate([lp, np.full((lp.shape[0], 1), col, dtype=lp.dtype)], axis=1)
    return lp


def _far(X, rows, params, structure, xp):
    Xf = X[rows] if xp is np else X[_xp.asarray(xp, rows, device=_xp.device(X))]
    return far_log_prob(Xf, params, structure)


def log_resp(X, params: GaussianParams, structure, xp=None):
    """Per-row ``log p(x_n)`` and (n, K) log responsibilities.

    Responsibilities are defined for every finite row: for a row far from
    every component they come from the exact differences of
    :func:`far_log_prob` (in the limit the largest term takes all), and
    ``log p(x_n)`` is ``-inf`` where it underflows.
    """
    xp = _ns(xp, X)
    lp = _raw_weighted_log_prob(X, params, structure, xp)
    norm = logsumexp(lp, axis=1, xp=xp)
    rows = _far_rows(norm, xp)
    with _xp.errstate(xp, invalid="ignore"):  # rows of all -inf: far rows, redone below
        lp -= norm[:, None]
    if rows is not None:
        ref, rel = _far(X, rows, params, structure, xp)
        lse = np.log(np.exp(rel).sum(axis=1))  # in [0, log K]: the largest rel is 0
        with np.errstate(over="ignore"):
            _put_rows(xp, norm, rows, ref + lse)
            _put_rows(xp, lp, rows, rel - lse[:, None])
    return norm, lp


def log_density(X, params: GaussianParams, structure, xp=None):
    """Per-row ``log p(x_n) = logsumexp_k (log pi_k + log N(x_n | k))``, what
    ``score_samples`` reports: never NaN for finite ``X``, ``-inf`` where the
    density is below the dtype's range (see :func:`far_log_prob`)."""
    xp = _ns(xp, X)
    norm = logsumexp(_raw_weighted_log_prob(X, params, structure, xp), axis=1, xp=xp)
    rows = _far_rows(norm, xp)
    if rows is not None:
        ref, rel = _far(X, rows, params, structure, xp)
        with np.errstate(over="ignore"):
            _put_rows(xp, norm, rows, ref + np.log(np.exp(rel).sum(axis=1)))
    return norm


def argmax_column(X, params: GaussianParams, structure, xp=None):
    """Column of the largest ``log pi_k + log N(x_n | k)`` of each row (the
    noise column, when there is one, is ``K``): what ``predict`` reports.

    ``argmax`` of :func:`weighted_log_prob`, except on far rows, where every
    term may be ``-inf``: there the exact differences of :func:`far_log_prob`
    decide.
    """
    xp = _ns(xp, X)
    lp = _raw_weighted_log_prob(X, params, structure, xp)
    cols = xp.argmax(lp, axis=1)
    rows = _far_rows(None, xp, lp)
    if rows is not None:
        _, rel = _far(X, rows, params, structure, xp)
        _put_rows(xp, cols, rows, np.argmax(rel, axis=1))
    return cols


# ----------------------------------------------------------------- far rows
#: A row whose largest weighted log density (or its log-sum-exp, at most
#: ``log K`` above it) is below ``-FAR_LOG_PROB``, not finite or NaN is "far":
#: its terms are recomputed by :func:`far_log_prob`. There, ``lp_k - lp_j``
#: computed as the difference of two numbers of size ``|lp|`` carries an error
#: of ``eps |lp|`` (2e-10 at the threshold, in float64: for components sharing
#: a covariance the whole difference is lost from ``|x|`` of about 1e16 on),
#: and beyond ``|x|`` of about 1e154 (1e19 in float32) the terms overflow to
#: ``-inf`` or NaN. Ordinary rows never get here: their path is unchanged.
FAR_LOG_PROB = 1e6


def _far_rows(v, xp, lp=None):
    """Row indices (host) where the per-row value ``v`` is not above
    ``-FAR_LOG_PROB`` (NaN included), or None. On the numpy path ``v`` may be
    None with ``lp`` given: its row maxima are then taken only when the
    smallest entry of ``lp`` fails the test (one contiguous pass), by columns
    (numpy's reduction along a short row axis is several times slower)."""
    if xp is np:
        if v is None:
            if lp.shape[0] == 0 or lp.min() > -FAR_LOG_PROB:
                return None
            v = lp[:, 0].copy()
            for k in range(1, lp.shape[1]):
                np.maximum(v, lp[:, k], out=v)
        if v.shape[0] == 0 or v.min() > -FAR_LOG_PROB:  # NaN fails the test
            return None
        return np.flatnonzero(~(v > -FAR_LOG_PROB))
    if v is None:
        v = xp.max(lp, axis=1)
    if v.shape[0] == 0 or bool(xp.min(v) > -FAR_LOG_PROB):
        return None
    return np.asarray(_xp.flatnonzero(xp, ~(v > -FAR_LOG_PROB)), dtype=np.intp)


def _put_rows(xp, a, rows, values):
    """``a[rows] = values`` (numpy float64 ``values``, cast to ``a``'s dtype)."""
    if xp is np:
        a[rows] = values
    else:
        a[_xp.asarray(xp, rows, device=_xp.device(a))] = _xp.asarray(
            xp, np.asarray(values), dtype=a.dtype, device=_xp.device(a))


def _precision_groups(P):
    """For each component, the first component whose precision matrix equals
    its own up to rounding (``64 eps`` of the largest entry): such components
    share one quadratic term, so that their comparison in the limit is exact
    (decided by the linear term, as for ``'tied'``)."""
    K = P.shape[0]
    flat = P.reshape(K, -1)
    scale = np.abs(flat).max(axis=1)
    rep = np.arange(K)
    tol = 64.0 * np.finfo(np.float64).eps
    for k in range(1, K):
        heads = np.flatnonzero(rep[:k] == np.arange(k))
        diff = np.abs(flat[heads] - flat[k]).max(axis=1)
        same = heads[diff <= tol * np.maximum(scale[heads], scale[k])]
        if same.size:
            rep[k] = same[0]
    return rep


def far_log_prob(X, params: GaussianParams, structure):
    """Weighted log densities of rows far from every component, without
    overflow and with exact comparisons between components.

    With ``g`` the average of the means, ``m_k = mu_k - g``, ``P_k`` the
    precision matrix and ``s = max(|x|_inf, |g|_inf, 1)``, write
    ``x - g = s y`` (``y = x/s - g/s``, so ``|y|_inf <= 2``). Then exactly

    ``log pi_k N(x | k) = s (s A_k + B_k) + E_k``,

    ``A_k = -y^T P_k y / 2``, ``B_k = y^T P_k m_k``,
    ``E_k = log pi_k + log|P_k|/2 - D log(2 pi)/2 - m_k^T P_k m_k / 2``,

    with ``A, B, E`` of the size of the data's scale whatever ``s``. The
    differences to a reference component ``r``,

    ``lp_k - lp_r = s (s (A_k - A_r) + (B_k - B_r)) + (E_k - E_r)``,

    are evaluated in this Horner form (never ``inf - inf``), so components
    with the same precision (the whole of ``'tied'``) compare by their linear
    term exactly. As ``s`` grows, the smallest ``y^T P_k y`` wins, then the
    largest ``B_k``, then the largest ``E_k``: the limit responsibilities put
    all the mass on that component (equal shares on exact ties). ``r`` is the
    component of the largest term, found by at most ``K`` moves to a larger
    one. The noise column (``log pi_0 - log V``) is the term ``A = B = 0``,
    which wins every far row.

    Returns
    -------
    lp_ref : ndarray of shape (n,)
        ``log pi_r N(x | r)`` of the largest term, float64; ``-inf`` where it
        underflows.
    rel : ndarray of shape (n, K) (K + 1 with noise)
        ``lp_k - lp_ref``, float64, at most 0 (0 at ``r``); ``-inf`` for a
        term negligible against the largest or of zero weight.
    """
    own = getattr(structure, "far_log_prob", None)
    if own is not None:  # rows with missing values (emix.core.missing.IncompleteStructure)
        return own(X, params)
    X = np.asarray(_xp.to_numpy(X), dtype=np.float64)
    means = np.asarray(_xp.to_numpy(params.means), dtype=np.float64)
    K, D = means.shape
    pc = _xp.to_numpy(params.precisions_cholesky)
    P = np.asarray(structure.full_covariances(np.asarray(structure.precisions(pc)), K, D), dtype=np.float64)
    with np.errstate(divide="ignore"):
        logw = np.log(np.asarray(_xp.to_numpy(params.weights), dtype=np.float64))
    g = means.mean(axis=0)
    M = means - g
    s = np.maximum(np.abs(X).max(axis=1, initial=1.0), np.abs(g).max(initial=0.0))
    Y = X / s[:, None] - g / s[:, None]
    L = np.linalg.cholesky(P)  # P_k = L_k L_k^T
    PM = np.einsum("kij,kj->ki", P, M)
    E = logw + np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1) - 0.5 * D * LOG_2PI
    E -= 0.5 * np.einsum("kd,kd->k", M, PM)
    B = Y @ PM.T
    A = np.empty_like(B)
    rep = _precision_groups(P)
    for r in np.unique(rep):
        Z = Y @ L[r]  # (L_r^T y)^T
        A[:, rep == r] = -0.5 * np.einsum("nd,nd->n", Z, Z)[:, None]
    if params.noise_weight is not None:
        with np.errstate(divide="ignore"):
            e0 = np.log(np.float64(params.noise_weight)) - params.log_volume
        A, B, E = (np.concatenate([A, np.zeros((len(X), 1))], axis=1),
                   np.concatenate([B, np.zeros((len(X), 1))], axis=1), np.append(E, e0))
    active = np.isfinite(E)  # a term of zero weight is never the largest
    idx = np.arange(len(X))
    s = s[:, None]

    def relative(r):
        with np.errstate(over="ignore", invalid="ignore"):
            d = s * (s * (A - A[idx, r][:, None]) + (B - B[idx, r][:, None])) + (E - E[r][:, None])
        d[:, ~active] = -np.inf
        d[np.isnan(d)] = -np.inf  # only from B itself overflowing (precisions near the float limit)
        return d

    ref = np.argmax(np.where(active, A, -np.inf), axis=1)
    for _ in range(A.shape[1]):
        rel = relative(ref)
        best = np.argmax(rel, axis=1)
        move = rel[idx, best] > 0.0
        if not move.any():
            break
        ref = np.where(move, best, ref)
    with np.errstate(over="ignore"):
        lp_ref = s[:, 0] * (s[:, 0] * A[idx, ref] + B[idx, ref]) + E[ref]
        top = rel.max(axis=1)  # 0, unless rounding left a cycle
        lp_ref += top
    rel -= top[:, None]
    return lp_ref, rel


def stats_from_resp(X, sample_weight, resp, shift, structure, loglik=0.0, xp=None) -> SuffStats:
    """Sufficient statistics of rows ``X`` with responsibilities ``resp``.

    ``resp`` is multiplied by ``sample_weight`` (if given) here. The statistics
    are centered at ``shift`` (one row per component) and returned in float64.
    """
    xp = _ns(xp, X)
    if xp is np:  # a small float64 block: one compiled pass (core/small.py), else None
        stats = _small.stats_from_resp(X, sample_weight, resp, shift, structure, loglik)
        if stats is not None:
            return stats
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
    if xp is np:  # a small float64 block: one compiled call (core/small.py), else None
        stats = _small.e_step(X, sample_weight, params, structure)
        if stats is not None:
            return stats
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
           equal_proportions=False, log_volume=None, previous=None) -> GaussianParams:
    """Weighted maximum-likelihood parameters from summed statistics.

    ``10 * eps`` is added to every ``n_k`` and ``reg_covar`` to every
    covariance diagonal, once, here. With a ``prior``
    (:class:`emix.core.prior.ConjugatePrior`, numpy only) the posterior mode
    instead (:func:`emix.core.prior.map_m_step`). ``equal_proportions`` and
    ``log_volume`` (a uniform noise component of volume ``exp(log_volume)``)
    change only the mixing weights (:func:`mixing_m_step`; numpy only).
    ``previous``: the parameters entering this EM iteration; structures whose
    M-step is iterative and starts better from them (``warm_m_step``: EVE,
    VVE) get their covariances, others ignore it.

    Raises
    ------
    DegenerateComponentError
        If a covariance is not positive definite.
    """
    if equal_proportions or log_volume is not None:
        params = m_step(stats, structure, reg_covar, dtype, xp, prior, previous=previous)
        return mixing_m_step(params, stats, dtype, equal_proportions, log_volume)
    if prior is not None:
        from .prior import map_m_step

        return map_m_step(stats, structure, prior, reg_covar, dtype)
    xp = _ns(xp, stats.nk)
    if xp is np and dtype == np.float64:  # small models: the whole M-step in one compiled call
        warm = previous is not None and getattr(structure, "warm_m_step", False)
        params = _small.m_step(stats, structure, reg_covar, previous.covariances if warm else None)
        if params is not None:
            return params
    nk = stats.nk + eps_nk(dtype, xp)
    delta = stats.s1 / nk[:, None]
    means = xp.astype(xp.astype(stats.shift, nk.dtype) + delta, dtype)
    weights = xp.astype(nk / xp.sum(nk), dtype)
    kw = _kw(xp)
    if previous is not None and getattr(structure, "warm_m_step", False):
        kw["previous"] = previous.covariances
    cov = structure.covariances(stats.s2, nk, delta, reg_covar, dtype, **kw)
    try:
        prec_chol = _small.prec_chol_from_cov(cov, structure) if xp is np else None  # small: in C
        if prec_chol is None:
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

    done = None
    if callback is None and prior is None and not mixing and xp is np:
        done = _compiled_fit(reduce, params0, structure, tol, max_iter, reg_covar, lower_bound0)
        if isinstance(done, FitResult):
            return done

    if mixing:
        def m(stats, current):
            return m_step(stats, structure, reg_covar, dtype, xp, prior, equal_proportions, log_volume,
                          previous=current)
    else:
        def m(stats, current):
            return m_step(stats, structure, reg_covar, dtype, xp, prior, previous=current)

    if done is not None:  # the compiled loop stopped at an iteration it leaves to numpy
        params, n_done, last, history = done
        rest = run_em(e, m, params, tol=tol, max_iter=max_iter - n_done, lower_bound0=last)
        return FitResult(params=rest.params, n_iter=n_done + rest.n_iter, converged=rest.converged,
                         lower_bound=rest.lower_bound, history=history + tuple(rest.history))
    return run_em(e, m, params0, tol=tol, max_iter=max_iter, lower_bound0=lower_bound0, callback=callback)


def _compiled_fit(reduce, params0, structure, tol, max_iter, reg_covar, lower_bound0):
    """:func:`fit` by :func:`emix.core.small.em_loop` (the whole loop in one
    compiled call) for a small in-memory float64 array without callback,
    prior or mixing options: a ``FitResult``; ``(params, n_done,
    last_bound, history)`` where the numpy loop must go on from iteration
    ``n_done + 1``; or None where the compiled loop does not apply."""
    from ..backends.reduce import BlockReducer

    if type(reduce) is not BlockReducer:
        return None
    res = _small.em_loop(reduce.X, reduce.sample_weight, params0, structure, rule=0, tol=tol,
                         max_iter=max_iter, reg_covar=reg_covar, lower_bound0=lower_bound0)
    if res is None:
        return None
    if res.status == _small.DEGENERATE:
        raise DegenerateComponentError.for_component(int(res.bad_k), float(res.bad_nk), structure.name,
                                                     reg_covar)
    history = tuple(res.history.tolist())  # Python floats
    if res.status == _small.FALLBACK:
        return res.params, int(res.n_iter), float(res.last), history
    return FitResult(params=res.params, n_iter=int(res.n_iter), converged=res.status == _small.CONVERGED,
                     lower_bound=float(res.last), history=history)
