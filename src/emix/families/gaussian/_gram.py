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
"""

from __future__ import annotations

import numpy as np

#: Largest accepted bound on the error of a Mahalanobis term / relative error
#: of a scatter matrix before falling back to the direct formula.
TOL = 1e-9
_EPS = np.finfo(np.float64).eps


def triu_pairs(D):
    return np.triu_indices(D)


def features(Xc, pairs=None):
    """(n, D(D+1)/2) products xc_i xc_j for i <= j (row-major upper triangle)."""
    n, D = Xc.shape
    F = np.empty((n, D * (D + 1) // 2), dtype=Xc.dtype)
    o = 0
    for i in range(D):
        np.multiply(Xc[:, i : i + 1], Xc[:, i:], out=F[:, o : o + D - i])
        o += D - i
    return F


def quad_coefficients(prec, m, pairs):
    """Coefficients so that ``f(xc) @ q + xc @ l + c = (xc - m)^T P (xc - m)``.

    prec: (K, D, D) precisions; m: (K, D) means minus the center.
    """
    i, j = pairs
    q = prec[:, i, j] * np.where(i == j, 1.0, 2.0)  # (K, P)
    Pm = np.einsum("kde,ke->kd", prec, m)
    l = -2.0 * Pm  # (K, D)
    c = np.einsum("kd,kd->k", m, Pm)
    return q.T, l.T, c


def _maha_from_features(F, Xc, X, prec, U, m, pairs):
    """(K, n) layout; see module docstring."""
    """Mahalanobis terms from the features, with the rounding-error bound
    ``eps * |xc|^2 * lambda_max(P_k) * sqrt(D)`` (``||P_k||_F >= lambda_max``,
    ``|xc|`` the largest row of this block) deciding, per component, whether
    the direct formula is needed instead."""
    r2 = float(np.max(np.einsum("nd,nd->n", Xc, Xc), initial=0.0))
    lam = np.sqrt(np.einsum("kde,kde->k", prec, prec))
    mk2 = np.einsum("kd,kd->k", m, m)
    bound = 2.0 * _EPS * (r2 + mk2) * lam * np.sqrt(Xc.shape[1] + 1.0)
    q, l, c = quad_coefficients(prec, m, pairs)
    maha = q.T @ F.T
    maha += l.T @ Xc.T
    maha += c[:, None]
    np.maximum(maha, 0.0, out=maha)
    for k in np.flatnonzero(bound > TOL):
        Y = (Xc - m[k]) @ U[k]
        maha[k] = np.einsum("nd,nd->n", Y, Y)
    return maha


def _prepare(X, means, prec_chol):
    c = means.astype(np.float64)
    g = c.mean(axis=0)
    Xc = X.astype(np.float64) - g
    U = prec_chol.astype(np.float64)
    prec = U @ U.transpose(0, 2, 1)
    return c, g, Xc, U, prec


def mahalanobis(X, means, prec_chol):
    """(n, K) float64 squared Mahalanobis distances (Gram path with fallback)."""
    c, g, Xc, U, prec = _prepare(X, means, prec_chol)
    pairs = triu_pairs(X.shape[1])
    return _maha_from_features(features(Xc), Xc, X, prec, U, c - g, pairs).T


def _assemble_scatter(A, b, nk, c, g, X, RT, pairs):
    """Scatter around c_k from sums around g, recomputing directly the
    components whose cancellation would cost more than TOL relative accuracy."""
    K, D = c.shape
    S = np.empty((K, D, D))
    i, j = pairs
    S[:, i, j] = A
    S[:, j, i] = A
    d = c - g
    bd = b[:, :, None] * d[:, None, :]
    S -= bd + bd.transpose(0, 2, 1)
    S += nk[:, None, None] * d[:, :, None] * d[:, None, :]
    removed = np.abs(A).max(axis=1, initial=0.0)
    kept = np.abs(np.diagonal(S, axis1=1, axis2=2)).max(axis=1, initial=0.0)
    bad = removed * _EPS * 2.0 * np.sqrt(D + 1.0) > TOL * np.maximum(kept, np.finfo(np.float64).tiny)
    for k in np.flatnonzero(bad):
        Z = X.astype(np.float64) - c[k]
        S[k] = (Z * RT[k][:, None]).T @ Z
    return S


def scatter_stack(X, resp, shift):
    """(K, D, D) float64 ``sum_n r_nk (x_n - c_k)(x_n - c_k)^T``."""
    c = shift.astype(np.float64)
    g = c.mean(axis=0)
    Xc = X.astype(np.float64) - g
    RT = resp.astype(np.float64).T
    pairs = triu_pairs(X.shape[1])
    return _assemble_scatter(RT @ features(Xc), RT @ Xc, RT.sum(axis=1), c, g, X, RT, pairs)


def suff_stats_full(X, sample_weight, params):
    """Fused E-step for full covariances: features built once per block serve
    both the Mahalanobis terms and the scatter matrices."""
    from ...core.numerics import LOG_2PI, normalize_log_T
    from ...core.types import SuffStats

    n, D = X.shape
    c, g, Xc, U, prec = _prepare(X, params.means, params.precisions_cholesky)
    pairs = triu_pairs(D)
    F = features(Xc)
    lp = _maha_from_features(F, Xc, X, prec, U, c - g, pairs)
    lp *= -0.5
    log_det = np.sum(np.log(np.diagonal(U, axis1=1, axis2=2)), axis=1)
    with np.errstate(divide="ignore"):
        lp += (log_det - 0.5 * D * LOG_2PI + np.log(params.weights.astype(np.float64)))[:, None]
    norm, RT = normalize_log_T(lp)
    if sample_weight is None:
        loglik, sum_w = float(norm.sum()), float(n)
    else:
        w = sample_weight.astype(np.float64)
        loglik, sum_w = float(norm @ w), float(w.sum())
        RT *= w
    nk = RT.sum(axis=1)
    b = RT @ Xc
    S = _assemble_scatter(RT @ F, b, nk, c, g, X, RT, pairs)
    s1 = b - nk[:, None] * (c - g)
    return SuffStats(nk=nk, s1=s1, s2=S, shift=params.means, loglik=loglik, sum_w=sum_w)
