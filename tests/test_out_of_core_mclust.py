"""mclust's options (equal_proportions, noise, prior) beyond memory.

A block source and a Dask array (local scheduler and a 2-worker LocalCluster)
fitted from the same initial parameters as the in-memory numpy fit give the
same fit; the noise volume 'box' and the default prior come from all rows
(with positive weight), not the initialization sample.
"""

import warnings

import numpy as np
import pytest

from emix import GaussianMixture
from emix.backends import chunked
from emix.core.prior import ConjugatePrior, default_prior, prior_from_moments
from emix.exceptions import ConvergenceWarning
from emix.testing import make_mixture

FITTED = ["weights_", "means_", "covariances_", "lower_bound_"]
#: The sample drawn for initialization is made smaller than the data, so an
#: option resolved from the sample instead of all rows shows.
SAMPLE = 256

OPTIONS = {
    "equal": dict(equal_proportions=True),
    "box": dict(noise="box"),
    "volume": dict(noise=2000.0),
    "box+equal": dict(noise="box", equal_proportions=True),
    "default-prior": dict(prior="default"),
    "prior": dict(prior=ConjugatePrior(mean=np.array([1.0, -1.0, 0.5]), shrinkage=0.5, dof=6.0,
                                       scale=np.diag([0.5, 1.0, 2.0]))),
    "box+default-prior": dict(noise="box", prior="default"),
}


@pytest.fixture(autouse=True)
def small_sample(monkeypatch):
    monkeypatch.setattr(chunked, "DEFAULT_INIT_SAMPLE", SAMPLE)


@pytest.fixture(scope="module")
def data():
    """Three clusters and 10% uniform outliers over a wider box; weights with
    zeros, one of them on the row holding the largest first feature."""
    X, _, _ = make_mixture(900, 3, 3, separation=4.0, random_state=3)
    rng = np.random.default_rng(5)
    lo, hi = X.min(axis=0) - 3.0, X.max(axis=0) + 3.0
    X = np.concatenate([X, rng.uniform(lo, hi, size=(100, 3))])[rng.permutation(1000)]
    w = rng.uniform(0.2, 2.0, size=X.shape[0])
    w[rng.choice(X.shape[0], 50, replace=False)] = 0.0
    w[np.argmax(X[:, 0])] = 0.0
    return X, w


def _init(X, w=None, covariance_type="full"):
    """Initial parameters: one numpy EM iteration from a random start, far
    enough from the optimum that EM takes several iterations."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g = GaussianMixture(3, covariance_type=covariance_type, max_iter=1, init_params="random",
                            random_state=1).fit(X, sample_weight=w)
    return dict(weights_init=g.weights_, means_init=g.means_, precisions_init=g.precisions_)


def _fit(X, opts, inits, w=None, covariance_type="full"):
    gm = GaussianMixture(3, covariance_type=covariance_type, tol=1e-6, max_iter=300, **inits, **opts)
    return gm.fit(X, sample_weight=w)


def _source(X, rows, w=None):
    def source():
        for i in range(0, X.shape[0], rows):
            yield X[i:i + rows] if w is None else (X[i:i + rows], w[i:i + rows])

    return source


def _assert_same(ref, got, opts):
    assert got.n_iter_ == ref.n_iter_
    assert ref.converged_
    for name in FITTED:
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=0, atol=1e-10, err_msg=name)
    if "noise" in opts:
        assert 0.01 < ref.noise_weight_ < 0.5
        assert abs(got.noise_weight_ - ref.noise_weight_) < 1e-10
        assert got.noise_log_volume_ == ref.noise_log_volume_  # exactly
    else:
        assert not hasattr(got, "noise_weight_")
    if opts.get("equal_proportions"):
        np.testing.assert_allclose(got.weights_, got.weights_[0], rtol=1e-15)


@pytest.mark.parametrize("rows", [1000, 333, 97, 7])
@pytest.mark.parametrize("name", list(OPTIONS))
def test_block_source_matches_memory(data, name, rows):
    X, _ = data
    opts, inits = OPTIONS[name], _init(X)
    _assert_same(_fit(X, opts, inits), _fit(_source(X, rows), opts, inits), opts)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
@pytest.mark.parametrize("name", ["box+equal", "box+default-prior"])
def test_weighted_block_source_matches_memory(data, name, covariance_type):
    """Rows of weight 0 are outside the box and the prior's moments."""
    X, w = data
    opts, inits = OPTIONS[name], _init(X, w, covariance_type)
    ref = _fit(X, opts, inits, w, covariance_type)
    _assert_same(ref, _fit(_source(X, 333, w), opts, inits, None, covariance_type), opts)


def test_box_volume_is_of_all_positive_weight_rows(data):
    X, w = data
    inits = _init(X, w)
    got = _fit(_source(X, 97, w), {"noise": "box"}, inits)
    rows = X[w > 0]
    assert got.noise_log_volume_ == float(np.sum(np.log(rows.max(axis=0) - rows.min(axis=0))))
    assert got.noise_log_volume_ < float(np.sum(np.log(X.max(axis=0) - X.min(axis=0))))


@pytest.mark.parametrize("offset", [0.0, 1e4])
@pytest.mark.parametrize("weighted", [False, True])
def test_default_prior_from_one_pass_matches_memory(data, weighted, offset):
    X, w = data
    X = X + offset
    w = w if weighted else None
    ref = default_prior(X, 3, w)
    info = chunked.scan_source(_source(X, 97, w), SAMPLE, 0, moments=True)
    got = prior_from_moments(*chunked.summary_mean_cov(info["summary"]), 3)
    np.testing.assert_allclose(got.mean, ref.mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(got.scale, ref.scale, rtol=1e-12, atol=1e-12 * np.abs(ref.scale).max())
    assert (got.shrinkage, got.dof) == (ref.shrinkage, ref.dof)


def test_float32_source_matches_memory(data):
    X, _ = data
    X32 = X.astype(np.float32)
    opts, inits = OPTIONS["box+default-prior"], _init(X32)
    ref, got = _fit(X32, opts, inits), _fit(_source(X32, 97), opts, inits)
    assert got.means_.dtype == np.float32 and got.noise_log_volume_ == ref.noise_log_volume_
    for name in FITTED:
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-4, atol=1e-4, err_msg=name)


def test_noise_inference_on_a_block_source(data):
    X, _ = data
    gm = _fit(X, OPTIONS["box"], _init(X))
    labels = gm.predict(_source(X, 97))
    assert (labels == -1).any()
    np.testing.assert_array_equal(labels, gm.predict(X))
    np.testing.assert_allclose(gm.predict_proba(_source(X, 97)), gm.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(gm.score_samples(_source(X, 97)), gm.score_samples(X), rtol=0, atol=1e-12)


def test_what_stays_unsupported_says_so(data):
    X, _ = data
    with pytest.raises(NotImplementedError, match=r"squarem.*prior"):
        GaussianMixture(3, prior="default", accelerate="squarem").fit(_source(X, 97))
    with pytest.raises(NotImplementedError, match=r"noise='box' is supported by fit on numpy arrays, block "
                                                  r"sources and Dask only, not partial_fit"):
        GaussianMixture(3, noise="box").partial_fit(X)


def test_warm_start_cannot_add_noise_out_of_core(data):
    X, _ = data
    gm = GaussianMixture(3, warm_start=True, max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(_source(X, 97))
    gm.set_params(noise="box")
    with pytest.raises(ValueError, match="warm_start cannot add or remove the noise component"):
        gm.fit(_source(X, 97))


# ------------------------------------------------------------------ Dask
# `client`: the 2-worker LocalCluster fixture of tests/conftest.py


@pytest.mark.parametrize("name", list(OPTIONS))
def test_dask_local_scheduler_matches_memory(data, name):
    da = pytest.importorskip("dask.array")
    X, _ = data
    opts, inits = OPTIONS[name], _init(X)
    _assert_same(_fit(X, opts, inits), _fit(da.from_array(X, chunks=(333, 3)), opts, inits), opts)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_dask_cluster_matches_memory(client, data, name):
    da = pytest.importorskip("dask.array")
    X, _ = data
    opts, inits = OPTIONS[name], _init(X)
    _assert_same(_fit(X, opts, inits), _fit(da.from_array(X, chunks=(97, 3)), opts, inits), opts)


@pytest.mark.parametrize("name", ["box+equal", "box+default-prior"])
def test_dask_cluster_weighted_matches_memory(client, data, name):
    da = pytest.importorskip("dask.array")
    X, w = data
    opts, inits = OPTIONS[name], _init(X, w)
    ref = _fit(X, opts, inits, w)
    _assert_same(ref, _fit(da.from_array(X, chunks=(250, 3)), opts, inits, w), opts)


@pytest.mark.parametrize("weighted", [False, True])
def test_dask_scan_default_prior_and_box(client, data, weighted):
    da = pytest.importorskip("dask.array")
    from emix.backends import dask as dk

    X, w = data
    w = w if weighted else None
    Xd = da.from_array(X, chunks=(97, 3))
    wd = None if w is None else da.from_array(w, chunks=(97,))
    summary = dk.scan(Xd, wd, SAMPLE, 0, moments=True)["summary"]
    ref = default_prior(X, 3, w)
    got = prior_from_moments(*chunked.summary_mean_cov(summary), 3)
    np.testing.assert_allclose(got.mean, ref.mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(got.scale, ref.scale, rtol=1e-12, atol=1e-12 * np.abs(ref.scale).max())
    rows = X if w is None else X[w > 0]
    np.testing.assert_array_equal(summary["lo"], rows.min(axis=0))
    np.testing.assert_array_equal(summary["hi"], rows.max(axis=0))


def test_dask_noise_inference_is_lazy_and_matches_memory(client, data):
    da = pytest.importorskip("dask.array")
    X, _ = data
    Xd = da.from_array(X, chunks=(97, 3))
    gm = _fit(Xd, OPTIONS["box"], _init(X))
    labels, proba = gm.predict(Xd), gm.predict_proba(Xd)
    assert isinstance(labels, da.Array) and isinstance(proba, da.Array)
    assert proba.shape == (X.shape[0], 4)
    np.testing.assert_array_equal(labels.compute(), gm.predict(X))
    assert (labels.compute() == -1).any()
    np.testing.assert_allclose(proba.compute(), gm.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(gm.score_samples(Xd).compute(), gm.score_samples(X), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(gm.fit_predict(Xd).compute(), gm.predict(X))
