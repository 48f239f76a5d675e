"""Tied covariance: all components share one covariance matrix (mclust's EEE)."""

from __future__ import annotations

import numpy as np

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
    def log_prob(X, means, prec_chol):
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
    def scatter(X, resp, shift):
        D = X.shape[1]
        out = np.zeros((D, D))
        for k in range(shift.shape[0]):
            Z = X - shift[k]
            out += (Z * resp[:, k : k + 1]).T @ Z
        return out

    @staticmethod
    def covariances(s2, nk, delta, reg_covar, dtype):
        cov = (s2 - (delta.T * nk) @ delta) / nk.sum()
        cov = cov.astype(dtype)
        cov.flat[:: cov.shape[0] + 1] += reg_covar
        return cov

    @staticmethod
    def prec_chol_from_cov(cov):
        return chol_precision_stack(cov[None])[0]

    @staticmethod
    def prec_chol_from_precisions(prec):
        return upper_chol_of_precision(prec)

    @staticmethod
    def cov_from_prec_chol(prec_chol):
        return cov_from_upper_prec_chol(prec_chol)

    @staticmethod
    def precisions(prec_chol):
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
