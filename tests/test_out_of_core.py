"""Out-of-core EM over block sources: the in-memory fit, whatever the blocks,
in bounded memory."""

import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emix import GaussianMixture, load, save
from emix.backends import chunked
from emix.exceptions import ConvergenceWarning
from emix.families.gaussian import structure_names
from emix.testing import make_mixture

ATTRS = ["weights_", "means_", "covariances_", "precisions_cholesky_"]


@pytest.fixture(scope="module")
def X():
    return make_mixture(1500, 3, 3, separation=4.0, random_state=5)[0]


def blocks_of(X, sizes, w=None):
    """A block source cutting X at the given sizes (the rest in one block)."""
    bounds = np.cumsum([0] + [s for s in sizes if s > 0])
    bounds = [int(b) for b in bounds if b < len(X)] + [len(X)]

    def source():
        for a, b in zip(bounds[:-1], bounds[1:]):
            yield X[a:b] if w is None else (X[a:b], w[a:b])

    return source


def _fit(data, name="full", w=None, **kw):
    kw = {"random_state": 0, "tol": 0.0, "max_iter": 6, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(3, covariance_type=name, **kw).fit(data, sample_weight=w)


def _assert_same(a, b, tol=1e-10):
    for name in ATTRS:
        np.testing.assert_allclose(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)),
                                   rtol=tol, atol=tol, err_msg=name)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", structure_names())
def test_block_source_equals_in_memory(X, name):
    data = X[:, :1].copy() if name in ("E", "V") else X
    # at most DEFAULT_INIT_SAMPLE rows: same k-means start as in memory
    _assert_same(_fit(blocks_of(data, [400, 400, 400]), name), _fit(data, name))


@pytest.fixture(scope="module")
def start(X):
    """Explicit initial parameters (k-means runs once, not per example)."""
    g = _fit(X, max_iter=1)
    return dict(weights_init=g.weights_, means_init=g.means_, precisions_init=g.precisions_)


@settings(deadline=None, derandomize=True, max_examples=12)
@given(
    sizes=st.lists(st.integers(0, 900), max_size=8),
    working_memory=st.sampled_from([None, 0.01, 0.1]),
    weighted=st.booleans(),
)
def test_chunk_size_independence(X, start, sizes, working_memory, weighted):
    w = np.linspace(0.1, 3.0, len(X)) if weighted else None
    got = _fit(blocks_of(X, sizes, w), working_memory=working_memory, **start)
    ref = _fit(X, w=w, **start)
    _assert_same(got, ref)


def test_sampled_init_does_not_depend_on_blocks(X, monkeypatch):
    monkeypatch.setattr(chunked, "DEFAULT_INIT_SAMPLE", 300)
    a = _fit(blocks_of(X, [100] * 15))
    b = _fit(blocks_of(X, [777]))
    _assert_same(a, b)
    # and differs from the in-memory start (a sample of 300 rows, not all 1500)
    assert not np.allclose(a.means_, _fit(X).means_, atol=1e-10)


def test_reservoir_is_uniform_without_replacement():
    X = np.arange(10000, dtype=float).reshape(-1, 1)
    seen = np.zeros(len(X))
    for seed in range(40):
        res = chunked.Reservoir(500, seed)
        for a in range(0, len(X), 1234):
            res.add(X[a : a + 1234], None)
        rows, _ = res.result()
        assert len(rows) == 500 and len(np.unique(rows)) == 500
        assert np.all(np.diff(rows[:, 0]) > 0)  # in data order
        seen[rows[:, 0].astype(int)] += 1
    # every row drawn with probability 0.05: 40 draws -> mean count 2
    assert abs(seen.mean() - 2.0) < 1e-12
    assert seen.reshape(10, -1).sum(axis=1).std() < 60  # no region favoured (sd ~ 14 expected)


def test_file_sources(X, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    ref = _fit(X)
    np.save(tmp_path / "x.npy", X)
    _assert_same(_fit(chunked.npy_source(tmp_path / "x.npy", chunk_rows=350)), ref)
    (tmp_path / "pq").mkdir()
    table = pa.table({f"c{j}": X[:, j] for j in range(X.shape[1])})
    pq.write_table(table.slice(0, 700), tmp_path / "pq" / "part-0.parquet", row_group_size=200)
    pq.write_table(table.slice(700), tmp_path / "pq" / "part-1.parquet", row_group_size=300)
    _assert_same(_fit(chunked.parquet_source(tmp_path / "pq")), ref)
    for i, part in enumerate(np.array_split(np.arange(len(X)), 3)):
        pd.DataFrame(X[part], columns=["a", "b", "c"]).to_csv(tmp_path / f"x{i}.csv", index=False)
    # float64 CSV text round-trips to the last bit with pandas' default parser
    _assert_same(_fit(chunked.csv_source(str(tmp_path / "x*.csv"), chunk_rows=256)), ref, tol=1e-9)


def test_inference_and_model_file_on_block_sources(X, tmp_path):
    src = blocks_of(X, [500, 500])
    g = _fit(src)
    np.testing.assert_array_equal(g.predict(src), g.predict(X))
    np.testing.assert_allclose(g.predict_proba(src), g.predict_proba(X), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g.score_samples(src), g.score_samples(X), rtol=1e-12)
    save(g, tmp_path / "m.emix")
    h = load(tmp_path / "m.emix")
    np.testing.assert_array_equal(h.predict(src), g.predict(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = GaussianMixture(3, random_state=0, tol=0.0, max_iter=6).fit_predict(blocks_of(X, [700]))
    np.testing.assert_array_equal(labels, g.predict(X))


def test_block_source_errors(X):
    with pytest.raises(ValueError, match="yielded no rows"):
        GaussianMixture(2).fit(lambda: iter([]))
    with pytest.raises(ValueError, match="columns"):
        GaussianMixture(2).fit(lambda: iter([X[:10], X[10:20, :2]]))
    with pytest.raises(ValueError, match="NaN or infinity"):
        GaussianMixture(2).fit(lambda: iter([np.full((5, 2), np.nan)]))
    with pytest.raises(ValueError, match="sample_weight cannot be passed"):
        GaussianMixture(2).fit(blocks_of(X, [500]), sample_weight=np.ones(len(X)))
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(5).fit(lambda: iter([X[:3]]))
    with pytest.raises(ValueError, match="2-D"):
        GaussianMixture(2).fit(lambda: iter([X[:, 0]]))


def test_dask_array_without_a_cluster_is_out_of_core(X):
    da = pytest.importorskip("dask.array")
    from emix.backends.dask import get_client

    if get_client() is not None:
        pytest.skip("a distributed client is active in this process")
    _assert_same(_fit(da.from_array(X, chunks=(400, -1))), _fit(X))


def test_fits_ten_times_more_data_than_the_memory_limit(monkeypatch):
    """80 blocks of 2,500 x 8 float64 rows (12.8 MB) made on the fly, fitted
    with a traced peak under 1.28 MB: a tenth of what holding the data in one
    piece would need."""
    n_blocks, rows, D = 80, 2_500, 8
    total_bytes = n_blocks * rows * D * 8
    limit = total_bytes // 10
    means = np.random.default_rng(0).normal(scale=5.0, size=(3, D))

    def source():
        for b in range(n_blocks):
            rng = np.random.default_rng(b)
            labels = rng.integers(0, 3, size=rows)
            block = rng.normal(size=(rows, D))
            for k in range(3):
                block[labels == k] += means[k]
            yield block

    monkeypatch.setattr(chunked, "DEFAULT_INIT_SAMPLE", 2000)  # the in-memory init sample: 128 kB
    gm = GaussianMixture(3, random_state=0, max_iter=5, tol=1e-3, working_memory=0.25)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"traced peak {peak / 1e6:.2f} MB for {total_bytes / 1e6:.1f} MB of data")
    assert peak < limit, f"peak {peak / 1e6:.2f} MB >= limit {limit / 1e6:.2f} MB"
    order = np.argsort(gm.means_[:, 0])
    np.testing.assert_allclose(gm.means_[order], means[np.argsort(means[:, 0])], atol=0.05)


def test_table_source_picks_columns_and_weights(X, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    w = np.linspace(0.5, 2.0, len(X))
    frame = pd.DataFrame({"id": np.arange(len(X)), "a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "w": w})
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=400)
    frame.to_csv(tmp_path / "t.csv", index=False)
    ref = _fit(X, w=w)
    for path in (tmp_path / "t.parquet", tmp_path / "t.csv"):
        source, names = chunked.table_source(path, chunk_rows=333, exclude=["id"], weights="w")
        assert names == ["a", "b", "c"]
        _assert_same(_fit(source), ref, tol=1e-9)
    np.save(tmp_path / "t.npy", np.column_stack([X, w]))
    source, names = chunked.table_source(tmp_path / "t.npy", chunk_rows=500, columns=["0", "1", "2"], weights="3")
    _assert_same(_fit(source), ref)
    with pytest.raises(ValueError, match="No column 'zz'"):
        chunked.table_source(tmp_path / "t.parquet", columns=["zz"])


def test_cli_fit_chunk_rows_reads_out_of_core(X, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from emix.cli import main

    frame = pd.DataFrame({"id": np.arange(len(X)), "a": X[:, 0], "b": X[:, 1], "c": X[:, 2]})
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=400)
    code = main(["fit", str(tmp_path / "t.parquet"), "-k", "3", "--chunk-rows", "256", "--exclude", "id",
                 "--seed", "0", "--tol", "1e-6", "-o", str(tmp_path / "m.emix"), "-q"])
    assert code == 0
    got = load(tmp_path / "m.emix")
    ref = GaussianMixture(3, random_state=0, tol=1e-6).fit(X)
    _assert_same(got, ref)
    assert list(got.feature_names_in_) == ["a", "b", "c"]
