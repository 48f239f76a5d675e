"""Out of core and on Dask for :class:`emix.MixtureModel`'s component families.

Every family's E-step returns additive :class:`~emix.families.base.Stats`, so
the reducers that fit :class:`emix.GaussianMixture` beyond memory
(:class:`~emix.backends.chunked.ChunkedReducer` over a block source,
:class:`~emix.backends.dask.DaskReducer` on a distributed cluster) fit every
family unchanged: EM maps ``mixture.e_step`` over blocks and adds the results
(the map-reduce form of EM; Dempster, Laird & Rubin 1977, the E-step
statistics of disjoint row sets add). What this module adds is the family's
*coding* of each block and the start:

1. **Encoding.** Each block goes through ``family.encode(block, meta)``
   before the E-step, with the ``meta`` (``encoding_``) of the whole data.
   Numeric families (``raw_input = False``: poisson, student_t) receive float
   blocks and learn nothing (``meta`` is None). A family that learns a coding
   from the data (``raw_input = True``: categorical, bernoulli, mixed, whose
   category labels must be known before any block is coded) opts in with one
   method::

       family.merge_meta(metas) -> meta

   where ``metas`` are ``family.encode(block, None)[1]`` of every block, in
   order, and the result is the ``meta`` that ``encode`` learns from all the
   blocks concatenated (e.g. the union of the category labels, in the order
   the in-memory ``encode`` gives them). That costs one extra pass before the
   fit. A family that learns a coding and has no ``merge_meta`` raises
   ``NotImplementedError`` out of core (in memory it is unaffected).

2. **Start.** One pass (the scan) checks the coded blocks and draws a uniform
   sample of ``emix.backends.chunked.DEFAULT_INIT_SAMPLE`` coded rows with
   the key stream of :mod:`emix.backends.chunked` (so the sample does not
   depend on the block sizes, and a Dask array and a block source over the
   same rows draw the same one); ``init_params`` runs on the sample exactly as
   in memory. With at most that many rows the sample is all rows, in order,
   and the fit equals the in-memory fit for the same ``random_state``.

Sample weights are scaled to a mean of 1 over all rows, as the in-memory fit
normalizes them (the ``pseudo_count`` priors count in rows, so the scale
matters).

Inputs
------
- a block source (a callable returning an iterator of blocks, or of
  ``(X_block, w_block)`` pairs): numeric families take any 2-D array-like
  block; raw-input families receive each block as yielded (a pandas
  DataFrame keeps its column names and dtypes);
- a Dask array or DataFrame: with a ``dask.distributed`` client the coded
  blocks are persisted on the workers once and each iteration sends only the
  parameters; without one, the blocks are computed one at a time. A Dask
  DataFrame of raw columns (strings, categoricals) is coded partition by
  partition where the partitions lie; its first partition also on the
  client, which gives the coded width and lets a family that resolves itself
  in ``encode`` (the mixed family's column layout) do so before it is sent
  to the workers.

``predict``, ``predict_proba`` and ``score_samples`` on a Dask collection
return lazy Dask arrays (``map_blocks`` / ``from_delayed``); on a block
source, numpy arrays concatenated block by block.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _validation as V
from .backends import chunked
from .backends.reduce import DEFAULT_WORKING_MEMORY_MIB, default_block_rows
from .core.numerics import logsumexp
from .families.base import Mixture


def data_kind(X):
    """'dask' for a Dask collection, 'source' for a block source, else None."""
    from .backends.dask import is_dask_collection

    if is_dask_collection(X):
        return "dask"
    if chunked.is_block_source(X):
        return "source"
    return None


# ------------------------------------------------------------------ coding
def _raw_columns(Xb):
    shape = getattr(Xb, "shape", None)
    if shape is None:
        shape = np.asarray(Xb, dtype=object).shape
    if len(shape) != 2:
        raise ValueError(f"Each block must be 2-D (rows, features). Got shape {tuple(shape)}.")
    return int(shape[0]), int(shape[1])


def encode_block(family, Xb, meta):
    """``family.encode`` of one block: numeric families get a finite float
    array (NaN allowed where the family marginalizes missing values),
    raw-input families the block as given. Returns ``(X_float, meta_learned)``."""
    if getattr(family, "raw_input", False):
        _raw_columns(Xb)
        return family.encode(Xb, meta)
    Xb = chunked._as_2d(Xb)
    try:
        Xf = np.asarray(Xb, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"The {family.name} family needs numeric blocks; a block could not be read as "
                         f"floats: {exc}") from None
    if not family.allows_missing and not np.all(np.isfinite(Xf)):
        raise ValueError(f"Input contains NaN or infinity (a block of {Xf.shape[0]} rows); the "
                         f"{family.name} family needs finite values.")
    return family.encode(Xf, meta)


def _encode_known(family, Xb, meta):
    """A block coded with the whole data's ``meta`` (the learned part must
    be None when ``meta`` is: see the module docstring on ``merge_meta``)."""
    Xf, learned = encode_block(family, Xb, meta)
    if meta is None and learned is not None:
        raise NotImplementedError(_no_merge_message(family))
    return np.asarray(Xf, dtype=np.float64)


def _encode_chunk(Xb, family, meta):
    return _encode_known(family, Xb, meta)


def _no_merge_message(family):
    return (f"The {family.name} family learns its coding (e.g. category labels) from the data and has no "
            "merge_meta(metas) to combine what it learns from each block, so it cannot be fitted on a block "
            "source or a Dask collection yet. Fit it in memory (a numpy array or pandas DataFrame), or give "
            "the family a merge_meta method (see emix._family_blocks).")


def _block_meta(family, Xb):
    return encode_block(family, Xb, None)[1]


def _merge(family, metas):
    merge = getattr(family, "merge_meta", None)
    if merge is None:
        raise NotImplementedError(_no_merge_message(family))
    return merge(list(metas))


def _needs_meta_pass(family):
    return getattr(family, "raw_input", False) or hasattr(family, "merge_meta")


def raw_blocks(source):
    """``(X_block, w_block or None)`` from a block source, blocks as given
    (DataFrames kept), empty blocks skipped, weights checked."""
    it = source()
    if it is None:
        raise TypeError("A block source must return an iterator of arrays. It returned None.")
    for item in it:
        if isinstance(item, tuple):
            if len(item) != 2:
                raise ValueError(f"A block source may yield arrays or (X_block, w_block) pairs. Got a tuple "
                                 f"of length {len(item)}.")
            Xb, wb = item
        else:
            Xb, wb = item, None
        n, _ = _raw_columns(Xb)
        if wb is not None:
            wb = np.asarray(wb, dtype=np.float64).reshape(-1)
            if wb.shape[0] != n:
                raise ValueError(f"A block's sample weights have {wb.shape[0]} values for {n} rows.")
        if n:
            yield Xb, wb


class EncodedSource:
    """A block source yielding ``(family.encode(block, meta), w_block)``,
    checking that every block has ``n_columns`` columns (the first block's
    when None; :attr:`n_columns` then records it)."""

    def __init__(self, source, family, meta, n_columns=None):
        self.source, self.family, self.meta = source, family, meta
        self.n_columns = n_columns

    def __call__(self):
        for Xb, wb in raw_blocks(self.source):
            d = _raw_columns(Xb)[1]
            if self.n_columns is None:
                self.n_columns = d
            elif d != self.n_columns:
                raise ValueError(f"Every block must have {self.n_columns} columns (as the first one, or as "
                                 f"the fitted model expects). Got {d}.")
            yield _encode_known(self.family, Xb, self.meta), wb


# ------------------------------------------------------------------ scans
def _check_weights(wb, row):
    if not np.all(np.isfinite(wb)) or np.any(wb < 0):
        raise ValueError(f"sample_weight must be finite and >= 0 (block starting at row {row}).")


def scan_source(source, sample_size, seed):
    """One pass over a coded block source: row counts, weight checks and a
    uniform sample of ``sample_size`` rows (all rows, in order, when there
    are no more), drawn as :func:`emix.backends.chunked.scan_source` draws it.
    Unlike that scan it accepts NaN (families that marginalize missing values
    have checked their blocks in ``encode``)."""
    res = chunked.Reservoir(sample_size, seed)
    n = n_eff = 0
    sum_w = 0.0
    D = None
    everything, any_w = [], False
    for Xb, wb in source():
        if D is None:
            D = Xb.shape[1]
        elif Xb.shape[1] != D:
            raise ValueError(f"The coded blocks have {Xb.shape[1]} and {D} columns; the family's encode must "
                             "give every block the same columns.")
        if wb is not None:
            _check_weights(wb, n)
            any_w = True
            n_eff += int(np.count_nonzero(wb))
            sum_w += float(wb.sum())
        else:
            n_eff += Xb.shape[0]
            sum_w += Xb.shape[0]
        res.add(Xb, wb)
        if everything is not None:
            everything = everything + [(Xb, wb)] if n + Xb.shape[0] <= sample_size else None
        n += Xb.shape[0]
    if D is None:
        raise ValueError("The block source yielded no rows.")
    if everything is not None:
        rows = np.concatenate([e[0] for e in everything])
        w = (np.concatenate([e[1] if e[1] is not None else np.ones(e[0].shape[0]) for e in everything])
             if any_w else None)
        sampled = False
    else:
        rows, w = res.result()
        sampled = True
    return {"n_samples": n, "n_features": D, "n_eff": n_eff, "sum_w": sum_w, "sample": rows,
            "sample_weight": w, "sampled": sampled, "weighted": any_w}


def _block_checks(Xb, wb, allows_missing):
    """(rows, all finite, weights ok, rows of positive weight, sum of weights) of one block."""
    finite = True if allows_missing else bool(np.all(np.isfinite(Xb)))
    if wb is None:
        return Xb.shape[0], finite, True, Xb.shape[0], float(Xb.shape[0])
    wb = np.asarray(wb, dtype=np.float64)
    ok = bool(np.all(np.isfinite(wb)) and not np.any(wb < 0))
    return Xb.shape[0], finite, ok, int(np.count_nonzero(wb)), float(wb.sum())


def scan_dask(X, w, sample_size, seed, allows_missing):
    """:func:`scan_source` for a coded Dask array (known row chunks): the
    checks block by block where the blocks lie, and the sample drawn with
    :func:`emix.backends.dask._weighted_sample_index` (for unit weights, the
    same rows as the one-stream reservoir)."""
    import dask
    import dask.array as da

    from .backends import dask as dk

    n, D = X.shape
    if n == 0:
        raise ValueError("The Dask collection has no rows.")
    x_parts = X.to_delayed().ravel()
    w_parts = [None] * len(x_parts) if w is None else list(w.to_delayed().ravel())
    got = dask.compute(*[dask.delayed(_block_checks, pure=True)(xb, wb, allows_missing)
                         for xb, wb in zip(x_parts, w_parts)])
    if not all(g[1] for g in got):
        raise ValueError("Input contains NaN or infinity.")
    if not all(g[2] for g in got):
        raise ValueError("sample_weight must be finite and >= 0.")
    n_eff, sum_w = sum(g[3] for g in got), sum(g[4] for g in got)
    if n <= sample_size:
        rows, sw = dask.compute(X, w) if w is not None else (X.compute(), None)
        sampled = False
    else:
        wk = w if w is not None else da.ones(n, chunks=(X.chunks[0],))
        idx = dk._weighted_sample_index(wk, n_eff, sample_size, seed)
        rows, sw = dask.compute(X[idx], w[idx]) if w is not None else (X[idx].compute(), None)
        sampled = True
    return {"n_samples": n, "n_features": D, "n_eff": n_eff, "sum_w": sum_w, "sample": np.asarray(rows),
            "sample_weight": None if sw is None else np.asarray(sw, dtype=np.float64), "sampled": sampled,
            "weighted": w is not None}


# ------------------------------------------------------------------ Dask coding
def _dask_parts(X):
    """The row blocks of a Dask DataFrame (partitions) or array (one chunk
    across the columns) as delayed objects, in order."""
    import dask.array as da

    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(f"Expected a 2-D Dask array (rows, features). Got shape {X.shape}.")
        return list(X.rechunk({1: -1}).to_delayed().ravel())
    return list(X.to_delayed())


def _n_dask_columns(X):
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        return len(X.columns)
    return int(shape[1])


def dask_encoded(X, family, meta, known_rows=True):
    """A float64 Dask array of the coded rows of a Dask array or DataFrame.
    Numeric families: ``map_blocks`` over the float array. Raw-input
    families: one ``from_delayed`` block per partition (the coded width is
    read from the first partition)."""
    import dask
    import dask.array as da

    from .backends import dask as dk

    if not getattr(family, "raw_input", False):
        Xd = dk.as_dask_array(X, dtype=np.float64, known_rows=known_rows)
        return Xd.map_blocks(_encode_chunk, family, meta, dtype=np.float64)
    parts = _dask_parts(X)
    coded = [dask.delayed(_encode_known, pure=True)(family, p, meta) for p in parts]
    # the first partition is coded here, on the client: it gives the coded width, and a family that
    # resolves itself in encode (the mixed family's column layout) is resolved before it is sent out
    width = int(_encode_known(family, dask.compute(parts[0])[0], meta).shape[1])
    lengths = [math.nan] * len(parts)
    if known_rows:
        lengths = list(dask.compute(*[dask.delayed(lambda p: _raw_columns(p)[0], pure=True)(p) for p in parts]))
    return da.concatenate([da.from_delayed(c, shape=(n, width), dtype=np.float64)
                           for c, n in zip(coded, lengths)], axis=0)


# ------------------------------------------------------------------ fit
def _block_rows(est, D):
    budget = DEFAULT_WORKING_MEMORY_MIB if est.working_memory is None else est.working_memory
    return default_block_rows(1 << 62, 6 * est.n_components + 2 * D, 8, budget)


def fit(est, X, sample_weight=None):
    """``MixtureModel.fit`` on a block source or a Dask collection (see the
    module docstring); returns ``est``."""
    from .backends import dask as dk

    est._check_params()
    warm = est.warm_start and hasattr(est, "converged_") and hasattr(est, "family_")
    family = est.family_ if warm else est._resolve()
    rng = check_random_state(est.random_state)
    seed, advanced = chunked.sample_seed(rng)
    names = None
    if data_kind(X) == "dask":
        n_cols = _n_dask_columns(X)
        if warm and n_cols != est.n_features_in_:
            raise ValueError(f"X has {n_cols} features, but MixtureModel is expecting {est.n_features_in_} "
                             "features as input.")
        if warm:
            meta = est.encoding_
        elif _needs_meta_pass(family):
            import dask

            meta = _merge(family, dask.compute(*[dask.delayed(_block_meta, pure=True)(family, p)
                                                 for p in _dask_parts(X)]))
        else:
            meta = None
        if not warm:  # the family configured with what it learned (a new instance; families are immutable)
            family = family.with_meta(meta)
        Xe = dask_encoded(X, family, meta)
        wd = dk.as_dask_weights(sample_weight, Xe.chunks[0], np.float64)
        names = dk.feature_names(X)
        rows = _block_rows(est, Xe.shape[1])
        client = dk.get_client()
        if client is not None:
            reducer = dk.DaskReducer(Xe, wd, client, block_rows=rows)
            info = scan_dask(*reducer._persisted, chunked.DEFAULT_INIT_SAMPLE, seed, family.allows_missing)
        else:
            info = scan_dask(Xe, wd, chunked.DEFAULT_INIT_SAMPLE, seed, family.allows_missing)
            reducer = chunked.ChunkedReducer(dk.local_source(Xe, wd), Xe.shape[1], np.float64, rows)
    else:
        if sample_weight is not None:
            raise ValueError("sample_weight cannot be passed with a block source; yield (X_block, w_block) pairs "
                             "instead.")
        n_expected = est.n_features_in_ if warm else None
        if warm:
            meta = est.encoding_
        elif _needs_meta_pass(family):
            meta = _merge(family, [_block_meta(family, Xb) for Xb, _ in raw_blocks(X)])
        else:
            meta = None
        if not warm:
            family = family.with_meta(meta)
        source = EncodedSource(X, family, meta, n_expected)
        info = scan_source(source, chunked.DEFAULT_INIT_SAMPLE, seed)
        n_cols = source.n_columns
        reducer = chunked.ChunkedReducer(source, info["n_features"], np.float64,
                                         _block_rows(est, info["n_features"]))
    if info["sampled"]:
        rng = advanced
    if info["n_samples"] < 2:
        raise ValueError(f"Found {info['n_samples']} sample(s); at least 2 are required.")
    V.check_enough_samples(info["n_eff"], est.n_components, info["weighted"])
    mixture = Mixture(family)
    est._n_fit = int(info["n_samples"])  # rows, for the singular-fit rule (emix._singular)
    Xs, ws = info["sample"], info["sample_weight"]
    if info["weighted"]:  # to a mean weight of 1 over all rows, as in memory
        if not info["sum_w"] > 0:
            raise ValueError("sample_weight must have at least one positive value. Got all zeros.")
        scale = info["n_samples"] / info["sum_w"]
        reducer = chunked.ScaledWeights(reducer, scale)
        ws = ws * scale
    est.family_, est.encoding_ = family, meta
    est.n_features_in_ = int(n_cols)
    if names is not None:
        est.feature_names_in_ = names
    elif hasattr(est, "feature_names_in_"):
        del est.feature_names_in_
    best = est._em_restarts(reducer, lambda: est._initial_params(mixture, Xs, ws, rng), mixture)
    est._set_fitted(best, family)
    est.n_passes_ = getattr(reducer, "n_calls", None)
    return est


# ------------------------------------------------------------------ inference
def _infer_block(Xf, kind, mixture, params):
    if kind == "predict":
        return np.argmax(mixture.log_resp(Xf, params)[1], axis=1) if Xf.shape[0] else np.empty(0, np.intp)
    if kind == "predict_proba":
        return np.exp(mixture.log_resp(Xf, params)[1]) if Xf.shape[0] else np.empty((0, params.n_components))
    if kind == "log_max_resp":
        return np.max(mixture.log_resp(Xf, params)[1], axis=1) if Xf.shape[0] else np.empty(0)
    return logsumexp(mixture.weighted_log_prob(Xf, params), axis=1) if Xf.shape[0] else np.empty(0)


def _infer_raw_block(Xb, kind, mixture, meta, params):
    return _infer_block(_encode_known(mixture.family, Xb, meta), kind, mixture, params)


def infer(est, kind, X):
    """``predict``, ``predict_proba`` or ``score_samples`` (``kind``) on a Dask
    collection (lazy) or a block source (numpy, block by block)."""
    check_is_fitted(est)
    family, meta, params = est.family_, est.encoding_, est._params()
    mixture = Mixture(family)
    K = params.n_components
    if data_kind(X) == "source":
        out = []
        for Xf, _ in EncodedSource(X, family, meta, est.n_features_in_)():
            rows = _block_rows(est, Xf.shape[1])
            out.extend(_infer_block(Xf[i:i + rows], kind, mixture, params) for i in range(0, Xf.shape[0], rows))
        if not out:
            raise ValueError("The block source yielded no rows.")
        return np.concatenate(out, axis=0)
    import dask
    import dask.array as da

    from .backends import dask as dk

    n_cols = _n_dask_columns(X)
    if n_cols != est.n_features_in_:
        raise ValueError(f"X has {n_cols} features, but MixtureModel is expecting {est.n_features_in_} features "
                         "as input.")
    dtype = np.intp if kind == "predict" else np.float64
    if not getattr(family, "raw_input", False):
        Xd = dk.as_dask_array(X, dtype=np.float64, known_rows=False)
        if kind == "predict_proba":
            return Xd.map_blocks(_infer_raw_block, kind, mixture, meta, params, chunks=(Xd.chunks[0], (K,)),
                                 dtype=dtype)
        return Xd.map_blocks(_infer_raw_block, kind, mixture, meta, params, drop_axis=1, dtype=dtype)
    shape = (math.nan, K) if kind == "predict_proba" else (math.nan,)
    return da.concatenate([
        da.from_delayed(dask.delayed(_infer_raw_block, pure=True)(p, kind, mixture, meta, params), shape=shape,
                        dtype=dtype) for p in _dask_parts(X)], axis=0)


def score(est, X, sample_weight=None):
    """Mean (weighted) log-likelihood on a Dask collection or a block source
    (whose ``(X_block, w_block)`` pairs carry the weights)."""
    ll = infer(est, "score_samples", X)
    if data_kind(X) == "source":
        if sample_weight is not None:
            raise ValueError("sample_weight cannot be passed with a block source; yield (X_block, w_block) pairs "
                             "instead.")
        ws = [wb if wb is not None else np.ones(_raw_columns(Xb)[0]) for Xb, wb in raw_blocks(X)]
        w = np.concatenate(ws)
        if not np.any(w > 0):
            raise ValueError("sample_weight must have at least one positive value. Got all zeros.")
        return float(np.average(ll, weights=w))
    if sample_weight is None:
        return float(ll.mean().compute())
    from .backends import dask as dk

    ll = ll.compute_chunk_sizes() if any(math.isnan(c) for c in ll.chunks[0]) else ll
    w = dk.as_dask_weights(sample_weight, ll.chunks[0], np.float64)
    import dask

    total, sw, bad = dask.compute((ll * w).sum(), w.sum(), (w < 0).any())
    if bad or not np.isfinite(sw) or not sw > 0:
        raise ValueError("sample_weight must be finite, >= 0, and have at least one positive value.")
    return float(total / sw)


def criterion(est, name, X, sample_weight=None):
    """``bic``, ``aic`` or ``icl`` (``name``) on a Dask collection or a block
    source (whose ``(X_block, w_block)`` pairs carry the weights): the
    weighted sums of ``log p(x_n)`` and, for ICL, of ``log max_k r_nk``, as
    :meth:`emix.MixtureModel.bic` etc. compute them in memory."""
    from .core import criteria

    ll = infer(est, "score_samples", X)
    lm = infer(est, "log_max_resp", X) if name == "icl" else None
    if data_kind(X) == "source":
        if sample_weight is not None:
            raise ValueError("sample_weight cannot be passed with a block source; yield (X_block, w_block) pairs "
                             "instead.")
        ws = [wb for _, wb in raw_blocks(X)]
        w = None if all(wb is None for wb in ws) else np.concatenate(
            [np.ones(n) if wb is None else wb for wb, n in zip(ws, _block_lengths(X))])
        w = V.check_sample_weight(w, ll.shape[0], np.float64)
        total, n_eff = (ll.sum(), float(ll.shape[0])) if w is None else (ll @ w, float(w.sum()))
        s = None if lm is None else (lm.sum() if w is None else lm @ w)
    else:
        import dask

        from .backends import dask as dk

        if sample_weight is None:
            total, s, n_eff = dask.compute(ll.sum(), None if lm is None else lm.sum(),
                                           ll.map_blocks(np.ones_like).sum())  # rows, chunks maybe unknown
        else:
            ll, lm = (None if a is None else a.compute_chunk_sizes() if any(math.isnan(c) for c in a.chunks[0])
                      else a for a in (ll, lm))  # (a Dask DataFrame's partition lengths are unknown)
            w = dk.as_dask_weights(sample_weight, ll.chunks[0], np.float64)
            total, s, n_eff, bad = dask.compute((ll * w).sum(), None if lm is None else (lm * w).sum(), w.sum(),
                                                (w < 0).any())
            if bad or not np.isfinite(n_eff) or not n_eff > 0:
                raise ValueError("sample_weight must be finite, >= 0, and have at least one positive value.")
    p = est._n_parameters()
    if name == "bic":
        return criteria.bic(float(total), p, float(n_eff))
    if name == "aic":
        return criteria.aic(float(total), p)
    return criteria.icl(float(total), p, float(n_eff), float(s))


def _block_lengths(source):
    return [_raw_columns(Xb)[0] for Xb, _ in raw_blocks(source)]


__all__ = ["criterion", "data_kind", "fit", "infer", "score"]
