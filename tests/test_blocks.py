"""Blocks of rows give the whole-array result to rounding."""

import os
import warnings

import numpy as np
import pytest

import emix
from emix.backends import BlockReducer, default_block_rows
from emix.core import em
from emix.families.gaussian import get_structure
from emix.testing import make_mixture, random_params

COV_TYPES = ["full", "tied", "diag", "spherical"]
FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")
TINY = 0.002  # MiB: a few rows per block


@pytest.fixture(scope="module")
def data():
    X, _, _ = make_mixture(300, 3, 3, separation=4.0, random_state=0)
    w = np.random.default_rng(1).uniform(0.2, 2.0, size=300)
    return X, w


def _close(a, b, rtol=1e-10):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.max(np.abs(b)))))


def _assert_same_fit(a, b):
    for name in FITTED:
        _close(getattr(a, name), getattr(b, name))
    _close(a.lower_bounds_, b.lower_bounds_)
    assert a.n_iter_ == b.n_iter_ and a.converged_ == b.converged_


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_tiny_working_memory_really_makes_many_blocks(covariance_type):
    rows = default_block_rows(300, get_structure(covariance_type).temp_per_row(3, 3), 8, TINY)
    assert 1 <= rows <= 30
    assert default_block_rows(300, get_structure(covariance_type).temp_per_row(3, 3), 8, None) == 300


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_blocked_fit_equals_whole_array_fit(data, covariance_type, init_params, weighted):
    X, w = data
    sw = w if weighted else None
    kw = dict(n_components=3, covariance_type=covariance_type, init_params=init_params,
              tol=0.0, max_iter=15, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        whole = emix.GaussianMixture(**kw).fit(X, sample_weight=sw)
        blocked = emix.GaussianMixture(working_memory=TINY, **kw).fit(X, sample_weight=sw)
    _assert_same_fit(blocked, whole)
    # and inference in blocks
    _close(blocked.score_samples(X), whole.score_samples(X))
    _close(blocked.predict_proba(X), whole.predict_proba(X))
    np.testing.assert_array_equal(blocked.predict(X), whole.predict(X))
    _close(blocked.bic(X, sample_weight=sw), whole.bic(X, sample_weight=sw))
    _close(blocked.score(X, sample_weight=sw), whole.score(X, sample_weight=sw))


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_blocked_float32_fit_equals_whole_array_fit(data, covariance_type):
    X, _ = data
    X32 = (X + 1e3).astype(np.float32)
    kw = dict(n_components=3, covariance_type=covariance_type, random_state=3)
    whole = emix.GaussianMixture(**kw).fit(X32)
    blocked = emix.GaussianMixture(working_memory=TINY, **kw).fit(X32)
    for name in FITTED:
        assert getattr(blocked, name).dtype == np.float32
        np.testing.assert_allclose(getattr(blocked, name), getattr(whole, name), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(blocked.lower_bounds_, whole.lower_bounds_, rtol=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_block_reducer_statistics_do_not_depend_on_block_rows(data, covariance_type, weighted):
    X, w = data
    sw = w if weighted else None
    params, structure = random_params(covariance_type, 3, 3, random_state=4)
    step = lambda Xb, wb: em.e_step(Xb, wb, params, structure)  # noqa: E731
    whole = em.e_step(X, sw, params, structure)
    for rows in (None, 1, 7, 64, 299, 300, 10_000):
        reducer = BlockReducer(X, sw, rows)
        blocks = list(reducer.blocks())
        assert sum(b.shape[0] for b, _ in blocks) == 300
        if rows is not None:
            assert len(blocks) == -(-300 // min(rows, 300))
        total = reducer(step)
        for f in ("nk", "s1", "s2"):
            _close(getattr(total, f), getattr(whole, f))
        _close(total.loglik, whole.loglik)
        _close(total.sum_w, whole.sum_w)


def test_block_reducer_map_concatenates_in_order(data):
    X, w = data
    reducer = BlockReducer(X, w, 7)
    np.testing.assert_array_equal(reducer.map(lambda Xb: Xb[:, 0] * 2), X[:, 0] * 2)
    seen_w = np.concatenate([wb for _, wb in reducer.blocks()])
    np.testing.assert_array_equal(seen_w, w)


def test_default_block_rows_respects_the_budget():
    # 64 MiB default, 10 elements per row of 8 bytes
    assert default_block_rows(10**9, 10, 8) * 10 * 8 <= 64 * 2**20
    assert default_block_rows(10**9, 10, 8, working_memory=1) * 10 * 8 <= 2**20
    assert default_block_rows(5, 10, 8) == 5
    assert default_block_rows(10**6, 10**9, 8, working_memory=1) == 1


def test_threads_over_blocks_give_the_same_statistics_exactly():
    from emix.backends import BlockReducer
    from emix.core import em
    from emix.families.gaussian import get_structure

    X = np.random.default_rng(3).normal(size=(1000, 3))
    gm = emix.GaussianMixture(3, max_iter=2, random_state=0).fit(X)
    p, s = gm._params(), get_structure("full")
    one = BlockReducer(X, None, 97, n_threads=1)(lambda Xb, wb: em.e_step(Xb, wb, p, s))
    many = BlockReducer(X, None, 97, n_threads=4)(lambda Xb, wb: em.e_step(Xb, wb, p, s))
    for name in ("nk", "s1", "s2"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name))
    assert one.loglik == many.loglik


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol=0 on purpose
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_fit_does_not_depend_on_n_threads(covariance_type):
    X = np.random.default_rng(4).normal(size=(3000, 4))
    kw = dict(covariance_type=covariance_type, random_state=0, max_iter=20, tol=0, working_memory=0.05)
    a = emix.GaussianMixture(3, n_threads=1, **kw).fit(X)
    b = emix.GaussianMixture(3, n_threads=3, **kw).fit(X)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-12)


def test_n_threads_is_validated():
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="n_threads must be >= 1. Got 0"):
        emix.GaussianMixture(2, n_threads=0).fit(X)


def test_inference_holds_no_n_by_k_array():
    """predict, score_samples and fit_predict work block by block: their peak
    traced memory stays far below one (n, K) float64 array (measured, with
    tracemalloc, not timed)."""
    import tracemalloc
    import warnings

    import emix

    rng = np.random.default_rng(0)
    n, K = 500_000, 20  # large enough that block temporaries (a few MB) are not the peak
    X = rng.standard_normal((n, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # working_memory bounds the block temporaries (4 MiB here, all threads together)
        gm = emix.GaussianMixture(K, max_iter=2, random_state=0, init_params="random_from_data",
                                  working_memory=4).fit(X[:5000])
    nk_bytes = n * K * 8
    for method in ("predict", "score_samples"):
        tracemalloc.start()
        out = getattr(gm, method)(X)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert out.shape == (n,)
        assert peak < nk_bytes / 4, (method, peak, nk_bytes)
    # the blockwise results are those of the whole-array formulas
    wlp = em.weighted_log_prob(X, gm._params(), gm._structure())
    np.testing.assert_array_equal(gm.predict(X), np.argmax(wlp, axis=1))
    np.testing.assert_allclose(gm.score_samples(X), np.log(np.exp(wlp).sum(axis=1)), rtol=1e-12)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_threaded_fit_works_in_a_forked_child():
    """The block threads' pool is shared within a process; a child forked after
    a threaded fit must not inherit a pool without threads (it would hang)."""
    import emix

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30_000, 2))
    kw = dict(max_iter=3, n_threads=2, random_state=0, init_params="random_from_data")  # no OpenMP k-means
    emix.GaussianMixture(2, **kw).fit(X)  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # child: a threaded fit must finish; exit code says how it went
        code = 1
        try:
            import signal

            signal.alarm(60)
            gm = emix.GaussianMixture(2, **kw).fit(X)
            code = 0 if np.isfinite(gm.lower_bound_) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
