"""Diagonal covariance: each component has its own axis-aligned variances
(mclust's VVI)."""

from __future__ import annotations

import numpy as np

from ...backends import _xp
from ...core.numerics import LOG_2PI, gaussian_resp_T, log_weight_consts, resp_from_logp_T
from ...core.types import SuffStats
from ._common import NotPositiveDefinite, centered, check_positive


_EPS = np.finfo(np.float64).eps
#: accepted rounding-error bound before falling back to direct differences
_TOL = 1e-9


def _diag_maha_T(Xc, X2, M, prec, xp=np):
    """(K, n) float64 ``sum_d prec_kd (xc_d - m_kd)^2`` expanded around the
    common center (two thin GEMMs), with a per-component rounding-error bound
    deciding where direct differences are needed instead."""
    maha = prec @ X2.T
    maha -= (2.0 * M * prec) @ Xc.T
    maha += xp.sum(M * M * prec, axis=1)[:, None]
    maha = _xp.clip_min_(xp, maha, 0.0)
    r2 = _xp.max_or(xp, xp.sum(X2, axis=1), 0.0)
    bound = 4.0 * _EPS * (r2 + _xp.rowdot(xp, M, M)) * xp.max(prec, axis=1)
    for k in _xp.flatnonzero(xp, bound > _TOL):
        Z = Xc - M[k]
        maha[k] = (Z * Z) @ prec[k]
    return maha


def _diag_log_prob(X, means, prec, xp=np):
    """log N(x | mu_k, diag(1/prec_k)) for prec of shape (K, D), in X's dtype."""
    c, g, Xc = centered(X, means, xp)
    prec = xp.astype(prec, Xc.dtype)
    maha = _diag_maha_T(Xc, Xc * Xc, c - g, prec, xp).T
    log_det = 0.5 * xp.sum(xp.log(prec), axis=1)
    out = (log_det - 0.5 * X.shape[1] * LOG_2PI) - 0.5 * maha
    return xp.astype(out, X.dtype, copy=False)


def _assemble(A, b, nk, c, g, Xc, RT, xp=np):
    """Per-dimension scatter around c_k from sums around g, with direct
    recomputation where cancellation would cost more than _TOL."""
    d = c - g
    S = A - 2.0 * b * d + nk[:, None] * d * d
    if xp is np:
        floor = np.maximum(S, np.finfo(np.float64).tiny)
    else:
        floor = xp.maximum(S, xp.full_like(S, float(xp.finfo(S.dtype).tiny)))
    bad = xp.any(A * 4.0 * _EPS > _TOL * floor, axis=1)
    for k in _xp.flatnonzero(xp, bad):
        Z = Xc - d[k]
        S[k] = RT[k] @ (Z * Z)
    return S


def _diag_scatter(X, resp, shift, xp=np):
    c, g, Xc = centered(X, shift, xp)
    RT = xp.astype(resp, Xc.dtype).T
    return _assemble(RT @ (Xc * Xc), RT @ Xc, xp.sum(RT, axis=1), c, g, Xc, RT, xp)


def _fused(X, sample_weight, params, prec, xp=np):
    """Fused E-step (diag and spherical): the centered data and its squares
    serve both the log densities and the statistics."""
    D = X.shape[1]
    if xp is np:
        return _fused_np(X, sample_weight, params, prec)
    c, g, Xc = centered(X, params.means, xp)
    X2 = Xc * Xc
    M = c - g
    prec = xp.astype(prec, Xc.dtype)
    maha = _diag_maha_T(Xc, X2, M, prec, xp)
    log_det = 0.5 * xp.sum(xp.log(prec), axis=1)
    RT, loglik, sum_w = gaussian_resp_T(maha, log_det, D, params.weights, sample_weight, xp)
    nk = xp.sum(RT, axis=1)
    b = RT @ Xc
    S = _assemble(RT @ X2, b, nk, c, g, Xc, RT, xp)
    return SuffStats(nk=nk, s1=b - nk[:, None] * M, s2=S, shift=params.means, loglik=loglik, sum_w=sum_w)


def _fused_np(X, sample_weight, params, prec):
    """numpy path of :func:`_fused` over the transposed (2D + 1, n) design
    ``[xc^2; xc; 1]`` (contiguous rows): one GEMM gives every component's
    Mahalanobis term, one GEMM ``R G^T`` all of ``(sum r xc^2, sum r xc, sum r)``.
    Same error bounds and direct fallbacks as the generic path."""
    n, D = X.shape
    c = np.asarray(params.means, dtype=np.float64)
    g = c.mean(axis=0)
    M = c - g
    prec = np.asarray(prec, dtype=np.float64)
    G = np.empty((2 * D + 1, n))
    XcT = G[D : 2 * D]
    np.subtract(X.T, g[:, None], out=XcT)
    np.multiply(XcT, XcT, out=G[:D])
    G[2 * D] = 1.0
    const = log_weight_consts(0.5 * np.sum(np.log(prec), axis=1), D, params.weights)
    # log densities const_k - maha_k / 2 straight from the GEMM
    coef = np.concatenate([prec.T, (-2.0 * M * prec).T, np.sum(M * M * prec, axis=1)[None, :]], axis=0)
    coef *= -0.5
    coef[-1] += const
    lp = coef.T @ G
    np.minimum(lp, const[:, None], out=lp)  # maha >= 0
    r2 = float(G[:D].sum(axis=0).max(initial=0.0))
    bound = 4.0 * _EPS * (r2 + np.einsum("kd,kd->k", M, M)) * prec.max(axis=1)
    for k in np.flatnonzero(bound > _TOL):
        Z = XcT - M[k][:, None]
        lp[k] = const[k] - 0.5 * (prec[k] @ (Z * Z))
    RT, loglik, sum_w = resp_from_logp_T(lp, sample_weight)
    H = RT @ G.T
    b = H[:, D : 2 * D]
    nk = H[:, 2 * D].copy()
    S = _assemble(H[:, :D], b, nk, c, g, XcT.T, RT)
    return SuffStats(nk=nk, s1=b - nk[:, None] * M, s2=S, shift=params.means, loglik=loglik, sum_w=sum_w)


class Diag:
    name = "diag"
    #: runs on PyTorch/CuPy arrays too (see emix.backends._xp)
    array_api = True

    @staticmethod
    def cov_shape(K, D):
        return (K, D)

    @staticmethod
    def n_cov_parameters(K, D):
        return K * D

    @staticmethod
    def temp_per_row(K, D):
        return 5 * K + 3 * D

    @staticmethod
    def design_width(K, D):
        """Rows of the fused kernel's design ``[xc^2; xc; 1]``."""
        return 2 * D + 1

    @staticmethod
    def log_prob(X, means, prec_chol, xp=np):
        return _diag_log_prob(X, means, prec_chol * prec_chol, xp)

    scatter = staticmethod(_diag_scatter)

    @staticmethod
    def suff_stats(X, sample_weight, params, xp=np):
        pc = params.precisions_cholesky
        return _fused(X, sample_weight, params, pc * pc, xp)

    @staticmethod
    def covariances(s2, nk, delta, reg_covar, dtype, xp=np):
        cov = s2 / nk[:, None] - delta * delta
        if xp is not np:
            return xp.astype(cov, dtype) + reg_covar
        return cov.astype(dtype) + np.asarray(reg_covar, dtype=dtype)

    @staticmethod
    def prec_chol_from_cov(cov, xp=np):
        bad = _xp.flatnonzero(xp, ~(xp.all(cov > 0.0, axis=1)))
        if len(bad):
            raise NotPositiveDefinite(int(bad[0]))
        return 1.0 / xp.sqrt(cov)

    @staticmethod
    def prec_chol_from_precisions(prec, xp=np):
        return xp.sqrt(prec)

    @staticmethod
    def cov_from_prec_chol(prec_chol, xp=np):
        return 1.0 / (prec_chol * prec_chol)

    @staticmethod
    def precisions(prec_chol, xp=np):
        return prec_chol**2

    @staticmethod
    def full_covariances(cov, K, D):
        return np.stack([np.diag(c) for c in cov])

    @staticmethod
    def check_precisions(prec, K, D):
        return check_positive(prec, "diag", (K, D))

    @staticmethod
    def draw(rng, means, cov, counts):
        D = means.shape[1]
        return np.vstack(
            [m + rng.standard_normal(size=(int(n), D)) * np.sqrt(c) for m, c, n in zip(means, cov, counts)]
        )
