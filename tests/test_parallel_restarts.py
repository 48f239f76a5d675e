"""GaussianMixture(n_jobs=...): restarts' EM loops in parallel, the same fit bit
for bit as one after the other (the initializations are drawn in order in the
calling process), the same reports (callback, verbose, warnings) in restart
order, and no more threads than asked for."""

import io
import re
import threading
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.mixture import GaussianMixture as SkGM
from threadpoolctl import threadpool_info, threadpool_limits

import emix
import emix.core.em
import emix.estimator
from emix import _parallel
from emix.backends.reduce import available_cores
from emix.testing import make_mixture

FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")


@pytest.fixture(scope="module")
def X():
    X, _, _ = make_mixture(300, 3, 3, separation=2.0, random_state=3)
    return X


def _fit(X, sample_weight=None, **kw):
    # scikit-learn's KMeans sums its threads' partial centers in whichever order
    # they finish: one OpenMP thread makes the k-means start itself reproducible
    with threadpool_limits(limits=1, user_api="openmp"), warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        return emix.GaussianMixture(**kw).fit(X, sample_weight=sample_weight)


def _assert_same_fit(a, b):
    for name in FITTED:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.lower_bound_ == b.lower_bound_
    assert a.lower_bounds_ == b.lower_bounds_
    assert a.n_iter_ == b.n_iter_
    assert a.converged_ == b.converged_


# ------------------------------------------------------------ same fit
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "VEV"])
def test_same_fit_as_sequential(X, covariance_type, init_params):
    kw = dict(n_components=3, covariance_type=covariance_type, init_params=init_params, n_init=3,
              tol=1e-6, max_iter=60, random_state=7)
    seq = _fit(X, **kw)
    par = _fit(X, n_jobs=2, **kw)
    _assert_same_fit(seq, par)


@pytest.mark.parametrize("options", [
    dict(accelerate="squarem"), dict(prior="default"), dict(noise="box"), dict(equal_proportions=True),
    dict(weighted=True), dict(float32=True), dict(n_jobs=-1), dict(n_jobs=5, n_init=2),
], ids=lambda o: next(iter(o)) + "=" + str(next(iter(o.values()))))
def test_same_fit_as_sequential_with_options(X, options):
    options = dict(options)
    sample_weight = np.random.default_rng(0).uniform(0.2, 3.0, X.shape[0]) if options.pop("weighted", False) else None
    data = X.astype(np.float32) if options.pop("float32", False) else X
    n_jobs = options.pop("n_jobs", 2)
    kw = dict(n_components=3, init_params="random_from_data", n_init=options.pop("n_init", 4), tol=1e-6,
              max_iter=60, random_state=1, **options)
    _assert_same_fit(_fit(data, sample_weight, **kw), _fit(data, sample_weight, n_jobs=n_jobs, **kw))


def test_threading_backend_same_fit_and_shares_block_threads(X, monkeypatch):
    """joblib's threading backend gives the same fit; each worker's reducer
    gets n_threads // n_jobs threads over blocks (at least 1), with the same
    blocks."""
    seen = []
    real_fit = emix.core.em.fit

    def fit(reducer, *args, **kw):
        seen.append((reducer.n_threads, reducer.block_rows, threading.get_ident()))
        return real_fit(reducer, *args, **kw)

    monkeypatch.setattr(emix.core.em, "fit", fit)
    kw = dict(n_components=3, init_params="k-means++", n_init=4, max_iter=10, random_state=2, working_memory=0.01)
    for n_threads, n_jobs, per_worker in [(2, 2, 1), (4, 2, 2), (5, 4, 1)]:
        seen.clear()
        seq = _fit(X, n_threads=n_threads, **kw)
        assert [s[0] for s in seen] == [n_threads] * 4
        blocks = {s[1] for s in seen}
        assert len(blocks) == 1 and blocks.pop() < X.shape[0]  # several blocks: the pool has work
        seen.clear()
        with parallel_config(backend="threading"):
            par = _fit(X, n_threads=n_threads, n_jobs=n_jobs, **kw)
        assert [s[0] for s in seen] == [per_worker] * 4
        assert {s[1] for s in seen} == {seen[0][1]}
        assert threading.get_ident() not in {s[2] for s in seen}  # ran in worker threads
        _assert_same_fit(seq, par)


def test_sklearn_agreement_unchanged(X):
    """Same restart kept as scikit-learn's sequential n_init, same fit to 1e-8
    (fixed iterations: no tie between restarts reaching one optimum)."""
    kw = dict(n_components=4, covariance_type="full", n_init=3, init_params="random", tol=0.0, max_iter=8,
              random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)  # the same as scikit-learn's
        sk = SkGM(**kw).fit(X)
    em = _fit(X, n_jobs=2, **kw)
    assert em.n_iter_ == sk.n_iter_ == 8
    for name in FITTED:
        np.testing.assert_allclose(getattr(em, name), getattr(sk, name), rtol=1e-8, atol=1e-10, err_msg=name)
    np.testing.assert_allclose(em.lower_bounds_, sk.lower_bounds_, rtol=1e-8)


# ------------------------------------------------------ degenerate restarts
def _collapse_data():
    """Six duplicates of (5, 5) inside a cluster around it, another cluster at -5."""
    rng = np.random.default_rng(7)
    return np.vstack([np.tile([5.0, 5.0], (6, 1)), rng.normal(size=(40, 2)) + 5.0, rng.normal(size=(40, 2)) - 5.0])


def _starts(n):
    """Initial responsibilities: a soft valid start, a good start, one that
    collapses during EM (component 0 on the duplicates plus 1e-6 of every other
    row: its covariance shrinks onto them; reg_covar=0) and one that collapses
    at once (component 1 empty)."""
    soft = np.random.default_rng(1).dirichlet([1.0, 1.0], size=n)
    good = np.zeros((n, 2))
    good[:46, 0] = good[46:, 1] = 1.0
    in_em = np.zeros((n, 2))
    in_em[:6, 0] = 1.0
    in_em[6:, 0], in_em[6:, 1] = 1e-6, 1.0 - 1e-6
    at_once = np.zeros((n, 2))
    at_once[:, 0] = 1.0
    return {"soft": soft, "good": good, "in_em": in_em, "at_once": at_once}


def _patch_starts(monkeypatch, starts):
    """Restart i of each following fit starts from starts[i] (the initializations
    run in the calling process, so this holds for worker processes too)."""
    state = {"calls": iter(())}

    def initial_resp(X, sample_weight, n_components, method, random_state):
        random_state.uniform()  # consume the generator like a real start would
        try:
            return next(state["calls"]).astype(X.dtype)
        except StopIteration:
            state["calls"] = iter(starts[1:])
            return starts[0].astype(X.dtype)

    monkeypatch.setattr(emix.estimator, "initial_resp", initial_resp)


def _fit_recording(X, **kw):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        try:
            gm = emix.GaussianMixture(**kw).fit(X)
        except emix.DegenerateComponentError as exc:
            gm = exc
    return gm, [(w.category, str(w.message)) for w in record]


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_degenerate_restarts_dropped_as_in_sequence(monkeypatch, covariance_type):
    X = _collapse_data()
    s = _starts(X.shape[0])
    _patch_starts(monkeypatch, [s["soft"], s["in_em"], s["at_once"], s["good"]])
    kw = dict(n_components=2, covariance_type=covariance_type, reg_covar=0.0, tol=1e-8, n_init=4, max_iter=200)
    seq, seq_warnings = _fit_recording(X, **kw)
    par, par_warnings = _fit_recording(X, n_jobs=2, **kw)
    _assert_same_fit(seq, par)
    assert par_warnings == seq_warnings
    dropped = [m for c, m in par_warnings if c is emix.DegenerateRestartWarning]
    assert [m[:22] for m in dropped] == ["Restart 2 of 4 dropped", "Restart 3 of 4 dropped"]
    # restart 2 collapsed onto the six duplicates during EM (in a worker), restart 3
    # at its initialization (here) on no row at all
    sizes = [float(re.search(r"effective number of points is ([0-9]+(?:\.[0-9]+)?)", m).group(1)) for m in dropped]
    assert sizes[0] == pytest.approx(6.0, abs=0.01) and sizes[1] == 0.0


def test_all_restarts_failing_raise_as_in_sequence(monkeypatch):
    X = _collapse_data()
    s = _starts(X.shape[0])
    _patch_starts(monkeypatch, [s["in_em"], s["at_once"], s["in_em"]])
    kw = dict(n_components=2, covariance_type="full", reg_covar=0.0, n_init=3)
    seq, seq_warnings = _fit_recording(X, **kw)
    par, par_warnings = _fit_recording(X, n_jobs=2, **kw)
    assert isinstance(par, emix.DegenerateComponentError)
    assert str(par) == str(seq) and str(par).startswith("All 3 restart(s) failed")
    assert (par.component, par.effective_size) == (seq.component, seq.effective_size)
    assert par_warnings == seq_warnings and len(par_warnings) == 3


# ------------------------------------------------------- reports replayed
def test_callback_and_verbose_replayed_in_restart_order(X):
    kw = dict(n_components=3, init_params="random_from_data", n_init=3, tol=1e-4, random_state=4,
              verbose_interval=2)
    runs = {}
    for n_jobs in (None, 2):
        for verbose in (1, 2):
            calls, where = [], set()

            def callback(info, calls=calls, where=where):
                calls.append(dict(info))
                where.add(threading.get_ident())

            out = io.StringIO()
            with redirect_stdout(out):
                _fit(X, callback=callback, verbose=verbose, n_jobs=n_jobs, **kw)
            assert where == {threading.get_ident()}  # always the calling thread
            runs[n_jobs, verbose] = calls, out.getvalue()
    for verbose in (1, 2):
        (seq_calls, seq_out), (par_calls, par_out) = runs[None, verbose], runs[2, verbose]
        assert par_calls == seq_calls
        assert [c["init"] for c in par_calls] == sorted(c["init"] for c in par_calls)
        assert {c["init"] for c in par_calls} == {0, 1, 2}
        times = re.compile(r"time lapse [0-9.]+s")
        assert times.sub("", par_out) == times.sub("", seq_out)
        assert par_out.count("Initialization ") == 6


def test_worker_process_limits_blas_and_hands_back_warnings(X):
    """What a worker process does around the EM loop: one BLAS thread, and its
    warnings caught and returned (for the caller to raise) instead of lost."""
    est = emix.GaussianMixture(3, random_state=0)
    Xv, w, structure = est._validate_fit_input(X, None)
    reducer = est._reducer(Xv, w)
    params0 = est._initial_params(Xv, w, structure, np.random.RandomState(0), reducer, (None, None, None))
    blas = []

    def run(reducer, params0, structure, callback, **options):
        blas.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        warnings.warn("from the worker", RuntimeWarning)
        callback(1, -1.5, -0.5)
        return emix.core.em.fit(reducer, params0, structure, **options)

    options = dict(tol=1e-3, max_iter=5, reg_covar=1e-6)
    with threadpool_limits(limits=2, user_api="blas"), warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        result, t_start, events, caught = _parallel.em_restart(run, reducer, 1, params0, structure, options,
                                                               True, parent_pid=-1)
    assert blas == [{1}]
    assert escaped == []
    assert caught == [(RuntimeWarning, "from the worker", __file__, caught[0][3])]
    assert events[0][:3] == (1, -1.5, -0.5) and events[0][3] >= t_start
    assert result.n_iter >= 1


# ----------------------------------------------------- validation, scope
@pytest.mark.parametrize("bad, error, match", [
    (0, ValueError, r"n_jobs must be None \(1\), a positive number of workers, -1 .*Got 0\."),
    (1.5, TypeError, r"n_jobs must be an integer or None\. Got 1\.5 of type float\."),
    ("2", TypeError, r"n_jobs must be an integer or None\. Got '2' of type str\."),
    (True, TypeError, r"n_jobs must be an integer or None\. Got True of type bool\."),
])
def test_bad_n_jobs_is_rejected_at_fit(X, bad, error, match):
    gm = emix.GaussianMixture(2, n_jobs=bad)
    assert gm.get_params()["n_jobs"] is bad  # stored unmodified
    with pytest.raises(error, match=match):
        gm.fit(X)


def test_effective_n_jobs():
    cores = available_cores()
    assert _parallel.effective_n_jobs(None) == 1
    assert _parallel.effective_n_jobs(3) == 3
    assert _parallel.effective_n_jobs(-1) == cores
    assert _parallel.effective_n_jobs(-2) == max(1, cores - 1)
    assert _parallel.effective_n_jobs(-(cores + 5)) == 1


def test_paths_without_parallel_restarts_still_fit(X):
    """n_jobs does not apply to warm starts and block sources: same fits."""
    kw = dict(n_components=3, init_params="random_from_data", n_init=3, random_state=0, tol=1e-6)
    a, b = _fit(X, **kw), _fit(X, n_jobs=2, **kw)
    a.set_params(warm_start=True, max_iter=5)
    b.set_params(warm_start=True, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        _assert_same_fit(a.fit(X), b.fit(X))

    def source():
        for i in range(0, X.shape[0], 70):
            yield X[i:i + 70]

    c = emix.GaussianMixture(**kw).fit(source)
    d = emix.GaussianMixture(n_jobs=2, **kw).fit(source)
    _assert_same_fit(c, d)


# ------------------------------------------------------------ emix.select
def test_select_cells_share_the_block_threads(X, monkeypatch):
    """Cells fitted side by side get cores // n_jobs threads over blocks of rows
    each (one process per cell would otherwise start a pool of every core),
    with the same blocks and so the same fits as one after the other."""
    monkeypatch.setattr(emix.backends.reduce, "available_cores", lambda: 4)
    monkeypatch.setattr(emix.estimator, "available_cores", lambda: 4)
    seen = []
    real = emix.estimator.BlockReducer

    def reducer(*args, **kw):
        r = real(*args, **kw)
        seen.append((r.n_threads, r.block_rows))
        return r

    monkeypatch.setattr(emix.estimator, "BlockReducer", reducer)
    kw = dict(n_components=[1, 2], covariance_types=["VVV", "EII"], random_state=0, working_memory=0.01)
    seq = emix.select(X, **kw)
    assert {t for t, _ in seen} == {4}
    blocks = {b for _, b in seen}
    seen.clear()
    with parallel_config(backend="threading"):  # the cells' fits in this process
        par = emix.select(X, n_jobs=2, **kw)
    assert {t for t, _ in seen} == {2}
    assert {b for _, b in seen} == blocks
    assert par.rows == seq.rows
    # outside select, no cap is left behind
    seen.clear()
    emix.GaussianMixture(2, random_state=0).fit(X)
    assert {t for t, _ in seen} == {4}


def test_model_file_keeps_n_jobs(X, tmp_path):
    kw = dict(n_components=2, n_init=2, init_params="k-means++", random_state=0)
    emix.save(_fit(X, n_jobs=-1, **kw), tmp_path / "m.emix")
    loaded = emix.load(tmp_path / "m.emix")
    assert loaded.get_params()["n_jobs"] == -1
    _assert_same_fit(loaded.fit(X), _fit(X, **kw))
