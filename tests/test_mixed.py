"""Mixed data: the product family of emix.families.mixed.

Oracles: scipy.stats for each member's densities (their sum is the mixed
log density), GaussianMixture(covariance_type='diag') for a table of
Gaussian columns only. The contract row ('mixed') is in
tests/test_family_contract.py."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss

import emix
from emix.backends.reduce import BlockReducer
from emix.families import Mixture, MixtureParams, get_family
from emix.families.base import fit_mixture
from emix.testing import estimator_checks_params


def _frame(rng, n=300):
    z = rng.integers(0, 2, n)
    return pd.DataFrame({
        "height": rng.normal(np.where(z, 175.0, 160.0), np.where(z, 7.0, 5.0)),
        "visits": rng.poisson(np.where(z, 1.0, 6.0)),
        "score": rng.normal(np.where(z, -1.0, 2.0), 1.0),
    }), z


def _warm_model(kw, X, params):
    """A MixtureModel that starts EM from ``params`` (warm start)."""
    m = emix.MixtureModel(2, **kw, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        m.fit(X)
    m.set_params(warm_start=True, max_iter=200, tol=1e-10)
    m.weights_ = params.weights
    for name, v in params.components.items():
        setattr(m, name + "_", v)
    return m


# ------------------------------------------------------------------ densities
def test_log_prob_is_the_sum_of_member_oracles():
    rng = np.random.default_rng(0)
    df, _ = _frame(rng)
    fam = get_family("mixed", columns={"height": "gaussian", "visits": "poisson", "score": "gaussian"})
    X, meta = fam.encode(df)
    fam = fam.with_meta(meta)  # a new instance resolved on the table (families are immutable)
    assert fam.groups == (("gaussian", (0, 2)), ("poisson", (1,)))
    np.testing.assert_array_equal(X, df.to_numpy(dtype=float))  # one code per column, original order
    K = 3
    var = rng.uniform(2.0, 30.0, (K, 2))
    comp = {"gaussian_means": rng.normal([165.0, 0.0], [5.0, 1.0], (K, 2)), "gaussian_covariances": var,
            "gaussian_precisions_cholesky": 1 / np.sqrt(var), "poisson_rates": rng.uniform(0.5, 8.0, (K, 1))}
    comp = fam.check_params(comp, K, 3)
    expected = np.stack([
        ss.norm.logpdf(df["height"], comp["gaussian_means"][k, 0], np.sqrt(var[k, 0]))
        + ss.norm.logpdf(df["score"], comp["gaussian_means"][k, 1], np.sqrt(var[k, 1]))
        + ss.poisson.logpmf(df["visits"], comp["poisson_rates"][k, 0]) for k in range(K)], axis=1)
    np.testing.assert_allclose(fam.log_prob(X, comp), expected, rtol=1e-12)
    assert fam.n_parameters(comp) == K * (2 + 2 + 1)


def test_gaussian_columns_only_equal_a_diag_gaussian_mixture():
    rng = np.random.default_rng(1)
    df, _ = _frame(rng)
    X = df[["height", "score"]].to_numpy()
    mix = Mixture(get_family("gaussian", covariance_type="diag"))
    p0 = mix.m_step(mix.stats_from_resp(X, None, np.eye(2)[(X[:, 1] > 0.5).astype(int)], None), None)
    gm = emix.GaussianMixture(2, covariance_type="diag", weights_init=p0.weights, means_init=p0.components["means"],
                              precisions_init=1 / p0.components["covariances"], tol=1e-10, max_iter=200).fit(X)
    # through the driver
    fam = get_family("mixed", columns="auto")
    Xf, meta = fam.encode(df[["height", "score"]])
    fam = fam.with_meta(meta)
    start = MixtureParams(p0.weights, {"gaussian_" + k: v for k, v in p0.components.items()})
    res = fit_mixture(BlockReducer(Xf, None, 64), start, Mixture(fam), tol=1e-10, max_iter=200)
    assert res.n_iter == gm.n_iter_
    np.testing.assert_allclose(res.params.components["gaussian_means"], gm.means_, rtol=1e-10)
    np.testing.assert_allclose(res.params.components["gaussian_covariances"], gm.covariances_, rtol=1e-10)
    # through MixtureModel (DataFrame in, 'auto')
    m = _warm_model({"family": "auto"}, df[["height", "score"]], start).fit(df[["height", "score"]])
    np.testing.assert_allclose(m.weights_, gm.weights_, rtol=1e-10)
    np.testing.assert_allclose(m.gaussian_means_, gm.means_, rtol=1e-10)
    np.testing.assert_allclose(m.gaussian_covariances_, gm.covariances_, rtol=1e-10)
    np.testing.assert_allclose(m.score(df[["height", "score"]]), gm.score(X), rtol=1e-12)
    assert m._n_parameters() == gm._n_parameters()
    np.testing.assert_array_equal(m.predict(df[["height", "score"]]), gm.predict(X))


def test_dataframe_and_array_with_integer_keys_give_the_same_fit():
    rng = np.random.default_rng(2)
    df, z = _frame(rng)
    by_name = emix.MixtureModel(2, family={"visits": "poisson", "height": "gaussian", "score": "gaussian"},
                                random_state=0, n_init=2, tol=1e-8).fit(df)
    by_index = emix.MixtureModel(2, family={1: "poisson", 0: "gaussian", 2: "gaussian"},
                                 random_state=0, n_init=2, tol=1e-8).fit(df.to_numpy())
    assert by_name.family_.param_names == by_index.family_.param_names
    for p in ("weights", *by_name.family_.param_names):
        np.testing.assert_allclose(getattr(by_name, p + "_"), getattr(by_index, p + "_"), rtol=1e-12, err_msg=p)
    np.testing.assert_array_equal(by_name.predict(df), by_index.predict(df.to_numpy()))
    # and the fit finds the two groups
    agree = np.mean(by_name.predict(df) == z)
    assert max(agree, 1 - agree) > 0.95


# ------------------------------------------------------------------ 'auto'
def test_auto_picks_the_documented_families():
    n = 6
    df = pd.DataFrame({
        "f": np.linspace(0, 1, n),
        "i": np.arange(n),
        "neg": np.arange(n) - 3,
        "nullable": pd.array([1, 2, None, 4, 5, 6], dtype="Int64"),
    })
    fam = get_family("mixed", columns="auto")
    fam = fam.with_meta(fam.encode(df[["f", "i", "neg"]])[1])
    assert fam.config()["options"]["columns"] == {"f": "gaussian", "i": "gaussian", "neg": "gaussian"}
    fam = get_family("mixed", columns="auto", integers="poisson")
    _, meta = fam.encode(df[["f", "i", "neg"]])
    assert {c["name"]: c["family"] for c in meta["columns"]} == {"f": "gaussian", "i": "poisson", "neg": "gaussian"}
    # numpy arrays: float -> gaussian, integer -> gaussian or poisson
    fam = get_family("mixed", columns="auto", integers="poisson")
    _, meta = fam.encode(np.arange(12).reshape(6, 2))
    assert [c["family"] for c in meta["columns"]] == ["poisson", "poisson"]
    _, meta = get_family("mixed", columns="auto").encode(np.ones((4, 2)))
    assert [c["family"] for c in meta["columns"]] == ["gaussian", "gaussian"]
    # a nullable integer column with a missing value: gaussian, which takes no missing values
    with pytest.raises(ValueError, match=r"Columns \['nullable'\] \(gaussian family\) hold missing.*row 2"):
        get_family("mixed", columns="auto").encode(df[["nullable"]])


def test_auto_picks_categorical_for_category_object_string_bool():
    df = pd.DataFrame({
        "cat": pd.Categorical(["a", "b", "a", "c"]),
        "obj": ["x", "y", "x", None],
        "str": pd.array(["u", "v", "u", "v"], dtype="string"),
        "bool": [True, False, True, True],
        "num_obj": np.array([1.5, 2.0, None, 3.0], dtype=object),
    })
    fam = get_family("mixed", columns="auto")
    with pytest.raises(ValueError, match="num_obj"):  # numbers in an object column: gaussian, no missing values
        fam.encode(df)
    X, meta = fam.encode(df.drop(columns="num_obj"))
    assert [c["family"] for c in meta["columns"]] == ["categorical"] * 4
    assert np.isnan(X[3, 1])  # a missing answer stays missing (categorical marginalizes it)
    json.dumps(meta)
    json.dumps(fam.with_meta(meta).config())


def test_auto_rejects_types_it_does_not_model():
    df = pd.DataFrame({"t": pd.date_range("2020-01-01", periods=4), "x": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match=r"Column 't' has dtype datetime64.*Convert it, or assign"):
        get_family("mixed", columns="auto").encode(df)


# ------------------------------------------------------------------ errors
def test_unassigned_and_unknown_columns_are_errors():
    df, _ = _frame(np.random.default_rng(3), 20)
    with pytest.raises(ValueError, match=r"columns \['visits', 'score'\] are not assigned one"):
        get_family("mixed", columns={"height": "gaussian"}).encode(df)
    with pytest.raises(ValueError, match=r"columns names \['weight'\], which are not columns.*'height', 'visits'"):
        get_family("mixed", columns={"height": "gaussian", "visits": "poisson", "score": "gaussian",
                                     "weight": "gaussian"}).encode(df)
    with pytest.raises(ValueError, match=r"not columns of the data.*column names need a pandas DataFrame"):
        get_family("mixed", columns={"height": "gaussian"}).encode(df.to_numpy())
    with pytest.raises(ValueError, match=r"columns \[2\] are not assigned"):
        get_family("mixed", columns={0: "gaussian", 1: "poisson"}).encode(df.to_numpy())
    with pytest.raises(ValueError, match="assigned twice"):
        get_family("mixed", columns={"height": "gaussian", 0: "gaussian", "visits": "poisson",
                                     "score": "gaussian"}).encode(df)
    with pytest.raises(ValueError, match="3 families but the data have 2 columns"):
        get_family("mixed", columns=["gaussian"] * 3).encode(np.ones((4, 2)))
    # through the estimator
    with pytest.raises(ValueError, match="are not assigned one"):
        emix.MixtureModel(2, family={"height": "gaussian"}).fit(df)


def test_bad_specs_and_options_are_errors():
    with pytest.raises(ValueError, match="'banana', which is not a family"):
        get_family("mixed", columns={"a": "banana"})
    with pytest.raises(ValueError, match="cannot contain another one"):
        get_family("mixed", columns={"a": "mixed"})
    with pytest.raises(ValueError, match="Unknown option 'pseudo_count'.*under the family's name"):
        get_family("mixed", columns="auto", pseudo_count=1.0)
    with pytest.raises(ValueError, match="pseudo_count must be >= 0"):
        get_family("mixed", columns={"a": "poisson"}, poisson={"pseudo_count": -1})
    with pytest.raises(ValueError, match="integers must be one of"):
        get_family("mixed", columns="auto", integers="binomial")
    with pytest.raises(TypeError, match="columns must be"):
        get_family("mixed", columns=3)
    with pytest.raises(ValueError, match="columns is empty"):
        get_family("mixed", columns={})


def test_column_values_a_member_cannot_take_are_named():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "n": [1, -2, 3], "s": ["a", "b", "c"]})
    with pytest.raises(ValueError, match=r"Columns \['n'\] \(poisson family\).*Negative values"):
        get_family("mixed", columns={"x": "gaussian", "n": "poisson", "s": "gaussian"}).encode(df[["x", "n"]].assign(
            s=1.0))
    with pytest.raises(ValueError, match=r"Column 's' is assigned to the gaussian family but holds non-numeric "
                                         r"values \(e.g. 'a'\)"):
        get_family("mixed", columns={"x": "gaussian", "n": "gaussian", "s": "gaussian"}).encode(df)
    with pytest.raises(ValueError, match=r"Columns \['x'\] \(gaussian family\) hold missing"):
        get_family("mixed", columns={"x": "gaussian"}).encode(pd.DataFrame({"x": [1.0, np.nan]}))


def test_predict_checks_the_table_against_the_fit():
    df, _ = _frame(np.random.default_rng(4), 100)
    m = emix.MixtureModel(2, family={"height": "gaussian", "visits": "poisson", "score": "gaussian"},
                          random_state=0).fit(df)
    with pytest.raises(ValueError):
        m.predict(df[["height", "visits"]])
    with pytest.raises(ValueError):
        m.predict(df.rename(columns={"score": "grade"}))
    # an array with the fitted columns' order is accepted (positions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scikit-learn: X has no feature names
        np.testing.assert_array_equal(m.predict(df.to_numpy()), m.predict(df))


# ------------------------------------------------------------------ config, meta, sampling
def test_config_and_meta_rebuild_the_resolved_family():
    df, _ = _frame(np.random.default_rng(5), 200)
    m = emix.MixtureModel(2, family="auto", family_options={"integers": "poisson", "poisson": {"pseudo_count": 0.5}},
                          random_state=0).fit(df)
    cfg = json.loads(json.dumps(m.family_.config()))
    assert cfg["options"]["columns"] == {"height": "gaussian", "visits": "poisson", "score": "gaussian"}
    assert cfg["options"]["poisson"]["pseudo_count"] == 0.5
    assert cfg["options"]["gaussian"]["covariance_type"] == "diag"
    meta = json.loads(json.dumps(m.encoding_))
    fam = get_family(cfg["name"], **cfg["options"])
    Xf, meta2 = fam.encode(df, meta)
    assert meta2 == meta
    fam = fam.with_meta(meta)
    params = m._params()
    np.testing.assert_allclose(fam.log_prob(Xf, params.components),
                               m.family_.log_prob(m.family_.encode(df, m.encoding_)[0], params.components), rtol=0)
    # the same mapping given by position rebuilds the same family on an array
    fam_list = get_family("mixed", columns=["gaussian", "poisson", "gaussian"])
    Xa, _ = fam_list.encode(df.to_numpy())
    np.testing.assert_array_equal(Xa, Xf)
    assert fam_list.config()["options"]["columns"] == ["gaussian", "poisson", "gaussian"]


def test_sample_keeps_the_column_names_and_groups():
    df, _ = _frame(np.random.default_rng(6), 400)
    m = emix.MixtureModel(2, family={"height": "gaussian", "visits": "poisson", "score": "gaussian"},
                          random_state=0, n_init=2).fit(df)
    Xs, ys = m.sample(3000)
    assert isinstance(Xs, pd.DataFrame) and list(Xs.columns) == ["height", "visits", "score"]
    assert np.all(Xs["visits"] == np.round(Xs["visits"])) and np.all(Xs["visits"] >= 0)
    for k in range(2):
        rows = Xs[ys == k]
        np.testing.assert_allclose(rows["visits"].mean(), m.poisson_rates_[k, 0], rtol=0.12, atol=0.1)
        np.testing.assert_allclose(rows[["height", "score"]].mean(), m.gaussian_means_[k], atol=0.5)
    m2 = emix.MixtureModel(2, family={"height": "gaussian", "visits": "poisson", "score": "gaussian"},
                           random_state=0, n_init=2).fit(Xs)
    np.testing.assert_allclose(np.sort(m2.weights_), np.sort(m.weights_), atol=0.05)


def test_member_options_reach_the_members():
    df, _ = _frame(np.random.default_rng(7), 200)
    m = emix.MixtureModel(2, family={"height": "gaussian", "visits": "poisson", "score": "gaussian"},
                          family_options={"gaussian": {"covariance_type": "full"}}, random_state=0).fit(df)
    assert m.gaussian_covariances_.shape == (2, 2, 2)
    # full covariance over the gaussian columns: log_prob is the bivariate normal's plus the poisson's
    X = df[["height", "score"]].to_numpy()
    expected = np.stack([ss.multivariate_normal(m.gaussian_means_[k], m.gaussian_covariances_[k]).logpdf(X)
                         + ss.poisson.logpmf(df["visits"], m.poisson_rates_[k, 0]) for k in range(2)], axis=1)
    np.testing.assert_allclose(m.family_.log_prob(df.to_numpy(dtype=float), m._params().components), expected,
                               rtol=1e-10)


def test_merge_meta_of_blocks():
    df, _ = _frame(np.random.default_rng(8), 60)
    fam = get_family("mixed", columns="auto", integers="poisson")
    metas = [fam.encode(df.iloc[a:a + 20])[1] for a in (0, 20, 40)]
    assert fam.merge_meta(metas) == fam.encode(df)[1]
    other = get_family("mixed", columns="auto").encode(df.iloc[:20])[1]
    with pytest.raises(ValueError, match="resolve column 'visits' differently"):
        fam.merge_meta([metas[0], other])


# ------------------------------------------------------------------ with the categorical family
def _typed_frame(rng, n=600):
    z = rng.integers(0, 2, n)
    colors = np.array(["red", "green", "blue"])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    color = np.array([colors[rng.choice(3, p=p[k])] for k in z])
    return pd.DataFrame({
        "size": rng.normal(np.where(z, 3.0, 0.0), 1.0),
        "color": pd.Categorical(color, categories=["blue", "green", "red"]),
        "count": rng.poisson(np.where(z, 5.0, 1.0)),
        "label": np.where(rng.random(n) < np.where(z, 0.8, 0.3), "yes", "no").astype(object),
    }), z


def test_log_prob_with_categorical_columns_is_the_sum_of_oracles():
    rng = np.random.default_rng(9)
    df, _ = _typed_frame(rng, 200)
    fam = get_family("mixed", columns="auto", integers="poisson")
    X, meta = fam.encode(df)
    fam = fam.with_meta(meta)
    assert [c["family"] for c in meta["columns"]] == ["gaussian", "categorical", "poisson", "categorical"]
    assert fam.groups == (("gaussian", (0,)), ("categorical", (1, 3)), ("poisson", (2,)))
    labels = dict(zip(["color", "label"], next(g["meta"] for g in meta["groups"] if g["family"] == "categorical")))
    assert labels == {"color": ["blue", "green", "red"], "label": ["no", "yes"]}
    K = 2
    probs = np.zeros((K, 2, 3))
    probs[:, 0, :] = rng.dirichlet(np.ones(3), K)
    probs[:, 1, :2] = rng.dirichlet(np.ones(2), K)
    comp = {"gaussian_means": rng.normal(1.0, 1.0, (K, 1)), "gaussian_covariances": rng.uniform(0.5, 2.0, (K, 1)),
            "categorical_probabilities": probs, "poisson_rates": rng.uniform(1.0, 5.0, (K, 1))}
    comp = fam.check_params(comp, K, 4)

    def onehot(values, cats):
        return (np.asarray(values, dtype=object)[:, None] == np.asarray(cats, dtype=object)[None, :]).astype(int)

    expected = np.stack([
        ss.norm.logpdf(df["size"], comp["gaussian_means"][k, 0], np.sqrt(comp["gaussian_covariances"][k, 0]))
        + ss.multinomial.logpmf(onehot(df["color"], labels["color"]), 1, probs[k, 0])
        + ss.poisson.logpmf(df["count"], comp["poisson_rates"][k, 0])
        + ss.multinomial.logpmf(onehot(df["label"], labels["label"]), 1, probs[k, 1, :2])
        for k in range(K)], axis=1)
    np.testing.assert_allclose(fam.log_prob(X, comp), expected, rtol=1e-10)


def test_fit_a_typed_table_with_strings_categories_and_counts():
    rng = np.random.default_rng(10)
    df, z = _typed_frame(rng)
    m = emix.MixtureModel(2, family="auto", family_options={"integers": "poisson"}, random_state=0,
                          n_init=3).fit(df)
    agree = np.mean(m.predict(df) == z)
    assert max(agree, 1 - agree) > 0.9
    k1 = int(np.argmax(m.gaussian_means_[:, 0]))  # the component with size ~ 3
    np.testing.assert_allclose(m.poisson_rates_[k1, 0], 5.0, rtol=0.15)
    # color probabilities of the second group, in the declared category order blue, green, red
    np.testing.assert_allclose(m.categorical_probabilities_[k1, 0], [0.6, 0.3, 0.1], atol=0.08)
    Xs, _ = m.sample(500)
    assert list(Xs.columns) == list(df.columns)
    assert set(Xs["color"]) <= {"red", "green", "blue"} and set(Xs["label"]) <= {"yes", "no"}
    # missing answers in a categorical column are allowed; in a gaussian column they are not
    holes = df.copy()
    holes.loc[::7, "label"] = None
    emix.MixtureModel(2, family="auto", family_options={"integers": "poisson"}, random_state=0).fit(holes)
    holes.loc[::9, "size"] = np.nan
    with pytest.raises(ValueError, match=r"Columns \['size'\] \(gaussian family\) hold missing"):
        emix.MixtureModel(2, family="auto", random_state=0).fit(holes)
    # a category unseen at fit time is named at predict time
    new = df.head(3).copy()
    new["label"] = ["yes", "maybe", "no"]
    with pytest.raises(ValueError, match="maybe"):
        m.predict(new)


def test_model_file_round_trip(tmp_path):
    rng = np.random.default_rng(11)
    df, _ = _typed_frame(rng, 300)
    m = emix.MixtureModel(2, family="auto", family_options={"integers": "poisson",
                                                            "categorical": {"pseudo_count": 0.1}},
                          random_state=0).fit(df)
    emix.io.save(m, tmp_path / "mixed.emix")
    back = emix.io.load(tmp_path / "mixed.emix")
    assert back.family_.config() == m.family_.config() and back.family_.groups == m.family_.groups
    np.testing.assert_array_equal(back.score_samples(df), m.score_samples(df))
    for p in m.family_.param_names:
        np.testing.assert_array_equal(getattr(back, p + "_"), getattr(m, p + "_"))


def test_block_source_fit_equals_the_in_memory_fit():
    df, _ = _frame(np.random.default_rng(12), 900)
    kw = {"family": {"height": "gaussian", "visits": "poisson", "score": "gaussian"}, "random_state": 0, "tol": 1e-8}
    in_memory = emix.MixtureModel(2, **kw).fit(df)
    blocks = emix.MixtureModel(2, **kw).fit(lambda: (df.iloc[a:a + 200] for a in range(0, 900, 200)))
    for p in ("weights", *in_memory.family_.param_names):
        np.testing.assert_allclose(getattr(blocks, p + "_"), getattr(in_memory, p + "_"), rtol=1e-10, err_msg=p)


def test_init_features_standardize_numeric_columns_and_keep_raw_members_views():
    rng = np.random.default_rng(13)
    df, _ = _typed_frame(rng, 200)
    df["size"] *= 1000.0  # units must not decide the k-means start
    fam = get_family("mixed", columns="auto", integers="poisson")
    X, meta = fam.encode(df)
    F = fam.with_meta(meta).init_features(X)
    # gaussian (size), categorical one-hot (3 + 2 codes, and the categorical family's tie-breaking start
    # column), poisson (count): groups in first-appearance order
    cat = get_family("categorical").init_features(X[:, [1, 3]])
    assert F.shape == (200, 1 + cat.shape[1] + 1)
    for j, col in ((0, "size"), (F.shape[1] - 1, "count")):
        z = (df[col] - df[col].mean()) / df[col].std(ddof=0)
        np.testing.assert_allclose(F[:, j], z, rtol=1e-12, atol=1e-12)
    # the categorical member's own view (its one-hot codes) is kept as it is
    np.testing.assert_array_equal(F[:, 1:1 + cat.shape[1]], cat)


_AUTO_EXPECTED = {
    "check_sample_weight_equivalence_on_dense_data": (
        "k-means draws its seeds from the rows it is given, so weighted and repeated rows start in different "
        "places (see tests/test_mixture_model.py); from the same start they agree "
        "(tests/test_family_contract.py::test_integer_weights_equal_repeated_rows[mixed])."),
}


_names, _params, _kwargs = estimator_checks_params(
    [emix.MixtureModel(2, family="auto", max_iter=20, random_state=0)], lambda est: _AUTO_EXPECTED)


@pytest.mark.parametrize(_names, _params, **_kwargs)
def test_sklearn_estimator_checks_auto(estimator, check):
    check(estimator)


def test_far_rows_give_no_nan():
    """Issue 14 for mixed models: rows far from every component (distances that overflow) get
    defined responsibilities and a finite or -inf score, never NaN (pytest turns the overflow
    RuntimeWarnings into errors, so the stable path is taken)."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.poisson(1.0, (200, 3)), rng.poisson(8.0, (200, 3))]).astype(float)
    mm = emix.MixtureModel(2, family={0: "gaussian", 1: "poisson", 2: "gaussian"}, random_state=0).fit(X)
    far = np.array([[1e300, 0, 0], [1e150, 1e150, 0], [1e20, 3, 1], [-1e300, 5, 1e300]])
    proba = mm.predict_proba(far)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    ll = mm.score_samples(far)
    assert not np.any(np.isnan(ll)) and np.all(ll < 0)
    # where the densities are still finite, they are the members' oracles: a Gaussian column at 1e20
    g = mm.family_.log_prob(mm.family_.encode(far[2:3], mm.encoding_)[0], mm._params().components)
    assert np.all(np.isfinite(g))
