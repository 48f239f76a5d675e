"""Online EM for :meth:`emix.GaussianMixture.partial_fit`: pure functions.

Two modes, chosen with the estimator's ``online_mode``:

``"stepwise"`` (default)
    Stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009). The running
    statistics are a weighted average of per-row batch statistics,
    ``S <- (1 - rho_t) S + rho_t s(batch) / |batch|``, with step sizes
    ``rho_t = (t + learning_offset) ** -learning_decay`` (``t`` = batches seen
    before this one, decay in (0.5, 1]), and new parameters are taken from
    ``S`` after every batch. Use it on an endless or very long stream, or
    when one pass over the data should already give a good model: it moves
    after every batch. Smaller decay forgets faster (follows drift, noisier);
    decay 1 with offset 0 averages all batches equally.

``"exact"``
    Mini-batch exact EM: statistics of every batch are computed with the same
    parameters and summed; after ``batches_per_pass`` batches (one pass over a
    finite data set) one M-step runs. Each pass is exactly one iteration of
    batch EM, so P passes equal ``fit`` with ``max_iter=P`` from the same
    start. Use it on a finite data set that you can replay, when you want the
    batch answer (it needs one pass per iteration, as ``fit`` on a block
    source does, which also checks convergence for you).

Statistics are kept shifted at component means. Running statistics are moved
to a new shift with :func:`recenter`, which is exact for every covariance
structure because it only uses the structure's own ``scatter`` on K
pseudo-points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .core.types import GaussianParams, SuffStats

ONLINE_MODES = ("stepwise", "exact")


def check_online_params(est):
    """Validate the online constructor parameters (at partial_fit time)."""
    from ._validation import check_int, check_real

    if est.online_mode not in ONLINE_MODES:
        raise ValueError(f"online_mode must be one of {list(ONLINE_MODES)}. Got {est.online_mode!r}.")
    decay = check_real("learning_decay", est.learning_decay, 0.0)
    if not 0.5 < decay <= 1.0:
        raise ValueError(f"learning_decay must be in (0.5, 1] for stepwise EM to converge. Got {est.learning_decay!r}.")
    check_real("learning_offset", est.learning_offset, 0.0)
    if est.batches_per_pass is not None:
        check_int("batches_per_pass", est.batches_per_pass, 1)
    elif est.online_mode == "exact":
        raise ValueError(
            "online_mode='exact' needs batches_per_pass (the number of partial_fit calls that make one pass "
            "over the data). Got None."
        )


def step_size(t, decay, offset):
    """``rho_t = (t + offset) ** -decay``, capped at 1 (``t`` = batches
    already absorbed, so the first update after initialization has ``t = 1``)."""
    base = float(t + offset)
    return 1.0 if base <= 1.0 else base ** -float(decay)


def recenter(stats: SuffStats, new_shift, structure) -> SuffStats:
    """The same statistics, shifted at ``new_shift`` instead of ``stats.shift``.

    With ``e_k = c_k - c'_k`` and ``p_k = c_k + s1_k / n_k`` (the weighted mean),
    ``sum r (x - c')(x - c')^T = sum r (x - c)(x - c)^T + n_k [(p - c')(p - c')^T - (p - c)(p - c)^T]``;
    the bracket is the structure's scatter of the K points ``p_k`` with weights ``n_k``,
    so this holds for any structure whose scatter is a weighted sum over rows.
    """
    c = np.asarray(stats.shift, dtype=np.float64)
    c_new = np.asarray(new_shift, dtype=np.float64)
    if c.shape != c_new.shape:
        raise ValueError(f"new_shift has shape {c_new.shape}; the statistics have shift shape {c.shape}.")
    nk = stats.nk
    safe = np.where(nk > 0, nk, 1.0)
    p = c + np.where((nk > 0)[:, None], stats.s1 / safe[:, None], 0.0)
    resp = np.diag(nk)
    s2 = stats.s2 + (
        np.asarray(structure.scatter(p, resp, c_new), dtype=np.float64)
        - np.asarray(structure.scatter(p, resp, c), dtype=np.float64)
    )
    s1 = stats.s1 + nk[:, None] * (c - c_new)
    return SuffStats(nk=nk, s1=s1, s2=s2, shift=np.asarray(new_shift), loglik=stats.loglik, sum_w=stats.sum_w)


def stats_of_params(params: GaussianParams, structure, reg_covar, weight=1.0) -> SuffStats:
    """Statistics (per unit weight, times ``weight``) whose M-step gives back
    ``params``: used to continue ``partial_fit`` from a fitted or loaded model.

    Each component becomes 2D pseudo-points ``mu_k +- sqrt(D) a_j`` (columns of
    a square root of ``Sigma_k - reg_covar I``) of total weight ``pi_k``; the
    structure's own ``scatter`` turns them into its statistic.
    """
    means = np.asarray(params.means, dtype=np.float64)
    K, D = means.shape
    cov = np.asarray(structure.full_covariances(np.asarray(params.covariances, dtype=np.float64), K, D))
    pts = np.empty((K * 2 * D, D))
    resp = np.zeros((K * 2 * D, K))
    nk = np.asarray(params.weights, dtype=np.float64) * weight
    for k in range(K):
        vals, vecs = np.linalg.eigh(cov[k] - reg_covar * np.eye(D))
        root = vecs * np.sqrt(np.clip(vals, 0.0, None))
        block = slice(k * 2 * D, (k + 1) * 2 * D)
        pts[block] = means[k] + np.sqrt(D) * np.concatenate([root.T, -root.T])
        resp[block, k] = nk[k] / (2 * D)
    s2 = np.asarray(structure.scatter(pts, resp, means), dtype=np.float64)
    return SuffStats(nk=nk, s1=np.zeros((K, D)), s2=s2, shift=np.asarray(params.means), loglik=0.0, sum_w=float(weight))


@dataclass
class OnlineState:
    """Mutable bookkeeping of partial_fit, kept on the estimator as ``_online``."""

    mode: str
    params: GaussianParams  # the parameters the next batch's E-step uses
    stats: SuffStats | None = None  # running (stepwise) or accumulated (exact) statistics
    t: int = 0  # batches absorbed (stepwise) / batches in the current pass (exact)
    passes: int = 0
    history: list = field(default_factory=list)


def absorb_batch(state, batch, est, *, m_step, bound, first, scale=None, recenter=None, stepwise_bound=None):
    """One ``partial_fit`` batch of online EM (either mode; module docstring),
    shared by the estimators: ``state`` (an :class:`OnlineState`) is updated
    in place, and ``(params, n_iter, converged, lower_bound)`` returned.

    Parameters
    ----------
    state : OnlineState
        Its ``params`` gave the batch's E-step.
    batch : statistics
        The batch's additive statistics (``scaled``, ``+``, ``loglik``, ``sum_w``).
    est : estimator
        Gives ``online_mode``, ``learning_decay``, ``learning_offset``,
        ``batches_per_pass``, ``tol`` and the previous ``lower_bound_``.
    m_step : callable ``stats -> params``
        The estimator's M-step (EM, or the variational update).
    bound : callable ``(stats, params) -> float``
        The bound of statistics under new parameters (EM: the mean
        log-likelihood ``loglik / sum_w``).
    first : bool
        Whether this batch started the model (exact mode then reports
        ``-inf`` until its first pass ends).
    scale : float, optional
        Stepwise factor of the batch statistics (default ``1 / sum_w``: per
        row statistics, ``S <- (1 - rho) S + rho s(batch) / |batch|``).
    recenter : callable ``(S, shift) -> S``, optional
        Moves the running statistics to the batch's shift before averaging
        (Gaussian statistics, :func:`recenter`); None: none needed.
    stepwise_bound : callable ``(S, s, params) -> (lower_bound, history entry)``, optional
        Stepwise mode's report, from the running ``S`` and the scaled batch
        ``s``. Default: ``(bound(S, params), s.loglik)``, the running bound
        and the batch's per-row log-likelihood (``s`` holds per-row
        statistics with the default ``scale``).
    """
    if est.online_mode == "stepwise":
        s = batch.scaled(1.0 / batch.sum_w if scale is None else scale)
        if state.stats is None:
            S = s
        else:
            rho = step_size(state.t, est.learning_decay, est.learning_offset)
            prev = state.stats if recenter is None else recenter(state.stats, s.shift)
            S = prev.scaled(1.0 - rho) + s.scaled(rho)
        params = m_step(S)
        state.stats, state.t = S, state.t + 1
        if stepwise_bound is None:
            lower_bound, entry = bound(S, params), s.loglik
        else:
            lower_bound, entry = stepwise_bound(S, s, params)
        state.history.append(entry)
        n_iter, converged = state.t, False
    else:
        state.stats = batch if state.stats is None else state.stats + batch
        state.t += 1
        params = state.params
        lower_bound = -math.inf if first else getattr(est, "lower_bound_", -math.inf)
        converged = False
        if state.t >= est.batches_per_pass:
            acc = state.stats
            params = m_step(acc)
            previous = state.history[-1] if state.history else -math.inf
            lower_bound = bound(acc, params)
            state.history.append(lower_bound)
            converged = abs(lower_bound - previous) < est.tol
            state.stats, state.t, state.passes = None, 0, state.passes + 1
        n_iter = state.passes
    state.params = params
    return params, n_iter, converged, lower_bound


def mean_loglik(stats, params=None):
    """EM's bound for :func:`absorb_batch`: the mean log-likelihood per unit
    of weight, ``loglik / sum_w``, of batch or running statistics."""
    return stats.loglik / stats.sum_w


#: Model-file arrays of the running statistics (see :func:`state_for_file`).
STATE_ARRAYS = ("online_nk", "online_s1", "online_s2", "online_shift")


def state_for_file(model):
    """The running state of ``partial_fit`` as a JSON-able dict and arrays for
    a model file, or ``(None, {})`` when there is none to keep (never called,
    or stale since ``fit``/``set_params``). The parameters the next batch
    uses are the fitted ones, and the history is ``lower_bounds_``; what is
    left is the step counter, the pass count and the statistics."""
    state = getattr(model, "_online", None)
    if state is None or state.mode != model.online_mode or state.params.means is not model.means_:
        return None, {}
    info = {"mode": state.mode, "t": int(state.t), "passes": int(state.passes)}
    arrays = {}
    if state.stats is not None:
        st = state.stats
        info.update(loglik=float(st.loglik), sum_w=float(st.sum_w), n0=float(getattr(st, "n0", 0.0)))
        arrays = dict(zip(STATE_ARRAYS, (st.nk, st.s1, st.s2, st.shift)))
    return info, {k: np.asarray(v) for k, v in arrays.items()}


def state_from_file(info, arrays, model, structure):
    """Rebuild the :class:`OnlineState` written by :func:`state_for_file` on
    a loaded ``model``; raises ValueError for anything inconsistent."""
    from .core import em

    if not isinstance(info, dict):
        raise ValueError(f"the online state must be an object. Got {info!r:.80}.")
    if info.get("mode") != model.online_mode:
        raise ValueError(f"the online state's mode {info.get('mode')!r:.40} is not online_mode "
                         f"{model.online_mode!r}.")
    t, passes = info.get("t"), info.get("passes")
    for name, v in (("t", t), ("passes", passes)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"the online state's {name} must be an integer >= 0. Got {v!r:.40}.")
    present = [k for k in STATE_ARRAYS if k in arrays]
    if present and len(present) != len(STATE_ARRAYS):
        raise ValueError(f"the online state has arrays {present} but needs all of {list(STATE_ARRAYS)}.")
    exact = model.online_mode == "exact"
    if exact and (t >= model.batches_per_pass or (t > 0) != bool(present)):
        raise ValueError(f"the online state has t={t} batches into a pass of {model.batches_per_pass} "
                         f"{'with' if present else 'without'} statistics.")
    if not exact and (t < 1 or not present):
        raise ValueError(f"a stepwise online state needs t >= 1 and statistics. Got t={t}.")
    params = model._params()
    stats = None
    if present:
        scalars = {k: info.get(k) for k in ("loglik", "sum_w", "n0")}
        for k, v in scalars.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ValueError(f"the online state's {k} must be a finite number. Got {v!r:.40}.")
        if scalars["sum_w"] <= 0 or scalars["n0"] < 0:
            raise ValueError("the online state's sum_w must be > 0 and n0 >= 0.")
        probe = em.e_step(np.asarray(model.means_[:1]), None, params, structure)  # shapes of the statistics
        nk, s1, s2, shift = (arrays[k] for k in STATE_ARRAYS)
        for k, a, ref in zip(STATE_ARRAYS, (nk, s1, s2, shift), (probe.nk, probe.s1, probe.s2, probe.shift)):
            if a.shape != np.shape(ref):
                raise ValueError(f"{k} has shape {a.shape}; expected {np.shape(ref)}.")
        if np.any(nk < 0):
            raise ValueError("online_nk must be >= 0.")
        if exact and not np.array_equal(shift, model.means_):
            raise ValueError("online_shift of a pass in progress must equal the means it was taken at.")
        extra = {"n0": float(scalars["n0"])} if scalars["n0"] else {}
        stats = SuffStats(nk=nk.astype(np.float64), s1=s1.astype(np.float64), s2=s2.astype(np.float64),
                          shift=shift.astype(model.means_.dtype), loglik=float(scalars["loglik"]),
                          sum_w=float(scalars["sum_w"]), **extra)
    history = model.lower_bounds_
    return OnlineState(mode=model.online_mode, params=params, stats=stats, t=t, passes=passes, history=history)


__all__ = [
    "ONLINE_MODES", "OnlineState", "check_online_params", "recenter", "state_for_file", "state_from_file",
    "stats_of_params", "step_size",
]
