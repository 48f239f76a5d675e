"""Model files keep the estimator's prior (None, 'default' or a ConjugatePrior):
round trips that refit identically, files of the previous layout, and
malformed or hostile prior entries that give ModelFileError."""

import io
import json

import numpy as np
import pytest

import emix
from emix.core.prior import ConjugatePrior
from emix.testing import edit_model_file, make_mixture, model_file_members, npy_bytes, write_model_file_members


@pytest.fixture(scope="module")
def data():
    X, _, _ = make_mixture(150, 2, 2, random_state=3)
    return X


def _custom():
    # far from the data and heavy (50 pseudo-observations), so that the MAP fit
    # differs visibly from the maximum-likelihood and the default-prior ones
    return ConjugatePrior(mean=np.array([4.0, -3.0]), shrinkage=50.0, dof=7.5,
                          scale=np.array([[2.0, 0.3], [0.3, 1.5]]))


PRIORS = {"none": lambda: None, "default": lambda: "default", "custom": _custom}


_members = model_file_members
_write_members = write_model_file_members
_npy = npy_bytes


def _fit(X, prior, covariance_type="full", **kw):
    return emix.GaussianMixture(2, covariance_type=covariance_type, random_state=0, prior=prior, **kw).fit(X)


def _same_prior(a, b):
    if a is None or isinstance(a, str):
        return a == b
    return (type(b) is ConjugatePrior and a.shrinkage == b.shrinkage and a.dof == b.dof
            and np.array_equal(a.mean, b.mean) and np.array_equal(a.scale, b.scale)
            and b.mean.dtype == np.float64 and b.scale.dtype == np.float64)


def test_the_three_priors_give_three_different_fits(data):
    """Without this, a loader that dropped the prior could pass the refit tests."""
    means = [_fit(data, make()).means_ for make in PRIORS.values()]
    for i in range(3):
        for j in range(i):
            assert np.max(np.abs(means[i] - means[j])) > 1e-3, (i, j)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "VEV"])
@pytest.mark.parametrize("which", list(PRIORS))
def test_prior_round_trip_and_identical_refit(tmp_path, data, which, covariance_type):
    prior = PRIORS[which]()
    gm = _fit(data, prior, covariance_type)
    path = tmp_path / "m.emix"
    emix.save(gm, path)
    loaded = emix.load(path)
    assert _same_prior(prior, loaded.prior)
    np.testing.assert_array_equal(loaded.means_, gm.means_)
    # refit from scratch: the same fit as the original estimator's refit
    gm.fit(data)
    loaded.fit(data)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(gm, name), err_msg=name)
    assert loaded.lower_bounds_ == gm.lower_bounds_


@pytest.mark.parametrize("which", list(PRIORS))
def test_warm_start_after_load_continues_as_without_save(tmp_path, data, which):
    prior = PRIORS[which]()
    # stopped early, so the warm-started refits have iterations to do
    with pytest.warns(emix.ConvergenceWarning):
        gm = _fit(data, prior, "VVV", warm_start=True, max_iter=2, tol=0.0)
    emix.save(gm, tmp_path / "m.emix")
    loaded = emix.load(tmp_path / "m.emix")
    for m in (gm, loaded):
        m.set_params(max_iter=5)
        with pytest.warns(emix.ConvergenceWarning):
            m.fit(data)
    assert gm.n_iter_ == loaded.n_iter_ == 5
    np.testing.assert_array_equal(loaded.means_, gm.means_)
    np.testing.assert_array_equal(loaded.covariances_, gm.covariances_)
    assert loaded.lower_bounds_ == gm.lower_bounds_


def test_file_layout_and_versions(tmp_path, data):
    for which, version in (("none", 1), ("default", 2), ("custom", 2)):
        path = tmp_path / f"{which}.emix"
        emix.save(_fit(data, PRIORS[which]()), path)
        members = _members(path)
        header = json.loads(members["header.json"])
        assert header["format_version"] == version, which
        if which == "none":
            assert "prior" not in header and "prior_mean.npy" not in members
        elif which == "default":
            assert header["prior"] == {"kind": "default"} and "prior_mean.npy" not in members
        else:
            p = _custom()
            assert header["prior"] == {"kind": "conjugate", "shrinkage": 50.0, "dof": 7.5}
            for name, ref in (("prior_mean", p.mean), ("prior_scale", p.scale)):
                a = np.lib.format.read_array(io.BytesIO(members[name + ".npy"]), allow_pickle=False)
                assert a.dtype == np.float64
                np.testing.assert_array_equal(a, ref)
                assert header["arrays"][name]["shape"] == list(ref.shape)


def test_custom_prior_given_as_lists_and_ints(tmp_path, data):
    prior = ConjugatePrior(mean=[4, -3], shrinkage=50, dof=8, scale=[[2, 0], [0, 1]])
    gm = _fit(data, prior)
    emix.save(gm, tmp_path / "m.emix")
    loaded = emix.load(tmp_path / "m.emix")
    assert loaded.prior.shrinkage == 50.0 and loaded.prior.dof == 8.0
    np.testing.assert_array_equal(loaded.prior.mean, [4.0, -3.0])
    gm.fit(data)
    loaded.fit(data)
    np.testing.assert_array_equal(loaded.means_, gm.means_)


def test_file_of_the_previous_layout_loads_without_prior(tmp_path, data):
    """A version-1 file as the previous emix wrote it: no prior entry at all
    (params never held 'prior'), and format_version 1."""
    gm = _fit(data, None)
    path = tmp_path / "m.emix"
    emix.save(gm, path)
    members = _members(path)
    header = json.loads(members["header.json"])
    assert header["format_version"] == 1 and "prior" not in header and "prior" not in header["params"]
    loaded = emix.load(path)
    assert loaded.prior is None
    np.testing.assert_array_equal(loaded.means_, gm.means_)


def test_saving_an_unsupported_prior_writes_nothing(tmp_path, data):
    gm = _fit(data, None)
    gm.set_params(prior="mclust")
    with pytest.raises(ValueError, match="Cannot save prior='mclust'"):
        emix.save(gm, tmp_path / "m.emix")
    gm.set_params(prior=ConjugatePrior(mean=np.array([np.nan, 0.0]), shrinkage=1.0, dof=3.0, scale=np.eye(2)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        emix.save(gm, tmp_path / "m.emix")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------- malformed, hostile
def _tampered(tmp_path, data, which, edit):
    path = tmp_path / "m.emix"
    emix.save(_fit(data, PRIORS[which]()), path)
    return edit_model_file(path, tmp_path / "bad.emix", edit)


def _set(members, header, name, a):
    members[name + ".npy"] = _npy(a)
    header["arrays"][name] = {"shape": list(a.shape), "dtype": a.dtype.str}


def _drop(members, header, name):
    members.pop(name + ".npy")
    header["arrays"].pop(name)


EDITS = [
    ("custom", "prior is a string", lambda m, h: h.update(prior="default"), r"prior must be an object"),
    ("custom", "prior is a list", lambda m, h: h.update(prior=[1, 2]), r"prior must be an object"),
    ("default", "prior null", lambda m, h: h.update(prior=None), r"prior is null"),
    ("custom", "prior null with arrays", lambda m, h: h.update(prior=None), r"prior is null"),
    ("default", "unknown kind", lambda m, h: h["prior"].update(kind="flat"), r"kind must be 'default' or 'conjugate'"),
    ("default", "kind not a string", lambda m, h: h["prior"].update(kind=["default"]), r"kind must be"),
    ("default", "extra key", lambda m, h: h["prior"].update(shrinkage=1.0), r"exactly the keys \['kind'\]"),
    ("custom", "missing dof", lambda m, h: h["prior"].pop("dof"), r"exactly the keys \['dof', 'kind', 'shrinkage'\]"),
    ("custom", "shrinkage a string", lambda m, h: h["prior"].update(shrinkage="50"), r"prior shrinkage must be a finite number"),
    ("custom", "shrinkage a bool", lambda m, h: h["prior"].update(shrinkage=True), r"prior shrinkage must be a finite number"),
    ("custom", "shrinkage zero", lambda m, h: h["prior"].update(shrinkage=0.0), r"invalid prior.*shrinkage must be > 0"),
    ("custom", "shrinkage negative", lambda m, h: h["prior"].update(shrinkage=-1), r"invalid prior.*shrinkage must be > 0"),
    ("custom", "dof infinite", lambda m, h: h["prior"].update(dof=float("inf")), r"prior dof must be a finite number"),
    ("custom", "dof NaN", lambda m, h: h["prior"].update(dof=float("nan")), r"prior dof must be a finite number"),
    ("custom", "dof too small", lambda m, h: h["prior"].update(dof=0.5), r"invalid prior.*dof must be > n_features - 1 = 1"),
    ("custom", "dof a dict", lambda m, h: h["prior"].update(dof={"v": 3}), r"prior dof must be a finite number"),
    ("custom", "mean missing", lambda m, h: _drop(m, h, "prior_mean"), r"holds no array 'prior_mean'"),
    ("custom", "scale missing", lambda m, h: _drop(m, h, "prior_scale"), r"holds no array 'prior_scale'"),
    ("custom", "mean of the wrong length", lambda m, h: _set(m, h, "prior_mean", np.zeros(3)),
     r"invalid prior.*prior.mean must have shape \(2,\)"),
    ("custom", "scale of the wrong shape", lambda m, h: _set(m, h, "prior_scale", np.eye(3)),
     r"invalid prior.*prior.scale \(2, 2\)"),
    ("custom", "scale not symmetric", lambda m, h: _set(m, h, "prior_scale", np.array([[1.0, 0.5], [0.0, 1.0]])),
     r"symmetric positive definite"),
    ("custom", "scale not positive definite", lambda m, h: _set(m, h, "prior_scale", np.array([[1.0, 2.0], [2.0, 1.0]])),
     r"symmetric positive definite"),
    ("custom", "NaN mean", lambda m, h: _set(m, h, "prior_mean", np.array([np.nan, 0.0])),
     r"'prior_mean' contains NaN or infinite"),
    ("custom", "infinite scale", lambda m, h: _set(m, h, "prior_scale", np.full((2, 2), np.inf)),
     r"'prior_scale' contains NaN or infinite"),
    ("custom", "float32 mean", lambda m, h: _set(m, h, "prior_mean", np.array([4.0, -3.0], dtype=np.float32)),
     r"must be float64"),
    ("custom", "integer scale", lambda m, h: _set(m, h, "prior_scale", np.eye(2, dtype=np.int64)),
     r"'prior_scale' has dtype int64; expected float"),
    ("custom", "shape differs from header", lambda m, h: h["arrays"]["prior_mean"].update(shape=[3]),
     r"'prior_mean' has shape \(2,\), the header says \[3\]"),
    ("default", "arrays with the default prior",
     lambda m, h: _set(m, h, "prior_mean", np.zeros(2)) or _set(m, h, "prior_scale", np.eye(2)),
     r"holds 'prior_mean' but the header's prior is 'default'"),
    ("none", "arrays without a prior", lambda m, h: _set(m, h, "prior_mean", np.zeros(2)),
     r"holds 'prior_mean' but the header has no prior"),
    ("default", "prior in a version-1 file", lambda m, h: h.update(format_version=1),
     r"format_version 1 files hold no prior"),
    ("custom", "format_version 3", lambda m, h: h.update(format_version=3),
     r"format_version 3 is not supported \(this emix reads 1 and 2\)"),
    ("custom", "format_version true", lambda m, h: h.update(format_version=True), r"format_version True is not supported"),
]


@pytest.mark.parametrize("which,edit,match", [(e[0],) + e[2:] for e in EDITS], ids=[e[1] for e in EDITS])
def test_invalid_prior_raises_model_file_error(tmp_path, data, which, edit, match):
    bad = _tampered(tmp_path, data, which, edit)
    with pytest.raises(emix.ModelFileError, match=match) as info:
        emix.load(bad)
    assert str(bad) in str(info.value)


def test_pickled_prior_array_is_never_unpickled(tmp_path, data):
    marker = tmp_path / "pwned"

    class CreatesMarker:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = np.empty(2, dtype=object)
    payload[0] = CreatesMarker()
    for name in ("prior_mean", "prior_scale"):
        def edit(members, header, name=name):
            members[name + ".npy"] = _npy(payload, allow_pickle=True)
        bad = _tampered(tmp_path, data, "custom", edit)
        with pytest.raises(emix.ModelFileError, match=rf"array '{name}' has dtype object"):
            emix.load(bad)
        assert not marker.exists(), name


def test_prior_array_declaring_a_huge_shape_is_refused(tmp_path, data):
    def edit(members, header):
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                                   "shape": (2**40, 2**40)})
        members["prior_scale.npy"] = buf.getvalue() + b"\0" * 32

    bad = _tampered(tmp_path, data, "custom", edit)
    with pytest.raises(emix.ModelFileError, match=r"array 'prior_scale' (declares shape|is corrupt)"):
        emix.load(bad)


# (1e308 passes ConjugatePrior.check, as it does in the estimator, but a
# shrinkage that large overflows kappa * mu in the M-step: 1e300 does not)
FUZZ_VALUES = [None, 0, -1, 1.5, 1e300, "x", "default", [], [1, 2], {}, {"kind": "default"}, True,
               float("nan")]


def test_every_prior_field_replaced_by_junk(tmp_path, data):
    """Each field of a custom prior's header entry (and the entry itself)
    replaced by junk: load raises ModelFileError, or returns a model whose
    prior is valid and that refits."""
    path = tmp_path / "m.emix"
    emix.save(_fit(data, _custom()), path)
    members = _members(path)
    header = json.loads(members["header.json"])
    bad = tmp_path / "bad.emix"
    n_loaded = 0
    for field in (("prior",), ("prior", "kind"), ("prior", "shrinkage"), ("prior", "dof"),
                  ("arrays", "prior_mean"), ("arrays", "prior_scale")):
        for value in FUZZ_VALUES:
            _write_members(bad, dict(members, **{"header.json": _edited(header, field, value)}))
            try:
                model = emix.load(bad)
            except emix.ModelFileError:
                continue
            n_loaded += 1
            assert type(model.prior) is ConjugatePrior, (field, value)
            assert model.prior.shrinkage > 0 and model.prior.dof > 1, (field, value)
            model.set_params(warm_start=False).fit(data)
            assert np.isfinite(model.score(data)), (field, value)
    # 1.5 and 1e300, as shrinkage or as dof, are valid hyperparameters
    assert n_loaded == 4


def _edited(header, field, value):
    """JSON bytes of a copy of ``header`` with ``header[field[0]][field[1]]...`` set to ``value``."""
    h = json.loads(json.dumps(header))
    target = h
    for k in field[:-1]:
        target = target[k]
    target[field[-1]] = value
    return json.dumps(h).encode()


def _all_paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _all_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:2]):
            yield prefix + (i,)
            yield from _all_paths(v, prefix + (i,))


def test_integers_too_large_for_a_float_give_model_file_error(tmp_path, data):
    """JSON integers have no size limit: 10**400 in any header field of a
    model with a prior and a noise component must be refused with
    ModelFileError (float() of it raises OverflowError, numpy a TypeError) or
    load into a model that works; no other exception may escape."""
    path = tmp_path / "m.emix"
    emix.save(_fit(data, _custom(), noise="box"), path)
    members = _members(path)
    header = json.loads(members["header.json"])
    bad = tmp_path / "bad.emix"
    refused = set()
    for field in _all_paths(header):
        for value in (10**400, -(10**400)):
            _write_members(bad, dict(members, **{"header.json": _edited(header, field, value)}))
            try:
                model = emix.load(bad)
            except emix.ModelFileError:
                refused.add(field)
                continue
            assert model.predict(data).shape == (len(data),), field
    for field in (("prior", "shrinkage"), ("prior", "dof"), ("fitted", "noise_weight_"),
                  ("fitted", "noise_log_volume_"), ("fitted", "lower_bound_"), ("fitted", "lower_bounds_", 0)):
        assert field in refused, field
