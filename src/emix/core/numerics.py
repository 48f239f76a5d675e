"""Small numerical building blocks shared by all families."""

from __future__ import annotations

import numpy as np

from ..backends import _xp

# Every function takes the array namespace ``xp`` (numpy by default; see
# emix.backends._xp): numpy input runs the same numpy calls as always.


def logsumexp(a, axis: int = 1, xp=np):
    """``log(sum(exp(a), axis))`` without overflow; rows of all ``-inf`` give ``-inf``.

    Uses the max-shift identity ``log sum exp(a) = m + log sum exp(a - m)``.
    """
    m = xp.max(a, axis=axis, keepdims=True)
    m = xp.astype(xp.where(xp.isfinite(m), m, 0.0), a.dtype, copy=False)
    with _xp.errstate(xp, divide="ignore"):
        out = xp.log(xp.sum(xp.exp(a - m), axis=axis, keepdims=True))
    out += m
    return xp.squeeze(out, axis=axis)


def eps_nk(dtype, xp=np) -> float:
    """The ``10 * eps`` added to every component's effective size (as scikit-learn)."""
    return 10.0 * xp.finfo(dtype).eps


LOG_2PI = float(np.log(2.0 * np.pi))


def normalize_log(lp, xp=np):
    """Row-normalize log-probabilities in place.

    Returns ``(log_norm, resp)`` where ``log_norm = logsumexp(lp, axis=1)`` and
    ``resp = exp(lp - log_norm)``; ``lp`` is overwritten by ``resp``. One
    exponential per entry. Rows of all ``-inf`` give ``-inf`` and zeros.
    """
    m = xp.max(lp, axis=1, keepdims=True)
    m = xp.astype(xp.where(xp.isfinite(m), m, 0.0), lp.dtype, copy=False)
    lp -= m
    lp = _xp.exp_(xp, lp)
    s = xp.sum(lp, axis=1, keepdims=True)
    with _xp.errstate(xp, divide="ignore", invalid="ignore"):
        lp /= s
        norm = xp.log(s)
    norm += m
    lp = _xp.nan_to_zero_(xp, lp)
    return norm[:, 0], lp


def normalize_log_T(lpT, xp=np):
    """:func:`normalize_log` for the transposed (n_components, n) layout, in
    which the reductions over components are fast elementwise passes.

    Returns ``(log_norm of shape (n,), resp of shape (K, n))``; ``lpT`` is
    overwritten by the responsibilities.
    """
    m = xp.max(lpT, axis=0)
    m = xp.astype(xp.where(xp.isfinite(m), m, 0.0), lpT.dtype, copy=False)
    lpT -= m
    lpT = _xp.exp_(xp, lpT)
    s = xp.sum(lpT, axis=0)
    with _xp.errstate(xp, divide="ignore", invalid="ignore"):
        lpT /= s
        norm = xp.log(s)
    norm += m
    lpT = _xp.nan_to_zero_(xp, lpT)
    return norm, lpT


def gaussian_resp_T(maha, log_det, n_features, weights, sample_weight, xp=np):
    """Responsibilities from (K, n) squared Mahalanobis terms, in place.

    ``log pi_k + log N = log pi_k + log_det_k - D/2 log(2 pi) - maha/2`` is
    normalized over components (one exponential per entry). Returns ``(RT,
    loglik, sum_w)``: the (K, n) responsibilities times the sample weights, the
    weighted sum of ``log p(x_n)`` and the sum of the weights.
    """
    n = maha.shape[1]
    maha *= -0.5
    with _xp.errstate(xp, divide="ignore"):
        maha += (log_det - 0.5 * n_features * LOG_2PI + xp.log(xp.astype(weights, maha.dtype)))[:, None]
    norm, RT = normalize_log_T(maha, xp)
    if sample_weight is None:
        return RT, float(xp.sum(norm)), float(n)
    w = xp.astype(sample_weight, RT.dtype)
    RT *= w
    return RT, float(norm @ w), float(xp.sum(w))


def log_weight_consts(log_det, n_features, weights):
    """``log pi_k + log_det_k - D/2 log(2 pi)`` in float64: the constant part
    of each component's log density (``-inf`` for a zero weight)."""
    with np.errstate(divide="ignore"):
        logw = np.log(np.asarray(weights, dtype=np.float64))
    return logw + log_det - 0.5 * n_features * LOG_2PI


def resp_from_logp_T(lp, sample_weight=None):
    """numpy responsibilities from (K, n) float64 log ``pi_k N(x_n | k)``, in place.

    The numpy-only counterpart of :func:`gaussian_resp_T` for kernels that put
    the constants into their GEMM already: five passes over the (K, n) block
    (max, subtract, exp, sum, scale by ``w_n / s_n``) instead of ten. Rows whose
    densities are all zero get zero responsibilities and ``log p = -inf``, as
    :func:`normalize_log_T`. Returns ``(RT, loglik, sum_w)``.
    """
    n = lp.shape[1]
    m = lp.max(axis=0)
    finite = np.isfinite(m)
    if not finite.all():
        m[~finite] = 0.0
    lp -= m
    np.exp(lp, out=lp)
    s = lp.sum(axis=0)
    with np.errstate(divide="ignore"):
        norm = np.log(s)
        scale = 1.0 / s
    norm += m
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        scale *= w
    if not np.isfinite(scale).all():
        scale[~np.isfinite(scale)] = 0.0  # s == 0: no component gives this row any density
    lp *= scale
    if sample_weight is None:
        return lp, float(norm.sum()), float(n)
    return lp, float(norm @ w), float(w.sum())
