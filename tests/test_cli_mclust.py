"""The command line's mclust options (--noise, --prior, --equal-proportions)
for fit/select/report and predict on a noise model, through
emix.cli.main(argv) and checked against the library."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import emix
from emix.cli import main
from emix.datasets import load_faithful
from emix.testing import read_csv_rows as read_csv
from emix.testing import run_cli as run

pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names")


@pytest.fixture(scope="module")
def X():
    return load_faithful()[0]


@pytest.fixture(scope="module")
def noise_model(data_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("noise") / "n.emix"
    assert main(["fit", str(data_csv), "-k", "2", "--seed", "0", "--noise", "box", "-o", str(out), "-q"]) == 0
    return out


# ------------------------------------------------------------------- fit
def test_fit_noise_box_is_the_library_fit(noise_model, X):
    ref = emix.GaussianMixture(2, random_state=0, noise="box").fit(X)
    m = emix.load(noise_model)
    assert m.noise == "box"
    np.testing.assert_allclose(m.means_, ref.means_, rtol=1e-10)
    assert m.noise_weight_ == pytest.approx(ref.noise_weight_, rel=1e-10)
    # the bounding box of Old Faithful, computed here independently
    span = X.max(axis=0) - X.min(axis=0)
    assert m.noise_log_volume_ == pytest.approx(math.log(span[0] * span[1]), rel=1e-12)
    assert 0 < m.noise_weight_ < 0.5


def test_fit_noise_hypervolume(data_csv, tmp_path, X, capsys):
    out = tmp_path / "m.emix"
    code, stdout, err = run(["fit", data_csv, "-k", 2, "--seed", 0, "--noise", "2e3", "-o", out], capsys)
    assert code == 0, err
    m = emix.load(out)
    assert m.noise == 2000.0 and m.noise_log_volume_ == pytest.approx(math.log(2000.0), rel=1e-14)
    ref = emix.GaussianMixture(2, random_state=0, noise=2000.0).fit(X)
    np.testing.assert_allclose(m.weights_, ref.weights_, rtol=1e-10)
    assert "noise component weight" in stdout and "label -1" in stdout


def test_fit_noise_box_of_a_huge_volume(tmp_path, capsys):
    """A box whose volume overflows a float (log V ~ 830) is summarized, not
    an OverflowError after the fit."""
    rng = np.random.default_rng(0)
    Z = rng.uniform(0, 1e9, size=(200, 40))
    np.save(tmp_path / "z.npy", Z)
    out = tmp_path / "z.emix"
    code, stdout, err = run(["fit", tmp_path / "z.npy", "-k", 1, "--covariance", "diag", "--noise", "box",
                             "--seed", 0, "-o", out], capsys)
    assert code == 0, err
    logv = float(np.sum(np.log(Z.max(axis=0) - Z.min(axis=0))))
    assert logv > 710
    assert emix.load(out).noise_log_volume_ == pytest.approx(logv, rel=1e-12)
    assert f"hyper-volume exp({logv:.6g})" in stdout


def test_fit_prior_default_and_none(data_csv, tmp_path, X, capsys):
    out = tmp_path / "p.emix"
    code, stdout, err = run(["fit", data_csv, "-k", 3, "--seed", 0, "--prior", "default", "-o", out], capsys)
    assert code == 0, err
    assert "prior 'default'" in stdout
    m = emix.load(out)
    assert m.prior == "default"
    ref = emix.GaussianMixture(3, random_state=0, prior="default").fit(X)
    ml = emix.GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_allclose(m.covariances_, ref.covariances_, rtol=1e-10)
    assert np.max(np.abs(m.covariances_ - ml.covariances_)) > 1e-4  # the prior did something
    # a refit of the loaded model is the library's MAP fit again
    m.fit(X)
    np.testing.assert_allclose(m.covariances_, ref.covariances_, rtol=1e-10)

    out2 = tmp_path / "none.emix"
    assert run(["fit", data_csv, "-k", 3, "--seed", 0, "--prior", "none", "-o", out2, "-q"], capsys)[0] == 0
    m2 = emix.load(out2)
    assert m2.prior is None
    np.testing.assert_allclose(m2.covariances_, ml.covariances_, rtol=1e-10)


def test_fit_equal_proportions(data_csv, tmp_path, X, capsys):
    out = tmp_path / "e.emix"
    code, stdout, err = run(["fit", data_csv, "-k", 3, "--seed", 0, "--equal-proportions", "-o", out], capsys)
    assert code == 0, err
    m = emix.load(out)
    assert m.equal_proportions is True
    np.testing.assert_allclose(m.weights_, np.full(3, 1 / 3), rtol=1e-12)
    ref = emix.GaussianMixture(3, random_state=0, equal_proportions=True).fit(X)
    np.testing.assert_allclose(m.means_, ref.means_, rtol=1e-10)
    assert "equal proportions" in stdout


def test_fit_all_three_together(data_csv, tmp_path, X, capsys):
    out = tmp_path / "all.emix"
    code, _, err = run(["fit", data_csv, "-k", 2, "--seed", 1, "--noise", "box", "--prior", "default",
                        "--equal-proportions", "--covariance", "EEE", "-o", out, "-q"], capsys)
    assert code == 0, err
    m = emix.load(out)
    ref = emix.GaussianMixture(2, covariance_type="EEE", random_state=1, noise="box", prior="default",
                               equal_proportions=True).fit(X)
    np.testing.assert_allclose(m.means_, ref.means_, rtol=1e-10)
    np.testing.assert_allclose(m.weights_, np.full(2, (1 - m.noise_weight_) / 2), rtol=1e-12)


# ---------------------------------------------------------------- select
def test_select_passes_the_options_through(data_csv, tmp_path, X, capsys):
    out, table = tmp_path / "best.emix", tmp_path / "grid.csv"
    code, stdout, err = run(["select", data_csv, "-k", "1..3", "--covariance", "EII,EEE", "--seed", 0,
                             "--noise", "box", "--prior", "default", "--equal-proportions",
                             "-o", out, "--table", table], capsys)
    assert code == 0, err
    ref = emix.select(X, n_components=range(1, 4), covariance_types=["EII", "EEE"], random_state=0,
                      noise="box", prior="default", equal_proportions=True)
    plain = emix.select(X, n_components=range(1, 4), covariance_types=["EII", "EEE"], random_state=0)
    header, rows = read_csv(table)
    got = {(int(r[0]), r[1]): (float(r[header.index("bic")]), int(r[header.index("n_parameters")]))
           for r in rows}
    for r, p in zip(ref.rows, plain.rows):
        bic, n_par = got[(r["n_components"], r["covariance_type"])]
        assert bic == pytest.approx(r["bic"], rel=1e-9)
        # one parameter more for the noise weight, K - 1 fewer for the weights
        assert n_par == p["n_parameters"] + 1 - (r["n_components"] - 1)
        assert bic != pytest.approx(p["bic"], rel=1e-6)
    m = emix.load(out)
    assert m.noise == "box" and m.prior == "default" and m.equal_proportions is True
    assert hasattr(m, "noise_weight_")
    assert "with noise component weight" in stdout


def test_report_selects_with_the_options(data_csv, tmp_path, capsys):
    out = tmp_path / "r.html"
    code, _, err = run(["report", data_csv, "-k", "2..3", "--covariance", "EEE", "--seed", 0,
                        "--noise", "box", "-o", out, "-q"], capsys)
    assert code == 0, err
    assert "--noise box" in out.read_text()  # the command line that produced it


# --------------------------------------------------------------- predict
def test_predict_noise_model_labels_noise_minus_one(noise_model, data_csv, tmp_path, X, capsys):
    out = tmp_path / "p.csv"
    code, _, err = run(["predict", noise_model, data_csv, "-a", "-o", out], capsys)
    assert code == 0, err
    header, rows = read_csv(out)
    assert header == ["eruptions", "waiting", "label", "probability", "p0", "p1", "p_noise"]
    m = emix.load(noise_model)
    expected = m.predict(X)
    labels = np.array([int(r[2]) for r in rows])
    np.testing.assert_array_equal(labels, expected)
    n_noise = int(np.sum(expected == -1))
    assert n_noise > 0  # Old Faithful with a box noise component has outliers
    assert set(labels.tolist()) == {-1, 0, 1}
    vals = np.array([[float(v) for v in r] for r in rows])
    proba = m.predict_proba(X)
    np.testing.assert_allclose(vals[:, 4:7], proba, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(vals[:, 3], proba.max(axis=1), rtol=1e-9)
    np.testing.assert_allclose(vals[labels == -1, 6], vals[labels == -1, 3])  # noise is their best
    assert f"noise (-1): {n_noise}" in err
    counts = np.bincount(expected[expected >= 0], minlength=2)
    assert f"0: {counts[0]}, 1: {counts[1]}" in err


def test_predict_model_without_noise_has_no_noise_column(data_csv, tmp_path, capsys):
    m = tmp_path / "m.emix"
    assert run(["fit", data_csv, "-k", 2, "--seed", 0, "-o", m, "-q"], capsys)[0] == 0
    code, _, err = run(["predict", m, data_csv, "-a", "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    header, rows = read_csv(tmp_path / "p.csv")
    assert header[-3:] == ["probability", "p0", "p1"]
    assert {int(r[2]) for r in rows} == {0, 1} and "noise" not in err


def test_info_and_sample_on_a_noise_model(noise_model, capsys):
    code, stdout, _ = run(["info", noise_model, "--json"], capsys)
    assert code == 0
    info = json.loads(stdout)
    m = emix.load(noise_model)
    assert info["noise_weight"] == m.noise_weight_ and info["noise_log_volume"] == m.noise_log_volume_
    assert info["params"]["noise"] == "box"
    # the library refuses to sample a noise model: a one-line error, exit 1
    code, _, err = run(["sample", noise_model, "-n", 5], capsys)
    assert code == 1
    assert err.startswith("emix: error: sample() is not available") and err.count("\n") == 1


def test_info_json_shows_a_custom_prior(tmp_path, X, capsys):
    from emix.core.prior import ConjugatePrior

    prior = ConjugatePrior(mean=np.array([3.0, 70.0]), shrinkage=0.5, dof=5.0, scale=np.diag([0.5, 30.0]))
    emix.save(emix.GaussianMixture(2, random_state=0, prior=prior).fit(X), tmp_path / "c.emix")
    code, stdout, _ = run(["info", tmp_path / "c.emix", "--json"], capsys)
    assert code == 0
    p = json.loads(stdout)["params"]["prior"]
    assert p == {"mean": [3.0, 70.0], "shrinkage": 0.5, "dof": 5.0, "scale": [[0.5, 0.0], [0.0, 30.0]]}
    code, stdout, _ = run(["info", tmp_path / "c.emix"], capsys)
    assert code == 0 and "conjugate prior (custom)" in stdout


# ---------------------------------------------------------- usage errors
@pytest.mark.parametrize("argv,message", [
    (["fit", "d.csv", "-k", "2", "-o", "m", "--noise", "banana"], "expected 'box' or a hyper-volume"),
    (["fit", "d.csv", "-k", "2", "-o", "m", "--noise", "0"], "must be a finite number > 0, got '0'"),
    (["fit", "d.csv", "-k", "2", "-o", "m", "--noise", "-5"], "must be a finite number > 0, got '-5'"),
    (["fit", "d.csv", "-k", "2", "-o", "m", "--noise", "inf"], "must be a finite number > 0, got 'inf'"),
    (["fit", "d.csv", "-k", "2", "-o", "m", "--noise", "nan"], "must be a finite number > 0, got 'nan'"),
    (["fit", "d.csv", "-k", "2", "-o", "m", "--noise"], "expected one argument"),
    (["fit", "d.csv", "-k", "2", "-o", "m", "--prior", "mclust"], "invalid choice: 'mclust'"),
    (["fit", "d.csv", "-k", "2", "-o", "m", "--equal-proportions", "yes"], "unrecognized arguments: yes"),
    (["select", "d.csv", "--noise", "box,3"], "expected 'box' or a hyper-volume"),
    (["select", "d.csv", "--prior", "Default"], "invalid choice: 'Default'"),
    (["report", "d.csv", "--model", "m.emix", "-o", "r.html", "--noise", "box"],
     "--noise cannot be combined with --model"),
    (["predict", "m.emix", "d.csv", "--noise", "box"], "unrecognized arguments: --noise"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: emix" in err and message in err, err


def test_prior_none_is_fine_out_of_core(tmp_path, X, capsys):
    np.save(tmp_path / "f.npy", X)
    out = tmp_path / "m.emix"
    code, _, err = run(["fit", tmp_path / "f.npy", "-k", 2, "--seed", 0, "--prior", "none",
                        "--chunk-rows", 100, "-o", out, "-q"], capsys)
    assert code == 0, err
    assert emix.load(out).prior is None


@pytest.mark.parametrize("options", [["--noise", "box"], ["--prior", "default"], ["--equal-proportions"],
                                     ["--noise", "box", "--equal-proportions", "--prior", "default"]])
def test_mclust_options_out_of_core_equal_the_in_memory_fit(tmp_path, X, capsys, options):
    """--chunk-rows reads the file in blocks; with fewer rows than the initial
    sample the start is the in-memory one, so the fits agree to rounding."""
    np.save(tmp_path / "f.npy", X)
    a, b = tmp_path / "a.emix", tmp_path / "b.emix"
    code, _, err = run(["fit", tmp_path / "f.npy", "-k", 2, "--seed", 0, *options, "-o", a, "-q"], capsys)
    assert code == 0, err
    code, _, err = run(["fit", tmp_path / "f.npy", "-k", 2, "--seed", 0, *options, "--chunk-rows", 50,
                        "-o", b, "-q"], capsys)
    assert code == 0, err
    ma, mb = emix.load(a), emix.load(b)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(mb, name), getattr(ma, name), rtol=1e-9, atol=1e-9)
    assert mb.n_iter_ == ma.n_iter_
    assert (getattr(mb, "noise_weight_", None) is None) == ("--noise" not in options)
    if "--noise" in options:
        assert mb.noise_weight_ == pytest.approx(ma.noise_weight_, rel=1e-9)
        assert mb.noise_log_volume_ == ma.noise_log_volume_
