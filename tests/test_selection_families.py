"""emix.select(family=...): grids of MixtureModel cells for every registered
family. Planted-K recovery, criteria equal to the estimator's own and to an
independent scipy oracle, failed cells recorded, the Gaussian path unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as ss
from scipy.special import logsumexp

import emix
from emix.families import family_names
from emix.selection import _entropy, cell_seed


# ------------------------------------------------------ planted data per family
def _poisson(rng, n=600):
    lam = np.array([[0.5, 2.0, 6.0], [7.0, 1.0, 0.2], [3.0, 9.0, 3.0]])
    z = rng.integers(0, 3, n)
    return rng.poisson(lam[z]).astype(np.float64), 3


def _student_t(rng, n=300):
    centres = np.array([[0.0, 0.0], [9.0, 0.0]])
    z = rng.integers(0, 2, n)
    return centres[z] + rng.standard_t(4, (n, 2)), 2


def _bernoulli(rng, n=600):
    p = np.array([[0.9, 0.9, 0.1, 0.1, 0.9, 0.1], [0.1, 0.1, 0.9, 0.9, 0.1, 0.9]])
    z = rng.integers(0, 2, n)
    return (rng.uniform(size=(n, 6)) < p[z]).astype(np.float64), 2


def _categorical(rng, n=600):
    levels = np.array(["a", "b", "c"], dtype=object)
    p = np.array([[0.85, 0.1, 0.05], [0.05, 0.1, 0.85]])
    z = rng.integers(0, 2, n)
    cols = [levels[(rng.uniform(size=n)[:, None] > np.cumsum(p[z], axis=1)).sum(axis=1)] for _ in range(5)]
    return np.column_stack(cols), 2


def _mixed(rng, n=600):
    pd = pytest.importorskip("pandas")
    z = rng.integers(0, 2, n)
    df = pd.DataFrame({"x": rng.normal(0, 1, n) + 6 * z, "count": rng.poisson(np.where(z == 1, 9.0, 1.0)),
                       "colour": np.where(rng.uniform(size=n) < np.where(z == 1, 0.9, 0.1), "red", "blue")})
    return df, 2


PLANTED = {"poisson": _poisson, "student_t": _student_t, "bernoulli": _bernoulli, "categorical": _categorical,
           "mixed": _mixed}
OPTIONS = {"mixed": {"family": {"x": "gaussian", "count": "poisson", "colour": "categorical"}}}
FAMILIES = [f for f in family_names() if f != "gaussian"]


def _family(name):
    return OPTIONS.get(name, {}).get("family", name)


def test_every_registered_family_has_planted_data():
    missing = [f for f in FAMILIES if f not in PLANTED]
    assert not missing, f"add planted data to tests/test_selection_families.py::PLANTED for {missing}"


@pytest.mark.parametrize("name", FAMILIES)
def test_select_recovers_the_planted_k(name):
    X, K = PLANTED[name](np.random.default_rng(0))
    covariance_types = ["full", "diag"] if name == "student_t" else None
    Ks = range(1, 4) if name == "student_t" else range(1, 5)
    res = emix.select(X, n_components=Ks, family=_family(name), covariance_types=covariance_types,
                      random_state=0)
    assert res.best_params_["n_components"] == K, res.to_frame()
    assert res.best_params_["family"] == _family(name)
    assert all(r["error"] is None for r in res.rows), [r["error"] for r in res.rows]
    assert {r["family"] for r in res.rows} == {name if isinstance(_family(name), str) else "mixed"}
    # the table's criterion values are the estimator's own
    best_row = min(res.rows, key=lambda r: r["bic"])
    assert best_row["n_components"] == K
    assert best_row["bic"] == res.best_.bic(X)
    assert best_row["aic"] == res.best_.aic(X)
    assert best_row["icl"] == res.best_.icl(X)
    assert best_row["log_likelihood"] == pytest.approx(res.best_.score(X) * len(X), rel=1e-12)
    assert best_row["n_parameters"] == res.best_._n_parameters()
    assert type(res.best_) is emix.MixtureModel


def _poisson_oracle_loglik(model, X):
    """log L by scipy.stats: sum_n log sum_k w_k prod_d Poisson(x_nd | lambda_kd)."""
    lp = np.stack([ss.poisson.logpmf(X, lam).sum(axis=1) for lam in model.rates_], axis=1)
    return float(logsumexp(lp + np.log(model.weights_), axis=1).sum())


def test_poisson_criteria_equal_an_independent_oracle():
    X, _ = _poisson(np.random.default_rng(1), 300)
    res = emix.select(X, n_components=[1, 2, 3], family="poisson", random_state=0)
    n, D = X.shape
    for K in (1, 2, 3):
        # each cell is the MixtureModel fit with the cell's seed, whatever the rest of the grid
        model = emix.MixtureModel(K, family="poisson", tol=1e-5, max_iter=1000,
                                  random_state=cell_seed(_entropy(0), K, "poisson:None")).fit(X)
        row = [r for r in res.rows if r["n_components"] == K][0]
        ll = _poisson_oracle_loglik(model, X)
        p = K * D + K - 1
        assert row["n_parameters"] == p
        np.testing.assert_allclose(row["log_likelihood"], ll, rtol=1e-10)
        np.testing.assert_allclose(row["bic"], -2 * ll + p * math.log(n), rtol=1e-10)
        np.testing.assert_allclose(row["aic"], -2 * ll + 2 * p, rtol=1e-10)
        resp = model.predict_proba(X)
        np.testing.assert_allclose(row["icl"], -2 * ll + p * math.log(n) - 2 * np.log(resp.max(axis=1)).sum(),
                                   rtol=1e-10)
    assert res.best_params_ == {"n_components": 3, "family": "poisson"}


def test_a_cell_does_not_depend_on_the_grid():
    X, _ = _poisson(np.random.default_rng(2), 300)
    full = emix.select(X, n_components=range(1, 5), family="poisson", random_state=7)
    sub = emix.select(X, n_components=[3], family="poisson", random_state=7)
    assert sub.rows[0] == [r for r in full.rows if r["n_components"] == 3][0]


@pytest.mark.slow  # worker processes start in seconds on a loaded machine
def test_n_jobs_gives_the_same_grid():
    X, _ = _poisson(np.random.default_rng(3), 300)
    a = emix.select(X, n_components=range(1, 4), family="poisson", random_state=0, n_init=2)
    b = emix.select(X, n_components=range(1, 4), family="poisson", random_state=0, n_init=2, n_jobs=2)
    assert a.rows == b.rows
    np.testing.assert_array_equal(a.best_.rates_, b.best_.rates_)


def test_a_failed_cell_is_recorded_and_the_others_kept():
    X, _ = _poisson(np.random.default_rng(4), 40)
    res = emix.select(X, n_components=[2, 100], family="poisson", random_state=0)
    ok, failed = res.rows
    assert ok["error"] is None and np.isfinite(ok["bic"])
    assert failed["error"] is not None and "100" in failed["error"]
    assert all(math.isnan(failed[k]) for k in ("bic", "icl", "aic", "log_likelihood"))
    assert res.best_params_["n_components"] == 2
    with pytest.raises(ValueError, match="Every fit in the grid failed"):
        emix.select(X, n_components=[100], family="poisson")


def test_student_t_grid_covers_k_and_covariance_types():
    if "student_t" not in FAMILIES:
        pytest.fail("the student_t family is not registered")
    X, _ = _student_t(np.random.default_rng(5), 200)
    res = emix.select(X, n_components=[1, 2], family="student_t", random_state=0, criterion="icl")
    assert [(r["n_components"], r["covariance_type"]) for r in res.rows] == [
        (K, m) for K in (1, 2) for m in ("full", "tied", "diag", "spherical")]
    best = res.best_params_
    assert set(best) == {"n_components", "covariance_type", "family"}
    row = [r for r in res.rows if (r["n_components"], r["covariance_type"]) == (best["n_components"],
                                                                              best["covariance_type"])][0]
    assert row["icl"] == min(r["icl"] for r in res.rows) == res.best_.icl(X)
    assert res.best_.covariance_type == best["covariance_type"]
    # best_params_ is ready for the estimator
    refit = emix.MixtureModel(**best, random_state=0).fit(X)
    assert refit.covariance_type == best["covariance_type"]
    Ks, models, values = res.table()
    assert models == ["full", "tied", "diag", "spherical"] and values.shape == (2, 4)


def test_cell_callback_and_frame():
    X, _ = _poisson(np.random.default_rng(6), 200)
    seen = []
    res = emix.select(X, n_components=[1, 2], family="poisson", random_state=0, cell_callback=seen.append)
    assert sorted(info["done"] for info in seen) == [1, 2] and all(info["total"] == 2 for info in seen)
    assert sorted(info["row"]["n_components"] for info in seen) == [1, 2]
    df = res.to_frame()
    assert list(df["family"]) == ["poisson", "poisson"]
    assert df["covariance_type"].isna().all()
    assert "family='poisson'" in repr(res)
    Ks, models, values = res.table("aic")
    assert Ks == [1, 2] and models == [None] and values[:, 0].tolist() == [r["aic"] for r in res.rows]


def test_sample_weight_counts_like_repeated_rows_in_the_criteria():
    X, _ = _poisson(np.random.default_rng(8), 200)
    w = np.random.default_rng(9).integers(1, 3, X.shape[0]).astype(float)
    res = emix.select(X, n_components=[2], family="poisson", random_state=0, sample_weight=w)
    row = res.rows[0]
    rep = np.repeat(X, w.astype(int), axis=0)
    # the criteria of the weighted fit are those of its model on the repeated rows
    assert row["bic"] == pytest.approx(res.best_.bic(rep), rel=1e-10)
    assert row["aic"] == pytest.approx(res.best_.aic(rep), rel=1e-10)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"family": "poisson", "covariance_types": ["full"]}, ValueError, "poisson family has no covariance types"),
    ({"family": "banana"}, ValueError, "family must be one of"),
    ({"family": "poisson", "covariance_type": "full"}, TypeError, "'covariance_type' is set by select"),
    ({"family": "poisson", "bogus": 1}, TypeError, "bogus"),
    ({"family": "poisson", "criterion": "xyz"}, ValueError, "criterion must be one of"),
    ({"family": "poisson", "n_components": []}, ValueError, "at least one integer"),
    ({"family": "poisson", "tol": -1.0}, ValueError, "tol"),
    ({"family": "poisson", "cell_callback": 3}, TypeError, "cell_callback must be callable"),
    ({"family": "student_t", "covariance_types": ["banana"]}, ValueError, "banana"),
])
def test_usage_errors(kwargs, exc, match):
    X, _ = _poisson(np.random.default_rng(0), 50)
    with pytest.raises(exc, match=match):
        emix.select(X, **{"n_components": [1, 2], **kwargs})


def test_gaussian_family_is_the_gaussian_grid():
    from emix.datasets import load_faithful

    X, _ = load_faithful()
    kw = dict(n_components=range(1, 4), covariance_types=["EII", "VVV", "full"], random_state=0)
    a = emix.select(X, **kw)
    b = emix.select(X, family="gaussian", **kw)
    assert a.rows == b.rows and a.best_params_ == b.best_params_
    assert "family" not in a.rows[0] and "family" not in a.to_frame().columns
    assert type(b.best_) is emix.GaussianMixture
    np.testing.assert_array_equal(a.best_.means_, b.best_.means_)
