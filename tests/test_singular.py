"""Singular fits (emix._singular): components at the reg_covar floor or with
too few points are dropped per restart, warned about in a single fit, and
recorded but not ranked by select, the command line and the report.

The oracle for "singular" is computed here independently of the rule's
code: numpy eigenvalues of the fitted covariances against ``reg_covar``, and
effective sizes ``weights_ * n``. The data sets with the published spurious
optima: Old Faithful (R datasets::faithful, shipped), iris (scikit-learn),
MASS geyser (durations recorded as exactly 2 and 4 minutes; vendored in tests/data).
"""

import math
import warnings

from pathlib import Path

import numpy as np
import pytest

import emix
from emix import _singular as S
from emix.datasets import load_faithful
from emix.selection import cell_seed

REG = 1e-6


def _eigmin(model):
    """Smallest eigenvalue of each component's covariance (numpy oracle)."""
    cov = model.covariances_
    K, D = model.means_.shape
    if cov.ndim == 1:
        return cov.copy()
    if cov.ndim == 2 and cov.shape == (K, D) and model.covariance_type == "diag":
        return cov.min(axis=1)
    if cov.ndim == 2:
        return np.full(K, np.linalg.eigvalsh(cov)[0])
    return np.linalg.eigvalsh(cov)[:, 0]


def _clearly_regular(model, n):
    """Issue 14's criterion: every component with more than D + 1 effective
    points and its smallest eigenvalue at least 1000 x reg_covar."""
    D = model.means_.shape[1]
    return bool(np.all(model.weights_ * n > D + 1) and np.all(_eigmin(model) >= 1000 * model.reg_covar))


@pytest.fixture(scope="module")
def faithful():
    return load_faithful()[0]


@pytest.fixture(scope="module")
def iris():
    from sklearn.datasets import load_iris

    return load_iris().data


# ------------------------------------------------------------------ the rule
def _two_components(var_small, scale=1.0, reg=REG):
    """Two 2-D components: a broad one and one with ``var_small`` along y."""
    means = np.array([[0.0, 0.0], [3.0, 1.0]]) * scale
    cov = np.array([np.diag([1.0, 4.0]), np.diag([0.5, var_small / scale**2])]) * scale**2
    return dict(weights=np.array([0.6, 0.4]), means=means, covariances=cov, covariance_type="full", reg_covar=reg)


def test_floor_component_is_singular_and_a_real_one_is_not():
    assert "collapsed onto the reg_covar floor" in S.covariance_reason(**_two_components(REG))
    assert "component 1" in S.covariance_reason(**_two_components(REG))
    assert S.covariance_reason(**_two_components(999 * REG)) is not None
    assert S.covariance_reason(**_two_components(1001 * REG)) is None  # above 1000 x reg_covar
    assert S.covariance_reason(**_two_components(0.05)) is None


def test_rule_does_not_depend_on_units_when_reg_covar_follows_them():
    for scale in (1e-3, 1.0, 1e4):
        for var, singular in ((REG, True), (0.05, False)):
            args = _two_components(var, scale=1.0)
            args["means"] = args["means"] * scale
            args["covariances"] = args["covariances"] * scale**2
            args["reg_covar"] = REG * scale**2
            assert (S.covariance_reason(**args) is not None) == singular, (scale, var)


def test_small_units_are_not_singular_throughout():
    # data measured in small units: every variance is within 1000 reg_covar,
    # but none is thin next to the data (the relative clause)
    args = _two_components(0.05, scale=1e-2)
    assert np.linalg.eigvalsh(args["covariances"]).min() < 1000 * REG
    assert S.covariance_reason(**args) is None


def test_tight_cluster_of_widely_separated_data_is_not_singular():
    args = dict(weights=np.array([0.5, 0.5]), means=np.array([[0.0], [1e4]]),
                covariances=np.array([[[0.01]], [[0.01]]]), covariance_type="full", reg_covar=REG)
    assert S.covariance_reason(**args) is None  # 1e-10 of the data, but 1e4 x reg_covar


def test_numerically_singular_without_reg_covar():
    args = _two_components(1e-14)
    args["reg_covar"] = 0.0
    assert "numerically singular" in S.covariance_reason(**args)
    args = _two_components(1e-6)
    args["reg_covar"] = 0.0
    assert S.covariance_reason(**args) is None


@pytest.mark.parametrize("ctype", ["tied", "diag", "spherical", "VVI", "EEE", "VEV"])
def test_every_storage_is_read(ctype):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (60, 2)), np.column_stack([rng.normal(5, 1, 30), np.full(30, 2.0)])])
    gm = emix.GaussianMixture(2, covariance_type=ctype, random_state=0, means_init=[[0, 0], [5, 2]]).fit(X)
    reason = S.gaussian_reason(gm.weights_, gm.means_, gm.covariances_, ctype, REG, X.shape[0])
    # the oracle: the second component sits on the line y = 2 unless its
    # covariance is shared or spherical (then the other component's spread counts)
    at_floor = bool(np.any(_eigmin(gm) <= 1000 * REG))
    assert (reason is not None) == at_floor, (ctype, reason, _eigmin(gm))
    # (VEV: the shape is shared, so the line cannot thin one component alone)
    assert at_floor == (ctype in ("diag", "VVI"))


def test_minimum_sizes():
    assert S.min_component_size("full", 4) == 5
    assert S.min_component_size("VVV", 2) == 3 and S.min_component_size("EEV", 3) == 4
    assert S.min_component_size("VVI", 4) == 2 and S.min_component_size("diag", 9) == 2
    assert S.min_component_size("spherical", 9) == 2 and S.min_component_size("V", 1) == 2
    assert S.min_component_size("EEE", 4) == 1 and S.min_component_size("tied", 4) == 1
    assert S.min_component_size("EII", 4) == 1 and S.min_component_size("E", 1) == 1
    w = np.array([0.5, 0.49, 0.01])
    assert "component 2 has 1 effective points" in S.size_reason(w, 100, 2.0)
    assert S.size_reason(w, 100, 1.0) is None and S.size_reason(w, None, 5.0) is None


# ----------------------------------------------------------- inside one fit
def test_restart_that_ends_singular_is_dropped(faithful):
    """Issue 14: on Old Faithful a K = 5 VVI restart from k-means ends with 14
    equal waiting times in one component (variance = reg_covar); with five
    restarts that one is dropped and a regular restart kept."""
    kw = dict(covariance_type="VVI", init_params="kmeans", tol=1e-5, max_iter=1000,
              random_state=cell_seed(0, 5, "VVI"))
    with pytest.warns(emix.DegenerateRestartWarning, match="singular fit, component .* reg_covar floor"):
        gm = emix.GaussianMixture(5, n_init=5, **kw).fit(faithful)
    assert _clearly_regular(gm, 272)
    assert gm._fit_singular is None


def test_single_fit_that_ends_singular_warns():
    rng = np.random.default_rng(1)
    X = np.concatenate([np.zeros(12), rng.normal(5.0, 1.0, 80)])[:, None]
    gm = emix.GaussianMixture(2, covariance_type="V", means_init=[[0.0], [5.0]], random_state=0)
    with pytest.warns(emix.SingularFitWarning, match="component 0 collapsed onto the reg_covar floor"):
        gm.fit(X)
    assert gm.covariances_.ravel()[0] == pytest.approx(REG, rel=1e-6)  # the oracle: variance at the floor
    assert emix.SingularFitWarning.__mro__[1] is UserWarning


def test_regular_fit_is_silent(faithful):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gm = emix.GaussianMixture(3, covariance_type="tied", random_state=0).fit(faithful)
    assert gm._fit_singular is None and _clearly_regular(gm, 272)


def test_student_t_uses_the_covariance_rule():
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(0, 1, (80, 2)), np.column_stack([rng.normal(6, 1, 20), np.full(20, 3.0)])])
    m = emix.StudentTMixture(2, covariance_type="diag", dof=5.0, random_state=0, max_iter=300)
    with pytest.warns(emix.SingularFitWarning, match="reg_covar floor"):
        m.fit(X)
    assert np.min(m.covariances_) <= 1000 * REG  # oracle
    family = m.family_
    assert family.singular_reason({"means": m.means_, "covariances": m.covariances_}, m.weights_, 100) is not None


def test_discrete_families_only_flag_empty_components():
    from emix.families import get_family

    pois = get_family("poisson")
    comp = {"rates": np.array([[1.0], [4.0]])}
    assert pois.singular_reason(comp, np.array([0.995, 0.005]), 100) is not None  # half a point
    assert pois.singular_reason(comp, np.array([0.9, 0.1]), 100) is None
    # latent classes: probabilities of exactly 0 and 1 are legitimate estimates
    X = np.array([[0, 0, 0]] * 30 + [[1, 1, 1]] * 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", emix.SingularFitWarning)
        m = emix.MixtureModel(2, family="bernoulli", random_state=0).fit(X)
    assert set(np.round(m.probabilities_.ravel(), 6)) <= {0.0, 1.0}
    assert m._fit_singular is None


def test_mixed_family_names_the_member():
    import pandas as pd

    rng = np.random.default_rng(3)
    df = pd.DataFrame({"x": np.concatenate([np.full(40, 2.0), rng.normal(8, 1, 60)]),
                       "c": rng.choice(["a", "b"], 100)})
    m = emix.MixtureModel(2, family={"x": "gaussian", "c": "categorical"}, random_state=0, max_iter=300)
    with pytest.warns(emix.SingularFitWarning, match="gaussian columns: component"):
        m.fit(df)
    assert np.min(m.gaussian_covariances_) == pytest.approx(REG)  # oracle: the spike's variance is the floor


# ------------------------------------------------------------------ select
def test_three_rows_is_not_three_singletons():
    """Issue 11: select on three rows returned K = 3, one point per component."""
    X = np.array([[1.0, 2.0], [3.0, 1.5], [2.0, 5.0]])
    res = emix.select(X, random_state=0)
    assert res.best_params_["n_components"] < 3
    k3 = [r for r in res.rows if r["n_components"] == 3 and r["error"] is None]
    assert k3 and all(r["singular"] for r in k3)
    Ks, models, values = res.table()
    for r in k3:
        assert math.isnan(values[Ks.index(3), models.index(r["covariance_type"])])
        assert np.isfinite(r["bic"])  # the numbers stay in the rows
    with pytest.raises(ValueError, match="singular"):
        emix.select(X, n_components=[3], random_state=0)


def test_cli_marks_singular_cells(tmp_path, capsys):
    from emix.cli import main

    p = tmp_path / "three.csv"
    p.write_text("a,b\n1.0,2.0\n3.0,1.5\n2.0,5.0\n")
    table = tmp_path / "t.csv"
    assert main(["select", str(p), "--seed", "0", "--table", str(table)]) == 0
    out = capsys.readouterr().out
    assert "s singular" in out and "  s K=" in out
    grid_k3 = [ln.split() for ln in out.splitlines() if ln.startswith("   3 ")]
    assert grid_k3 and all(cell == "s" for line in grid_k3 for cell in line[1:])
    chosen = [ln for ln in out.splitlines() if ln.startswith("chosen:")][0]
    assert "K=3" not in chosen
    import pandas as pd

    t = pd.read_csv(table)
    assert "singular" in t.columns and t.loc[t.n_components == 3, "singular"].notna().any()


@pytest.fixture(scope="module")
def geyser():
    # MASS::geyser's waiting and duration columns, vendored (tests/data/README.md)
    return np.loadtxt(Path(__file__).parent / "data" / "mass_geyser.csv", delimiter=",", skiprows=1)


@pytest.mark.slow
def test_geyser_choice_is_not_at_the_floor(geyser, tmp_path):
    """Issue 11: K = 9 VVI with components at the floor (sd 0.001) was chosen."""
    res = emix.select(geyser, random_state=0, n_jobs=2)
    assert _clearly_regular(res.best_, geyser.shape[0]), res.best_params_
    assert not [r for r in res.rows if r["n_components"] == res.best_params_["n_components"]
                and r["covariance_type"] == res.best_params_["covariance_type"]][0]["singular"]
    singular = [r for r in res.rows if r["singular"]]
    assert singular and all(isinstance(r["singular"], str) for r in singular)
    # the report names them
    from emix.report import build_report

    html = build_report(res.best_, geyser, feature_names=["waiting", "duration"], selection_rows=res.rows,
                        criterion="bic", best=res.best_params_)
    assert f"{len(singular)} fit(s) singular" in html and singular[0]["singular"][:40] in html


@pytest.mark.slow
@pytest.mark.parametrize("n_init", [1, 5])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name, expected", [("faithful", (3, "EEE")), ("iris", (2, "VEV"))])
def test_more_restarts_never_choose_a_singular_model(name, expected, n_init, seed, faithful, iris):
    """Issue 14: over the 14 models x K = 1..9 the choice is mclust's (EEE, 3
    on Old Faithful; VEV, 2 on iris) or a clearly regular model with a better
    BIC, never one with a component at the floor."""
    X = faithful if name == "faithful" else iris
    res = emix.select(X, n_components=range(1, 10), n_init=n_init, random_state=seed, n_jobs=2)
    got = (res.best_params_["n_components"], res.best_params_["covariance_type"])
    assert got == expected or _clearly_regular(res.best_, X.shape[0]), got
    assert np.all(_eigmin(res.best_) > 1000 * REG)


@pytest.mark.slow
def test_kmeans_restarts_on_faithful_do_not_choose_the_floor(faithful):
    """The reproduction of issue 14: k-means starts, five restarts per cell,
    chose K = 5 VVI with a 14-point component at variance 1e-6 before."""
    res = emix.select(faithful, n_init=5, random_state=0, init_params="kmeans", n_jobs=2)
    assert _clearly_regular(res.best_, 272)
    assert res.best_params_ == {"n_components": 3, "covariance_type": "EEE"}
