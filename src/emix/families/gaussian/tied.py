"""Tied covariance: all components share one covariance matrix (mclust's EEE)."""

from __future__ import annotations

import numpy as np

from ...backends import _xp
from ...core.numerics import LOG_2PI
from ._common import (
    center_reference,
    check_spd_stack,
    chol_precision_stack,
    cov_from_upper_prec_chol,
    upper_chol_of_precision,
)


class Tied:
    name = "tied"
    #: runs on PyTorch/CuPy arrays too (see emix.backends._xp)
    array_api = True

    @staticmethod
    def cov_shape(K, D):
        return (D, D)

    @staticmethod
    def n_cov_parameters(K, D):
        return D * (D + 1) // 2

    @staticmethod
    def temp_per_row(K, D):
        return K * D + 4 * K + 2 * D

    @staticmethod
    def log_prob(X, means, prec_chol, xp=np):
        if xp is not np:
            g = center_reference(means, xp)
            Y = (X - g) @ prec_chol
            B = (means - g) @ prec_chol
            # |y - b_k|^2 = |y|^2 - 2 y.b_k + |b_k|^2 would cancel; keep differences
            maha = xp.stack([_xp.rowdot(xp, Y - B[k], Y - B[k]) for k in range(B.shape[0])], axis=1)
            log_det = xp.sum(xp.log(xp.linalg.diagonal(prec_chol)))
            return (log_det - 0.5 * X.shape[1] * LOG_2PI) - 0.5 * maha
        g = center_reference(means)
        Y = (X - g) @ prec_chol  # (n, D)
        B = (means - g) @ prec_chol  # (K, D)
        n, D = X.shape
        maha = np.empty((n, means.shape[0]), dtype=Y.dtype)
        for k in range(B.shape[0]):
            d = Y - B[k]
            np.einsum("nd,nd->n", d, d, out=maha[:, k])
        log_det = np.sum(np.log(np.diagonal(prec_chol)))
        return (log_det - 0.5 * D * LOG_2PI) - 0.5 * maha

    @staticmethod
    def scatter(X, resp, shift, xp=np):
        D = X.shape[1]
        if xp is not np:
            f64 = _xp.accumulation_dtype(xp, X)
            out = xp.zeros((D, D), dtype=f64, device=_xp.device(X))
            for k in range(shift.shape[0]):
                Z = X - shift[k]
                out += xp.astype((Z * resp[:, k : k + 1]).T @ Z, f64)
            return out
        out = np.zeros((D, D))
        for k in range(shift.shape[0]):
            Z = X - shift[k]
            out += (Z * resp[:, k : k + 1]).T @ Z
        return out

    @staticmethod
    def covariances(s2, nk, delta, reg_covar, dtype, xp=np):
        # symmetrized before the cast: the two triangles of a float32 scatter
        # can differ by an ulp, which numpy's sampler rejects as not PSD
        if xp is not np:
            cov = (s2 - (delta.T * nk) @ delta) / xp.sum(nk)
            cov = xp.astype(0.5 * (cov + cov.T), dtype)
            return cov + reg_covar * _xp.eye(xp, cov.shape[0], dtype, _xp.device(cov))
        cov = (s2 - (delta.T * nk) @ delta) / nk.sum()
        cov = (0.5 * (cov + cov.T)).astype(dtype)
        cov.flat[:: cov.shape[0] + 1] += reg_covar
        return cov

    @staticmethod
    def prec_chol_from_cov(cov, xp=np):
        return chol_precision_stack(cov[None], xp)[0]

    @staticmethod
    def prec_chol_from_precisions(prec, xp=np):
        return upper_chol_of_precision(prec, xp)

    @staticmethod
    def cov_from_prec_chol(prec_chol, xp=np):
        return cov_from_upper_prec_chol(prec_chol, xp)

    @staticmethod
    def precisions(prec_chol, xp=np):
        return prec_chol @ prec_chol.T

    @staticmethod
    def full_covariances(cov, K, D):
        return np.broadcast_to(cov, (K,) + cov.shape).copy()

    @staticmethod
    def check_precisions(prec, K, D):
        return check_spd_stack(prec, "tied", (D, D))

    @staticmethod
    def draw(rng, means, cov, counts):
        return np.vstack([rng.multivariate_normal(m, cov, int(n)) for m, n in zip(means, counts)])
