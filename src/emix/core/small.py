"""Small in-memory data: the Gaussian E-step in one compiled call.

On a table of hundreds of rows, an EM iteration of the general path
(:func:`emix.core.em.e_step`: expanded "Gram" products, error bounds, far-row
checks, a dozen numpy calls for the responsibilities) costs tens of numpy
calls of a few microseconds each for a few thousand numbers: the time goes to
call overhead, not arithmetic. Here one call of the C kernel
``emix._small_kernels.estep`` (src/emix/_small_kernels.c) computes the log
densities, the responsibilities, the log-likelihood and the shifted sufficient
statistics of the whole block:

``log pi_k N(x_n | k) = log pi_k + sum_j log U_k,jj - D/2 log(2 pi) - |(x_n - mu_k)^T U_k|^2 / 2``

(``U_k`` the upper-triangular precision Cholesky factor, ``U_k U_k^T =
Sigma_k^{-1}``), normalized over ``k`` with the max-shift identity, and
``nk = sum_n w_n r_nk``, ``s1_k = sum_n w_n r_nk (x_n - mu_k)``, ``s2_k =
sum_n w_n r_nk (x_n - mu_k)(x_n - mu_k)^T`` (its diagonal for the diagonal
models): exactly :class:`~emix.core.types.SuffStats` of the general E-step
with the shift at the current means, computed directly (``x - mu_k``) rather
than expanded around a common centre, so it agrees with the general path to
rounding (about ``1e-13`` relative). Dempster, Laird & Rubin (1977) for EM;
McLachlan & Peel (2000, ch. 3) for the Gaussian mixture's statistics.

:func:`e_step` is used by :func:`emix.core.em.e_step` for a float64 numpy
block that is small (:data:`SMALL_WORK`), with no noise component, for the
structures whose density is the full or diagonal Gaussian of their
precision factors (``'full'``, ``'diag'`` and mclust's 14 models). It returns
None (the general path then runs) when the compiled module is missing (no C
compiler at install time), for other structures, or when a row is "far" from
every component or a term is NaN (:data:`emix.core.em.FAR_LOG_PROB`), which
the general path handles. The M-step is unchanged: the structures' own.
"""

from __future__ import annotations

import numpy as np

from .types import SuffStats

try:  # built by setup.py; optional
    from .. import _small_kernels as _kernels
except ImportError:  # pragma: no cover - no C compiler at install time
    _kernels = None

#: Largest ``n K D (D + 1)`` (multiply-adds of one E-step) sent to the
#: compiled kernel; bigger blocks take the general path, whose GEMMs use
#: BLAS (and threads over blocks of rows).
SMALL_WORK = 1 << 23

_MODES = {}


def available():
    """Whether the compiled kernel was built (else the general path runs)."""
    return _kernels is not None


def _mode_of(structure):
    """0: full upper-triangular factors and (K, D, D) scatter; 1: (K, D, D)
    diagonal factors and (K, D) scatter (mclust's diagonal models); 2: (K, D)
    factors and (K, D) scatter ('diag'); -1: not for this module. ``E``/``V``
    get 3 (mode 1, one feature only)."""
    try:
        return _MODES[structure]
    except (KeyError, TypeError):
        pass
    from ..families.gaussian.diag import Diag
    from ..families.gaussian.full import Full
    from ..families.gaussian.mclust import E, V
    from ..families.gaussian.mclust._eigen import MclustDiagonal, MclustFull

    def same(name, ref):
        return getattr(structure, name, None) is getattr(ref, name)

    mode = -1
    if structure is Full:
        mode = 0
    elif structure is E or structure is V:
        mode = 3
    elif isinstance(structure, type) and issubclass(structure, MclustDiagonal):
        if same("log_prob", MclustDiagonal) and same("scatter", MclustDiagonal):
            mode = 1
    elif isinstance(structure, type) and issubclass(structure, MclustFull):
        if same("log_prob", MclustFull) and same("scatter", MclustFull):
            mode = 0
    elif structure is Diag:
        mode = 2
    try:
        _MODES[structure] = mode
    except TypeError:  # unhashable: never cached
        pass
    return mode


def e_step(X, sample_weight, params, structure):
    """:func:`emix.core.em.e_step` of one block by the compiled kernel, or
    None where this module does not apply (see the module notes).

    Parameters
    ----------
    X : ndarray of shape (n, D), float64
    sample_weight : ndarray of shape (n,) or None
    params : GaussianParams
    structure : covariance structure

    Returns
    -------
    SuffStats or None
    """
    if _kernels is None or params.noise_weight is not None:
        return None
    mode = _mode_of(structure)
    if mode < 0 or type(X) is not np.ndarray or X.dtype != np.float64 or X.ndim != 2:
        return None
    n, D = X.shape
    if mode == 3:
        if D != 1:
            return None  # the general path says E/V are univariate
        mode = 1
    means = params.means
    K = means.shape[0]
    if n * K * D * (D + 1) > SMALL_WORK:
        return None
    U, weights = params.precisions_cholesky, params.weights
    if not (type(means) is np.ndarray and type(U) is np.ndarray and type(weights) is np.ndarray
            and means.dtype == np.float64 and U.dtype == np.float64 and weights.dtype == np.float64):
        return None
    if not X.flags.c_contiguous:
        X = np.ascontiguousarray(X)
    w = sample_weight
    if w is not None and not (type(w) is np.ndarray and w.dtype == np.float64 and w.flags.c_contiguous):
        w = np.ascontiguousarray(w, dtype=np.float64)
    nk = np.empty(K)
    s1 = np.empty((K, D))
    s2 = np.empty((K, D, D) if mode == 0 else (K, D))
    loglik, sum_w, status = _kernels.estep(
        X, w, means if means.flags.c_contiguous else np.ascontiguousarray(means),
        U if U.flags.c_contiguous else np.ascontiguousarray(U),
        weights if weights.flags.c_contiguous else np.ascontiguousarray(weights),
        nk, s1, s2, n, D, K, mode)
    if status:
        return None
    return SuffStats(nk=nk, s1=s1, s2=s2, shift=means, loglik=loglik, sum_w=sum_w)


#: Largest number of features for which :func:`prec_chol_from_cov` factors
#: in C (``K D^3 / 3`` operations, no BLAS); above it the structure's own.
SMALL_FEATURES = 32


def prec_chol_from_cov(cov, structure):
    """The structure's ``prec_chol_from_cov`` for a float64 (K, D, D) stack of
    a full or mclust structure, in one compiled call: ``Sigma_k = L_k L_k^T``,
    ``U_k = L_k^{-T}`` (upper triangular, ``U_k U_k^T = Sigma_k^{-1}``;
    diagonal models: ``1 / sqrt(Sigma_k,jj)``). None where it does not apply.

    Raises
    ------
    NotPositiveDefinite
        Naming the first component whose covariance is not finite or not
        positive definite, as the structures do.
    """
    if _kernels is None:
        return None
    mode = _mode_of(structure)
    if mode < 0 or mode == 2 or type(cov) is not np.ndarray or cov.dtype != np.float64 or cov.ndim != 3:
        return None
    K, D, _ = cov.shape
    if D > SMALL_FEATURES:
        return None
    if not cov.flags.c_contiguous:
        cov = np.ascontiguousarray(cov)
    out = np.empty_like(cov)
    bad = _kernels.prec_chol(cov, out, K, D, 0 if mode == 0 else 1)
    if bad >= 0:
        from ..families.gaussian._common import NotPositiveDefinite

        raise NotPositiveDefinite(int(bad))
    return out


__all__ = ["SMALL_FEATURES", "SMALL_WORK", "available", "e_step", "prec_chol_from_cov"]
