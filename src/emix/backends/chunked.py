"""Out-of-core EM over a re-iterable source of blocks.

A *block source* is a callable taking no argument that returns a fresh iterator
over the data, each item a 2-D array of rows (numpy array, memmap slice, pandas
DataFrame) or a pair ``(X_block, w_block)`` carrying sample weights. EM calls it
once per iteration, so only one block (and its temporaries) is in memory at a
time. :func:`npy_source`, :func:`parquet_source` and :func:`csv_source` build
sources over files; any generator function over your own storage works too::

    def source():
        for path in sorted(glob.glob("part-*.npy")):
            yield np.load(path, mmap_mode="r")

    GaussianMixture(8).fit(source)

Initialization on big data takes one pass that draws a uniform random sample
of ``DEFAULT_INIT_SAMPLE`` rows (the rows with the smallest of N random keys,
a one-pass reservoir), then runs the estimator's ``init_params`` method
(k-means by default) on that sample in memory. The keys come from a stream
that does not depend on how the rows are split into blocks, so the start,
and hence the fit, is the same whatever the block sizes. When the data has at
most ``DEFAULT_INIT_SAMPLE`` rows, the sample is all of it and the start is
exactly the in-memory one for the same ``random_state``.
"""

from __future__ import annotations

import copy
import glob
import os

import numpy as np

from .reduce import DEFAULT_WORKING_MEMORY_MIB

#: Rows drawn (uniformly, without replacement) to initialize on big data.
DEFAULT_INIT_SAMPLE = 100_000
#: Rows per key batch when drawing sampling keys for a source of known length.
_KEY_BATCH = 1 << 20


def is_block_source(X) -> bool:
    """True for a callable that is not itself array-like (a block source)."""
    return callable(X) and not hasattr(X, "__array__") and not hasattr(X, "shape")


def _as_2d(block, what="block"):
    if hasattr(block, "to_numpy") and not isinstance(block, np.ndarray):
        block = block.to_numpy()
    a = np.asarray(block)
    if a.ndim == 1:
        raise ValueError(
            f"Each {what} of a block source must be 2-D (rows, features). Got a 1-D array of shape {a.shape}."
        )
    if a.ndim != 2:
        raise ValueError(f"Each {what} of a block source must be 2-D (rows, features). Got shape {a.shape}.")
    return a


def iter_source(source):
    """Yield ``(X_block, w_block or None)`` from a block source, as given."""
    it = source()
    if it is None:
        raise TypeError("A block source must return an iterator of arrays. It returned None.")
    for item in it:
        if isinstance(item, tuple):
            if len(item) != 2:
                raise ValueError(
                    f"A block source may yield arrays or (X_block, w_block) pairs. Got a tuple of length {len(item)}."
                )
            Xb, wb = item
            Xb = _as_2d(Xb)
            wb = None if wb is None else np.asarray(wb, dtype=np.float64).reshape(-1)
            if wb is not None and wb.shape[0] != Xb.shape[0]:
                raise ValueError(
                    f"A block's sample weights have {wb.shape[0]} values for {Xb.shape[0]} rows."
                )
            yield Xb, wb
        else:
            yield _as_2d(item), None


class ChunkedReducer:
    """``reduce(step)`` over a block source: one pass per call.

    Every source block is cut into sub-blocks of at most ``block_rows`` rows,
    so memory stays bounded whatever the source's block sizes. Results equal
    the in-memory ones to rounding.
    """

    def __init__(self, source, n_features, dtype, block_rows):
        self.source = source
        self.n_features = int(n_features)
        self.dtype = np.dtype(dtype)
        self.block_rows = max(1, int(block_rows))

    def blocks(self):
        for Xb, wb in iter_source(self.source):
            if Xb.shape[1] != self.n_features:
                raise ValueError(
                    f"Every block must have {self.n_features} columns (as the first one). Got {Xb.shape[1]}."
                )
            for start in range(0, Xb.shape[0], self.block_rows):
                stop = min(Xb.shape[0], start + self.block_rows)
                xs = np.asarray(Xb[start:stop], dtype=self.dtype)
                ws = None if wb is None else wb[start:stop].astype(self.dtype, copy=False)
                yield xs, ws

    def __call__(self, step):
        total = None
        for Xb, wb in self.blocks():
            if Xb.shape[0] == 0:
                continue
            s = step(Xb, wb)
            total = s if total is None else total + s
        if total is None:
            raise ValueError("The block source yielded no rows.")
        return total

    def map(self, fn):
        """Apply ``fn(X_block)`` to every block and concatenate the results."""
        return np.concatenate([fn(Xb) for Xb, _ in self.blocks() if Xb.shape[0]], axis=0)


class ScaledWeights:
    """A reducer whose steps see every block's sample weights times
    ``scale`` (the in-memory fit's normalization to a mean weight of 1, which
    a prior, counting in observations, is not invariant to)."""

    def __init__(self, reducer, scale):
        self.reducer = reducer
        self.scale = float(scale)

    def __call__(self, step):
        scale = self.scale
        return self.reducer(lambda Xb, wb: step(Xb, None if wb is None else wb * wb.dtype.type(scale)))

    @property
    def n_calls(self):
        return getattr(self.reducer, "n_calls", None)


# ---------------------------------------------------------------- sampling
class Reservoir:
    """Uniform sample of ``size`` rows in one pass: keep the rows with the
    smallest random keys. Keys come from one stream, block after block, so the
    sample does not depend on the block sizes."""

    def __init__(self, size, seed):
        self.size = int(size)
        self.gen = np.random.default_rng(seed)
        self.keys = np.empty(0)
        self.index = np.empty(0, dtype=np.int64)
        self.rows = None
        self.weights = None
        self.offset = 0

    def add(self, Xb, wb):
        n = Xb.shape[0]
        keys = self.gen.random(n)
        if wb is not None:  # rows of weight 0 are never drawn
            keys = np.where(wb > 0, keys, np.inf)
        if len(self.keys) >= self.size:  # full: only keys under the current largest can enter
            keep = np.flatnonzero(keys < self.keys.max())
        else:
            keep = np.arange(n)
        if len(keep) > self.size:
            keep = keep[np.argpartition(keys[keep], self.size - 1)[: self.size]]
        cand_keys = np.concatenate([self.keys, keys[keep]])
        cand_index = np.concatenate([self.index, keep + self.offset])
        cand_rows = Xb[keep] if self.rows is None else np.concatenate([self.rows, np.asarray(Xb[keep])])
        if wb is not None or self.weights is not None:
            old = self.weights if self.weights is not None else np.ones(len(self.keys))
            new = wb[keep] if wb is not None else np.ones(len(keep))
            cand_w = np.concatenate([old, new])
        else:
            cand_w = None
        if len(cand_keys) > self.size:
            sel = np.argpartition(cand_keys, self.size - 1)[: self.size]
            cand_keys, cand_index, cand_rows = cand_keys[sel], cand_index[sel], cand_rows[sel]
            cand_w = None if cand_w is None else cand_w[sel]
        self.keys, self.index, self.rows, self.weights = cand_keys, cand_index, cand_rows, cand_w
        self.offset += n

    def result(self):
        """Sampled rows (in their order in the data) and weights (or None)."""
        order = np.argsort(self.index, kind="stable")
        finite = np.isfinite(self.keys[order])
        order = order[finite]
        rows = self.rows[order]
        w = None if self.weights is None else self.weights[order]
        return rows, w


def sample_seed(rng):
    """Seed for the sampling keys, drawn from a copy of ``rng``; returns the
    seed and the advanced copy (adopt it only if a sample was actually drawn,
    so that small data keeps the in-memory start)."""
    probe = copy.deepcopy(rng)
    return probe.randint(0, 2**32 - 1, size=4, dtype=np.int64), probe


def scan_source(source, sample_size, seed, moments=False, allow_nan=False):
    """One pass over a block source: shape, dtype, row counts, finiteness,
    a uniform sample of ``sample_size`` rows, and the per-feature bounds (and,
    with ``moments``, weighted mean and covariance) of the rows with positive
    weight.

    With ``allow_nan`` (``missing='em'``), NaN entries are missing values:
    only infinite values are an error, the bounds skip NaN per column, and
    the result also holds ``n_observed``, the number of rows in which each
    column is observed (all rows, whatever their weight, as the in-memory
    check of :func:`emix.core.missing.check_observed_columns` counts them),
    and ``n_empty``, the number of rows with no observed value.

    Returns a dict with ``n_samples``, ``n_features``, ``dtype``, ``n_eff``
    (rows with positive weight), ``sum_w``, ``sample`` and ``sample_weight``
    (all rows and weights when there are at most ``sample_size`` rows), and
    ``summary`` (see :func:`block_summary`; None when no row has positive
    weight).
    """
    res = Reservoir(sample_size, seed)
    n = n_eff = 0
    sum_w = 0.0
    D = dtype = None
    everything = []
    any_w = False
    summary = None
    n_observed = None
    n_empty = 0
    for Xb, wb in iter_source(source):
        if D is None:
            D = Xb.shape[1]
            dtype = Xb.dtype if Xb.dtype in (np.float32, np.float64) else np.dtype(np.float64)
            if D < 1:
                raise ValueError("Blocks must have at least one column. Got 0.")
        elif Xb.shape[1] != D:
            raise ValueError(f"Every block must have {D} columns (as the first one). Got {Xb.shape[1]}.")
        if Xb.shape[0] == 0:
            continue
        try:
            Xc = np.asarray(Xb, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Block {len(everything)} is not numeric: {exc}") from None
        if allow_nan:
            if np.any(np.isinf(Xc)):
                raise ValueError(f"Input contains infinity (in the block starting at row {n}). NaN entries are "
                                 "missing values with missing='em'; infinite values are not allowed.")
            holes = np.isnan(Xc)
            seen = Xc.shape[0] - np.count_nonzero(holes, axis=0)
            n_observed = seen if n_observed is None else n_observed + seen
            n_empty += int(np.count_nonzero(holes.all(axis=1)))
        elif not np.all(np.isfinite(Xc)):
            raise ValueError(f"Input contains NaN or infinity (in the block starting at row {n}).")
        if wb is not None:
            if not np.all(np.isfinite(wb)) or np.any(wb < 0):
                raise ValueError(f"sample_weight must be finite and >= 0 (block starting at row {n}).")
            any_w = True
            n_eff += int(np.count_nonzero(wb))
            sum_w += float(wb.sum())
        else:
            n_eff += Xc.shape[0]
            sum_w += Xc.shape[0]
        res.add(Xc, wb)
        summary = combine_summaries(summary, block_summary(Xc, wb, moments))
        if everything is not None:
            if n + Xc.shape[0] <= sample_size:
                everything.append((np.array(Xc), wb))
            else:
                everything = None
        n += Xc.shape[0]
    if D is None or n == 0:
        raise ValueError("The block source yielded no rows.")
    if everything is not None:  # small data: the sample is all of it
        rows = np.concatenate([e[0] for e in everything])
        w = np.concatenate([e[1] if e[1] is not None else np.ones(e[0].shape[0]) for e in everything]) if any_w else None
        sampled = False
    else:
        rows, w = res.result()
        sampled = True
    return {
        "n_samples": n, "n_features": D, "dtype": np.dtype(dtype), "n_eff": n_eff, "sum_w": sum_w,
        "sample": rows, "sample_weight": None if w is None else w.astype(dtype), "sampled": sampled,
        "weighted": any_w, "summary": summary, "n_observed": n_observed,
        "n_empty": n_empty if allow_nan else None,
    }


def with_labels(source, labels, n_components):
    """A block source yielding each block of ``source`` with ``labels`` (a
    numpy array aligned with the source's rows: a component index, or -1
    for an unlabelled row) as one more, last, column: how labels travel with
    their rows through any block layout (:class:`emix.core.missing.IncompleteStructure`
    with ``labelled=True`` splits them off). The source must yield exactly
    ``len(labels)`` rows."""
    from ..core.missing import check_labels

    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D (one per row of the block source). Got shape {arr.shape}.")
    arr = check_labels(arr, arr.shape[0], n_components)
    n = arr.shape[0]

    def source_with_labels():
        start = 0
        for Xb, wb in iter_source(source):
            stop = start + Xb.shape[0]
            if stop > n:
                raise ValueError(f"The block source yields more rows than labels has ({n}).")
            Xb = np.asarray(Xb)
            dtype = Xb.dtype if Xb.dtype in (np.float32, np.float64) else np.dtype(np.float64)
            Xl = np.column_stack([Xb.astype(dtype, copy=False), arr[start:stop].astype(dtype)])
            start = stop
            yield Xl if wb is None else (Xl, wb)
        if start != n:
            raise ValueError(f"labels has {n} values, but the block source yielded {start} rows.")

    return source_with_labels


# ---------------------------------------------------------------- data summary
def block_summary(Xb, wb=None, moments=False):
    """Per-feature bounds (and moments) of the rows of one block with positive
    weight, for the noise volume and the default prior; summaries of blocks
    are combined with :func:`combine_summaries`.

    Returns None when no row has positive weight, else a dict with ``lo`` and
    ``hi`` (per-feature min and max, in the block's dtype) and, with
    ``moments``, in float64: ``sw`` (sum of weights), ``sw2`` (sum of
    squared weights), ``mean`` (weighted mean) and ``m2`` (weighted scatter
    about that mean: shifted at the block's own mean, so combining blocks
    loses no precision to cancellation).

    NaN entries (missing values, ``missing='em'``) are skipped per column in
    ``lo`` and ``hi`` (NaN only for a column with no observed entry in the
    block); moments are not defined for them (an error).
    """
    Xb = np.asarray(Xb)
    if wb is not None:
        wb = np.asarray(wb)
        pos = wb > 0
        if not pos.all():
            Xb, wb = Xb[pos], wb[pos]
    if Xb.shape[0] == 0:
        return None
    # fmin/fmax skip NaN (missing values) and equal min/max on finite data
    out = {"lo": np.fmin.reduce(Xb, axis=0), "hi": np.fmax.reduce(Xb, axis=0)}
    if moments:
        x = Xb.astype(np.float64)
        if np.isnan(np.min(x)):
            raise NotImplementedError("prior='default' cannot be combined with missing values yet (missing='em' "
                                      "with NaN in X): the mean and covariance of rows with holes are not "
                                      "computed.")
        if wb is None:
            sw, sw2 = float(x.shape[0]), float(x.shape[0])
            mean = x.mean(axis=0)
            xc = x - mean
            m2 = xc.T @ xc
        else:
            wf = wb.astype(np.float64)
            sw, sw2 = float(wf.sum()), float(wf @ wf)
            mean = (wf @ x) / sw
            xc = x - mean
            m2 = (xc * wf[:, None]).T @ xc
        out.update(sw=sw, sw2=sw2, mean=mean, m2=m2)
    return out


def combine_summaries(a, b):
    """Summary of the union of two blocks' rows (either may be None): min/max,
    and the pairwise update of weighted means and scatters (Chan, Golub &
    LeVeque 1979), in float64."""
    if a is None:
        return b
    if b is None:
        return a
    out = {"lo": np.fmin(a["lo"], b["lo"]), "hi": np.fmax(a["hi"], b["hi"])}  # NaN: not seen yet
    if "m2" in a:
        sw = a["sw"] + b["sw"]
        delta = b["mean"] - a["mean"]
        out.update(
            sw=sw, sw2=a["sw2"] + b["sw2"], mean=a["mean"] + delta * (b["sw"] / sw),
            m2=a["m2"] + b["m2"] + np.outer(delta, delta) * (a["sw"] * b["sw"] / sw),
        )
    return out


def summary_mean_cov(summary):
    """Weighted mean and covariance from a combined summary, as
    ``np.average`` and ``np.cov(aweights=...)`` compute them (unbiased:
    divided by ``sw - sw2 / sw``, ``n - 1`` without weights)."""
    return summary["mean"], summary["m2"] / (summary["sw"] - summary["sw2"] / summary["sw"])


# ---------------------------------------------------------------- file sources
def npy_source(path, chunk_rows=65536):
    """Block source over one ``.npy`` file (or a sorted glob of them), read
    through a memory map ``chunk_rows`` rows at a time."""
    paths = _expand(path, (".npy",))
    chunk_rows = max(1, int(chunk_rows))

    def source():
        for p in paths:
            a = np.load(p, mmap_mode="r")
            if a.ndim != 2:
                raise ValueError(f"{p} holds an array of shape {a.shape}; expected 2-D.")
            for start in range(0, a.shape[0], chunk_rows):
                yield a[start : start + chunk_rows]

    return source


def parquet_source(path, columns=None):
    """Block source over a Parquet file or directory, one row group per block
    (all columns, or ``columns``, as float)."""
    import pyarrow.parquet as pq

    paths = _expand(path, (".parquet", ".parq"))

    def source():
        for p in paths:
            pf = pq.ParquetFile(p)
            for g in range(pf.num_row_groups):
                table = pf.read_row_group(g, columns=columns)
                yield np.column_stack([c.to_numpy() for c in table.columns]).astype(np.float64, copy=False)

    return source


def csv_source(path, chunk_rows=65536, **read_csv_kwargs):
    """Block source over a CSV file or a sorted glob of them, read with
    ``pandas.read_csv(chunksize=chunk_rows)``; non-numeric columns are an error."""
    import pandas as pd

    paths = _expand(path, (".csv", ".csv.gz", ".txt"))

    def source():
        for p in paths:
            with pd.read_csv(p, chunksize=max(1, int(chunk_rows)), **read_csv_kwargs) as reader:
                for df in reader:
                    yield df.to_numpy(dtype=np.float64)

    return source


#: Spellings of a missing CSV cell besides pandas' defaults (empty, NA, NaN, null...),
#: as the in-memory reader (``emix._files.read_table``) takes them.
_NA_VALUES = ["?", "n/a", "null", "None"]


def table_source(path, chunk_rows=65536, columns=None, exclude=(), weights=None):
    """Block source over a Parquet file/directory, a CSV file or glob, or
    ``.npy`` file(s), with columns picked by name (or 0-based position).

    Returns ``(source, names)``: the source yields ``(X_block, w_block)`` when
    ``weights`` names a column, else arrays; ``names`` are the feature columns.
    This is what ``emix fit --chunk-rows`` reads larger-than-memory files with.
    """
    path = os.fspath(path)
    chunk_rows = max(1, int(chunk_rows))
    lower = path.lower()
    if os.path.isdir(path) or lower.endswith((".parquet", ".parq", ".pq")):
        import pyarrow.parquet as pq

        paths = _expand(path, (".parquet", ".parq", ".pq"))
        all_names = list(pq.ParquetFile(paths[0]).schema_arrow.names)
        kind = "parquet"
    elif lower.endswith(".npy"):
        paths = _expand(path, (".npy",))
        first = np.load(paths[0], mmap_mode="r")
        if first.ndim != 2:
            raise ValueError(f"{paths[0]} holds an array of shape {first.shape}; expected 2-D.")
        all_names = [f"x{j}" for j in range(first.shape[1])]
        kind = "npy"
    else:
        import pandas as pd

        paths = _expand(path, (".csv", ".csv.gz", ".tsv", ".txt"))
        all_names = [str(c) for c in pd.read_csv(paths[0], nrows=0).columns]
        kind = "csv"

    def resolve(c):
        c = str(c)
        if c in all_names:
            return c
        if c.isdigit() and int(c) < len(all_names):
            return all_names[int(c)]
        raise ValueError(f"No column {c!r} in {path}; its columns are {all_names}.")

    w_name = None if weights is None else resolve(weights)
    drop = {resolve(c) for c in (exclude or ())} | ({w_name} if w_name else set())
    names = [resolve(c) for c in columns] if columns else [c for c in all_names if c not in drop]
    if not names:
        raise ValueError(f"No feature columns left in {path}.")
    idx = [all_names.index(c) for c in names]
    w_idx = None if w_name is None else all_names.index(w_name)
    wanted = names + ([w_name] if w_name and w_name not in names else [])

    def split(block):
        X = np.ascontiguousarray(block[:, : len(names)], dtype=np.float64)
        if w_name is None:
            return X
        return X, np.asarray(block[:, wanted.index(w_name)], dtype=np.float64)

    def source():
        for p in paths:
            if kind == "parquet":
                import pyarrow.parquet as pq

                for batch in pq.ParquetFile(p).iter_batches(batch_size=chunk_rows, columns=wanted):
                    cols = [batch.column(i).to_numpy(zero_copy_only=False) for i in range(batch.num_columns)]
                    yield split(np.column_stack(cols).astype(np.float64, copy=False))
            elif kind == "npy":
                a = np.load(p, mmap_mode="r")
                for start in range(0, a.shape[0], chunk_rows):
                    part = a[start : start + chunk_rows]
                    cols = idx + ([] if w_idx is None else [w_idx])
                    yield split(np.asarray(part[:, cols], dtype=np.float64))
            else:
                import pandas as pd

                # the in-memory reader's missing-value spellings (emix._files): NaN under
                # missing='em', the NaN error otherwise
                with pd.read_csv(p, chunksize=chunk_rows, usecols=wanted, na_values=_NA_VALUES) as reader:
                    for df in reader:
                        yield split(df[wanted].to_numpy(dtype=np.float64))

    return source, names


def _expand(path, suffixes):
    path = os.fspath(path)
    if os.path.isdir(path):
        found = sorted(
            os.path.join(path, f) for f in os.listdir(path)
            if f.endswith(suffixes) and not f.startswith((".", "_"))
        )
    elif any(ch in path for ch in "*?["):
        found = sorted(glob.glob(path))
    else:
        found = [path]
    if not found:
        raise FileNotFoundError(f"No {'/'.join(suffixes)} files found at {path!r}.")
    return found


__all__ = [
    "ChunkedReducer", "DEFAULT_INIT_SAMPLE", "DEFAULT_WORKING_MEMORY_MIB", "block_summary", "combine_summaries",
    "csv_source", "is_block_source", "iter_source", "npy_source", "parquet_source", "scan_source",
    "summary_mean_cov", "table_source", "with_labels",
]
