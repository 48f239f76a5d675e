"""SQUAREM acceleration of EM (Varadhan & Roland 2008, scheme S3).

Two EM steps ``theta1 = F(theta0)``, ``theta2 = F(theta1)`` give
``r = theta1 - theta0`` and ``v = theta2 - 2 theta1 + theta0``; the
extrapolation ``theta' = theta0 - 2 a r + a^2 v`` with ``a = -|r| / |v|``
(clamped to ``a <= -1``; ``a = -1`` is exactly ``theta2``) is followed by one
stabilizing EM step ``F(theta')``, which also projects ``theta'`` back onto the
model's constraint set (the M-step re-estimates constrained parameters from the
responsibilities). Monotonicity safeguard: the E-step of that stabilizing step
yields ``L(theta')``; if it is below ``L(theta1)`` (or ``theta'`` is not a valid
parameter), the cycle falls back to the plain EM iterate ``theta2``. So the
log-likelihood of the accepted points never decreases.

The parameter vector is unconstrained: mixing weights as log-weights
(centered logits), means as they are, covariances through their Cholesky
factor with a log diagonal (matrix-valued structures) or as log variances.
"""

from __future__ import annotations

import math

import numpy as np

from ..exceptions import DegenerateComponentError
from ..families.gaussian._common import NotPositiveDefinite
from .em import e_step, m_step
from .types import FitResult, GaussianParams


def _matrix_valued(structure) -> bool:
    shape = tuple(structure.cov_shape(2, 3))
    return shape[-2:] == (3, 3)


def to_vector(params: GaussianParams, matrix: bool) -> np.ndarray:
    w = params.weights.astype(np.float64)
    with np.errstate(divide="ignore"):
        logw = np.log(np.maximum(w, np.finfo(np.float64).tiny))
    logw -= logw.mean()
    cov = np.asarray(params.covariances, dtype=np.float64)
    if matrix:
        L = np.linalg.cholesky(cov)
        D = cov.shape[-1]
        il = np.tril_indices(D, -1)
        diag = np.log(np.diagonal(L, axis1=-2, axis2=-1))
        cov_vec = np.concatenate([diag.ravel(), L[..., il[0], il[1]].ravel()])
    else:
        cov_vec = np.log(cov).ravel()
    return np.concatenate([logw, params.means.astype(np.float64).ravel(), cov_vec])


def from_vector(theta, template: GaussianParams, structure, matrix: bool) -> GaussianParams:
    K, D = template.means.shape
    dtype = template.means.dtype
    logw = theta[:K]
    w = np.exp(logw - logw.max())
    w /= w.sum()
    means = theta[K : K + K * D].reshape(K, D)
    rest = theta[K + K * D :]
    cov_shape = np.shape(template.covariances)
    if matrix:
        lead = cov_shape[:-2]
        n_mat = int(np.prod(lead)) if lead else 1
        diag = np.exp(rest[: n_mat * D]).reshape(n_mat, D)
        il = np.tril_indices(D, -1)
        L = np.zeros((n_mat, D, D))
        L[:, np.arange(D), np.arange(D)] = diag
        L[:, il[0], il[1]] = rest[n_mat * D :].reshape(n_mat, -1)
        cov = (L @ L.transpose(0, 2, 1)).reshape(cov_shape)
    else:
        cov = np.exp(rest).reshape(cov_shape)
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(means)) and np.all(np.isfinite(cov))):
        raise NotPositiveDefinite(None)
    cov = cov.astype(dtype)
    prec_chol = structure.prec_chol_from_cov(cov)
    return GaussianParams(weights=w.astype(dtype), means=means.astype(dtype), covariances=cov,
                          precisions_cholesky=prec_chol)


def fit_squarem(reduce, params0, structure, *, tol, max_iter, reg_covar,
                lower_bound0=-math.inf, callback=None) -> FitResult:
    """EM accelerated by SQUAREM, with the same contract as :func:`emix.core.em.fit`.

    ``n_iter`` counts EM steps (E-step + M-step evaluations), the unit of cost,
    and ``history`` holds the mean log-likelihood of each accepted point.
    """
    dtype = params0.means.dtype
    matrix = _matrix_valued(structure)
    n_evals = 0
    history = []

    def F(p):
        nonlocal n_evals
        stats = reduce(lambda Xb, wb: e_step(Xb, wb, p, structure))
        n_evals += 1
        return m_step(stats, structure, reg_covar, dtype), stats.loglik / stats.sum_w

    def record(lb, prev):
        history.append(lb)
        if callback is not None:
            callback(n_evals, lb, lb - prev)

    # Convergence is judged per cycle: the gain from one cycle's start to the
    # next (2 or 3 EM steps) must fall below tol. Judging single steps would
    # stop early on a slow ridge, below where plain EM would stop.
    lb_cycle = lower_bound0
    lb_prev = lower_bound0
    p0 = params0
    while True:
        p1, L0 = F(p0)
        record(L0, lb_prev)
        if abs(L0 - lb_cycle) < tol:
            return FitResult(p1, n_evals, True, L0, tuple(history))
        lb_cycle = L0
        if n_evals >= max_iter:
            return FitResult(p1, n_evals, False, L0, tuple(history))
        p2, L1 = F(p1)
        record(L1, L0)
        lb_prev = L1
        if n_evals >= max_iter:
            return FitResult(p2, n_evals, False, L1, tuple(history))
        try:
            v0, v1, v2 = (to_vector(p, matrix) for p in (p0, p1, p2))
        except np.linalg.LinAlgError:
            p0 = p2
            continue
        r = v1 - v0
        v = v2 - 2.0 * v1 + v0
        nv = float(np.linalg.norm(v))
        alpha = -float(np.linalg.norm(r)) / nv if nv > 0 else -1.0
        if alpha >= -1.0:
            p0 = p2
            continue
        try:
            p_ext = from_vector(v0 - 2.0 * alpha * r + alpha * alpha * v, p0, structure, matrix)
            p3, L_ext = F(p_ext)
        except (NotPositiveDefinite, DegenerateComponentError, np.linalg.LinAlgError, FloatingPointError):
            p0 = p2
            continue
        if not np.isfinite(L_ext) or L_ext < L1:
            p0 = p2  # safeguard: keep the plain EM iterate
            if n_evals >= max_iter:
                return FitResult(p2, n_evals, False, L1, tuple(history))
            continue
        record(L_ext, L1)
        lb_prev = L_ext
        p0 = p3
        if n_evals >= max_iter:
            return FitResult(p3, n_evals, False, L_ext, tuple(history))
