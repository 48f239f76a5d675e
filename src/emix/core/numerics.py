"""Small numerical building blocks shared by all families."""

from __future__ import annotations

import numpy as np


def logsumexp(a: np.ndarray, axis: int = 1) -> np.ndarray:
    """``log(sum(exp(a), axis))`` without overflow; rows of all ``-inf`` give ``-inf``.

    Uses the max-shift identity ``log sum exp(a) = m + log sum exp(a - m)``.
    """
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0).astype(a.dtype, copy=False)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))
    out += m
    return np.squeeze(out, axis=axis)


def eps_nk(dtype) -> float:
    """The ``10 * eps`` added to every component's effective size (as scikit-learn)."""
    return 10.0 * np.finfo(dtype).eps


LOG_2PI = float(np.log(2.0 * np.pi))


def normalize_log(lp: np.ndarray):
    """Row-normalize log-probabilities in place.

    Returns ``(log_norm, resp)`` where ``log_norm = logsumexp(lp, axis=1)`` and
    ``resp = exp(lp - log_norm)``; ``lp`` is overwritten by ``resp``. One
    exponential per entry. Rows of all ``-inf`` give ``-inf`` and zeros.
    """
    m = np.max(lp, axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0).astype(lp.dtype, copy=False)
    lp -= m
    np.exp(lp, out=lp)
    s = np.sum(lp, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        lp /= s
        norm = np.log(s)
    norm += m
    np.nan_to_num(lp, copy=False, nan=0.0)
    return norm[:, 0], lp


def normalize_log_T(lpT: np.ndarray):
    """:func:`normalize_log` for the transposed (n_components, n) layout, in
    which the reductions over components are fast elementwise passes.

    Returns ``(log_norm of shape (n,), resp of shape (K, n))``; ``lpT`` is
    overwritten by the responsibilities.
    """
    m = np.max(lpT, axis=0)
    m = np.where(np.isfinite(m), m, 0.0).astype(lpT.dtype, copy=False)
    lpT -= m
    np.exp(lpT, out=lpT)
    s = np.sum(lpT, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lpT /= s
        norm = np.log(s)
    norm += m
    np.nan_to_num(lpT, copy=False, nan=0.0)
    return norm, lpT
