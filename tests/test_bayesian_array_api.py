"""BayesianGaussianMixture on PyTorch tensors (the array API path).

Oracle: the numpy fit (itself checked against scikit-learn in
tests/test_bayesian.py) from the same initial responsibilities:
``init_params='random'`` and ``'random_from_data'`` draw the same start on
tensors as on numpy arrays (emix.core.init). CPU tensors run here; the
GPU-marked test repeats the checks on CUDA and skips without a GPU.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.metrics import adjusted_rand_score

from emix import BayesianGaussianMixture
from emix.testing import make_mixture

torch = pytest.importorskip("torch")
pytest.importorskip("array_api_compat")

# short fits (max_iter=15, tol=0) stop before convergence on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Best performing initialization did not converge")

TYPES = ["full", "tied", "diag", "spherical"]
PRIORS = ["dirichlet_process", "dirichlet_distribution"]
ATTRS = ["weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_",
         "mean_precision_", "degrees_of_freedom_"]
TOL = {np.float64: 1e-10, np.float32: 1e-4}


def _data(dtype=np.float64, n=600, random_state=0):
    X, labels, _ = make_mixture(n, 3, 3, separation=5.0, random_state=random_state)
    return X.astype(dtype), labels


def _np(a):
    return a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a)


def _close(a, b, dtype):
    tol = TOL[dtype]
    assert_allclose(_np(a), _np(b), rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(_np(b))))))


def _check_against_numpy(ct, prior_type, dtype, device, sample_weight=None, init="random_from_data"):
    X, _ = _data(dtype)
    kw = dict(n_components=5, covariance_type=ct, weight_concentration_prior_type=prior_type,
              init_params=init, max_iter=15, tol=0, random_state=0)
    ref = BayesianGaussianMixture(**kw).fit(X, sample_weight=sample_weight)
    Xt = torch.asarray(X, device=device)
    wt = None if sample_weight is None else torch.asarray(sample_weight, device=device)
    got = BayesianGaussianMixture(**kw).fit(Xt, sample_weight=wt)
    for name in ATTRS:
        a = getattr(got, name)
        if isinstance(a, float):  # 'tied' degrees of freedom
            _close(a, getattr(ref, name), dtype)
            continue
        assert torch.is_tensor(a) and a.device.type == Xt.device.type, name
        _close(a, getattr(ref, name), dtype)
    if prior_type == "dirichlet_process":
        for a, b in zip(got.weight_concentration_, ref.weight_concentration_):
            _close(a, b, dtype)
    else:
        _close(got.weight_concentration_, ref.weight_concentration_, dtype)
    assert got.means_.dtype == Xt.dtype and got.weights_.dtype == Xt.dtype
    assert got.n_iter_ == ref.n_iter_ == 15
    assert got.n_effective_components_ == ref.n_effective_components_
    assert_allclose(got.lower_bound_, ref.lower_bound_, rtol=TOL[dtype])
    assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=TOL[dtype])
    proba = got.predict_proba(Xt)
    assert torch.is_tensor(proba) and proba.dtype == Xt.dtype and proba.device == Xt.device
    _close(proba, ref.predict_proba(X), dtype)
    ss = got.score_samples(Xt)
    assert torch.is_tensor(ss) and ss.dtype == Xt.dtype and ss.device == Xt.device
    _close(ss, ref.score_samples(X), dtype)
    labels = got.predict(Xt)
    assert torch.is_tensor(labels) and labels.device == Xt.device
    # labels may differ only where two responsibilities tie to rounding
    assert np.mean(_np(labels) == ref.predict(X)) > 0.99
    assert_allclose(got.score(Xt, sample_weight=wt), ref.score(X, sample_weight=sample_weight),
                    rtol=TOL[dtype])
    return got, ref


@pytest.mark.parametrize("prior_type", PRIORS)
@pytest.mark.parametrize("ct", TYPES)
def test_cpu_float64_same_fit_as_numpy(ct, prior_type):
    _check_against_numpy(ct, prior_type, np.float64, "cpu")


@pytest.mark.parametrize("prior_type", PRIORS)
@pytest.mark.parametrize("ct", ["full", "diag"])
def test_cpu_float64_random_init_and_sample_weight(ct, prior_type):
    w = np.random.RandomState(1).randint(0, 4, 600).astype(np.float64)
    _check_against_numpy(ct, prior_type, np.float64, "cpu", sample_weight=w, init="random")


@pytest.mark.parametrize("prior_type", PRIORS)
@pytest.mark.parametrize("ct", TYPES)
def test_cpu_float32_close_to_numpy(ct, prior_type):
    _check_against_numpy(ct, prior_type, np.float32, "cpu")


def test_kmeans_init_on_tensor_recovers_clusters_and_empties_surplus():
    # k-means on the device differs from scikit-learn's, so no exact oracle: planted labels
    X, labels = _data()
    bgm = BayesianGaussianMixture(n_components=8, weight_concentration_prior=1e-3, max_iter=500,
                                  random_state=0).fit(torch.asarray(X))
    assert bgm.converged_
    assert bgm.n_effective_components_ == 3
    assert adjusted_rand_score(labels, _np(bgm.predict(torch.asarray(X)))) > 0.95


def test_numpy_input_to_tensor_model_and_tensor_input_to_numpy_model():
    X, _ = _data()
    kw = dict(n_components=3, init_params="random_from_data", max_iter=15, tol=0, random_state=0)
    ref = BayesianGaussianMixture(**kw).fit(X)
    got = BayesianGaussianMixture(**kw).fit(torch.asarray(X))
    out = got.predict_proba(X)  # numpy input, tensor model: tensor output
    assert torch.is_tensor(out)
    _close(out, ref.predict_proba(X), np.float64)
    out = ref.score_samples(torch.asarray(X))  # tensor input, numpy model
    assert torch.is_tensor(out)
    _close(out, ref.score_samples(X), np.float64)


def test_warm_start_on_tensor_continues_like_numpy():
    X, _ = _data()
    kw = dict(n_components=3, init_params="random_from_data", max_iter=5, tol=0, random_state=0,
              warm_start=True)
    ref = BayesianGaussianMixture(**kw).fit(X)
    ref.fit(X)
    got = BayesianGaussianMixture(**kw).fit(torch.asarray(X))
    got.fit(torch.asarray(X))
    _close(got.means_, ref.means_, np.float64)
    assert_allclose(got.lower_bound_, ref.lower_bound_, rtol=1e-10)
    # a numpy model continued on tensors: the same continuation, now on the device
    mixed = BayesianGaussianMixture(**kw).fit(X)
    mixed.fit(torch.asarray(X))
    assert torch.is_tensor(mixed.means_)
    _close(mixed.means_, ref.means_, np.float64)
    assert_allclose(mixed.lower_bounds_, ref.lower_bounds_, rtol=1e-10)


def test_requires_grad_input_and_bad_input():
    X, _ = _data()
    Xt = torch.asarray(X).requires_grad_(True)
    bgm = BayesianGaussianMixture(n_components=3, random_state=0).fit(Xt)
    assert not bgm.means_.requires_grad
    bad = torch.asarray(X).clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        BayesianGaussianMixture(n_components=3).fit(bad)
    with pytest.raises(ValueError, match="features"):
        bgm.predict(torch.asarray(X[:, :2]))
    with pytest.raises(NotImplementedError, match="numpy"):
        bgm.partial_fit(torch.asarray(X))
    with pytest.raises(NotImplementedError, match="PyTorch"):
        bgm.sample(3)


@pytest.mark.gpu
@pytest.mark.parametrize("prior_type", PRIORS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ct", TYPES)
def test_gpu_same_fit_as_numpy(ct, dtype, prior_type):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    got, _ = _check_against_numpy(ct, prior_type, dtype, "cuda")
    assert got.means_.device.type == "cuda"
    w = np.random.RandomState(1).randint(0, 4, 600).astype(dtype)
    _check_against_numpy(ct, prior_type, dtype, "cuda", sample_weight=w, init="random")
