"""EM on Dask arrays and DataFrames.

With a ``dask.distributed`` client, :class:`DaskReducer` persists the row
blocks on the workers once; each EM iteration then sends only the E-step
function with its parameters (embedded in the tasks when small, scattered to
every worker when over ``SCATTER_BYTES``) and gets back only statistics:

1. the persisted blocks are grouped by the worker that holds them (one group
   per worker thread), and one task per group sums the E-step statistics of
   its blocks where they lie (the scheduler places it by data locality);
2. the few per-group sums are gathered and added on the client.

That is a two-level reduction tree with one round trip per iteration (a
deeper tree on the workers costs one more round trip per level, which is
slower than adding W small statistics on the client). Each task limits the
BLAS threads of its worker process (threadpoolctl) to the host's cores
divided by the Dask threads on that host, so that W workers x T threads x
BLAS threads do not oversubscribe the cores.

A lost worker costs nothing but time: its persisted blocks keep their lineage
(the tasks that made them), so the scheduler recomputes them, and the tasks
of the current iteration are rerun; the sums are taken in a fixed order, so
the fit is the same.

Without a distributed client the blocks are computed one at a time, each
iteration (out of core, through :class:`~emix.backends.chunked.ChunkedReducer`).

``predict``, ``predict_proba`` and ``score_samples`` on a Dask array return
lazy Dask arrays built with ``map_blocks``.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

#: Steps (the E-step with its parameters) larger than this are scattered to
#: every worker once per iteration instead of being embedded in each task.
SCATTER_BYTES = 1 << 20


def is_dask_collection(X) -> bool:
    """True for a Dask collection; never imports dask itself."""
    if "dask" not in sys.modules:
        return False
    import dask

    return dask.is_dask_collection(X)


def feature_names(X):
    """String column names of a Dask DataFrame, else None."""
    cols = getattr(X, "columns", None)
    if cols is None:
        return None
    names = [c for c in cols]
    if names and all(isinstance(c, str) for c in names):
        return np.asarray(names, dtype=object)
    return None


def as_dask_array(X, dtype=None, known_rows=True):
    """A 2-D Dask array with one chunk across the columns, in float32/float64
    (or ``dtype``), with known row chunks unless ``known_rows`` is false (lazy
    inference does not need them, and finding them costs a pass)."""
    import dask.array as da

    if hasattr(X, "to_dask_array"):  # Dask DataFrame
        X = X.to_dask_array(lengths=True) if known_rows else X.to_dask_array()
    elif not isinstance(X, da.Array):
        raise TypeError(f"Expected a Dask array or DataFrame. Got {type(X).__name__}.")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D Dask array (rows, features). Got {X.ndim} dimension(s), shape {X.shape}.")
    if known_rows and any(math.isnan(c) for c in X.chunks[0]):
        X = X.compute_chunk_sizes()
    if dtype is None:
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    if X.dtype != dtype:
        X = X.astype(dtype)
    if len(X.chunks[1]) != 1:
        X = X.rechunk({1: -1})
    return X


def as_dask_weights(w, row_chunks, dtype):
    """Sample weights as a 1-D Dask array with the given row chunks."""
    import dask.array as da

    if w is None:
        return None
    if isinstance(w, da.Array):
        if w.ndim != 1:
            raise ValueError(f"sample_weight must be 1-D. Got shape {w.shape}.")
        if any(math.isnan(c) for c in w.chunks[0]):
            w = w.compute_chunk_sizes()
        if w.shape[0] != sum(row_chunks):
            raise ValueError(f"sample_weight must have shape ({sum(row_chunks)},) to match X. Got shape {w.shape}.")
        return w.astype(dtype).rechunk((row_chunks,))
    if hasattr(w, "to_dask_array"):
        return as_dask_weights(w.to_dask_array(lengths=True), row_chunks, dtype)
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(sum(row_chunks), float(w))
    if w.ndim != 1 or w.shape[0] != sum(row_chunks):
        raise ValueError(f"sample_weight must have shape ({sum(row_chunks)},) to match X. Got shape {w.shape}.")
    return da.from_array(w.astype(dtype), chunks=(row_chunks,))


def _checked_labels(block, n_components, dtype):
    from ..core.missing import check_labels

    return check_labels(block, block.shape[0], n_components).astype(dtype)


def with_labels(X, labels, n_components):
    """``X`` (a Dask array or DataFrame) as a Dask array with ``labels`` (a
    numpy or Dask array, or a Dask Series, one per row: a component index or
    -1 for unlabelled) as one more, last, column, chunked like the rows of
    ``X``. A Dask ``labels`` is checked block by block when computed (the
    in-memory errors of :func:`emix.core.missing.check_labels`), so it is
    never brought to the client."""
    import dask.array as da

    from ..core.missing import check_labels

    Xd = as_dask_array(X)
    n = Xd.shape[0]
    if hasattr(labels, "to_dask_array"):
        labels = labels.to_dask_array(lengths=True)
    if isinstance(labels, da.Array):
        if labels.ndim != 1 or labels.shape[0] != n:
            raise ValueError(f"labels must have shape ({n},) to match X. Got shape {labels.shape}.")
        if labels.dtype.kind not in "iubf":
            raise TypeError(f"labels must be integer component indices (-1 for unlabelled). Got dtype {labels.dtype}.")
        L = labels.rechunk((Xd.chunks[0],)).map_blocks(_checked_labels, n_components, Xd.dtype, dtype=Xd.dtype)
    else:
        L = da.from_array(check_labels(labels, n, n_components).astype(Xd.dtype), chunks=(Xd.chunks[0],))
    return da.concatenate([Xd, L[:, None]], axis=1).rechunk({1: -1})


def get_client():
    """The current ``dask.distributed`` client, or None."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_client as _get

    try:
        return _get()
    except ValueError:
        return None


# ------------------------------------------------------------ worker side
_BLAS_SET = {}


#: glibc malloc thresholds set once in each Dask worker process (bytes); see
#: :func:`_tune_malloc`. ``None`` leaves the worker's malloc alone.
WORKER_MALLOC_THRESHOLDS = {"mmap": 64 << 20, "trim": 128 << 20}


def _tune_malloc():
    """Let this worker process reuse freed memory for the next block.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (so freed
    memory goes back to the OS). Setting it also switches off glibc's dynamic
    mmap threshold, so every temporary over 128 KiB is a fresh ``mmap`` and
    every freed heap top is trimmed: each block's temporaries are page-faulted
    in anew. Measured here: ``np.exp`` on an 8 x 8192 block 6.5x slower in a
    worker than in the client, a Dask EM iteration (N=1e6, D=8, K=8) 2.1x
    slower. Raising the mmap threshold to 64 MiB and the trim threshold to
    128 MiB in the worker (at most 128 MiB of freed memory kept for reuse)
    restores the client's speed. glibc only; elsewhere nothing is done. Set
    ``EMIX_WORKER_MALLOC=0`` in the workers' environment to keep Dask's
    settings (e.g. ``distributed.nanny.pre-spawn-environ``).
    """
    if _BLAS_SET.get("malloc") or WORKER_MALLOC_THRESHOLDS is None:
        return
    _BLAS_SET["malloc"] = True
    if not sys.platform.startswith("linux") or os.environ.get("EMIX_WORKER_MALLOC", "1") == "0":
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
    mallopt(M_MMAP_THRESHOLD, int(WORKER_MALLOC_THRESHOLDS["mmap"]))
    mallopt(M_TRIM_THRESHOLD, int(WORKER_MALLOC_THRESHOLDS["trim"]))


def _limit_blas(threads, client_pid):
    """Limit BLAS threads in this worker process, once, and tune its malloc
    (:func:`_tune_malloc`). Skipped in the client's own process (a threaded
    cluster), whose settings are the user's."""
    if os.getpid() != client_pid:
        _tune_malloc()
    if not threads or os.getpid() == client_pid or _BLAS_SET.get("n") == threads:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    _BLAS_SET["n"] = threads


def _group_step(step, blas, client_pid, block_rows, n_blocks, *blocks):
    """Sum ``step(X_block, w_block)`` over the blocks of one group, in order,
    each cut into sub-blocks of at most ``block_rows`` rows (bounded memory)."""
    _limit_blas(blas, client_pid)
    xs, ws = blocks[:n_blocks], blocks[n_blocks:]
    total = None
    for i, Xb in enumerate(xs):
        wb = ws[i] if ws else None
        for start in range(0, Xb.shape[0], block_rows or max(1, Xb.shape[0])):
            stop = Xb.shape[0] if not block_rows else min(Xb.shape[0], start + block_rows)
            s = step(Xb[start:stop], None if wb is None else wb[start:stop])
            total = s if total is None else total + s
    return total


def _group_map(fn, blas, client_pid, *blocks):
    _limit_blas(blas, client_pid)
    return [fn(b) for b in blocks]


# ------------------------------------------------------------ client side
class DaskReducer:
    """``reduce(step)`` over a Dask array persisted on a distributed cluster.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        One chunk across the columns (see :func:`as_dask_array`).
    sample_weight : dask.array.Array of shape (n_samples,) or None
        Chunked like the rows of ``X``.
    client : distributed.Client
    blas_threads : int or None
        BLAS threads per worker process; None divides each host's cores by
        the Dask threads running on it.
    block_rows : int or None
        Rows per E-step call on the workers (blocks are cut further); None
        calls the E-step on whole blocks.
    """

    def __init__(self, X, sample_weight, client, blas_threads=None, block_rows=None):
        from distributed import futures_of, wait

        self.client = client
        self.n_features = X.shape[1]
        self.dtype = X.dtype
        Xp = client.persist(X)
        wp = None if sample_weight is None else client.persist(sample_weight)
        wait([Xp] + ([wp] if wp is not None else []))
        self._persisted = (Xp, wp)  # keep the futures (and lineage) alive
        self.x_blocks = self._ordered(Xp, futures_of(Xp))
        self.w_blocks = None if wp is None else self._ordered(wp, futures_of(wp))
        self.blas_threads = self._blas_threads() if blas_threads is None else int(blas_threads)
        self.groups = self._groups()
        self.block_rows = None if block_rows is None else max(1, int(block_rows))
        self.n_calls = 0

    @staticmethod
    def _ordered(arr, futures):
        by_key = {f.key: f for f in futures}
        keys = arr.__dask_keys__()
        flat = []
        for row in keys:
            flat.append(row[0] if isinstance(row, list) else row)
        return [by_key[k] for k in flat]

    def _blas_threads(self):
        info = self.client.scheduler_info()["workers"]
        cores = self.client.run(os.cpu_count)
        per_host = {}
        for addr, w in info.items():
            per_host[w["host"]] = per_host.get(w["host"], 0) + int(w.get("nthreads", 1))
        limits = [
            max(1, int(cores.get(addr) or 1) // max(1, per_host[w["host"]])) for addr, w in info.items()
        ]
        return min(limits) if limits else 1

    def _groups(self):
        """Block indices grouped by holding worker, split per worker thread."""
        who = self.client.who_has(self.x_blocks)
        info = self.client.scheduler_info()["workers"]
        by_worker = {}
        for i, f in enumerate(self.x_blocks):
            holders = who.get(f.key) or ("?",)
            by_worker.setdefault(sorted(holders)[0], []).append(i)
        groups = []
        for addr, idx in sorted(by_worker.items()):
            n = max(1, int(info.get(addr, {}).get("nthreads", 1)))
            size = -(-len(idx) // n)
            groups.extend(idx[j : j + size] for j in range(0, len(idx), size))
        return groups

    def _payload(self, step):
        import cloudpickle

        if len(cloudpickle.dumps(step)) > SCATTER_BYTES:
            return self.client.scatter(step, broadcast=True, hash=False)
        return step

    def __call__(self, step):
        client = self.client
        payload = self._payload(step)
        pid = os.getpid()
        futures = []
        for idx in self.groups:
            xs = [self.x_blocks[i] for i in idx]
            ws = [] if self.w_blocks is None else [self.w_blocks[i] for i in idx]
            futures.append(
                client.submit(_group_step, payload, self.blas_threads, pid, self.block_rows, len(xs), *xs, *ws,
                              pure=False)
            )
        parts = client.gather(futures)
        self.n_calls += 1
        total = None
        for p in parts:  # fixed order: the same sum whatever worker computed what
            if p is not None:
                total = p if total is None else total + p
        if total is None:
            raise ValueError("The Dask array has no rows.")
        return total

    def blocks(self):
        """Blocks fetched to the client one at a time (for small follow-ups)."""
        for i, f in enumerate(self.x_blocks):
            w = None if self.w_blocks is None else self.w_blocks[i].result()
            yield f.result(), w

    def map(self, fn):
        futures = [
            self.client.submit(_group_map, fn, self.blas_threads, os.getpid(), *[self.x_blocks[i] for i in idx],
                               pure=False)
            for idx in self.groups
        ]
        out = [None] * len(self.x_blocks)
        for idx, res in zip(self.groups, self.client.gather(futures)):
            for i, r in zip(idx, res):
                out[i] = r
        return np.concatenate(out, axis=0)


def local_source(X, sample_weight=None):
    """A block source computing the blocks of a Dask array one at a time
    (no distributed client: out of core on the local scheduler)."""

    def source():
        nb = X.numblocks[0]
        for i in range(nb):
            Xb = X.blocks[i, 0] if X.ndim == 2 else X.blocks[i]
            if sample_weight is None:
                yield Xb.compute()
            else:
                import dask

                xb, wb = dask.compute(Xb, sample_weight.blocks[i])
                yield xb, wb

    return source


def _keys(seed, start, stop):
    """Sampling keys of rows ``start`` to ``stop``: that stretch of the one
    stream ``default_rng(seed).random(n)``, reached by jumping the PCG64
    generator ahead ``start`` draws (one 64-bit draw per float64 key)."""
    bits = np.random.PCG64(seed)
    bits.advance(int(start))
    return np.random.Generator(bits).random(int(stop) - int(start))


def _block_candidates(wb, start, seed, threshold):
    """Global indices and keys of the rows of one weight block with positive
    weight and a key below ``threshold``: run where the block lies, so only
    these (few) candidates travel, not the weights."""
    wb = np.asarray(wb)
    keys = _keys(seed, start, start + wb.shape[0])
    keep = np.flatnonzero((wb > 0) & (keys < threshold))
    return keep + int(start), keys[keep]


def _weighted_sample_index(w, n_eff, sample_size, seed):
    """Indices (sorted) of the ``sample_size`` positive-weight rows with the
    smallest keys, computed block by block where the weights lie.

    Every block returns the rows whose keys fall under a threshold set so
    that, among ``n_eff`` uniform keys, fewer than ``sample_size`` fall under
    it with probability below 1e-9 (mean ``s + 6 sqrt(s) + 50`` candidates);
    the rare shortfall reruns with no threshold. Either way the rows chosen
    are those the client-side stream (and the block-source reservoir) picks.
    """
    import dask

    offsets = np.concatenate([[0], np.cumsum(w.chunks[0])])[:-1]
    blocks = w.to_delayed().ravel()
    threshold = 1.0 if n_eff <= sample_size else min(1.0, (sample_size + 6 * math.sqrt(sample_size) + 50) / n_eff)
    while True:
        tasks = [dask.delayed(_block_candidates, pure=True)(b, int(o), seed, threshold)
                 for b, o in zip(blocks, offsets)]
        parts = dask.compute(*tasks)
        idx = np.concatenate([p[0] for p in parts] + [np.empty(0, dtype=np.int64)])
        keys = np.concatenate([p[1] for p in parts] + [np.empty(0)])
        if len(idx) >= min(sample_size, n_eff) or threshold >= 1.0:
            break
        threshold = 1.0
    if len(keys) > sample_size:
        sel = np.argpartition(keys, sample_size - 1)[:sample_size]
        idx = idx[sel]
    return np.sort(idx)


def scan(X, w, sample_size, seed, moments=False, allow_nan=False):
    """Shape, counts, finiteness, a uniform sample of a Dask array, and the
    per-feature bounds (with ``moments``, also the weighted mean and
    covariance) of its rows with positive weight: ``summary``, see
    :func:`emix.backends.chunked.block_summary`, computed block by block
    where the blocks lie in the same pass as the checks and combined on the
    client in block order.

    The sample is the same set of rows as
    :func:`emix.backends.chunked.scan_source` draws with the same seed: the
    ``sample_size`` rows with the smallest keys of one random stream (rows of
    weight 0 excluded). With weights, the keys are drawn block by block where
    the weights lie and only the sampled rows and their weights come to the
    client.

    With ``allow_nan`` (``missing='em'``) NaN entries are missing values, as
    in :func:`emix.backends.chunked.scan_source`: only infinite values are an
    error, ``n_observed`` counts the rows in which each column is observed
    and ``n_empty`` the rows with no observed value.
    """
    import dask
    import dask.array as da

    n, D = X.shape
    if n == 0:
        raise ValueError("The Dask array has no rows.")
    from .chunked import block_summary, combine_summaries

    if allow_nan:
        holes = da.isnan(X)
        checks = [~da.isinf(X).any(), X.shape[0] - holes.sum(axis=0), holes.all(axis=1).sum()]
    else:
        checks = [da.isfinite(X).all()]
    n_fixed = len(checks)
    if w is not None:
        checks += [da.isfinite(w).all(), (w < 0).any(), (w > 0).sum(), w.astype(np.float64).sum()]
    x_parts = X.to_delayed().ravel()
    w_parts = [None] * len(x_parts) if w is None else w.to_delayed().ravel()
    summaries = [dask.delayed(block_summary, pure=True)(xb, wb, moments) for xb, wb in zip(x_parts, w_parts)]
    got = dask.compute(*checks, *summaries)
    got, summaries = got[: len(checks)], got[len(checks):]
    summary = None
    for part in summaries:  # fixed order: the same result whatever worker computed what
        summary = combine_summaries(summary, part)
    if not got[0]:
        if allow_nan:
            raise ValueError("Input contains infinity. NaN entries are missing values with missing='em'; "
                             "infinite values are not allowed.")
        raise ValueError("Input contains NaN or infinity.")
    n_observed = np.asarray(got[1], dtype=np.int64) if allow_nan else None
    n_empty = int(got[2]) if allow_nan else None
    if w is not None:
        if not got[n_fixed] or got[n_fixed + 1]:
            raise ValueError("sample_weight must be finite and >= 0.")
        n_eff, sum_w = int(got[n_fixed + 2]), float(got[n_fixed + 3])
    else:
        n_eff, sum_w = n, float(n)
    if n <= sample_size:
        if w is None:
            rows, sw = X.compute(), None
        else:
            rows, sw = dask.compute(X, w)
        sampled = False
    elif w is not None:
        idx = _weighted_sample_index(w, n_eff, sample_size, seed)
        rows, sw = dask.compute(X[idx], w[idx])
        sampled = True
    else:
        gen = np.random.default_rng(seed)
        best_keys = np.empty(0)
        best_idx = np.empty(0, dtype=np.int64)
        from .chunked import _KEY_BATCH

        for start in range(0, n, _KEY_BATCH):
            stop = min(n, start + _KEY_BATCH)
            keys = gen.random(stop - start)
            keys = np.concatenate([best_keys, keys])
            idx = np.concatenate([best_idx, np.arange(start, stop)])
            if len(keys) > sample_size:
                sel = np.argpartition(keys, sample_size - 1)[:sample_size]
                keys, idx = keys[sel], idx[sel]
            best_keys, best_idx = keys, idx
        idx = np.sort(best_idx)
        rows = X[idx].compute()
        sw = None
        sampled = True
    return {
        "n_samples": n, "n_features": D, "dtype": X.dtype, "n_eff": n_eff, "sum_w": sum_w,
        "sample": np.asarray(rows), "sample_weight": None if sw is None else np.asarray(sw, dtype=X.dtype),
        "sampled": sampled, "weighted": w is not None, "summary": summary, "n_observed": n_observed,
        "n_empty": n_empty,
    }


# ------------------------------------------------------------ lazy inference
def _n_columns(params):
    """Columns of the responsibilities: K, and one more (last) for noise."""
    return params.n_components + (params.noise_weight is not None)


def _refuse_nan(Xb):
    """Inference under ``missing='error'``: a block holding NaN is the
    in-memory error, not NaN or arbitrary labels."""
    if Xb.size and np.isnan(np.min(Xb)):
        raise ValueError("Input X contains NaN. To fit and predict with missing values (NaN) inside EM, pass "
                         "missing='em' to GaussianMixture.")


def _block_predict(Xb, params, structure, refuse_nan=False):
    if refuse_nan:
        _refuse_nan(Xb)
    if Xb.shape[0] == 0:
        return np.empty(0, dtype=np.intp)
    from ..core import em

    labels = em.argmax_column(Xb, params, structure)  # far rows: see em.far_log_prob
    labels[labels == params.n_components] = -1  # the noise column (absent without noise)
    return labels


def _block_proba(Xb, params, structure, refuse_nan=False):
    from ..core import em

    if refuse_nan:
        _refuse_nan(Xb)
    if Xb.shape[0] == 0:
        return np.empty((0, _n_columns(params)), dtype=Xb.dtype)
    return np.exp(em.log_resp(Xb, params, structure)[1])


def _block_score_samples(Xb, params, structure, refuse_nan=False):
    from ..core import em

    if refuse_nan:
        _refuse_nan(Xb)
    if Xb.shape[0] == 0:
        return np.empty(0, dtype=Xb.dtype)
    return em.log_density(Xb, params, structure)


def lazy_inference(kind, X, params, structure, n_features, refuse_nan=False):
    """A lazy Dask array of ``kind`` in {'predict', 'predict_proba', 'score_samples'}.
    ``refuse_nan``: a block with NaN raises a ValueError when computed
    (a model fitted with ``missing='error'``)."""
    kw = {"refuse_nan": True} if refuse_nan else {}
    Xd = as_dask_array(X, known_rows=False)
    if Xd.shape[1] != n_features:
        raise ValueError(
            f"X has {Xd.shape[1]} features, but GaussianMixture is expecting {n_features} features as input."
        )
    if kind == "predict":
        return Xd.map_blocks(_block_predict, params, structure, drop_axis=1, dtype=np.intp, **kw)
    if kind == "predict_proba":
        return Xd.map_blocks(
            _block_proba, params, structure, chunks=(Xd.chunks[0], (_n_columns(params),)), dtype=Xd.dtype, **kw
        )
    if kind == "score_samples":
        return Xd.map_blocks(_block_score_samples, params, structure, drop_axis=1, dtype=Xd.dtype, **kw)
    raise ValueError(f"Unknown kind {kind!r}.")


__all__ = ["DaskReducer", "as_dask_array", "is_dask_collection", "lazy_inference", "scan", "with_labels"]
