"""mclust's own M-step for EVE and VVE: Browne & McNicholas's MM iterations.

For the two models with a common orientation ``D`` and varying shapes,

    EVE: Sigma_k = lambda D A_k D^T,      VVE: Sigma_k = lambda_k D A_k D^T

(``A_k`` diagonal with ``|A_k| = 1``), the M-step has no closed form. emix's
own M-step (:func:`~emix.families.gaussian.mclust._eigen.common_orientation`)
maximizes ``Q`` by exact plane rotations. mclust (Scrucca et al. 2016; the
Fortran routines of ``meEVE``/``meVVE``/``mstepEVE``/``mstepVVE``, mclust
>= 5.4) uses instead the majorization-minimization (MM) algorithm of Browne &
McNicholas (2014, "Estimating common principal components in high
dimensions", ADAC 8, 217-226), with its own start, inner stopping rule and
carried state. ``init_params="mclust"`` reproduces ``mclustBIC``'s table, so
its EM (:func:`emix.core.mclust_hc.mclust_em`) runs this module's M-step for
EVE and VVE: the same iteration from the same start stops at the same point,
and the EM paths agree (up to rounding) instead of separating.

One M-step, given the scatter matrices ``W_k = sum_n z_nk (x_n - mu_k)(x_n -
mu_k)^T`` and sizes ``n_k``, the orientation ``D`` (columns) and shapes ``a_k``
(rows of ``shape``) carried from the previous M-step (``D = I``, ``a_k = 1``
at the first M-step of a fit, as ``meEVE`` starts), with ``omega_k`` the
largest eigenvalue of ``W_k``, repeats:

1. MM step 1 (on ``D^T``): ``F = sum_k diag(1/a_k) D^T (W_k - omega_k I)``;
   with the SVD ``F = P S R^T``, ``D <- R P^T``.
2. MM step 2 (on ``D``): ``F = sum_k W_k D (diag(1/a_k) - max_j(1/a_kj) I)``;
   with ``F = P S R^T``, ``D <- P R^T``.
3. Shapes given ``D``: ``b_k = diag(D^T W_k D)``; EVE ``a_k = b_k /
   prod(b_k)^(1/d)``; VVE ``c_k = b_k / n_k``, ``lambda_k = prod(c_k)^(1/d)``,
   ``a_k = c_k / lambda_k``.
4. Target ``t = sum_k sum_j b_kj / a_kj``; stop when ``|t - t_prev| / (1 +
   |t|) <= tol`` (``t_prev`` starts at ``FLMAX / 2``, so at least two
   iterations run) or after ``max_iter`` iterations.

Then EVE's volume is ``lambda = t / (d sum_k n_k)``. Both MM steps use the
shapes of the previous iteration (step 3 runs after both). mclust's
tolerances are ``emControl()``'s: ``tol[2] = sqrt(eps)``, ``itmax[2] =
.Machine$integer.max``. Its failures (NA in ``mclustBIC``): an eigenvalue of
some ``W_k`` below ``sqrt(eps)`` (an absolute bound, checked before the
iterations), a shape entry below ``sqrt(eps)`` and, for VVE, a volume below
``sqrt(eps)`` (checked at every iteration).

For VVE the two MM steps majorize ``sum_k tr(W_k D A_k^{-1} D^T)`` without the
volumes ``1/lambda_k`` that weigh its terms in ``-2 Q``: mclust's VVE M-step is
therefore not the conditional maximizer of ``Q`` in ``D``, which is why emix's
own VVE fits can be far from mclust's (and higher). This module reproduces
mclust's iteration as it is.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: mclust's ``emControl()$tol[2]``: the relative tolerance of the MM iterations.
MM_TOL = float(np.sqrt(np.finfo(np.float64).eps))
#: mclust's ``emControl()$itmax[2]`` (``.Machine$integer.max``).
MM_MAX_ITER = 2**31 - 1
_FLMAX = float(np.finfo(np.float64).max)
_RTEPS = float(np.sqrt(np.finfo(np.float64).eps))


class MMSingular(ValueError):
    """Where mclust's EVE/VVE M-step fails (``mclustBIC`` reports NA)."""


class MMResult(NamedTuple):
    """One MM M-step: ``cov`` (K, d, d) covariances, ``orientation`` ``D``
    (d, d, columns), ``shape`` (K, d) unit-determinant shapes, ``scale`` (K,)
    volumes (equal for EVE), ``n_iter`` inner iterations."""

    cov: np.ndarray
    orientation: np.ndarray
    shape: np.ndarray
    scale: np.ndarray
    n_iter: int


def initial_state(K, d):
    """``(D, shape)`` at the first M-step of a fit: ``I`` and ones, as
    mclust's ``meEVE``/``meVVE``/``mstepEVE``/``mstepVVE`` pass them."""
    return np.eye(d), np.ones((K, d))


def mm_m_step(W, nk, model, orientation, shape, tol=MM_TOL, max_iter=MM_MAX_ITER):
    """mclust's EVE or VVE covariance M-step (see the module notes).

    Parameters
    ----------
    W : ndarray (K, d, d)
        Scatter matrices around the new means (not divided by ``n_k``).
    nk : ndarray (K,)
        Component sizes ``sum_n z_nk``.
    model : {"EVE", "VVE"}
    orientation : ndarray (d, d)
        ``D`` entering the M-step (columns: the axes), from the previous
        M-step or :func:`initial_state`.
    shape : ndarray (K, d)
        Shapes ``a_k`` entering the M-step.
    tol, max_iter : float, int
        Inner stopping rule (mclust's defaults).

    Returns
    -------
    MMResult

    Raises
    ------
    MMSingular
        Where mclust's routine fails (see the module notes).
    """
    if model not in ("EVE", "VVE"):
        raise ValueError(f"model must be 'EVE' or 'VVE'; got {model!r}.")
    W = np.asarray(W, dtype=np.float64)
    nk = np.asarray(nk, dtype=np.float64)
    K, d, _ = W.shape
    D = np.array(orientation, dtype=np.float64)
    a = np.array(shape, dtype=np.float64)
    if D.shape != (d, d) or a.shape != (K, d) or nk.shape != (K,):
        raise ValueError(f"orientation must be ({d}, {d}), shape ({K}, {d}) and nk ({K},); "
                         f"got {D.shape}, {a.shape} and {nk.shape}.")
    ev = np.linalg.eigvalsh(W)
    if not np.all(np.isfinite(ev)) or ev.min() < _RTEPS:
        raise MMSingular("a scatter matrix has an eigenvalue below sqrt(eps)")
    # W_k - omega_k I (step 1) with omega_k the largest eigenvalue of W_k
    Wshift = W - ev[:, -1][:, None, None] * np.eye(d)
    eve = model == "EVE"
    prev, it = _FLMAX / 2, 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        while True:
            it += 1
            inv = 1.0 / a  # (K, d) shapes of the previous iteration
            # step 1: F = sum_k diag(1/a_k) D^T (W_k - omega_k I)
            F = np.einsum("kj,ij,kil->jl", inv, D, Wshift)
            P, _, Rt = np.linalg.svd(F)
            D = Rt.T @ P.T
            # step 2: F = sum_k W_k D (diag(1/a_k) - max(1/a_k) I)
            WD = W @ D  # (K, d, d)
            F = np.einsum("kij,kj->ij", WD, inv - inv.max(axis=1, keepdims=True))
            P, _, Rt = np.linalg.svd(F)
            D = P @ Rt
            # step 3: shapes given D
            b = np.einsum("ij,kil,lj->kj", D, W, D)  # diag(D^T W_k D)
            if eve:
                a = b / np.exp(np.log(b).sum(axis=1) / d)[:, None]
                lam = None
            else:
                c = b / nk[:, None]
                lam = np.exp(np.log(c).sum(axis=1) / d)
                a = c / lam[:, None]
            if not np.all(a >= _RTEPS) or (lam is not None and not np.all(lam >= _RTEPS)):
                raise MMSingular("a shape or volume fell below sqrt(eps)")
            trgt = float(np.sum(b / a))
            err = abs(trgt - prev) / (1.0 + abs(trgt))
            prev = trgt
            if not (err > tol and it < max_iter):
                break
    scale = np.full(K, trgt / (float(nk.sum()) * d)) if eve else lam
    cov = np.einsum("ij,kj,lj->kil", D, scale[:, None] * a, D)
    cov = 0.5 * (cov + cov.transpose(0, 2, 1))
    if not np.all(np.isfinite(cov)):
        raise MMSingular("the M-step produced non-finite covariances")
    return MMResult(cov=cov, orientation=D, shape=a, scale=scale, n_iter=it)


__all__ = ["MM_MAX_ITER", "MM_TOL", "MMResult", "MMSingular", "initial_state", "mm_m_step"]
