"""``emix --family``: fit/predict/select/score/sample/info/plot/report for the
Student-t, Poisson, Bernoulli, categorical and mixed families through
``emix.cli.main(argv)``, on CSV and Parquet files with text, boolean and
categorical columns; the saved model against the library; usage errors; the
family plots against independent computations."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import emix
from emix import plotting as P
from emix._files import raw_frame, read_table
from emix.testing import read_csv_rows as read_csv
from emix.testing import run_cli as run

pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names")

N = 240


@pytest.fixture(scope="module")
def frame():
    """Two latent groups: text answers, a category, counts, a measurement."""
    rng = np.random.default_rng(7)
    z = rng.integers(0, 2, N)
    df = pd.DataFrame({
        "id": np.arange(N),
        "smoker": np.where(rng.random(N) < np.where(z, 0.85, 0.15), "yes", "no").astype(object),
        "diet": np.array(["veg", "meat", "mixed"])[np.where(z, rng.choice(3, N, p=[.7, .1, .2]),
                                                            rng.choice(3, N, p=[.1, .7, .2]))],
        "sport": np.where(rng.random(N) < np.where(z, 0.7, 0.2), "often", "never").astype(object),
        "visits": rng.poisson(np.where(z, 1.0, 6.0)),
        "age": rng.normal(np.where(z, 30.0, 55.0), 5.0),
    })
    df.loc[[3, 17], "smoker"] = None  # missing answers (marginalized)
    return df


@pytest.fixture(scope="module")
def files(frame, tmp_path_factory):
    d = tmp_path_factory.mktemp("fam")
    frame.to_csv(d / "people.csv", index=False)
    pq = frame.copy()
    pq["diet"] = pd.Categorical(pq["diet"], categories=["veg", "meat", "mixed", "fish"])  # 'fish' unused
    pq["active"] = np.random.default_rng(1).random(N) < 0.5
    pq.to_parquet(d / "people.parquet")
    return {"csv": d / "people.csv", "parquet": d / "people.parquet", "dir": d, "pq_frame": pq}


def answers(frame, cols=("smoker", "diet", "sport")):
    """The table as the library takes it (None for missing)."""
    return frame[list(cols)].astype(object).where(frame[list(cols)].notna(), None)


# ------------------------------------------------------------ readers
def test_raw_frame_keeps_text_missing_bool_and_categories(files):
    t = read_table(files["parquet"])
    X, names, w = raw_frame(t, ["smoker", "diet", "active", "visits"])
    assert names == ["smoker", "diet", "active", "visits"] and w is None
    assert pd.isna(X["smoker"].iloc[3]) and X["smoker"].iloc[0] in ("yes", "no")
    assert list(X["diet"].cat.categories) == ["veg", "meat", "mixed", "fish"]
    assert X["active"].dtype == bool
    assert X["visits"].dtype.kind == "f"  # Parquet ints are read as floats, as for Gaussian fits
    t = read_table(files["csv"])
    X, _, _ = raw_frame(t, ["smoker", "visits"])
    assert X["smoker"].isna().sum() == 2 and X["visits"].dtype == np.int64


# --------------------------------------------------------- categorical
def test_categorical_fit_predict_equal_the_library(files, frame, tmp_path, capsys):
    out = tmp_path / "lca.emix"
    code, stdout, err = run(["fit", files["csv"], "-k", 2, "--family", "categorical", "--columns",
                             "smoker,diet,sport", "--seed", 0, "--n-init", 3, "-o", out], capsys)
    assert code == 0, err
    assert "family 'categorical'" in stdout and "diet = veg" in stdout and "smoker = yes" in stdout
    cli_model = emix.load(out)
    lib = emix.MixtureModel(2, family="categorical", random_state=0, n_init=3).fit(answers(frame))
    np.testing.assert_allclose(cli_model.probabilities_, lib.probabilities_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cli_model.weights_, lib.weights_, rtol=0, atol=1e-12)
    assert cli_model.encoding_ == [["no", "yes"], ["meat", "mixed", "veg"], ["never", "often"]]
    pred = tmp_path / "pred.csv"
    code, _, err = run(["predict", out, files["csv"], "-a", "--log-likelihood", "-o", pred], capsys)
    assert code == 0, err
    head, rows = read_csv(pred)
    assert head == list(frame.columns) + ["label", "probability", "p0", "p1", "log_density"]
    labels = np.array([int(r[head.index("label")]) for r in rows])
    np.testing.assert_array_equal(labels, lib.predict(answers(frame)))
    ll = np.array([float(r[head.index("log_density")]) for r in rows])
    np.testing.assert_allclose(ll, lib.score_samples(answers(frame)), rtol=1e-12)
    assert rows[3][head.index("smoker")] == ""  # missing answers pass through


def test_categorical_parquet_declared_categories_and_bool(files, tmp_path, capsys):
    out = tmp_path / "pq.emix"
    code, stdout, err = run(["fit", files["parquet"], "-k", 2, "--family", "categorical", "--columns",
                             "diet,active,sport", "--seed", 0, "--pseudo-count", 1, "-o", out], capsys)
    assert code == 0, err
    m = emix.load(out)
    assert m.encoding_[0] == ["veg", "meat", "mixed", "fish"]  # declared order, unused category kept
    assert m.encoding_[1] == [False, True]
    assert m.family_.pseudo_count == 1.0
    assert np.all(m.probabilities_[:, 0, 3] > 0)  # the pseudo-count keeps 'fish' above 0
    assert "diet = fish" in stdout and "active = True" in stdout
    code, out_json, err = run(["info", out, "--json"], capsys)
    info = json.loads(out_json)
    assert info["family"] == "categorical" and np.shape(info["parameters"]["probabilities"]) == (2, 3, 4)
    assert info["encoding"][1] == [False, True]


# ------------------------------------------------------------- bernoulli
def test_bernoulli_info_lists_second_labels(files, frame, tmp_path, capsys):
    out = tmp_path / "b.emix"
    code, _, err = run(["fit", files["csv"], "-k", 2, "--family", "bernoulli", "--columns", "smoker,sport",
                        "--seed", 0, "-q", "-o", out], capsys)
    assert code == 0, err
    code, stdout, _ = run(["info", out], capsys)
    assert code == 0 and "smoker = yes" in stdout and "sport = often" in stdout
    lib = emix.MixtureModel(2, family="bernoulli", random_state=0).fit(answers(frame, ("smoker", "sport")))
    np.testing.assert_allclose(emix.load(out).probabilities_, lib.probabilities_, atol=1e-12)
    code, _, err = run(["fit", files["csv"], "-k", 2, "--family", "bernoulli", "--columns", "diet",
                        "-o", tmp_path / "x.emix"], capsys)
    assert code == 1 and "categorical" in err  # three values: the library's message names the family to use


# --------------------------------------------------------------- poisson
def test_poisson_fit_score_and_errors(files, frame, tmp_path, capsys):
    out = tmp_path / "p.emix"
    code, stdout, err = run(["fit", files["csv"], "-k", 2, "--family", "poisson", "--columns", "visits",
                             "--seed", 0, "-o", out], capsys)
    assert code == 0, err
    assert "rates (mean count per component)" in stdout and "rate visits" in stdout
    lib = emix.MixtureModel(2, family="poisson", random_state=0).fit(frame[["visits"]].to_numpy(float))
    m = emix.load(out)
    np.testing.assert_allclose(m.rates_, lib.rates_, rtol=1e-12)
    code, out_json, _ = run(["score", out, files["csv"], "--json"], capsys)
    s = json.loads(out_json)
    X = frame[["visits"]].to_numpy(float)
    # oracle: the mixture log-likelihood from scipy's Poisson pmf
    dens = sum(w * stats.poisson.pmf(X[:, 0], r[0]) for w, r in zip(m.weights_, m.rates_))
    assert s["log_likelihood"] == pytest.approx(np.log(dens).sum(), rel=1e-10)
    neg = tmp_path / "neg.csv"
    neg.write_text("c\n1\n2\n-3\n4\n")
    code, _, err = run(["fit", neg, "-k", 1, "--family", "poisson", "-o", tmp_path / "n.emix"], capsys)
    assert code == 1 and "Negative values" in err and "Traceback" not in err


# ------------------------------------------------------------- student-t
def test_student_t_dof_modes_and_outlier_plot(files, frame, tmp_path, capsys):
    out = tmp_path / "t.emix"
    code, stdout, err = run(["fit", files["csv"], "-k", 2, "--family", "student_t", "--columns", "age,visits",
                             "--dof", "shared", "--covariance", "diag", "--seed", 0, "-o", out], capsys)
    assert code == 0, err
    assert "dof shared" in stdout and "scale 'diag'" in stdout and "dof" in stdout.splitlines()[-3]
    m = emix.load(out)
    assert m.dof_[0] == m.dof_[1]
    lib = emix.StudentTMixture(2, covariance_type="diag", dof="shared", random_state=0).fit(
        frame[["age", "visits"]].to_numpy(float))
    np.testing.assert_allclose(m.means_, lib.means_, rtol=1e-10)
    fixed = tmp_path / "t4.emix"
    assert run(["fit", files["csv"], "-k", 2, "--family", "student_t", "--columns", "age,visits", "--dof", 4,
                "-q", "--seed", 0, "-o", fixed], capsys)[0] == 0
    np.testing.assert_array_equal(emix.load(fixed).dof_, [4.0, 4.0])
    png = tmp_path / "o.png"
    code, _, err = run(["plot", out, files["csv"], "-o", png], capsys)  # default kind: outliers
    assert code == 0 and png.read_bytes().startswith(b"\x89PNG"), err


# ----------------------------------------------------------------- mixed
def test_mixed_auto_with_family_map(files, frame, tmp_path, capsys):
    out = tmp_path / "mix.emix"
    code, stdout, err = run(["fit", files["csv"], "-k", 2, "--family", "auto", "--exclude", "id",
                             "--family-map", "visits=poisson", "--seed", 0, "-o", out], capsys)
    assert code == 0, err
    m = emix.load(out)
    assert dict(m.family_.groups) == {"categorical": (0, 1, 2), "poisson": (3,), "gaussian": (4,)}
    for word in ("family 'mixed'", "rate visits", "mean age", "diet = veg"):
        assert word in stdout
    lib = emix.MixtureModel(2, family={"smoker": "auto", "diet": "auto", "sport": "auto", "visits": "poisson",
                                       "age": "auto"}, random_state=0)
    table = frame.drop(columns="id").astype({"smoker": object})
    table["smoker"] = table["smoker"].where(table["smoker"].notna(), None)
    lib.fit(table)
    np.testing.assert_allclose(m.poisson_rates_, lib.poisson_rates_, rtol=1e-10)
    pred = tmp_path / "p.csv"
    assert run(["predict", out, files["csv"], "-o", pred], capsys)[0] == 0
    head, rows = read_csv(pred)
    np.testing.assert_array_equal([int(r[head.index("label")]) for r in rows], lib.predict(table))
    code, sample, err = run(["sample", out, "-n", 50, "--seed", 3], capsys)
    assert code == 0, err
    head = sample.splitlines()[0].split(",")
    assert head == ["smoker", "diet", "sport", "visits", "age", "component"]
    assert {r.split(",")[1] for r in sample.splitlines()[1:]} <= {"veg", "meat", "mixed"}


def test_mixed_parquet_auto_reads_bool_and_category_as_categorical(files, tmp_path, capsys):
    out = tmp_path / "m.emix"
    code, _, err = run(["fit", files["parquet"], "-k", 2, "--family", "mixed", "--columns",
                        "diet,active,age", "--seed", 0, "-q", "-o", out], capsys)
    assert code == 0, err
    assert dict(emix.load(out).family_.groups) == {"categorical": (0, 1), "gaussian": (2,)}


# ---------------------------------------------------------------- select
def test_select_categorical_table_equals_library(files, frame, tmp_path, capsys):
    table = tmp_path / "grid.csv"
    model = tmp_path / "best.emix"
    code, stdout, err = run(["select", files["csv"], "-k", "1..2", "--family", "categorical", "--columns",
                             "smoker,diet,sport", "--seed", 0, "--table", table, "-o", model], capsys)
    assert code == 0, err
    assert "chosen: K=" in stdout and "categorical" in stdout
    res = emix.select(answers(frame), n_components=[1, 2], family="categorical", random_state=0)
    head, rows = read_csv(table)
    np.testing.assert_allclose([float(r[head.index("bic")]) for r in rows], [r["bic"] for r in res.rows],
                               rtol=1e-10)
    assert emix.load(model).n_components == res.best_params_["n_components"]


def test_select_student_t_covariance_grid(files, capsys):
    code, stdout, err = run(["select", files["csv"], "-k", "1..2", "--family", "student_t", "--columns",
                             "age,visits", "--covariance", "full,spherical", "--seed", 0], capsys)
    assert code == 0, err
    header = next(ln for ln in stdout.splitlines() if ln.strip().startswith("K")).split()
    assert header == ["K", "full", "spherical"]


# ---------------------------------------------------------------- report
@pytest.mark.parametrize("family, columns, figures", [
    ("categorical", "smoker,diet,sport", {"probabilities", "criterion", "convergence"}),
    ("poisson", "visits", {"rates", "criterion", "convergence"}),
    ("student_t", "age,visits", {"outliers", "criterion", "convergence"}),
    ("mixed", "smoker,diet,visits,age", {"probabilities", "criterion", "convergence"}),
])
def test_report_per_family(files, tmp_path, capsys, family, columns, figures):
    out = tmp_path / "r.html"
    extra = ["--covariance", "full"] if family == "student_t" else []
    code, _, err = run(["report", files["csv"], "-k", "1..2", "--family", family, "--columns", columns,
                        "--seed", 0, "-q", "-o", out, *extra], capsys)
    assert code == 0, err
    text = out.read_text()
    assert set(re.findall(r'<figure id="plot-([a-z]+)"', text)) == figures
    assert f"family '{family}'" in text
    if family in ("categorical", "mixed"):
        assert "Class-conditional probabilities" in text and "diet = veg" in text
    for sec in ("data", "selection", "model", "plots", "reproduce"):
        assert f'<section id="{sec}">' in text


def test_report_on_a_saved_family_model(files, tmp_path, capsys):
    model = tmp_path / "p.emix"
    assert run(["fit", files["csv"], "-k", 2, "--family", "poisson", "--columns", "visits", "-q", "--seed", 0,
                "-o", model], capsys)[0] == 0
    out = tmp_path / "r.html"
    code, _, err = run(["report", files["csv"], "--model", model, "-o", out], capsys)
    assert code == 0, err
    assert 'id="plot-rates"' in out.read_text()


# ---------------------------------------------------------- usage errors
@pytest.mark.parametrize("argv, words", [
    (["--family", "nope"], "invalid choice"),
    (["--family", "poisson", "--dof", "shared"], "--dof is for --family student_t"),
    (["--pseudo-count", "1"], "--family"),
    (["--family", "categorical", "--noise", "box"], "gaussian only"),
    (["--family", "categorical", "--init", "hierarchical"], "gaussian only"),
    (["--family", "poisson", "--family-map", "a=poisson"], "--family-map is for --family mixed"),
    (["--family", "mixed", "--family-map", "a=weird"], "unknown family"),
    (["--family", "poisson", "--covariance", "diag"], "--covariance"),
    (["--family", "student_t", "--dof", "-1"], "finite number > 0"),
    (["--family", "poisson", "--chunk-rows", "10"], "gaussian only"),
])
def test_usage_errors_exit_2(files, tmp_path, capsys, argv, words):
    code, _, err = run(["fit", files["csv"], "-k", 2, "-o", tmp_path / "x.emix", *argv], capsys)
    assert code == 2 and words in err, err
    assert not (tmp_path / "x.emix").exists()


def test_data_errors_exit_1(files, tmp_path, capsys):
    code, _, err = run(["fit", files["csv"], "-k", 2, "--family", "mixed", "--family-map", "nosuch=poisson",
                        "-o", tmp_path / "x.emix"], capsys)
    assert code == 1 and "nosuch" in err
    gm = tmp_path / "g.emix"
    assert run(["fit", files["csv"], "-k", 2, "--columns", "age,visits", "-q", "-o", gm], capsys)[0] == 0
    code, _, err = run(["plot", gm, "-o", tmp_path / "x.png", "--kind", "probabilities"], capsys)
    assert code == 1 and "other families" in err
    code, _, err = run(["report", files["csv"], "--model", gm, "--family", "poisson", "-o", tmp_path / "r.html"],
                       capsys)
    assert code == 2 and "--model" in err


def test_gaussian_default_unchanged(files, tmp_path, capsys):
    a, b = tmp_path / "a.emix", tmp_path / "b.emix"
    out_a = run(["fit", files["csv"], "-k", 2, "--columns", "age,visits", "--seed", 0, "-o", a], capsys)
    out_b = run(["fit", files["csv"], "-k", 2, "--columns", "age,visits", "--seed", 0, "--family", "gaussian",
                 "-o", b], capsys)
    assert out_a[0] == out_b[0] == 0 and out_a[1] == out_b[1]
    ma, mb = emix.load(a), emix.load(b)
    assert type(ma) is emix.GaussianMixture and ma.covariance_type == "full"
    np.testing.assert_array_equal(ma.means_, mb.means_)
    np.testing.assert_array_equal(ma.covariances_, mb.covariances_)


# ------------------------------------------------------------------ plots
def test_plot_class_probabilities_cells(frame):
    m = emix.MixtureModel(3, family="categorical", random_state=0).fit(answers(frame))
    ax = P.plot_class_probabilities(m, ax=P.new_figure().add_subplot(1, 1, 1))
    M = np.asarray(ax.images[0].get_array())
    assert M.shape == (2 + 3 + 2, 3)  # one row per category of each column, one column per class
    np.testing.assert_allclose(M[2:5], m.probabilities_[:, 1, :3].T)
    assert [t.get_text() for t in ax.get_yticklabels()][:3] == ["smoker = no", "smoker = yes", "diet = meat"]
    assert len(ax.texts) == M.size  # annotated cells
    b = emix.MixtureModel(2, family="bernoulli", random_state=0).fit(answers(frame, ("smoker", "sport")))
    ax = P.plot_class_probabilities(b, ax=P.new_figure().add_subplot(1, 1, 1))
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), b.probabilities_.T)
    with pytest.raises(ValueError, match="categorical or bernoulli"):
        P.plot_class_probabilities(emix.MixtureModel(2, family="poisson").fit(frame[["visits"]].to_numpy(float)))


def test_plot_rates_bars(frame):
    X = frame[["visits"]].assign(v2=frame["visits"] * 2).to_numpy(float)
    m = emix.MixtureModel(3, family="poisson", random_state=0).fit(X)
    ax = P.plot_rates(m, ax=P.new_figure().add_subplot(1, 1, 1))
    assert len(ax.patches) == 3 * 2
    heights = np.array([p.get_height() for p in ax.patches]).reshape(3, 2)
    np.testing.assert_allclose(heights, m.rates_)


def test_plot_outliers_colours_are_scale_weights():
    rng = np.random.default_rng(3)
    X = np.vstack([rng.standard_t(4, (150, 2)), rng.standard_t(4, (150, 2)) + [9.0, 0.0], [[40.0, -30.0]]])
    m = emix.MixtureModel(2, family="student_t", random_state=0).fit(X)
    ax = P.plot_outliers(m, X, ax=P.new_figure().add_subplot(1, 1, 1))
    sc = ax.collections[0]
    assert sc.get_offsets().shape == (len(X), 2)
    # oracle: responsibilities from scipy's multivariate t, u_nk = (nu + D) / (nu + Mahalanobis^2)
    logp = np.column_stack([np.log(w) + stats.multivariate_t(mu, S, df=nu).logpdf(X)
                            for w, mu, S, nu in zip(m.weights_, m.means_, m.covariances_, m.dof_)])
    r = np.exp(logp - logp.max(axis=1, keepdims=True))
    r /= r.sum(axis=1, keepdims=True)
    maha = np.column_stack([np.einsum("ni,ij,nj->n", X - mu, np.linalg.inv(S), X - mu)
                            for mu, S in zip(m.means_, m.covariances_)])
    u = (r * (m.dof_ + 2) / (m.dof_ + maha)).sum(axis=1)
    np.testing.assert_allclose(np.sort(np.asarray(sc.get_array())), np.sort(u), rtol=1e-8)
    assert u[-1] < 0.05  # the far point is down-weighted
    with pytest.raises(ValueError, match="Student-t"):
        P.scale_weights(emix.MixtureModel(1, family="poisson").fit(np.abs(X).round()), X)


def test_categorical_reproduces_polca_carcinoma(tmp_path, capsys):
    """poLCA's published 2-class log-likelihood for the carcinoma data
    (tests/data/README.md): -317.2568."""
    from pathlib import Path

    lines = (Path(__file__).parent / "data" / "polca_carcinoma.csv").read_text().splitlines()
    data = tmp_path / "carcinoma.csv"
    data.write_text("\n".join(ln for ln in lines if not ln.startswith("#")) + "\n")  # the reader has no comments
    code, out, err = run(["score", _fit(data, tmp_path, capsys), data, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["log_likelihood"] == pytest.approx(-317.2568, abs=1e-3)


def _fit(data, tmp_path, capsys):
    model = tmp_path / "carcinoma.emix"
    code, _, err = run(["fit", data, "-k", 2, "--family", "categorical", "--n-init", 10, "--tol", 1e-8,
                        "--max-iter", 2000, "--seed", 0, "-q", "-o", model], capsys)
    assert code == 0, err
    return model
