"""Degenerate restarts, float32 far from the origin, convergence warnings,
constant columns and duplicated points."""

import re
import warnings

import numpy as np
import pytest

import emix
import emix.estimator
from emix.testing import assert_mixture_allclose, make_mixture

COV_TYPES = ["full", "tied", "diag", "spherical"]


# ------------------------------------------------------- degenerate restarts
def _lines_data():
    """Two clusters along x; y in {-1, 0, 1} in equal numbers in each cluster,
    so the weighted mean of y is exactly 0 (the shift the initialization uses)."""
    rng = np.random.default_rng(0)
    n = 30
    x = np.r_[rng.normal(size=n), rng.normal(size=n) + 10.0]
    y = np.tile([-1.0, 0.0, 1.0], 2 * n // 3)
    labels = np.repeat([0, 1], n)
    return np.c_[x, y], labels


def _one_hot(labels, K):
    resp = np.zeros((len(labels), K))
    resp[np.arange(len(labels)), labels] = 1.0
    return resp


def _degenerate_resp(X, K):
    """Responsibilities whose M-step (reg_covar=0) is degenerate for every
    covariance type, exactly (no rounding involved): component 0 holds only
    rows with y == 0 (zero variance along y, also for the tied covariance),
    component K-1 holds no row at all (zero variance everywhere)."""
    resp = np.zeros((X.shape[0], K))
    resp[X[:, 1] == 0.0, 0] = 1.0
    return resp


# where the collapse is detected: along y (component 0), or only in the empty
# component when the spherical variance averages y with x
DEGENERATE = {"full": {0, 1}, "tied": {0}, "diag": {0, 1}, "spherical": {1}}


def _patch_starts(monkeypatch, starts):
    """Make restart i of the next fit start from starts[i] (responsibilities)."""
    calls = iter(starts)

    def initial_resp(X, sample_weight, n_components, method, random_state):
        random_state.uniform()  # consume the generator like a real start would
        return next(calls).astype(X.dtype)

    monkeypatch.setattr(emix.estimator, "initial_resp", initial_resp)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_degenerate_restart_is_dropped_and_best_survivor_kept(monkeypatch, covariance_type):
    X, labels = _lines_data()
    K = 2
    good = _one_hot(labels, K)
    rng = np.random.default_rng(1)
    soft = rng.dirichlet([1.0, 1.0], size=X.shape[0])  # a poorer but valid start
    kw = dict(n_components=K, covariance_type=covariance_type, reg_covar=0.0, tol=1e-8, max_iter=200)

    # each surviving start alone
    singles = []
    for start in (soft, good):
        _patch_starts(monkeypatch, [start])
        singles.append(emix.GaussianMixture(**kw).fit(X))

    _patch_starts(monkeypatch, [soft, _degenerate_resp(X, K), good])
    with pytest.warns(emix.DegenerateRestartWarning) as record:
        gm = emix.GaussianMixture(n_init=3, **kw).fit(X)
    dropped = [w for w in record if issubclass(w.category, emix.DegenerateRestartWarning)]
    assert len(dropped) == 1
    msg = str(dropped[0].message)
    m = re.search(r"Restart 2 of 3\b.*Component (\d+)\b", msg)
    assert m, msg
    assert int(m.group(1)) in DEGENERATE[covariance_type], msg
    assert "reg_covar" in msg

    best = max(singles, key=lambda g: g.lower_bound_)
    assert gm.lower_bound_ == best.lower_bound_
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(gm, name), getattr(best, name), err_msg=name)
    assert gm.lower_bounds_ == best.lower_bounds_


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_all_restarts_degenerate_raises_named_error(monkeypatch, covariance_type):
    X, _ = _lines_data()
    K = 2
    _patch_starts(monkeypatch, [_degenerate_resp(X, K)] * 2)
    gm = emix.GaussianMixture(K, covariance_type=covariance_type, reg_covar=0.0, n_init=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.DegenerateRestartWarning)
        with pytest.raises(emix.DegenerateComponentError, match=r"All 2 restart\(s\) failed") as info:
            gm.fit(X)
    exc = info.value
    assert isinstance(exc, ValueError)
    assert exc.component in DEGENERATE[covariance_type]
    expected_size = {0: 20.0, 1: 0.0}[exc.component]  # rows with y == 0, or none
    assert exc.effective_size == pytest.approx(expected_size, abs=1e-9)
    msg = str(exc)
    assert f"Component {exc.component}" in msg
    assert "effective number of points" in msg
    for advice in ("reg_covar", "fewer components", "covariance_type"):
        assert advice in msg, advice
    # nothing was fitted
    assert not hasattr(gm, "weights_")


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_identical_rows_without_regularization_raise(covariance_type):
    """A real fit (no patching): identical rows, reg_covar=0."""
    X = np.tile([1.0, 2.0], (10, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.DegenerateRestartWarning)
        with pytest.raises(emix.DegenerateComponentError, match="Component 0 collapsed.*effective number of points is 10"):
            emix.GaussianMixture(1, covariance_type=covariance_type, reg_covar=0.0, n_init=2).fit(X)
    # with the default reg_covar the same data fits
    gm = emix.GaussianMixture(1, covariance_type=covariance_type).fit(X)
    np.testing.assert_allclose(gm.means_, [[1.0, 2.0]])
    np.testing.assert_allclose(gm.covariances_, np.asarray(gm.covariances_) * 0 + _reg_diag(covariance_type, 1e-6),
                               rtol=1e-6, atol=1e-15)


def _reg_diag(covariance_type, reg, K=1, D=2):
    return {"full": reg * np.eye(D)[None].repeat(K, 0), "tied": reg * np.eye(D),
            "diag": np.full((K, D), reg), "spherical": np.full(K, reg)}[covariance_type]


def test_degenerate_error_is_a_value_error_subclass():
    assert issubclass(emix.DegenerateComponentError, ValueError)
    assert issubclass(emix.DegenerateRestartWarning, UserWarning)


# ------------------------------------------------------- float32, far away
@pytest.mark.parametrize("offset", [1e3, 1e4])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_float32_offset_data_fits_and_stays_float32(covariance_type, offset):
    X, _, _ = make_mixture(600, 3, 3, separation=5.0, random_state=2)
    X32 = (X + offset).astype(np.float32)
    kw = dict(n_components=3, covariance_type=covariance_type, random_state=0, tol=1e-6, max_iter=300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all, RuntimeWarning or other
        gm = emix.GaussianMixture(**kw).fit(X32)
    assert gm.converged_
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(gm, name).dtype == np.float32, name
        assert np.all(np.isfinite(getattr(gm, name))), name
    assert gm.score_samples(X32).dtype == np.float32
    assert gm.predict_proba(X32).dtype == np.float32
    assert np.all(np.isfinite(gm.lower_bounds_))
    # positive definite covariances
    full = emix.families.gaussian.get_structure(covariance_type).full_covariances(gm.covariances_, 3, 3)
    assert np.all(np.linalg.eigvalsh(full.astype(np.float64)) > 0)

    ref = emix.GaussianMixture(**kw).fit(X32.astype(np.float64) - offset)
    shifted = emix.GaussianMixture(**kw).fit(X32)
    shifted.means_ = shifted.means_.astype(np.float64) - offset
    assert_mixture_allclose(shifted, ref, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(gm.lower_bound_, ref.lower_bound_, rtol=1e-4)
    # the float64 fit of the original data too
    ref0 = emix.GaussianMixture(**kw).fit(X)
    assert_mixture_allclose(shifted, ref0, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_float32_small_variance_far_from_origin(covariance_type):
    """scikit-learn issue 30382: variance as E[x^2] - mu^2 goes negative for
    float32 data at an offset of 1000. Here one cluster is narrow (sd 0.01)."""
    rng = np.random.default_rng(3)
    X = np.r_[rng.normal(scale=0.01, size=(200, 2)), rng.normal(scale=1.0, size=(200, 2)) + 5.0] + 1000.0
    X32 = X.astype(np.float32)
    gm = emix.GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X32)
    ref = emix.GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X32.astype(np.float64))
    assert gm.covariances_.dtype == np.float32
    assert_mixture_allclose(gm, ref, rtol=1e-3, atol=1e-5)


# tied float32 covariances were 1 ulp asymmetric before Tied.covariances symmetrized them


@pytest.mark.parametrize(
    "covariance_type",
    ["full", "tied", "diag", "spherical"],
)
def test_sample_from_float32_model_does_not_warn(covariance_type):
    for D, seed in [(2, 0), (3, 0), (3, 3), (3, 5)]:
        X, _, _ = make_mixture(120, 2, D, random_state=seed)
        for K in (1, 2, 3):
            gm = emix.GaussianMixture(K, covariance_type=covariance_type, random_state=0).fit(X.astype(np.float32))
            Xs, ys = gm.sample(50)  # RuntimeWarning is an error in this test suite
            assert Xs.shape == (50, D) and np.all(np.isfinite(Xs))
            assert np.bincount(ys, minlength=K).shape == (K,)


# ------------------------------------------------------- convergence warning
def test_convergence_warning_when_kept_run_did_not_converge():
    X, _, _ = make_mixture(200, 3, 2, random_state=4)
    with pytest.warns(emix.ConvergenceWarning, match="did not converge"):
        gm = emix.GaussianMixture(3, max_iter=2, tol=0.0, random_state=0).fit(X)
    assert not gm.converged_ and gm.n_iter_ == 2
    assert emix.ConvergenceWarning is __import__("sklearn.exceptions").exceptions.ConvergenceWarning


def test_no_convergence_warning_when_converged():
    X, _, _ = make_mixture(200, 3, 2, random_state=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gm = emix.GaussianMixture(3, random_state=0, n_init=2).fit(X)
    assert gm.converged_ and gm.n_iter_ < 100
    assert abs(gm.lower_bounds_[-1] - gm.lower_bounds_[-2]) < gm.tol


# --------------------------------------------- constant columns, duplicates
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_constant_column_fits(covariance_type, dtype):
    X, _, _ = make_mixture(150, 2, 2, random_state=5)
    X = np.c_[X, np.full(150, 3.7)].astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gm = emix.GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    assert np.all(np.isfinite(gm.score_samples(X)))
    np.testing.assert_allclose(gm.means_[:, 2], 3.7, rtol=1e-6)
    var = emix.families.gaussian.get_structure(covariance_type).full_covariances(gm.covariances_, 2, 3)[:, 2, 2]
    if covariance_type != "spherical":
        # only reg_covar along the constant column (float32 rounding of 3.7 aside)
        np.testing.assert_allclose(var, gm.reg_covar, rtol=1e-2 if dtype == np.float32 else 1e-6)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_duplicated_points_fit(covariance_type, init_params):
    pts = np.array([[0.0, 0.0], [5.0, 1.0], [10.0, -3.0]])
    X = np.repeat(pts, 10, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        gm = emix.GaussianMixture(3, covariance_type=covariance_type, init_params=init_params,
                                  random_state=0).fit(X)
    assert np.all(np.isfinite(gm.score_samples(X)))
    assert np.all(np.isfinite(gm.predict_proba(X)))
    np.testing.assert_allclose(gm.predict_proba(X).sum(axis=1), 1.0)


def test_duplicated_points_recover_the_points():
    pts = np.array([[0.0, 0.0], [5.0, 1.0], [10.0, -3.0]])
    X = np.repeat(pts, 10, axis=0)
    gm = emix.GaussianMixture(3, random_state=0).fit(X)
    order = np.argsort(gm.means_[:, 0])
    np.testing.assert_allclose(gm.means_[order], pts, atol=1e-9)
    np.testing.assert_allclose(gm.weights_, 1 / 3, rtol=1e-9)
    np.testing.assert_allclose(gm.covariances_, np.broadcast_to(1e-6 * np.eye(2), (3, 2, 2)), rtol=1e-6, atol=1e-15)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_more_components_than_distinct_points(covariance_type):
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0]]), 10, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        gm = emix.GaussianMixture(3, covariance_type=covariance_type, init_params="k-means++",
                                  random_state=0).fit(X)
    ll = gm.score_samples(X)
    assert np.all(np.isfinite(ll))
    np.testing.assert_allclose(gm.weights_.sum(), 1.0)


def test_far_outlier_does_not_break_the_fit():
    X, _, _ = make_mixture(200, 2, 2, random_state=6)
    X = np.r_[X, [[1e8, -1e8]]]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        gm = emix.GaussianMixture(2, covariance_type="full", random_state=0).fit(X)
    assert np.all(np.isfinite(gm.score_samples(X)))


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_component_collapsing_during_em_is_named(covariance_type):
    """No patching: a component started exactly on six duplicated rows with a
    sharp precision takes only those rows in the first E-step, so its
    covariance is exactly zero at the first M-step (reg_covar=0)."""
    rng = np.random.default_rng(7)
    X = np.vstack([np.zeros((6, 2)), rng.normal(size=(40, 2)) + [5.0, 5.0]])
    prec = {"full": np.stack([1e4 * np.eye(2), np.eye(2)]), "diag": np.array([[1e4, 1e4], [1.0, 1.0]]),
            "spherical": np.array([1e4, 1.0])}[covariance_type]
    gm = emix.GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.0, n_init=2,
                              weights_init=[0.5, 0.5], means_init=[[0.0, 0.0], [5.0, 5.0]], precisions_init=prec)
    with pytest.warns(emix.DegenerateRestartWarning) as record:
        with pytest.raises(emix.DegenerateComponentError, match=r"effective number of points is 6\b") as info:
            gm.fit(X)
    messages = [str(w.message) for w in record if issubclass(w.category, emix.DegenerateRestartWarning)]
    assert len(messages) == 2
    for i, msg in enumerate(messages, start=1):
        assert msg.startswith(f"Restart {i} of 2 dropped: Fitting the mixture model failed"), msg
        assert "Component 0 collapsed" in msg, msg
    assert info.value.component == 0
    assert info.value.effective_size == pytest.approx(6.0)
    # the same start with the default reg_covar fits, the component sitting on the duplicates
    gm.set_params(reg_covar=1e-6, n_init=1).fit(X)
    np.testing.assert_allclose(gm.means_[0], [0.0, 0.0], atol=1e-8)
    np.testing.assert_allclose(gm.weights_[0], 6 / 46, rtol=1e-6)
