"""Full covariance: each component has its own unconstrained covariance
(mclust's VVV)."""

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


class Full:
    name = "full"

    @staticmethod
    def cov_shape(K, D):
        return (K, D, D)

    @staticmethod
    def n_cov_parameters(K, D):
        return K * D * (D + 1) // 2

    @staticmethod
    def temp_per_row(K, D):
        return 2 * K * D + 4 * K + D

    @staticmethod
    def log_prob(X, means, prec_chol):
        # y_nk = (x_n - mu_k) U_k for all k in one GEMM, after centering X at a
        # point near the means so a common offset cancels before the product.
        n, D = X.shape
        K = means.shape[0]
        g = center_reference(means)
        W = np.ascontiguousarray(prec_chol.transpose(1, 0, 2)).reshape(D, K * D)
        b = np.einsum("kd,kde->ke", means - g, prec_chol).reshape(K * D)
        Y = (X - g) @ W
        Y -= b
        np.square(Y, out=Y)
        maha = Y.reshape(n, K, D).sum(axis=2)
        log_det = np.sum(np.log(np.diagonal(prec_chol, axis1=1, axis2=2)), axis=1)
        return (log_det - 0.5 * D * LOG_2PI) - 0.5 * maha

    @staticmethod
    def scatter(X, resp, shift):
        K = shift.shape[0]
        D = X.shape[1]
        out = np.empty((K, D, D))
        for k in range(K):
            Z = X - shift[k]
            out[k] = (Z * resp[:, k : k + 1]).T @ Z
        return out

    @staticmethod
    def covariances(s2, nk, delta, reg_covar, dtype):
        cov = s2 / nk[:, None, None] - delta[:, :, None] * delta[:, None, :]
        D = cov.shape[1]
        cov = cov.astype(dtype)
        cov.reshape(cov.shape[0], -1)[:, :: D + 1] += reg_covar
        return cov

    @staticmethod
    def prec_chol_from_cov(cov):
        return chol_precision_stack(cov)

    @staticmethod
    def prec_chol_from_precisions(prec):
        return np.stack([upper_chol_of_precision(p) for p in prec])

    @staticmethod
    def cov_from_prec_chol(prec_chol):
        return np.stack([cov_from_upper_prec_chol(u) for u in prec_chol])

    @staticmethod
    def precisions(prec_chol):
        return prec_chol @ prec_chol.transpose(0, 2, 1)

    @staticmethod
    def full_covariances(cov, K, D):
        return cov

    @staticmethod
    def check_precisions(prec, K, D):
        return check_spd_stack(prec, "full", (K, D, D))

    @staticmethod
    def draw(rng, means, cov, counts):
        return np.vstack(
            [rng.multivariate_normal(m, c, int(n)) for m, c, n in zip(means, cov, counts)]
        )
