"""Model files of scikit-learn Pipelines: scalers + an emix mixture, stored as
arrays and JSON (no pickle), validated on load (issue 11, item 7)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    RobustScaler,
    StandardScaler,
)

import emix
from emix.datasets import load_faithful
from emix.exceptions import ModelFileError
from emix.io import scaler_affine


@pytest.fixture(scope="module")
def faithful():
    X, _names = load_faithful()
    return X


SCALERS = [StandardScaler(), StandardScaler(with_mean=False), StandardScaler(with_std=False),
           MinMaxScaler(feature_range=(-1, 2)), RobustScaler(), RobustScaler(with_centering=False),
           RobustScaler(quantile_range=(10.0, 90.0), unit_variance=True), MaxAbsScaler()]


def _finals():
    return [emix.GaussianMixture(3, covariance_type="VVV", random_state=0),
            emix.StudentTMixture(2, random_state=0),
            emix.MixtureModel(2, family="gaussian", random_state=0)]


@pytest.mark.parametrize("scaler", SCALERS, ids=lambda s: repr(s))
def test_round_trip_every_scaler(tmp_path, faithful, scaler):
    for final in _finals():
        pipe = Pipeline([("scale", scaler), ("gm", final)]).fit(faithful)
        emix.save(pipe, tmp_path / "p.emix")
        back = emix.load(tmp_path / "p.emix")
        assert isinstance(back, Pipeline) and [n for n, _ in back.steps] == ["scale", "gm"]
        assert type(back[0]) is type(scaler) and back[0].get_params() == pipe[0].get_params()
        assert type(back[-1]) is type(final)
        # bit for bit: the scaler's arrays and the predictions
        np.testing.assert_array_equal(back[0].transform(faithful), pipe[0].transform(faithful))
        np.testing.assert_array_equal(back.predict_proba(faithful), pipe.predict_proba(faithful))
        np.testing.assert_array_equal(back.score_samples(faithful), pipe.score_samples(faithful))


def test_bayesian_and_passthrough_and_dataframe(tmp_path, faithful):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(faithful, columns=["eruptions", "waiting"])
    pipe = Pipeline([("none", "passthrough"), ("scale", StandardScaler()),
                     ("bgm", emix.BayesianGaussianMixture(n_components=3, max_iter=300, random_state=0))])
    pipe.fit(df)
    emix.save(pipe, tmp_path / "b.emix")
    back = emix.load(tmp_path / "b.emix")
    assert back.steps[0][1] == "passthrough"
    assert list(back[1].feature_names_in_) == ["eruptions", "waiting"]
    np.testing.assert_array_equal(back.predict(df), pipe.predict(df))


def test_scaler_arrays_are_the_fitted_ones_and_no_pickle(tmp_path, faithful):
    w = np.arange(len(faithful)) % 3 + 1.0
    sc = StandardScaler().fit(faithful, sample_weight=w)
    gm = emix.GaussianMixture(2, random_state=0).fit(sc.transform(faithful))
    emix.save(Pipeline([("scale", sc), ("gm", gm)]), tmp_path / "p.emix")
    with zipfile.ZipFile(tmp_path / "p.emix") as zf:
        header = json.loads(zf.read("header.json"))
        assert all(name.endswith((".npy", ".json")) for name in zf.namelist())
        mean = np.load(zf.open("step0_mean.npy"), allow_pickle=False)
    assert header["model"] == "Pipeline" and header["steps"][0]["kind"] == "StandardScaler"
    # oracle: numpy's weighted mean
    np.testing.assert_allclose(mean, np.average(faithful, axis=0, weights=w), rtol=1e-12)


def test_affine_map_matches_transform_and_density(faithful):
    """z = a x + b; the mixture in data units is the density of x (scipy oracle)."""
    for scaler in (StandardScaler(), MinMaxScaler((-1, 2)), RobustScaler(), MaxAbsScaler()):
        sc = scaler.fit(faithful)
        a, b = scaler_affine(sc)
        np.testing.assert_allclose(a * faithful + b, sc.transform(faithful), rtol=1e-12, atol=1e-12)
    sc = StandardScaler().fit(faithful)
    a, b = scaler_affine(sc)
    gm = emix.GaussianMixture(2, random_state=0).fit(sc.transform(faithful))
    dens = sum(w * stats.multivariate_normal((m - b) / a, c / np.outer(a, a)).pdf(faithful)
               for w, m, c in zip(gm.weights_, gm.means_, gm.covariances_))
    np.testing.assert_allclose(gm.score_samples(sc.transform(faithful)) + np.log(np.abs(a)).sum(),
                               np.log(dens), rtol=1e-10)


def test_unsupported_steps_fail_at_save_time(tmp_path, faithful):
    gm = emix.GaussianMixture(2, random_state=0)
    pca = Pipeline([("pca", PCA(2)), ("gm", gm)]).fit(faithful)
    with pytest.raises(ValueError, match=r"step 'pca' is a .*PCA; model files hold the scalers StandardScaler"):
        emix.save(pca, tmp_path / "x.emix")
    from sklearn.cluster import KMeans

    km = Pipeline([("scale", StandardScaler()), ("km", KMeans(2, n_init=1, random_state=0))]).fit(faithful)
    with pytest.raises(ValueError, match=r"last step 'km' is a KMeans"):
        emix.save(km, tmp_path / "x.emix")
    with pytest.raises(ValueError, match="clip=True"):
        scaler_affine(MinMaxScaler(clip=True).fit(faithful))
    assert not (tmp_path / "x.emix").exists()


def _rewrite(src, dst, edit_header=None, edit_arrays=None):
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(members["header.json"])
    if edit_header:
        edit_header(header)
    if edit_arrays:
        edit_arrays(members)
    members["header.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(dst, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)


def _npy(a):
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


BAD = [
    ("negative scale", lambda h: None, lambda m: m.update({"step0_scale.npy": _npy(-np.ones(2))}),
     r"scale_ must be > 0"),
    ("scale not sqrt var", lambda h: None, lambda m: m.update({"step0_scale.npy": _npy([2.0, 3.0])}),
     r"scale_ is not the square root of var_"),
    ("wrong width", lambda h: None,
     lambda m: m.update({"step0_mean.npy": _npy(np.zeros(3))}), r"shape"),
    ("unknown scaler", lambda h: h["steps"][0].update(kind="FunctionTransformer"), None,
     r"'FunctionTransformer'; this emix reads the scalers"),
    ("bad parameter", lambda h: h["steps"][0]["params"].update(with_mean="yes"), None,
     r"invalid parameters for step 'scale'"),
    ("unknown parameter", lambda h: h["steps"][0]["params"].update(func="os.system"), None,
     r"has no parameter"),
    ("width mismatch", lambda h: h["steps"][0].update(n_features_in_=3), None, r"shape|features"),
    ("arrays missing", lambda h: h["steps"][0]["arrays"].pop("var_"), None, r"holds the arrays"),
    ("nested pipeline", lambda h: h["final"]["header"].update(model="Pipeline"), None, r"another Pipeline"),
    ("nan mean", lambda h: None, lambda m: m.update({"step0_mean.npy": _npy([np.nan, 1.0])}), r"NaN"),
    ("duplicate names", lambda h: h["final"].update(name="scale"), None, r"step names must be distinct"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_corrupt_pipeline_files_are_refused(tmp_path, faithful, case):
    _, edit_header, edit_arrays, pattern = case
    pipe = Pipeline([("scale", StandardScaler()), ("gm", emix.GaussianMixture(2, random_state=0))]).fit(faithful)
    emix.save(pipe, tmp_path / "good.emix")
    _rewrite(tmp_path / "good.emix", tmp_path / "bad.emix", edit_header, edit_arrays)
    with pytest.raises(ModelFileError, match=pattern):
        emix.load(tmp_path / "bad.emix")


def test_plain_models_unchanged(tmp_path, faithful):
    """A mixture saved alone is still its own file (format 1 for a plain GaussianMixture)."""
    gm = emix.GaussianMixture(2, random_state=0).fit(faithful)
    emix.save(gm, tmp_path / "g.emix")
    with zipfile.ZipFile(tmp_path / "g.emix") as zf:
        header = json.loads(zf.read("header.json"))
    assert header["model"] == "GaussianMixture" and header["format_version"] == 1
    assert type(emix.load(tmp_path / "g.emix")) is emix.GaussianMixture


# ------------------------------------------------------------- CLI --scale
def _csv(tmp_path, X, names):
    import csv

    path = tmp_path / "data.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        w.writerows(X.tolist())
    return str(path)


@pytest.fixture(scope="module")
def wine():
    from sklearn.datasets import load_wine

    d = load_wine()
    return d.data, [str(n).replace("/", "_") for n in d.feature_names]


def test_cli_fit_scale_saves_a_pipeline_that_predict_applies(tmp_path, wine, capsys):
    from emix.cli import main

    X, names = wine
    data = _csv(tmp_path, X, names)
    model = str(tmp_path / "m.emix")
    assert main(["fit", data, "-k", "3", "--seed", "0", "--scale", "-o", model]) == 0
    out = capsys.readouterr().out
    assert "standardized features (--scale" in out
    pipe = emix.load(model)
    assert isinstance(pipe, Pipeline) and isinstance(pipe[0], StandardScaler)
    # oracle: scikit-learn's StandardScaler on the same columns
    ref = StandardScaler().fit(X)
    np.testing.assert_allclose(pipe[0].mean_, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(pipe[0].scale_, ref.scale_, rtol=1e-12)
    assert list(pipe[0].feature_names_in_) == names
    # predict applies the standardization: the labels are the Pipeline's
    out_csv = tmp_path / "p.csv"
    assert main(["predict", model, data, "-o", str(out_csv), "-q"]) == 0
    import pandas as pd

    labels = pd.read_csv(out_csv)["label"].to_numpy()
    np.testing.assert_array_equal(labels, pipe.predict(pd.DataFrame(X, columns=names)))
    # the summary gives the means in the data's units: (m - b) / a = m * sd + mean
    gm = pipe[-1]
    line = next(ln for ln in out.splitlines() if ln.startswith("proline "))
    np.testing.assert_allclose([float(v) for v in line.split()[1:]], gm.means_[:, 12] * ref.scale_[12] + ref.mean_[12],
                               rtol=1e-4)


def test_cli_scale_criteria_are_in_the_data_units(tmp_path, wine, capsys):
    """K = 1 with a full covariance is affine equivariant: --scale must give
    the same log-likelihood and BIC as no scaling (the Jacobian included),
    and score reproduces the fit's figures."""
    from emix.cli import main

    X, names = wine
    data = _csv(tmp_path, X, names)
    figures = []
    for extra in ([], ["--scale"]):
        model = str(tmp_path / f"m{len(extra)}.emix")
        assert main(["fit", data, "-k", "1", "--covariance", "full", "-o", model, "-q", *extra]) == 0
        assert main(["score", model, data, "--json"]) == 0
        figures.append(json.loads(capsys.readouterr().out))
    # oracle: scipy's Gaussian log density at the sample mean and covariance (MLE)
    ll = stats.multivariate_normal(X.mean(axis=0), np.cov(X, rowvar=False, bias=True) + 1e-6 * np.eye(13)).logpdf(X)
    for f in figures:
        np.testing.assert_allclose(f["log_likelihood"], ll.sum(), rtol=1e-6)
    np.testing.assert_allclose(figures[1]["bic"], figures[0]["bic"], rtol=1e-6)


def test_cli_select_and_report_scale(tmp_path, wine, capsys):
    from emix.cli import main

    X, names = wine
    data = _csv(tmp_path, X, names)
    model = str(tmp_path / "s.emix")
    assert main(["select", data, "-k", "1..2", "--covariance", "VVV,EEE", "--scale", "-o", model]) == 0
    out = capsys.readouterr().out
    pipe = emix.load(model)
    assert isinstance(pipe, Pipeline)
    # the table's K=1 VVV cell is the unscaled one (affine equivariance)
    assert main(["select", data, "-k", "1", "--covariance", "VVV", "-q", "--table", str(tmp_path / "t.csv")]) == 0
    import pandas as pd

    raw = float(pd.read_csv(tmp_path / "t.csv")["bic"][0])
    assert f"{raw:.2f}" in out
    html = str(tmp_path / "r.html")
    assert main(["report", data, "-k", "1..2", "--covariance", "VVV", "--scale", "-o", html, "-q"]) == 0
    with open(html) as fh:
        text = fh.read()
    assert "scaled features z = a·x + b" in text and "(standardized)" not in text.split('id="plots"')[0]
    assert main(["report", data, "--model", model, "-o", str(tmp_path / "r2.html"), "-q"]) == 0
    # sample is in the data's units: its mean is near the data's
    assert main(["sample", model, "-n", "4000", "--seed", "1", "-o", str(tmp_path / "s.csv")]) == 0
    sample = pd.read_csv(tmp_path / "s.csv")[names].to_numpy()
    np.testing.assert_allclose(sample.mean(axis=0), X.mean(axis=0), rtol=0.05)


def test_cli_scale_usage_errors(tmp_path, wine, capsys):
    from emix.cli import main

    X, names = wine
    data = _csv(tmp_path, X, names)
    out = str(tmp_path / "m.emix")
    assert main(["fit", data, "-k", "2", "--scale", "--chunk-rows", "50", "-o", out]) == 2
    assert "--scale cannot be combined with --chunk-rows" in capsys.readouterr().err
    assert main(["fit", data, "-k", "2", "--scale", "--family", "poisson", "-o", out]) == 2
    assert "--scale is for --family gaussian only" in capsys.readouterr().err


def test_cli_notes_a_dominant_feature(tmp_path, wine, capsys):
    from emix.cli import main

    X, names = wine
    data = _csv(tmp_path, X, names)
    assert main(["fit", data, "-k", "2", "-o", str(tmp_path / "m.emix"), "--seed", "0"]) == 0
    err = capsys.readouterr().err
    # oracle: numpy's variances (proline's is 99.8% of the total)
    var = X.var(axis=0)
    assert f"'proline' holds {100 * var.max() / var.sum():.1f}% of the variance" in err and "--scale" in err
    assert main(["fit", data, "-k", "2", "-o", str(tmp_path / "m.emix"), "--seed", "0", "--scale", "-f"]) == 0
    assert "holds" not in capsys.readouterr().err
