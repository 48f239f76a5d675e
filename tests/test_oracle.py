"""scipy.stats as an independent oracle for every Gaussian log-density.

Parameters are drawn here with plain numpy (not with emix) and the precision
Cholesky factors are computed here the way scikit-learn stores them, so a
mistake in emix's conversions or kernels cannot cancel out.
"""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import emix
from emix.testing import make_mixture
from emix.families.gaussian import get_structure

COV_TYPES = ["full", "tied", "diag", "spherical"]
RTOL = 1e-10


def _random_spd(rng, D):
    A = rng.normal(size=(D, D))
    return A @ A.T / D + rng.uniform(0.2, 1.0) * np.eye(D)


def _upper_prec_chol(cov):
    """U upper triangular with U U^T = inv(cov) (scikit-learn's convention)."""
    L = np.linalg.cholesky(cov)
    return np.linalg.inv(L).T


def _random_model(covariance_type, K, D, seed, offset=0.0):
    """(weights, means, covariances, prec_chol, full covariances) in numpy."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(K, 2.0))
    means = rng.normal(scale=3.0, size=(K, D)) + offset
    if covariance_type == "full":
        cov = np.stack([_random_spd(rng, D) for _ in range(K)])
        pc = np.stack([_upper_prec_chol(c) for c in cov])
        full = cov
    elif covariance_type == "tied":
        cov = _random_spd(rng, D)
        pc = _upper_prec_chol(cov)
        full = np.broadcast_to(cov, (K, D, D))
    elif covariance_type == "diag":
        cov = rng.uniform(0.1, 3.0, size=(K, D))
        pc = 1.0 / np.sqrt(cov)
        full = np.stack([np.diag(c) for c in cov])
    else:
        cov = rng.uniform(0.1, 3.0, size=K)
        pc = 1.0 / np.sqrt(cov)
        full = cov[:, None, None] * np.eye(D)
    return weights, means, cov, pc, full


def _scipy_log_prob(X, means, full):
    return np.stack(
        [multivariate_normal(mean=m, cov=c).logpdf(X).reshape(-1) for m, c in zip(means, full)], axis=1
    )


def _data(rng, means, n=150, scale=3.0):
    K, D = means.shape
    return means[rng.integers(K, size=n)] + rng.normal(scale=scale, size=(n, D))


def _fitted_estimator(covariance_type, weights, means, cov, pc):
    gm = emix.GaussianMixture(n_components=len(weights), covariance_type=covariance_type)
    gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_ = weights, means, cov, pc
    gm.precisions_ = get_structure(covariance_type).precisions(pc)
    gm.n_features_in_ = means.shape[1]
    gm.converged_, gm.n_iter_, gm.lower_bound_, gm.lower_bounds_ = True, 1, 0.0, [0.0]
    return gm


@pytest.mark.parametrize("offset", [0.0, 1e4])
@pytest.mark.parametrize("K,D", [(1, 1), (3, 2), (4, 5)])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_structure_log_prob_matches_scipy(covariance_type, K, D, offset):
    weights, means, cov, pc, full = _random_model(covariance_type, K, D, seed=K * 10 + D, offset=offset)
    X = _data(np.random.default_rng(1), means)
    got = get_structure(covariance_type).log_prob(X, means, pc)
    assert got.shape == (X.shape[0], K)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, _scipy_log_prob(X, means, full), rtol=RTOL, atol=RTOL)


@pytest.mark.parametrize("offset", [0.0, 1e4])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_score_samples_and_predict_proba_match_scipy(covariance_type, offset):
    K, D = 3, 4
    weights, means, cov, pc, full = _random_model(covariance_type, K, D, seed=7, offset=offset)
    X = _data(np.random.default_rng(2), means)
    gm = _fitted_estimator(covariance_type, weights, means, cov, pc)
    wlp = _scipy_log_prob(X, means, full) + np.log(weights)
    expected = logsumexp(wlp, axis=1)
    np.testing.assert_allclose(gm.score_samples(X), expected, rtol=RTOL, atol=RTOL)
    np.testing.assert_allclose(gm.score(X), expected.mean(), rtol=RTOL)
    resp = np.exp(wlp - expected[:, None])
    np.testing.assert_allclose(gm.predict_proba(X), resp, rtol=1e-9, atol=1e-12)
    # argmax of an oracle whose top two are not tied to rounding
    top2 = np.sort(wlp, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-6
    np.testing.assert_array_equal(gm.predict(X)[clear], np.argmax(wlp, axis=1)[clear])


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_fitted_model_density_matches_scipy(covariance_type):
    """After a real fit, score_samples agrees with scipy evaluated at the
    fitted covariances_ (so covariances_ and precisions_cholesky_ agree)."""
    X, _, _ = make_mixture(300, 3, 3, random_state=3)
    gm = emix.GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    full = get_structure(covariance_type).full_covariances(gm.covariances_, 3, 3)
    expected = logsumexp(_scipy_log_prob(X, gm.means_, full) + np.log(gm.weights_), axis=1)
    np.testing.assert_allclose(gm.score_samples(X), expected, rtol=RTOL, atol=RTOL)
    # precisions_ is the inverse of covariances_
    np.testing.assert_allclose(
        get_structure(covariance_type).full_covariances(gm.precisions_, 3, 3) @ full,
        np.broadcast_to(np.eye(3), (3, 3, 3)),
        atol=1e-10,
    )


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_far_rows_do_not_underflow_to_nan(covariance_type):
    """Rows far in the tails give finite log densities and valid responsibilities."""
    K, D = 3, 2
    weights, means, cov, pc, full = _random_model(covariance_type, K, D, seed=11)
    X = np.array([[1e3, -1e3], [0.0, 1e4], [-3e3, 0.0]])
    gm = _fitted_estimator(covariance_type, weights, means, cov, pc)
    ll = gm.score_samples(X)
    expected = logsumexp(_scipy_log_prob(X, means, full) + np.log(weights), axis=1)
    np.testing.assert_allclose(ll, expected, rtol=1e-9)
    resp = gm.predict_proba(X)
    assert np.all(np.isfinite(resp))
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
