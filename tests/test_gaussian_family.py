"""The Gaussian family behind the component-family protocol
(emix.families.gaussian.family): EM through the generic driver equals
GaussianMixture from the same start, for every covariance structure; float32
data; the initialization shift; parameter checks. Oracle densities and the
per-cluster MLE are in tests/test_family_contract.py."""

import numpy as np
import pytest

import emix
from emix.core import em
from emix.backends.reduce import BlockReducer
from emix.exceptions import DegenerateComponentError
from emix.families import Mixture, MixtureParams, get_family, get_structure
from emix.families.base import fit_mixture


def _data(rng, n=400, offset=0.0):
    z = rng.integers(0, 3, n)
    centers = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-1.0, 5.0, 3.0]])
    A = np.array([[1.0, 0.4, 0.0], [0.0, 0.8, 0.3], [0.2, 0.0, 1.5]])
    return centers[z] + rng.normal(size=(n, 3)) @ A + offset


def _start(X, covariance_type, K=3):
    """A start shared by both fits: one M-step from hard labels (by the first
    coordinate's terciles)."""
    mix = Mixture(get_family("gaussian", covariance_type=covariance_type))
    labels = np.searchsorted(np.quantile(X[:, 0], [1 / 3, 2 / 3]), X[:, 0])
    return mix.m_step(mix.stats_from_resp(X, None, np.eye(K)[labels], None), None)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "tied", "spherical", "EEV", "VEI"])
def test_fit_mixture_equals_gaussian_mixture_from_the_same_start(covariance_type):
    rng = np.random.default_rng(0)
    X = _data(rng)
    w = rng.uniform(0.2, 2.0, X.shape[0])
    w /= w.mean()  # GaussianMixture normalizes the weights to a mean of 1
    p0 = _start(X, covariance_type)
    s = get_structure(covariance_type)
    gm = emix.GaussianMixture(3, covariance_type=covariance_type, weights_init=p0.weights,
                              means_init=p0.components["means"],
                              precisions_init=s.precisions(p0.components["precisions_cholesky"]),
                              tol=1e-9, max_iter=200).fit(X, sample_weight=w)
    mix = Mixture(get_family("gaussian", covariance_type=covariance_type))
    res = fit_mixture(BlockReducer(X, w, 97), p0, mix, tol=1e-9, max_iter=200)
    c = res.params.components
    assert res.n_iter == gm.n_iter_ and res.converged == gm.converged_
    np.testing.assert_allclose(res.params.weights, gm.weights_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c["means"], gm.means_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(c["covariances"], gm.covariances_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(c["precisions_cholesky"], gm.precisions_cholesky_, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(res.history, gm.lower_bounds_, rtol=1e-12)
    # the family's log densities and parameter count are the estimator's
    lp = mix.weighted_log_prob(X, res.params)
    np.testing.assert_allclose(lp, em.weighted_log_prob(X, gm._params(), gm._structure()), rtol=1e-9)
    np.testing.assert_allclose(np.logaddexp.reduce(lp, axis=1), gm.score_samples(X), rtol=1e-9)
    assert mix.n_parameters(res.params) == gm._n_parameters()


def test_float32_rows_keep_float64_statistics():
    rng = np.random.default_rng(1)
    X64 = _data(rng, 300, offset=100.0)
    X32 = X64.astype(np.float32)
    fam = get_family("gaussian", covariance_type="full")
    mix = Mixture(fam)
    p0 = _start(X32.astype(np.float64), "full")
    st = mix.e_step(X32, None, p0)
    assert st.sums["s1"].dtype == np.float64 and st.sums["s2"].dtype == np.float64
    # the statistics of float32 rows are those of the same (exactly representable) values in float64
    st64 = mix.e_step(X32.astype(np.float64), None, p0)
    np.testing.assert_allclose(st.sums["s2"], st64.sums["s2"], rtol=1e-12)
    p1 = mix.m_step(st, p0)
    assert all(v.dtype == np.float64 for v in p1.components.values())


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_initial_m_step_with_the_origin_shift(offset):
    """comp=None: statistics about the origin (additive over blocks); the
    initial covariances match numpy's per-cluster estimate to eps (|mu|/sigma)^2."""
    rng = np.random.default_rng(2)
    X = _data(rng, 300, offset=offset)
    labels = np.arange(300) % 2
    fam = get_family("gaussian", covariance_type="full", reg_covar=0.0)
    mix = Mixture(fam)
    resp = np.eye(2)[labels]
    whole = mix.stats_from_resp(X, None, resp, None)
    halves = mix.stats_from_resp(X[:100], None, resp[:100], None) + mix.stats_from_resp(X[100:], None, resp[100:],
                                                                                      None)
    p_whole, p_halves = mix.m_step(whole, None), mix.m_step(halves, None)
    for k in range(2):
        Xk = X[labels == k]
        np.testing.assert_allclose(p_whole.components["means"][k], Xk.mean(axis=0), rtol=1e-13)
        tol = 1e-12 + 1e-15 * (1.0 + offset) ** 2
        np.testing.assert_allclose(p_whole.components["covariances"][k], np.cov(Xk.T, bias=True), rtol=tol, atol=tol)
        np.testing.assert_allclose(p_halves.components["covariances"][k], p_whole.components["covariances"][k],
                                   rtol=tol, atol=tol)


def test_config_rebuilds_and_options_are_checked():
    fam = get_family("gaussian", covariance_type="tied", reg_covar=1e-3)
    again = get_family(fam.config()["name"], **fam.config()["options"])
    assert again.config() == fam.config() == {"name": "gaussian",
                                               "options": {"covariance_type": "tied", "reg_covar": 1e-3}}
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        get_family("gaussian", covariance_type="banana")
    with pytest.raises(ValueError, match="reg_covar"):
        get_family("gaussian", reg_covar=-1.0)


def test_check_params():
    fam = get_family("gaussian", covariance_type="full")
    rng = np.random.default_rng(3)
    A = rng.normal(size=(2, 3, 3))
    cov = A @ A.transpose(0, 2, 1) + np.eye(3)
    means = rng.normal(size=(2, 3))
    out = fam.check_params({"means": means, "covariances": cov}, 2, 3)
    P = out["precisions_cholesky"] @ out["precisions_cholesky"].transpose(0, 2, 1)
    np.testing.assert_allclose(P, np.linalg.inv(cov), rtol=1e-10, atol=1e-12)
    back = fam.check_params({"means": means, "precisions_cholesky": out["precisions_cholesky"]}, 2, 3)
    np.testing.assert_allclose(back["covariances"], cov, rtol=1e-10)
    with pytest.raises(ValueError, match=r"means must have shape \(2, 3\)"):
        fam.check_params({"means": means[:, :2], "covariances": cov}, 2, 3)
    with pytest.raises(ValueError, match="positive definite"):
        fam.check_params({"means": means, "covariances": -cov}, 2, 3)
    with pytest.raises(ValueError, match="upper-triangular"):
        fam.check_params({"means": means, "precisions_cholesky": out["precisions_cholesky"].transpose(0, 2, 1)}, 2, 3)
    with pytest.raises(ValueError, match="'covariances' or 'precisions_cholesky'"):
        fam.check_params({"means": means}, 2, 3)


def test_collapsed_component_raises_degenerate():
    fam = get_family("gaussian", covariance_type="full", reg_covar=0.0)
    mix = Mixture(fam)
    X = np.vstack([np.ones((5, 2)), np.random.default_rng(4).normal(size=(20, 2))])
    resp = np.eye(2)[np.r_[np.zeros(5, int), np.ones(20, int)]]
    with pytest.raises(DegenerateComponentError):
        mix.m_step(mix.stats_from_resp(X, None, resp, None), None)


def test_sample_has_the_component_moments():
    fam = get_family("gaussian", covariance_type="diag")
    comp = {"means": np.array([[0.0, 10.0], [5.0, -5.0]]), "covariances": np.array([[1.0, 4.0], [0.25, 9.0]])}
    comp = fam.check_params(comp, 2, 2)
    rng = np.random.default_rng(5)
    Xs = fam.sample(comp, [20000, 30000], rng)
    for k, (a, b) in enumerate([(0, 20000), (20000, 50000)]):
        np.testing.assert_allclose(Xs[a:b].mean(axis=0), comp["means"][k], atol=0.06)
        np.testing.assert_allclose(Xs[a:b].var(axis=0), comp["covariances"][k], rtol=0.04)
    assert MixtureParams(np.array([0.4, 0.6]), comp).n_components == 2
