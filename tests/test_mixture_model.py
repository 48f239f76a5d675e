"""MixtureModel: the generic estimator (scikit-learn's checks, the Gaussian
delegation, restarts, n_jobs, warm_start, callbacks, criteria, errors)."""

import warnings

import numpy as np
import pytest
from scipy import stats as ss

import emix
from emix.testing import estimator_checks_params

RANDOM_INIT_REASON = (
    "The default k-means initialization draws its seeds with random_state from the rows it is given; "
    "weighted rows and the same rows repeated are different inputs to that draw, so the two fits start "
    "in different places (as for GaussianMixture and scikit-learn's KMeans). From the same start, "
    "weighted and repeated fits agree: tests/test_family_contract.py::test_integer_weights_equal_repeated_rows."
)

POISSON_REAL = {"allow_noninteger": True}  # scikit-learn's checks draw real-valued data
CHECKED = [
    emix.MixtureModel(1, family="poisson", family_options=POISSON_REAL, max_iter=20, random_state=0),
    emix.MixtureModel(2, family="poisson", family_options=POISSON_REAL, max_iter=20, random_state=0),
    emix.MixtureModel(2, family="gaussian", max_iter=20, random_state=0),
]


def _expected(est):
    if est.n_components > 1:
        return {"check_sample_weight_equivalence_on_dense_data": RANDOM_INIT_REASON}
    return {}


_names, _params, _kwargs = estimator_checks_params(CHECKED, _expected)


@pytest.mark.parametrize(_names, _params, **_kwargs)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _poisson_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    lam = np.array([[0.5, 4.0, 2.0], [6.0, 1.0, 9.0], [2.0, 2.0, 0.3]])
    z = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    return rng.poisson(lam[z]).astype(float), z


def _numpy_poisson_em(X, weights, rates, n_iter):
    """Independent EM for a Poisson mixture, written from the formulas."""
    for _ in range(n_iter):
        logp = np.log(weights) + np.stack([ss.poisson.logpmf(X, r).sum(axis=1) for r in rates], axis=1)
        resp = np.exp(logp - logp.max(axis=1, keepdims=True))
        resp /= resp.sum(axis=1, keepdims=True)
        nk = resp.sum(axis=0)
        weights = nk / nk.sum()
        rates = (resp.T @ X) / nk[:, None]
    return weights, rates


def test_poisson_em_equals_an_independent_implementation():
    X, _ = _poisson_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        m0 = emix.MixtureModel(3, family="poisson", random_state=0, max_iter=1).fit(X)
        w0, r0 = m0.weights_, m0.rates_
        m = emix.MixtureModel(3, family="poisson", warm_start=True, tol=0, max_iter=25)
        m.fit(X)  # a first fit, to be replaced by the common start below
        m.weights_, m.rates_ = w0, r0
        m.fit(X)
    w, r = _numpy_poisson_em(X, w0, r0, 25)
    np.testing.assert_allclose(m.weights_, w, rtol=1e-10)
    np.testing.assert_allclose(m.rates_, r, rtol=1e-10)


def test_gaussian_family_is_gaussian_mixture():
    from emix.datasets import load_faithful

    X, _ = load_faithful()
    kw = dict(n_components=3, covariance_type="VVI", random_state=0, n_init=2)
    a = emix.MixtureModel(family="gaussian", **kw).fit(X)
    b = emix.GaussianMixture(**kw).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.lower_bounds_ == b.lower_bounds_
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.bic(X) == b.bic(X) and a.icl(X) == b.icl(X)


def test_restarts_keep_the_best_and_n_jobs_changes_nothing():
    X, _ = _poisson_data(600, seed=1)
    runs = [emix.MixtureModel(3, family="poisson", random_state=s, init_params="random").fit(X) for s in range(4)]
    best = emix.MixtureModel(3, family="poisson", random_state=7, init_params="random", n_init=5).fit(X)
    single = [emix.MixtureModel(3, family="poisson", random_state=7, init_params="random", n_init=1)]
    assert best.lower_bound_ >= single[0].fit(X).lower_bound_ - 1e-12
    par = emix.MixtureModel(3, family="poisson", random_state=7, init_params="random", n_init=5, n_jobs=2).fit(X)
    np.testing.assert_array_equal(par.rates_, best.rates_)
    assert par.lower_bounds_ == best.lower_bounds_
    assert max(r.lower_bound_ for r in runs) > -np.inf


def test_callback_and_verbose(capsys):
    X, _ = _poisson_data(200)
    seen = []
    emix.MixtureModel(2, family="poisson", random_state=0, n_init=2, callback=seen.append, verbose=2,
                      verbose_interval=1).fit(X)
    assert {d["init"] for d in seen} == {0, 1}
    assert all(set(d) >= {"n_iter", "lower_bound", "change", "n_init"} for d in seen)
    out = capsys.readouterr().out
    assert "Initialization 0" in out and "Initialization 1" in out


def test_criteria_follow_their_formulas():
    X, _ = _poisson_data(300)
    m = emix.MixtureModel(3, family="poisson", random_state=0).fit(X)
    ll = m.score(X) * X.shape[0]
    p = 3 * 3 + 2
    assert m._n_parameters() == p
    np.testing.assert_allclose(m.bic(X), -2 * ll + p * np.log(X.shape[0]), rtol=1e-12)
    np.testing.assert_allclose(m.aic(X), -2 * ll + 2 * p, rtol=1e-12)
    log_max = np.log(m.predict_proba(X).max(axis=1)).sum()
    np.testing.assert_allclose(m.icl(X), m.bic(X) - 2 * log_max, rtol=1e-12)
    # score_samples is the oracle mixture density
    oracle = np.log(sum(w * np.exp(ss.poisson.logpmf(X, r).sum(axis=1)) for w, r in zip(m.weights_, m.rates_)))
    np.testing.assert_allclose(m.score_samples(X), oracle, rtol=1e-10)


def test_warm_start_continues():
    X, _ = _poisson_data(300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        a = emix.MixtureModel(3, family="poisson", random_state=0, max_iter=3, warm_start=True, tol=0)
        a.fit(X)
        a.fit(X)
    b = emix.MixtureModel(3, family="poisson", random_state=0, max_iter=6, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        b.fit(X)
    np.testing.assert_allclose(a.rates_, b.rates_, rtol=1e-12)


def test_empty_component_restart_is_dropped_with_a_warning():
    X = np.array([[0.0], [0.0], [0.0], [5.0], [5.0], [5.0]])
    with pytest.warns(emix.DegenerateRestartWarning):
        m = emix.MixtureModel(4, family="poisson", random_state=0, n_init=4, init_params="random_from_data")
        try:
            m.fit(X)
        except emix.DegenerateComponentError:
            pass


@pytest.mark.parametrize("kwargs, err, match", [
    ({"family": "nope"}, ValueError, "family must be one of"),
    ({"family": 3}, TypeError, "family must be a string"),
    ({"family": "poisson", "family_options": {"pseudo_count": -1}}, ValueError, "pseudo_count must be >= 0"),
    ({"family": "poisson", "init_params": "hierarchical"}, ValueError, "init_params must be one of"),
    ({"family": "poisson", "n_components": 0}, ValueError, "n_components must be >= 1"),
    ({"family": "poisson", "family_options": [1]}, TypeError, "family_options must be a dict"),
])
def test_bad_parameters_say_what_was_received(kwargs, err, match):
    X, _ = _poisson_data(50)
    with pytest.raises(err, match=match):
        emix.MixtureModel(**kwargs).fit(X)


def test_bad_counts_are_refused_with_the_position():
    with pytest.raises(ValueError, match="Non-integer values.*row 1, column 0 holds 1.5"):
        emix.MixtureModel(1, family="poisson").fit([[1.0], [1.5], [2.0]])
    with pytest.raises(ValueError, match="Negative values"):
        emix.MixtureModel(1, family="poisson").fit([[1.0], [-1.0], [2.0]])
    m = emix.MixtureModel(1, family="poisson").fit([[1.0], [2.0], [2.0]])
    with pytest.raises(ValueError, match="Non-integer"):
        m.predict([[0.5]])


def test_sample_bad_n_samples():
    m = emix.MixtureModel(1, family="poisson").fit([[1.0], [2.0], [2.0]])
    with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
        m.sample(0)


def test_submodules_are_attributes_of_the_lazy_package():
    """``import emix`` is lazy (fast --help/--version); ``emix.io.save`` and friends still work
    without importing the submodule first, as when it was eager (run in a fresh interpreter)."""
    import subprocess
    import sys

    code = ("import emix; assert callable(emix.io.save) and callable(emix.datasets.load_faithful); "
            "assert callable(emix.families.get_family); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_refit_with_another_family_leaves_no_stale_attributes():
    X, _ = _poisson_data(200)
    m = emix.MixtureModel(2, family="poisson", random_state=0).fit(X)
    assert hasattr(m, "rates_")
    m.set_params(family="student_t", family_options={"dof": 5.0}).fit(X + 0.5)
    assert not hasattr(m, "rates_") and hasattr(m, "means_") and hasattr(m, "dof_")
