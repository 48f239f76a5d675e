"""mclust's initialization, exactly: ``init_params='mclust'``.

What ``mclustBIC`` (R package mclust 6, Scrucca et al. 2016) does before and
around EM, re-implemented from its documented behaviour and from Fraley
(1998); no mclust code is included:

1. **Transformation** (``mclust.options("hcUse") = "SVD"``, :func:`svd_transform`):
   standardize every column (centre, divide by the standard deviation with
   ``n - 1``; drop non-finite columns), take the thin SVD ``Xs = U diag(s) V^T``
   and cluster ``Z = Xs V diag(1/sqrt(s))``. (Not a full whitening: the column
   variances of ``Z`` are ``s_k / (n - 1)``.)
2. **Tree** (``hc(modelName = "VVV")``, :func:`hc_pairs`): agglomerative
   clustering from singletons, each stage merging the pair of clusters that
   increases ``sum_k T(k)`` least, with Fraley's (1998, Section 3.4)
   regularized unconstrained-model term for a cluster of ``m`` rows with
   scatter matrix ``W`` (``tr = trace(W)``)::

       T = m log( beta (tr + alpha) / m )                  if m <= p
       T = m log( alpha beta / m )                         if tr = 0
       T = m log( det(W / m) + beta (tr + alpha) / m )     otherwise

   (a singleton has ``T = log(alpha beta)``), with ``beta = 1`` and
   ``alpha = trace(W_data) / (n p)``, the mean per-coordinate variance of
   ``Z`` (divisor ``n``). ``det(W/m)`` alone is mclust's classification
   likelihood term for the unconstrained model (Banfield & Raftery 1993);
   the trace term keeps it finite for small clusters. When ``n <= p``
   mclust uses the spherical model (EII: Ward's criterion, the increase of
   the pooled trace). Ties go as in mclust: among equal costs the pair
   ``(i, j)``, ``i < j``, with the largest ``j`` and then the largest ``i``
   in the current numbering, where a merge keeps the merged cluster at
   ``i`` and moves the last cluster into ``j``.
3. **Partitions** (``hclass``, :func:`hclass`): the tree cut at each ``K``.
   The merge pairs are reported as mclust reports them: each cluster is
   named by the smallest (1-based) row index in it.
4. **Subset rule**: with more than ``mclust.options("subset") = 2000`` rows
   the tree is built on 2000 rows drawn at random (mclust draws them with R's
   RNG, so the draw itself cannot be reproduced); the other rows then get
   the E-step responsibilities of the M-step fitted on the subset (per model,
   in :func:`mclust_em`).
5. **One feature**: no tree; ``qclass`` — ``K`` classes between quantiles
   (:func:`qclass`).
6. **EM** (``me``, :func:`mclust_em`): an M-step from the hard partition,
   then E- and M-steps until ``|L_t - L_{t-1}| / (1 + |L_t|) < tol`` (mclust's
   ``emControl()$tol[1] = 1e-5``), reporting the parameters of the last
   M-step and their log-likelihood ``L_t``, without regularization. A fit
   whose covariance becomes singular (reciprocal condition number
   ``<= emControl()$eps``, machine epsilon) or whose mixing proportion falls
   to 0 is a failed cell (mclust's NA).

References
----------
Fraley, C. (1998). Algorithms for model-based Gaussian hierarchical
clustering. *SIAM J. Sci. Comput.* 20, 270-281.
Banfield, J. D. & Raftery, A. E. (1993). Model-based Gaussian and
non-Gaussian clustering. *Biometrics* 49, 803-821.
Scrucca, L., Fop, M., Murphy, T. B. & Raftery, A. E. (2016). mclust 5.
*The R Journal* 8(1), 289-317. mclust 6.0.0 (R package, GPL >= 2) was the
behaviour compared with (``benchmarks/mclust_reference.R``).
"""

from __future__ import annotations

import math

import numpy as np

try:  # the compiled merge loop (src/emix/_hc_kernels.c); optional: numpy otherwise
    from .. import _hc_kernels
except ImportError:  # pragma: no cover - built without a C compiler
    _hc_kernels = None

#: mclust.options("subset"): rows above which the tree uses a random subset.
MCLUST_SUBSET = 2000
#: emControl()$tol[1]: relative log-likelihood change that stops EM.
MCLUST_TOL = 1e-5
_FLMAX = np.finfo(np.float64).max
_RTHALF = 0.7071067811865476


def svd_transform(X):
    """mclust's ``hc(use = "SVD")`` transformation of the data (see module notes).

    Returns ``Z`` of shape (n, min(n, p')) where p' counts the columns with a
    finite standardized value (constant columns are dropped).
    """
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    mean = X.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(((X - mean) ** 2).sum(axis=0) / max(n - 1, 1))
        Xs = (X - mean) / sd
    Xs = Xs[:, np.all(np.isfinite(Xs), axis=0)]
    p = min(Xs.shape)
    _, s, Vt = np.linalg.svd(Xs, full_matrices=False)
    s, Vt = s[:p], Vt[:p]
    with np.errstate(divide="ignore"):
        return (Xs @ Vt.T) / np.sqrt(s)


def _vvv_term(m, W, tr, p, alpha, beta):
    """Fraley's (1998) regularized VVV term ``T`` for stacks ``m`` (k,),
    ``W`` (k, p, p), ``tr`` (k,) (see the module notes)."""
    m = np.asarray(m, dtype=np.float64)
    base = beta * (tr + alpha) / m
    out = m * np.log(base)
    big = (m > p) & (tr != 0)
    out = np.where((m > p) & (tr == 0), m * np.log(alpha * beta / m), out)
    if np.any(big):
        sign, logdet = np.linalg.slogdet(W[big] / m[big][:, None, None])
        b = base[big]
        ok = sign > 0
        ld = np.where(ok, logdet, 0.0)
        with np.errstate(over="ignore", under="ignore"):
            small = np.log(np.exp(np.minimum(ld, 0.0)) + b)
            large = np.log1p(np.exp(-np.maximum(ld, 0.0)) * b) + ld
        val = np.where(ld <= 0, small, large)
        val = np.where(ok, val, np.log(b))  # a singular W: the trace term alone
        out[big] = m[big] * val
    return out


def hc_pairs(Z, model="VVV", alpha=1.0, beta=1.0, compiled=True):
    """Merge sequence of mclust's ``hc()`` on already transformed rows ``Z``.

    Parameters
    ----------
    Z : ndarray of shape (n, p)
    model : {'VVV', 'EII'}
        'VVV': Fraley's regularized unconstrained criterion (mclust's default);
        'EII': Ward's criterion (mclust's choice when n <= p).
    alpha, beta : float
        mclust's ``hcVVV`` tuning constants; ``alpha`` is multiplied by
        ``trace(W_data) / (n p)`` as mclust does.
    compiled : bool
        Use the compiled merge loop (``emix._hc_kernels``, the same
        algorithm, ties and floating-point operation order in C) when it is
        built; False, or no compiled module, runs the numpy loop
        (:func:`_hc_pairs_numpy`).

    Returns
    -------
    pairs : ndarray of int, shape (n - 1, 2)
        Row ``s`` is the ``s``-th merge as mclust prints it: the two clusters,
        each named by the smallest 1-based row index it holds, smaller first.
    """
    if not compiled or _hc_kernels is None:
        return _hc_pairs_numpy(Z, model=model, alpha=alpha, beta=beta)
    Z, alpha = _hc_checked(Z, model, alpha)
    n, p = Z.shape
    pairs = np.empty((max(n - 1, 0), 2), dtype=np.int64)
    if n >= 2:
        _hc_kernels.hc_pairs(np.ascontiguousarray(Z), pairs, n, p, 0 if model == "VVV" else 1, float(alpha),
                             float(beta))
    return pairs


def _hc_checked(Z, model, alpha):
    """``(Z, alpha)`` of both merge loops: ``Z`` as a checked float64 array
    and ``alpha`` multiplied by ``trace(W_data) / (n p)`` as mclust does."""
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] < 1:
        raise ValueError(f"Z must be a 2-D array of n rows and p >= 1 columns. Got shape {Z.shape}.")
    if model not in ("VVV", "EII"):
        raise ValueError(f"model must be 'VVV' or 'EII'. Got {model!r}.")
    if not np.all(np.isfinite(Z)):
        raise ValueError("Z holds NaN or infinite values; the tree needs finite data (drop or impute them).")
    n, p = Z.shape
    if n < 2:
        return Z, alpha
    Zc = Z - Z.mean(axis=0)
    return Z, max(alpha * float(np.sum(Zc * Zc)) / (n * p), np.finfo(np.float64).eps)


def _hc_pairs_numpy(Z, model="VVV", alpha=1.0, beta=1.0):
    """:func:`hc_pairs` in numpy: the fallback where the compiled module is
    not built, and the reference it is tested against."""
    Z, alpha = _hc_checked(Z, model, alpha)
    n, p = Z.shape
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    ablog = math.log(beta * alpha)
    size = np.ones(n)
    mean = Z.copy()
    W = np.zeros((n, p, p)) if model == "VVV" else None
    tr = np.zeros(n)
    term = np.full(n, ablog)
    name = np.arange(1, n + 1)
    D = np.full((n, n), np.inf)
    iu, ju = np.triu_indices(n, 1)
    if model == "VVV":
        # singleton pairs as mclust evaluates them: v = (z_i - z_j) / sqrt 2
        v = (Z[iu] - Z[ju]) * _RTHALF
        t = np.zeros(iu.size)
        for c in range(p):  # left-to-right sum, as ddot
            t = t + v[:, c] * v[:, c]
        D[iu, ju] = 2.0 * np.log(beta * (t + alpha) / 2.0) - (ablog + ablog)
    else:
        diff = Z[iu] - Z[ju]
        D[iu, ju] = 0.5 * np.einsum("ij,ij->i", diff, diff)
    del iu, ju
    pairs = np.empty((n - 1, 2), dtype=np.int64)
    lg = n
    # each row's least cost (and a column holding it), so that a step scans
    # n values, not the n x n matrix: rows are recomputed only where their
    # least cost could have left (its column merged, moved or removed)
    rowmin = D.min(axis=1)
    rowarg = np.argmin(D, axis=1)
    for step in range(n - 1):
        best = rowmin[:lg].min()
        rows = np.flatnonzero(rowmin[:lg] == best)
        # the pair with the largest j, then the largest i, among all pairs at the least cost
        j = max(int(np.flatnonzero(D[r, :lg] == best)[-1]) for r in rows)
        i = int(np.flatnonzero(D[:lg, j] == best)[-1])
        a, b = name[i], name[j]
        pairs[step] = (min(a, b), max(a, b))
        if lg == 2:
            break
        # merge j into i
        ni, nj = size[i], size[j]
        nij = ni + nj
        d = mean[i] - mean[j]
        coef = ni * nj / nij
        tr[i] = (tr[i] + tr[j]) + coef * float(d @ d)
        if W is not None:
            W[i] = W[i] + W[j] + coef * np.outer(d, d)
        mean[i] = (ni * mean[i] + nj * mean[j]) / nij
        size[i] = nij
        name[i] = min(a, b)
        last = lg - 1
        if j != last:  # the last cluster moves into position j
            size[j], mean[j], tr[j], term[j], name[j] = size[last], mean[last], tr[last], term[last], name[last]
            if W is not None:
                W[j] = W[last]
            # pair (k, last) becomes pair (min(k, j), max(k, j))
            vals = D[:last, last].copy()
            D[:j, j] = vals[:j]
            D[j, j + 1:last] = vals[j + 1:]
        D[last, :] = np.inf
        D[:, last] = np.inf
        lg -= 1
        # rows whose least cost sat in a changed column i, j or last: recomputed
        # below with the new costs; the others can only gain column j's new values
        stale = (rowarg[:lg] == i) | (rowarg[:lg] == j) | (rowarg[:lg] == last)
        stale[i] = True
        if j < lg:
            stale[j] = True
            upd = np.flatnonzero(~stale[:j])
            better = D[upd, j] < rowmin[upd]
            rowmin[upd[better]] = D[upd[better], j]
            rowarg[upd[better]] = j
        others = np.delete(np.arange(lg, dtype=np.int64), i)
        if others.size == 0:
            continue
        if model == "VVV":
            m = size[i] + size[others]
            dd = mean[others] - mean[i]
            c = size[i] * size[others] / m
            trij = (tr[i] + tr[others]) + c * np.einsum("ij,ij->i", dd, dd)
            Wij = W[i] + W[others] + c[:, None, None] * (dd[:, :, None] * dd[:, None, :])
            # the merged cluster's own term rides along as a last row (elementwise: the same value)
            t = _vvv_term(np.append(m, size[i]), np.concatenate([Wij, W[i : i + 1]]), np.append(trij, tr[i]),
                          p, alpha, beta)
            term[i] = t[-1]
            cost = t[:-1] - (term[i] + term[others])
        else:
            dd = mean[others] - mean[i]
            cost = (size[i] * size[others] / (size[i] + size[others])) * np.einsum("ij,ij->i", dd, dd)
        lo = others[others < i]
        hi = others[others > i]
        D[lo, i] = cost[others < i]
        D[i, hi] = cost[others > i]
        keep = lo[~stale[lo]]  # rows above i gain column i's new costs
        better = D[keep, i] < rowmin[keep]
        rowmin[keep[better]] = D[keep[better], i]
        rowarg[keep[better]] = i
        redo = np.flatnonzero(stale)
        if redo.size:
            rowmin[redo] = D[redo, :lg].min(axis=1)
            rowarg[redo] = np.argmin(D[redo, :lg], axis=1)
    return pairs


def hclass(pairs, n, Ks):
    """Cut mclust's merge sequence at each ``K`` (mclust's ``hclass``).

    Returns ``{K: labels}``, labels 0..K-1 numbered in order of first
    appearance (mclust's ``partconv``)."""
    label = np.arange(1, n + 1)
    want = {int(K) for K in Ks if 1 <= int(K) <= n}
    out = {}
    if n in want:
        out[n] = label.copy()
    for s, (a, b) in enumerate(pairs):
        label[label == b] = a
        if n - s - 1 in want:
            out[n - s - 1] = label.copy()
    return {K: _consec(lab) for K, lab in out.items()}


def _consec(lab):
    _, first, inv = np.unique(lab, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inv]


def qclass(x, K):
    """mclust's ``qclass``: ``K`` classes of a single feature between
    quantiles (R's type-7 quantiles, the narrowest gaps dropped when ties
    make too many). Labels 0..K-1."""
    x = np.asarray(x, dtype=np.float64).ravel()
    sd = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    eps = sd * math.sqrt(np.finfo(np.float64).eps)
    m = K
    q = np.array([np.nan])
    while q.size < K + 1:
        m += 1
        q = np.unique(np.quantile(x, np.linspace(0.0, 1.0, m)))
        if m > x.size + K + 2:
            break
    if q.size > K + 1:
        drop = np.argsort(np.diff(q), kind="stable")[: q.size - K - 1]
        q = np.delete(q, drop)
    q[0] = x.min() - eps
    q[-1] = x.max() + eps
    cl = np.zeros(x.size, dtype=np.int64)
    for i in range(K):
        cl[(x >= q[i]) & (x < q[i + 1])] = i
    return cl


def mclust_partitions(X, Ks, random_state=None, subset=MCLUST_SUBSET):
    """The starting partitions ``mclustBIC`` uses for each ``K``.

    Returns ``(partitions, rows)``: ``{K: labels}`` with labels for the rows
    ``rows`` (all rows, or the random subset of ``subset`` rows when there are
    more; ``rows`` is then sorted). K = 1 is all rows in one group."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    rows = np.arange(n)
    if n > subset:
        rs = np.random.RandomState(random_state) if not isinstance(random_state, np.random.RandomState) \
            else random_state
        rows = np.sort(rs.choice(n, size=subset, replace=False))
    Xs = X[rows]
    Ks = sorted({int(K) for K in Ks if 1 <= int(K) <= Xs.shape[0]})
    out = {}
    if d == 1:
        for K in Ks:
            out[K] = qclass(Xs[:, 0], K) if K > 1 else np.zeros(Xs.shape[0], dtype=np.int64)
        return out, rows
    model = "VVV" if Xs.shape[0] > d else "EII"
    Z = svd_transform(Xs)
    if Z.shape[1] == 0:  # every column constant: all rows alike, any tree will do (ties: mclust's order)
        Z = np.zeros((Xs.shape[0], 1))
    pairs = hc_pairs(Z, model=model)
    out.update(hclass(pairs, Xs.shape[0], Ks))
    return out, rows


def _rcond_ok(cov, eps, diagonal=False):
    """mclust's singularity test: reciprocal condition of every covariance
    (ratio of extreme eigenvalues) above ``eps``.

    ``diagonal=True`` says every matrix of the (K, d, d) stack ``cov`` is
    diagonal (the diagonal models' storage): its eigenvalues are then its
    diagonal entries, read directly (the eigen-solver returns exactly them
    for a diagonal matrix, so the decision is the same, without the
    per-iteration ``eigvalsh``).
    """
    cov = np.asarray(cov, dtype=np.float64)
    if diagonal and cov.ndim == 3:
        ev = np.diagonal(cov, axis1=1, axis2=2)
        lo, hi = ev.min(axis=-1), ev.max(axis=-1)
        return bool(np.all(lo > eps * hi) and np.all(hi > 0))
    if cov.ndim == 1:
        cov = cov[None]
    if cov.ndim == 2 and cov.shape[0] == cov.shape[1] and cov.shape[0] > 1 or cov.ndim == 3:
        ev = np.linalg.eigvalsh(cov if cov.ndim == 3 else cov[None])
    else:
        ev = np.atleast_2d(cov)
    lo, hi = ev.min(axis=-1), ev.max(axis=-1)
    return bool(np.all(lo > eps * hi) and np.all(hi > 0))


class MclustFailure(ValueError):
    """An mclust EM run that mclust would report as NA."""


def _mm_state(structure, K, d):
    """``[model, D, shape]`` for EVE and VVE with ``K > 1`` (mclust's MM
    M-step, started as ``meEVE``/``meVVE`` start it: ``D = I``, shapes one),
    else None. One component keeps the structure's exact M-step: mclustBIC
    fits ``G = 1`` in closed form (``mvn``), equal to EEE/VVV there."""
    from ..families.gaussian.mclust import _mm
    from ..families.gaussian.mclust.eve import EVE
    from ..families.gaussian.mclust.vve import VVE

    if (structure is not EVE and structure is not VVE) or K < 2:
        return None
    return [structure.name, *_mm.initial_state(K, d)]


def _mm_params(stats, structure, state):
    """mclust's EVE/VVE M-step (:func:`emix.families.gaussian.mclust._mm.mm_m_step`)
    from the statistics, updating ``state`` (``[model, D, shape]``) in place."""
    from ..families.gaussian._common import NotPositiveDefinite
    from ..families.gaussian.mclust import _mm
    from ..families.gaussian.mclust._eigen import within_full
    from .types import GaussianParams

    nk = np.asarray(stats.nk, dtype=np.float64)
    delta = np.asarray(stats.s1, dtype=np.float64) / nk[:, None]
    with np.errstate(all="ignore"):
        W = within_full(np.asarray(stats.s2, dtype=np.float64), nk, delta, 0.0)
        try:
            res = _mm.mm_m_step(W, nk, state[0], state[1], state[2])
        except (_mm.MMSingular, np.linalg.LinAlgError) as exc:
            raise MclustFailure(f"singular covariance ({exc})") from None
    state[1], state[2] = res.orientation, res.shape
    means = np.asarray(stats.shift, dtype=np.float64) + delta
    try:
        prec_chol = structure.prec_chol_from_cov(res.cov)
    except NotPositiveDefinite:
        raise MclustFailure("singular covariance") from None
    return GaussianParams(weights=nk / nk.sum(), means=means, covariances=res.cov,
                          precisions_cholesky=prec_chol)


def mclust_em(X, labels, structure, rows=None, tol=MCLUST_TOL, max_iter=1_000_000, eps=None,
              sample_weight=None):
    """mclust's ``me()``: EM from a hard partition with mclust's stopping rule.

    Parameters
    ----------
    X : ndarray (n, d)
    labels : ndarray of int
        Partition of ``X[rows]`` into 0..K-1.
    structure : emix covariance structure (``emix.families.gaussian.get_structure``)
    rows : ndarray of int or None
        Rows the partition is of (mclust's subset rule: M-step on them, one
        E-step on all rows, then EM on all rows). None: all rows.
    tol : float
        Stop when ``|L_t - L_{t-1}| / (1 + |L_t|) < tol``.
    eps : float
        Reciprocal condition number at or below which a covariance is
        singular (default machine epsilon, ``emControl()$eps``).
    sample_weight : ndarray (n,) or None
        Row weights (mclust has none; with weights, every sum is weighted).

    Returns
    -------
    result : emix.core.types.FitResult
        Parameters of the last M-step, ``lower_bound`` their mean
        log-likelihood, ``history`` the total log-likelihoods, ``converged``.

    Raises
    ------
    MclustFailure
        Where mclust returns NA (singular covariance, empty component).
    """
    from ..exceptions import DegenerateComponentError
    from . import em
    from . import small as _small
    from .types import FitResult

    X = np.asarray(X, dtype=np.float64)
    eps = np.finfo(np.float64).eps if eps is None else float(eps)
    K = int(labels.max()) + 1
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    Xs = X if rows is None else X[rows]
    ws = w if (rows is None or w is None) else w[rows]
    resp = np.zeros((Xs.shape[0], K))
    resp[np.arange(Xs.shape[0]), labels] = 1.0
    shift = np.broadcast_to(Xs.mean(axis=0), (K, X.shape[1])).copy()
    from ..families.gaussian.mclust._eigen import MclustDiagonal

    diagonal = isinstance(structure, type) and issubclass(structure, MclustDiagonal)
    # EVE/VVE: mclust's own M-step (Browne & McNicholas's MM iterations), with
    # the orientation and shapes carried between M-steps as meEVE/meVVE do
    mm = _mm_state(structure, K, X.shape[1])

    def mstep(stats, previous=None, quiet=False):
        if (np.asarray(stats.nk) <= 0).any():
            raise MclustFailure("mixing proportion fell below threshold")
        if mm is not None:
            params = _small.mm_m_step(stats, structure, mm, eps)  # compiled, with the checks below
            if params is False:
                raise MclustFailure("singular covariance")
            if params is None:
                params = _mm_params(stats, structure, mm)
                if not _rcond_ok(params.covariances, eps):
                    raise MclustFailure("singular covariance")
            return params
        try:
            if quiet:  # the caller holds numpy's warnings off already
                params = em.m_step(stats, structure, 0.0, np.float64, previous=previous)
            else:
                with np.errstate(all="ignore"):
                    params = em.m_step(stats, structure, 0.0, np.float64, previous=previous)
        except (DegenerateComponentError, np.linalg.LinAlgError, FloatingPointError) as exc:
            raise MclustFailure(f"singular covariance ({exc})") from None
        if not (np.all(np.isfinite(params.means)) and _rcond_ok(params.covariances, eps, diagonal)):
            raise MclustFailure("singular covariance")
        return params

    params = mstep(em.stats_from_resp(Xs, ws, resp, shift, structure))
    if rows is not None:
        stats = em.e_step(X, w, params, structure)
        if mm is not None:  # me() on all rows starts its MM state afresh
            mm[:] = _mm_state(structure, K, X.shape[1])
        params = mstep(stats, params)
    hold, history, converged = _FLMAX / 2, [], False
    it = it0 = 0
    # the whole loop in one compiled call where it applies (small float64
    # data, the 14 models): the same iterations and checks, up to rounding
    res = _small.em_loop(X, w, params, structure, rule=1, tol=tol, max_iter=max_iter, eps=eps,
                         lower_bound0=hold, mm_state=mm)
    if res is not None:
        if res.status == _small.MCLUST_FAIL:
            raise MclustFailure(_small.MCLUST_REASONS.get(res.bad_k, "singular covariance"))
        params, it0, hold = res.params, int(res.n_iter), float(res.last)
        history = res.history.tolist()  # Python floats
        it = it0
        converged = res.status == _small.CONVERGED
        if res.status != _small.FALLBACK:
            max_iter = it0  # done: the loop below does not run
    # one errstate for the whole loop (entered once per fit, not twice per
    # iteration): its E- and M-steps ran each under errstate(all='ignore')
    with np.errstate(all="ignore"):
        for it in range(it0 + 1, max_iter + 1):
            stats = em.e_step(X, w, params, structure)
            hood = float(stats.loglik)
            if not math.isfinite(hood):
                raise MclustFailure(f"log-likelihood is {hood}")
            history.append(hood)
            err = abs(hold - hood) / (1.0 + abs(hood))
            hold = hood
            if not err > tol:
                converged = True
                break
            params = mstep(stats, params, quiet=True)
    n_eff = X.shape[0] if w is None else float(w.sum())
    return FitResult(params=params, n_iter=it, converged=converged, lower_bound=hold / n_eff,
                     history=tuple(np.asarray(history) / n_eff))


def fit_like_mclust(gm, X, labels, rows=None, sample_weight=None):
    """Fit the (unfitted) :class:`emix.GaussianMixture` ``gm`` as mclust's
    ``me()`` would from the partition ``labels`` of ``X[rows]``
    (:func:`mclust_em`, with ``gm.tol`` as mclust's relative tolerance and
    ``gm.max_iter``); returns ``gm`` with its fitted attributes set. Used by
    :func:`emix.select` with ``init_params='mclust'``.

    Raises
    ------
    MclustFailure
        Where mclust reports NA.
    """
    from ..families.gaussian import get_structure

    structure = get_structure(gm.covariance_type)
    X = np.asarray(X, dtype=np.float64)
    result = mclust_em(X, labels, structure, rows=rows, tol=gm.tol, max_iter=gm.max_iter,
                       sample_weight=sample_weight)
    gm.n_features_in_ = X.shape[1]
    gm._set_fitted(result, structure)  # the estimator's own bookkeeping of a fit
    return gm
