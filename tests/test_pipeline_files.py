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
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

import emix
from emix.datasets import load_faithful
from emix.exceptions import ModelFileError
from emix.io import scaler_affine


@pytest.fixture(scope="module")
def faithful():
    X, names = load_faithful()
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
