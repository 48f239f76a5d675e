"""The estimator on PyTorch tensors (the array API path, emix.backends.array_api).

Oracle: the numpy fit from the same initial parameters. CPU tensors run here
and in CI (when torch is installed); the GPU-marked test repeats the checks on
CUDA and skips without a GPU.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.metrics import adjusted_rand_score

from emix import GaussianMixture
from emix.testing import make_mixture

torch = pytest.importorskip("torch")
pytest.importorskip("array_api_compat")

# short fits (max_iter=15, tol=0) stop before convergence on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Best performing initialization did not converge")

TYPES = ["full", "tied", "diag", "spherical"]
ATTRS = ["weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"]
TOL = {np.float64: 1e-10, np.float32: 1e-4}


def _data(dtype=np.float64, n=600, random_state=0):
    X, labels, _ = make_mixture(n, 3, 3, separation=5.0, random_state=random_state)
    return X.astype(dtype), labels


def _start(X, ct, seed=0):
    """Initial parameters a little away from the optimum (a few iterations to go)."""
    g = GaussianMixture(3, covariance_type=ct, init_params="random_from_data", max_iter=2,
                        tol=0, random_state=seed).fit(X.astype(np.float64))
    return dict(weights_init=g.weights_, means_init=g.means_ + 0.2, precisions_init=g.precisions_)


def _t(a, device="cpu"):
    return torch.asarray(a, device=device)


def _np(a):
    return a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)


def _close(a, b, dtype):
    tol = TOL[dtype]
    assert_allclose(_np(a), _np(b), rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(_np(b))))))


def _check_against_numpy(ct, dtype, device, sample_weight=None):
    X, _ = _data(dtype)
    start = _start(X, ct)
    kw = dict(covariance_type=ct, max_iter=15, tol=0, random_state=0, **start)
    ref = GaussianMixture(3, **kw).fit(X, sample_weight=sample_weight)
    Xt = _t(X, device)
    wt = None if sample_weight is None else _t(sample_weight, device)
    got = GaussianMixture(3, **kw).fit(Xt, sample_weight=wt)
    for name in ATTRS:
        value = getattr(got, name)
        assert torch.is_tensor(value) and value.device.type == device, name
        assert value.dtype == Xt.dtype, name
        _close(value, getattr(ref, name), dtype)
    assert got.n_iter_ == ref.n_iter_
    assert got.lower_bound_ == pytest.approx(ref.lower_bound_, rel=TOL[dtype], abs=TOL[dtype])
    assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=TOL[dtype], atol=TOL[dtype])
    # inference on tensors returns tensors that agree with numpy
    lab = got.predict(Xt)
    assert torch.is_tensor(lab) and lab.device.type == device
    np.testing.assert_array_equal(_np(lab), ref.predict(X))
    _close(got.predict_proba(Xt), ref.predict_proba(X), dtype)
    _close(got.score_samples(Xt), ref.score_samples(X), dtype)
    tol = TOL[dtype]
    assert got.score(Xt) == pytest.approx(ref.score(X), rel=tol)
    for crit in ("bic", "aic", "icl"):
        assert getattr(got, crit)(Xt) == pytest.approx(getattr(ref, crit)(X), rel=tol), crit
    Xs, ys = got.sample(50)
    Xr, yr = ref.sample(50)
    assert torch.is_tensor(Xs) and Xs.device.type == device
    np.testing.assert_array_equal(_np(ys), yr)
    assert_allclose(_np(Xs), Xr, rtol=1e-3 if dtype == np.float32 else 1e-7, atol=1e-3)
    return ref, got


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ct", TYPES)
def test_same_fit_as_numpy_from_same_start(ct, dtype):
    _check_against_numpy(ct, dtype, "cpu")


@pytest.mark.parametrize("ct", TYPES)
def test_sample_weight_same_as_numpy_and_as_repeated_rows(ct):
    X, _ = _data()
    w = np.random.default_rng(1).integers(0, 3, size=X.shape[0]).astype(np.float64)
    _check_against_numpy(ct, np.float64, "cpu", sample_weight=w)
    start = _start(X, ct)
    kw = dict(covariance_type=ct, max_iter=10, tol=0, **start)
    weighted = GaussianMixture(3, **kw).fit(_t(X), sample_weight=_t(w))
    repeated = GaussianMixture(3, **kw).fit(_t(np.repeat(X, w.astype(int), axis=0)))
    for name in ATTRS:
        _close(getattr(weighted, name), getattr(repeated, name), np.float64)


@pytest.mark.parametrize("ct", TYPES)
def test_warm_start_continues_on_device(ct):
    X, _ = _data()
    start = _start(X, ct)
    kw = dict(covariance_type=ct, max_iter=4, tol=0, warm_start=True, **start)
    ref = GaussianMixture(3, **kw)
    got = GaussianMixture(3, **kw)
    with pytest.warns(Warning):  # ConvergenceWarning: max_iter reached
        ref.fit(X)
        got.fit(_t(X))
    with pytest.warns(Warning):
        ref.fit(X)
        got.fit(_t(X))
    for name in ATTRS:
        _close(getattr(got, name), getattr(ref, name), np.float64)
    once = GaussianMixture(3, covariance_type=ct, max_iter=8, tol=0, **start)
    with pytest.warns(Warning):
        once.fit(_t(X))
    _close(got.means_, once.means_, np.float64)


@pytest.mark.parametrize("init", ["kmeans", "k-means++"])
@pytest.mark.parametrize("ct", TYPES)
def test_kmeans_inits_run_on_device(ct, init, monkeypatch):
    import sklearn.cluster

    def refuse(*args, **kwargs):
        raise AssertionError("the array API path must not call scikit-learn's k-means")

    monkeypatch.setattr(sklearn.cluster, "KMeans", refuse)
    monkeypatch.setattr(sklearn.cluster, "kmeans_plusplus", refuse)
    X, labels = _data()
    w = np.random.default_rng(2).uniform(0.5, 1.5, size=X.shape[0])
    for sw in (None, _t(w)):
        gm = GaussianMixture(3, covariance_type=ct, init_params=init, random_state=0).fit(_t(X), sample_weight=sw)
        assert torch.is_tensor(gm.means_)
        assert gm.converged_
        assert adjusted_rand_score(labels, _np(gm.predict(_t(X)))) > 0.95
    monkeypatch.undo()
    ref = GaussianMixture(3, covariance_type=ct, init_params=init, random_state=0).fit(X)
    assert gm.lower_bound_ == pytest.approx(ref.lower_bound_, abs=0.05)


def test_kmeans_plusplus_seeding_picks_distinct_weighted_rows():
    from sklearn.utils import check_random_state

    from emix.backends import _xp
    from emix.core.init import kmeans_plusplus_xp

    X, _ = _data()
    Xt = _t(X)
    xp = _xp.namespace(Xt)
    w = np.ones(X.shape[0])
    w[::2] = 0.0  # rows of zero weight are never centers
    idx = kmeans_plusplus_xp(Xt, _t(w), 3, check_random_state(0), xp)
    assert len(set(idx)) == 3 and all(i % 2 == 1 for i in idx)
    # the same random_state gives the same seeds
    assert idx == kmeans_plusplus_xp(Xt, _t(w), 3, check_random_state(0), xp)


@pytest.mark.parametrize("init", ["random", "random_from_data"])
def test_random_inits_give_the_numpy_start(init):
    X, _ = _data()
    kw = dict(covariance_type="full", init_params=init, random_state=3, max_iter=0)
    ref = GaussianMixture(3, **kw).fit(X)
    got = GaussianMixture(3, **kw).fit(_t(X))
    # 'random_from_data' starts from one row per component: covariances of
    # reg_covar, whose rounding the precisions (1e6) magnify; compare absolutely
    for name in ("weights_", "means_", "covariances_"):
        assert_allclose(_np(getattr(got, name)), getattr(ref, name), rtol=1e-10, atol=1e-12)


def test_mixed_inputs_follow_the_fitted_namespace():
    X, _ = _data()
    gm_t = GaussianMixture(3, random_state=0).fit(_t(X))
    out = gm_t.predict_proba(X)  # numpy input on a tensor model: tensor out
    assert torch.is_tensor(out)
    gm_n = GaussianMixture(3, random_state=0, init_params="random_from_data").fit(X)
    out = gm_n.score_samples(_t(X))  # tensor input on a numpy model
    assert torch.is_tensor(out)
    assert_allclose(_np(out), gm_n.score_samples(X), rtol=1e-12)


def _mclust_models():
    from emix.families.gaussian.mclust import MCLUST_MODELS

    return MCLUST_MODELS


@pytest.mark.parametrize("model", _mclust_models())
def test_mclust_models_same_fit_as_numpy(model):
    """E-step on the device, constrained M-step on the host (HostMStep)."""
    X, _ = _data()
    g = GaussianMixture(3, covariance_type=model, max_iter=2, random_state=0).fit(X)
    kw = dict(covariance_type=model, max_iter=8, tol=0,
              weights_init=g.weights_, means_init=g.means_, precisions_init=g.precisions_)
    ref = GaussianMixture(3, **kw).fit(X)
    got = GaussianMixture(3, **kw).fit(_t(X))
    for name in ATTRS:
        assert torch.is_tensor(getattr(got, name))
        _close(getattr(got, name), getattr(ref, name), np.float64)
    _close(got.score_samples(_t(X)), ref.score_samples(X), np.float64)


def test_univariate_mclust_models_check_their_input_on_device():
    X, _ = _data()
    gm = GaussianMixture(2, covariance_type="V", random_state=0).fit(_t(X[:, :1]))
    assert torch.is_tensor(gm.means_)
    with pytest.raises(ValueError, match="univariate"):
        GaussianMixture(2, covariance_type="E", random_state=0).fit(_t(X))


def test_numpy_only_structure_refuses_tensors_clearly(monkeypatch):
    class NumpyOnly:
        name = "numpy-only"

    X, _ = _data()
    gm = GaussianMixture(2)
    monkeypatch.setattr(gm, "_structure", lambda: NumpyOnly)
    with pytest.raises(NotImplementedError, match="supports numpy input only.*'full'"):
        gm.fit(_t(X))


def test_bad_tensor_input_messages():
    with pytest.raises(ValueError, match="2D"):
        GaussianMixture(2).fit(_t(np.zeros(5)))
    X, _ = _data()
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixture(2).fit(_t(Xn))
    gm = GaussianMixture(2, random_state=0).fit(_t(X))
    with pytest.raises(ValueError, match="features"):
        gm.predict(_t(X[:, :2]))


def test_save_load_gives_a_numpy_model(tmp_path):
    import emix

    X, _ = _data()
    gm = GaussianMixture(3, random_state=0).fit(_t(X))
    path = tmp_path / "m.emix"
    emix.save(gm, path)
    back = emix.load(path)
    assert isinstance(back.means_, np.ndarray)
    assert_allclose(back.score_samples(X), _np(gm.score_samples(_t(X))), rtol=1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ct", TYPES)
def test_gpu_same_fit_as_numpy(ct, dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    X, labels = _data(dtype)
    w = np.random.default_rng(1).uniform(0.5, 1.5, size=X.shape[0])
    _check_against_numpy(ct, dtype, "cuda")
    _check_against_numpy(ct, dtype, "cuda", sample_weight=w)
    for init in ("kmeans", "k-means++"):
        gm = GaussianMixture(3, covariance_type=ct, init_params=init, random_state=0).fit(_t(X, "cuda"))
        assert gm.means_.device.type == "cuda"
        assert adjusted_rand_score(labels, _np(gm.predict(_t(X, "cuda")))) > 0.95


@pytest.mark.parametrize("ct", TYPES)
def test_not_positive_definite_names_the_component_on_device(ct):
    from emix.backends import _xp
    from emix.families.gaussian import get_structure
    from emix.families.gaussian._common import NotPositiveDefinite

    structure = get_structure(ct)
    K, D = 3, 2
    cov = {"full": np.stack([np.eye(D)] * K), "tied": np.eye(D),
           "diag": np.ones((K, D)), "spherical": np.ones(K)}[ct]
    bad = 0 if ct == "tied" else 1
    cov[bad] = -cov[bad]  # tied: the one matrix is component 0
    xp = _xp.namespace(_t(cov))
    with pytest.raises(NotPositiveDefinite) as info:
        structure.prec_chol_from_cov(_t(cov), xp=xp)
    assert info.value.component == bad


def test_restarts_and_autograd_inputs():
    X, labels = _data()
    Xt = _t(X).requires_grad_(True)
    gm = GaussianMixture(3, n_init=2, init_params="k-means++", random_state=0).fit(Xt)
    assert not gm.means_.requires_grad
    assert adjusted_rand_score(labels, _np(gm.predict(Xt))) > 0.95
    # integer tensors are fitted as float64, like numpy integer arrays
    gi = GaussianMixture(2, random_state=0).fit(_t(np.round(X * 10).astype(np.int64)))
    assert gi.means_.dtype == torch.float64


def test_partial_fit_refuses_tensors_with_a_clear_error():
    torch = pytest.importorskip("torch")
    X = torch.randn(50, 2, dtype=torch.float64)
    with pytest.raises(NotImplementedError, match="partial_fit supports numpy"):
        GaussianMixture(2).partial_fit(X)
