"""``emix fit --bayesian`` and the commands on BayesianGaussianMixture model
files (info, score, predict, plot, report), through ``emix.cli.main(argv)``:
the saved model against the library fit with the same options, likelihoods
against scipy, the effective number of components against the planted one,
usage errors."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import emix
from emix.bayesian import EFFECTIVE_WEIGHT_THRESHOLD
from emix.cli import main
from emix.testing import run_cli as run

pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names")

CENTERS = np.array([[0.0, 0.0], [6.0, 6.0], [0.0, 9.0]])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(c, 1.0, (150, 2)) for c in CENTERS])
    X = X * np.array([1.0, 30.0]) + np.array([0.0, 100.0])  # unequal scales, for --scale
    path = tmp_path_factory.mktemp("bayes") / "d.csv"
    np.savetxt(path, X, delimiter=",", header="a,b", comments="")
    return X, path


def mixture_logpdf(X, weights, means, covs):
    """Independent oracle: log sum_k w_k N(x | mu_k, Sigma_k) with scipy."""
    comps = [np.log(w) + stats.multivariate_normal(m, c).logpdf(X) for w, m, c in zip(weights, means, covs)]
    return logsumexp(np.column_stack(comps), axis=1)


@pytest.mark.parametrize("prior", ["dirichlet_process", "dirichlet_distribution"])
def test_fit_equals_library_and_counts_planted_components(data, tmp_path, capsys, prior):
    X, path = data
    out = tmp_path / "m.emix"
    code, text, err = run(["fit", path, "--bayesian", "--weight-prior", prior, "--weight-concentration", 0.01,
                           "-k", 8, "--seed", 1, "--max-iter", 500, "-o", out], capsys)
    assert code == 0, err
    model = emix.load(out)
    assert isinstance(model, emix.BayesianGaussianMixture)
    ref = emix.BayesianGaussianMixture(n_components=8, weight_concentration_prior_type=prior,
                                       weight_concentration_prior=0.01, random_state=1, max_iter=500).fit(X)
    np.testing.assert_allclose(model.weights_, ref.weights_, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(model.means_, ref.means_, rtol=1e-10)
    assert model.lower_bounds_ == pytest.approx(ref.lower_bounds_, rel=1e-12)
    assert model.weight_concentration_prior_type == prior
    assert model.weight_concentration_prior_ == 0.01
    # three planted clusters: three components above the threshold, each near a center
    assert model.n_effective_components_ == 3
    eff = np.flatnonzero(model.weights_ > EFFECTIVE_WEIGHT_THRESHOLD)
    found = model.means_[eff] - np.array([0.0, 100.0])
    found[:, 1] /= 30.0
    assert np.sort(np.linalg.norm(found[:, None] - CENTERS[None], axis=2).min(axis=0)).max() < 0.3
    assert f"effective components: 3 of 8 (expected weight > {EFFECTIVE_WEIGHT_THRESHOLD:g})" in text
    assert re.search(r"effective components: 3 of 8 .*: " + ", ".join(str(k) for k in eff), text)
    # the summary's log-likelihood is the plug-in mixture's, by scipy
    ll = mixture_logpdf(X, model.weights_, model.means_, model.covariances_).sum()
    m = re.search(r"log-likelihood (-?[\d.]+)", text)
    assert float(m.group(1)) == pytest.approx(ll, rel=1e-9)


def test_prior_type_alias_and_default(data, tmp_path, capsys):
    _X, path = data
    out = tmp_path / "m.emix"
    code, _, err = run(["fit", path, "--bayesian", "--prior-type", "dirichlet", "-k", 4, "--seed", 0,
                        "--covariance", "diag", "-q", "-o", out], capsys)
    assert code == 0, err
    model = emix.load(out)
    assert model.weight_concentration_prior_type == "dirichlet_distribution"
    assert model.covariance_type == "diag"
    assert model.weight_concentration_prior_ == pytest.approx(1 / 4)  # scikit-learn's default 1/K
    code, _, err = run(["fit", path, "--bayesian", "-k", 4, "--seed", 0, "-q", "-o", out, "-f"], capsys)
    assert code == 0, err
    assert emix.load(out).weight_concentration_prior_type == "dirichlet_process"


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    _X, path = data
    out = tmp_path_factory.mktemp("bfit") / "m.emix"
    assert main(["fit", str(path), "--bayesian", "-k", "6", "--seed", "0", "--max-iter", "500", "-q", "-o", str(out)]) == 0
    return emix.load(out), out


def test_score_info_predict(data, fitted, tmp_path, capsys):
    X, path = data
    model, out = fitted
    code, text, err = run(["score", out, path, "--json"], capsys)
    assert code == 0, err
    got = json.loads(text)
    lp = mixture_logpdf(X, model.weights_, model.means_, model.covariances_)
    assert got["log_likelihood"] == pytest.approx(lp.sum(), rel=1e-9)
    assert got["mean_log_likelihood"] == pytest.approx(lp.mean(), rel=1e-9)
    assert got["variational_score"] == pytest.approx(model.score(X), rel=1e-12)
    assert got["n_effective_components"] == model.n_effective_components_ == 3
    assert "bic" not in got
    code, text, _ = run(["score", out, path], capsys)
    assert code == 0 and "no BIC" in text and "effective components      3 of 6" in text

    code, text, err = run(["info", out, "--json"], capsys)
    assert code == 0, err
    info = json.loads(text)
    assert info["model"] == "BayesianGaussianMixture"
    assert info["n_effective_components"] == 3
    assert info["effective_weight_threshold"] == EFFECTIVE_WEIGHT_THRESHOLD
    assert info["effective_components"] == np.flatnonzero(model.weights_ > EFFECTIVE_WEIGHT_THRESHOLD).tolist()
    assert info["lower_bounds"] == pytest.approx(model.lower_bounds_, rel=1e-15)
    assert info["lower_bound"] == info["lower_bounds"][-1]
    assert np.allclose(info["weights"], model.weights_)
    a, b = info["weight_concentration"]
    w = np.array(a) / (np.array(a) + np.array(b))
    w = w * np.concatenate([[1.0], np.cumprod(1 - w)[:-1]])  # stick breaking E[pi_k]
    np.testing.assert_allclose(w / w.sum(), model.weights_, rtol=1e-12)
    code, text, _ = run(["info", out], capsys)
    assert code == 0 and "effective components: 3 of 6" in text and "Dirichlet process" in text

    pred = tmp_path / "p.csv"
    code, _, err = run(["predict", out, path, "-a", "-o", pred], capsys)
    assert code == 0, err
    with open(pred, newline="") as fh:
        rows = list(csv.reader(fh))
    head = rows[0]
    labels = np.array([int(r[head.index("label")]) for r in rows[1:]])
    np.testing.assert_array_equal(labels, model.predict(X))
    probs = np.array([[float(r[head.index(f"p{k}")]) for k in range(6)] for r in rows[1:]])
    np.testing.assert_allclose(probs, model.predict_proba(X), rtol=1e-6, atol=1e-12)


def test_plot_and_report(data, fitted, tmp_path, capsys):
    X, path = data
    model, out = fitted
    for kind in ("convergence", "clusters", "uncertainty"):
        fig = tmp_path / f"{kind}.png"
        code, _, err = run(["plot", out] + ([] if kind == "convergence" else [path])
                           + ["--kind", kind, "-o", fig], capsys)
        assert code == 0, err
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = tmp_path / "r.html"
    code, _, err = run(["report", path, "--model", out, "-o", html], capsys)
    assert code == 0, err
    text = html.read_text()
    assert "Effective components (3 of 6)" in text
    assert 'id="plot-elbo"' in text and 'id="plot-weights"' in text
    assert not re.search(r"<td[^>]*>BIC</td>", text) and "no BIC" in text
    ll = mixture_logpdf(X, model.weights_, model.means_, model.covariances_).sum()
    assert f"{ll:.3f}" in text


def test_elbo_plot_draws_lower_bounds(fitted):
    """The ELBO curve's points are ``lower_bounds_``, its change curve their
    absolute differences."""
    from emix import plotting as P
    from emix._report_bayesian import plot_elbo, plot_expected_weights

    model, _ = fitted
    fig = P.new_figure()
    ax = plot_elbo(model, ax=fig.add_subplot(1, 2, 1))
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), model.lower_bounds_)
    twin = next(a for a in fig.axes if a is not ax and a.get_shared_x_axes().joined(a, ax))
    np.testing.assert_allclose(twin.lines[0].get_ydata(), np.maximum(np.abs(np.diff(model.lower_bounds_)), 1e-16))
    ax2 = plot_expected_weights(model, ax=fig.add_subplot(1, 2, 2))
    heights = sorted(p.get_height() for p in ax2.patches)
    np.testing.assert_allclose(heights, np.sort(model.weights_))


def test_scale_round_trip(data, tmp_path, capsys):
    """--scale: the model file is a scaler + BayesianGaussianMixture pipeline;
    score's log-likelihood is of the data in its own units (scipy on the
    back-transformed parameters)."""
    X, path = data
    out = tmp_path / "s.emix"
    code, text, err = run(["fit", path, "--bayesian", "--scale", "-k", 5, "--seed", 0, "--max-iter", 500,
                           "-o", out], capsys)
    assert code == 0, err
    assert "--scale" in text
    pipe = emix.load(out)
    sc, model = pipe.steps[0][1], pipe.steps[-1][1]
    assert isinstance(model, emix.BayesianGaussianMixture)
    s = sc.scale_
    means = model.means_ * s + sc.mean_
    covs = model.covariances_ * np.outer(s, s)[None]
    lp = mixture_logpdf(X, model.weights_, means, covs)
    code, text, err = run(["score", out, path, "--json"], capsys)
    assert code == 0, err
    assert json.loads(text)["log_likelihood"] == pytest.approx(lp.sum(), rel=1e-9)


def test_chunk_rows_fit(data, tmp_path, capsys):
    _X, path = data
    out = tmp_path / "c.emix"
    code, text, err = run(["fit", path, "--bayesian", "--chunk-rows", 100, "-k", 6, "--seed", 0,
                           "--max-iter", 500, "-o", out], capsys)
    assert code == 0, err
    model = emix.load(out)
    assert model.n_effective_components_ == 3
    assert list(model.feature_names_in_) == ["a", "b"]
    assert "effective components: 3 of 6" in text


@pytest.mark.parametrize("argv, message", [
    (["--weight-prior", "dp"], "add --bayesian"),
    (["--weight-concentration", "0.1"], "add --bayesian"),
    (["--bayesian", "--noise", "box"], "cannot be combined with --bayesian"),
    (["--bayesian", "--prior", "default"], "cannot be combined with --bayesian"),
    (["--bayesian", "--missing", "em"], "cannot be combined with --bayesian"),
    (["--bayesian", "--family", "poisson"], "--bayesian fits Gaussian mixtures"),
    (["--bayesian", "--covariance", "VEV"], "--bayesian supports --covariance"),
    (["--bayesian", "--weight-prior", "beta"], "expected dirichlet_process"),
    (["--bayesian", "--weight-concentration", "0"], "expected a finite number > 0"),
])
def test_usage_errors(data, tmp_path, capsys, argv, message):
    _, path = data
    code, _, err = run(["fit", path, "-k", 3, "-o", tmp_path / "m.emix"] + argv, capsys)
    assert code == 2
    assert message in err
    assert not (tmp_path / "m.emix").exists()
