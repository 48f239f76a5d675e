"""Diagonal covariance: each component has its own axis-aligned variances
(mclust's VVI)."""

from __future__ import annotations

import numpy as np

from ...core.numerics import LOG_2PI
from ._common import NotPositiveDefinite, check_positive


_EPS = np.finfo(np.float64).eps
#: accepted rounding-error bound before falling back to direct differences
_TOL = 1e-9


def _diag_maha_T(Xc, X2, M, prec):
    """(K, n) float64 ``sum_d prec_kd (xc_d - m_kd)^2`` expanded around the
    common center (two thin GEMMs), with a per-component rounding-error bound
    deciding where direct differences are needed instead."""
    maha = prec @ X2.T
    maha -= (2.0 * M * prec) @ Xc.T
    maha += np.sum(M * M * prec, axis=1)[:, None]
    np.maximum(maha, 0.0, out=maha)
    r2 = float(np.max(X2.sum(axis=1), initial=0.0))
    bound = 4.0 * _EPS * (r2 + np.einsum("kd,kd->k", M, M)) * prec.max(axis=1)
    for k in np.flatnonzero(bound > _TOL):
        Z = Xc - M[k]
        maha[k] = (Z * Z) @ prec[k]
    return maha


def _diag_log_prob(X, means, prec):
    """log N(x | mu_k, diag(1/prec_k)) for prec of shape (K, D), in X's dtype."""
    c = means.astype(np.float64)
    g = c.mean(axis=0)
    prec = prec.astype(np.float64)
    Xc = X.astype(np.float64) - g
    maha = _diag_maha_T(Xc, Xc * Xc, c - g, prec).T
    log_det = 0.5 * np.sum(np.log(prec), axis=1)
    out = (log_det - 0.5 * X.shape[1] * LOG_2PI) - 0.5 * maha
    return out.astype(X.dtype, copy=False)


def _assemble(A, b, nk, c, g, Xc, RT):
    """Per-dimension scatter around c_k from sums around g, with direct
    recomputation where cancellation would cost more than _TOL."""
    d = c - g
    S = A - 2.0 * b * d + nk[:, None] * d * d
    bad = np.any(A * 4.0 * _EPS > _TOL * np.maximum(S, np.finfo(np.float64).tiny), axis=1)
    for k in np.flatnonzero(bad):
        Z = Xc - d[k]
        S[k] = RT[k] @ (Z * Z)
    return S


def _diag_scatter(X, resp, shift):
    c = shift.astype(np.float64)
    g = c.mean(axis=0)
    Xc = X.astype(np.float64) - g
    RT = resp.astype(np.float64).T
    return _assemble(RT @ (Xc * Xc), RT @ Xc, RT.sum(axis=1), c, g, Xc, RT)


def _fused(X, sample_weight, params, prec):
    """Fused E-step (diag and spherical): the centered data and its squares
    serve both the log densities and the statistics."""
    from ...core.numerics import normalize_log_T
    from ...core.types import SuffStats

    n, D = X.shape
    c = params.means.astype(np.float64)
    g = c.mean(axis=0)
    Xc = X.astype(np.float64) - g
    X2 = Xc * Xc
    M = c - g
    prec = prec.astype(np.float64)
    lp = _diag_maha_T(Xc, X2, M, prec)
    lp *= -0.5
    with np.errstate(divide="ignore"):
        lp += (0.5 * np.sum(np.log(prec), axis=1) - 0.5 * D * LOG_2PI + np.log(params.weights.astype(np.float64)))[:, None]
    norm, RT = normalize_log_T(lp)
    if sample_weight is None:
        loglik, sum_w = float(norm.sum()), float(n)
    else:
        w = sample_weight.astype(np.float64)
        loglik, sum_w = float(norm @ w), float(w.sum())
        RT *= w
    nk = RT.sum(axis=1)
    b = RT @ Xc
    S = _assemble(RT @ X2, b, nk, c, g, Xc, RT)
    return SuffStats(nk=nk, s1=b - nk[:, None] * M, s2=S, shift=params.means, loglik=loglik, sum_w=sum_w)


class Diag:
    name = "diag"

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
    def log_prob(X, means, prec_chol):
        return _diag_log_prob(X, means, prec_chol * prec_chol)

    scatter = staticmethod(_diag_scatter)

    @staticmethod
    def suff_stats(X, sample_weight, params):
        pc = params.precisions_cholesky
        return _fused(X, sample_weight, params, pc * pc)

    @staticmethod
    def covariances(s2, nk, delta, reg_covar, dtype):
        cov = s2 / nk[:, None] - delta * delta
        return cov.astype(dtype) + np.asarray(reg_covar, dtype=dtype)

    @staticmethod
    def prec_chol_from_cov(cov):
        bad = np.flatnonzero(~(np.all(cov > 0.0, axis=1)))
        if bad.size:
            raise NotPositiveDefinite(int(bad[0]))
        return 1.0 / np.sqrt(cov)

    @staticmethod
    def prec_chol_from_precisions(prec):
        return np.sqrt(prec)

    @staticmethod
    def cov_from_prec_chol(prec_chol):
        return 1.0 / (prec_chol * prec_chol)

    @staticmethod
    def precisions(prec_chol):
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
