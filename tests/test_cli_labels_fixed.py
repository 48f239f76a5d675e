"""``emix fit/select/report --labels COL`` and ``emix fit --init-from MODEL
--fixed NAMES``: the command line against the library.

Oracles: the library fitted on the same numbers (``GaussianMixture(...).fit(X,
labels=...)``, ``emix.select(X, labels=...)``, ``GaussianMixture(fixed=...,
*_init=...)``), which the CLI must reproduce to 1e-10; numpy's class means and
maximum-likelihood class covariances for a fully labelled file (the
closed-form estimate of a semi-supervised fit with every row labelled,
McLachlan & Peel 2000, section 2.19); and the init model's own arrays, which
held parameters must equal exactly. Errors exit non-zero, say what was wrong
(column, value, row) and write no output file.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from cli_helpers import run_cli as _cli

import emix
from emix import GaussianMixture


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def _mixture(n=180, D=2, K=3, seed=0, sep=5.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=sep, size=(K, D))
    z = rng.integers(K, size=n)
    return centers[z] + rng.normal(size=(n, D)), z


def _partial(z, frac=0.25, seed=1):
    """z with about ``1 - frac`` of the rows set to -1 (unlabelled)."""
    labels = z.copy()
    labels[np.random.default_rng(seed).random(len(z)) >= frac] = -1
    return labels


def _write(path, X, labels=None, unlabelled=("", "NA", "-1"), label_name="y"):
    """X (columns a, b, ...) and, last, the label column; unlabelled rows are
    written in turn with each spelling of ``unlabelled``; NaN in X as empty."""
    names = [chr(ord("a") + j) for j in range(X.shape[1])]
    head = names + ([label_name] if labels is not None else [])
    lines = [",".join(head)]
    t = 0
    for i, x in enumerate(X):
        cells = ["" if np.isnan(v) else repr(float(v)) for v in x]
        if labels is not None:
            lab = labels[i]
            if isinstance(lab, str):
                cells.append(lab)
            elif lab == -1:
                cells.append(unlabelled[t % len(unlabelled)])
                t += 1
            else:
                cells.append(str(int(lab)))
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return names


@pytest.fixture(scope="module")
def data():
    X, z = _mixture()
    return X, z, _partial(z)


# ------------------------------------------------------------------ --labels
@pytest.mark.parametrize("cov", ["full", "VEV"])
def test_fit_labels_equals_the_library(data, tmp_path, capsys, cov):
    X, _, labels = data
    path = tmp_path / "d.csv"
    names = _write(path, X, labels)
    out = tmp_path / "m.emix"
    code, _, err = _cli(["fit", path, "-k", 3, "--covariance", cov, "--labels", "y", "--seed", 0, "-o", out, "-q"],
                        capsys)
    assert code == 0, err
    gm = emix.load(out)
    assert list(gm.feature_names_in_) == names  # the label column is not a feature
    lib = _quiet(GaussianMixture(3, covariance_type=cov, random_state=0).fit, X, labels=labels)
    for attr in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(gm, attr), getattr(lib, attr), rtol=1e-10, atol=1e-12)
    assert gm.lower_bound_ == pytest.approx(lib.lower_bound_, rel=1e-12)
    # the labels changed the fit: it is not the unsupervised one from the same seed
    plain = _quiet(GaussianMixture(3, covariance_type=cov, random_state=0).fit, X)
    assert not np.allclose(np.sort(gm.means_, axis=0), np.sort(plain.means_, axis=0), rtol=1e-6)


def test_fit_with_every_row_labelled_is_the_closed_form(data, tmp_path, capsys):
    """All rows labelled: class proportions, class means and ML class
    covariances (+ reg_covar), from numpy."""
    X, z, _ = data
    path = tmp_path / "d.csv"
    _write(path, X, z)
    out = tmp_path / "m.emix"
    code, _, err = _cli(["fit", path, "-k", 3, "--labels", "y", "--reg-covar", 0, "-o", out, "-q"], capsys)
    assert code == 0, err
    gm = emix.load(out)
    for k in range(3):
        rows = X[z == k]
        np.testing.assert_allclose(gm.weights_[k], len(rows) / len(X), rtol=1e-12)
        np.testing.assert_allclose(gm.means_[k], rows.mean(axis=0), rtol=1e-10)
        np.testing.assert_allclose(gm.covariances_[k], np.cov(rows.T, bias=True), rtol=1e-9)


def test_fit_labels_with_missing_values_and_out_of_core(data, tmp_path, capsys):
    X, _, labels = data
    Xm = X.copy()
    Xm[np.random.default_rng(4).random(X.shape) < 0.1] = np.nan
    Xm[np.isnan(Xm).all(axis=1), 0] = 0.0
    path = tmp_path / "d.csv"
    _write(path, Xm, labels)
    lib = _quiet(GaussianMixture(3, missing="em", random_state=0).fit, Xm, labels=labels)
    for extra in ([], ["--chunk-rows", 37]):
        out = tmp_path / f"m{len(extra)}.emix"
        code, _, err = _cli(["fit", path, "-k", 3, "--missing", "em", "--labels", "y", "--seed", 0, "-o", out,
                             "-q", *extra], capsys)
        assert code == 0, err
        gm = emix.load(out)
        assert list(gm.feature_names_in_) == ["a", "b"]
        np.testing.assert_allclose(gm.means_, lib.means_, rtol=1e-10)
        np.testing.assert_allclose(gm.covariances_, lib.covariances_, rtol=1e-10)
        np.testing.assert_allclose(gm.weights_, lib.weights_, rtol=1e-10)


def test_fit_labels_out_of_core_equals_in_memory(data, tmp_path, capsys):
    X, _, labels = data
    path = tmp_path / "d.csv"
    _write(path, X, labels)
    lib = _quiet(GaussianMixture(3, covariance_type="diag", random_state=0).fit, X, labels=labels)
    out = tmp_path / "m.emix"
    code, _, err = _cli(["fit", path, "-k", 3, "--covariance", "diag", "--labels", "2", "--seed", 0, "-o", out,
                         "--chunk-rows", 50, "-q"], capsys)  # the column by position
    assert code == 0, err
    gm = emix.load(out)
    np.testing.assert_allclose(gm.means_, lib.means_, rtol=1e-10)
    np.testing.assert_allclose(gm.covariances_, lib.covariances_, rtol=1e-10)


def test_select_and_report_with_labels(data, tmp_path, capsys):
    X, _, labels = data
    path = tmp_path / "d.csv"
    _write(path, X, labels)
    table = tmp_path / "t.csv"
    code, _, err = _cli(["select", path, "-k", "1..4", "--covariance", "VVV,EII", "--labels", "y", "--seed", 0,
                           "-o", tmp_path / "s.emix", "--table", table], capsys)
    assert code == 0, err
    res = _quiet(emix.select, X, n_components=[1, 2, 3, 4], covariance_types=["VVV", "EII"], labels=labels,
                 random_state=0)
    gm = emix.load(tmp_path / "s.emix")
    assert (gm.n_components, gm.covariance_type) == (res.best_params_["n_components"],
                                                     res.best_params_["covariance_type"])
    np.testing.assert_allclose(gm.means_, res.best_.means_, rtol=1e-10)
    np.testing.assert_allclose(gm.covariances_, res.best_.covariances_, rtol=1e-10)
    # cells with K <= the largest label (2) are not applicable, as in the library
    import csv

    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r, ref in zip(rows, res.rows):
        assert int(r["n_components"]) == ref["n_components"]
        assert r["error"].startswith("not applicable") == (ref["n_components"] < 3)
        if ref["error"] is None:
            np.testing.assert_allclose(float(r["bic"]), ref["bic"], rtol=1e-10)
    code, _, err = _cli(["report", path, "-k", "3", "--covariance", "VVV", "--labels", "y", "--seed", 0,
                         "-o", tmp_path / "r.html", "-q"], capsys)
    assert code == 0, err
    assert (tmp_path / "r.html").stat().st_size > 1000


# ------------------------------------------------------ --init-from / --fixed
@pytest.fixture(scope="module")
def init_model(tmp_path_factory, data):
    """A model fitted on other rows of the same mixture (so that a fit from
    it moves), saved with feature names a, b."""
    X2, _ = _mixture(n=150, seed=0)
    gm = _quiet(GaussianMixture(3, random_state=2, max_iter=3).fit, X2[::-1] + 0.2)
    gm.feature_names_in_ = np.asarray(["a", "b"], dtype=object)
    path = tmp_path_factory.mktemp("init") / "init.emix"
    emix.save(gm, path)
    return path, emix.load(path)


@pytest.mark.parametrize("fixed", [None, "means", "weights", "covariances", "weights,means",
                                   "weights,means,covariances"])
def test_init_from_and_fixed_equal_the_library(data, init_model, tmp_path, capsys, fixed):
    X, _, _ = data
    path = tmp_path / "d.csv"
    _write(path, X)
    init_path, init = init_model
    out = tmp_path / "m.emix"
    argv = ["fit", path, "-k", 3, "--init-from", init_path, "-o", out]
    code, stdout, err = _cli(argv + (["--fixed", fixed] if fixed else []), capsys)
    assert code == 0, err
    gm = emix.load(out)
    held = tuple(fixed.split(",")) if fixed else ()
    assert tuple(gm.fixed) == held
    lib = _quiet(GaussianMixture(3, fixed=held, weights_init=init.weights_, means_init=init.means_,
                                 precisions_init=init.precisions_).fit, X)
    for attr in ("weights_", "means_", "covariances_", "precisions_"):
        np.testing.assert_allclose(getattr(gm, attr), getattr(lib, attr), rtol=1e-10, atol=1e-14)
    # held parameters are the init model's, exactly; the others moved
    pairs = {"weights": "weights_", "means": "means_", "covariances": "precisions_"}
    for name, attr in pairs.items():
        if name in held:
            np.testing.assert_array_equal(getattr(gm, attr), getattr(init, attr))
        else:
            assert not np.allclose(getattr(gm, attr), getattr(init, attr), rtol=1e-6)
    if held:
        assert "held at their initial values" in stdout and ", ".join(held) in stdout
        # BIC counts the free parameters only
        assert gm._n_parameters() < GaussianMixture(3).fit(X)._n_parameters()
    else:
        assert "held" not in stdout


def test_init_from_with_labels_out_of_core_and_an_mclust_model(data, tmp_path, capsys):
    X, _, labels = data
    path = tmp_path / "d.csv"
    _write(path, X, labels)
    start = _quiet(GaussianMixture(3, covariance_type="EEE", random_state=5, max_iter=2).fit, X)
    start.feature_names_in_ = np.asarray(["a", "b"], dtype=object)
    init_path = tmp_path / "init.emix"
    emix.save(start, init_path)
    lib = _quiet(GaussianMixture(3, covariance_type="EEE", fixed=("means",), weights_init=start.weights_,
                                 means_init=start.means_, precisions_init=start.precisions_).fit, X,
                 labels=labels)
    for extra in ([], ["--chunk-rows", 64]):
        out = tmp_path / f"m{len(extra)}.emix"
        code, _, err = _cli(["fit", path, "-k", 3, "--labels", "y", "--init-from", init_path, "--fixed", "means",
                             "-o", out, "-q", *extra], capsys)
        assert code == 0, err
        gm = emix.load(out)
        assert gm.covariance_type == "EEE" and tuple(gm.fixed) == ("means",)
        np.testing.assert_array_equal(gm.means_, start.means_)
        np.testing.assert_allclose(gm.covariances_, lib.covariances_, rtol=1e-10)
        np.testing.assert_allclose(gm.weights_, lib.weights_, rtol=1e-10)


# -------------------------------------------------------------------- errors
def _bad_labels():
    return {
        "text": ("setosa", "holds text", "data row 4"),
        "fraction": ("1.5", "not an integer at data row 4: 1.5", None),
        "too large": ("3", "has label 3 at data row 4", "components 0..2"),
        "below -1": ("-2", "has label -2 at data row 4", "-1 for an unlabelled row"),
    }


@pytest.mark.parametrize("case", list(_bad_labels()))
@pytest.mark.parametrize("chunked", [False, True])
def test_bad_label_values_are_refused(data, tmp_path, capsys, case, chunked):
    X, _, labels = data
    value, msg, more = _bad_labels()[case]
    labels = labels.astype(object)
    labels[3] = value
    path = tmp_path / "d.csv"
    _write(path, X, labels)
    out = tmp_path / "m.emix"
    extra = ["--chunk-rows", 40] if chunked else []
    code, _, err = _cli(["fit", path, "-k", 3, "--labels", "y", "-o", out, *extra], capsys)
    assert code == 1
    assert "--labels column 'y'" in err
    if chunked and case == "text":  # the block reader names the value, not the row
        assert "holds text" in err and "'setosa'" in err and "integer" in err
    else:
        assert msg in err, err
        if more:
            assert more in err, err
    assert not out.exists()


def test_select_label_above_the_grid_is_refused(data, tmp_path, capsys):
    X, _, labels = data
    path = tmp_path / "d.csv"
    _write(path, X, labels)
    out = tmp_path / "s.emix"
    code, _, err = _cli(["select", path, "-k", "1..2", "--labels", "y", "-o", out], capsys)
    assert code == 1 and "has label 2 at data row" in err and "K=2, the largest K tried" in err, err
    assert not out.exists()


@pytest.mark.parametrize("argv, code, msg", [
    (["--labels", "z"], 1, "--labels: "),                       # no such column: the columns are listed
    (["--labels", "y", "--weights", "y"], 1, "name the same column 'y'"),
    (["--labels", "y", "--columns", "a,y"], 1, "also among the features"),
    (["--labels", "y", "--family", "poisson"], 2, "--labels is for Gaussian mixtures"),
    (["--labels", "y", "--bayesian"], 2, "cannot be combined with --bayesian"),
    (["--labels", "y", "--scheduler", "tcp://127.0.0.1:1"], 2, "--scheduler"),
    (["--fixed", "means"], 2, "--fixed needs --init-from"),
    (["--fixed", "mean"], 2, "expected a comma list of weights, means, covariances"),
])
def test_usage_and_data_errors(data, tmp_path, capsys, argv, code, msg):
    X, _, labels = data
    path = tmp_path / "d.csv"
    _write(path, X, labels)
    out = tmp_path / "m.emix"
    got, _, err = _cli(["fit", path, "-k", 3, "-o", out, *argv], capsys)
    assert got == code and msg in err, err
    if argv[:2] == ["--labels", "z"]:
        assert "no column 'z'" in err and "a, b, y" in err
    assert not out.exists()


def test_report_model_with_labels_is_a_usage_error(data, init_model, tmp_path, capsys):
    X, _, labels = data
    path = tmp_path / "d.csv"
    _write(path, X, labels)
    code, _, err = _cli(["report", path, "--model", init_model[0], "--labels", "y", "-o", tmp_path / "r.html"],
                        capsys)
    assert code == 2 and "--labels cannot be combined with --model" in err
    assert not (tmp_path / "r.html").exists()


def test_init_from_mismatches_are_refused(data, init_model, tmp_path, capsys):
    X, _, _ = data
    init_path, _ = init_model
    path = tmp_path / "d.csv"
    _write(path, X)
    out = tmp_path / "m.emix"
    cases = [
        (["-k", 2], "has K=3 components but -k is 2"),
        (["-k", 3, "--covariance", "diag"], "--covariance diag differs from the covariance type 'full'"),
        (["-k", 3, "--columns", "a"], "has 2 feature(s) (a, b); the data has 1 (a)"),
        (["-k", 3, "--columns", "b,a"], "was fitted on the features a, b; the data's are b, a"),
    ]
    for argv, msg in cases:
        code, _, err = _cli(["fit", path, "--init-from", init_path, "-o", out, *argv], capsys)
        assert code == 1 and msg in err, (argv, err)
        assert not out.exists()
    # a model fitted with --scale, and --scale with --init-from
    scaled = tmp_path / "scaled.emix"
    assert _cli(["fit", path, "-k", 3, "--scale", "--seed", 0, "-o", scaled, "-q"], capsys)[0] == 0
    code, _, err = _cli(["fit", path, "-k", 3, "--init-from", scaled, "-o", out], capsys)
    assert code == 1 and "was fitted with --scale" in err
    code, _, err = _cli(["fit", path, "-k", 3, "--init-from", init_path, "--scale", "-o", out], capsys)
    assert code == 2 and "--init-from cannot be combined with --scale" in err
    assert not out.exists()
