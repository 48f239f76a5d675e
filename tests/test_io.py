"""Model files: round trips, and corrupt, truncated or hostile files that give
ModelFileError and execute nothing."""

import io
import json
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest

import emix
from emix.testing import edit_model_file, make_mixture, model_file_members, npy_bytes, write_model_file_members

COV_TYPES = ["full", "tied", "diag", "spherical"]
FITTED_ARRAYS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")


@pytest.fixture(scope="module")
def data():
    X, _, _ = make_mixture(120, 2, 2, random_state=0)
    return X


def _fit(X, covariance_type="full", K=2, dtype=np.float64, **kw):
    return emix.GaussianMixture(K, covariance_type=covariance_type, random_state=0, **kw).fit(X.astype(dtype))


def _assert_same_model(a, b, X):
    for name in FITTED_ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.converged_ == b.converged_
    assert a.n_iter_ == b.n_iter_
    assert a.lower_bound_ == b.lower_bound_
    assert list(a.lower_bounds_) == list(b.lower_bounds_)
    assert a.n_features_in_ == b.n_features_in_
    pa, pb = a.get_params(), b.get_params()
    assert pa.keys() == pb.keys()
    for k in pa:
        if isinstance(pa[k], np.ndarray) or isinstance(pb[k], np.ndarray):
            np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
        elif k != "callback":
            assert pa[k] == pb[k], k
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert a.bic(X) == b.bic(X)
    with warnings.catch_warnings():
        # float32 'tied' covariances can be 1 ulp asymmetric, which makes numpy's
        # multivariate_normal warn: see test_robustness.py::test_sample_from_float32_model_does_not_warn
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_array_equal(a.sample(5)[0], b.sample(5)[0])


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_round_trip(tmp_path, data, covariance_type, K, dtype):
    # K == n_features (2) is the case where a diag (K, D) array looks like a matrix
    gm = _fit(data, covariance_type, K, dtype)
    path = tmp_path / "model.emix"
    emix.save(gm, path)
    loaded = emix.load(path)
    assert type(loaded) is emix.GaussianMixture
    _assert_same_model(gm, loaded, data.astype(dtype))
    assert not hasattr(loaded, "feature_names_in_")


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_round_trip_with_init_arrays_and_str_path(tmp_path, data, covariance_type):
    P = {"full": np.stack([np.eye(2)] * 2), "tied": np.eye(2), "diag": np.ones((2, 2)), "spherical": np.ones(2)}
    gm = _fit(data, covariance_type, weights_init=[0.3, 0.7], means_init=data[:2],
              precisions_init=P[covariance_type], reg_covar=1e-4, tol=1e-5, max_iter=50)
    path = str(tmp_path / "model.emix")
    emix.save(gm, path)
    _assert_same_model(gm, emix.load(path), data)


def test_round_trip_keeps_feature_names(tmp_path, data):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(data, columns=["height", "weight"])
    gm = emix.GaussianMixture(2, random_state=0).fit(df)
    emix.save(gm, tmp_path / "m.emix")
    loaded = emix.load(tmp_path / "m.emix")
    np.testing.assert_array_equal(loaded.feature_names_in_, ["height", "weight"])
    np.testing.assert_array_equal(loaded.predict(df), gm.predict(df))
    with pytest.raises(ValueError, match="Feature names"):
        loaded.predict(pd.DataFrame(data, columns=["a", "b"]))


def test_round_trip_of_ill_conditioned_float32_model(tmp_path):
    X, _, _ = make_mixture(200, 2, 2, random_state=1)
    X = np.c_[X + 1e4, np.full(200, 7.0)].astype(np.float32)  # far away, with a constant column
    for ct in COV_TYPES:
        gm = _fit(X, ct, 2, np.float32)
        emix.save(gm, tmp_path / f"{ct}.emix")
        _assert_same_model(gm, emix.load(tmp_path / f"{ct}.emix"), X)


def test_loaded_model_can_be_refitted(tmp_path, data):
    gm = _fit(data, warm_start=True)
    emix.save(gm, tmp_path / "m.emix")
    loaded = emix.load(tmp_path / "m.emix")
    loaded.fit(data)
    gm.fit(data)
    np.testing.assert_array_equal(loaded.means_, gm.means_)


def test_file_holds_no_pickle(tmp_path, data):
    emix.save(_fit(data), tmp_path / "m.emix")
    with zipfile.ZipFile(tmp_path / "m.emix") as zf:
        names = zf.namelist()
        assert "header.json" in names
        header = json.loads(zf.read("header.json"))
        assert header["format_version"] == 1
        for name in names:
            raw = zf.read(name)
            assert b"\x80\x04" not in raw[:64] and b"\x80\x05" not in raw[:64]  # no pickle protocol header
            if name.endswith(".npy"):
                a = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
                assert a.dtype.kind == "f"


def test_save_unfitted_raises(tmp_path):
    with pytest.raises(emix.NotFittedError):
        emix.save(emix.GaussianMixture(2), tmp_path / "m.emix")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------- atomic save
def test_save_is_atomic_on_failure(tmp_path, data, monkeypatch):
    path = tmp_path / "m.emix"
    path.write_bytes(b"previous model")

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", broken)
    with pytest.raises(OSError, match="No space left"):
        emix.save(_fit(data), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.emix"]
    assert path.read_bytes() == b"previous model"


def test_save_overwrites_atomically(tmp_path, data):
    path = tmp_path / "m.emix"
    emix.save(_fit(data, "full"), path)
    emix.save(_fit(data, "diag"), path)
    assert emix.load(path).covariance_type == "diag"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.emix"]


def test_save_into_missing_folder_leaves_nothing(tmp_path, data):
    with pytest.raises(OSError):
        emix.save(_fit(data), tmp_path / "missing" / "m.emix")
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------- corrupt, hostile files
_members = model_file_members
_write_members = write_model_file_members
_npy = npy_bytes


def _tampered(tmp_path, data, edit, covariance_type="full", K=2):
    """Save a model, apply edit(members, header) and write it back."""
    path = tmp_path / "m.emix"
    emix.save(_fit(data, covariance_type, K), path)
    return edit_model_file(path, tmp_path / "bad.emix", edit)


def _array(members, name):
    return np.lib.format.read_array(io.BytesIO(members[name + ".npy"]), allow_pickle=False)


def _set(members, name, a):
    members[name + ".npy"] = _npy(a)


class _CreatesMarker:
    """Unpickling this object would create the file at ``path``: builtins.open
    is always importable, so nothing but a refusal to unpickle can stop it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_object_array_is_never_unpickled(tmp_path, data):
    marker = tmp_path / "pwned"
    payload = np.empty(2, dtype=object)
    payload[0] = _CreatesMarker(marker)
    payload[1] = 0.5
    hostile = _npy(payload, allow_pickle=True)
    # the payload is live: unpickling it does create the marker
    probe = tmp_path / "probe"
    live = np.empty(1, dtype=object)
    live[0] = _CreatesMarker(probe)
    np.lib.format.read_array(io.BytesIO(_npy(live, allow_pickle=True)), allow_pickle=True)
    assert probe.exists()

    for member in ("weights", "means", "covariances", "precisions_cholesky"):
        def edit(members, header, member=member):
            members[member + ".npy"] = hostile
        bad = _tampered(tmp_path, data, edit)
        with pytest.raises(emix.ModelFileError, match=rf"array '{member}' has dtype object; expected float"):
            emix.load(bad)
        assert not marker.exists(), member


def test_pickle_disguised_as_header_is_not_loaded(tmp_path, data):
    marker = tmp_path / "pwned"

    def edit(members, header):
        pass

    bad = _tampered(tmp_path, data, edit)
    members = _members(bad)
    members["header.json"] = pickle.dumps(_CreatesMarker(marker))
    _write_members(bad, members)
    with pytest.raises(emix.ModelFileError, match="header.json is not valid JSON"):
        emix.load(bad)
    assert not marker.exists()


def test_plain_pickle_file_is_rejected(tmp_path, data):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_CreatesMarker(marker)))
    with pytest.raises(emix.ModelFileError, match="not a valid zip archive"):
        emix.load(path)
    assert not marker.exists()


EDITS = [
    ("missing member", lambda m, h: m.pop("covariances.npy"), r"no member 'covariances.npy'"),
    ("missing header", lambda m, h: h.clear() or m.pop("header.json"), r"no member 'header.json'|does not describe"),
    ("undeclared array", lambda m, h: h["arrays"].pop("means"), r"header declares no array 'means'"),
    ("wrong format_version", lambda m, h: h.update(format_version=99), r"format_version 99 is not supported"),
    ("format_version missing", lambda m, h: h.pop("format_version"), r"format_version None is not supported"),
    ("foreign format", lambda m, h: h.update(format="other"), r"does not describe an emix model"),
    ("unknown model", lambda m, h: h.update(model="KMeans"), r"unknown model type 'KMeans'"),
    ("no params", lambda m, h: h.pop("params"), r"lacks 'params', 'fitted' or 'arrays'"),
    ("unknown covariance_type", lambda m, h: h["params"].update(covariance_type="banana"),
     r"covariance_type must be one of .*Got 'banana'"),
    ("bad estimator parameter", lambda m, h: h["params"].update(reg_covar=-1.0), r"invalid estimator parameters.*reg_covar"),
    ("n_components mismatch", lambda m, h: h["params"].update(n_components=3), r"n_components is 3 but means has 2 rows"),
    ("NaN mean", lambda m, h: _set(m, "means", np.array([[np.nan, 0.0], [1.0, 1.0]])), r"'means' contains NaN"),
    ("inf covariance", lambda m, h: _set(m, "covariances", np.full((2, 2, 2), np.inf)), r"'covariances' contains NaN or infinite"),
    ("weights do not sum to 1", lambda m, h: _set(m, "weights", np.array([0.5, 0.6])), r"sum to 1; they sum to 1\.1"),
    ("negative weight", lambda m, h: _set(m, "weights", np.array([1.5, -0.5])), r"weights must be >= 0"),
    ("integer array", lambda m, h: _set(m, "weights", np.array([1, 0])), r"'weights' has dtype int64"),
    ("shape differs from header", lambda m, h: _set(m, "weights", np.array([0.2, 0.3, 0.5])),
     r"'weights' has shape \(3,\), the header says \[2\]"),
    ("mixed dtypes", lambda m, h: _set(m, "weights", np.array([0.5, 0.5], dtype=np.float32))
     or h["arrays"]["weights"].update(dtype="<f4"), r"mixed dtypes"),
    ("non-PD covariance", lambda m, h: _set(m, "covariances", np.stack([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])),
     r"covariance 1 is not positive definite"),
    ("lower-triangular precision factor",
     lambda m, h: _set(m, "precisions_cholesky", np.transpose(_array(m, "precisions_cholesky"), (0, 2, 1))),
     r"precisions_cholesky is not the stored factor"),
    ("negative precision factor diagonal",
     lambda m, h: _set(m, "precisions_cholesky", -_array(m, "precisions_cholesky")), r"precisions_cholesky is not the stored factor"),
    ("singular precision", lambda m, h: _set(m, "precisions_cholesky", np.zeros((2, 2, 2))), r"precision 0 is not positive definite"),
    ("covariances inconsistent with precisions",
     lambda m, h: _set(m, "covariances", 2.0 * _array(m, "covariances")), r"do not describe the same covariances"),
    ("feature names count", lambda m, h: h["fitted"].update(feature_names_in_=["a"]), r"feature_names_in_ has 1 names for 2"),
    ("n_features_in_ mismatch", lambda m, h: h["fitted"].update(n_features_in_=5), r"n_features_in_ is 5 but means has 2"),
    ("fitted attribute wrong type", lambda m, h: h["fitted"].update(n_iter_="many"), r"fitted attributes are missing or invalid"),
    ("fitted attribute missing", lambda m, h: h["fitted"].pop("lower_bounds_"), r"fitted attributes are missing or invalid"),
]


@pytest.mark.parametrize("edit,match", [e[1:] for e in EDITS], ids=[e[0] for e in EDITS])
def test_invalid_file_raises_model_file_error(tmp_path, data, edit, match):
    bad = _tampered(tmp_path, data, edit)
    with pytest.raises(emix.ModelFileError, match=match) as info:
        emix.load(bad)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize(
    "covariance_type,name,value,match",
    [
        ("diag", "covariances", lambda a: -a, r"covariance 0 is not positive definite"),
        ("diag", "precisions_cholesky", lambda a: -a, r"not the stored factor"),
        ("spherical", "covariances", lambda a: a * 0, r"covariance 0 is not positive definite"),
        ("spherical", "precisions_cholesky", lambda a: a * 3, r"do not describe the same covariances"),
        ("tied", "covariances", lambda a: a - 10 * np.eye(2), r"covariance 0 is not positive definite"),
        ("tied", "precisions_cholesky", lambda a: a.T, r"not the stored factor"),
    ],
)
def test_invalid_parameters_of_each_type(tmp_path, data, covariance_type, name, value, match):
    bad = _tampered(tmp_path, data, lambda m, h: _set(m, name, value(_array(m, name))), covariance_type)
    with pytest.raises(emix.ModelFileError, match=match):
        emix.load(bad)


def test_truncated_file(tmp_path, data):
    path = tmp_path / "m.emix"
    emix.save(_fit(data), path)
    raw = path.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 30, 10, 0):
        bad = tmp_path / f"cut{cut}.emix"
        bad.write_bytes(raw[:cut])
        with pytest.raises(emix.ModelFileError, match="Cannot load model file"):
            emix.load(bad)


def test_corrupted_member_bytes(tmp_path, data):
    path = tmp_path / "m.emix"
    emix.save(_fit(data), path)
    members = _members(path)
    members["means.npy"] = members["means.npy"][:-9]  # short data
    bad = tmp_path / "bad.emix"
    _write_members(bad, members)
    with pytest.raises(emix.ModelFileError, match=r"array 'means' declares shape \(2, 2\) \(32 bytes\) but holds 23 bytes"):
        emix.load(bad)
    members["means.npy"] = b"\x93NUMPY garbage"
    _write_members(bad, members)
    with pytest.raises(emix.ModelFileError, match=r"array 'means' is corrupt or not a plain numeric array"):
        emix.load(bad)
    # flipped bytes inside a compressed member: the zip CRC catches them
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("means.npy")
    raw[info.header_offset + 60] ^= 0xFF
    flipped = tmp_path / "flipped.emix"
    flipped.write_bytes(bytes(raw))
    with pytest.raises(emix.ModelFileError):
        emix.load(flipped)


@pytest.mark.parametrize("shape", [(200_000, 200_000), (2**40, 2**40), (-1, 2)])
def test_member_declaring_a_huge_shape_is_refused_before_allocation(tmp_path, data, shape):
    """A few bytes that declare a 300 GB array must not make numpy allocate it
    (a MemoryError, or worse a successful allocation, would escape)."""
    def edit(members, header):
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
        members["means.npy"] = buf.getvalue() + b"\0" * 32

    bad = _tampered(tmp_path, data, edit)
    with pytest.raises(emix.ModelFileError, match=r"array 'means' (declares shape|is corrupt)"):
        emix.load(bad)


def test_random_bytes_file(tmp_path):
    path = tmp_path / "noise.emix"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(emix.ModelFileError, match="not a valid zip archive"):
        emix.load(path)


def test_nonexistent_path_and_directory(tmp_path):
    with pytest.raises(emix.ModelFileError, match="no such file"):
        emix.load(tmp_path / "nope.emix")
    with pytest.raises(emix.ModelFileError, match="Cannot load model file"):
        emix.load(tmp_path)


def test_header_over_the_size_limit(tmp_path, data):
    def edit(members, header):
        header["padding"] = "x" * (2 << 20)

    bad = _tampered(tmp_path, data, edit)
    with pytest.raises(emix.ModelFileError, match=r"member 'header.json' declares \d+ bytes, over the limit"):
        emix.load(bad)


def test_header_not_an_object(tmp_path, data):
    bad = _tampered(tmp_path, data, lambda m, h: None)
    members = _members(bad)
    members["header.json"] = b"[1, 2, 3]"
    _write_members(bad, members)
    with pytest.raises(emix.ModelFileError, match="does not describe an emix model"):
        emix.load(bad)


def test_model_file_error_is_a_value_error():
    assert issubclass(emix.ModelFileError, ValueError)


def test_save_and_load_accept_os_pathlike(tmp_path, data):
    gm = _fit(data)
    emix.save(gm, os.fspath(tmp_path / "a.emix"))
    emix.save(gm, tmp_path / "b.emix")
    assert emix.load(tmp_path / "a.emix").n_components == emix.load(os.fspath(tmp_path / "b.emix")).n_components


FUZZ_VALUES = [None, 0, -1, 1.5, 1e308, "x", [], [1, 2], {}, {"a": 1}, True, float("nan")]


def _header_paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _header_paths(v, prefix + (k,))


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")  # names replaced by [1, 2]
def test_every_header_field_replaced_by_junk(tmp_path, data):
    """Every field of the header, replaced by each of a dozen JSON values: load
    either raises ModelFileError or returns a model that works."""
    path = tmp_path / "m.emix"
    emix.save(_fit(data), path)
    members = _members(path)
    header = json.loads(members["header.json"])
    bad = tmp_path / "bad.emix"
    n_loaded = 0
    for field in _header_paths(header):
        for value in FUZZ_VALUES:
            if field == ("params", "working_memory") and value == 1e308:
                continue  # a valid parameter that fit itself cannot use: test_validation.py::test_huge_working_memory
            h = json.loads(json.dumps(header))
            target = h
            for k in field[:-1]:
                target = target[k]
            target[field[-1]] = value
            _write_members(bad, dict(members, **{"header.json": json.dumps(h).encode()}))
            try:
                model = emix.load(bad)
            except emix.ModelFileError:
                continue
            n_loaded += 1
            assert model.predict(data).shape == (len(data),), field
            assert np.isfinite(model.score(data)), field
            model.sample(3)
    assert n_loaded > 0  # some fields (e.g. verbose, tol) accept other valid values


def test_save_gives_the_mode_a_plain_open_would(tmp_path):
    import os

    X = np.random.default_rng(0).normal(size=(30, 2))
    gm = emix.GaussianMixture(2, random_state=0).fit(X)
    path = tmp_path / "m.emix"
    emix.save(gm, path)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600
    path.chmod(0o640)
    emix.save(gm, path)
    assert path.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
