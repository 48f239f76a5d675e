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
    K, D = gm.means_.shape
    c = gm.covariances_
    return {"full": lambda: c, "tied": lambda: np.broadcast_to(c, (K, D, D)),
            "diag": lambda: np.stack([np.diag(v) for v in c]),
            "spherical": lambda: np.stack([v * np.eye(D) for v in c])}[gm.covariance_type]()


# ------------------------------------------------------------- model files
@pytest.mark.parametrize("fixed", [(), ("means",), ("weights", "covariances")])
def test_missing_and_fixed_round_trip_through_model_files(tmp_path, fixed):
    X, _ = _mixture()
    Xm = _holes(X, 0.15)
    ref = _quiet(GaussianMixture(2, random_state=0).fit, X)
    inits = dict(weights_init=ref.weights_, means_init=ref.means_ + 0.3, precisions_init=ref.precisions_)
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
