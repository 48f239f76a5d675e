"""Diagonal covariance: each component has its own axis-aligned variances
(mclust's VVI)."""

from __future__ import annotations

import numpy as np

from ...core.numerics import LOG_2PI
from ._common import NotPositiveDefinite, center_reference, check_positive


def _diag_log_prob(X, means, prec):
    """log N(x | mu_k, diag(1/prec_k)) for prec of shape (K, D)."""
    g = center_reference(means)
    Xc = X - g
    M = means - g
    # sum_d prec_kd (x_d - m_kd)^2 expanded around g (two GEMMs)
    maha = (Xc * Xc) @ prec.T
    maha -= 2.0 * (Xc @ (M * prec).T)
    maha += np.sum(M * M * prec, axis=1)
    np.maximum(maha, 0.0, out=maha)
    log_det = 0.5 * np.sum(np.log(prec), axis=1)
    return (log_det - 0.5 * X.shape[1] * LOG_2PI) - 0.5 * maha


def _diag_scatter(X, resp, shift):
    K = shift.shape[0]
    out = np.empty((K, X.shape[1]))
    for k in range(K):
        Z = X - shift[k]
        np.square(Z, out=Z)
        out[k] = resp[:, k] @ Z
    return out


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
