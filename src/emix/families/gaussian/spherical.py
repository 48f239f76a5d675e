"""Spherical covariance: each component has one variance (mclust's VII)."""

from __future__ import annotations

import numpy as np

from ._common import NotPositiveDefinite, check_positive
from .diag import _diag_log_prob, _diag_scatter, _fused


class Spherical:
    name = "spherical"

    @staticmethod
    def cov_shape(K, D):
        return (K,)

    @staticmethod
    def n_cov_parameters(K, D):
        return K

    @staticmethod
    def temp_per_row(K, D):
        return 5 * K + 3 * D

    @staticmethod
    def log_prob(X, means, prec_chol):
        prec = np.broadcast_to((prec_chol * prec_chol)[:, None], means.shape)
        return _diag_log_prob(X, means, prec)

    scatter = staticmethod(_diag_scatter)

    @staticmethod
    def suff_stats(X, sample_weight, params):
        pc = params.precisions_cholesky
        prec = np.broadcast_to((pc * pc)[:, None], params.means.shape)
        return _fused(X, sample_weight, params, prec)

    @staticmethod
    def covariances(s2, nk, delta, reg_covar, dtype):
        # scikit-learn's spherical variance: the mean of the diagonal variances
        cov = (s2 / nk[:, None] - delta * delta).mean(axis=1)
        return cov.astype(dtype) + np.asarray(reg_covar, dtype=dtype)

    @staticmethod
    def prec_chol_from_cov(cov):
        bad = np.flatnonzero(~(cov > 0.0))
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
        return cov[:, None, None] * np.eye(D, dtype=cov.dtype)[None]

    @staticmethod
    def check_precisions(prec, K, D):
        return check_positive(prec, "spherical", (K,))

    @staticmethod
    def draw(rng, means, cov, counts):
        D = means.shape[1]
        return np.vstack(
            [m + rng.standard_normal(size=(int(n), D)) * np.sqrt(c) for m, c, n in zip(means, cov, counts)]
        )
