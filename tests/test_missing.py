"""Missing values inside EM (``missing='em'``, :mod:`emix.core.missing`).

Oracles: a row-by-row E-step written from the textbook formulas with
scipy.stats (Little & Rubin 2002, section 11.2); scipy.optimize on the
observed-data log-likelihood of one normal (K = 1); scipy.stats marginal
densities on each row's observed coordinates; invariants (monotone
likelihood, bit-identity without NaN, weights = repetition).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logsumexp
from scipy.stats import multivariate_normal as mvn

from emix import GaussianMixture
from emix.core import missing as M
from emix.families.gaussian import get_structure


def _mixture(n=300, D=4, K=3, seed=0, sep=5.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=sep, size=(K, D))
    z = rng.integers(K, size=n)
    A = rng.normal(size=(K, D, D)) * 0.4 + np.eye(D)
    X = centers[z] + np.einsum("nij,nj->ni", A[z], rng.normal(size=(n, D)))
    return X, z


def _holes(X, frac, seed=1):
    rng = np.random.default_rng(seed)
    Xm = X.copy()
    Xm[rng.random(X.shape) < frac] = np.nan
    return Xm


def _fit(Xm, K, ct="full", **kw):
    opts = dict(covariance_type=ct, missing="em", random_state=0, tol=1e-10, max_iter=500)
    opts.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(K, **opts).fit(Xm)


# ------------------------------------------------------------- the E-step
def _brute_stats(Xm, w, params, cov):
    """Row by row: responsibilities from scipy's marginal densities, completed
    rows ``(x_O, mu_M + Sigma_MO Sigma_OO^-1 (x_O - mu_O))`` and the
    conditional covariance ``Sigma_MM - Sigma_MO Sigma_OO^-1 Sigma_OM``."""
    K, D = params.means.shape
    nk, s1, S, ll, sw = np.zeros(K), np.zeros((K, D)), np.zeros((K, D, D)), 0.0, 0.0
    for x, wi in zip(Xm, w):
        o = ~np.isnan(x)
        if not o.any():
            continue
        m = ~o
        lps, comp, corr = [], [], []
        for k in range(K):
            mu, Sg = params.means[k], cov[k]
            lps.append(np.log(params.weights[k]) + mvn.logpdf(x[o], mu[o], Sg[np.ix_(o, o)]))
            B = Sg[np.ix_(m, o)] @ np.linalg.inv(Sg[np.ix_(o, o)])
            z = np.zeros(D)
            z[o] = x[o] - mu[o]
            z[m] = B @ (x[o] - mu[o])
            C = np.zeros((D, D))
            C[np.ix_(m, m)] = Sg[np.ix_(m, m)] - B @ Sg[np.ix_(o, m)]
            comp.append(z)
            corr.append(C)
        lps = np.array(lps)
        lse = logsumexp(lps)
        r = np.exp(lps - lse) * wi
        ll += wi * lse
        sw += wi
        for k in range(K):
            nk[k] += r[k]
            s1[k] += r[k] * comp[k]
            S[k] += r[k] * (np.outer(comp[k], comp[k]) + corr[k])
    return nk, s1, S, ll, sw


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical", "EEV", "VEI", "EVE", "VVE", "EII"])
@pytest.mark.parametrize("sort", [False, True])
@pytest.mark.parametrize("start", ["random", "separated"])
def test_e_step_matches_row_by_row_formulas(ct, sort, start):
    X, z = _mixture(n=160, D=5, K=3, seed=2)
    X[:, 4] += 1e3  # an offset the centered design must cancel
    Xm = _holes(X, 0.3, seed=3)
    Xm[0] = np.nan  # a row with nothing observed adds nothing
    Xm[1:60, 2] = np.nan  # a long run of one pattern once sorted
    w = np.random.default_rng(4).random(len(X)) * 2
    if sort:
        order = M.pattern_order(Xm)
        Xm, w = Xm[order], w[order]
    s = get_structure(ct)
    if start == "random":  # means close together, broad covariances
        resp = np.random.default_rng(5).dirichlet(np.ones(3), size=len(X))
    else:  # the planted components: means far from their average
        resp = np.eye(3)[z]
    params = M.params_from_resp(X, None, resp, s, 1e-6, np.float64)
    cov = s.full_covariances(params.covariances, 3, 5)
    nk, s1, S, ll, sw = _brute_stats(Xm, w, params, cov)
    got = M.e_step(Xm, w, params, s)
    ref_s2 = M._reduce_scatter(S, M.scatter_kind(s, 3, 5))
    assert got.s2.shape == s.scatter(X[:2], resp[:2], params.means).shape
    np.testing.assert_allclose(got.nk, nk, rtol=1e-10)
    np.testing.assert_allclose(got.s1, s1, rtol=1e-8, atol=1e-8 * np.abs(s1).max())
    np.testing.assert_allclose(got.s2, ref_s2, rtol=1e-8, atol=1e-9 * np.abs(ref_s2).max())
    assert got.loglik == pytest.approx(ll, rel=1e-10)
    assert got.sum_w == pytest.approx(sw, rel=1e-12)


def test_block_without_nan_is_the_plain_e_step():
    from emix.core import em

    X, _ = _mixture(n=100)
    s = get_structure("full")
    params = M.params_from_resp(X, None, np.eye(3)[np.arange(100) % 3], s, 1e-6, np.float64)
    a, b = M.e_step(X, None, params, s), em.e_step(X, None, params, s)
    for f in ("nk", "s1", "s2"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert a.loglik == b.loglik


# ------------------------------------------------------------ K = 1: the MLE
def _direct_mle(Xm):
    """Maximize the observed-data log-likelihood of one normal over (mu, the
    Cholesky factor of Sigma with a log diagonal) with scipy.optimize."""
    n, D = Xm.shape
    iu = np.tril_indices(D)
    groups = {}
    for i, x in enumerate(Xm):
        o = ~np.isnan(x)
        if o.any():
            groups.setdefault(tuple(o), []).append(i)

    def unpack(theta):
        mu = theta[:D]
        L = np.zeros((D, D))
        L[iu] = theta[D:]
        L[np.diag_indices(D)] = np.exp(np.diag(L))
        return mu, L @ L.T

    def nll(theta):
        mu, S = unpack(theta)
        total = 0.0
        for o, rows in groups.items():
            o = np.array(o)
            total += mvn.logpdf(Xm[np.ix_(rows, o)], mu[o], S[np.ix_(o, o)]).sum()
        return -total

    mu0 = np.nanmean(Xm, axis=0)
    L0 = np.linalg.cholesky(np.diag(np.nanvar(Xm, axis=0)))
    L0[np.diag_indices(D)] = np.log(np.diag(L0))
    res = minimize(nll, np.concatenate([mu0, L0[iu]]), method="BFGS", options=dict(gtol=1e-9, maxiter=5000))
    return unpack(res.x), -res.fun


@pytest.mark.parametrize("seed,n,D,frac", [(0, 40, 2, 0.25), (1, 60, 3, 0.3), (2, 50, 4, 0.2)])
def test_k1_equals_direct_maximization(seed, n, D, frac):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(D, D))
    X = rng.normal(size=(n, D)) @ A + rng.normal(size=D) * 3
    Xm = _holes(X, frac, seed=seed + 10)
    Xm[np.isnan(Xm).all(axis=1), 0] = X[np.isnan(Xm).all(axis=1), 0]
    (mu, S), ll = _direct_mle(Xm)
    gm = _fit(Xm, 1, reg_covar=0.0, tol=1e-14, max_iter=20000)
    np.testing.assert_allclose(gm.means_[0], mu, rtol=1e-5, atol=1e-5 * np.abs(mu).max())
    np.testing.assert_allclose(gm.covariances_[0], S, rtol=1e-4, atol=1e-5 * np.abs(S).max())
    assert gm.score(Xm) * n == pytest.approx(ll, rel=1e-8)
    assert gm.lower_bound_ * n == pytest.approx(ll, rel=1e-7)


# ----------------------------------------------------------- no NaN: default
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical", "EEV"])
def test_no_nan_is_bit_identical_to_default(ct):
    X, _ = _mixture(n=200)
    w = np.random.default_rng(0).random(200)
    a = GaussianMixture(3, covariance_type=ct, random_state=0).fit(X, sample_weight=w)
    b = GaussianMixture(3, covariance_type=ct, random_state=0, missing="em").fit(X, sample_weight=w)
    for f in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert a.lower_bounds_ == b.lower_bounds_
    assert np.array_equal(a.score_samples(X), b.score_samples(X))


# ------------------------------------------------------------- inference
def test_score_samples_are_scipy_marginal_densities():
    X, _ = _mixture(n=250, D=4, K=3, seed=6)
    Xm = _holes(X, 0.3, seed=7)
    Xm[5] = np.nan
    gm = _fit(Xm, 3, max_iter=50, tol=1e-4)
    cov = gm.covariances_
    ref = np.empty(len(Xm))
    for i, x in enumerate(Xm):
        o = ~np.isnan(x)
        terms = [np.log(gm.weights_[k]) + (mvn.logpdf(x[o], gm.means_[k][o], cov[k][np.ix_(o, o)]) if o.any() else 0.0)
                 for k in range(3)]
        ref[i] = logsumexp(terms)
    got = gm.score_samples(Xm)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)
    assert gm.score(Xm) == pytest.approx(ref.mean(), rel=1e-12)
    proba = gm.predict_proba(Xm)
    np.testing.assert_allclose(proba[5], gm.weights_, rtol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(gm.predict(Xm), np.argmax(proba, axis=1))
    # rows without NaN: the ordinary densities
    full = ~np.isnan(Xm).any(axis=1)
    np.testing.assert_allclose(got[full], GaussianMixture.score_samples(gm, X[full]), rtol=1e-12)


def test_nan_is_an_error_that_says_how_to_opt_in():
    Xm = _holes(_mixture(n=50)[0], 0.2)
    with pytest.raises(ValueError, match="missing='em'"):
        GaussianMixture(2).fit(Xm)
    gm = GaussianMixture(2, random_state=0).fit(np.nan_to_num(Xm))
    with pytest.raises(ValueError, match="missing='em'"):
        gm.score_samples(Xm)
    with pytest.raises(ValueError, match="missing must be"):
        GaussianMixture(2, missing="drop").fit(Xm)
    with pytest.raises(ValueError, match="impute and sample_missing need missing='em'"):
        gm.impute(Xm)


def test_column_never_observed_is_named():
    Xm = _holes(_mixture(n=50)[0], 0.2)
    Xm[:, 2] = np.nan
    with pytest.raises(ValueError, match="column 2 is missing"):
        GaussianMixture(2, missing="em").fit(Xm)


def test_infinite_values_stay_an_error():
    X = _mixture(n=50)[0]
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        GaussianMixture(2, missing="em").fit(X)


# ------------------------------------------------------- monotone likelihood
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical", "EEE", "VEV", "EVI", "VVE"])
@pytest.mark.parametrize("frac", [0.0, 0.2, 0.4, 0.6])
def test_observed_likelihood_never_decreases(ct, frac):
    X, _ = _mixture(n=200, D=4, K=3, seed=8, sep=3.0)
    Xm = _holes(X, frac, seed=9)
    gm = _fit(Xm, 3, ct, max_iter=60, tol=0.0)
    lb = np.asarray(gm.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:])), np.diff(lb).min()
    assert np.isfinite(lb).all()


def test_lower_bound_is_observed_loglik_of_entering_parameters():
    X, _ = _mixture(n=200, seed=10)
    Xm = _holes(X, 0.3, seed=11)
    a = _fit(Xm, 3, max_iter=4, tol=0.0)
    b = _fit(Xm, 3, max_iter=5, tol=0.0)
    keep = ~np.isnan(Xm).all(axis=1)  # rows with nothing observed are not counted
    assert b.lower_bounds_[-1] == pytest.approx(a.score(Xm[keep]), rel=1e-10)


# ------------------------------------------------------------ imputation
def test_imputation_beats_column_means_on_separated_mixture():
    X, _ = _mixture(n=600, D=4, K=3, seed=12, sep=8.0)
    Xm = _holes(X, 0.2, seed=13)
    gm = _fit(Xm, 3, max_iter=200, tol=1e-6)
    miss = np.isnan(Xm)
    Xi = gm.impute(Xm)
    assert np.array_equal(Xi[~miss], Xm[~miss])
    err = np.sqrt(np.mean((Xi[miss] - X[miss]) ** 2))
    mean_fill = M.column_fill(Xm)
    base = np.sqrt(np.mean((mean_fill[miss] - X[miss]) ** 2))
    assert err < 0.5 * base, (err, base)


def test_sample_missing_keeps_observed_and_averages_to_impute():
    X, _ = _mixture(n=300, D=3, K=2, seed=14)
    Xm = _holes(X, 0.25, seed=15)
    gm = _fit(Xm, 2, max_iter=100, tol=1e-6)
    rows = np.flatnonzero(np.isnan(Xm).any(axis=1))[:4]
    draws = gm.sample_missing(Xm[rows], n_imputations=4000, random_state=0)
    assert draws.shape == (4000, 4, 3)
    obs = ~np.isnan(Xm[rows])
    assert np.all(draws[:, obs] == Xm[rows][obs])
    mean = draws.mean(axis=0)
    sd = draws.std(axis=0)
    imp = gm.impute(Xm[rows])
    assert np.all(np.abs(mean - imp)[~obs] < 5 * sd[~obs] / np.sqrt(4000) + 1e-12)
    again = gm.sample_missing(Xm[rows], n_imputations=3, random_state=0)
    assert np.array_equal(again, gm.sample_missing(Xm[rows], n_imputations=3, random_state=0))


# ---------------------------------------------------- weights, dtypes, options
def test_sample_weights_equal_repetition():
    X, _ = _mixture(n=120, seed=16)
    Xm = _holes(X, 0.3, seed=17)
    reps = np.random.default_rng(18).integers(1, 4, size=len(X))
    init = dict(means_init=np.nanmean(Xm, axis=0) + np.arange(3)[:, None])
    a = _fit(Xm, 3, max_iter=30, tol=0.0, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.fit(Xm, sample_weight=reps)
    b = _fit(np.repeat(Xm, reps, axis=0), 3, max_iter=30, tol=0.0, **init)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-10)


def test_float32_restarts_and_warm_start():
    X, _ = _mixture(n=300, seed=19)
    Xm = _holes(X, 0.2, seed=20)
    g64 = _fit(Xm, 3, max_iter=100, tol=1e-8)
    g32 = _fit(Xm.astype(np.float32), 3, max_iter=100, tol=1e-8)
    assert g32.means_.dtype == np.float32
    np.testing.assert_allclose(np.sort(g32.means_, axis=0), np.sort(g64.means_, axis=0), rtol=1e-3, atol=1e-3)
    g = _fit(Xm, 3, n_init=3, max_iter=50)
    assert g.lower_bound_ >= g64.lower_bound_ - 1e-6 or g.converged_
    warm = _fit(Xm, 3, max_iter=3, tol=0.0, warm_start=True)
    first = warm.lower_bounds_[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm.fit(Xm)
    assert warm.lower_bounds_[0] >= first - 1e-12


def test_criteria_on_missing_data_use_observed_likelihood():
    X, _ = _mixture(n=200, seed=21)
    Xm = _holes(X, 0.2, seed=22)
    gm = _fit(Xm, 3, max_iter=50)
    ll = gm.score_samples(Xm).sum()
    assert gm.bic(Xm) == pytest.approx(-2 * ll + gm._n_parameters() * np.log(len(Xm)), rel=1e-12)
