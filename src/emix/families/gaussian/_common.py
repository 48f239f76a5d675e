"""Helpers shared by the Gaussian covariance structures."""

from __future__ import annotations

from typing import ClassVar, Protocol

import numpy as np
from scipy.linalg import solve_triangular

from ...backends import _xp


class NotPositiveDefinite(ArithmeticError):
    """Internal: the covariance of ``component`` is not positive definite."""

    def __init__(self, component):
        super().__init__(component)
        self.component = component


class CovarianceStructure(Protocol):
    """What every Gaussian covariance structure provides (all static, all pure).

    Shapes use K = n_components and D = n_features; ``cov`` and ``prec_chol``
    have the structure's own shapes, identical to scikit-learn's.
    """

    name: ClassVar[str]

    def cov_shape(K: int, D: int) -> tuple: ...
    def n_cov_parameters(K: int, D: int) -> int: ...
    def log_prob(X, means, prec_chol) -> np.ndarray:
        """(n, K) log N(x_n | mu_k, Sigma_k), in the dtype of X."""
    def scatter(X, resp, shift) -> np.ndarray:
        """The structure's second-order statistic around ``shift`` (float64)."""
    def covariances(s2, nk, delta, reg_covar, dtype) -> np.ndarray:
        """Covariances from the scatter, effective sizes and mean offsets."""
    def prec_chol_from_cov(cov) -> np.ndarray: ...
    def prec_chol_from_precisions(prec) -> np.ndarray: ...
    def cov_from_prec_chol(prec_chol) -> np.ndarray: ...
    def precisions(prec_chol) -> np.ndarray: ...
    def full_covariances(cov, K: int, D: int) -> np.ndarray: ...
    def check_precisions(prec, K: int, D: int) -> np.ndarray: ...
    def temp_per_row(K: int, D: int) -> int: ...
    def draw(rng, means, cov, counts) -> np.ndarray:
        """Draw counts[k] rows from component k (as scikit-learn does)."""


def centered(X, means, xp=np):
    """``(c, g, Xc)``: the means ``c`` and rows ``Xc = X - g`` in the
    accumulation dtype (float64 where the device has it), centered at
    ``g``, the average of the means, so a large common offset cancels before
    any expanded product."""
    f64 = _xp.accumulation_dtype(xp, X)
    c = xp.astype(means, f64)
    g = xp.mean(c, axis=0)
    return c, g, xp.astype(X, f64) - g


def center_reference(means, xp=np):
    """A point near all component means (their average), used to center X
    before expanded products so that a large common offset cancels exactly."""
    if xp is not np:
        f64 = _xp.accumulation_dtype(xp, means)
        return xp.astype(xp.mean(xp.astype(means, f64), axis=0), means.dtype)
    return np.mean(means, axis=0, dtype=np.float64).astype(means.dtype)


def chol_precision_stack(cov, xp=np):
    """Upper-triangular U_k with U_k U_k^T = inv(cov_k), for a (K, D, D) stack.

    Raises NotPositiveDefinite naming the first component that fails.
    """
    if xp is not np:  # one batched factorization on the device
        L, bad = _xp.cholesky_lower_stack(xp, cov)
        if bad is not None:
            raise NotPositiveDefinite(bad)
        eye = _xp.eye(xp, cov.shape[1], cov.dtype, _xp.device(cov))
        return _xp.matrix_transpose(xp, _xp.solve_triangular(xp, L, eye, lower=True))
    K, D, _ = cov.shape
    eye = np.eye(D, dtype=cov.dtype)
    out = np.empty_like(cov)
    for k in range(K):
        c = cov[k]
        if not np.all(np.isfinite(c)):
            raise NotPositiveDefinite(k)
        try:
            L = np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            raise NotPositiveDefinite(k) from None
        if not np.all(np.diag(L) > 0):
            raise NotPositiveDefinite(k)
        out[k] = solve_triangular(L, eye, lower=True, check_finite=False).T
    return out


def upper_chol_of_precision(prec, xp=np):
    """Upper-triangular U with U U^T = prec (scikit-learn's convention).

    With J the exchange matrix, J P J = L L^T gives P = (J L J)(J L J)^T.
    (Any leading axes are batch axes on the non-numpy path.)
    """
    if xp is not np:
        L = xp.linalg.cholesky(xp.flip(prec, axis=(-2, -1)))
        return xp.flip(L, axis=(-2, -1))
    flipped = prec[::-1, ::-1]
    L = np.linalg.cholesky(flipped)
    return np.ascontiguousarray(L[::-1, ::-1])


def cov_from_upper_prec_chol(U, xp=np):
    """inv(U U^T) = U^-T U^-1 for one upper-triangular factor (or, off
    numpy, a stack of them)."""
    if xp is not np:
        eye = _xp.eye(xp, U.shape[-1], U.dtype, _xp.device(U))
        Uinv = _xp.solve_triangular(xp, U, eye, lower=False)
        return _xp.matrix_transpose(xp, Uinv) @ Uinv
    D = U.shape[0]
    Uinv = solve_triangular(U, np.eye(D, dtype=U.dtype), lower=False)
    return Uinv.T @ Uinv


def check_spd_stack(prec, name, shape) -> np.ndarray:
    prec = np.asarray(prec)
    if prec.shape != shape:
        from ..._validation import sklearn_shape_message  # here: _validation imports the estimators' modules

        raise ValueError(
            f"{sklearn_shape_message(f'{name} precision', shape, prec.shape)} "
            f"precisions_init for covariance_type={name!r} must have shape "
            f"{shape}. Got shape {prec.shape}."
        )
    if not np.all(np.isfinite(prec)):
        raise ValueError("precisions_init contains NaN or infinite values.")
    stack = prec.reshape((-1,) + shape[-2:])
    for k, p in enumerate(stack):
        if not np.allclose(p, p.T):
            raise ValueError(
                f"precisions_init[{k}] for covariance_type={name!r} is not symmetric."
            )
        if np.any(np.linalg.eigvalsh(p) <= 0.0):
            raise ValueError(
                f"precisions_init[{k}] for covariance_type={name!r} is not "
                "positive definite (it has an eigenvalue <= 0)."
            )
    return prec


def check_positive(prec, name, shape) -> np.ndarray:
    prec = np.asarray(prec)
    if prec.shape != shape:
        from ..._validation import sklearn_shape_message  # here: _validation imports the estimators' modules

        raise ValueError(
            f"{sklearn_shape_message(f'{name} precision', shape, prec.shape)} "
            f"precisions_init for covariance_type={name!r} must have shape "
            f"{shape}. Got shape {prec.shape}."
        )
    if not np.all(np.isfinite(prec)) or np.any(prec <= 0.0):
        raise ValueError(
            f"precisions_init for covariance_type={name!r} must be finite and "
            "strictly positive."
        )
    return prec


def log_weights_dtype(x, dtype):
    return np.asarray(x, dtype=dtype)
