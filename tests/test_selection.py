"""emix.select: the table, reproducibility, failures recorded (never fatal),
criteria conventions, plotting and uncertainty."""

import math

import numpy as np
import pytest

import emix
from emix.selection import ROW_KEYS, SelectionResult, cell_seed, uncertainty
from emix.testing import make_mixture


@pytest.fixture(scope="module")
def data():
    X, _, _ = make_mixture(n_samples=240, n_components=3, n_features=2, separation=5.0, random_state=1)
    return X


@pytest.fixture(scope="module")
def result(data):
    return emix.select(data, n_components=range(1, 5), covariance_types=["EII", "VVV", "EEE", "VEV"],
                       random_state=0)


def test_table_and_best(result, data):
    assert isinstance(result, SelectionResult)
    assert len(result.rows) == 16
    for r in result.rows:
        assert set(r) == set(ROW_KEYS)
        assert r["error"] is None
        # ICL adds the classification entropy to BIC: never smaller
        assert r["icl"] >= r["bic"] - 1e-9
        assert r["bic"] == pytest.approx(-2 * r["log_likelihood"] + r["n_parameters"] * math.log(240))
        assert r["aic"] == pytest.approx(-2 * r["log_likelihood"] + 2 * r["n_parameters"])
    best = min(result.rows, key=lambda r: r["bic"])
    assert result.best_params_ == {"n_components": best["n_components"],
                                   "covariance_type": best["covariance_type"]}
    assert result.best_params_["n_components"] == 3
    assert result.best_.n_components == 3
    assert result.best_.bic(data) == pytest.approx(best["bic"], rel=1e-10)
    assert result.criterion == "bic"
    # grid order: K ascending, models in the given order
    assert [(r["n_components"], r["covariance_type"]) for r in result.rows[:5]] == [
        (1, "EII"), (1, "VVV"), (1, "EEE"), (1, "VEV"), (2, "EII")]


def test_reproducible_and_independent_of_n_jobs_and_grid(result, data):
    again = emix.select(data, n_components=range(1, 5), covariance_types=["EII", "VVV", "EEE", "VEV"],
                        random_state=0, n_jobs=2)
    assert again.rows == result.rows
    sub = emix.select(data, n_components=[3], covariance_types=["VEV"], random_state=0,
                      init_params="kmeans")
    full = emix.select(data, n_components=[2, 3], covariance_types=["EII", "VEV"], random_state=0,
                       init_params="kmeans")
    cell = [r for r in full.rows if r["n_components"] == 3 and r["covariance_type"] == "VEV"][0]
    assert sub.rows[0] == cell
    assert cell_seed(0, 3, "VEV") != cell_seed(0, 3, "EEV")


def test_a_failing_cell_is_recorded_not_fatal(data):
    X = data[:12]
    res = emix.select(X, n_components=[1, 2, 20], covariance_types=["VVV", "EII"], random_state=0,
                      reg_covar=0.0)
    errors = [r for r in res.rows if r["error"] is not None]
    assert errors and all(r["n_components"] == 20 for r in errors)
    assert all(math.isnan(r["bic"]) for r in errors)
    assert "n_components" in errors[0]["error"]
    assert res.best_params_["n_components"] in (1, 2)


def test_all_failing_raises(data):
    with pytest.raises(ValueError, match="Every fit in the grid failed"):
        emix.select(data[:5], n_components=[10], covariance_types=["VVV"], random_state=0)


def test_argument_checks(data):
    with pytest.raises(ValueError, match="criterion"):
        emix.select(data, criterion="bogus")
    with pytest.raises(ValueError, match="covariance_type"):
        emix.select(data, covariance_types=["XYZ"])
    with pytest.raises(TypeError, match="n_components"):
        emix.select(data, n_components=[1.5])
    with pytest.raises(TypeError, match="select"):
        emix.select(data, n_components=[1], covariance_types=["EII"], random_state=0, n_init=1,
                    **{"covariance_type": "EII"})


def test_criteria_icl_aic_choose(data):
    for crit in ("icl", "aic"):
        res = emix.select(data, n_components=[2, 3], covariance_types=["VVV"], criterion=crit, random_state=0)
        vals = [r[crit] for r in res.rows]
        assert res.criterion == crit
        assert res.best_params_["n_components"] == [2, 3][int(np.argmin(vals))]


def test_univariate_defaults_to_E_and_V():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, 100), rng.normal(6, 1, 100)][:, None]
    res = emix.select(X, n_components=[1, 2, 3], random_state=0)
    assert {r["covariance_type"] for r in res.rows} == {"E", "V"}
    assert res.best_params_["n_components"] == 2


def test_sample_weight_equals_repetition(data):
    X = data[:60]
    w = np.r_[np.full(30, 2.0), np.ones(30)]
    Xr = np.r_[X[:30], X[:30], X[30:]]
    a = emix.select(X, n_components=[2], covariance_types=["VVV"], sample_weight=w, random_state=0,
                    init_params="kmeans", means_init=X[[0, 45]], tol=1e-10)
    b = emix.select(Xr, n_components=[2], covariance_types=["VVV"], random_state=0,
                    init_params="kmeans", means_init=X[[0, 45]], tol=1e-10)
    assert a.rows[0]["log_likelihood"] == pytest.approx(b.rows[0]["log_likelihood"], rel=1e-6)
    assert a.rows[0]["bic"] == pytest.approx(b.rows[0]["bic"], rel=1e-6)


def test_to_frame_plot_and_uncertainty(result, data):
    pd = pytest.importorskip("pandas")
    df = result.to_frame()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == list(ROW_KEYS) and len(df) == 16
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    ax = result.plot()
    assert ax.get_ylabel().startswith("BIC")
    assert len(ax.get_lines()) == 4 + 1
    plt.close("all")
    u = uncertainty(result.best_, data)
    assert u.shape == (240,) and np.all(u >= 0) and np.all(u <= 1 - 1 / 3 + 1e-12)
    np.testing.assert_allclose(result.best_.uncertainty(data), u)
    np.testing.assert_allclose(u, 1 - result.best_.predict_proba(data).max(axis=1))


def test_hierarchical_partitions():
    from emix.core.hierarchical import hierarchical_labels, hierarchical_partitions

    X, y, _ = make_mixture(n_samples=900, n_components=3, n_features=3, separation=6.0, random_state=3)
    rs = np.random.RandomState(0)
    parts = hierarchical_partitions(X, range(1, 7), rs, max_samples=400)  # subset path
    for K, lab in parts.items():
        assert lab.shape == (900,) and sorted(np.unique(lab)) == list(range(K))
    # well separated groups are recovered (up to label names)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, parts[3]) > 0.95
    # without a subset the tree is deterministic and the cuts are nested
    full = hierarchical_partitions(X[:300], [2, 3, 4], np.random.RandomState(1))
    for a, b in ((2, 3), (3, 4)):
        for c in range(b):
            assert len(np.unique(full[a][full[b] == c])) == 1
    np.testing.assert_array_equal(full[3], hierarchical_labels(X[:300], 3, np.random.RandomState(5)))
    # degenerate inputs: a constant feature, one feature, K >= n
    Xc = np.c_[X[:50], np.ones(50)]
    assert len(np.unique(hierarchical_labels(Xc, 4, rs))) == 4
    assert len(np.unique(hierarchical_labels(X[:50, :1], 3, rs))) == 3
    assert len(np.unique(hierarchical_labels(X[:5], 5, rs))) == 5


def test_estimator_accepts_hierarchical_init():
    X, y, _ = make_mixture(n_samples=300, n_components=3, n_features=2, separation=6.0, random_state=4)
    gm = emix.GaussianMixture(3, covariance_type="VEV", init_params="hierarchical", random_state=0).fit(X)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, gm.predict(X)) > 0.9


def test_select_with_default_prior(data):
    res = emix.select(data, n_components=[1, 2, 3], covariance_types=["VVV", "EEE"], random_state=0,
                      prior="default", reg_covar=0.0)
    assert res.best_params_["n_components"] == 3
    assert res.best_.prior == "default"
    assert all(r["error"] is None for r in res.rows)
