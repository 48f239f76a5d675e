"""Latent class families: 'categorical' (polytomous LCA, poLCA's model) and
'bernoulli' (binary columns), and LatentClassModel.

Oracles: poLCA's published log-likelihoods on its carcinoma and values data
(tests/data/README.md), scipy.stats (multinomial, bernoulli) for densities,
numpy formulas for the MAP estimates and the information criteria, and the
stationarity of the observed-data likelihood (written independently in
numpy) at the EM fit with missing answers.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as ss
from scipy.special import logsumexp
from sklearn.base import clone

import emix
from emix.families import Mixture, get_family
from emix.testing import estimator_checks_params

DATA = Path(__file__).parent / "data"


def _polca(name):
    return pd.read_csv(DATA / f"polca_{name}.csv", comment="#")


def _fit(X, K, family="categorical", **kw):
    kw = {"n_init": 10, "tol": 1e-12, "max_iter": 5000, "init_params": "random", "random_state": 0} | kw
    return emix.MixtureModel(K, family=family, **kw).fit(X)


# ----------------------------------------------------------------- poLCA references
def test_polca_data_are_the_published_tables():
    car, val = _polca("carcinoma"), _polca("values")
    assert car.shape == (118, 7) and list(car.columns) == list("ABCDEFG")
    assert val.shape == (216, 4) and list(val.columns) == list("ABCD")
    assert len(car.drop_duplicates()) == 20 and len(val.drop_duplicates()) == 16  # the printed pattern counts
    # one class is the independence model, a closed form: poLCA prints -543.6498 for values
    p = (val.to_numpy() == 2).mean(axis=0)
    ll = np.sum(np.where(val.to_numpy() == 2, np.log(p), np.log1p(-p)))
    assert round(ll, 4) == -543.6498


POLCA = [  # data, classes, log-likelihood and number of parameters printed by poLCA
    ("carcinoma", 2, -317.2568, 15),
    ("carcinoma", 3, -293.7050, 23),
    ("values", 1, -543.6498, 4),
    ("values", 2, -504.4677, 9),
]


@pytest.mark.parametrize("family", ["categorical", "bernoulli"])
@pytest.mark.parametrize("name, K, loglik, n_params", POLCA)
def test_polca_reference_loglik_and_parameters(family, name, K, loglik, n_params):
    X = _polca(name)
    m = _fit(X, K, family)
    n = len(X)
    ll = m.score(X) * n
    assert round(ll, 4) == loglik, ll
    np.testing.assert_allclose(m.lower_bound_ * n, ll, atol=1e-6)
    assert m._n_parameters() == n_params
    np.testing.assert_allclose(m.bic(X), -2 * ll + n_params * np.log(n), rtol=1e-12)
    np.testing.assert_allclose(m.aic(X), -2 * ll + 2 * n_params, rtol=1e-12)
    assert m.encoding_ == [[1, 2]] * X.shape[1]
    assert m.converged_


@pytest.mark.slow
def test_polca_reference_four_classes():
    """poLCA's carcinoma, 4 classes (its example runs nrep=10, maxiter=5000)."""
    X = _polca("carcinoma")
    m = _fit(X, 4, n_init=30, max_iter=20000)
    loglik, n_params = -289.2858, 31
    assert round(m.score(X) * len(X), 4) == loglik
    assert m._n_parameters() == n_params


def test_polca_reference_with_latent_class_model_and_strings():
    """The same fit from labels 'no'/'yes' (pandas categoricals) through the named estimator."""
    X = _polca("carcinoma").replace({1: "no", 2: "yes"}).astype("category")
    m = emix.LatentClassModel(2, n_init=10, tol=1e-12, max_iter=5000, init_params="random", random_state=0).fit(X)
    assert round(m.score(X) * len(X), 4) == -317.2568
    assert m.categories_ == [["no", "yes"]] * 7
    assert list(m.feature_names_in_) == list("ABCDEFG")


# ----------------------------------------------------------------- densities vs scipy
def _random_codes(rng, n, C, p_missing=0.2):
    X = np.column_stack([rng.integers(0, c, n) for c in C]).astype(float)
    X[rng.random(X.shape) < p_missing] = np.nan
    X[0] = np.nan  # a row with every answer missing: log p = 0
    return X


def _scipy_categorical(X, P, C):
    out = np.zeros((X.shape[0], P.shape[0]))
    for k in range(P.shape[0]):
        for d, c in enumerate(C):
            obs = ~np.isnan(X[:, d])
            out[obs, k] += ss.multinomial.logpmf(np.eye(c)[X[obs, d].astype(int)], 1, P[k, d, :c])
    return out


def test_categorical_log_prob_with_missing_matches_scipy():
    rng = np.random.default_rng(0)
    C = [2, 5, 3, 1]
    fam = get_family("categorical", categories=[list(range(c)) for c in C])
    X = _random_codes(rng, 200, C)
    P = np.zeros((3, 4, 5))
    for d, c in enumerate(C):
        P[:, d, :c] = rng.dirichlet(np.ones(c), size=3)
    lp = fam.log_prob(X, {"probabilities": P})
    np.testing.assert_allclose(lp, _scipy_categorical(X, P, C), rtol=1e-12, atol=1e-12)
    assert np.all(lp[0] == 0.0)


def test_bernoulli_log_prob_with_missing_matches_scipy():
    rng = np.random.default_rng(1)
    X = _random_codes(rng, 200, [2] * 6)
    p = rng.uniform(0.02, 0.98, (4, 6))
    obs = ~np.isnan(X)
    want = np.stack([np.where(obs, ss.bernoulli.logpmf(np.nan_to_num(X), pk), 0.0).sum(axis=1) for pk in p], axis=1)
    np.testing.assert_allclose(get_family("bernoulli").log_prob(X, {"probabilities": p}), want, rtol=1e-12)


def test_zero_probabilities_give_minus_inf_never_nan():
    fam = get_family("categorical", categories=[[0, 1, 2]])
    P = np.array([[[0.5, 0.5, 0.0]], [[0.0, 0.0, 1.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lp = fam.log_prob(np.array([[0.0], [2.0], [np.nan]]), {"probabilities": P})
    np.testing.assert_array_equal(lp, [[np.log(0.5), -np.inf], [-np.inf, 0.0], [0.0, 0.0]])
    lpb = get_family("bernoulli").log_prob(np.array([[1.0], [0.0]]), {"probabilities": np.array([[1.0], [0.0]])})
    np.testing.assert_array_equal(lpb, [[0.0, -np.inf], [-np.inf, 0.0]])


# ----------------------------------------------------------------- missing answers
def _observed_loglik(X, weights, P, C):
    """log sum_k pi_k prod_{d observed} theta_kd(x_d), written from the model."""
    return logsumexp(_scipy_categorical(X, P, C) + np.log(weights)[None, :], axis=1)


def test_missing_answers_are_marginalized_in_the_fitted_likelihood():
    rng = np.random.default_rng(2)
    z = rng.integers(0, 2, 400)
    X = np.column_stack([rng.random(400) < np.where(z, 0.85, 0.2) for _ in range(5)]).astype(object)
    X[rng.random(X.shape) < 0.15] = None
    X[3] = None
    m = _fit(X, 2, n_init=3)
    codes = m.family_.encode(X, m.encoding_)[0]
    want = _observed_loglik(codes, m.weights_, m.probabilities_, [2] * 5)
    np.testing.assert_allclose(m.score_samples(X), want, rtol=1e-12)
    assert abs(m.score_samples(X)[3]) < 1e-12  # nothing observed: probability sum_k pi_k = 1
    # bernoulli gives the same fit
    mb = _fit(X, 2, "bernoulli", n_init=3)
    np.testing.assert_allclose(mb.score(X), m.score(X), rtol=1e-10)


def test_em_with_missing_answers_reaches_a_stationary_point_of_the_observed_likelihood():
    """At the EM fit the gradient of the observed-data log-likelihood (numpy,
    missing answers summed out) vanishes: EM treats missing answers right."""
    rng = np.random.default_rng(3)
    n, D = 500, 4
    z = rng.integers(0, 2, n)
    X = (rng.random((n, D)) < np.where(z, 0.8, 0.25)[:, None]).astype(float)
    X[rng.random(X.shape) < np.where(X == 1, 0.4, 0.05)] = np.nan  # not missing at random: fills matter
    m = _fit(X.astype(object), 2, "bernoulli", n_init=3, tol=1e-14, max_iter=20000)

    def loglik(theta):
        w = np.exp(theta[:2]) / np.exp(theta[:2]).sum()
        p = 1.0 / (1.0 + np.exp(-theta[2:].reshape(2, D)))
        obs = ~np.isnan(X)
        lp = np.stack([np.where(obs, np.where(X == 1, np.log(pk), np.log1p(-pk)), 0.0).sum(axis=1) for pk in p], 1)
        return logsumexp(lp + np.log(w), axis=1).sum()

    p = m.probabilities_
    theta = np.concatenate([np.log(m.weights_), np.log(p / (1 - p)).ravel()])
    h = 1e-5
    grad = np.array([(loglik(theta + h * e) - loglik(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])
    assert np.max(np.abs(grad)) < 1e-4, grad
    # treating a missing answer as a 0 ends elsewhere: the same check fails there
    m0 = _fit(np.nan_to_num(X).astype(object), 2, "bernoulli", n_init=3, tol=1e-14, max_iter=20000)
    p0 = m0.probabilities_
    theta0 = np.concatenate([np.log(m0.weights_), np.log(p0 / (1 - p0)).ravel()])
    grad0 = np.array([(loglik(theta0 + h * e) - loglik(theta0 - h * e)) / (2 * h) for e in np.eye(theta.size)])
    assert np.max(np.abs(grad0)) > 1.0


def test_a_column_never_observed_adds_nothing():
    rng = np.random.default_rng(9)
    X = pd.DataFrame({"a": rng.choice(["x", "y"], 200), "b": rng.choice([1, 2, 3], 200), "c": [None] * 200})
    kw = {"n_init": 2, "tol": 1e-10, "max_iter": 500, "random_state": 0}
    m = emix.MixtureModel(2, family="categorical", **kw).fit(X)
    m2 = emix.MixtureModel(2, family="categorical", **kw).fit(X[["a", "b"]])
    assert m.encoding_[2] == [] and np.all(m.probabilities_[:, 2] == 0)
    np.testing.assert_allclose(m.score(X), m2.score(X[["a", "b"]]), rtol=1e-10)
    assert m._n_parameters() == m2._n_parameters() == 2 * (1 + 2) + 1
    with pytest.raises(ValueError, match="Column 'c' holds 'z'"):
        m.predict(X.assign(c="z"))
    # its declared categories (a pandas Categorical) get the uniform probabilities of no information
    X["c"] = pd.Categorical([None] * 200, categories=["u", "v"])
    m3 = emix.MixtureModel(2, family="categorical", **kw).fit(X)
    np.testing.assert_allclose(m3.probabilities_[:, 2, :2], 0.5)
    np.testing.assert_allclose(m3.score(X), m2.score(X[["a", "b"]]), rtol=1e-10)


# ----------------------------------------------------------------- coding of the data
def _as_types(rng, n=300):
    z = rng.integers(0, 2, n)
    codes = np.column_stack([(rng.random(n)[:, None] > np.cumsum(P, 1)[z]).sum(1) for P in (
        np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]]), np.array([[0.8, 0.2], [0.3, 0.7]]),
        np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]))])
    codes[:4] = np.minimum(np.arange(4)[:, None], [2, 1, 3])
    return codes


def test_ints_strings_categoricals_and_lists_give_identical_fits_and_keep_labels():
    codes = _as_types(np.random.default_rng(4))
    labels = [["high", "low", "mid"], ["no", "yes"], ["a", "b", "c", "d"]]  # sorted: the same codes as the ints
    strings = np.column_stack([np.array(lab, dtype=object)[codes[:, d]] for d, lab in enumerate(labels)])
    frame = pd.DataFrame({f"q{d}": pd.Categorical(strings[:, d], categories=lab) for d, lab in enumerate(labels)})
    inputs = {"ints": codes + 1, "floats": (codes + 1).astype(float), "lists": (codes + 1).tolist(),
              "strings": strings, "categoricals": frame}
    kw = {"n_init": 2, "tol": 1e-6, "max_iter": 500, "random_state": 0}
    fits = {k: emix.MixtureModel(2, family="categorical", **kw).fit(v) for k, v in inputs.items()}
    ref = fits["ints"]
    for k, m in fits.items():
        np.testing.assert_allclose(m.probabilities_, ref.probabilities_, rtol=1e-12, err_msg=k)
        np.testing.assert_allclose(m.weights_, ref.weights_, rtol=1e-12, err_msg=k)
    assert ref.encoding_ == [[1, 2, 3], [1, 2], [1, 2, 3, 4]]
    assert all(type(v) is int for lab in ref.encoding_ for v in lab)  # Python ints, not numpy
    assert fits["floats"].encoding_ == [[1.0, 2.0, 3.0], [1.0, 2.0], [1.0, 2.0, 3.0, 4.0]]
    assert fits["categoricals"].encoding_ == fits["strings"].encoding_ == labels
    assert json.loads(json.dumps(fits["categoricals"].encoding_)) == labels
    # predict takes the labels it was fitted on
    np.testing.assert_array_equal(fits["strings"].predict(strings), ref.predict(codes + 1))


def test_categorical_declared_order_permutes_the_probabilities_only():
    codes = _as_types(np.random.default_rng(5))
    X = pd.DataFrame({"a": pd.Categorical(codes[:, 0], categories=[0, 1, 2]), "b": codes[:, 1], "c": codes[:, 2]})
    Y = X.copy()
    Y["a"] = pd.Categorical(codes[:, 0], categories=[2, 0, 1])
    kw = {"n_init": 3, "tol": 1e-10, "max_iter": 2000, "random_state": 0}
    mx, my = (emix.MixtureModel(2, family="categorical", **kw).fit(T) for T in (X, Y))
    assert my.encoding_[0] == [2, 0, 1]
    np.testing.assert_allclose(my.score(Y), mx.score(X), rtol=1e-10)
    kx, ky = np.argsort(mx.weights_), np.argsort(my.weights_)
    np.testing.assert_allclose(my.probabilities_[ky][:, 0, :3], mx.probabilities_[kx][:, 0, [2, 0, 1]], atol=1e-7)


def test_unseen_category_at_predict_is_a_clear_error():
    X = pd.DataFrame({"colour": ["red", "blue", "red", "blue"], "size": [1, 2, 2, 1]})
    for fam in ("categorical", "bernoulli"):
        m = emix.MixtureModel(1, family=fam).fit(X)
        bad = pd.DataFrame({"colour": ["red", "green"], "size": [1, 2]})
        with pytest.raises(ValueError, match=r"Column 'colour' holds 'green' \(row 1\), a category not seen"):
            m.predict(bad)
        with pytest.raises(ValueError, match=r"Column 'size' holds 3"):
            m.score_samples(pd.DataFrame({"colour": ["red"], "size": [3]}))
        with pytest.raises(ValueError, match=r"Column 1 holds '1'"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # fitted with feature names, predicting without
            m.predict(np.array([["red", "1"]], dtype=object))  # a string is not the integer 1
        # missing answers are fine at predict time, and give no NaN
        s = m.score_samples(pd.DataFrame({"colour": [None, "red"], "size": [np.nan, None]}))
        assert np.all(np.isfinite(s)) and s[0] == 0.0


def test_categories_option_fixes_the_labels_and_rejects_others():
    fam = get_family("categorical", categories=[["a", "b", "c"]])
    codes, labels = fam.encode(np.array([["b"], ["a"], [None]], dtype=object))
    assert labels == [["a", "b", "c"]]
    np.testing.assert_array_equal(codes[:, 0], [1.0, 0.0, np.nan])
    with pytest.raises(ValueError, match="holds 'z'"):
        fam.encode(np.array([["z"]], dtype=object))
    cfg = fam.config()
    assert get_family(cfg["name"], **cfg["options"]).config() == cfg
    with pytest.raises(ValueError, match="categories must be None or a list"):
        get_family("categorical", categories=["a", "b"])


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="2-D table"):
        get_family("categorical").encode(np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="Reshape your data"):
        emix.MixtureModel(1, family="categorical").fit(np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="must be finite"):
        emix.MixtureModel(1, family="categorical").fit(np.array([[1.0], [np.inf], [2.0]]))
    with pytest.raises(TypeError, match="string, a number or a boolean"):
        emix.MixtureModel(1, family="categorical").fit(np.array([[{"a": 1}], [{"b": 2}]], dtype=object))
    with pytest.raises(TypeError, match="string, a number or a boolean"):
        emix.MixtureModel(1, family="categorical").fit(pd.DataFrame({"t": pd.to_datetime(["2020", "2021"])}))
    with pytest.raises(ValueError, match="pseudo_count must be a finite number >= 0"):
        get_family("categorical", pseudo_count=-1)
    with pytest.raises(ValueError, match="pseudo_count must be a finite number >= 0"):
        get_family("bernoulli", pseudo_count=np.nan)


# ----------------------------------------------------------------- bernoulli coding
def test_bernoulli_labels_and_the_probability_of_the_second_one():
    X = pd.DataFrame({"ok": [True, False, True, True], "ans": ["yes", "no", "yes", None], "n": [1, 0, 0, 0],
                      "only1": [1, 1, 1, 1], "onlyT": [True] * 4, "onlyx": ["x"] * 4})
    m = emix.MixtureModel(1, family="bernoulli").fit(X)
    assert m.encoding_ == [[False, True], ["no", "yes"], [0, 1], [0, 1], [False, True], ["x"]]
    np.testing.assert_allclose(m.probabilities_[0], [0.75, 2 / 3, 0.25, 1.0, 1.0, 0.0])
    assert m._n_parameters() == 6
    with pytest.raises(ValueError, match="'onlyx' holds 'y'"):
        m.predict(X.assign(onlyx="y"))
    with pytest.raises(ValueError, match="'c' has 3 distinct values .* family='categorical'"):
        emix.MixtureModel(1, family="bernoulli").fit(pd.DataFrame({"c": ["a", "b", "c"]}))


# ----------------------------------------------------------------- M-step, pseudo-count, empty components
@pytest.mark.parametrize("a", [0.0, 0.5, 2.0])
def test_m_step_is_the_map_estimate(a):
    rng = np.random.default_rng(6)
    C = [3, 2, 4]
    X = _random_codes(rng, 150, C, 0.1)
    K = 3
    resp = rng.dirichlet(np.ones(K), size=150)
    fam = get_family("categorical", pseudo_count=a, categories=[list(range(c)) for c in C])
    P = Mixture(fam).m_step(Mixture(fam).stats_from_resp(X, None, resp, None), None).components["probabilities"]
    for k in range(K):
        for d, c in enumerate(C):
            obs = ~np.isnan(X[:, d])
            n_kdc = np.array([resp[obs & (X[:, d] == j), k].sum() for j in range(c)])
            np.testing.assert_allclose(P[k, d, :c], (n_kdc + a) / (n_kdc.sum() + c * a), rtol=1e-12)
            assert np.all(P[k, d, c:] == 0)  # padding
    Xb = _random_codes(rng, 150, [2] * 3, 0.1)
    fb = get_family("bernoulli", pseudo_count=a)
    pb = Mixture(fb).m_step(Mixture(fb).stats_from_resp(Xb, None, resp, None), None).components["probabilities"]
    obs = ~np.isnan(Xb)
    np.testing.assert_allclose(pb, (resp.T @ (Xb == 1) + a) / (resp.T @ obs + 2 * a), rtol=1e-12)
    assert fam.config()["options"]["pseudo_count"] == a and fb.config() == {"name": "bernoulli",
                                                                           "options": {"pseudo_count": a}}


def test_pseudo_count_default_is_maximum_likelihood_and_keeps_unused_categories_positive():
    X = pd.DataFrame({"a": pd.Categorical(["x", "y", "x", "x"], categories=["x", "y", "unused"])})
    ml = emix.MixtureModel(1, family="categorical").fit(X)
    np.testing.assert_allclose(ml.probabilities_[0, 0], [0.75, 0.25, 0.0])
    assert ml._n_parameters() == 2  # the declared category counts, as poLCA counts categories
    mp = emix.MixtureModel(1, family="categorical", family_options={"pseudo_count": 1.0}).fit(X)
    np.testing.assert_allclose(mp.probabilities_[0, 0], np.array([4, 2, 1]) / 7)


def test_empty_component_raises_degenerate_component_error():
    for fam in (get_family("categorical", categories=[[0, 1]]), get_family("bernoulli")):
        mix = Mixture(fam)
        X = np.array([[0.0], [1.0], [1.0]])
        resp = np.array([[1.0, 0.0]] * 3)
        with pytest.raises(emix.DegenerateComponentError, match=f"Component 1 is empty.*{fam.name}"):
            mix.m_step(mix.stats_from_resp(X, None, resp, None), None)


@pytest.mark.parametrize("init", ["random_from_data", "k-means++", "kmeans"])
def test_starts_drawn_from_repeated_rows_do_not_empty_a_component(init):
    """Discrete data repeat rows; two identical rows drawn as starts must not
    leave a component empty (the fixed tie-breaking jitter of init_view)."""
    X = np.array([["a", "x"]] * 30 + [["b", "y"]] * 30 + [["a", "y"]] * 5, dtype=object)
    for seed in range(8):
        for fam in ("categorical", "bernoulli"):
            m = emix.MixtureModel(2, family=fam, init_params=init, random_state=seed, max_iter=200).fit(X)
            assert np.all(m.weights_ > 0.05)


def test_category_only_in_zero_weight_rows_scores_minus_inf_without_nan():
    X = np.array([["a"], ["b"], ["a"], ["b"], ["c"]], dtype=object)
    w = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    m = emix.MixtureModel(2, family="categorical", random_state=0).fit(X, sample_weight=w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = m.score_samples(X)
        proba = m.predict_proba(X)
    assert s[4] == -np.inf and np.all(np.isfinite(s[:4]))
    assert not np.isnan(proba).any()


# ----------------------------------------------------------------- sampling and decoding
def test_sample_decodes_labels_with_their_types_and_frequencies():
    rng = np.random.default_rng(7)
    n = 3000
    X = pd.DataFrame({"s": rng.choice(["lo", "hi", "mid"], n, p=[0.5, 0.3, 0.2]), "i": rng.choice([10, 20], n),
                      "b": rng.random(n) < 0.3, "f": rng.choice([0.5, 1.5, 2.5], n)})
    m = emix.MixtureModel(1, family="categorical", random_state=0).fit(X)
    Xs, _y = m.sample(20000)
    assert Xs.dtype == object and set(Xs[:, 0]) == {"lo", "hi", "mid"}
    for d, col in enumerate(X.columns):
        freq = pd.Series(Xs[:, d]).value_counts(normalize=True)
        want = X[col].value_counts(normalize=True)
        np.testing.assert_allclose(freq.reindex(want.index).to_numpy(float), want.to_numpy(), atol=0.015)
    fam = m.family_
    codes = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert fam.decode_sample(codes, [[10, 20], [30, 40]]).dtype == np.int64
    assert fam.decode_sample(codes, [[False, True], [True, False]]).dtype == bool
    assert fam.decode_sample(codes, [[0.5, 1.5], [1.0, 2.0]]).dtype == np.float64
    mb = emix.MixtureModel(1, family="bernoulli", random_state=0).fit(X[["i", "b"]])
    Xb, _ = mb.sample(5000)
    assert Xb.dtype == object and set(Xb[:, 0]) == {10, 20} and set(Xb[:, 1]) == {False, True}
    assert abs(np.mean(Xb[:, 1] == True) - X["b"].mean()) < 0.02


# ----------------------------------------------------------------- blocks, files, the named estimator
@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 59), max_size=4, unique=True), seed=st.integers(0, 2**16))
def test_merged_block_labels_equal_the_whole_tables(cuts, seed):
    rng = np.random.default_rng(seed)
    n = 60
    X = np.column_stack([rng.choice(np.array(["b", "a", "c", None], dtype=object), n, p=[0.1, 0.3, 0.3, 0.3]),
                         rng.choice([3, 1, 2], n).astype(object), rng.random(n) < 0.5]).astype(object)
    X[0] = ["a", 1, True]
    blocks = np.split(X, sorted(cuts))
    for name in ("categorical", "bernoulli"):
        if name == "bernoulli":
            X2 = X[:, [2]]
            blocks2 = [b[:, [2]] for b in blocks]
        else:
            X2, blocks2 = X, blocks
        fam = get_family(name)
        whole = fam.encode(X2)[1]
        merged = fam.merge_meta([get_family(name).encode(b)[1] for b in blocks2])
        assert merged == whole


@pytest.mark.parametrize("est", [emix.MixtureModel(2, family="categorical", random_state=0),
                                 emix.MixtureModel(2, family="bernoulli", random_state=0),
                                 emix.LatentClassModel(2, random_state=0, pseudo_count=0.5)])
def test_model_file_round_trip_keeps_labels_and_predictions(tmp_path, est):
    rng = np.random.default_rng(8)
    z = rng.integers(0, 2, 200)
    X = pd.DataFrame({q: np.where(rng.random(200) < np.where(z, 0.8, 0.2), "yes", "no") for q in "ABCD"})
    X.loc[rng.random(200) < 0.1, "B"] = None
    m = clone(est).fit(X)
    emix.save(m, tmp_path / "m.emix")
    m2 = emix.load(tmp_path / "m.emix")
    assert type(m2) is type(m) and m2.encoding_ == m.encoding_ == [["no", "yes"]] * 4
    np.testing.assert_array_equal(m2.probabilities_, m.probabilities_)
    np.testing.assert_array_equal(m2.predict_proba(X), m.predict_proba(X))
    assert m2._n_parameters() == m._n_parameters()


def test_latent_class_model_is_mixture_model_categorical():
    X = _polca("values")
    kw = {"n_init": 3, "random_state": 1, "tol": 1e-8, "max_iter": 1000}
    a = emix.LatentClassModel(2, **kw).fit(X)
    b = emix.MixtureModel(2, family="categorical", **kw).fit(X)
    np.testing.assert_array_equal(a.probabilities_, b.probabilities_)
    assert a.categories_ == b.encoding_
    assert clone(a).get_params() == a.get_params() and "pseudo_count" in a.get_params()
    c = emix.LatentClassModel(2, pseudo_count=1.0, **kw).fit(X)
    assert c.family_.pseudo_count == 1.0 and c.score(X) < a.score(X)


# ----------------------------------------------------------------- scikit-learn's checks
_CONTINUOUS = ("scikit-learn's check fits on continuous random floats and then predicts on other floats; every "
               "distinct value is a category here, so the new values are categories unseen at fit time, which "
               "raise ValueError by design (test_unseen_category_at_predict_is_a_clear_error).")
_EXPECTED = {
    "check_fit_idempotent": _CONTINUOUS,
    "check_sample_weight_equivalence_on_dense_data": _CONTINUOUS + " (The repeated-rows fit drops the rows of "
    "weight 0, whose values then are unseen.)",
}


_names, _params, _kwargs = estimator_checks_params(
    [emix.LatentClassModel(2, max_iter=20, random_state=0),
     emix.MixtureModel(2, family="categorical", max_iter=20, random_state=0)],
    lambda est: _EXPECTED)


@pytest.mark.parametrize(_names, _params, **_kwargs)
def test_sklearn_estimator_checks(estimator, check):
    # the 'bernoulli' family takes two values per column, and these checks feed continuous data: not run
    check(estimator)
