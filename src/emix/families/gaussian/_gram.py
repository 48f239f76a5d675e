"""Quadratic-feature ("Gram") kernels for full and tied covariances.

With ``xc = x - g`` for a common center ``g`` and the upper-triangle products
``f(xc) = (xc_i xc_j)_{i<=j}``, every component's Mahalanobis term and every
component's scatter are linear in ``f``:

- E-step: ``(x - mu_k)^T P_k (x - mu_k) = f(xc) . q_k + xc . l_k + c_k``, one
  GEMM ``F @ Q`` for all components (``N K D^2 / 2`` multiply-adds instead of the
  ``N K D^2`` of per-component triangular products);
- M-step: ``sum_n r_nk f(xc_n)`` for all components is one GEMM ``R^T F``.

Both are expansions around ``g``, so they lose accuracy when a component is far
from ``g`` relative to its own spread (relative error about ``eps * kappa`` with
``kappa`` the squared Mahalanobis distance involved). Every call bounds that
error and recomputes the affected components with the direct, centered formula
(``x - mu_k`` explicitly) when the bound exceeds ``TOL``. Features are built in
float64 whatever the data dtype (float64 accumulation), then results are cast.

All functions take the array namespace ``xp`` (numpy by default; PyTorch/CuPy
through :mod:`emix.backends._xp`, whose helpers run the original numpy calls
on the numpy path).
"""

from __future__ import annotations

import math

import numpy as np

from ...backends import _xp
from ...core.numerics import gaussian_resp_T, log_weight_consts, resp_from_logp_T
from ...core.types import SuffStats
from ._common import centered

#: Largest accepted bound on the error of a Mahalanobis term / relative error
#: of a scatter matrix before falling back to the direct formula.
TOL = 1e-9
_EPS = np.finfo(np.float64).eps


def triu_pairs(D, xp=np, device=None):
    return _xp.triu_indices(xp, D, device)


def features(Xc, pairs=None, xp=np):
    """(n, D(D+1)/2) products xc_i xc_j for i <= j (row-major upper triangle)."""
    n, D = Xc.shape
    if xp is not np:
        return xp.concat([Xc[:, i : i + 1] * Xc[:, i:] for i in range(D)], axis=1)
    F = np.empty((n, D * (D + 1) // 2), dtype=Xc.dtype)
    o = 0
    for i in range(D):
        np.multiply(Xc[:, i : i + 1], Xc[:, i:], out=F[:, o : o + D - i])
        o += D - i
    return F


def quad_coefficients(prec, m, pairs, xp=np):
    """Coefficients so that ``f(xc) @ q + xc @ l + c = (xc - m)^T P (xc - m)``.

    prec: (K, D, D) precisions; m: (K, D) means minus the center.
    """
    i, j = pairs
    if xp is np:
        q = prec[:, i, j] * np.where(i == j, 1.0, 2.0)  # (K, P)
    else:
        q = prec[:, i, j] * xp.where(i == j, 1.0, 2.0)
    Pm = _xp.matvec_stack(xp, prec, m)
    l = -2.0 * Pm  # (K, D)
    c = _xp.rowdot(xp, m, Pm)
    return q.T, l.T, c


def _maha_from_features(F, Xc, X, prec, U, m, pairs, xp=np):
    """(K, n) layout; see module docstring."""
    """Mahalanobis terms from the features, with the rounding-error bound
    ``eps * |xc|^2 * lambda_max(P_k) * sqrt(D)`` (``||P_k||_F >= lambda_max``,
    ``|xc|`` the largest row of this block) deciding, per component, whether
    the direct formula is needed instead."""
    r2 = _xp.max_or(xp, _xp.rowdot(xp, Xc, Xc), 0.0)
    lam = _xp.frobenius_norms(xp, prec)
    mk2 = _xp.rowdot(xp, m, m)
    bound = 2.0 * _EPS * (r2 + mk2) * lam * np.sqrt(Xc.shape[1] + 1.0)
    q, l, c = quad_coefficients(prec, m, pairs, xp)
    maha = q.T @ F.T
    maha += l.T @ Xc.T
    maha += c[:, None]
    maha = _xp.clip_min_(xp, maha, 0.0)
    for k in _xp.flatnonzero(xp, bound > TOL):
        Y = (Xc - m[k]) @ U[k]
        maha[k] = _xp.rowdot(xp, Y, Y)
    return maha


def _prepare(X, means, prec_chol, xp=np):
    c, g, Xc = centered(X, means, xp)
    U = xp.astype(prec_chol, Xc.dtype)
    prec = U @ _xp.matrix_transpose(xp, U)
    return c, g, Xc, U, prec


def design_T(X, g):
    """The (P + D + 1, n) float64 design matrix of a block, transposed: the
    ``P = D(D+1)/2`` products ``xc_i xc_j`` (i <= j), the ``D`` centered
    coordinates ``xc = x - g`` and a row of ones.

    With this layout every row of the design is written contiguously (the
    row-major ``(n, P)`` features were written in strided column slices, the
    slowest part of a block for moderate D), and one GEMM with the (K, P + D + 1)
    coefficients gives all Mahalanobis terms (quadratic, linear and constant
    parts at once), one GEMM ``R G^T`` all three sums ``(sum r f, sum r xc,
    sum r)``.
    """
    n, D = X.shape
    P = D * (D + 1) // 2
    G = np.empty((P + D + 1, n))
    XcT = G[P : P + D]
    np.subtract(X.T, g[:, None], out=XcT)
    o = 0
    for i in range(D):
        np.multiply(XcT[i], XcT[i:], out=G[o : o + D - i])
        o += D - i
    G[P + D] = 1.0
    return G


def _maha_T(G, D, prec, U, m, pairs, const=None):
    """(K, n) Mahalanobis terms from the design (numpy path of
    :func:`_maha_from_features`, same error bound and fallback).

    With ``const`` (K,) given, returns ``const_k - maha / 2`` instead (the log
    densities), the scaling and constants folded into the one GEMM.
    """
    P = D * (D + 1) // 2
    XcT = G[P : P + D]
    r2 = float(np.einsum("ij,ij->j", XcT, XcT).max(initial=0.0))
    lam = np.sqrt(np.einsum("kij,kij->k", prec, prec))
    mk2 = np.einsum("kd,kd->k", m, m)
    bound = 2.0 * _EPS * (r2 + mk2) * lam * np.sqrt(D + 1.0)
    q, l, c = quad_coefficients(prec, m, pairs)
    coef = np.concatenate([q, l, c[None, :]], axis=0)  # (P + D + 1, K)
    if const is not None:
        coef *= -0.5
        coef[-1] += const
    out = coef.T @ G
    if const is None:
        np.maximum(out, 0.0, out=out)
    else:  # maha >= 0
        np.minimum(out, const[:, None], out=out)
    for k in np.flatnonzero(bound > TOL):
        YT = U[k].T @ (XcT - m[k][:, None])
        out[k] = np.einsum("ij,ij->j", YT, YT)
        if const is not None:
            out[k] *= -0.5
            out[k] += const[k]
    return out


def _prepare_np(X, means, prec_chol):
    c = np.asarray(means, dtype=np.float64)
    g = c.mean(axis=0)
    U = np.asarray(prec_chol, dtype=np.float64)
    prec = U @ U.transpose(0, 2, 1)
    return c, g, U, prec


def mahalanobis(X, means, prec_chol, xp=np):
    """(n, K) float64 squared Mahalanobis distances (Gram path with fallback)."""
    D = X.shape[1]
    if xp is np:
        c, g, U, prec = _prepare_np(X, means, prec_chol)
        return _maha_T(design_T(X, g), D, prec, U, c - g, np.triu_indices(D)).T
    c, g, Xc, U, prec = _prepare(X, means, prec_chol, xp)
    pairs = triu_pairs(X.shape[1], xp, _xp.device(Xc))
    return _maha_from_features(features(Xc, xp=xp), Xc, X, prec, U, c - g, pairs, xp).T


def _assemble_scatter(A, b, nk, c, g, X, RT, pairs, xp=np):
    """Scatter around c_k from sums around g, recomputing directly the
    components whose cancellation would cost more than TOL relative accuracy."""
    K, D = c.shape
    if xp is np:
        S = np.empty((K, D, D))
    else:
        S = xp.empty((K, D, D), dtype=A.dtype, device=_xp.device(A))
    i, j = pairs
    S[:, i, j] = A
    S[:, j, i] = A
    d = c - g
    bd = b[:, :, None] * d[:, None, :]
    S -= bd + _xp.matrix_transpose(xp, bd)
    S += nk[:, None, None] * d[:, :, None] * d[:, None, :]
    if xp is np:
        removed = np.abs(A).max(axis=1, initial=0.0)
        kept = np.abs(np.diagonal(S, axis1=1, axis2=2)).max(axis=1, initial=0.0)
        tiny = np.finfo(np.float64).tiny
    else:
        removed = xp.max(xp.abs(A), axis=1)
        kept = xp.max(xp.abs(xp.linalg.diagonal(S)), axis=1)
        tiny = float(xp.finfo(A.dtype).tiny)
    bad = removed * _EPS * 2.0 * math.sqrt(D + 1.0) > TOL * xp.maximum(kept, xp.full_like(kept, tiny))
    for k in _xp.flatnonzero(xp, bad):
        Z = xp.astype(X, A.dtype) - c[k]
        S[k] = (Z * RT[k][:, None]).T @ Z
    return S


def scatter_stack(X, resp, shift, xp=np):
    """(K, D, D) float64 ``sum_n r_nk (x_n - c_k)(x_n - c_k)^T``."""
    c, g, Xc = centered(X, shift, xp)
    RT = xp.astype(resp, Xc.dtype).T
    pairs = triu_pairs(X.shape[1], xp, _xp.device(Xc))
    return _assemble_scatter(
        RT @ features(Xc, xp=xp), RT @ Xc, xp.sum(RT, axis=1), c, g, X, RT, pairs, xp
    )


def suff_stats_full(X, sample_weight, params, xp=np):
    """Fused E-step for full covariances: features built once per block serve
    both the Mahalanobis terms and the scatter matrices."""
    D = X.shape[1]
    if xp is np:
        return _suff_stats_full_np(X, sample_weight, params)
    c, g, Xc, U, prec = _prepare(X, params.means, params.precisions_cholesky, xp)
    pairs = triu_pairs(D, xp, _xp.device(Xc))
    F = features(Xc, xp=xp)
    maha = _maha_from_features(F, Xc, X, prec, U, c - g, pairs, xp)
    log_det = xp.sum(xp.log(_xp.diagonal(xp, U)), axis=1)
    RT, loglik, sum_w = gaussian_resp_T(maha, log_det, D, params.weights, sample_weight, xp)
    nk = xp.sum(RT, axis=1)
    b = RT @ Xc
    S = _assemble_scatter(RT @ F, b, nk, c, g, X, RT, pairs, xp)
    s1 = b - nk[:, None] * (c - g)
    return SuffStats(nk=nk, s1=s1, s2=S, shift=params.means, loglik=loglik, sum_w=sum_w)


def _suff_stats_full_np(X, sample_weight, params):
    """numpy path of :func:`suff_stats_full` over the transposed design
    (:func:`design_T`): two GEMMs per block, plus the responsibilities."""
    D = X.shape[1]
    P = D * (D + 1) // 2
    c, g, U, prec = _prepare_np(X, params.means, params.precisions_cholesky)
    pairs = np.triu_indices(D)
    G = design_T(X, g)
    m = c - g
    log_det = np.log(np.diagonal(U, axis1=1, axis2=2)).sum(axis=1)
    lp = _maha_T(G, D, prec, U, m, pairs, log_weight_consts(log_det, D, params.weights))
    RT, loglik, sum_w = resp_from_logp_T(lp, sample_weight)
    H = RT @ G.T  # (K, P + D + 1): sum r f, sum r xc, sum r
    b = H[:, P : P + D]
    nk = H[:, P + D].copy()
    S = _assemble_scatter(H[:, :P], b, nk, c, g, X, RT, pairs)
    return SuffStats(nk=nk, s1=b - nk[:, None] * m, s2=S, shift=params.means, loglik=loglik, sum_w=sum_w)
