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

:func:`e_step` is used by :func:`emix.core.em.e_step` for a float64 or
float32 numpy block of at most :data:`ESTEP_FEATURES` features (any number of
rows; float32 rows are widened as they are read) or small enough
(:data:`SMALL_WORK`), with no noise component, for the
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

#: Largest ``n K D (D + 1)`` (multiply-adds of one E-step) for which the whole
#: EM loop runs compiled (:func:`em_loop`), statistics of given
#: responsibilities are compiled (:func:`stats_from_resp`), and blocks of more
#: than :data:`ESTEP_FEATURES` features take the compiled E-step; bigger ones
#: take the general path, whose GEMMs use BLAS (and threads over blocks of
#: rows). Set in session 4 from whole 'full' fits, one thread, with that
#: session's E-step (1.3-4x faster below, up to 2x slower above).
SMALL_WORK = 1 << 19

#: Features up to which :func:`e_step` takes blocks of any size: the kernel
#: sums a component's terms and statistics in vector registers there (4 rows
#: at a time, the loops unrolled per feature count) and beats the general
#: path's products per row and component (measured one thread, session 5, ns
#: per row and component, C vs numpy: D = 2, K = 8 full 3.8 vs 12.5; D = 6
#: full 9.3 vs 16.0; D = 10, K = 5 full 18.9 vs 59.3, diag 6.9 vs 21.9; D =
#: 12, K = 8 full 24.6 vs 36.7); wider blocks go by :data:`SMALL_WORK`.
ESTEP_FEATURES = 12

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


def _block_mode(X, structure, float32=False):
    """The kernel mode (see :func:`_mode_of`) for the block ``X``: 0, 1 or 2;
    -1 where the compiled module does not apply (not built, another
    structure, not a 2-D float64 numpy array (or float32 with ``float32``),
    ``E``/``V`` on several features)."""
    if _kernels is None or type(X) is not np.ndarray or X.ndim != 2:
        return -1
    if not (X.dtype == np.float64 or (float32 and X.dtype == np.float32)):
        return -1
    mode = _mode_of(structure)
    if mode == 3:  # E/V: the general path says they are univariate
        mode = 1 if X.shape[1] == 1 else -1
    return mode


def _estep_call(X, sample_weight, params, structure):
    """One call of the compiled E-step: ``(loglik, sum_w, logmax, nk, s1,
    s2)`` (``logmax = sum_n w_n log max_k r_nk``), or None where the module
    does not apply or the kernel declined a row (see the module notes).

    A float32 block is read as float32 and computed in float64 (its
    parameters converted), as emix computes float32 data (docs/design.md)."""
    mode = _block_mode(X, structure, float32=True)
    if mode < 0 or params.noise_weight is not None:
        return None
    f32 = X.dtype == np.float32
    n, D = X.shape
    means, U, weights = params.means, params.precisions_cholesky, params.weights
    K = means.shape[0]
    if n * K * D * (D + 1) > SMALL_WORK and D > ESTEP_FEATURES:
        return None
    arrays = (means, U, weights)
    if not all(type(a) is np.ndarray and a.dtype == (np.float32 if f32 else np.float64) for a in arrays):
        return None
    c = np.ascontiguousarray
    if f32:
        means, U, weights = (np.asarray(a, dtype=np.float64) for a in arrays)
    w = None if sample_weight is None else c(sample_weight, dtype=np.float64)
    nk, s1 = np.empty(K), np.empty((K, D))
    s2 = np.empty((K, D, D) if mode == 0 else (K, D))
    loglik, sum_w, status, logmax = _kernels.estep(c(X), w, c(means), c(U), c(weights), nk, s1, s2, n, D, K,
                                                   mode, f32)
    if status:
        return None
    return loglik, sum_w, logmax, nk, s1, s2


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
    out = _estep_call(X, sample_weight, params, structure)
    if out is None:
        return None
    loglik, sum_w, _, nk, s1, s2 = out
    return SuffStats(nk=nk, s1=s1, s2=s2, shift=params.means, loglik=loglik, sum_w=sum_w)


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


#: The covariance models whose whole EM loop :func:`em_loop` runs in C, and
#: their codes in ``_small_kernels.c`` (``E``/``V``: EII/VII of one feature).
LOOP_MODELS = {"EII": 1, "VII": 2, "EEI": 3, "VEI": 4, "EVI": 5, "VVI": 6, "EEE": 7, "VEE": 8, "EVE": 9,
               "VVE": 10, "EEV": 11, "VEV": 12, "EVV": 13, "VVV": 14, "full": 15, "E": 1, "V": 2}
_LOOP_CODES = {}
#: Iterations per compiled call of :func:`em_loop` (its history buffer).
LOOP_CHUNK = 4096

#: em_loop's status codes (``_small_kernels.c``)
CONVERGED, MAX_ITER, FALLBACK, DEGENERATE, MCLUST_FAIL = range(5)
#: reasons of an mclust failure (``bad_k`` of ``MCLUST_FAIL``)
MCLUST_REASONS = {1: "mixing proportion fell below threshold", 2: "singular covariance",
                  3: "singular covariance", 4: "log-likelihood is not finite", 5: "singular covariance"}


def _loop_code(structure):
    """The model code of ``structure`` for :func:`em_loop`, or 0 (not the
    registered structure of one of :data:`LOOP_MODELS`)."""
    try:
        return _LOOP_CODES[structure]
    except (KeyError, TypeError):
        pass
    name = getattr(structure, "name", None)
    code = LOOP_MODELS.get(name, 0) if isinstance(name, str) else 0
    if code:
        from ..families.gaussian import get_structure

        if get_structure(name) is not structure:
            code = 0
    try:
        _LOOP_CODES[structure] = code
    except TypeError:
        pass
    return code


class LoopResult(tuple):
    """What :func:`em_loop` returns: ``(status, n_iter, last, bad_k, bad_nk,
    params, history)``; see :func:`em_loop`."""

    __slots__ = ()

    status = property(lambda self: self[0])
    n_iter = property(lambda self: self[1])
    last = property(lambda self: self[2])
    bad_k = property(lambda self: self[3])
    bad_nk = property(lambda self: self[4])
    params = property(lambda self: self[5])
    history = property(lambda self: self[6])


def _mm_buffer(mm_state, K, D):
    """The C side's state of mclust's EVE/VVE M-step: ``2 (D D + K D)``
    doubles, the orientation ``D`` and the shapes entering first (the second
    half receives the next ones)."""
    buf = np.zeros(2 * (D * D + K * D))
    buf[: D * D] = np.asarray(mm_state[1], dtype=np.float64).ravel()
    buf[D * D: D * D + K * D] = np.asarray(mm_state[2], dtype=np.float64).ravel()
    return buf


def _mm_unpack(buf, mm_state, K, D):
    """The orientation and shapes of :func:`_mm_buffer`'s first half back into ``mm_state``."""
    mm_state[1] = buf[: D * D].reshape(D, D).copy()
    mm_state[2] = buf[D * D: D * D + K * D].reshape(K, D).copy()


def em_loop(X, sample_weight, params, structure, *, rule, tol, max_iter, reg_covar=0.0, eps=0.0,
            lower_bound0=-np.inf, mm_state=None):
    """The whole EM loop of a small fit in one compiled call, or None where it
    does not apply (then the numpy loop runs).

    Each iteration is the compiled E-step of :func:`e_step` and the M-step of
    the covariance model written in C from the same formulas, inner
    iterations, tolerances and starts as the numpy M-steps (``'full'`` and
    mclust's 14 models; EVE/VVE warm-started at the previous orientation),
    so a fit follows the numpy loop's path up to rounding (about 1e-12
    relative; ``tests/test_small_loop.py``). It removes the per-iteration
    Python overhead (tens of numpy calls per iteration), which is what small
    fits spend their time on.

    Parameters
    ----------
    X : ndarray (n, D), float64
    sample_weight : ndarray (n,) or None
    params : GaussianParams
        The parameters entering the first iteration (float64, no noise).
    structure : covariance structure
    rule : {0, 1}
        0: :func:`emix.core.loop.run_em`'s (the mean log-likelihood of the
        parameters entering each iteration is recorded after its M-step;
        stop when it changes by less than ``tol``); 1: mclust's ``me()``
        (:func:`emix.core.mclust_hc.mclust_em`: the total log-likelihood,
        stop before the M-step when ``|hold - L| / (1 + |L|) < tol``, mclust's
        checks on every M-step with ``eps`` the reciprocal-condition limit).
    lower_bound0 : float
        The previous bound of the first iteration (rule 0) or mclust's
        ``hold`` (rule 1).
    mm_state : list or None
        Rule 1, EVE/VVE with ``K > 1``: ``[model, D, shape]`` of mclust's own
        M-step (:mod:`emix.families.gaussian.mclust._mm`, as
        :func:`emix.core.mclust_hc.mclust_em` keeps it), run in C and updated
        in place; without it those fits return None (the numpy loop).

    Returns
    -------
    LoopResult or None
        ``status``: :data:`CONVERGED`, :data:`MAX_ITER`, :data:`FALLBACK`
        (iteration ``n_iter + 1`` needs the numpy path: a far row, a NaN term
        or a failed factorization inside an iterative M-step; ``params`` are
        those entering it and ``last`` the bound before it),
        :data:`DEGENERATE` (rule 0: component ``bad_k``, of effective size
        ``bad_nk``, has no positive-definite covariance) or
        :data:`MCLUST_FAIL` (rule 1: ``MCLUST_REASONS[bad_k]``);
        ``history`` the first ``n_iter`` recorded bounds.
    """
    if _kernels is None or params.noise_weight is not None or max_iter < 1:
        return None
    if type(X) is not np.ndarray or X.dtype != np.float64 or X.ndim != 2:
        return None
    code = _loop_code(structure)
    if not code:
        return None
    n, D = X.shape
    K = params.means.shape[0]
    mm = None
    if rule == 1 and code in (9, 10) and K > 1:  # mclust's EVE/VVE M-step, with its state
        if mm_state is None:
            return None
        mm = _mm_buffer(mm_state, K, D)
    if (structure.name in ("E", "V") and D != 1) or D > SMALL_FEATURES or n * K * D * (D + 1) > SMALL_WORK:
        return None
    arrays = (params.weights, params.means, params.covariances, params.precisions_cholesky)
    if not all(type(a) is np.ndarray and a.dtype == np.float64 for a in arrays):
        return None
    if params.covariances.shape != (K, D, D):
        return None
    weights, means, cov, U = (np.array(a, dtype=np.float64, order="C") for a in arrays)  # copies: outputs
    if not X.flags.c_contiguous:
        X = np.ascontiguousarray(X)
    w = sample_weight
    if w is not None and not (type(w) is np.ndarray and w.dtype == np.float64 and w.flags.c_contiguous):
        w = np.ascontiguousarray(w, dtype=np.float64)
    max_iter, last, done, parts = int(max_iter), float(lower_bound0), 0, []
    history = np.empty(min(max_iter, LOOP_CHUNK))
    while True:  # calls of at most LOOP_CHUNK iterations (a bounded history buffer)
        chunk = min(max_iter - done, LOOP_CHUNK)
        status, n_iter, last, bad_k, bad_nk = _kernels.em_loop(
            X, w, weights, means, cov, U, history, n, D, K, code, int(rule), float(tol),
            float(reg_covar), chunk, float(eps), last, mm)
        parts.append(history[:n_iter].copy())
        done += n_iter
        if status != MAX_ITER or done >= max_iter:
            break
    from .types import GaussianParams

    if mm is not None:
        _mm_unpack(mm, mm_state, K, D)
    out = GaussianParams(weights=weights, means=means, covariances=cov, precisions_cholesky=U)
    return LoopResult((status, done, last, bad_k, bad_nk, out, np.concatenate(parts)))


def m_step(stats, structure, reg_covar, previous=None):
    """:func:`emix.core.em.m_step` (no prior, no mixing options) of one of
    :data:`LOOP_MODELS` in one compiled call: the C M-step :func:`em_loop`
    runs, from the same formulas as the numpy M-steps. ``previous``: the
    covariances entering the iteration (EVE/VVE start at their orientation),
    or None (the cold start). Returns ``GaussianParams``, or None where it
    does not apply or a factorization inside an iterative solve failed (the
    numpy M-step then decides).

    Raises
    ------
    DegenerateComponentError
        As the numpy M-step, naming the component whose covariance is not
        positive definite.
    """
    if _kernels is None:
        return None
    code = _loop_code(structure)
    if not code:
        return None
    nk, s1, s2, shift = stats.nk, stats.s1, stats.s2, stats.shift
    if not all(type(a) is np.ndarray and a.dtype == np.float64 for a in (nk, s1, s2, shift)):
        return None
    K, D = s1.shape
    if D > SMALL_FEATURES or (structure.name in ("E", "V") and D != 1):
        return None
    if s2.shape != ((K, D) if code <= 6 else (K, D, D)) or shift.shape != (K, D):
        return None
    if previous is not None:
        previous = previous if (type(previous) is np.ndarray and previous.dtype == np.float64
                                and previous.shape == (K, D, D)) else None
        if previous is not None and not previous.flags.c_contiguous:
            previous = np.ascontiguousarray(previous)
    weights, means = np.empty(K), np.empty((K, D))
    cov, U = np.empty((K, D, D)), np.empty((K, D, D))
    c = np.ascontiguousarray
    status, bad = _kernels.mstep(c(nk), c(s1), c(s2), c(shift), previous, weights, means, cov, U, D, K,
                                 code, float(reg_covar))
    if status == 1:
        return None
    if status == 2:
        from ..exceptions import DegenerateComponentError

        raise DegenerateComponentError.for_component(int(bad), float(nk[bad]), structure.name, reg_covar)
    from .types import GaussianParams

    return GaussianParams(weights=weights, means=means, covariances=cov, precisions_cholesky=U)


def stats_from_resp(X, sample_weight, resp, shift, structure, loglik=0.0):
    """:func:`emix.core.em.stats_from_resp` of a small float64 block in one
    compiled pass (the statistics computed directly around ``shift``), or
    None where :func:`e_step` does not apply."""
    mode = _block_mode(X, structure)
    if mode < 0:
        return None
    n, D = X.shape
    if type(resp) is not np.ndarray or resp.dtype != np.float64 or resp.ndim != 2 or resp.shape[0] != n:
        return None
    K = resp.shape[1]
    if n * K * D * (D + 1) > SMALL_WORK or np.shape(shift) != (K, D):
        return None
    c = np.ascontiguousarray
    w = None if sample_weight is None else c(sample_weight, dtype=np.float64)
    nk, s1 = np.empty(K), np.empty((K, D))
    s2 = np.empty((K, D, D) if mode == 0 else (K, D))
    _kernels.stats_resp(c(X), w, c(resp), c(shift, dtype=np.float64), nk, s1, s2, n, D, K, mode)
    sum_w = float(n) if w is None else float(np.sum(w))
    return SuffStats(nk=nk, s1=s1, s2=s2, shift=shift, loglik=float(loglik), sum_w=sum_w)


def mm_m_step(stats, structure, mm_state, eps):
    """mclust's EVE/VVE M-step (:mod:`emix.families.gaussian.mclust._mm`,
    as :func:`em_loop` runs it under rule 1) from given statistics in one
    compiled call, with rule 1's checks (precision factors, reciprocal
    condition above ``eps``). ``mm_state``: ``[model, D, shapes]``, updated
    on success. Returns ``GaussianParams``; False where mclust reports NA;
    None where it does not apply (then the numpy M-step runs)."""
    if _kernels is None or getattr(structure, "name", None) not in ("EVE", "VVE") or not _loop_code(structure):
        return None
    nk, s1, s2, shift = stats.nk, stats.s1, stats.s2, stats.shift
    if not all(type(a) is np.ndarray and a.dtype == np.float64 for a in (nk, s1, s2, shift)):
        return None
    K, D = s1.shape
    if D > SMALL_FEATURES or s2.shape != (K, D, D) or np.shape(shift) != (K, D):
        return None
    state = _mm_buffer(mm_state, K, D)
    weights, means = np.empty(K), np.empty((K, D))
    cov, U = np.empty((K, D, D)), np.empty((K, D, D))
    c = np.ascontiguousarray
    if _kernels.mm_step(c(nk), c(s1), c(s2), c(shift), state, 1 if structure.name == "EVE" else 0, weights,
                        means, cov, U, D, K, float(eps)):
        return False
    _mm_unpack(state, mm_state, K, D)
    from .types import GaussianParams

    return GaussianParams(weights=weights, means=means, covariances=cov, precisions_cholesky=U)


def loglik_and_entropy(X, sample_weight, params, structure):
    """``(sum_n w_n log p(x_n), sum_n w_n log max_k r_nk)`` of a small float64
    block in one compiled E-step (the log-likelihood and the ICL's
    classification term), or None where :func:`e_step` does not apply."""
    out = _estep_call(X, sample_weight, params, structure)
    return None if out is None else (out[0], out[2])


__all__ = ["ESTEP_FEATURES", "LOOP_MODELS", "SMALL_FEATURES", "SMALL_WORK", "available", "e_step", "em_loop",
           "loglik_and_entropy", "m_step", "mm_m_step", "prec_chol_from_cov",
           "stats_from_resp"]
