"""MixtureModel's non-Gaussian families beyond memory and online: a block
source and a Dask array or DataFrame (local scheduler and a LocalCluster)
give the in-memory fit, inference on Dask is lazy, raw-input families code
their blocks with the whole data's encoding (``merge_meta``), and
``partial_fit`` is batch EM pass for pass (exact) or converges on a stream
(stepwise). The in-memory fit is checked against independent EM code in
tests/test_mixture_model.py; here it is the oracle, and ``partial_fit`` is
checked against an EM step written from the formulas with scipy.stats."""

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as ss
from scipy.special import logsumexp

import emix
from emix.backends import chunked
from emix.exceptions import ConvergenceWarning
from emix.families import family_names, registry
from emix.families.base import ComponentFamily, empty_component_check

#: the fits here run a fixed number of iterations (tol=0): not converging is expected
pytestmark = pytest.mark.filterwarnings("ignore::emix.exceptions.ConvergenceWarning")

LAM = np.array([[1.0, 8.0, 2.0], [8.0, 1.0, 10.0], [3.0, 3.0, 0.3]])
MIX = np.array([0.5, 0.3, 0.2])


def poisson_data(n, seed):
    rng = np.random.default_rng(seed)
    z = rng.choice(3, n, p=MIX)
    return rng.poisson(LAM[z]).astype(float)


def student_t_data(n, seed):
    rng = np.random.default_rng(seed)
    z = rng.choice(3, n, p=MIX)
    means = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    return means[z] + rng.standard_t(4.0, size=(n, 2))


DATA = {"poisson": poisson_data, "student_t": student_t_data}
#: families this file checks: those registered now (student_t joins when it is)
FAMILIES = [f for f in ("poisson", "student_t") if f in family_names()]


@pytest.fixture(scope="module", params=FAMILIES)
def case(request):
    return request.param, DATA[request.param](600, 1)


def blocks_of(X, sizes, w=None):
    """A block source cutting X at the given sizes (the rest in one block)."""
    bounds = np.cumsum([0] + [s for s in sizes if s > 0])
    bounds = [int(b) for b in bounds if b < len(X)] + [len(X)]

    def source():
        for a, b in itertools.pairwise(bounds):
            yield X[a:b] if w is None else (X[a:b], w[a:b])

    return source


def model(family, **kw):
    kw = {"random_state": 0, "tol": 0.0, "max_iter": 6, **kw}
    return emix.MixtureModel(3, family=family, **kw)


def fit(family, data, w=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model(family, **kw).fit(data, sample_weight=w)


def assert_same(a, b, tol=1e-10):
    for name in ["weights_"] + [p + "_" for p in a.family_.param_names]:
        np.testing.assert_allclose(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), rtol=tol, atol=tol,
                                   err_msg=name)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=tol, atol=tol)
    assert a.n_iter_ == b.n_iter_ and a.converged_ == b.converged_


@pytest.fixture(scope="module")
def starts(case):
    """A fitted model to start from (warm_start): the same start for every
    way of fitting, without k-means per example."""
    family, X = case
    return fit(family, X, max_iter=1)


def warm_from(start, **kw):
    """A model that continues from ``start``'s parameters."""
    m = model(start.family_.name, warm_start=True, **kw)
    for name in ["weights_", "converged_", "lower_bound_", "family_", "encoding_", "n_features_in_"] + \
            [p + "_" for p in start.family_.param_names]:
        setattr(m, name, getattr(start, name))
    return m


def fit_warm(start, data, w=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return warm_from(start, **kw).fit(data, sample_weight=w)


# ----------------------------------------------------------- block sources
@pytest.mark.parametrize("sizes", [[600], [7] * 90, [100, 1, 250, 0, 13], [1000]])
def test_block_source_equals_in_memory_from_kmeans(case, sizes):
    """All rows are sampled (600 <= DEFAULT_INIT_SAMPLE): the same k-means start, the same fit."""
    family, X = case
    assert_same(fit(family, blocks_of(X, sizes)), fit(family, X))


@settings(deadline=None, derandomize=True, max_examples=10)
@given(sizes=st.lists(st.integers(7, 1000), max_size=8), working_memory=st.sampled_from([None, 0.001, 0.05]),
       weighted=st.sampled_from(["none", "positive", "zeros"]))
def test_block_sizes_do_not_matter(case, starts, sizes, working_memory, weighted):
    _, X = case
    w = {"none": None, "positive": np.linspace(0.1, 3.0, len(X)),
         "zeros": np.where(np.arange(len(X)) % 3 == 0, 0.0, 1.5)}[weighted]
    got = fit_warm(starts, blocks_of(X, sizes, w), working_memory=working_memory)
    assert_same(got, fit_warm(starts, X, w))


def test_zero_weight_rows_count_for_nothing(case, starts):
    """Rows of weight 0, here with values the family would fit very
    differently, leave the fit as without them."""
    _, X = case
    w = np.where(np.arange(len(X)) % 4 == 0, 0.0, 1.0)
    Xz = X.copy()
    Xz[w == 0] *= 50
    got = fit_warm(starts, blocks_of(Xz, [97] * 7, w))
    assert_same(got, fit_warm(starts, X[w > 0]), tol=1e-9)


def test_zero_weights_from_kmeans_equal_in_memory(case):
    family, X = case
    w = np.where(np.arange(len(X)) % 5 == 0, 0.0, 2.0)
    assert_same(fit(family, blocks_of(X, [50] * 12, w)), fit(family, X, w))


def test_sampled_start_does_not_depend_on_blocks(case, monkeypatch):
    """With fewer sample rows than data rows the start comes from a uniform
    sample; the sample (and the fit) are the same whatever the blocks, and
    the same from a Dask array over the same rows."""
    da = pytest.importorskip("dask.array")
    monkeypatch.setattr(chunked, "DEFAULT_INIT_SAMPLE", 150)
    family, X = case
    a = fit(family, blocks_of(X, [600]))
    assert_same(fit(family, blocks_of(X, [7, 300, 11, 90])), a)
    assert_same(fit(family, da.from_array(X, chunks=(83, -1))), a)


@pytest.mark.slow
def test_fits_ten_times_more_counts_than_the_memory_limit(monkeypatch):
    """80 blocks of 2,500 x 8 Poisson counts (12.8 MB as float64) made on the
    fly, fitted with a traced peak under a tenth of that (0.9 MB measured) in
    one pass per iteration after the scan; the rates found
    are the truth's within 0.1 (sampling sd of a rate mean on ~67,000 rows
    is under 0.015)."""
    import tracemalloc

    n_blocks, rows, D = 80, 2_500, 8
    total_bytes = n_blocks * rows * D * 8
    rates = np.array([[1.0] * 4 + [6.0] * 4, [6.0] * 4 + [1.0] * 4, [3.0] * 8])

    passes = []

    def source():
        passes.append(1)
        for b in range(n_blocks):
            rng = np.random.default_rng(b)
            yield rng.poisson(rates[rng.integers(0, 3, size=rows)]).astype(np.float64)

    monkeypatch.setattr(chunked, "DEFAULT_INIT_SAMPLE", 2000)
    m = emix.MixtureModel(3, family="poisson", random_state=0, max_iter=20, tol=1e-4, working_memory=0.25)
    m.fit(blocks_of(poisson_data(300, 0), [100]))  # modules imported on a first fit are not the fit's memory
    passes.clear()
    tracemalloc.start()
    try:
        m.fit(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < total_bytes // 10, f"peak {peak / 1e6:.2f} MB"
    order = np.argsort(m.rates_[:, 0])
    np.testing.assert_allclose(m.rates_[order], rates[[0, 2, 1]], atol=0.1)
    assert len(passes) == 1 + m.n_iter_  # the scan, then one pass per EM iteration


def test_block_source_inference_equals_in_memory(case):
    family, X = case
    m = fit(family, X)
    src = blocks_of(X, [7, 250, 1000])
    np.testing.assert_array_equal(m.predict(src), m.predict(X))
    np.testing.assert_allclose(m.predict_proba(src), m.predict_proba(X), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m.score_samples(src), m.score_samples(X), rtol=1e-12)
    w = np.linspace(0.0, 2.0, len(X))
    assert m.score(blocks_of(X, [77], w)) == pytest.approx(m.score(X, sample_weight=w), rel=1e-12)
    np.testing.assert_array_equal(model(family).fit_predict(src), fit(family, X).predict(X))


# -------------------------------------------------------------------- Dask
@pytest.fixture
def local_scheduler(monkeypatch):
    """Dask's threaded scheduler even while the module's LocalCluster client
    exists (which would otherwise be the default)."""
    dask = pytest.importorskip("dask")
    import emix.backends.dask as dk

    monkeypatch.setattr(dk, "get_client", lambda: None)
    with dask.config.set(scheduler="threads"):
        yield

def _dask_cases(X, w):
    da = pytest.importorskip("dask.array")
    dd = pytest.importorskip("dask.dataframe")
    import pandas as pd

    Xd = da.from_array(X, chunks=(71, -1))
    df = dd.from_pandas(pd.DataFrame(X, columns=[f"c{j}" for j in range(X.shape[1])]), npartitions=5)
    wd = None if w is None else da.from_array(w, chunks=(71,))
    return [(Xd, wd), (Xd, w), (df, w)]


@pytest.mark.parametrize("weighted", [False, True])
def test_dask_local_scheduler_equals_in_memory(case, weighted, local_scheduler):
    family, X = case
    w = np.where(np.arange(len(X)) % 7 == 0, 0.0, np.linspace(0.5, 2.0, len(X))) if weighted else None
    ref = fit(family, X, w)
    for data, wd in _dask_cases(X, w):
        assert_same(fit(family, data, wd), ref)


@pytest.mark.slow  # the cluster's workers import emix on the first call (~5-10 s)
@pytest.mark.parametrize("weighted", [False, True])
def test_dask_cluster_equals_in_memory(case, client, weighted):
    family, X = case
    w = np.where(np.arange(len(X)) % 7 == 0, 0.0, np.linspace(0.5, 2.0, len(X))) if weighted else None
    ref = fit(family, X, w)
    for data, wd in _dask_cases(X, w):
        got = fit(family, data, wd)
        assert_same(got, ref)
        assert got.n_passes_ == got.n_iter_
    df = _dask_cases(X, w)[2][0]
    assert list(got.feature_names_in_) == list(df.columns)


def _counting_dask_array(X, chunks):
    """A Dask array whose blocks count how often they are computed."""
    da = pytest.importorskip("dask.array")
    calls = []

    def block(b):
        if b.shape[0]:  # not dask's own 0-row probe for the output's type
            calls.append(b.shape[0])
        return b

    return da.from_array(X, chunks=chunks).map_blocks(block, dtype=X.dtype), calls


@pytest.mark.parametrize("use_client", [False, True])
def test_dask_inference_is_lazy_and_equals_in_memory(case, use_client, request):
    da = pytest.importorskip("dask.array")
    request.getfixturevalue("client" if use_client else "local_scheduler")
    family, X = case
    m = fit(family, X)
    Xd, calls = _counting_dask_array(X, (53, -1))
    lazy = {"predict": m.predict(Xd), "predict_proba": m.predict_proba(Xd), "score_samples": m.score_samples(Xd)}
    if not use_client:
        assert calls == []  # nothing computed yet
    for kind, arr in lazy.items():
        assert isinstance(arr, da.Array), kind
        np.testing.assert_allclose(arr.compute(), getattr(m, kind)(X), rtol=1e-12, atol=1e-14, err_msg=kind)
    if not use_client:
        assert sum(calls) == 3 * len(X)  # each lazy result computed its blocks once
    assert lazy["predict"].dtype.kind == "i" and lazy["predict_proba"].shape[1] == 3
    assert m.score(Xd) == pytest.approx(m.score(X), rel=1e-12)
    labels = model(family).fit_predict(da.from_array(X, chunks=(100, -1)))
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), fit(family, X).predict(X))


def test_criteria_equal_in_memory(case, local_scheduler):
    dd = pytest.importorskip("dask.dataframe")
    import pandas as pd

    family, X = case
    m = fit(family, X)
    w = np.where(np.arange(len(X)) % 6 == 0, 0.0, np.linspace(0.2, 2.0, len(X)))
    df = dd.from_pandas(pd.DataFrame(X), npartitions=4)  # unknown partition lengths
    for name in ("bic", "aic", "icl"):
        crit = getattr(m, name)
        ref, ref_w = crit(X), crit(X, sample_weight=w)
        assert crit(blocks_of(X, [7, 300])) == pytest.approx(ref, rel=1e-12), name
        assert crit(blocks_of(X, [55], w)) == pytest.approx(ref_w, rel=1e-12), name
        for data, _ in _dask_cases(X, None)[:1] + [(df, None)]:
            assert crit(data) == pytest.approx(ref, rel=1e-12), name
            assert crit(data, sample_weight=w) == pytest.approx(ref_w, rel=1e-12), name


# ------------------------------------------------------- errors at the edge
def test_errors(case):
    family, X = case
    with pytest.raises(ValueError, match="yield \\(X_block, w_block\\) pairs"):
        model(family).fit(blocks_of(X, [100]), sample_weight=np.ones(len(X)))
    with pytest.raises(ValueError, match="yielded no rows"):
        model(family).fit(lambda: iter([]))
    with pytest.raises(ValueError, match="at least 2"):
        model(family).fit(lambda: iter([X[:1]]))
    with pytest.raises(ValueError, match="Every block must have 3 columns|Every block must have 2 columns"):
        model(family).fit(lambda: iter([X[:50], X[50:100, :1]]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        model(family).fit(blocks_of(X, [100], -np.ones(len(X))))
    with pytest.raises(ValueError, match="NaN or infinity"):
        bad = X.copy()
        bad[450, 0] = np.nan
        model(family).fit(blocks_of(bad, [100]))
    with pytest.raises(TypeError, match="returned None"):
        model(family).fit(lambda: None)
    m = fit(family, X)
    with pytest.raises(ValueError, match="columns"):
        m.predict(lambda: iter([X[:, :1]]))
    da = pytest.importorskip("dask.array")
    with pytest.raises(ValueError, match="features"):
        m.predict(da.from_array(X[:, :1], chunks=(100, -1)))


def test_poisson_checks_every_block():
    """The family's own check (non-negative integer counts) runs on every
    block, also on rows the initialization sample does not hold."""
    X = poisson_data(600, 2)
    bad = X.copy()
    bad[590, 1] = 2.5
    with pytest.raises(ValueError, match="non-negative integer counts|integer"):
        model("poisson").fit(blocks_of(bad, [100]))
    da = pytest.importorskip("dask.array")
    bad[590, 1] = -1.0
    with pytest.raises(ValueError, match="Negative values"):
        model("poisson").fit(da.from_array(bad, chunks=(100, -1)))


# ------------------------------------------------ raw-input families (hook)
class OneColumnCategorical(ComponentFamily):
    """A test-local raw-input family: one column of string labels,
    categorical per component. Its coding (the sorted labels) is learned
    from the data, and ``merge_meta`` combines what each block learned."""

    name = "test_labels"
    param_names = ("probabilities",)
    raw_input = True

    def encode(self, X, meta=None):
        col = [str(v) for v in np.asarray(X, dtype=object).reshape(len(X), -1)[:, 0]]
        labels = sorted(set(col)) if meta is None else list(meta)
        index = {v: i for i, v in enumerate(labels)}
        unknown = [v for v in col if v not in index]
        if unknown:
            raise ValueError(f"Unknown label {unknown[0]!r}; fitted labels are {labels}.")
        return np.eye(len(labels))[[index[v] for v in col]], labels

    def merge_meta(self, metas):
        return sorted(set().union(*metas))

    def log_prob(self, X, comp):
        with np.errstate(divide="ignore"):
            return X @ np.log(comp["probabilities"]).T

    def suff_stats(self, X, rw, comp):
        return {"counts": rw.T @ X}

    def m_step(self, sums, nk, comp_prev):
        empty_component_check(nk, self.name, 1e-12)
        return {"probabilities": (sums["counts"] + 1e-3) / (nk[:, None] + 1e-3 * sums["counts"].shape[1])}

    def n_parameters(self, comp):
        return comp["probabilities"].shape[0] * (comp["probabilities"].shape[1] - 1)

    def sample(self, comp, counts, rng):
        raise NotImplementedError

    def check_params(self, comp, K, D):
        return comp


class NoMergeCategorical(OneColumnCategorical):
    name = "test_labels_no_merge"
    merge_meta = None


@pytest.fixture
def labels(monkeypatch):
    import pandas as pd

    monkeypatch.setitem(registry._FAMILIES, "test_labels", OneColumnCategorical)
    monkeypatch.setitem(registry._FAMILIES, "test_labels_no_merge", NoMergeCategorical)
    rng = np.random.default_rng(3)
    z = rng.choice(2, 400)
    p = np.array([[0.7, 0.2, 0.05, 0.05], [0.05, 0.05, 0.3, 0.6]])
    vals = np.array(["a", "b", "c", "d"])[[rng.choice(4, p=p[k]) for k in z]]
    vals[:150] = np.where(vals[:150] == "d", "a", vals[:150])  # the first blocks never show 'd'
    return pd.DataFrame({"label": vals})


def test_raw_input_block_source_codes_blocks_with_all_labels(labels):
    df = labels
    kw = {"random_state": 0, "tol": 0.0, "max_iter": 5}
    ref = emix.MixtureModel(2, family="test_labels", **kw).fit(df)
    src = blocks_of(df, [50, 7, 90])  # DataFrame blocks; the first ones lack a label
    got = emix.MixtureModel(2, family="test_labels", **kw).fit(src)
    assert got.encoding_ == ref.encoding_ == ["a", "b", "c", "d"]
    np.testing.assert_allclose(got.probabilities_, ref.probabilities_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=1e-10)
    np.testing.assert_array_equal(got.predict(src), ref.predict(df))
    with pytest.raises(ValueError, match="Unknown label 'e'"):
        got.predict(lambda: iter([df.assign(label="e")]))
    with pytest.raises(NotImplementedError, match="merge_meta"):
        emix.MixtureModel(2, family="test_labels_no_merge", **kw).fit(src)


def test_raw_input_dask_dataframe(labels):
    dd = pytest.importorskip("dask.dataframe")
    da = pytest.importorskip("dask.array")
    df = labels
    kw = {"random_state": 0, "tol": 0.0, "max_iter": 5}
    ref = emix.MixtureModel(2, family="test_labels", **kw).fit(df)
    ddf = dd.from_pandas(df, npartitions=4)
    got = emix.MixtureModel(2, family="test_labels", **kw).fit(ddf)
    assert got.encoding_ == ref.encoding_
    np.testing.assert_allclose(got.probabilities_, ref.probabilities_, rtol=1e-10, atol=1e-12)
    proba = got.predict_proba(ddf)
    assert isinstance(proba, da.Array)
    np.testing.assert_allclose(proba.compute(), ref.predict_proba(df), rtol=1e-10, atol=1e-12)
    with pytest.raises(NotImplementedError, match="merge_meta"):
        emix.MixtureModel(2, family="test_labels_no_merge", **kw).fit(ddf)


# ------------------------------------- the registered raw-input families
def _table():
    """Two latent classes over a categorical column with missing answers
    (None) and a label the first 120 rows never show, a binary column, counts
    and a real column."""
    import pandas as pd

    rng = np.random.default_rng(11)
    n = 500
    z = rng.choice(2, n)
    a = np.where(z == 0, rng.choice(["x", "y", "z"], n, p=[0.7, 0.2, 0.1]),
                 rng.choice(["x", "y", "z"], n, p=[0.1, 0.2, 0.7])).astype(object)
    a[:120] = np.where(a[:120] == "z", "x", a[:120])
    a[::9] = None
    return pd.DataFrame({
        "a": a, "b": np.where(z == 0, rng.choice(["u", "v"], n, p=[0.8, 0.2]), rng.choice(["u", "v"], n, p=[0.3, 0.7])),
        "c": rng.poisson(np.where(z == 0, 1.0, 6.0)).astype(float), "d": rng.normal(np.where(z == 0, 0.0, 3.0), 1.0)})


RAW_CASES = [c for c in [
    ("categorical", ["a", "b"]), ("bernoulli", ["b"]),
    ({"a": "categorical", "b": "bernoulli", "c": "poisson", "d": "gaussian"}, ["a", "b", "c", "d"]),
    ("auto", ["b", "c", "d"]),
] if (c[0] if isinstance(c[0], str) else "mixed") in family_names() + ("auto",) and "mixed" in family_names()]


def _raw_data(family, cols):
    df = _table()[cols]
    return df.astype({"b": "category"}) if family == "auto" else df


def _frames_of(df, sizes):
    bounds = [b for b in np.cumsum([0] + sizes) if b < len(df)] + [len(df)]
    return lambda: (df.iloc[i:j] for i, j in itertools.pairwise(bounds))


def _assert_same_fit(got, ref, tol=1e-10):
    assert got.encoding_ == ref.encoding_
    for name in ["weights_"] + [p + "_" for p in ref.family_.param_names]:
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=tol, atol=tol, err_msg=name)
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=tol, atol=tol)


@pytest.mark.parametrize("family,cols", RAW_CASES, ids=lambda c: c if isinstance(c, str) else "mapping")
def test_raw_input_families_block_source_equal_in_memory(family, cols):
    df = _raw_data(family, cols)
    kw = {"random_state": 0, "tol": 0.0, "max_iter": 5}
    ref = emix.MixtureModel(2, family=family, **kw).fit(df)
    src = _frames_of(df, [60, 7, 200])  # the first blocks lack the label 'z'
    got = emix.MixtureModel(2, family=family, **kw).fit(src)
    _assert_same_fit(got, ref)
    np.testing.assert_array_equal(got.predict(src), ref.predict(df))
    np.testing.assert_allclose(got.score_samples(src), ref.score_samples(df), rtol=1e-12)


def _raw_dask(family, cols, use_client, request):
    dd = pytest.importorskip("dask.dataframe")
    da = pytest.importorskip("dask.array")
    request.getfixturevalue("client" if use_client else "local_scheduler")
    df = _raw_data(family, cols)
    kw = {"random_state": 0, "tol": 0.0, "max_iter": 5}
    ref = emix.MixtureModel(2, family=family, **kw).fit(df)
    ddf = dd.from_pandas(df, npartitions=4)
    got = emix.MixtureModel(2, family=family, **kw).fit(ddf)
    _assert_same_fit(got, ref)
    proba = got.predict_proba(ddf)
    assert isinstance(proba, da.Array)
    np.testing.assert_allclose(proba.compute(), ref.predict_proba(df), rtol=1e-10, atol=1e-12)
    assert got.bic(ddf) == pytest.approx(ref.bic(df), rel=1e-12)


@pytest.mark.parametrize("family,cols", RAW_CASES, ids=lambda c: c if isinstance(c, str) else "mapping")
def test_raw_input_families_dask_dataframe(family, cols, request):
    _raw_dask(family, cols, False, request)


@pytest.mark.slow
@pytest.mark.parametrize("family,cols", RAW_CASES[2:3], ids=["mapping"])
def test_raw_input_families_dask_cluster(family, cols, request):
    _raw_dask(family, cols, True, request)


# ------------------------------------------------------------- partial_fit
def poisson_em_step(X, w, weights, rates):
    """One EM iteration for a Poisson mixture, from the formulas with
    scipy.stats: returns (weights, rates, mean log-likelihood before)."""
    lp = ss.poisson.logpmf(X[:, None, :], rates[None, :, :]).sum(axis=2) + np.log(weights)
    norm = logsumexp(lp, axis=1)
    r = np.exp(lp - norm[:, None]) * w[:, None]
    nk = r.sum(axis=0)
    return nk / nk.sum(), (r.T @ X) / nk[:, None], float(norm @ w / w.sum())


@pytest.fixture(scope="module")
def stream():
    return poisson_data(6000, 7)


def test_exact_partial_fit_pass_is_one_batch_em_iteration(stream):
    X = stream[:1200]
    m = fit("poisson", X, max_iter=2)
    w0, r0 = m.weights_.copy(), m.rates_.copy()
    m.set_params(online_mode="exact", batches_per_pass=4)
    for i, b in enumerate(np.array_split(np.arange(len(X)), 4)):
        m.partial_fit(X[b])
        if i < 3:  # parameters move only at the end of the pass
            np.testing.assert_array_equal(m.rates_, r0)
    w1, r1, ll0 = poisson_em_step(X, np.ones(len(X)), w0, r0)
    np.testing.assert_allclose(m.weights_, w1, rtol=1e-12)
    np.testing.assert_allclose(m.rates_, r1, rtol=1e-10)
    assert m.lower_bound_ == pytest.approx(ll0, rel=1e-12) and m.n_iter_ == 1
    # a second pass is the second iteration
    for b in np.array_split(np.arange(len(X)), 4):
        m.partial_fit(X[b])
    w2, r2, ll1 = poisson_em_step(X, np.ones(len(X)), w1, r1)
    np.testing.assert_allclose(m.rates_, r2, rtol=1e-10)
    np.testing.assert_allclose(m.weights_, w2, rtol=1e-12)
    assert m.lower_bounds_ == pytest.approx([ll0, ll1], rel=1e-12) and m.n_iter_ == 2


def test_exact_partial_fit_sample_weights(stream):
    """Integer weights equal repeated rows; zero weights drop rows."""
    X = stream[:900]
    base = fit("poisson", X, max_iter=2)
    w = np.random.default_rng(0).integers(0, 4, len(X)).astype(float)
    a = warm_from(base, online_mode="exact", batches_per_pass=3)
    b = warm_from(base, online_mode="exact", batches_per_pass=3)
    parts = np.array_split(np.arange(len(X)), 3)
    for p in parts:
        a.partial_fit(X[p], sample_weight=w[p])
        b.partial_fit(np.repeat(X[p], w[p].astype(int), axis=0))
    np.testing.assert_allclose(a.rates_, b.rates_, rtol=1e-12)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-12)
    w1, r1, _ = poisson_em_step(X, w, base.weights_, base.rates_)
    np.testing.assert_allclose(a.rates_, r1, rtol=1e-10)
    np.testing.assert_allclose(a.weights_, w1, rtol=1e-12)


def test_stepwise_partial_fit_learns_from_a_stream(stream):
    """One pass of 40 batches of 150 rows from the first batch's k-means
    start: the whole stream's mean log-likelihood rises above the start's and
    ends within 0.01 nats per row of batch EM's; rates within 0.35 of the
    truth (the smallest component's rate means have sampling sd ~0.05 on
    1,200 rows, and stepwise EM weights recent batches more). Like batch EM,
    stepwise EM finds a local optimum: from some other first-batch starts
    (random_state=3 here) it merges two components, so the seed is fixed."""
    m = emix.MixtureModel(3, family="poisson", random_state=0)
    batches = np.array_split(stream, 40)
    m.partial_fit(batches[0])
    first = m.score(stream)
    for b in batches[1:]:
        m.partial_fit(b)
    batch = emix.MixtureModel(3, family="poisson", random_state=0, tol=1e-8, max_iter=500).fit(stream)
    assert m.score(stream) > first
    assert m.score(stream) > batch.score(stream) - 0.01
    order = np.argsort(m.rates_[:, 1])  # truth sorted by the second column: 1, 2, 4
    np.testing.assert_allclose(m.rates_[order], LAM[[1, 2, 0]], atol=0.35)
    np.testing.assert_allclose(m.weights_[order], MIX[[1, 2, 0]], atol=0.03)
    assert m.n_iter_ == 40 and len(m.lower_bounds_) == 40 and not m.converged_


def test_stepwise_weights_scale_free_and_zero_rows_ignored(stream):
    X = stream[:1000]
    base = fit("poisson", X, max_iter=2)
    a, b = warm_from(base), warm_from(base)
    for p in np.array_split(np.arange(len(X)), 5):
        w = np.where(p % 3 == 0, 0.0, 1.0)
        a.partial_fit(X[p], sample_weight=3.0 * w)
        b.partial_fit(X[p][w > 0])
    np.testing.assert_allclose(a.rates_, b.rates_, rtol=1e-12)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-12)


def test_partial_fit_errors(stream):
    X = stream[:200]
    with pytest.raises(ValueError, match="online_mode"):
        emix.MixtureModel(2, family="poisson", online_mode="nope").partial_fit(X)
    with pytest.raises(ValueError, match="batches_per_pass"):
        emix.MixtureModel(2, family="poisson", online_mode="exact").partial_fit(X)
    with pytest.raises(ValueError, match="learning_decay"):
        emix.MixtureModel(2, family="poisson", learning_decay=0.3).partial_fit(X)
    with pytest.raises(ValueError, match=">= 0"):
        emix.MixtureModel(2, family="poisson").partial_fit(X, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="Negative values"):
        emix.MixtureModel(2, family="poisson").partial_fit(-X)
    with pytest.raises(TypeError, match="not a block source"):
        emix.MixtureModel(2, family="poisson").partial_fit(blocks_of(X, [50]))
    m = emix.MixtureModel(2, family="poisson", random_state=0).partial_fit(X)
    with pytest.raises(ValueError, match="features"):
        m.partial_fit(X[:, :2])
