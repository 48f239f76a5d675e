"""EM on Dask: same fit as numpy, lazy inference, a lost worker loses nothing.

One 2-worker LocalCluster (separate processes, so a worker can be killed) on
127.0.0.1 serves the whole module.
"""

import os
import sys
import signal
import time
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from emix import GaussianMixture  # noqa: E402
from emix.backends import chunked  # noqa: E402
from emix.backends.dask import DaskReducer  # noqa: E402
from emix.exceptions import ConvergenceWarning  # noqa: E402
from emix.families.gaussian import structure_names  # noqa: E402
from emix.testing import make_mixture  # noqa: E402

ATTRS = ["weights_", "means_", "covariances_", "precisions_cholesky_"]

# `client`: the 2-worker LocalCluster fixture of tests/conftest.py


@pytest.fixture(scope="module")
def data():
    X, _, _ = make_mixture(1200, 3, 3, separation=4.0, random_state=3)
    w = np.random.default_rng(1).uniform(0.2, 2.0, size=X.shape[0])
    return X, w


def _start(X, name, w=None):
    """Initial parameters for ``name``: two numpy iterations from k-means."""
    D = X.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g = GaussianMixture(3, covariance_type=name, max_iter=2, random_state=0).fit(X, sample_weight=w)
    del D
    return dict(weights_init=g.weights_, means_init=g.means_, precisions_init=g.precisions_)


def _data_for(name, X):
    return X[:, :1].copy() if name in ("E", "V") else X  # univariate models


def _fit(X, name, init, w=None, max_iter=8):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(3, covariance_type=name, tol=0.0, max_iter=max_iter, **init).fit(
            X, sample_weight=w
        )


def _assert_same(a, b, tol=1e-10):
    for name in ATTRS:
        np.testing.assert_allclose(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)),
                                   rtol=tol, atol=tol, err_msg=name)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=tol, atol=tol)
    assert a.n_iter_ == b.n_iter_


@pytest.mark.parametrize("name", structure_names())
def test_dask_fit_equals_numpy_fit(client, data, name):
    X = _data_for(name, data[0])
    init = _start(X, name)
    ref = _fit(X, name, init)
    got = _fit(da.from_array(X, chunks=(300, -1)), name, init)
    _assert_same(got, ref)


@pytest.mark.parametrize("name", ["full", "diag"])
def test_dask_weighted_fit_equals_numpy(client, data, name):
    X, w = data
    init = _start(X, name, w)
    ref = _fit(X, name, init, w)
    got = _fit(da.from_array(X, chunks=(250, -1)), name, init, da.from_array(w, chunks=400))
    _assert_same(got, ref)


def test_dask_default_init_matches_numpy_on_small_data(client, data):
    # at most DEFAULT_INIT_SAMPLE rows: the sample is all rows, so k-means
    # sees the same data and the same random_state as in memory
    X = data[0]
    ref = GaussianMixture(3, random_state=0, tol=1e-6).fit(X)
    got = GaussianMixture(3, random_state=0, tol=1e-6).fit(da.from_array(X, chunks=(500, -1)))
    _assert_same(got, ref)


def test_dask_sampled_init_is_the_block_source_sample(client, data, monkeypatch):
    monkeypatch.setattr(chunked, "DEFAULT_INIT_SAMPLE", 200)
    X = data[0]
    src = lambda: (X[i : i + 170] for i in range(0, len(X), 170))  # noqa: E731
    a = GaussianMixture(3, random_state=1, max_iter=5, tol=0.0)
    b = GaussianMixture(3, random_state=1, max_iter=5, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(src)
        b.fit(da.from_array(X, chunks=(333, -1)))
    _assert_same(a, b)


@settings(deadline=None, derandomize=True, max_examples=4)
@given(st.lists(st.integers(1, 600), min_size=1, max_size=5))
def test_dask_chunk_size_independence(client, data, sizes):
    X = data[0]
    cuts, total = [], 0
    for s in sizes:
        if total + s >= len(X):
            break
        cuts.append(s)
        total += s
    chunks = tuple(cuts) + (len(X) - total,)
    init = _start(X, "full")
    ref = _fit(X, "full", init, max_iter=5)
    got = _fit(da.from_array(X, chunks=(chunks, -1)), "full", init, max_iter=5)
    _assert_same(got, ref)


def test_lazy_inference_returns_dask_arrays(client, data):
    X = data[0]
    g = GaussianMixture(3, random_state=0).fit(X)
    Xd = da.from_array(X, chunks=(400, -1))
    labels, proba, dens = g.predict(Xd), g.predict_proba(Xd), g.score_samples(Xd)
    for a in (labels, proba, dens):
        assert isinstance(a, da.Array)
    assert proba.chunks == ((400, 400, 400), (3,))
    np.testing.assert_array_equal(labels.compute(), g.predict(X))
    np.testing.assert_allclose(proba.compute(), g.predict_proba(X), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dens.compute(), g.score_samples(X), rtol=1e-12)
    assert g.score(Xd) == pytest.approx(g.score(X), rel=1e-12)
    assert isinstance(GaussianMixture(3, random_state=0).fit_predict(Xd), da.Array)


def test_dask_dataframe_and_parquet(client, data, tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    X = data[0]
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    dd.from_pandas(frame, npartitions=3).to_parquet(tmp_path / "pq")
    df = dd.read_parquet(tmp_path / "pq")
    init = _start(X, "full")
    got = _fit(df, "full", init)
    _assert_same(got, _fit(X, "full", init))
    assert list(got.feature_names_in_) == ["a", "b", "c"]
    labels = got.predict(df)  # lazy: row counts of the partitions are not computed
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), got.predict(frame))


def test_worker_blas_threads_are_limited(client, data):
    X = data[0]
    reducer = DaskReducer(da.from_array(X, chunks=(300, -1)), None, client)
    # 2 workers x 1 thread on this host: cores // 2 BLAS threads each
    assert reducer.blas_threads == max(1, os.cpu_count() // 2)
    np.testing.assert_array_equal(reducer.map(lambda b: b[:, :1] * 2), X[:, :1] * 2)
    assert sum(b.shape[0] for b, _ in reducer.blocks()) == X.shape[0]
    GaussianMixture(2, max_iter=2, tol=1e-1).fit(da.from_array(X, chunks=(300, -1)))

    def blas_threads():
        from threadpoolctl import threadpool_info

        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    for threads in client.run(blas_threads).values():
        assert all(t <= max(1, os.cpu_count() // 2) for t in threads)


def _page_faults_of_block_temporaries():
    """Minor page faults while 20 block-sized temporaries (8 x 8192 float64,
    512 KiB) are made and freed: a few if freed memory is reused, about 128
    per temporary if every one is a fresh mapping."""
    import resource

    import numpy as np

    E = np.ones((8, 8192))
    np.exp(E)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        np.exp(E)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_workers_reuse_block_memory_after_a_fit(client, data):
    """Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, under which each
    block temporary is page-faulted in anew (checked in a subprocess with that
    setting); after an emix fit the workers reuse freed memory instead."""
    import subprocess

    code = "import sys; sys.path.insert(0, %r); import test_dask as t; print(t._page_faults_of_block_temporaries())"
    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", code % os.path.dirname(__file__)], env=env,
                         capture_output=True, text=True, check=True)
    assert int(out.stdout.strip().splitlines()[-1]) > 20 * 64  # the premise: faults on every temporary
    GaussianMixture(2, max_iter=2, tol=1e-1).fit(da.from_array(data[0], chunks=(300, -1)))
    for faults in client.run(_page_faults_of_block_temporaries).values():
        assert faults < 20 * 16


def test_killed_worker_does_not_lose_the_fit(client, data):
    X = data[0]
    Xd = da.from_array(X, chunks=(150, -1))
    init = _start(X, "full")
    ref = _fit(X, "full", init, max_iter=8)
    pids = client.run(os.getpid)
    killed = []

    def kill_one(info):
        if info["n_iter"] == 2 and not killed:
            pid = sorted(pids.values())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            time.sleep(0.2)  # let the next iteration start while the worker is gone

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        got = GaussianMixture(3, covariance_type="full", tol=0.0, max_iter=8, callback=kill_one, **init).fit(Xd)
    assert killed, "the worker was not killed"
    _assert_same(got, ref)
    client.wait_for_workers(2, timeout=30)
    assert killed[0] not in client.run(os.getpid).values()


def test_cli_fit_on_a_scheduler(client, data, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from emix import load
    from emix.cli import main

    X, w = data
    os.makedirs(tmp_path / "pq")
    for i, part in enumerate(np.array_split(np.arange(len(X)), 3)):
        pd.DataFrame({"a": X[part, 0], "b": X[part, 1], "c": X[part, 2], "w": w[part]}).to_parquet(
            tmp_path / "pq" / f"part-{i}.parquet")
    code = main(["fit", str(tmp_path / "pq"), "-k", "3", "--scheduler", client.scheduler.address,
                 "--weights", "w", "--seed", "0", "--tol", "1e-6", "-o", str(tmp_path / "m.emix"), "-q"])
    assert code == 0
    got = load(tmp_path / "m.emix")
    ref = GaussianMixture(3, random_state=0, tol=1e-6).fit(X, sample_weight=w)
    _assert_same(got, ref)
    assert list(got.feature_names_in_) == ["a", "b", "c"]


def _slow_sum_step(Xb, wb):
    """An E-step stand-in that takes a while, so a worker can die mid-task."""
    time.sleep(0.1)
    from emix.core.types import SuffStats

    K, D = 1, Xb.shape[1]
    return SuffStats(nk=np.array([float(Xb.shape[0])]), s1=Xb.sum(axis=0, keepdims=True), s2=np.zeros((K, D, D)),
                     shift=np.zeros((K, D)), loglik=float(Xb.sum()), sum_w=float(Xb.shape[0]))


def test_worker_killed_while_its_tasks_run(client, data):
    import threading

    client.wait_for_workers(2, timeout=30)
    X = data[0]
    reducer = DaskReducer(da.from_array(X, chunks=(100, -1)), None, client)
    expected = _slow_sum_step(X, None)
    pid = sorted(client.run(os.getpid).values())[0]
    threading.Timer(0.25, os.kill, (pid, signal.SIGKILL)).start()  # 6 blocks of 0.1 s per worker
    got = reducer(_slow_sum_step)
    np.testing.assert_allclose(got.s1, expected.s1, rtol=1e-12)
    assert got.nk[0] == X.shape[0] and got.loglik == pytest.approx(expected.loglik, rel=1e-12)
    client.wait_for_workers(2, timeout=30)
    assert pid not in client.run(os.getpid).values()


# ------------------------------------------------- Dask's own readers, dask-ml
def test_zarr_input_equals_numpy(client, data, tmp_path):
    pytest.importorskip("zarr")
    X, w = data
    da.to_zarr(da.from_array(X, chunks=(250, -1)), str(tmp_path / "x.zarr"))
    Xz = da.from_zarr(str(tmp_path / "x.zarr"))  # read by the workers, chunk by chunk
    assert Xz.chunks[0] == (250, 250, 250, 250, 200)
    init = _start(X, "full", w)
    _assert_same(_fit(Xz, "full", init, da.from_array(w, chunks=400)), _fit(X, "full", init, w))
    ref = GaussianMixture(3, random_state=0, tol=1e-6).fit(X)  # default start: all rows are the sample
    _assert_same(GaussianMixture(3, random_state=0, tol=1e-6).fit(Xz), ref)


def test_hdf5_input_equals_numpy(client, data, tmp_path):
    h5py = pytest.importorskip("h5py")
    X = data[0]
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("x", data=X, chunks=(200, 3))
    with h5py.File(tmp_path / "x.h5", "r") as f:
        Xh = da.from_array(f["x"], chunks=(400, -1))  # distributed reopens the file on the workers
        init = _start(X, "diag")
        _assert_same(_fit(Xh, "diag", init), _fit(X, "diag", init))
        np.testing.assert_array_equal(GaussianMixture(3, random_state=0).fit(X).predict(Xh).compute(),
                                      GaussianMixture(3, random_state=0).fit(X).predict(X))


@pytest.mark.parametrize("mode", ["exact", "stepwise"])
def test_dask_ml_incremental_is_partial_fit_block_by_block(client, data, mode):
    """dask-ml's Incremental calls partial_fit(block, None) once per block, in
    order with shuffle_blocks=False, on the cluster (the estimator and its
    online state travel between the tasks, pickled)."""
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X = data[0]
    kw = {"online_mode": "exact", "batches_per_pass": 4} if mode == "exact" else {}
    inc = wrappers.Incremental(GaussianMixture(3, random_state=0, **kw), shuffle_blocks=False)
    Xd = da.from_array(X, chunks=(300, -1))
    inc.fit(Xd).partial_fit(Xd)  # two passes
    ref = GaussianMixture(3, random_state=0, **kw)
    for _ in range(2):
        for i in range(0, len(X), 300):
            ref.partial_fit(X[i : i + 300])
    got = inc.estimator_
    # not bit for bit: the first call's k-means start runs with OpenMP threads
    # here and one thread on the worker, and scikit-learn's k-means adds its
    # threads' partial sums in the order they finish (a flake seen once at 0.0)
    _assert_same(got, ref, tol=1e-12)
    assert got.n_iter_ == (2 if mode == "exact" else 8)
    np.testing.assert_array_equal(inc.predict(Xd).compute(), ref.predict(X))
    assert inc.score(Xd, None) == pytest.approx(ref.score(X), rel=1e-12)
    if mode == "stepwise":  # a sensible fit: close to batch EM's log-likelihood
        assert ref.score(X) > GaussianMixture(3, random_state=0).fit(X).score(X) - 0.02


# ------------------------------------------------- weighted sample, blockwise
def _client_side_sample(w, size, seed):
    """The sample as drawn before (all keys and weights on the client)."""
    keys = np.random.default_rng(seed).random(len(w))
    keys = np.where(w > 0, keys, np.inf)
    idx = np.argsort(keys, kind="stable")[:size]
    return np.sort(idx[np.isfinite(keys[idx])])


@pytest.mark.parametrize("chunks, zeros", [(250, 0.3), ((7, 500, 693), 0.0), (1200, 0.95)])
def test_weighted_sample_is_drawn_blockwise(client, data, monkeypatch, chunks, zeros):
    from emix.backends import dask as dk

    X, w = data
    w = np.where(np.random.default_rng(5).random(len(w)) < zeros, 0.0, w)
    seed = np.array([3, 1, 4, 1], dtype=np.int64)
    Xd, wd = da.from_array(X, chunks=(chunks, -1)), da.from_array(w, chunks=chunks)
    real_compute = da.Array.compute

    def guarded(self, *a, **k):  # the weights never come to the client whole
        assert not (self.ndim == 1 and self.shape[0] == len(w)), "all weights were computed on the client"
        return real_compute(self, *a, **k)

    monkeypatch.setattr(da.Array, "compute", guarded)
    got = dk.scan(Xd, wd, 200, seed)
    expect = _client_side_sample(w, 200, seed)
    assert got["sampled"] and got["n_eff"] == np.count_nonzero(w)
    np.testing.assert_array_equal(got["sample"], X[expect])
    np.testing.assert_array_equal(got["sample_weight"], w[expect])
    src = chunked.scan_source(lambda: ((X[i : i + 170], w[i : i + 170]) for i in range(0, 1200, 170)), 200, seed)
    np.testing.assert_array_equal(src["sample"], got["sample"])
    np.testing.assert_array_equal(src["sample_weight"], got["sample_weight"])
    # a threshold too low for the data (n_eff overstated) falls back to all keys
    np.testing.assert_array_equal(dk._weighted_sample_index(wd, 50 * len(w), 200, seed), expect)


def test_weighted_dask_fit_with_a_sample_is_the_block_source_fit(client, data, monkeypatch):
    monkeypatch.setattr(chunked, "DEFAULT_INIT_SAMPLE", 300)
    X, w = data
    w = np.where(np.arange(len(w)) % 4 == 0, 0.0, w)
    src = lambda: ((X[i : i + 170], w[i : i + 170]) for i in range(0, len(X), 170))  # noqa: E731
    a = GaussianMixture(3, random_state=2, max_iter=5, tol=0.0)
    b = GaussianMixture(3, random_state=2, max_iter=5, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(src)
        b.fit(da.from_array(X, chunks=(333, -1)), sample_weight=da.from_array(w, chunks=333))
    _assert_same(a, b)
