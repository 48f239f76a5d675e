"""The contract every registered covariance structure must meet.

One table, run over every structure in ``emix.families.gaussian``'s registry
(aliases de-duplicated), so a structure added later is checked by adding it to
the registry: oracle densities, conversions between parameterizations,
split/merge statistics, float32 shift invariance, monotone EM, and a one-hot
M-step that is the per-cluster maximum-likelihood estimate.
"""

import warnings

import numpy as np
import pytest

import emix
from emix.core import em
from emix.families.gaussian import get_structure, structure_names
from emix.testing import make_mixture, oracle_log_prob, random_params


def _registered():
    """One (name, structure) per distinct structure; the name is one that
    ``GaussianMixture(covariance_type=name)`` accepts."""
    seen = {}
    for name in structure_names():
        s = get_structure(name)
        canonical = getattr(s, "name", name)
        key = id(s)
        if key not in seen or name == canonical:
            seen[key] = (name, s)
    return sorted(seen.values(), key=lambda t: t[0])


STRUCTURES = [pytest.param(name, s, id=name) for name, s in _registered()]


def _n_features(name, wanted):
    """``wanted`` features, or 1 for a structure that accepts only univariate
    data (mclust's E and V refuse more with a ValueError)."""
    try:
        random_params(name, 2, 2, random_state=0)
    except ValueError:
        random_params(name, 2, 1, random_state=0)  # must work with one feature
        return 1
    return wanted

# The per-cluster MLE, in numpy, of the structures whose MLE has a closed form
# we can write independently; other structures get the generic check
# test_one_hot_m_step_maximizes_expected_loglik.
def _mle_full(groups, n):
    return np.stack([np.cov(g.T, bias=True).reshape(g.shape[1], g.shape[1]) for g in groups])


def _mle_tied(groups, n):
    return sum(len(g) * np.cov(g.T, bias=True).reshape(g.shape[1], g.shape[1]) for g in groups) / n


def _mle_diag(groups, n):
    return np.stack([g.var(axis=0) for g in groups])


def _mle_spherical(groups, n):
    return np.array([g.var(axis=0).mean() for g in groups])


NUMPY_MLE = {"full": _mle_full, "tied": _mle_tied, "diag": _mle_diag, "spherical": _mle_spherical}


def _close(a, b, rtol, err_msg=""):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=err_msg)


def _assert_stats_close(a, b, rtol=1e-10):
    for f in ("nk", "s1", "s2"):
        _close(getattr(a, f), getattr(b, f), rtol, f)
    _close(a.loglik, b.loglik, rtol, "loglik")
    _close(a.sum_w, b.sum_w, rtol, "sum_w")
    np.testing.assert_array_equal(a.shift, b.shift)


def _rows_near(params, n, rng, spread=1.5):
    K, D = params.means.shape
    X = params.means[rng.integers(K, size=n)].astype(np.float64) + rng.normal(scale=spread, size=(n, D))
    return X.astype(params.means.dtype)


def test_registry_holds_the_four_scikit_learn_types():
    for name in ("full", "tied", "diag", "spherical"):
        assert get_structure(name).name == name


# --------------------------------------------------------------- densities
@pytest.mark.parametrize("offset", [0.0, 1e4])
@pytest.mark.parametrize("K,D", [(1, 1), (3, 4)])
@pytest.mark.parametrize("name,structure", STRUCTURES)
def test_log_prob_matches_scipy(name, structure, K, D, offset):
    D = _n_features(name, D)
    params, _ = random_params(name, K, D, offset=offset, random_state=K + D)
    X = _rows_near(params, 120, np.random.default_rng(0))
    full = structure.full_covariances(params.covariances, K, D)
    assert full.shape == (K, D, D)
    got = structure.log_prob(X, params.means, params.precisions_cholesky)
    assert got.shape == (120, K) and got.dtype == np.float64
    np.testing.assert_allclose(got, oracle_log_prob(X, params.means, full), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,structure", STRUCTURES)
def test_parameterizations_agree(name, structure):
    K, D = 3, _n_features(name, 4)
    params, _ = random_params(name, K, D, random_state=1)
    cov, pc = params.covariances, params.precisions_cholesky
    assert cov.shape == structure.cov_shape(K, D) == pc.shape
    prec = structure.precisions(pc)
    np.testing.assert_allclose(structure.cov_from_prec_chol(pc), cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(structure.prec_chol_from_cov(cov), pc, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(structure.prec_chol_from_precisions(prec), pc, rtol=1e-10, atol=1e-12)
    full_cov = structure.full_covariances(cov, K, D)
    full_prec = np.linalg.inv(full_cov)
    np.testing.assert_allclose(structure.full_covariances(prec, K, D), full_prec, rtol=1e-9, atol=1e-12)
    # the stored factor is upper triangular (scikit-learn's convention) where it is a matrix
    if pc.ndim >= 2 and pc.shape[-1] == pc.shape[-2] == D and D > 1:
        np.testing.assert_array_equal(np.tril(pc, -1), 0.0)
    # the number of free covariance parameters is at most that of 'full' and > 0
    assert 0 < structure.n_cov_parameters(K, D) <= K * D * (D + 1) // 2


# ------------------------------------------------------ split/merge statistics
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name,structure", STRUCTURES)
def test_statistics_of_parts_sum_to_the_whole(name, structure, weighted):
    K, D = 3, _n_features(name, 3)
    params, _ = random_params(name, K, D, offset=50.0, random_state=4)
    rng = np.random.default_rng(5)
    X = _rows_near(params, 301, rng)
    w = rng.uniform(0.0, 3.0, size=301) if weighted else None
    whole = em.e_step(X, w, params, structure)
    for cut in (1, 150, 300):
        a = em.e_step(X[:cut], None if w is None else w[:cut], params, structure)
        b = em.e_step(X[cut:], None if w is None else w[cut:], params, structure)
        _assert_stats_close(a + b, whole)
        _assert_stats_close(sum([a, b]), whole)
    # three uneven parts in another order
    parts = [(slice(200, 301)), slice(0, 7), slice(7, 200)]
    total = sum(em.e_step(X[p], None if w is None else w[p], params, structure) for p in parts)
    _assert_stats_close(total, whole)
    # and one M-step on the sum equals the M-step on the whole
    p1 = em.m_step(total, structure, 1e-6, X.dtype)
    p2 = em.m_step(whole, structure, 1e-6, X.dtype)
    for f in ("weights", "means", "covariances", "precisions_cholesky"):
        _close(getattr(p1, f), getattr(p2, f), 1e-10, f)


@pytest.mark.parametrize("name,structure", STRUCTURES)
def test_statistics_are_float64_and_shifted_at_the_means(name, structure):
    params, _ = random_params(name, 2, _n_features(name, 3), dtype=np.float32, offset=1e3, random_state=6)
    X = _rows_near(params, 50, np.random.default_rng(7))
    s = em.e_step(X, None, params, structure)
    for f in ("nk", "s1", "s2"):
        assert getattr(s, f).dtype == np.float64, f
    np.testing.assert_array_equal(s.shift, params.means)
    assert s.sum_w == 50
    _close(s.nk.sum(), 50.0, 1e-6)


# ---------------------------------------------------------- float32 offsets
def _fit(name, X, init, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        return emix.GaussianMixture(
            n_components=len(init["weights_init"]), covariance_type=name, tol=0.0, max_iter=8, **init, **kw
        ).fit(X)


@pytest.mark.parametrize("offset", [1e3, 1e4])
@pytest.mark.parametrize("name,structure", STRUCTURES)
def test_float32_shift_invariance(name, structure, offset):
    K, D = 3, _n_features(name, 3)
    X, _, _ = make_mixture(400, K, D, separation=4.0, random_state=8)
    params, _ = random_params(name, K, D, random_state=9)
    init = dict(weights_init=params.weights, means_init=X[:K] + 0.1,
                precisions_init=structure.precisions(params.precisions_cholesky))
    ref = _fit(name, X, init)

    X32 = (X + offset).astype(np.float32)
    init32 = dict(init, means_init=(init["means_init"] + offset).astype(np.float32))
    got = _fit(name, X32, init32)
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(got, attr).dtype == np.float32, attr
    assert np.all(np.isfinite(got.lower_bounds_))

    # the same (rounded) data in float64, unshifted: only float32 arithmetic differs
    same = _fit(name, X32.astype(np.float64) - offset, init)
    np.testing.assert_allclose(got.means_.astype(np.float64) - offset, same.means_, atol=2e-3, rtol=0)
    np.testing.assert_allclose(got.weights_, same.weights_, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.covariances_, same.covariances_, rtol=2e-3, atol=1e-3)
    # and close to the float64 fit of the exact data (X32 holds X to ~1e-3 at 1e4)
    np.testing.assert_allclose(got.means_.astype(np.float64) - offset, ref.means_, atol=5e-3, rtol=0)
    np.testing.assert_allclose(got.covariances_, ref.covariances_, rtol=1e-2, atol=5e-3)
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=1e-3)


# ------------------------------------------------------------ monotone EM
@pytest.mark.parametrize("name,structure", STRUCTURES)
def test_em_never_decreases_the_likelihood(name, structure):
    rng = np.random.default_rng(10)
    for problem in range(10):
        K = int(rng.integers(1, 5))
        D = _n_features(name, int(rng.integers(1, 5)))
        n = int(rng.integers(40, 120))
        X, _, _ = make_mixture(n, int(rng.integers(1, 5)), D, separation=float(rng.uniform(0.5, 6.0)),
                               offset=float(rng.choice([0.0, 100.0])), random_state=problem)
        w = rng.uniform(0.2, 3.0, size=n) if problem % 3 == 0 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", emix.ConvergenceWarning)
            gm = emix.GaussianMixture(K, covariance_type=name, tol=0.0, max_iter=20,
                                      init_params=["random", "kmeans", "random_from_data", "k-means++"][problem % 4],
                                      random_state=problem).fit(X, sample_weight=w)
        lb = np.asarray(gm.lower_bounds_)
        assert len(lb) == 20 and np.all(np.isfinite(lb))
        steps = np.diff(lb)
        slack = 1e-9 * np.maximum(1.0, np.abs(lb[1:]))
        assert np.all(steps >= -slack), (problem, K, D, n, steps.min())
        # the kept lower bound is the last one, and it is the model's mean log-likelihood
        # up to the final M-step (which can only increase it)
        assert gm.lower_bound_ == lb[-1]
        assert gm.score(X, sample_weight=w) >= lb[-1] - 1e-9 * max(1.0, abs(lb[-1]))


# ------------------------------------------------------- one-hot M-step
def _one_hot_problem(K=3, D=3, seed=11, dtype=np.float64):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(D + 3, 40, size=K)
    labels = np.repeat(np.arange(K), sizes)
    rng.shuffle(labels)
    X = rng.normal(scale=3.0, size=(K, D))[labels] + rng.normal(size=(len(labels), D)) * rng.uniform(0.5, 2, D)
    resp = np.zeros((len(labels), K))
    resp[np.arange(len(labels)), labels] = 1.0
    return X.astype(dtype), labels, resp.astype(dtype)


@pytest.mark.parametrize("name,structure", STRUCTURES)
def test_one_hot_m_step_weights_and_means(name, structure):
    X, labels, resp = _one_hot_problem(D=_n_features(name, 3))
    K = resp.shape[1]
    # any shift: the result must not depend on it
    for shift in (np.zeros((K, X.shape[1])), X[:K] * 3.0 + 100.0):
        stats = em.stats_from_resp(X, None, resp, shift, structure)
        p = em.m_step(stats, structure, 0.0, X.dtype)
        counts = np.bincount(labels, minlength=K)
        np.testing.assert_allclose(p.weights, counts / len(labels), rtol=1e-12)
        np.testing.assert_allclose(p.means, np.stack([X[labels == k].mean(axis=0) for k in range(K)]),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,structure", [p for p in STRUCTURES if p.values[0] in NUMPY_MLE])
def test_one_hot_m_step_equals_numpy_mle(name, structure):
    X, labels, resp = _one_hot_problem()
    K = resp.shape[1]
    groups = [X[labels == k] for k in range(K)]
    expected = NUMPY_MLE[name](groups, len(X))
    for shift in (np.zeros((K, X.shape[1])), X[:K] * 3.0 + 100.0):
        stats = em.stats_from_resp(X, None, resp, shift, structure)
        for reg in (0.0, 0.25):
            p = em.m_step(stats, structure, reg, X.dtype)
            want = expected + reg * (np.eye(X.shape[1]) if name in ("full", "tied") else 1.0)
            # the statistics are centered at `shift`: rounding grows with its distance
            atol = 1e-13 * (1.0 + np.max(np.abs(X[:, None, :] - shift[None])) ** 2)
            np.testing.assert_allclose(p.covariances, want, rtol=1e-10, atol=atol)


@pytest.mark.parametrize("name,structure", [p for p in STRUCTURES if p.values[0] in NUMPY_MLE])
def test_one_hot_m_step_with_weights_equals_weighted_numpy_mle(name, structure):
    X, labels, resp = _one_hot_problem(seed=12)
    K = resp.shape[1]
    w = np.random.default_rng(13).integers(0, 4, size=len(X)).astype(float)
    w[:K] = 1.0  # keep every cluster non-empty
    groups = [np.repeat(X[labels == k], w[labels == k].astype(int), axis=0) for k in range(K)]
    expected = NUMPY_MLE[name](groups, int(w.sum()))
    stats = em.stats_from_resp(X, w, resp, np.zeros((K, X.shape[1])), structure)
    p = em.m_step(stats, structure, 0.0, X.dtype)
    np.testing.assert_allclose(p.covariances, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.means, np.stack([g.mean(axis=0) for g in groups]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,structure", STRUCTURES)
def test_one_hot_m_step_maximizes_expected_loglik(name, structure):
    """Generic for any structure: with hard labels and reg_covar=0 the M-step
    maximizes Q = sum_n log(w_z(n) N(x_n | theta_z(n))) over the family, so
    moving the means, the weights or the scale of the precisions lowers it."""
    X, labels, resp = _one_hot_problem(D=_n_features(name, 3), seed=14)
    K, D = resp.shape[1], X.shape[1]
    stats = em.stats_from_resp(X, None, resp, np.zeros((K, D)), structure)
    p = em.m_step(stats, structure, 0.0, X.dtype)

    def Q(weights, means, pc):
        lp = structure.log_prob(X, means, pc) + np.log(weights)
        return float(np.sum(lp[np.arange(len(X)), labels]))

    best = Q(p.weights, p.means, p.precisions_cholesky)
    rng = np.random.default_rng(15)
    h = 1e-3
    for _ in range(4):
        assert Q(p.weights, p.means + h * rng.normal(size=(K, D)), p.precisions_cholesky) < best
    for k in range(K):
        w = p.weights.copy()
        w[k] += h
        w /= w.sum()
        assert Q(w, p.means, p.precisions_cholesky) < best
    for factor in (1 - h, 1 + h):
        assert Q(p.weights, p.means, p.precisions_cholesky * factor) < best


@pytest.mark.parametrize("name,structure", STRUCTURES)
def test_lower_bounds_are_the_mean_loglik_entering_each_iteration(name, structure):
    """lower_bounds_[i] is the (weighted) mean log-likelihood of the parameters
    that entered iteration i, i.e. of the fit stopped after i iterations."""
    D = _n_features(name, 2)
    X, _, _ = make_mixture(150, 2, D, random_state=16)
    w = np.random.default_rng(17).uniform(0.5, 2.0, size=150)
    params, _ = random_params(name, 2, D, random_state=18)
    init = dict(weights_init=params.weights, means_init=X[:2],
                precisions_init=structure.precisions(params.precisions_cholesky))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        long = emix.GaussianMixture(2, covariance_type=name, tol=0.0, max_iter=5, **init).fit(X, sample_weight=w)
        for i in range(1, 5):
            short = emix.GaussianMixture(2, covariance_type=name, tol=0.0, max_iter=i, **init).fit(X, sample_weight=w)
            np.testing.assert_allclose(long.lower_bounds_[:i], short.lower_bounds_, rtol=1e-12)
            np.testing.assert_allclose(short.score(X, sample_weight=w), long.lower_bounds_[i], rtol=1e-10)
