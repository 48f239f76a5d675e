"""Missing values, labels and held parameters beyond ``fit``: model files,
``emix.select``, the command line and far rows with holes.

Oracles: scipy.stats marginal densities on each row's observed coordinates
(Little & Rubin 2002, section 11.2), the estimator's own fit on the same
data (select and the CLI must reproduce it), and invariants (round trips,
errors that say what to do).
"""

from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pytest
from cli_helpers import run_cli as _cli
from scipy.special import logsumexp
from scipy.stats import multivariate_normal as mvn

import emix
from emix import GaussianMixture
from emix.exceptions import ModelFileError


def _mixture(n=300, D=3, K=2, seed=0, sep=6.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=sep, size=(K, D))
    z = rng.integers(K, size=n)
    X = centers[z] + rng.normal(size=(n, D))
    return X, z


def _holes(X, frac, seed=1):
    rng = np.random.default_rng(seed)
    Xm = X.copy()
    Xm[rng.random(X.shape) < frac] = np.nan
    Xm[np.isnan(Xm).all(axis=1), 0] = X[np.isnan(Xm).all(axis=1), 0]  # every row keeps one entry
    return Xm


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def _scipy_marginal(Xm, gm):
    """log p(x_O) per row from scipy on the observed coordinates."""
    out = []
    for x in Xm:
        o = ~np.isnan(x)
        terms = [np.log(w) + mvn(mu[o], C[np.ix_(o, o)]).logpdf(x[o])
                 for w, mu, C in zip(gm.weights_, gm.means_, _full_covs(gm))]
        out.append(logsumexp(terms))
    return np.array(out)


def _full_covs(gm):
    """(K, D, D) covariance matrices from ``covariances_`` by its shape."""
    K, D = gm.means_.shape
    c = np.asarray(gm.covariances_, dtype=np.float64)
    if c.shape == (K, D, D):
        return c
    if c.shape == (D, D):
        return np.broadcast_to(c, (K, D, D))
    if c.shape == (K, D):
        return np.stack([np.diag(v) for v in c])
    return np.stack([v * np.eye(D) for v in np.broadcast_to(c.reshape(-1), (K,))])


# ------------------------------------------------------------- model files
@pytest.mark.parametrize("fixed", [(), ("means",), ("weights", "covariances")])
def test_missing_and_fixed_round_trip_through_model_files(tmp_path, fixed):
    X, _ = _mixture()
    Xm = _holes(X, 0.15)
    ref = _quiet(GaussianMixture(2, random_state=0).fit, X)
    inits = {"weights_init": ref.weights_, "means_init": ref.means_ + 0.3, "precisions_init": ref.precisions_}
    gm = _quiet(GaussianMixture(2, missing="em", fixed=fixed, random_state=0, **inits).fit, Xm)
    path = tmp_path / "m.emix"
    emix.save(gm, path)
    back = emix.load(path)
    assert back.missing == "em" and back.fixed == tuple(fixed)
    # the loaded model scores rows with NaN exactly as the fitted one, which is scipy's marginal
    np.testing.assert_array_equal(back.score_samples(Xm), gm.score_samples(Xm))
    np.testing.assert_allclose(back.score_samples(Xm[:20]), _scipy_marginal(Xm[:20], gm), rtol=1e-10)
    # and refits identically (held parameters included)
    again = _quiet(back.fit, Xm)
    np.testing.assert_allclose(again.means_, gm.means_, rtol=1e-12)
    if "means" in fixed:
        np.testing.assert_array_equal(again.means_, inits["means_init"])
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read("header.json"))
    assert header["format_version"] == 2  # an emix reading only version 1 refuses it
    assert header["params"]["missing"] == "em"
    assert header["params"].get("fixed", []) == list(fixed)


def test_default_model_file_stays_version_1_without_the_new_keys(tmp_path):
    X, _ = _mixture()
    gm = _quiet(GaussianMixture(2, random_state=0).fit, X)
    emix.save(gm, tmp_path / "m.emix")
    with zipfile.ZipFile(tmp_path / "m.emix") as zf:
        header = json.loads(zf.read("header.json"))
    assert header["format_version"] == 1
    assert "missing" not in header["params"] and "fixed" not in header["params"]
    back = emix.load(tmp_path / "m.emix")
    assert back.missing == "error" and back.fixed == ()


def _rewrite_header(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "header.json":
                h = json.loads(data)
                edit(h)
                data = json.dumps(h).encode()
            zout.writestr(item, data)


@pytest.mark.parametrize("edit, match", [
    (lambda h: h["params"].__setitem__("missing", "impute"), "missing must be"),
    (lambda h: h["params"].__setitem__("fixed", ["means", "shapes"]), "fixed must hold"),
    (lambda h: h["params"].__setitem__("fixed", "means"), "list of names"),
    (lambda h: h["params"].__setitem__("fixed", ["means", "means"]), "twice"),
    (lambda h: h.__setitem__("format_version", 1), "format_version 1"),
])
def test_bad_missing_or_fixed_in_a_file_is_refused(tmp_path, edit, match):
    X, _ = _mixture()
    gm = _quiet(GaussianMixture(2, missing="em", fixed=("means",), means_init=X[:2], random_state=0).fit,
                _holes(X, 0.1))
    emix.save(gm, tmp_path / "m.emix")
    _rewrite_header(tmp_path / "m.emix", tmp_path / "bad.emix", edit)
    with pytest.raises(ModelFileError, match=match):
        emix.load(tmp_path / "bad.emix")


# ------------------------------------------------------------------ select
def _scipy_objective(Xm, gm, labels=None):
    """sum_n log p(x_nO), or with labels log pi_y N(x_O | y) on labelled rows."""
    covs = _full_covs(gm)
    total = 0.0
    for n, x in enumerate(Xm):
        o = ~np.isnan(x)
        terms = np.array([np.log(w) + mvn(mu[o], C[np.ix_(o, o)]).logpdf(x[o])
                          for w, mu, C in zip(gm.weights_, gm.means_, covs)])
        total += terms[labels[n]] if labels is not None and labels[n] >= 0 else logsumexp(terms)
    return total


@pytest.mark.parametrize("init_params", [None, "mclust", "kmeans"])
def test_select_with_missing_values(init_params):
    X, _ = _mixture(n=200, D=3, K=2, sep=8.0)
    Xm = _holes(X, 0.15)
    kw = {} if init_params is None else {"init_params": init_params}
    res = emix.select(Xm, n_components=[1, 2, 3], covariance_types=["VVV", "EII"], missing="em",
                      random_state=0, **kw)
    assert all(r["error"] is None for r in res.rows), [r["error"] for r in res.rows]
    assert res.best_params_["n_components"] == 2
    best = res.best_
    assert best.missing == "em" and not np.isnan(best.means_).any()
    row = next(r for r in res.rows if r["n_components"] == 2 and r["covariance_type"] == best.covariance_type)
    # the table's log-likelihood is the observed-data one (scipy on each row's observed coordinates)
    np.testing.assert_allclose(row["log_likelihood"], _scipy_objective(Xm, best), rtol=1e-9)
    np.testing.assert_allclose(row["bic"], best.bic(Xm), rtol=1e-12)
    # on the complete rows, the partition is that of a fit to the data without holes
    full = _quiet(GaussianMixture(2, random_state=0).fit, X)
    c = ~np.isnan(Xm).any(axis=1)
    agree = np.mean(best.predict(Xm)[c] == full.predict(X)[c])
    assert max(agree, 1 - agree) > 0.97


def test_select_without_missing_option_says_how_to_opt_in():
    X, _ = _mixture(n=50)
    with pytest.raises(ValueError, match="missing='em'"):
        emix.select(_holes(X, 0.1), n_components=[1], covariance_types=["VVV"])


def test_select_never_observed_column_is_named():
    X, _ = _mixture(n=50)
    X[:, 1] = np.nan
    with pytest.raises(ValueError, match="column 1 is missing"):
        emix.select(X, n_components=[1], covariance_types=["VVV"], missing="em")


def test_select_with_labels():
    X, z = _mixture(n=240, D=2, K=3, sep=4.0, seed=3)
    labels = np.full(len(z), -1)
    seen = np.flatnonzero(np.random.default_rng(0).random(len(z)) < 0.2)
    labels[seen] = z[seen]
    Xm = _holes(X, 0.1)
    res = emix.select(Xm, n_components=[1, 2, 3, 4], covariance_types=["VVV", "EEE"], labels=labels,
                      missing="em", random_state=0)
    small = [r for r in res.rows if r["n_components"] < 3]
    assert small and all(r["error"].startswith("not applicable") for r in small)
    assert all(r["error"] is None for r in res.rows if r["n_components"] >= 3)
    assert res.best_params_["n_components"] >= 3
    best = res.best_
    row = next(r for r in res.rows if r["n_components"] == res.best_params_["n_components"]
               and r["covariance_type"] == res.best_params_["covariance_type"])
    # the semi-supervised objective, from scipy
    np.testing.assert_allclose(row["log_likelihood"], _scipy_objective(Xm, best, labels), rtol=1e-9)
    # the labelled rows kept their components
    pred = best.predict(Xm)
    assert np.mean(pred[seen] == z[seen]) > 0.95
    # the same cell fitted directly gives the same model
    direct = _quiet(GaussianMixture(res.best_params_["n_components"],
                                    covariance_type=res.best_params_["covariance_type"], missing="em",
                                    init_params="hierarchical", tol=1e-5, max_iter=1000,
                                    random_state=best.random_state).fit, Xm, labels=labels)
    np.testing.assert_allclose(direct.means_, best.means_, rtol=1e-10)


def test_select_with_fixed_counts_free_parameters():
    X, _ = _mixture(n=150, D=2, K=2)
    ref = _quiet(GaussianMixture(2, random_state=0).fit, X)
    res = emix.select(X, n_components=[2], covariance_types=["full"], fixed=("means",),
                      means_init=ref.means_, random_state=0)
    row = res.rows[0]
    assert row["n_parameters"] == 2 * 3 + 1  # two 2x2 covariances and one weight
    np.testing.assert_array_equal(res.best_.means_, ref.means_)
    np.testing.assert_allclose(row["bic"], res.best_.bic(X), rtol=1e-12)


def test_select_labels_must_be_valid():
    X, _ = _mixture(n=40)
    with pytest.raises(ValueError, match="labels must have shape"):
        emix.select(X, n_components=[2], covariance_types=["VVV"], labels=np.zeros(3, int))
    with pytest.raises(ValueError, match="-1"):
        emix.select(X, n_components=[2], covariance_types=["VVV"], labels=np.full(40, -2))


# --------------------------------------------------------------------- CLI
def _write_csv(path, X, spell=("", "NA")):
    """X as a CSV with header a, b, c...; NaN written alternately as each
    spelling in ``spell``."""
    names = [chr(ord("a") + j) for j in range(X.shape[1])]
    lines = [",".join(names)]
    t = 0
    for x in X:
        cells = []
        for v in x:
            if np.isnan(v):
                cells.append(spell[t % len(spell)])
                t += 1
            else:
                cells.append(repr(float(v)))
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return names


@pytest.fixture(scope="module")
def holes():
    X, _ = _mixture(n=160, D=3, K=2, sep=8.0, seed=5)
    return X, _holes(X, 0.15, seed=6)


def test_cli_fit_missing_em_matches_library_and_predict_score_impute(holes, tmp_path, capsys):
    import csv

    _, Xm = holes
    data = tmp_path / "d.csv"
    names = _write_csv(data, Xm)
    model = tmp_path / "m.emix"
    code, out, err = _cli(["fit", data, "-k", 2, "--seed", 0, "--missing", "em", "-o", model, "-q"], capsys)
    assert code == 0, err
    lib = _quiet(GaussianMixture(2, missing="em", random_state=0).fit, Xm)
    gm = emix.load(model)
    assert gm.missing == "em" and list(gm.feature_names_in_) == names
    np.testing.assert_allclose(gm.means_, lib.means_, rtol=1e-10)

    # predict: rows with holes get their marginal responsibilities
    pred = tmp_path / "p.csv"
    code, _, err = _cli(["predict", model, data, "-o", pred, "--log-likelihood", "-q"], capsys)
    assert code == 0, err
    with open(pred, newline="") as fh:
        rows = list(csv.DictReader(fh))
    np.testing.assert_array_equal([int(r["label"]) for r in rows], lib.predict(Xm))
    np.testing.assert_allclose([float(r["log_density"]) for r in rows], _scipy_marginal(Xm, lib), rtol=1e-9)
    # a missing input cell stays missing in the output (written as a spelling the reader takes as NaN)
    assert all(r["a"].lower() in ("", "na", "nan") for v, r in zip(Xm[:, 0], rows) if np.isnan(v))

    # score: the observed-data log-likelihood
    code, out, err = _cli(["score", model, data, "--json"], capsys)
    assert code == 0, err
    np.testing.assert_allclose(json.loads(out)["log_likelihood"], _scipy_marginal(Xm, lib).sum(), rtol=1e-9)

    # impute: conditional expectations in the holes, observed entries as read
    filled = tmp_path / "f.csv"
    code, _, err = _cli(["impute", model, data, "-o", filled, "-q"], capsys)
    assert code == 0, err
    got = np.loadtxt(filled, delimiter=",", skiprows=1)
    np.testing.assert_allclose(got, lib.impute(Xm), rtol=1e-12)
    assert not np.isnan(got).any()


def test_cli_without_missing_option_says_how_to_opt_in(holes, tmp_path, capsys):
    _, Xm = holes
    data = tmp_path / "d.csv"
    _write_csv(data, Xm)
    for cmd in (["fit", data, "-k", 2, "-o", tmp_path / "m"], ["select", data, "-k", "1..2"]):
        code, _, err = _cli(cmd, capsys)
        assert code == 1 and "--missing em" in err and "missing (empty or NaN)" in err, err


def test_cli_predict_nan_with_a_model_without_missing_is_an_error(holes, tmp_path, capsys):
    X, Xm = holes
    full, data = tmp_path / "full.csv", tmp_path / "d.csv"
    _write_csv(full, X)
    _write_csv(data, Xm)
    assert _cli(["fit", full, "-k", 2, "--seed", 0, "-o", tmp_path / "m.emix", "-q"], capsys)[0] == 0
    code, _, err = _cli(["predict", tmp_path / "m.emix", data], capsys)
    assert code == 1 and "missing" in err
    code, _, err = _cli(["impute", tmp_path / "m.emix", data], capsys)
    assert code == 1 and "--missing em" in err


def test_cli_select_and_report_with_missing_em(holes, tmp_path, capsys):
    _, Xm = holes
    data = tmp_path / "d.csv"
    _write_csv(data, Xm)
    code, _, err = _cli(["select", data, "-k", "1..3", "--covariance", "VVV,EII", "--seed", 0, "--missing", "em",
                           "-o", tmp_path / "s.emix"], capsys)
    assert code == 0, err
    res = emix.select(Xm, n_components=[1, 2, 3], covariance_types=["VVV", "EII"], missing="em", random_state=0)
    gm = emix.load(tmp_path / "s.emix")
    assert gm.missing == "em"
    assert (gm.n_components, gm.covariance_type) == (res.best_params_["n_components"],
                                                     res.best_params_["covariance_type"])
    np.testing.assert_allclose(gm.means_, res.best_.means_, rtol=1e-10)
    code, _, err = _cli(["report", data, "-k", "1..2", "--covariance", "VVV", "--seed", 0, "--missing", "em",
                         "-o", tmp_path / "r.html", "-q"], capsys)
    assert code == 0, err
    assert (tmp_path / "r.html").stat().st_size > 1000


def test_cli_missing_em_usage_errors(holes, tmp_path, capsys):
    _, Xm = holes
    data = tmp_path / "d.csv"
    _write_csv(data, Xm)
    code, _, err = _cli(["fit", data, "-k", 2, "--missing", "em", "--family", "poisson", "-o", tmp_path / "m"],
                        capsys)
    assert code == 2 and "--missing em" in err, err
    code, _, err = _cli(["fit", data, "-k", 2, "--missing", "em", "--scheduler", "tcp://127.0.0.1:1", "-o",
                         tmp_path / "m"], capsys)  # (--chunk-rows: tests/test_missing_out_of_core.py)
    assert code == 2 and "--missing em" in err, err


# ------------------------------------------------------ far rows with holes
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical", "VEV"])
def test_far_rows_with_missing_values_are_marginal_densities(ct):
    rng = np.random.default_rng(2)
    X = np.r_[rng.normal(size=(150, 3)) @ np.array([[1, .5, 0], [0, 1, .3], [0, 0, 1]]),
              rng.normal(size=(150, 3)) * 2.5 + 6]
    gm = _quiet(GaussianMixture(2, covariance_type=ct, missing="em", random_state=0).fit, X)
    far = np.array([[1e5, np.nan, 3.0], [np.nan, -3e4, np.nan], [2e4, 1e4, np.nan], [1e5, 2.0, -1.0],
                    [np.nan, np.nan, 4e6], [np.nan, np.nan, np.nan]])
    # scipy on the observed coordinates (exact at these distances in float64)
    covs = _full_covs(gm)
    terms = np.array([[np.log(w) + (mvn(mu[~np.isnan(x)], C[np.ix_(~np.isnan(x), ~np.isnan(x))]).logpdf(
        x[~np.isnan(x)]) if (~np.isnan(x)).any() else 0.0) for w, mu, C in zip(gm.weights_, gm.means_, covs)]
        for x in far])
    ref = logsumexp(terms, axis=1)
    assert (ref[:-1] < -1e6).all()  # far rows: the far-row path, not the ordinary one
    np.testing.assert_allclose(gm.score_samples(far), ref, rtol=1e-9, atol=1e-12)
    resp = gm.predict_proba(far)
    np.testing.assert_allclose(resp, np.exp(terms - ref[:, None]), rtol=1e-9, atol=1e-300)
    np.testing.assert_array_equal(gm.predict(far), np.argmax(terms, axis=1))


def test_rows_beyond_the_float_range_with_missing_values_stay_defined():
    rng = np.random.default_rng(3)
    X = np.r_[rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) * 3 + 8]
    gm = _quiet(GaussianMixture(2, covariance_type="diag", missing="em", random_state=0).fit, X)
    far = np.array([[1e200, np.nan], [np.nan, -1e250]])
    resp = gm.predict_proba(far)
    assert np.isfinite(resp).all()
    np.testing.assert_allclose(resp.sum(axis=1), 1.0)
    # in the limit the component with the larger variance along the observed coordinate takes the row
    var = gm.covariances_
    np.testing.assert_array_equal(gm.predict(far), [np.argmax(var[:, 0]), np.argmax(var[:, 1])])
    np.testing.assert_array_equal(resp[[0, 1], gm.predict(far)], 1.0)
    assert np.all(gm.score_samples(far) == -np.inf)  # the density underflows: -inf, never NaN
