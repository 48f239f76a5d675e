"""Full covariance: each component has its own unconstrained covariance
(mclust's VVV)."""

from __future__ import annotations

import numpy as np

from ...backends import _xp
from ...core.numerics import LOG_2PI
from . import _gram
from ._common import (
    check_spd_stack,
    chol_precision_stack,
    cov_from_upper_prec_chol,
    upper_chol_of_precision,
)


class Full:
    name = "full"
    #: runs on PyTorch/CuPy arrays too (see emix.backends._xp)
    array_api = True

    @staticmethod
    def cov_shape(K, D):
        return (K, D, D)

    @staticmethod
    def n_cov_parameters(K, D):
        return K * D * (D + 1) // 2

    @staticmethod
    def temp_per_row(K, D):
        return D * (D + 1) // 2 + 2 * D + 6 * K

    @staticmethod
    def design_width(K, D):
        """Rows of the fused kernel's transposed design (``_gram.design_T``)."""
        return D * (D + 1) // 2 + D + 1

    @staticmethod
    def log_prob(X, means, prec_chol, xp=np):
        D = X.shape[1]
        maha = _gram.mahalanobis(X, means, prec_chol, xp)
        if xp is np:
            log_det = np.sum(np.log(np.diagonal(prec_chol, axis1=1, axis2=2)), axis=1, dtype=np.float64)
        else:
            log_det = xp.sum(xp.log(xp.astype(xp.linalg.diagonal(prec_chol), maha.dtype)), axis=1)
        out = (log_det - 0.5 * D * LOG_2PI) - 0.5 * maha
        return xp.astype(out, X.dtype, copy=False)

    @staticmethod
    def scatter(X, resp, shift, xp=np):
        return _gram.scatter_stack(X, resp, shift, xp)

    suff_stats = staticmethod(_gram.suff_stats_full)

    @staticmethod
    def covariances(s2, nk, delta, reg_covar, dtype, xp=np):
        cov = s2 / nk[:, None, None] - delta[:, :, None] * delta[:, None, :]
        D = cov.shape[1]
        if xp is not np:
            return xp.astype(cov, dtype) + reg_covar * _xp.eye(xp, D, dtype, _xp.device(cov))
        cov = cov.astype(dtype)
        cov.reshape(cov.shape[0], -1)[:, :: D + 1] += reg_covar
        return cov

    @staticmethod
    def prec_chol_from_cov(cov, xp=np):
        return chol_precision_stack(cov, xp)

    @staticmethod
    def prec_chol_from_precisions(prec, xp=np):
        if xp is not np:
            return upper_chol_of_precision(prec, xp)
        return np.stack([upper_chol_of_precision(p) for p in prec])

    @staticmethod
    def cov_from_prec_chol(prec_chol, xp=np):
        if xp is not np:
            return cov_from_upper_prec_chol(prec_chol, xp)
        return np.stack([cov_from_upper_prec_chol(u) for u in prec_chol])

    @staticmethod
    def precisions(prec_chol, xp=np):
        if xp is np and not isinstance(prec_chol, np.ndarray):  # called at the estimator edge
            xp = _xp.namespace(prec_chol)
        return prec_chol @ _xp.matrix_transpose(xp, prec_chol)

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
