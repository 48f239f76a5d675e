"""Hypothesis properties of the statistics and of the fit.

Every example draws a seed and small shapes; the arrays come from numpy's
generator with that seed. Fits start from given parameters (weights_init,
means_init, precisions_init) so that they are deterministic.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emix
from emix.core import em
from emix.families.gaussian import get_structure
from emix.testing import make_mixture, match_components

COV_TYPES = ["full", "tied", "diag", "spherical"]
SETTINGS = settings(deadline=None, max_examples=12, derandomize=True)
FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")

cov_types = st.sampled_from(COV_TYPES)
seeds = st.integers(0, 2**31 - 1)


def _problem(seed, K, D, n):
    X, _, _ = make_mixture(n, max(K, 1), D, separation=4.0, random_state=seed)
    return X


def _inits(covariance_type, X, K, seed):
    rng = np.random.default_rng(seed)
    D = X.shape[1]
    means = X[rng.choice(X.shape[0], size=K, replace=False)] + rng.normal(scale=0.1, size=(K, D))
    prec = {
        "full": np.broadcast_to(np.eye(D), (K, D, D)).copy(),
        "tied": np.eye(D),
        "diag": np.ones((K, D)),
        "spherical": np.ones(K),
    }[covariance_type] * rng.uniform(0.5, 2.0)
    return dict(weights_init=np.full(K, 1.0 / K), means_init=means, precisions_init=prec)


def _fit(X, covariance_type, init, sample_weight=None, max_iter=6, **kw):
    K = len(init["weights_init"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        return emix.GaussianMixture(
            K, covariance_type=covariance_type, tol=0.0, max_iter=max_iter, reg_covar=1e-3, **init, **kw
        ).fit(X, sample_weight=sample_weight)


def _assert_same_model(a, b, rtol=1e-8, atol=1e-10):
    for name in FITTED:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=atol, err_msg=name)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=rtol, atol=atol)
    assert a.n_iter_ == b.n_iter_


# ----------------------------------------------------------------- statistics
@SETTINGS
@given(seed=seeds, covariance_type=cov_types, K=st.integers(1, 4), D=st.integers(1, 4),
       n=st.integers(2, 60), cut_frac=st.floats(0.0, 1.0), weighted=st.booleans())
def test_statistics_of_two_halves_sum_to_the_whole(seed, covariance_type, K, D, n, cut_frac, weighted):
    structure = get_structure(covariance_type)
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=3.0, size=(n, D)) + rng.choice([0.0, 1e3])
    means = X[rng.integers(n, size=K)] + rng.normal(size=(K, D))
    params = em.m_step(
        em.stats_from_resp(X, None, rng.dirichlet(np.ones(K), size=n), means, structure),
        structure, 0.5, X.dtype,
    )
    w = rng.uniform(0, 4, size=n) if weighted else None
    cut = min(n - 1, max(1, int(cut_frac * n)))
    whole = em.e_step(X, w, params, structure)
    a = em.e_step(X[:cut], None if w is None else w[:cut], params, structure)
    b = em.e_step(X[cut:], None if w is None else w[cut:], params, structure)
    total = a + b
    for f in ("nk", "s1", "s2"):
        ref = getattr(whole, f)
        np.testing.assert_allclose(getattr(total, f), ref, rtol=1e-10, atol=1e-10 * max(1.0, np.abs(ref).max()))
    np.testing.assert_allclose(total.loglik, whole.loglik, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(total.sum_w, whole.sum_w, rtol=1e-12)


# ----------------------------------------------------------- permutations
@SETTINGS
@given(seed=seeds, covariance_type=cov_types, K=st.integers(1, 3), D=st.integers(1, 3))
def test_fit_is_invariant_to_row_order(seed, covariance_type, K, D):
    X = _problem(seed, K, D, n=20 * K * D + 10)
    init = _inits(covariance_type, X, K, seed)
    perm = np.random.default_rng(seed + 1).permutation(X.shape[0])
    w = np.random.default_rng(seed + 2).uniform(0.5, 2.0, size=X.shape[0])
    a = _fit(X, covariance_type, init, sample_weight=w)
    b = _fit(X[perm], covariance_type, init, sample_weight=w[perm])
    _assert_same_model(a, b)
    np.testing.assert_allclose(a.predict_proba(X)[perm], b.predict_proba(X[perm]), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(a.score_samples(X)[perm], b.score_samples(X[perm]), rtol=1e-10)


# ---------------------------------------------------------- sample weights
@SETTINGS
@given(seed=seeds, covariance_type=cov_types, K=st.integers(1, 3), D=st.integers(1, 3))
def test_integer_weights_equal_repeated_rows(seed, covariance_type, K, D):
    X = _problem(seed, K, D, n=15 * K * D + 10)
    rng = np.random.default_rng(seed + 3)
    w = rng.integers(0, 4, size=X.shape[0])
    w[: 2 * K * D + 2] = np.maximum(w[: 2 * K * D + 2], 1)
    init = _inits(covariance_type, X[w > 0], K, seed)
    X_rep = np.repeat(X, w, axis=0)
    a = _fit(X, covariance_type, init, sample_weight=w)
    b = _fit(X_rep, covariance_type, init)
    _assert_same_model(a, b)
    np.testing.assert_allclose(a.bic(X, sample_weight=w), b.bic(X_rep), rtol=1e-10)
    np.testing.assert_allclose(a.aic(X, sample_weight=w), b.aic(X_rep), rtol=1e-10)
    np.testing.assert_allclose(a.score(X, sample_weight=w), b.score(X_rep), rtol=1e-10)
    # float weights that are integers in value behave the same
    c = _fit(X, covariance_type, init, sample_weight=w.astype(float))
    _assert_same_model(a, c, rtol=1e-12, atol=0)


@SETTINGS
@given(seed=seeds, covariance_type=cov_types, K=st.integers(1, 3), D=st.integers(1, 3))
def test_zero_weight_equals_removed_row(seed, covariance_type, K, D):
    X = _problem(seed, K, D, n=15 * K * D + 10)
    rng = np.random.default_rng(seed + 4)
    w = rng.uniform(0.1, 3.0, size=X.shape[0])
    dropped = rng.random(X.shape[0]) < 0.3
    dropped[: 2 * K * D + 2] = False
    w[dropped] = 0.0
    # rows with zero weight may even be far away: they must not matter
    X = X.copy()
    X[dropped] += 1e3 * rng.normal(size=(int(dropped.sum()), D))
    init = _inits(covariance_type, X[~dropped], K, seed)
    a = _fit(X, covariance_type, init, sample_weight=w)
    b = _fit(X[~dropped], covariance_type, init, sample_weight=w[~dropped])
    _assert_same_model(a, b)


@SETTINGS
@given(seed=seeds, covariance_type=cov_types, scale=st.floats(0.01, 100.0))
def test_scaling_all_weights_changes_nothing(seed, covariance_type, scale):
    K, D = 2, 2
    X = _problem(seed, K, D, n=60)
    w = np.random.default_rng(seed).uniform(0.1, 2.0, size=60)
    init = _inits(covariance_type, X, K, seed)
    a = _fit(X, covariance_type, init, sample_weight=w)
    b = _fit(X, covariance_type, init, sample_weight=w * scale)
    _assert_same_model(a, b, rtol=1e-7, atol=1e-9)
    c = _fit(X, covariance_type, init, sample_weight=np.ones(60))
    d = _fit(X, covariance_type, init)
    _assert_same_model(c, d, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [1e-300, 1e-45, 1e-30, 1e30, 1e300])
def test_extreme_weight_scales_change_nothing(scale, dtype):
    """Tiny weights used to meet the 10 eps added to n_k (the fit never moved);
    huge ones overflowed the cast to float32."""
    K, D = 2, 2
    X = _problem(5, K, D, n=80).astype(dtype)
    w = np.random.default_rng(5).uniform(0.5, 2.0, size=80)
    init = _inits("full", X.astype(np.float64), K, 5)
    a = _fit(X, "full", init, sample_weight=w)
    b = _fit(X, "full", init, sample_weight=w * scale)
    tol = 1e-5 if dtype == np.float32 else 1e-9
    _assert_same_model(a, b, rtol=tol, atol=tol)
    for kind in ("kmeans", "random_from_data"):
        c = emix.GaussianMixture(K, init_params=kind, random_state=0).fit(X, sample_weight=w)
        d = emix.GaussianMixture(K, init_params=kind, random_state=0).fit(X, sample_weight=w * scale)
        np.testing.assert_allclose(c.means_, d.means_, rtol=tol, atol=tol)


# ------------------------------------- randomized starts with sample weights
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_weighted_random_starts_reach_the_repeated_rows_solution(covariance_type, init_params):
    """The random starts cannot be identical for weighted and repeated rows, but on
    well separated clusters the weighted fit must find the mixture that the
    repeated rows give from the true means."""
    X, _, truth = make_mixture(90, 3, 2, separation=12.0, random_state=21)
    w = np.random.default_rng(22).integers(1, 4, size=90)
    kw = dict(n_components=3, covariance_type=covariance_type, tol=1e-10, max_iter=300, random_state=0)
    a = emix.GaussianMixture(init_params=init_params, n_init=3, **kw).fit(X, sample_weight=w)
    ref = emix.GaussianMixture(means_init=truth["means"], **kw).fit(np.repeat(X, w, axis=0))
    assert a.converged_ and ref.converged_
    emix.testing.assert_mixture_allclose(a, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data"])
def test_seeding_never_picks_zero_weight_rows(init_params):
    X, _, _ = make_mixture(80, 4, 2, random_state=23)
    w = np.ones(80)
    w[::2] = 0.0
    X = X.copy()
    X[::2] += 500.0  # zero-weight rows far away would be favorite k-means++ seeds
    for seed in range(5):
        gm = emix.GaussianMixture(4, init_params=init_params, max_iter=0, random_state=seed,
                                  reg_covar=1e-2).fit(X, sample_weight=w)
        for m in gm.means_:
            assert np.min(np.abs(X[1::2] - m).sum(axis=1)) < 1e-9, (seed, m)


def test_weighted_kmeans_start_follows_the_weights():
    """Two clusters, one of which has all the weight on a sub-cluster: the
    weighted kmeans start must not be pulled by zero-weight rows."""
    rng = np.random.default_rng(24)
    A = rng.normal(size=(40, 2))
    B = rng.normal(size=(40, 2)) + [30.0, 0.0]
    C = rng.normal(size=(40, 2)) + [-30.0, 0.0]
    X = np.vstack([A, B, C])
    w = np.r_[np.ones(40), np.ones(40), np.zeros(40)]
    gm = emix.GaussianMixture(2, random_state=0).fit(X, sample_weight=w)
    perm = match_components(gm.means_, np.array([[0.0, 0.0], [30.0, 0.0]]))
    np.testing.assert_allclose(gm.means_[perm], [A.mean(axis=0), B.mean(axis=0)], atol=1e-6)
    np.testing.assert_allclose(gm.weights_, [0.5, 0.5], atol=1e-6)


@pytest.mark.parametrize("scale", [1e-150, 1e-20, 1e20, 1e150])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_fit_is_equivariant_to_the_scale_of_the_data(covariance_type, scale):
    """No square or determinant over/underflows: with reg_covar=0, X * s gives
    means * s, covariances * s^2 and a log-likelihood lower by D log s."""
    K, D = 2, 2
    X = _problem(6, K, D, n=120)
    init = _inits(covariance_type, X, K, 6)
    scaled = dict(init, means_init=init["means_init"] * scale, precisions_init=init["precisions_init"] / scale**2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        kw = dict(covariance_type=covariance_type, tol=0.0, max_iter=10, reg_covar=0.0)
        a = emix.GaussianMixture(K, **kw, **init).fit(X)
        b = emix.GaussianMixture(K, **kw, **scaled).fit(X * scale)
    np.testing.assert_allclose(b.weights_, a.weights_, rtol=1e-9)
    np.testing.assert_allclose(b.means_ / scale, a.means_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.covariances_ / scale**2, a.covariances_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(np.array(b.lower_bounds_) + D * np.log(scale), a.lower_bounds_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(b.score_samples(X * scale) + D * np.log(scale), a.score_samples(X), rtol=1e-9, atol=1e-9)
