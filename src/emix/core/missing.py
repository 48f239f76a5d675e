"""Incomplete data inside EM: missing coordinates, known labels, fixed parameters.

Missing values (NaN) in a Gaussian mixture
------------------------------------------
For a row ``x`` with observed coordinates ``O`` and missing ones ``M``,
component ``k`` with mean ``mu`` and precision ``P = Sigma^-1``, write
``z = x - mu`` with the missing entries set to 0 (``z_M = 0``) and
``b = (P z)_M``. Then (Little & Rubin 2002, *Statistical Analysis with Missing
Data*, 2nd ed., sections 8.2 and 11.2; Ghahramani & Jordan 1994, "Supervised
learning from incomplete data via an EM approach"):

- the conditional distribution of the missing block given the observed one is
  ``x_M | x_O, k ~ N(mu_M + e_M, C)`` with ``C = (P_MM)^-1`` (the Schur
  complement of ``Sigma_OO`` in ``Sigma``) and ``e_M = -C b``;
- the marginal density of the observed block is
  ``log N(x_O | mu_O, Sigma_OO) = -|O|/2 log 2 pi + (log|P| - log|P_MM|)/2
  - q/2`` with ``q = z_O^T Sigma_OO^-1 z_O = z^T P z - b^T C b``
  (``log|Sigma_OO| = log|Sigma| + log|P_MM|``, and ``q`` is the quadratic
  form of the completed vector minimized over ``z_M``).

The E-step therefore needs only the small ``|M| x |M|`` blocks ``P_MM``, one
factorization per missingness pattern and component; rows are grouped by
their number of missing entries and, within that, by pattern, so that every
product over rows is one batched matrix-matrix product. The completed rows
``xhat_k = (x_O, mu_M + e_M)`` give the statistics of
:class:`~emix.core.types.SuffStats` shifted at the previous means,
``s1_k = sum_n r_nk (xhat_nk - mu_k)``, and the completed scatter

``S_k = sum_n r_nk [(xhat_nk - mu_k)(xhat_nk - mu_k)^T + C_nk]``

(``C_nk`` the conditional covariance in the ``M x M`` block, 0 elsewhere),
reduced as the covariance structure's own ``scatter`` is: the (K, D, D)
matrices, their sum over components (tied), or their diagonals (diagonal and
spherical structures, mclust's ``*I`` models). The M-step is then the
complete-data one, unchanged (including mclust's iterative M-steps, which
take the scatter matrices), and EM increases the observed-data likelihood
``sum_n w_n log sum_k pi_k N(x_nO | k)`` (Dempster, Laird & Rubin 1977),
which is the ``loglik`` the statistics carry.

Rows with every coordinate missing carry no information: their density is 1,
their responsibilities are the mixing weights, and they add nothing to the
statistics (not even to ``sum_w``). Rows without missing values take the
ordinary (fused) E-step, so a block without NaN gives exactly
:func:`emix.core.em.e_step`.

Known labels (semi-supervised EM)
---------------------------------
With a label ``y_n`` in ``0..K-1`` the row's responsibilities are fixed to
the indicator of ``y_n`` and it contributes ``log pi_y + log N(x_n | y)`` to
the objective; ``-1`` marks an unlabelled row (scikit-learn's
semi-supervised convention). EM then increases
``sum_labelled log pi_y p(x | y) + sum_unlabelled log p(x)`` (McLachlan &
Peel 2000, section 2.19; Nigam, McCallum, Thrun & Mitchell 2000). Labels
travel with their rows as one extra, last, column of the array the reducer
splits into blocks, so that any block layout keeps them aligned.

Fixed parameters
----------------
Holding some of the weights, means and covariances at given values and
maximizing the expected complete-data log-likelihood over the rest is a
generalized EM step (an ECM step, Meng & Rubin 1993), so the likelihood
still never decreases. Fixed means: the statistics' first moments around the
(fixed) previous means are set to 0, so the covariance M-step is the scatter
around the fixed means; fixed weights or covariances are put back after the
M-step.
"""

from __future__ import annotations

import math

import numpy as np

from . import em
from .loop import run_em
from .numerics import LOG_2PI, normalize_log, resp_from_logp_T
from .types import FitResult, GaussianParams, SuffStats

MISSING_OPTIONS = ("error", "em")
FIXABLE = ("weights", "means", "covariances")

#: elements of the (K, rows, D) float64 temporaries of one chunk of rows
_CHUNK_ELEMS = 1 << 20


# ------------------------------------------------------------------ checks
def check_missing_option(missing):
    """``missing`` is 'error' or 'em'."""
    if not (isinstance(missing, str) and missing in MISSING_OPTIONS):
        raise ValueError(
            f"missing must be 'error' (NaN is an error, as in scikit-learn) or 'em' (NaN entries are "
            f"missing values, handled inside EM). Got {missing!r}."
        )
    return missing


def check_fixed(fixed):
    """``fixed`` as a tuple of distinct names among :data:`FIXABLE`."""
    if fixed is None:
        return ()
    if isinstance(fixed, str):
        fixed = (fixed,)
    try:
        names = tuple(fixed)
    except TypeError:
        raise TypeError(f"fixed must be a tuple of names among {FIXABLE}. Got {fixed!r}.") from None
    bad = [f for f in names if not (isinstance(f, str) and f in FIXABLE)]
    if bad:
        raise ValueError(f"fixed must hold names among {FIXABLE}. Got {bad[0]!r} in {fixed!r}.")
    if len(set(names)) != len(names):
        raise ValueError(f"fixed names a parameter twice: {fixed!r}.")
    return names


def has_missing(X) -> bool:
    """Whether the numpy array ``X`` holds a NaN (one pass, no copy of X)."""
    return bool(np.isnan(np.min(X))) if X.size else False


def check_observed_columns(X, feature_names=None):
    """Raise if a column of ``X`` is missing on every row: no estimate of its
    mean or variance exists (naming the column)."""
    if X.shape[0] == 0:
        return
    empty = np.flatnonzero(np.isnan(X).all(axis=0))
    if len(empty):
        j = int(empty[0])
        name = f"column {j}" if feature_names is None else f"column {j} ({feature_names[j]!r})"
        more = "" if len(empty) == 1 else f" (and {len(empty) - 1} more: {empty[1:6].tolist()})"
        raise ValueError(
            f"{name} is missing (NaN) on every row{more}: a mixture cannot be fitted to a feature "
            "that is never observed. Drop the column."
        )


def check_labels(labels, n_samples, n_components):
    """``labels``: integers in ``-1..K-1`` of shape (n_samples,), as an intp array."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n_samples:
        raise ValueError(f"labels must have shape ({n_samples},) to match X. Got shape {arr.shape}.")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError("labels must be integers (-1 for an unlabelled row). Got non-integer values.")
    elif arr.dtype.kind not in "iub":
        raise TypeError(
            f"labels must be integer component indices (-1 for unlabelled). Got dtype {arr.dtype}."
        )
    arr = arr.astype(np.intp)
    bad = (arr < -1) | (arr >= n_components)
    if np.any(bad):
        raise ValueError(
            f"labels must be -1 (unlabelled) or a component index in 0..{n_components - 1}. "
            f"Got {int(arr[bad][0])}."
        )
    return arr


def column_fill(X, sample_weight=None):
    """A copy of ``X`` with each NaN replaced by its column's (weighted) mean
    over the rows where it is observed: the simple fill that initialization
    runs on (k-means cannot take holes)."""
    miss = np.isnan(X)
    obs = (~miss).astype(np.float64)
    if sample_weight is not None:
        obs *= np.asarray(sample_weight, dtype=np.float64)[:, None]
    total = np.where(miss, 0.0, X).astype(np.float64)
    den = obs.sum(axis=0)
    mean = (total * obs).sum(axis=0) / np.where(den > 0, den, 1.0)
    if np.any(den == 0):  # every observed row of the column has weight 0: the plain mean
        plain = np.nanmean(np.where(miss.all(axis=0), 0.0, X), axis=0)
        mean = np.where(den > 0, mean, plain)
    out = X.copy()
    rows, cols = np.nonzero(miss)
    out[rows, cols] = mean[cols].astype(X.dtype)
    return out


# ------------------------------------------------------- structure helpers
_KINDS: dict = {}


def scatter_kind(structure, K, D):
    """How ``structure.scatter`` reduces the per-component scatter matrices:
    ``'full'`` (K, D, D), ``'sum'`` (D, D) or ``'diag'`` (K, D), found once
    from the shape it returns on a small probe."""
    key = (structure.name, K, D)
    kind = _KINDS.get(key)
    if kind is None:
        probe = np.arange(2 * D, dtype=np.float64).reshape(2, D)
        resp = np.full((2, K), 1.0 / K)
        shape = np.shape(structure.scatter(probe, resp, np.zeros((K, D))))
        if shape == (K, D, D):
            kind = "full"
        elif shape == (D, D):
            kind = "sum"
        elif shape == (K, D):
            kind = "diag"
        else:
            raise NotImplementedError(
                f"covariance_type={structure.name!r}: scatter shape {shape} is not one the missing-value "
                "E-step can build."
            )
        _KINDS[key] = kind
    return kind


def precision_matrices(params: GaussianParams, structure):
    """(K, D, D) float64 precision matrices of the components and their log
    determinants (K,)."""
    K, D = params.means.shape
    prec = np.asarray(structure.precisions(np.asarray(params.precisions_cholesky)))
    P = np.asarray(structure.full_covariances(prec, K, D), dtype=np.float64)
    if P.shape != (K, D, D):
        P = np.broadcast_to(P, (K, D, D)).copy()
    L = np.linalg.cholesky(P)
    logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    return P, logdet


def _zero_stats(params, structure):
    K, D = params.means.shape
    kind = scatter_kind(structure, K, D)
    shape = {"full": (K, D, D), "sum": (D, D), "diag": (K, D)}[kind]
    return SuffStats(nk=np.zeros(K), s1=np.zeros((K, D)), s2=np.zeros(shape), shift=params.means,
                     loglik=0.0, sum_w=0.0)


# --------------------------------------------------------------- the kernel
def _spd_inv_logdet(A):
    """Inverses and log determinants of a stack of small symmetric positive
    definite matrices ``A`` (..., m, m): closed forms for m = 1 and 2 (the
    common patterns; numpy's batched inverse costs about 0.5 us per matrix),
    Cholesky and ``inv`` otherwise."""
    m = A.shape[-1]
    if m == 1:
        return 1.0 / A, np.log(A[..., 0, 0])
    if m == 2:
        a, b, d = A[..., 0, 0], A[..., 0, 1], A[..., 1, 1]
        det = a * d - b * b
        inv = np.empty_like(A)
        inv[..., 0, 0] = d / det
        inv[..., 1, 1] = a / det
        inv[..., 0, 1] = inv[..., 1, 0] = -b / det
        return inv, np.log(det)
    if m <= _UNROLL_MAX:
        return _chol_inv_logdet(A)
    L = np.linalg.cholesky(A)
    logdet = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(axis=-1)
    inv = np.linalg.inv(A)
    return 0.5 * (inv + np.swapaxes(inv, -1, -2)), logdet


#: largest block that :func:`_chol_inv_logdet` factorizes entry by entry
_UNROLL_MAX = 8


def _chol_inv_logdet(A):
    """:func:`_spd_inv_logdet` for a stack of ``m x m`` blocks (small ``m``)
    with the batch as the fast axis: the Cholesky factor ``A = L L^T``
    (Golub & Van Loan 2013, *Matrix Computations*, 4th ed., algorithm 4.2.1),
    ``L^-1`` by forward substitution and ``A^-1 = L^-T L^-1``, each entry one
    vectorized operation over all the matrices (``O(m^3)`` operations of the
    batch's length instead of numpy's per-matrix LAPACK calls, which cost
    about 0.5 us each). The inverse is symmetric by construction."""
    shape = A.shape
    m = shape[-1]
    a = np.moveaxis(A.reshape(-1, m, m), 0, -1)  # (m, m, batch) views
    L = [[None] * m for _ in range(m)]
    diag = []
    for j in range(m):
        d = a[j, j].copy()
        for k in range(j):
            d -= L[j][k] * L[j][k]
        if not np.all(d > 0):
            raise np.linalg.LinAlgError("Matrix is not positive definite")
        d = np.sqrt(d)
        diag.append(d)
        L[j][j] = d
        for i in range(j + 1, m):
            v = a[i, j].copy()
            for k in range(j):
                v -= L[i][k] * L[j][k]
            v /= d
            L[i][j] = v
    logdet = 2.0 * np.log(np.stack(diag)).sum(axis=0)
    # W = L^-1 (lower triangular), column by column of the identity
    W = [[None] * m for _ in range(m)]
    rdiag = [1.0 / d for d in diag]
    for j in range(m):
        W[j][j] = rdiag[j]
        for i in range(j + 1, m):
            v = L[i][j] * W[j][j]
            for k in range(j + 1, i):
                v += L[i][k] * W[k][j]
            W[i][j] = -v * rdiag[i]
    inv = np.empty((m, m, a.shape[-1]))
    for i in range(m):
        for j in range(i + 1):
            v = W[i][i] * W[i][j]  # (W^T W)_ij = sum_{k >= i} W_ki W_kj
            for k in range(i + 1, m):
                v = v + W[k][i] * W[k][j]
            inv[i, j] = v
            inv[j, i] = v
    return np.moveaxis(inv, -1, 0).reshape(shape), logdet.reshape(shape[:-2])


class _Group:
    """Rows sharing a number ``m`` of missing entries (``0 < m < D``), with
    their conditional quantities under every component.

    Attributes: ``log_dens`` (K, n) ``log N(x_O | k)``; ``Z`` (K, n, D) the
    completed rows minus the means; ``pats`` (P, m) the missing columns of each
    pattern; ``pat_of_row`` (n,); ``C`` (K, P, m, m) conditional covariances.
    """

    __slots__ = ("log_dens", "Z", "pats", "pat_of_row", "C")


def _group(Xg, missg, m, means, P, logdetP):
    """Conditional means, covariances and marginal log densities of rows that
    all have ``m`` missing entries (see the module docstring for the formulas)."""
    n, D = Xg.shape
    g = _Group()
    Z = Xg[None, :, :] - means[:, None, :]  # (K, n, D); NaN where missing
    if m == 0:
        PZ = Z @ P
        q = np.einsum("knd,knd->kn", Z, PZ)
        g.log_dens = 0.5 * logdetP[:, None] - 0.5 * D * LOG_2PI - 0.5 * np.maximum(q, 0.0)
        g.Z, g.pats, g.pat_of_row, g.C = Z, None, None, None
        return g
    idx = np.nonzero(missg)[1].reshape(n, m)
    if D <= 62:  # one integer key per pattern: a 1-d unique instead of a row-wise one
        key = missg.astype(np.int64) @ (np.int64(1) << np.arange(D, dtype=np.int64))
        _, first, pat_of_row = np.unique(key, return_index=True, return_inverse=True)
        pats = idx[first]
    else:
        pats, pat_of_row = np.unique(idx, axis=0, return_inverse=True)
    pat_of_row = pat_of_row.reshape(-1)
    Z[:, missg] = 0.0
    PZ = Z @ P  # P symmetric: rows of (P z)^T
    q0 = np.einsum("knd,knd->kn", Z, PZ)
    b = np.take_along_axis(PZ, idx[None, :, :], axis=2)  # (K, n, m) = (P z)_M
    PMM = P[:, pats[:, :, None], pats[:, None, :]]  # (K, P, m, m)
    C, logdetMM = _spd_inv_logdet(PMM)  # (K, P, m, m), (K, P)
    Crow = C[:, pat_of_row]  # (K, n, m, m)
    zM = -np.matmul(Crow, b[..., None])[..., 0]
    q = q0 + np.einsum("kni,kni->kn", b, zM)
    g.log_dens = (0.5 * (logdetP[:, None] - logdetMM[:, pat_of_row]) - 0.5 * (D - m) * LOG_2PI
                  - 0.5 * np.maximum(q, 0.0))
    np.put_along_axis(Z, np.broadcast_to(idx[None, :, :], zM.shape), zM, axis=2)
    g.Z, g.pats, g.pat_of_row, g.C = Z, pats, pat_of_row, C
    return g


def _groups(X, means, P, logdetP, rows):
    """``(row indices, _Group)`` for the rows ``rows`` of ``X`` (each with at
    least one observed entry), grouped by their number of missing entries and
    cut into chunks whose (K, n, D) temporaries stay about ``_CHUNK_ELEMS``."""
    K, D = means.shape
    miss = np.isnan(X[rows])
    counts = miss.sum(axis=1)
    order = np.argsort(counts, kind="stable")
    chunk = max(1, _CHUNK_ELEMS // max(1, K * D))
    bounds = np.flatnonzero(np.diff(counts[order])) + 1
    for seg in np.split(order, bounds):
        if seg.size == 0:
            continue
        m = int(counts[seg[0]])
        for start in range(0, seg.size, chunk):
            part = seg[start:start + chunk]
            Xg = np.asarray(X[rows[part]], dtype=np.float64)
            yield rows[part], _group(Xg, miss[part], m, means, P, logdetP)


def marginal_log_prob(X, means, P, logdetP):
    """(n, K) ``log N(x_nO | mu_kO, Sigma_kOO)``, float64: each row's density
    over its observed coordinates (0 for a row with none)."""
    n = X.shape[0]
    K = means.shape[0]
    out = np.zeros((n, K))
    n_obs = X.shape[1] - np.isnan(X).sum(axis=1)
    rows = np.flatnonzero(n_obs > 0)
    for r, g in _groups(X, np.asarray(means, dtype=np.float64), P, logdetP, rows):
        out[r] = g.log_dens.T
    return out


def _fixed_resp(lp, labels, sample_weight):
    """Responsibilities (n, K) and the weighted objective of rows with weighted
    log densities ``lp``: labelled rows (``labels >= 0``) take the indicator
    of their label and ``lp[n, y_n]``, the others the posterior and
    ``logsumexp_k lp[n, k]``."""
    n, K = lp.shape
    ll = np.empty(n)
    lab = labels >= 0 if labels is not None else np.zeros(n, dtype=bool)
    if lab.any():
        li = np.flatnonzero(lab)
        ll[li] = lp[li, labels[li]]
    un = ~lab
    resp = np.zeros((n, K))
    if un.any():
        norm, r = normalize_log(np.array(lp[un], dtype=np.float64))
        resp[un] = r
        ll[un] = norm
    if lab.any():
        resp[li, labels[li]] = 1.0
    with np.errstate(invalid="ignore"):
        loglik = float(ll.sum() if sample_weight is None else ll @ np.asarray(sample_weight, np.float64))
    return resp, loglik


#: runs (consecutive rows of one pattern) whose per-component quantities are built at once
_PATTERN_CHUNK = 128


def _reduce_scatter(S, kind):
    """(K, D, D) completed scatter matrices as the structure's ``scatter``
    returns them."""
    if kind == "full":
        return S
    if kind == "sum":
        return S.sum(axis=0)
    return np.diagonal(S, axis1=1, axis2=2).copy()


#: shortest run of one pattern that takes the pattern-wise path (its per-run
#: cost is ``O(K m D^2)``, that of the row-wise path ``O(K D^2)`` per row)
LIFT_MIN = 8


def _lift_min(D):
    return LIFT_MIN


def _direct_stats(X, w, params, rows, labels, P, logdetP, acc):
    """Add to ``acc`` = (nk, s1, S (K, D, D), [loglik, sum_w]) the statistics
    of the rows ``rows`` of ``X``, each completed row by row under every
    component (:func:`_group`): for rows whose pattern is rare."""
    K, D = params.means.shape
    nk, s1, S, tot = acc
    means = np.asarray(params.means, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logw = np.log(np.asarray(params.weights, dtype=np.float64))
    corr = np.zeros(K * D * D)
    for r, g in _groups(X, means, P, logdetP, rows):
        wr = None if w is None else np.asarray(w[r], dtype=np.float64)
        resp, ll = _fixed_resp(g.log_dens.T + logw, None if labels is None else labels[r], wr)
        tot[0] += ll
        tot[1] += float(len(r)) if wr is None else float(wr.sum())
        if wr is not None:
            resp *= wr[:, None]
        RT = np.ascontiguousarray(resp.T)  # (K, n)
        nk += RT.sum(axis=1)
        s1 += np.matmul(RT[:, None, :], g.Z)[:, 0, :]
        S += np.matmul(np.swapaxes(g.Z * RT[:, :, None], 1, 2), g.Z)
        if g.C is None:
            continue
        n_pat = g.pats.shape[0]
        Rp = np.zeros((n_pat, K))
        np.add.at(Rp, g.pat_of_row, resp)
        kk = np.arange(K)[:, None, None, None]
        lin = (kk * D + g.pats[None, :, :, None]) * D + g.pats[None, :, None, :]
        vals = Rp.T[:, :, None, None] * g.C
        corr += np.bincount(np.broadcast_to(lin, vals.shape).ravel(), vals.ravel(), minlength=corr.size)
    S += corr.reshape(K, D, D)


def _run_stats(X, w, labels, G, starts, stops, idx, params, P, logdetP, acc):
    """Add to ``acc`` the statistics of runs of rows that all miss ``m``
    entries (run ``q`` is ``starts[q]:stops[q]`` of the design ``G`` and of
    ``X, w, labels``, missing the columns ``idx[q]``).

    Per run and component, with ``C = (P_MM)^-1`` and ``B = -C P_M.`` (the
    ``m x D`` rows of the completion, 0 on the missing columns), the marginal
    precision of the observed block is ``Lambda = P + P_.M B`` (its ``O x
    O`` block; entries touching ``M`` meet zeros of the design), which gives
    the coefficients of one GEMM for the log densities. One GEMM per run gives
    the observed block's sums, and the completed scatter is ``S + B S +
    (B S)^T + B S B^T + n_k C`` (the last three in the ``M`` rows/columns).
    """
    K, D = params.means.shape
    nk, s1, S, tot = acc
    n_run, m = idx.shape
    c = np.asarray(params.means, dtype=np.float64)
    mk = c - c.mean(axis=0)
    with np.errstate(divide="ignore"):
        logw = np.log(np.asarray(params.weights, dtype=np.float64))
    obs = np.ones((n_run, D))
    np.put_along_axis(obs, idx, 0.0, axis=1)
    kk = np.arange(K)
    PMM = P[kk[None, :, None, None], idx[:, None, :, None], idx[:, None, None, :]]  # (n, K, m, m)
    C, logdetMM = _spd_inv_logdet(PMM)
    PM = P[kk[None, :, None], idx[:, None, :], :]  # (n, K, m, D): rows M of P
    B = -(C @ PM) * obs[:, None, None, :]
    Lam = P[None] + np.swapaxes(PM, -1, -2) @ B
    Lam = 0.5 * (Lam + np.swapaxes(Lam, -1, -2))
    mt = mk[None] * obs[:, None, :]
    Lm = np.einsum("pkij,pkj->pki", Lam, mt)
    i, j = np.triu_indices(D)
    nq = len(i)
    top = logw + 0.5 * (logdetP - logdetMM) - 0.5 * (D - m) * LOG_2PI  # the largest log density
    const = top - 0.5 * np.einsum("pkd,pkd->pk", mt, Lm)
    quad = np.take(Lam.reshape(n_run, K, D * D), i * D + j, axis=2)
    quad *= np.where(i == j, -0.5, -1.0)
    coef = np.concatenate([quad, Lm, const[:, :, None]], axis=2)
    # the log densities of all runs side by side, then one pass for the
    # responsibilities of the whole chunk (not one per run)
    lens = stops - starts
    offs = np.concatenate([[0], np.cumsum(lens)]).astype(np.intp)
    LP = np.empty((K, int(offs[-1])))
    for q in range(n_run):
        np.matmul(coef[q], G[:, starts[q]:stops[q]], out=LP[:, offs[q]:offs[q + 1]])
    np.minimum(LP, np.repeat(top.T, lens, axis=1), out=LP)  # the quadratic form is >= 0
    rows_of = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)]) if n_run > 1 else \
        np.arange(starts[0], stops[0])
    wq = None if w is None else w[rows_of]
    lq = None if labels is None else labels[rows_of]
    if lq is None or not np.any(lq >= 0):
        RT, ll, sw = resp_from_logp_T(LP, wq)
    else:
        resp, ll = _fixed_resp(LP.T, lq, wq)
        sw = float(len(rows_of)) if wq is None else float(wq.sum())
        RT = resp.T if wq is None else resp.T * wq
    tot[0] += ll
    tot[1] += sw
    H = np.empty((n_run, K, G.shape[0]))
    for q in range(n_run):
        np.matmul(RT[:, offs[q]:offs[q + 1]], G[:, starts[q]:stops[q]].T, out=H[q])
    nkp = H[:, :, -1]
    bsum = H[:, :, nq:nq + D]
    tri = np.empty((D, D), dtype=np.intp)  # position of (i, j) and (j, i) among the products
    tri[i, j] = tri[j, i] = np.arange(nq)
    Sob = np.take(H, tri.ravel(), axis=2).reshape(n_run, K, D, D)
    # sum r (xc - mt)(xc - mt)^T = sum r xc xc^T - u mt^T - mt u^T with u = sum r xc - n_k mt / 2
    u = bsum - 0.5 * nkp[..., None] * mt
    bm = u[..., :, None] * mt[..., None, :]
    Sob -= bm
    Sob -= np.swapaxes(bm, -1, -2)
    s1o = bsum - nkp[..., None] * mt
    nk += nkp.sum(axis=0)
    s1 += s1o.sum(axis=0)
    S += Sob.sum(axis=0)
    Y = B @ Sob  # (n, K, m, D): rows M of B S
    s1M = np.einsum("pkmd,pkd->pkm", B, s1o)
    YB = Y @ np.swapaxes(B, -1, -2) + nkp[..., None, None] * C  # (n, K, m, m)
    # scatter the M rows / columns into the (K, D, D) sums
    kq = kk[None, :, None]
    np.add.at(s1, (np.broadcast_to(kq, s1M.shape), np.broadcast_to(idx[:, None, :], s1M.shape)), s1M)
    rows_i = (kk[None, :, None, None] * D + idx[:, None, :, None]) * D + np.arange(D)[None, None, None, :]
    cols_i = (kk[None, :, None, None] * D + np.arange(D)[None, None, None, :]) * D + idx[:, None, :, None]
    mm_i = (kk[None, :, None, None] * D + idx[:, None, :, None]) * D + idx[:, None, None, :]
    size = K * D * D
    add = np.bincount(np.broadcast_to(rows_i, Y.shape).ravel(), Y.ravel(), minlength=size)
    add += np.bincount(np.broadcast_to(cols_i, Y.shape).ravel(), Y.ravel(), minlength=size)
    add += np.bincount(np.broadcast_to(mm_i, YB.shape).ravel(), YB.ravel(), minlength=size)
    S += add.reshape(K, D, D)


def _partial_stats(X, w, params, structure, rows, labels, P, logdetP):
    """Statistics of the rows ``rows`` of ``X`` (each with a missing and an
    observed entry), completed by their conditional moments (Little & Rubin
    2002, section 11.2).

    Runs of at least :func:`_lift_min` consecutive rows sharing one pattern
    (rows sorted by :func:`pattern_order` give long ones) take
    :func:`_run_stats`: one design matrix of the block
    (:func:`emix.families.gaussian._gram.design_T`, with the missing
    coordinates at the center so that every product involving them is 0),
    per run one GEMM for the log densities over the observed coordinates and
    one for the observed block's sums, completed afterwards. The other rows
    take :func:`_direct_stats`.
    """
    from ..families.gaussian._gram import design_T

    K, D = params.means.shape
    kind = scatter_kind(structure, K, D)
    acc = (np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D)), [0.0, 0.0])
    miss = np.isnan(X[rows])
    n = len(rows)
    cut = np.flatnonzero(np.any(miss[1:] != miss[:-1], axis=1) | (np.diff(rows) != 1)) + 1
    starts = np.concatenate([[0], cut]).astype(np.intp)
    stops = np.concatenate([cut, [n]]).astype(np.intp)
    long = (stops - starts) >= _lift_min(D)
    if long.any():
        lo, hi = starts[long], stops[long]
        sel = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)])
        Xl = np.asarray(X[rows[sel]], dtype=np.float64)
        ml = miss[sel]
        g = np.asarray(params.means, dtype=np.float64).mean(axis=0)
        G = design_T(np.where(ml, g, Xl), g)  # (W, n); exact zeros for the missing coordinates
        lens = hi - lo
        ls = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.intp)
        le = ls + lens
        wl = None if w is None else np.asarray(w[rows[sel]], dtype=np.float64)
        ll_ = None if labels is None else labels[rows[sel]]
        counts = ml[ls].sum(axis=1)
        for m in np.unique(counts):
            runs = np.flatnonzero(counts == m)
            for c0 in range(0, len(runs), _PATTERN_CHUNK):
                rq = runs[c0:c0 + _PATTERN_CHUNK]
                idx = np.nonzero(ml[ls[rq]])[1].reshape(len(rq), int(m))
                _run_stats(Xl, wl, ll_, G, ls[rq], le[rq], idx, params, P, logdetP, acc)
    if not long.all():
        short = np.concatenate([rows[a:b] for a, b in zip(starts[~long], stops[~long])])
        _direct_stats(X, w, params, short, labels, P, logdetP, acc)
    nk, s1, S, tot = acc
    return SuffStats(nk=nk, s1=s1, s2=_reduce_scatter(S, kind), shift=params.means, loglik=tot[0],
                     sum_w=tot[1])


def pattern_order(X):
    """A row order grouping equal missingness patterns (by number of missing
    entries, then pattern), stable: fitting on ``X[order]`` gives the E-step
    long runs of one pattern."""
    miss = np.isnan(X)
    n_miss = miss.sum(axis=1)
    if X.shape[1] <= 62:
        key = miss.astype(np.int64) @ (np.int64(1) << np.arange(X.shape[1], dtype=np.int64))
    else:
        key = np.unique(miss, axis=0, return_inverse=True)[1].reshape(-1)
    return np.lexsort((key, n_miss))


def e_step(X, sample_weight, params: GaussianParams, structure, labels=None) -> SuffStats:
    """E-step on a block of rows that may hold NaN (missing entries) and
    known labels.

    Rows without missing values take :func:`emix.core.em.e_step` (the
    structure's fused kernel), rows with some missing the conditional moments
    of this module (long runs of one pattern through the complete-data kernel
    on their observed columns, the rest batched), rows with none observed
    nothing. A block without NaN and labels gives exactly
    :func:`emix.core.em.e_step`. Statistics are shifted at ``params.means``
    and add with those of other blocks. Rows sorted by :func:`pattern_order`
    run fastest.

    Parameters
    ----------
    X : ndarray of shape (n, D), NaN for a missing entry
    sample_weight : ndarray of shape (n,) or None
    params : GaussianParams (no noise component)
    structure : the covariance structure (``emix.families.gaussian``)
    labels : ndarray of shape (n,) of ints or None
        A component index for a labelled row, -1 for an unlabelled one.
    """
    if params.noise_weight is not None:
        raise NotImplementedError("Missing values and labels are not supported with a noise component.")
    D = X.shape[1]
    miss = np.isnan(X)
    n_miss = miss.sum(axis=1)
    lab = labels is not None and bool(np.any(labels >= 0))
    if not n_miss.any() and not lab:
        return em.e_step(X, sample_weight, params, structure)
    complete = np.flatnonzero(n_miss == 0)
    partial = np.flatnonzero((n_miss > 0) & (n_miss < D))
    total = _zero_stats(params, structure)
    if complete.size:
        Xc = X[complete]
        wc = None if sample_weight is None else sample_weight[complete]
        lc = None if labels is None else labels[complete]
        if lc is None or not np.any(lc >= 0):
            total = total + em.e_step(Xc, wc, params, structure)
        else:
            lp = np.asarray(em.weighted_log_prob(Xc, params, structure), dtype=np.float64)
            resp, ll = _fixed_resp(lp, lc, None if wc is None else wc.astype(np.float64))
            total = total + em.stats_from_resp(Xc, wc, resp.astype(Xc.dtype), params.means, structure, ll)
    if partial.size:
        P, logdetP = precision_matrices(params, structure)
        total = total + _partial_stats(X, sample_weight, params, structure, partial, labels, P, logdetP)
    return total


# ------------------------------------------------------- structure wrapper
class IncompleteStructure:
    """A covariance structure that takes rows with NaN (and, with
    ``labelled``, a last column of labels): ``suff_stats`` is :func:`e_step`
    and ``log_prob`` the marginal density over each row's observed
    coordinates; everything else is the wrapped structure's. Passed to the
    unchanged EM loop (:func:`emix.core.em.fit`), restarts and inference."""

    def __init__(self, base, labelled=False):
        self.base = base
        self.labelled = bool(labelled)

    def __getattr__(self, name):
        if name in ("base", "labelled") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def __repr__(self):
        return f"IncompleteStructure({self.base.name!r}, labelled={self.labelled})"

    def suff_stats(self, X, sample_weight, params):
        labels = None
        if self.labelled:
            labels = X[:, -1].astype(np.intp)
            X = X[:, :-1]
        return e_step(X, sample_weight, params, self.base, labels)

    def far_log_prob(self, X, params):
        """Far rows (see :func:`emix.core.em.far_log_prob`) over their
        observed coordinates: :func:`far_log_prob`."""
        return far_log_prob(X, params, self.base)

    def log_prob(self, X, means, prec_chol):
        if not has_missing(X):
            return self.base.log_prob(X, means, prec_chol)
        K, D = means.shape
        params = GaussianParams(weights=np.ones(K), means=means, covariances=None, precisions_cholesky=prec_chol)
        P, logdetP = precision_matrices(params, self.base)
        return marginal_log_prob(X, means, P, logdetP).astype(X.dtype, copy=False)


def far_log_prob(X, params: GaussianParams, structure):
    """:func:`emix.core.em.far_log_prob` for rows that may hold NaN: each row
    over its observed coordinates ``O``, under the marginal components
    ``N(mu_kO, Sigma_kOO)``, whose precision is the Schur complement
    ``Lambda_k = P_OO - P_OM P_MM^-1 P_MO`` of the missing block in ``P_k``
    (Little & Rubin 2002, section 11.2). Rows sharing a pattern go through the
    complete-data routine together, on their observed columns with the
    ``'full'`` structure of ``Lambda``; a row with nothing observed gets
    ``log pi_k`` (its density is 1). Returns ``(lp_ref, rel)`` as that
    routine does."""
    from ..families.gaussian import get_structure

    X = np.asarray(X, dtype=np.float64)
    n, D = X.shape
    K = params.means.shape[0]
    miss = np.isnan(X)
    if not miss.any():
        return em.far_log_prob(X, params, structure)
    if params.noise_weight is not None:
        raise NotImplementedError("Missing values are not supported with a noise component.")
    P, _ = precision_matrices(params, structure)
    means = np.asarray(params.means, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logw = np.log(np.asarray(params.weights, dtype=np.float64))
    full = get_structure("full")
    ref, rel = np.empty(n), np.empty((n, K))
    pats, inv = np.unique(miss, axis=0, return_inverse=True)
    for u, pat in enumerate(pats):
        rows = np.flatnonzero(inv.reshape(-1) == u)
        o, m = ~pat, pat
        if not o.any():
            top = logw.max()
            ref[rows], rel[rows] = top, logw - top
            continue
        if not m.any():
            ref[rows], rel[rows] = em.far_log_prob(X[rows], params, structure)
            continue
        POO, POM, PMM = P[:, o][:, :, o], P[:, o][:, :, m], P[:, m][:, :, m]
        Lam = POO - POM @ np.linalg.solve(PMM, np.swapaxes(POM, 1, 2))
        Lam = 0.5 * (Lam + np.swapaxes(Lam, 1, 2))
        sub = GaussianParams(weights=params.weights, means=means[:, o], covariances=None,
                             precisions_cholesky=np.linalg.cholesky(Lam))
        ref[rows], rel[rows] = em.far_log_prob(X[np.ix_(rows, np.flatnonzero(o))], sub, full)
    return ref, rel


def _weighted_lp(X, params, structure):
    """(n, K) float64 ``log pi_k + log N(x_nO | k)``."""
    P, logdetP = precision_matrices(params, structure)
    with np.errstate(divide="ignore"):
        logw = np.log(np.asarray(params.weights, dtype=np.float64))
    return marginal_log_prob(X, params.means, P, logdetP) + logw, P


# ----------------------------------------------------------- imputation
def _conditional_means(X, params, structure):
    """Posterior responsibilities (n, K) and, per component, the completed
    rows (K, n, D) (observed entries kept, missing ones at their conditional
    mean), and the per-row conditional covariances by component."""
    n, D = X.shape
    K = params.n_components
    lp, P = _weighted_lp(X, params, structure)
    _, resp = normalize_log(lp)
    means = np.asarray(params.means, dtype=np.float64)
    Xf = np.asarray(X, dtype=np.float64)
    comp = np.broadcast_to(Xf, (K, n, D)).copy()
    logdetP = np.linalg.slogdet(P)[1]
    n_obs = D - np.isnan(X).sum(axis=1)
    every = np.flatnonzero(n_obs == 0)
    comp[:, every, :] = means[:, None, :]
    some = np.flatnonzero((n_obs > 0) & (n_obs < D))
    covs = {}
    for r, g in _groups(X, means, P, logdetP, some):
        comp[:, r, :] = g.Z + means[:, None, :]
        if g.C is not None:
            for j, row in enumerate(r):
                covs[int(row)] = (g.pats[g.pat_of_row[j]], g.C[:, g.pat_of_row[j]])
    for row in every:
        Sigma = np.linalg.inv(P)
        covs[int(row)] = (np.arange(D), Sigma)
    return resp, comp, covs


def impute(X, params: GaussianParams, structure):
    """``X`` with each missing entry replaced by its conditional expectation
    under the mixture, ``E[x_M | x_O] = sum_k r_k(x_O) E[x_M | x_O, k]``
    (``r_k(x_O)`` the responsibilities from the observed coordinates)."""
    X = np.asarray(X)
    if not has_missing(X):
        return X.copy()
    resp, comp, _ = _conditional_means(X, params, structure)
    filled = np.einsum("nk,knd->nd", resp, comp)
    out = X.copy()
    miss = np.isnan(X)
    out[miss] = filled[miss].astype(X.dtype)
    return out


def sample_missing(X, params: GaussianParams, structure, n_imputations, rng):
    """``n_imputations`` draws of the missing entries of ``X`` from their
    conditional distribution under the mixture (multiple imputation): for each
    row and draw, a component from ``r_k(x_O)``, then ``x_M`` from
    ``N(E[x_M | x_O, k], C_k)``. Returns (n_imputations, n, D); observed
    entries are those of ``X``."""
    X = np.asarray(X)
    n, D = X.shape
    out = np.broadcast_to(X, (n_imputations, n, D)).copy()
    if not has_missing(X):
        return out
    resp, comp, covs = _conditional_means(X, params, structure)
    cum = np.cumsum(resp, axis=1)
    for row, (cols, C) in sorted(covs.items()):
        u = rng.random_sample(n_imputations)
        ks = np.minimum(np.searchsorted(cum[row], u * cum[row, -1], side="right"), resp.shape[1] - 1)
        for t, k in enumerate(ks):
            L = np.linalg.cholesky(C[k])
            draw = comp[k, row, cols] + L @ rng.standard_normal(len(cols))
            out[t, row, cols] = draw.astype(X.dtype)
    return out


# --------------------------------------------------------------- the loop
def fit(reduce, params0: GaussianParams, structure, *, tol, max_iter, reg_covar, lower_bound0=-math.inf,
        callback=None, fixed=(), prior=None, equal_proportions=False) -> FitResult:
    """:func:`emix.core.em.fit` with some parameters held at ``params0``'s
    values (``fixed``, a tuple of names among :data:`FIXABLE`): a generalized
    EM step, so the likelihood never decreases. Fixed means zero the first
    moments around the previous (fixed) means before the M-step, so the
    covariances are the scatter around them; fixed weights and covariances
    are put back after it. ``structure`` may be an
    :class:`IncompleteStructure` (missing values, labels)."""
    fixed = check_fixed(fixed)
    dtype = params0.means.dtype
    extra = {} if prior is None else {"prior": prior}
    if equal_proportions:
        extra["equal_proportions"] = True

    def e(current):
        return reduce(lambda Xb, wb: em.e_step(Xb, wb, current, structure))

    def m(stats, current):
        if "means" in fixed:
            stats = SuffStats(nk=stats.nk, s1=np.zeros_like(stats.s1), s2=stats.s2, shift=stats.shift,
                              loglik=stats.loglik, sum_w=stats.sum_w, n0=stats.n0)
        new = em.m_step(stats, structure, reg_covar, dtype, previous=current, **extra)
        changes = {}
        if "means" in fixed:
            changes["means"] = current.means
        if "weights" in fixed:
            changes["weights"] = current.weights
        if "covariances" in fixed:
            changes["covariances"] = current.covariances
            changes["precisions_cholesky"] = current.precisions_cholesky
        return new.replace(**changes) if changes else new

    return run_em(e, m, params0, tol=tol, max_iter=max_iter, lower_bound0=lower_bound0, callback=callback)


def labelled_loglik(model, X, labels, sample_weight=None):
    """The semi-supervised objective of a fitted GaussianMixture on ``X``
    with known ``labels`` (-1: unlabelled), and each row's log largest
    responsibility (0 for a labelled row, whose responsibility is fixed to
    its label): ``sum_labelled w log pi_y N(x_O | y) + sum_unlabelled w log
    p(x_O)`` (McLachlan & Peel 2000, section 2.19), what ``select`` ranks
    semi-supervised cells by. Returns ``(loglik, log_max)``."""
    X = model._check_X(X)
    labels = check_labels(labels, X.shape[0], model.n_components)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    lp = np.asarray(em.weighted_log_prob(X, model._params(), model._structure_for(X)), dtype=np.float64)
    resp, ll = _fixed_resp(lp, labels, w)
    with np.errstate(divide="ignore"):
        log_max = np.log(resp.max(axis=1))
    return ll, log_max


def params_from_resp(X, sample_weight, resp, structure, reg_covar, dtype):
    """Weighted maximum-likelihood parameters of complete rows ``X`` with
    responsibilities ``resp`` (one M-step; statistics centered at the
    component means so that nothing cancels)."""
    r = resp.astype(np.float64)
    if sample_weight is not None:
        r = r * np.asarray(sample_weight, dtype=np.float64)[:, None]
    den = r.sum(axis=0)
    Xf = np.asarray(X, dtype=np.float64)
    overall = Xf.mean(axis=0)
    means = np.where((den > 0)[:, None], (r.T @ Xf) / np.where(den > 0, den, 1.0)[:, None], overall)
    stats = em.stats_from_resp(X, sample_weight, resp.astype(X.dtype), means.astype(X.dtype), structure)
    return em.m_step(stats, structure, reg_covar, dtype)


def label_resp(X, labels, n_components, rng=None):
    """Initial responsibilities from known labels: labelled rows take their
    label; unlabelled rows go to the nearest labelled class mean (Euclidean)
    when every component has labelled rows. Returns ``(resp, complete)``
    where ``complete`` says whether every component had labelled rows (else
    the caller fills the unlabelled rows from its usual initialization)."""
    n = X.shape[0]
    K = n_components
    resp = np.zeros((n, K))
    lab = labels >= 0
    resp[np.flatnonzero(lab), labels[lab]] = 1.0
    seen = np.unique(labels[lab])
    if len(seen) < K:
        return resp, False
    Xf = np.asarray(X, dtype=np.float64)
    centers = np.stack([Xf[labels == k].mean(axis=0) for k in range(K)])
    un = np.flatnonzero(~lab)
    if un.size:
        d = ((Xf[un, None, :] - centers[None]) ** 2).sum(axis=2)
        resp[un, np.argmin(d, axis=1)] = 1.0
    return resp, True


def align_to_labels(resp, labels):
    """Permute the columns of initial responsibilities ``resp`` (e.g. from
    k-means) so that each labelled class keeps the column holding most of its
    labelled rows (an assignment problem, ``linear_sum_assignment``), then fix
    the labelled rows to their label: when some components have no labelled
    rows, the others still start where their labels are."""
    from scipy.optimize import linear_sum_assignment

    K = resp.shape[1]
    lab = labels >= 0
    counts = np.zeros((K, K))
    np.add.at(counts, labels[lab], resp[lab])
    cls, col = linear_sum_assignment(-counts)
    perm = np.empty(K, dtype=np.intp)
    perm[cls] = col  # new column k is old column perm[k]
    out = np.array(resp[:, perm], dtype=resp.dtype)
    out[lab] = 0.0
    out[np.flatnonzero(lab), labels[lab]] = 1.0
    return out


__all__ = [
    "align_to_labels",
    "FIXABLE", "MISSING_OPTIONS", "IncompleteStructure", "check_fixed", "check_labels", "check_missing_option",
    "check_observed_columns", "column_fill", "e_step", "fit", "has_missing", "impute", "label_resp",
    "labelled_loglik",
    "marginal_log_prob", "params_from_resp", "precision_matrices", "sample_missing", "scatter_kind",
]
