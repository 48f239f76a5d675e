"""Model files of MixtureModel for every registered family: round trips that
predict and score bit for bit like the saved model, and corrupt or hostile
files that give ModelFileError and execute nothing.

The round trip is parametrized over ``emix.families.family_names()``; every
registered family needs a data generator in ``DATA`` (a family without one
fails ``test_every_registered_family_has_a_generator``)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emix
from emix.families import family_names
from emix.io import _from_json, _to_json
from emix.testing import edit_model_file, model_file_members, npy_bytes, write_model_file_members


# ------------------------------------------------------------ data per family
def _gaussian(rng, n=200):
    return np.vstack([rng.normal(0, 1, (n // 2, 2)), rng.normal(6, 1, (n - n // 2, 2))]), {}


def _poisson(rng, n=200):
    return np.vstack([rng.poisson(1.0, (n // 2, 3)), rng.poisson(8.0, (n - n // 2, 3))]).astype(float), {}


def _student_t(rng, n=200):
    return np.vstack([rng.standard_t(3, (n // 2, 2)), rng.standard_t(3, (n - n // 2, 2)) + 8]), {}


def _bernoulli(rng, n=200):
    p = np.array([[0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.9, 0.7]])
    z = rng.integers(0, 2, n)
    return (rng.uniform(size=(n, 4)) < p[z]).astype(float), {}


def _categorical(rng, n=200):
    levels = np.array(["red", "green", "blue"], dtype=object)
    z = rng.integers(0, 2, n)
    p = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7]])
    cols = [levels[[rng.choice(3, p=p[k]) for k in z]] for _ in range(3)]
    return np.column_stack(cols), {}


def _mixed(rng, n=200):
    pd = pytest.importorskip("pandas")
    z = rng.integers(0, 2, n)
    df = pd.DataFrame({
        "x": rng.normal(0, 1, n) + 5 * z,
        "count": rng.poisson(np.where(z == 1, 8.0, 1.0)),
        "colour": pd.Categorical(np.where(z == 1, "red", "blue")),
    })
    return df, {"family": {"x": "gaussian", "count": "poisson", "colour": "categorical"}}


DATA = {"gaussian": _gaussian, "poisson": _poisson, "student_t": _student_t, "bernoulli": _bernoulli,
        "categorical": _categorical, "mixed": _mixed}
FAMILIES = list(family_names())


def _fit(name, K=2, seed=0, **kw):
    X, extra = DATA[name](np.random.default_rng(seed))
    kwargs = {"family": name, "random_state": 0, **extra, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        return emix.MixtureModel(K, **kwargs).fit(X), X


def _fitted_names(model):
    if model._is_gaussian():
        return ["weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"]
    names = ["weights_", *[p + "_" for p in model.family_.param_names]]
    return names + [n for n in ("precisions_",) if hasattr(model, n)]


def assert_same_model(a, b, X):
    """Same class, parameters, fitted attributes (dtype and bits), and the
    same predictions and scores, bit for bit."""
    assert type(a) is type(b)
    for name in _fitted_names(a):
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    for name in ("converged_", "n_iter_", "lower_bound_", "n_features_in_"):
        assert getattr(a, name) == getattr(b, name), name
    assert list(a.lower_bounds_) == list(b.lower_bounds_)
    if hasattr(a, "feature_names_in_"):
        np.testing.assert_array_equal(a.feature_names_in_, b.feature_names_in_)
    else:
        assert not hasattr(b, "feature_names_in_")
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    pa.pop("callback", None), pb.pop("callback", None)
    assert pa == pb
    if not a._is_gaussian():
        assert a.family_.config() == b.family_.config()
        assert _same_value(a.encoding_, b.encoding_)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert a.score(X) == b.score(X)
    assert a.bic(X) == b.bic(X)
    assert a.icl(X) == b.icl(X)


def _same_value(a, b):
    """Equal, with the same types all the way down (a tuple is not a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool(np.all((a == b) | _both_nan(a, b)))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_value(a[k], b[k]) and type(k) is type(kb)
                                          for k, kb in zip(a, b))
    if isinstance(a, (float, np.floating)) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _both_nan(a, b):
    if a.dtype.kind != "f":
        return np.zeros(a.shape, bool)
    return np.isnan(a) & np.isnan(b)


# ------------------------------------------------------------- round trips
def test_every_registered_family_has_a_generator():
    missing = [name for name in family_names() if name not in DATA]
    assert not missing, f"add a data generator to tests/test_io_families.py::DATA for {missing}"


@pytest.mark.parametrize("name", FAMILIES)
def test_round_trip_of_every_family(tmp_path, name):
    model, X = _fit(name)
    path = tmp_path / f"{name}.emix"
    emix.save(model, path)
    loaded = emix.load(path)
    assert_same_model(model, loaded, X)
    header = json.loads(model_file_members(path)["header.json"])
    assert header["model"] == "MixtureModel" and header["format_version"] == 2
    assert header["family"]["name"] == name
    # the sample is the model's too (same parameters, same random_state)
    np.testing.assert_array_equal(np.asarray(model.sample(7)[1]), np.asarray(loaded.sample(7)[1]))


@pytest.mark.parametrize("name", FAMILIES)
def test_loaded_model_refits_like_the_saved_one(tmp_path, name):
    model, X = _fit(name, max_iter=5)
    emix.save(model, tmp_path / "m.emix")
    loaded = emix.load(tmp_path / "m.emix")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        model.fit(X)
        loaded.fit(X)
    assert_same_model(model, loaded, X)


def test_file_holds_no_pickle_and_declares_every_array(tmp_path):
    model, _ = _fit("poisson")
    emix.save(model, tmp_path / "m.emix")
    members = model_file_members(tmp_path / "m.emix")
    header = json.loads(members["header.json"])
    assert sorted(members) == ["header.json", "rates.npy", "weights.npy"]
    assert header["components"] == ["rates"]
    assert header["arrays"]["rates"] == {"shape": [2, 3], "dtype": "<f8"}
    for raw in members.values():
        assert b"\x80\x04" not in raw[:64] and b"\x80\x05" not in raw[:64]


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "VEV", "EII"])
@pytest.mark.parametrize("dof", ["per_component", "shared", 4.0])
def test_student_t_round_trip_every_structure(tmp_path, covariance_type, dof):
    if "student_t" not in FAMILIES:
        pytest.fail("the student_t family is not registered")
    X, _ = _student_t(np.random.default_rng(1))
    model = emix.MixtureModel(2, family="student_t", covariance_type=covariance_type, random_state=0,
                              family_options={"dof": dof, "dof_bounds": (1.0, 100.0)}).fit(X)
    emix.save(model, tmp_path / "t.emix")
    assert_same_model(model, emix.load(tmp_path / "t.emix"), X)


def test_subclass_round_trip_keeps_the_class(tmp_path):
    if not hasattr(emix, "StudentTMixture"):
        pytest.fail("emix.StudentTMixture is not exported")
    X, _ = _student_t(np.random.default_rng(2))
    model = emix.StudentTMixture(2, covariance_type="diag", dof="shared", random_state=3).fit(X)
    emix.save(model, tmp_path / "t.emix")
    loaded = emix.load(tmp_path / "t.emix")
    assert type(loaded) is emix.StudentTMixture
    assert json.loads(model_file_members(tmp_path / "t.emix")["header.json"])["model"] == "StudentTMixture"
    assert_same_model(model, loaded, X)
    np.testing.assert_array_equal(model.precisions_, loaded.precisions_)
    np.testing.assert_array_equal(model.scale_weights(X), loaded.scale_weights(X))


def test_gaussian_family_round_trip_is_the_inner_gaussian_mixture(tmp_path):
    X, _ = _gaussian(np.random.default_rng(3))
    model = emix.MixtureModel(3, covariance_type="diag", random_state=1, n_init=2).fit(X)
    emix.save(model, tmp_path / "g.emix")
    loaded = emix.load(tmp_path / "g.emix")
    assert type(loaded._gm) is emix.GaussianMixture
    assert_same_model(model, loaded, X)
    header = json.loads(model_file_members(tmp_path / "g.emix")["header.json"])
    assert header["gaussian"]["params"]["covariance_type"] == "diag"


def test_feature_names_and_options_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    X, _ = _poisson(np.random.default_rng(4))
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    model = emix.MixtureModel(2, family="poisson", family_options={"pseudo_count": 0.5}, random_state=None).fit(df)
    emix.save(model, tmp_path / "m.emix")
    loaded = emix.load(tmp_path / "m.emix")
    np.testing.assert_array_equal(loaded.feature_names_in_, ["a", "b", "c"])
    assert loaded.family_.config() == model.family_.config()
    assert loaded.random_state is None
    np.testing.assert_array_equal(loaded.predict_proba(df), model.predict_proba(df))
    with pytest.raises(ValueError, match="Feature names"):
        loaded.predict(pd.DataFrame(X, columns=["x", "y", "z"]))


def test_random_state_instance_is_stored_as_none(tmp_path):
    model, _ = _fit("poisson", random_state=np.random.RandomState(0))
    emix.save(model, tmp_path / "m.emix")
    assert emix.load(tmp_path / "m.emix").random_state is None


def test_gaussian_mixture_files_are_unchanged(tmp_path):
    """A GaussianMixture's file is the version-1 layout of before."""
    X, _ = _gaussian(np.random.default_rng(5))
    gm = emix.GaussianMixture(2, random_state=0).fit(X)
    emix.save(gm, tmp_path / "g.emix")
    header = json.loads(model_file_members(tmp_path / "g.emix")["header.json"])
    assert list(header) == ["format", "format_version", "emix_version", "model", "params", "random_state",
                            "fitted", "arrays"]
    assert header["format_version"] == 1 and header["model"] == "GaussianMixture"


# --------------------------------------------------------------- save errors
def test_save_refuses_what_json_cannot_hold(tmp_path):
    model, _ = _fit("poisson")
    model.set_params(family_options={"pseudo_count": object()})  # not used until the next fit
    with pytest.raises(ValueError, match=r"Cannot save parameter 'family_options'.*object"):
        emix.save(model, tmp_path / "m.emix")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_a_class_emix_does_not_export(tmp_path):
    class Mine(emix.MixtureModel):
        pass

    X, _ = _poisson(np.random.default_rng(0))
    model = Mine(2, family="poisson", random_state=0).fit(X)
    with pytest.raises(ValueError, match=r"Cannot save a Mine: model files hold emix's own estimators"):
        emix.save(model, tmp_path / "m.emix")


def test_save_unfitted_mixture_raises(tmp_path):
    with pytest.raises(emix.NotFittedError):
        emix.save(emix.MixtureModel(2, family="poisson"), tmp_path / "m.emix")


def test_save_refuses_a_model_refamilied_after_fit(tmp_path):
    model, _ = _fit("poisson")
    model.set_params(family="gaussian")
    with pytest.raises(ValueError, match="fitted with another family"):
        emix.save(model, tmp_path / "m.emix")


# ------------------------------------------------------------- JSON codec
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                     st.text(max_size=5))
_arrays = st.one_of(
    st.lists(st.integers(-100, 100), max_size=6).map(lambda v: np.array(v, dtype=np.int64)),
    st.lists(st.floats(allow_nan=True, width=32), max_size=6).map(lambda v: np.array(v, dtype=np.float32)),
    st.lists(st.text(max_size=4), min_size=1, max_size=6).map(lambda v: np.array(v).reshape(1, -1)),
    st.lists(st.one_of(st.none(), st.text(max_size=3), st.integers(-5, 5)), max_size=4).map(
        lambda v: np.array(v + [None], dtype=object)),
    st.integers(0, 255).map(np.uint8), st.booleans().map(np.bool_), st.floats(width=32).map(np.float32),
)
_values = st.recursive(
    st.one_of(_scalars, _arrays),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-3, 3), st.booleans()), inner, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(_values)
def test_json_codec_round_trips_values_and_types(value):
    text = json.dumps(_to_json(value, "value"), allow_nan=False)  # strict JSON: no NaN literals
    assert _same_value(_from_json(json.loads(text)), value)


@pytest.mark.parametrize("value", [object(), {1, 2}, np.array([object()], dtype=object), lambda: 0,
                                   np.array([1 + 2j]), b"bytes"])
def test_json_codec_refuses_other_values(value):
    with pytest.raises(ValueError, match="Cannot save x"):
        _to_json(value, "x")


@pytest.mark.parametrize("doc", [
    {"$pickle": "cos\nsystem\n"},
    {"$ndarray": {"dtype": "|O", "shape": [1], "data": [{"a": 1}]}},
    {"$ndarray": {"dtype": "<U999999999", "shape": [1], "data": ["a"]}},
    {"$ndarray": {"dtype": "<f8", "shape": [3], "data": [1.0]}},
    {"$ndarray": {"dtype": "<f8", "shape": [-1], "data": []}},
    {"$ndarray": {"dtype": "V8", "shape": [1], "data": [1]}},
    {"$ndarray": {"dtype": "[('a', '<f8')]", "shape": [1], "data": [1]}},
    {"$numpy": ["<i1", 1000]},
    {"$numpy": ["|O", 1]},
    {"$float": "1e400"},
    {"$dict": [[[1], 2]]},
    {"$tuple": "abc"},
])
def test_json_codec_refuses_malformed_documents(doc):
    with pytest.raises((ValueError, OverflowError)):
        _from_json(doc)


# --------------------------------------------------------- corrupt files
@pytest.fixture(scope="module")
def poisson_file(tmp_path_factory):
    model, _ = _fit("poisson")
    path = tmp_path_factory.mktemp("files") / "poisson.emix"
    emix.save(model, path)
    return path


@pytest.fixture(scope="module")
def student_t_file(tmp_path_factory):
    X, _ = _student_t(np.random.default_rng(0))
    model = emix.MixtureModel(2, family="student_t", random_state=0).fit(X)
    path = tmp_path_factory.mktemp("files") / "t.emix"
    emix.save(model, path)
    return path


@pytest.fixture(scope="module")
def gaussian_family_file(tmp_path_factory):
    X, _ = _gaussian(np.random.default_rng(0))
    model = emix.MixtureModel(2, random_state=0).fit(X)
    path = tmp_path_factory.mktemp("files") / "g.emix"
    emix.save(model, path)
    return path


def _array(members, name):
    import io

    return np.lib.format.read_array(io.BytesIO(members[name + ".npy"]), allow_pickle=False)


def _set(members, header, name, a, declare=True):
    a = np.asarray(a)
    members[name + ".npy"] = npy_bytes(a)
    if declare:
        header["arrays"][name] = {"shape": list(a.shape), "dtype": a.dtype.str}


POISSON_EDITS = [
    ("rates of the wrong shape", lambda m, h: _set(m, h, "rates", np.ones((2, 4))),
     r"invalid poisson parameters for 2 components and 3 features.*rates must have shape \(2, 3\)"),
    ("rates shape differs from header", lambda m, h: _set(m, h, "rates", np.ones((2, 4)), declare=False),
     r"array 'rates' has shape \(2, 4\), the header says \[2, 3\]"),
    ("NaN rate", lambda m, h: _set(m, h, "rates", np.where(np.eye(2, 3) > 0, np.nan, 1.0)), r"'rates' contains NaN"),
    ("infinite weight", lambda m, h: _set(m, h, "weights", np.array([np.inf, 0.5])), r"'weights' contains NaN"),
    ("negative rate", lambda m, h: _set(m, h, "rates", -np.ones((2, 3))), r"rates must be finite and >= 0"),
    ("object rates", lambda m, h: m.update({"rates.npy": npy_bytes(np.array([[1, "a", None]] * 2, dtype=object),
                                                                   allow_pickle=True)}),
     r"array 'rates' has dtype object"),
    ("complex rates", lambda m, h: _set(m, h, "rates", np.ones((2, 3), dtype=complex)), r"'rates' has dtype complex128"),
    ("weights do not sum to 1", lambda m, h: _set(m, h, "weights", np.array([0.5, 0.6])), r"sum to 1; they sum to 1\.1"),
    ("negative weight", lambda m, h: _set(m, h, "weights", np.array([1.5, -0.5])), r"weights must be >= 0"),
    ("weights matrix", lambda m, h: _set(m, h, "weights", np.full((2, 1), 0.5)), r"weights must have shape"),
    ("integer weights", lambda m, h: _set(m, h, "weights", np.array([1, 0])), r"'weights' has dtype int64; expected float"),
    ("n_components mismatch", lambda m, h: h["params"].update(n_components=3), r"n_components is 3 but weights has 2"),
    ("unknown family", lambda m, h: h["family"].update(name="os.system"), r"cannot rebuild the family 'os.system'"),
    ("family not a string", lambda m, h: h["family"].update(name=["poisson"]), r"the header's family must be"),
    ("bad family option", lambda m, h: h["family"]["options"].update(pseudo_count=-1.0),
     r"cannot rebuild the family 'poisson'.*pseudo_count"),
    ("unknown family option", lambda m, h: h["family"]["options"].update(exec="rm -rf"),
     r"cannot rebuild the family 'poisson'"),
    ("family differs from the parameter", lambda m, h: h["params"].update(family="student_t"),
     r"family parameter 'student_t' is a 'student_t' family but the file holds a 'poisson' family"),
    ("family parameter gaussian", lambda m, h: h["params"].update(family="gaussian"),
     r"family parameter is 'gaussian' but the file holds a 'poisson' family"),
    ("unknown family parameter", lambda m, h: h["params"].update(family="banana"), r"invalid estimator parameters"),
    ("wrong class name", lambda m, h: h.update(model="KMeans"), r"unknown model type 'KMeans'"),
    ("dotted class name", lambda m, h: h.update(model="subprocess.Popen"), r"unknown model type 'subprocess.Popen'"),
    ("non-estimator emix name", lambda m, h: h.update(model="load"), r"unknown model type 'load'"),
    ("GaussianMixture header on a family file", lambda m, h: h.update(model="GaussianMixture"),
     r"header declares no array 'means'"),
    ("format_version 1", lambda m, h: h.update(format_version=1), r"format_version 1"),
    ("unknown parameter", lambda m, h: h["params"].update(evil=1), r"MixtureModel has no parameter\(s\) \['evil'\]"),
    ("stored callback", lambda m, h: h["params"].update(callback="print"), r"callback parameter is never stored"),
    ("bad parameter value", lambda m, h: h["params"].update(tol=-1.0), r"invalid estimator parameters.*tol"),
    ("random_state out of range", lambda m, h: h["params"].update(random_state=-4), r"random_state must be null"),
    ("components differ", lambda m, h: h.update(components=["rates", "extra"]), r"header's components"),
    ("extra array", lambda m, h: _set(m, h, "extra", np.ones(2)), r"unexpected \['extra'\]"),
    ("missing array", lambda m, h: h["arrays"].pop("rates"), r"missing \['rates'\]"),
    ("missing member", lambda m, h: m.pop("rates.npy"), r"no member 'rates.npy'"),
    ("params not an object", lambda m, h: h.update(params=[1, 2]), r"'params' must be an object"),
    ("fitted missing", lambda m, h: h.pop("fitted"), r"lacks the 'fitted' object"),
    ("fitted attribute wrong type", lambda m, h: h["fitted"].update(n_iter_="many"), r"fitted attributes are missing"),
    ("n_features_in_ mismatch", lambda m, h: h["fitted"].update(n_features_in_=5),
     r"invalid poisson parameters for 2 components and 5 features"),
    ("n_features_in_ zero", lambda m, h: h["fitted"].update(n_features_in_=0), r"n_features_in_ must be >= 1"),
    ("feature names count", lambda m, h: h["fitted"].update(feature_names_in_=["a"]), r"feature_names_in_ has 1 names for 3"),
    ("feature names not strings", lambda m, h: h["fitted"].update(feature_names_in_=[{"a": 1}, 2, 3]),
     r"feature_names_in_ must be a list of strings"),
    ("encoding missing", lambda m, h: h.pop("encoding"), r"lacks the 'encoding' entry"),
    ("encoding with unknown tag", lambda m, h: h.update(encoding={"$pickle": "x"}), r"invalid encoding_"),
    ("tagged parameter with unknown tag", lambda m, h: h["params"].update(family_options={"$eval": "1"}),
     r"invalid estimator parameters.*unknown or malformed tagged value"),
]


@pytest.mark.parametrize("edit,match", [e[1:] for e in POISSON_EDITS], ids=[e[0] for e in POISSON_EDITS])
def test_invalid_poisson_file_raises_model_file_error(tmp_path, poisson_file, edit, match):
    bad = edit_model_file(poisson_file, tmp_path / "bad.emix", edit)
    with pytest.raises(emix.ModelFileError, match=match) as info:
        emix.load(bad)
    assert str(bad) in str(info.value)


def _pc(m):
    return _array(m, "precisions_cholesky")


STUDENT_T_EDITS = [
    ("non-positive dof", lambda m, h: _set(m, h, "dof", np.array([0.0, 3.0])), r"dof must be a finite array"),
    ("means of the wrong shape", lambda m, h: _set(m, h, "means", np.zeros((2, 3))), r"means must be a finite array"),
    ("transposed precision factor", lambda m, h: _set(m, h, "precisions_cholesky", np.transpose(_pc(m), (0, 2, 1))),
     r"precisions_cholesky is not the stored factor"),
    ("scaled covariances", lambda m, h: _set(m, h, "covariances", 2.0 * _array(m, "covariances")),
     r"do not describe the same covariances"),
    ("non-PD covariance", lambda m, h: _set(m, h, "covariances", np.stack([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])),
     r"covariance 1 is not positive definite"),
    ("unknown covariance type option", lambda m, h: h["family"]["options"].update(covariance_type="banana"),
     r"cannot rebuild the family 'student_t'"),
    ("options that do not rebuild", lambda m, h: h["family"]["options"].update(dof_bounds={"$tuple": [0.5, 200.0]}),
     r"options do not rebuild the stored family"),
]


@pytest.mark.parametrize("edit,match", [e[1:] for e in STUDENT_T_EDITS], ids=[e[0] for e in STUDENT_T_EDITS])
def test_invalid_student_t_file_raises_model_file_error(tmp_path, student_t_file, edit, match):
    bad = edit_model_file(student_t_file, tmp_path / "bad.emix", edit)
    with pytest.raises(emix.ModelFileError, match=match):
        emix.load(bad)


GAUSSIAN_EDITS = [
    ("NaN mean", lambda m, h: _set(m, h, "means", np.array([[np.nan, 0.0], [1.0, 1.0]])), r"'means' contains NaN"),
    ("inner n_components", lambda m, h: h["gaussian"]["params"].update(n_components=3),
     r"n_components is 3 but means has 2 rows"),
    ("outer n_components", lambda m, h: h["params"].update(n_components=3),
     r"n_components is 3 but the Gaussian model has 2"),
    ("gaussian entry missing", lambda m, h: h.pop("gaussian"), r"needs an empty family options object and a 'gaussian'"),
    ("family parameter poisson", lambda m, h: h["params"].update(family="poisson"),
     r"family parameter is 'poisson' but the file holds a 'gaussian' family"),
    ("non-PD covariance", lambda m, h: _set(m, h, "covariances", np.stack([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])),
     r"covariance 1 is not positive definite"),
]


@pytest.mark.parametrize("edit,match", [e[1:] for e in GAUSSIAN_EDITS], ids=[e[0] for e in GAUSSIAN_EDITS])
def test_invalid_gaussian_family_file_raises_model_file_error(tmp_path, gaussian_family_file, edit, match):
    bad = edit_model_file(gaussian_family_file, tmp_path / "bad.emix", edit)
    with pytest.raises(emix.ModelFileError, match=match):
        emix.load(bad)


@pytest.mark.parametrize("text,match", [
    ("[" * 100_000 + "]" * 100_000, r"header.json is not valid JSON \(RecursionError"),
    ('{"format": "emix-model", "format_version": 2, "model": "MixtureModel", "params": {"n_components": '
     + "9" * 5000 + "}}", r"header.json is not valid JSON"),
    ('{"format": "emix-model", "format_version": 2, "model": "MixtureModel", "params": {"family": "poisson"}, "family": '
     + '{"name": "poisson", "options": ' + '{"a": ' * 200 + "1" + "}" * 200 + "}, \"arrays\": {}}",
     r"cannot rebuild the family 'poisson' \(.*nested deeper"),
    ('{"format": "emix-model", "format_version": 2, "model": "MixtureModel", "params": {"n_components": NaN}, '
     '"family": {"name": "poisson", "options": {}}, "arrays": {}}', r"invalid estimator parameters"),
    ('{"format": "emix-model", "format_version": 2, "model": "MixtureModel", "params": {"n_components": 2, '
     '"family": "poisson"}, "family": {"name": "poisson", "options": {}}, "arrays": {}, "components": ["rates"], '
     '"fitted": {"converged_": true, "n_iter_": 1, "lower_bound_": 0, "lower_bounds_": [], "n_features_in_": 3}, '
     '"encoding": null}',
     r"header's arrays do not match the poisson family's: missing \['rates', 'weights'\]"),
])
def test_hostile_headers_raise_model_file_error(tmp_path, poisson_file, text, match):
    members = model_file_members(poisson_file)
    members["header.json"] = text.encode()
    write_model_file_members(tmp_path / "bad.emix", members)
    with pytest.raises(emix.ModelFileError, match=match):
        emix.load(tmp_path / "bad.emix")


def test_header_over_the_size_limit(tmp_path, poisson_file):
    def edit(members, header):
        header["encoding"] = ["x" * 1000] * 2000  # a 2 MB header

    bad = edit_model_file(poisson_file, tmp_path / "bad.emix", edit)
    with pytest.raises(emix.ModelFileError, match=r"member 'header.json' declares \d+ bytes, over the limit"):
        emix.load(bad)


# ------------------------------------------- encodings the family refuses
def _drop_last_column_labels(m, h):
    h["encoding"] = h["encoding"][:-1]


def _mixed_without_groups(m, h):
    h["encoding"].pop("groups")


ENCODING_EDITS = {
    "categorical": (_drop_last_column_labels, r"invalid encoding_ for the categorical family"),
    "bernoulli": (_drop_last_column_labels, r"invalid encoding_ for the bernoulli family"),
    "mixed": (_mixed_without_groups, r"invalid encoding_ for the mixed family.*no 'columns'/'groups'"),
}


@pytest.mark.parametrize("name", [n for n in FAMILIES if n in ENCODING_EDITS])
def test_encoding_the_family_refuses_raises_model_file_error(tmp_path, name):
    model, _ = _fit(name)
    emix.save(model, tmp_path / "m.emix")
    edit, match = ENCODING_EDITS[name]
    bad = edit_model_file(tmp_path / "m.emix", tmp_path / "bad.emix", edit)
    with pytest.raises(emix.ModelFileError, match=match):
        emix.load(bad)
