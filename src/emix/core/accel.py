"""SQUAREM acceleration of EM (Varadhan & Roland 2008, scheme S3), with the
adaptive step bounds of the R package SQUAREM (Varadhan, ``squarem`` with its
default control: ``step.min0 = 1``, ``step.max0 = 1``, ``mstep = 4``).

References: R. Varadhan and C. Roland, "Simple and globally convergent methods
for accelerating the convergence of any EM algorithm", Scandinavian Journal of
Statistics 35 (2008) 335-353; R. Varadhan, SQUAREM: Squared Extrapolation
Methods for Accelerating EM-Like Monotone Algorithms, R package,
https://CRAN.R-project.org/package=SQUAREM. The algorithm below follows the
paper and the package's documented defaults; the code is our own.

One cycle from ``theta0``: two EM steps ``theta1 = F(theta0)``,
``theta2 = F(theta1)`` give ``r = theta1 - theta0`` and
``v = theta2 - 2 theta1 + theta0``. S3's step length ``a = |r| / |v|`` is
clipped to ``[step_min, step_max]`` and the extrapolation
``theta' = theta0 + 2 a r + a^2 v`` (``a = 1`` gives ``theta2`` exactly) is
followed by one stabilizing EM step ``F(theta')``, which also projects
``theta'`` back onto the model's constraint set (the M-step re-estimates the
constrained parameters from the responsibilities). When the clipped ``a`` is 1
(within 0.01) the cycle simply continues from ``theta2``: no extrapolation, no
extra evaluation, so a cycle is then exactly two plain EM steps.

Step bounds: ``step_max`` starts at 1; each time an accepted step reaches it,
it is multiplied by ``mstep = 4``; a rejected extrapolation divides it by 4
(never below its start). The first cycle is therefore plain EM, and the step
lengths grow geometrically only while the extrapolations keep paying off,
instead of being unbounded (or clamped to one fixed range) from the start.

Monotonicity safeguard: the E-step of the stabilizing step yields
``L(theta')``; if it is below ``L(theta1)``, not finite, or ``theta'`` is not a
valid parameter, the cycle falls back to the plain EM iterate ``theta2``. So
the log-likelihood of the accepted points never decreases (for exact EM
steps; with ``reg_covar > 0`` plain EM itself may lose O(reg_covar)).

Cost accounting: ``n_iter`` counts every E-step + M-step evaluation,
including the stabilizing step and rejected extrapolations.

Convergence test: the same as plain EM's, applied to SQUAREM's EM steps. In
the history (the mean log-likelihood of each accepted point, in order) every
consecutive pair except (``theta1``, ``theta'``) is a point and its EM image;
the fit stops as soon as such an EM step changes the mean log-likelihood by
less than ``tol``, which is plain EM's rule at that point.

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


STEP_MIN0 = 1.0
STEP_MAX0 = 1.0
MSTEP = 4.0


def fit_squarem(reduce, params0, structure, *, tol, max_iter, reg_covar,
                lower_bound0=-math.inf, callback=None) -> FitResult:
    """EM accelerated by SQUAREM, with the same contract as :func:`emix.core.em.fit`.

    ``n_iter`` counts EM-step evaluations (E-step + M-step), the unit of cost:
    every one, the stabilizing steps and rejected extrapolations included.
    ``history`` holds the mean log-likelihood of each accepted point, and
    ``callback(n_evals, lower_bound, change)`` is called for each of them.
    Stops when one EM step changes the mean log-likelihood by less than
    ``tol`` (plain EM's rule), see the module docstring.
    """
    dtype = params0.means.dtype
    matrix = _matrix_valued(structure)
    n_evals = 0
    history = []
    step_min, step_max = STEP_MIN0, STEP_MAX0

    def F(p):
        nonlocal n_evals
        n_evals += 1  # counted even if it fails half way: the work is spent
        stats = reduce(lambda Xb, wb: e_step(Xb, wb, p, structure))
        return m_step(stats, structure, reg_covar, dtype), stats.loglik / stats.sum_w

    def record(lb, prev):
        history.append(lb)
        if callback is not None:
            callback(n_evals, lb, lb - prev)

    lb_prev = lower_bound0  # L of the point whose EM image p0 is
    p0 = params0
    while True:
        # two plain EM steps; each one's gain is tested as plain EM tests it
        p1, L0 = F(p0)
        record(L0, lb_prev)
        if abs(L0 - lb_prev) < tol:
            return FitResult(p1, n_evals, True, L0, tuple(history))
        if n_evals >= max_iter:
            return FitResult(p1, n_evals, False, L0, tuple(history))
        p2, L1 = F(p1)
        record(L1, L0)
        lb_prev = L1
        if abs(L1 - L0) < tol:
            return FitResult(p2, n_evals, True, L1, tuple(history))
        if n_evals >= max_iter:
            return FitResult(p2, n_evals, False, L1, tuple(history))
        try:
            v0, v1, v2 = (to_vector(p, matrix) for p in (p0, p1, p2))
        except np.linalg.LinAlgError:
            p0 = p2
            continue
        r = v1 - v0
        v = v2 - 2.0 * v1 + v0
        nr, nv = float(np.linalg.norm(r)), float(np.linalg.norm(v))
        alpha = nr / nv if nv > 0 and np.isfinite(nr / nv) else step_max
        alpha = min(step_max, max(step_min, alpha))
        if abs(alpha - 1.0) <= 0.01:
            # theta' = theta2: continue from the plain EM iterate for free
            if alpha == step_max:
                step_max *= MSTEP
            p0 = p2
            continue
        try:
            p_ext = from_vector(v0 + 2.0 * alpha * r + alpha * alpha * v, p0, structure, matrix)
            p3, L_ext = F(p_ext)
            ok = bool(np.isfinite(L_ext)) and L_ext >= L1
        except (NotPositiveDefinite, DegenerateComponentError, np.linalg.LinAlgError, FloatingPointError):
            ok = False
        if not ok:
            # safeguard: keep the plain EM iterate, shrink the step bound
            step_max = max(STEP_MAX0, step_max / MSTEP)
            p0 = p2
            if n_evals >= max_iter:
                return FitResult(p2, n_evals, False, L1, tuple(history))
            continue
        if alpha == step_max:
            step_max *= MSTEP
        record(L_ext, L1)
        lb_prev = L_ext
        p0 = p3
        if n_evals >= max_iter:
            return FitResult(p3, n_evals, False, L_ext, tuple(history))
