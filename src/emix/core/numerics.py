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
