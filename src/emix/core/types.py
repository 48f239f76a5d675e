"""Frozen value types passed between the pure EM functions."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np


@dataclass(frozen=True)
class GaussianParams:
    """Parameters of a Gaussian mixture.

    Shapes follow scikit-learn's ``GaussianMixture`` for the covariance
    structure in use (see :mod:`emix.families.gaussian`).

    Attributes
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray
    precisions_cholesky : ndarray
        ``P_k = U_k U_k^T`` with ``U_k`` upper triangular (full, tied), or
        ``1 / sqrt(var)`` (diag, spherical).
    noise_weight : float or None
        ``pi_0``, the weight of a uniform noise component (Banfield & Raftery
        1993), or None (no noise component: the plain mixture). With noise the
        Gaussian ``weights`` sum to ``1 - pi_0``.
    log_volume : float or None
        ``log V`` of the noise component's region (its density is ``1 / V``);
        set exactly when ``noise_weight`` is.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    noise_weight: float | None = None
    log_volume: float | None = None

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    def replace(self, **changes) -> "GaussianParams":
        return replace(self, **changes)


@dataclass(frozen=True)
class SuffStats:
    """Additive sufficient statistics of one E-step over some rows.

    With responsibilities ``r_nk`` (times the sample weight ``w_n``) and a shift
    ``c_k`` (the component means the E-step used):

    - ``nk[k] = sum_n r_nk``
    - ``s1[k] = sum_n r_nk (x_n - c_k)``
    - ``s2``: ``sum_n r_nk (x_n - c_k)(x_n - c_k)^T`` reduced to what the
      covariance structure needs (full matrices, their sum over k, or diagonals)
    - ``loglik = sum_n w_n log p(x_n)``, ``sum_w = sum_n w_n``
    - ``n0 = sum_n w_n r_n0``: the responsibility sum of the uniform noise
      component (0 when the model has none)

    Statistics of disjoint row sets computed with the same shift add with ``+``,
    so one M-step on the sum equals the M-step on all rows at once. All fields
    are kept in float64 whatever the data dtype (accumulation precision).
    """

    nk: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    shift: np.ndarray
    loglik: float
    sum_w: float
    n0: float = 0.0

    def __add__(self, other: "SuffStats") -> "SuffStats":
        if not isinstance(other, SuffStats):
            return NotImplemented
        if other.shift is not self.shift and not np.array_equal(other.shift, self.shift):
            raise ValueError(
                "Cannot add sufficient statistics computed with different shifts "
                "(they come from different parameters)."
            )
        return SuffStats(
            nk=self.nk + other.nk,
            s1=self.s1 + other.s1,
            s2=self.s2 + other.s2,
            shift=self.shift,
            loglik=self.loglik + other.loglik,
            sum_w=self.sum_w + other.sum_w,
            n0=self.n0 + other.n0,
        )

    def __radd__(self, other):
        if other == 0:  # lets built-in sum() work
            return self
        return NotImplemented

    def scaled(self, factor: float) -> "SuffStats":
        """Statistics multiplied by ``factor`` (for stepwise online EM)."""
        return SuffStats(
            nk=self.nk * factor,
            s1=self.s1 * factor,
            s2=self.s2 * factor,
            shift=self.shift,
            loglik=self.loglik * factor,
            sum_w=self.sum_w * factor,
            n0=self.n0 * factor,
        )


@dataclass(frozen=True)
class FitResult:
    """Outcome of one EM run (one restart)."""

    params: GaussianParams
    n_iter: int
    converged: bool
    lower_bound: float
    history: tuple = field(default_factory=tuple)


__all__ = ["GaussianParams", "SuffStats", "FitResult", "fields"]
