"""Shared pieces of the 14 eigen-decomposed covariance models.

Every model writes the component covariance as

    Sigma_k = lambda_k D_k A_k D_k^T

(volume ``lambda_k = |Sigma_k|^(1/d)``, shape ``A_k`` diagonal with
``|A_k| = 1``, orientation ``D_k`` orthogonal) and constrains each factor to be
Equal across components, Variable, or the Identity (Banfield & Raftery 1993;
Celeux & Govaert 1995). The three letters of a model name give volume, shape,
orientation in that order, as in mclust.

The M-step of every model maximizes the covariance part of the expected
complete-data log-likelihood,

    Q(Sigma) = -1/2 sum_k [ n_k log|Sigma_k| + tr(W_k Sigma_k^{-1}) ],

where ``n_k`` is the effective size and ``W_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T``
the scatter around the new mean. With emix's shifted statistics,
``W_k = S2_k - n_k delta_k delta_k^T`` (``delta_k = s1_k / n_k``).

Regularization: ``reg_covar`` enters once, as ``W_k + n_k reg_covar I``
before the structured estimate. For the models whose estimate is linear in
``W`` (EII, VII, EEI, VVI, EEE, VVV) this is exactly "add ``reg_covar`` to the
covariance diagonal", as scikit-learn does; for the others it keeps every
``W_k`` non-singular, so the eigen-decompositions and determinants below are
always defined.

Storage: every mclust name stores ``covariances_`` as a ``(K, D, D)`` stack
(mclust's ``parameters$variance$sigma`` is likewise ``d x d x G`` for every
model) and ``precisions_cholesky_`` as upper-triangular ``(K, D, D)`` factors
``U_k`` with ``U_k U_k^T = Sigma_k^{-1}``, as for ``covariance_type='full'``.
The diagonal models (``**I``) evaluate densities with the diagonal kernel
(``O(n K D)``) and accept only diagonal ``precisions_init``.
"""

from __future__ import annotations

import functools

import numpy as np

from .._common import NotPositiveDefinite, check_spd_stack
from ..diag import Diag, _diag_log_prob, _diag_scatter
from ..full import Full

#: Relative tolerance of the inner loops of the iterative M-steps (VEI, VEE,
#: EVE, VVE, VEV); mclust's default ``emControl()$tol[2]`` is the same value.
INNER_TOL = float(np.sqrt(np.finfo(np.float64).eps))
#: Maximum number of inner iterations per M-step.
INNER_MAX_ITER = 500
#: Conditional-maximization cycles of an EVE/VVE M-step inside EM, where it
#: starts at the previous orientation (see :func:`common_orientation`).
WARM_CYCLES = 1


# ---------------------------------------------------------------- utilities
def within_full(s2, nk, delta, reg_covar):
    """``W_k + n_k reg I``: (K, D, D) scatter around the new means, float64."""
    W = s2 - nk[:, None, None] * (delta[:, :, None] * delta[:, None, :])
    W = 0.5 * (W + W.transpose(0, 2, 1))
    D = W.shape[1]
    W.reshape(W.shape[0], -1)[:, :: D + 1] += (nk * reg_covar)[:, None]
    return W


def within_diag(s2, nk, delta, reg_covar):
    """Diagonal of ``W_k + n_k reg I``: (K, D), float64."""
    return s2 - nk[:, None] * delta * delta + (nk * reg_covar)[:, None]


def geometric_mean(a, axis=-1):
    """``prod(a)^(1/d)`` along ``axis`` computed in log space."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(np.mean(np.log(a), axis=axis))


def unit_det(a, axis=-1):
    """``a / prod(a)^(1/d)``: the shape (determinant one) of positive ``a``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return a / np.expand_dims(geometric_mean(a, axis), axis)


def eigh_desc(W):
    """Eigenvalues (descending) and eigenvectors (as columns) of a stack."""
    vals, vecs = np.linalg.eigh(W)
    return vals[..., ::-1], vecs[..., ::-1]


def compose(D, a):
    """``D diag(a) D^T`` for stacks (``D``: (..., d, d), ``a``: (..., d))."""
    return np.einsum("...ij,...j,...kj->...ik", D, a, D)


def diag_stack(v):
    """(K, D) variances -> (K, D, D) diagonal covariance matrices."""
    K, D = v.shape
    out = np.zeros((K, D, D), dtype=v.dtype)
    out.reshape(K, -1)[:, :: D + 1] = v
    return out


def relative_change(old, new):
    return abs(new - old) / max(abs(new), 1e-300)


@functools.cache
def round_robin(d):
    """The ``d (d - 1) / 2`` column pairs ``i < j`` in rounds of disjoint
    pairs (the circle method of round-robin tournaments: ``d - 1`` rounds of
    ``d / 2`` pairs for even ``d``, ``d`` rounds of ``(d - 1) / 2`` for odd):
    a tuple of (p, 2) index arrays, one row ``(i, j)`` per pair."""
    m = d + (d % 2)
    ring = list(range(m))
    rounds = []
    for _ in range(m - 1):
        pairs = sorted((min(a, b), max(a, b)) for a, b in
                       ((ring[t], ring[m - 1 - t]) for t in range(m // 2)) if max(a, b) < d)
        rounds.append(np.array(pairs, dtype=np.intp).reshape(-1, 2))
        ring = [ring[0], ring[-1]] + ring[1:-1]
    return tuple(rounds)


# -(alpha, beta) of orientation_sweep from G[p, a, b, c] = y_pb^T M_{pair[p, a]} y_pc
# flattened to 8 entries (a, b, c): alpha = (G_0,00 - G_0,11 + G_1,11 - G_1,00) / 2,
# beta = G_0,01 - G_1,01.
_NEG_ALPHA_BETA = np.zeros((8, 2))
_NEG_ALPHA_BETA[[0, 3, 7, 4], 0] = [-0.5, 0.5, -0.5, 0.5]
_NEG_ALPHA_BETA[[1, 5], 1] = [-1.0, 1.0]
# (c, s) -> the 2 x 2 rotation [[c, s], [-s, c]] of the two rows of a pair
_ROTATION = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [-1.0, 0.0]]])


def orientation_sweep(W, D, inv_shape):
    """One sweep of exact plane rotations for a common orientation ``D``.

    Decreases ``f(D) = sum_k tr(W_k D N_k D^T) = sum_m d_m^T M_m d_m`` over
    orthogonal ``D`` (columns ``d_m``) with ``N_k = diag(inv_shape[k])`` and
    ``M_m = sum_k N_km W_k``: the part of ``-2 Q`` that depends on ``D`` for
    EVE and VVE. Rotating columns ``i, j`` of ``D`` by an angle ``t``
    (``d_i <- c d_i + s d_j``, ``d_j <- c d_j - s d_i``) changes ``f`` by
    ``alpha cos 2t + beta sin 2t`` with ``alpha = (G_i,ii - G_i,jj + G_j,jj
    - G_j,ii) / 2`` and ``beta = G_i,ij - G_j,ij`` (``G_m = D^T M_m D``), so
    the best rotation in each plane has the closed form
    ``2t = atan2(-beta, -alpha)`` (the plane-rotation idea of Flury &
    Gautschi's 1986 common principal components algorithm). Each rotation
    minimizes ``f`` exactly along its plane (``t = 0`` included): ``f`` never
    increases.

    ``f`` is a sum of one term per column, so rotations in disjoint planes do
    not interact: each round of :func:`round_robin` rotates its pairs at
    once, in a few array operations (``d - 1`` or ``d`` rounds a sweep, not
    ``d (d - 1) / 2`` Python steps). Browne & McNicholas (2014) use a
    majorize-minimize step here instead.
    """
    K, d, _ = W.shape
    M = (inv_shape.T @ W.reshape(K, d * d)).reshape(d, d, d)
    E = np.array(D.T)  # rows: the columns of D
    for pairs in round_robin(d):
        Y = E[pairs]  # (p, 2, d): the two columns of each pair
        G = (Y[:, None] @ M[pairs]) @ Y[:, None].transpose(0, 1, 3, 2)  # (p, 2, 2, 2)
        ab = G.reshape(-1, 8) @ _NEG_ALPHA_BETA  # -alpha, -beta
        t = 0.5 * np.arctan2(ab[:, 1], ab[:, 0])  # atan2(0, 0) = 0: no rotation
        E[pairs] = (np.multiply.outer(np.cos(t), _ROTATION[0])
                    + np.multiply.outer(np.sin(t), _ROTATION[1])) @ Y
    return E.T


def orientation_of(cov):
    """The common orientation ``D`` of a (K, d, d) stack ``Sigma_k = D C_k
    D^T`` (``C_k`` diagonal), or None where there is none to read.

    The eigenvectors of ``S = sum_k k Sigma_k / tr(Sigma_k)``, which ``D``
    diagonalizes; they are ``D`` up to column order and signs (which leave
    every ``D C_k D^T`` unchanged) unless ``S`` has an eigenvalue of several
    columns that some ``C_k`` does not share, so the result is checked: it
    must diagonalize every ``Sigma_k`` (off-diagonal entries below
    ``sqrt(eps)`` of ``cov``'s dtype times the largest diagonal one: float32
    covariances hold ``D`` only to float32 rounding).
    """
    tol = float(np.sqrt(np.finfo(cov.dtype).eps)) if np.issubdtype(cov.dtype, np.floating) else INNER_TOL
    cov = np.asarray(cov, dtype=np.float64)
    K, d, _ = cov.shape
    tr = np.trace(cov, axis1=1, axis2=2)
    if not (np.all(np.isfinite(cov)) and np.all(tr > 0.0)):
        return None
    S = np.tensordot(np.arange(1.0, K + 1.0) / tr, cov, axes=1)
    D = np.linalg.eigh(0.5 * (S + S.T))[1]
    R = D.T @ cov @ D
    diag = np.diagonal(R, axis1=1, axis2=2)
    off = np.abs(R).max(axis=(1, 2)) if d == 1 else np.abs(R - diag[:, :, None] * np.eye(d)).max(axis=(1, 2))
    if np.all(off <= max(tol, INNER_TOL) * np.abs(diag).max(axis=1)):
        return D
    return None


def common_orientation(W, nk, conditional, previous=None):
    """The M-step of a model with a common orientation (EVE, VVE):
    ``Sigma_k = D diag(C_k) D^T`` maximizing ``Q`` by cyclic conditional
    maximization (Browne & McNicholas 2014).

    ``conditional(B) -> C`` gives the (K, d) diagonal variances that maximize
    ``Q`` for a fixed ``D``, from ``B_k = diag(D^T W_k D)``. Then
    ``-2 Q = sum_k [n_k sum_m log C_km + sum_m B_km / C_km]`` (up to a
    constant) is what each cycle decreases: ``C`` given ``D``, then one
    :func:`orientation_sweep` of ``D`` given ``C``.

    Without ``previous`` (the M-step as a pure function of the statistics):
    ``D`` starts at the eigenvectors of ``sum_k W_k`` and the cycles run to a
    change of ``-2 Q`` below ``INNER_TOL (1 + |-2 Q|)`` (mclust's rule), at
    most ``INNER_MAX_ITER`` of them.

    With ``previous`` (the (K, d, d) covariances of the parameters entering
    this EM iteration), ``D`` starts at their orientation
    (:func:`orientation_of`), as in mclust, whose ``meEVE``/``meVVE`` do not
    re-initialize the orientation between EM iterations, and ``WARM_CYCLES``
    cycles run. The start is the previous ``D`` with its best ``C``, at least
    as good as the previous parameters, and no cycle decreases ``Q``: ``Q``
    at the new parameters is at least ``Q`` at the previous ones, so EM stays
    monotone (a generalized EM; with one cycle an expectation/conditional
    maximization step, Meng & Rubin 1993) at a cost of one sweep per
    iteration. Where ``previous`` has no common orientation (another model's
    parameters, e.g. a user's ``precisions_init``), the cold start is used.
    Returns the (K, d, d) covariances.
    """
    D = None if previous is None else orientation_of(previous)
    max_cycles = WARM_CYCLES
    if D is None or D.shape[0] != W.shape[1]:
        D, max_cycles = np.linalg.eigh(W.sum(axis=0))[1], INNER_MAX_ITER

    def evaluate(D):
        B = np.sum(D * (W @ D), axis=1)  # diag(D^T W_k D)
        C = conditional(B)
        return C, float(nk @ np.log(C).sum(axis=1) + np.sum(B / C))

    C, obj = evaluate(D)
    for _ in range(max_cycles):
        Dn = orientation_sweep(W, D, 1.0 / C)
        Cn, new = evaluate(Dn)
        if not new <= obj:  # rounding (or NaN): keep the last point
            break
        D, C, change, obj = Dn, Cn, obj - new, new
        if change <= INNER_TOL * (1.0 + abs(obj)):
            break
    return (D * C[:, None, :]) @ D.T


# ------------------------------------------------------------ base classes
class MclustFull:
    """Storage and density shared by the non-diagonal models: full (K, D, D)
    covariances and upper-triangular precision Cholesky factors, the same
    kernels as ``covariance_type='full'``. Subclasses define ``name``,
    ``n_cov_parameters`` and ``solve(W, nk) -> (K, D, D) covariances``."""

    name = "mclust"

    cov_shape = staticmethod(Full.cov_shape)
    temp_per_row = staticmethod(Full.temp_per_row)
    log_prob = staticmethod(Full.log_prob)
    scatter = staticmethod(Full.scatter)

    @staticmethod
    def prec_chol_from_cov(cov):
        # U_k = L_k^{-T} for cov_k = L_k L_k^T, batched in numpy (one LAPACK
        # call per stack, not per component); the failing component is named.
        if not np.all(np.isfinite(cov)):
            bad = np.flatnonzero(~np.all(np.isfinite(cov.reshape(cov.shape[0], -1)), axis=1))
            raise NotPositiveDefinite(int(bad[0]))
        try:
            L = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            for k, c in enumerate(cov):
                try:
                    np.linalg.cholesky(c)
                except np.linalg.LinAlgError:
                    raise NotPositiveDefinite(k) from None
            raise NotPositiveDefinite(0) from None
        diag = np.diagonal(L, axis1=1, axis2=2)
        bad = np.flatnonzero(~np.all(diag > 0, axis=1))
        if bad.size:
            raise NotPositiveDefinite(int(bad[0]))
        eye = np.broadcast_to(np.eye(cov.shape[1], dtype=cov.dtype), cov.shape)
        return np.triu(np.linalg.solve(L, eye).transpose(0, 2, 1))

    @staticmethod
    def prec_chol_from_precisions(prec):
        # upper U with U U^T = P: reverse rows and columns, lower Cholesky, reverse back
        L = np.linalg.cholesky(prec[:, ::-1, ::-1])
        return np.ascontiguousarray(L[:, ::-1, ::-1])

    @staticmethod
    def cov_from_prec_chol(prec_chol):
        eye = np.broadcast_to(np.eye(prec_chol.shape[1], dtype=prec_chol.dtype), prec_chol.shape)
        Uinv = np.linalg.solve(prec_chol, eye)
        return Uinv.transpose(0, 2, 1) @ Uinv
    precisions = staticmethod(Full.precisions)
    full_covariances = staticmethod(Full.full_covariances)
    draw = staticmethod(Full.draw)

    @classmethod
    def check_precisions(cls, prec, K, D):
        return check_spd_stack(prec, cls.name, (K, D, D))

    #: True where ``solve`` takes ``previous=`` (the (K, D, D) covariances of
    #: the parameters entering the EM iteration) to start its inner loop
    #: from (EVE, VVE); :func:`emix.core.em.m_step` passes them.
    warm_m_step = False

    @classmethod
    def covariances(cls, s2, nk, delta, reg_covar, dtype, previous=None):
        W = within_full(np.asarray(s2, dtype=np.float64), nk, delta, reg_covar)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if previous is not None and cls.warm_m_step:
                cov = cls.solve(W, nk, previous=previous)
            else:
                cov = cls.solve(W, nk)
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        return cov.astype(dtype, copy=False)  # a new array already

    @staticmethod
    def solve(W, nk):  # pragma: no cover - abstract
        raise NotImplementedError


class MclustDiagonal(MclustFull):
    """The diagonal models (EII, VII, EEI, VEI, EVI, VVI): the same (K, D, D)
    storage, but the statistic is the (K, D) diagonal scatter and densities
    use the diagonal kernel. ``solve(w, nk)`` maps the (K, D) diagonal of
    ``W_k`` to (K, D) variances."""

    temp_per_row = staticmethod(Diag.temp_per_row)
    scatter = staticmethod(_diag_scatter)

    @staticmethod
    def log_prob(X, means, prec_chol):
        u = np.diagonal(prec_chol, axis1=1, axis2=2)
        return _diag_log_prob(X, means, u * u)

    @classmethod
    def check_precisions(cls, prec, K, D):
        prec = check_spd_stack(prec, cls.name, (K, D, D))
        off = prec - diag_stack(np.diagonal(prec, axis1=1, axis2=2).copy())
        if np.any(off != 0.0):
            raise ValueError(
                f"precisions_init for covariance_type={cls.name!r} (a diagonal "
                "model) must be diagonal matrices. Got non-zero off-diagonal entries."
            )
        return prec

    @staticmethod
    def draw(rng, means, cov, counts):
        var = np.diagonal(cov, axis1=1, axis2=2)
        return Diag.draw(rng, means, var, counts)

    @staticmethod
    def prec_chol_from_cov(cov):
        # diagonal matrices: U = diag(1 / sqrt(var)), no factorization needed
        var = np.diagonal(cov, axis1=1, axis2=2)
        bad = np.flatnonzero(~np.all(np.isfinite(var) & (var > 0.0), axis=1))
        if bad.size:
            raise NotPositiveDefinite(int(bad[0]))
        return diag_stack(1.0 / np.sqrt(var))

    @staticmethod
    def prec_chol_from_precisions(prec):
        return diag_stack(np.sqrt(np.diagonal(prec, axis1=1, axis2=2)))

    @staticmethod
    def cov_from_prec_chol(prec_chol):
        u = np.diagonal(prec_chol, axis1=1, axis2=2)
        return diag_stack(1.0 / (u * u))

    @classmethod
    def covariances(cls, s2, nk, delta, reg_covar, dtype):
        w = within_diag(np.asarray(s2, dtype=np.float64), nk, delta, reg_covar)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            var = cls.solve(w, nk)
        return diag_stack(var).astype(dtype, copy=False)  # a new array already


def volume_parameters(letter, K):
    """Free parameters of the volume: 1 (E) or K (V)."""
    return 1 if letter == "E" else K
