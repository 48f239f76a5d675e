"""Spherical covariance: each component has one variance (mclust's VII)."""

from __future__ import annotations

import numpy as np

from ...backends import _xp
from ._common import NotPositiveDefinite, check_positive
from .diag import Diag, _diag_log_prob, _diag_scatter, _fused


class Spherical(Diag):
    """Shares Diag's precision conversions, scatter and sampler (a spherical
    variance broadcasts like a diagonal)."""

    name = "spherical"
    #: runs on PyTorch/CuPy arrays too (see emix.backends._xp)
    array_api = True

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
    def log_prob(X, means, prec_chol, xp=np):
        prec = xp.broadcast_to((prec_chol * prec_chol)[:, None], means.shape)
        return _diag_log_prob(X, means, prec, xp)

    @staticmethod
    def scatter(X, resp, shift, xp=np):
        return _diag_scatter(X, resp, shift, xp)

    @staticmethod
    def suff_stats(X, sample_weight, params, xp=np):
        pc = params.precisions_cholesky
        prec = xp.broadcast_to((pc * pc)[:, None], params.means.shape)
        return _fused(X, sample_weight, params, prec, xp)

    @staticmethod
    def covariances(s2, nk, delta, reg_covar, dtype, xp=np):
        # scikit-learn's spherical variance: the mean of the diagonal variances
        if xp is not np:
            return xp.astype(xp.mean(s2 / nk[:, None] - delta * delta, axis=1), dtype) + reg_covar
        cov = (s2 / nk[:, None] - delta * delta).mean(axis=1)
        return cov.astype(dtype) + np.asarray(reg_covar, dtype=dtype)

    @staticmethod
    def prec_chol_from_cov(cov, xp=np):
        bad = _xp.flatnonzero(xp, ~(cov > 0.0))
        if len(bad):
            raise NotPositiveDefinite(int(bad[0]))
        return 1.0 / xp.sqrt(cov)

    @staticmethod
    def full_covariances(cov, K, D):
        return cov[:, None, None] * np.eye(D, dtype=cov.dtype)[None]

    @staticmethod
    def check_precisions(prec, K, D):
        return check_positive(prec, "spherical", (K,))
