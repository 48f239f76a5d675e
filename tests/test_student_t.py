"""Student-t family (emix.families.student_t) and StudentTMixture.

Oracles: scipy.stats.multivariate_t (densities, sampling moments), an EM
iteration written from McLachlan & Peel (2000, ch. 7) in numpy with the
degrees of freedom found by scipy's bounded scalar maximizer, scikit-learn's
estimator checks, emix.GaussianMixture for the large-dof limit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats as ss
from scipy.optimize import minimize_scalar
from scipy.special import digamma, gammaln

import emix
from emix.families import Mixture, MixtureParams, get_family
from emix.families.student_t import StudentT, dof_equation_root
from emix.testing import estimator_checks_params

SKLEARN_TYPES = ("full", "tied", "diag", "spherical")
MCLUST_TYPES = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV")


def _two_t_clusters(rng, n=400, D=3, dfs=(4.0, 8.0), gap=6.0):
    cov = [np.diag(np.linspace(0.5, 2.0, D)), np.eye(D) + 0.4]
    A = ss.multivariate_t(np.zeros(D), cov[0], df=dfs[0]).rvs(n // 2, random_state=rng)
    B = ss.multivariate_t(np.full(D, gap), cov[1], df=dfs[1]).rvs(n - n // 2, random_state=rng)
    return np.vstack([A, B]).reshape(n, D)


def _random_comp(fam, X, K, rng):
    """Valid parameters of ``fam``'s structure: a one-hot M-step on random
    labels, then random degrees of freedom."""
    mix = Mixture(fam)
    resp = np.eye(K)[rng.permutation(np.arange(X.shape[0]) % K)]
    comp = mix.m_step(mix.stats_from_resp(X, None, resp, None), None).components
    comp["means"] = comp["means"] + rng.normal(0, 0.5, comp["means"].shape)
    comp["dof"] = rng.uniform(0.8, 40.0, K)
    return comp


def _full(fam, cov, K, D):
    full = np.asarray(fam.structure.full_covariances(cov, K, D)) if cov.shape != (K, D, D) else cov
    return np.broadcast_to(full, (K, D, D))


def _scipy_logpdf(X, means, full_cov, dof):
    return np.stack([ss.multivariate_t(m, c, df=nu).logpdf(X) for m, c, nu in zip(means, full_cov, dof)], axis=1)


def _quiet_fit(est, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        return est.fit(X, **kw)


def _warm(est, like, **attrs):
    """``est`` set to start from ``like``'s parameters (overridden by ``attrs``)."""
    est.set_params(warm_start=True)
    est.family_, est.encoding_ = like.family_, like.encoding_
    for name in ("weights_", *[p + "_" for p in like.family_.param_names]):
        setattr(est, name, np.array(getattr(like, name), copy=True))
    for k, v in attrs.items():
        setattr(est, k, v)
    est.converged_, est.lower_bound_, est.n_features_in_ = False, -np.inf, like.n_features_in_
    return est


# ------------------------------------------------------------------ density
@pytest.mark.parametrize("ct", SKLEARN_TYPES + MCLUST_TYPES)
def test_log_prob_matches_scipy_multivariate_t(ct):
    rng = np.random.default_rng(0)
    X = _two_t_clusters(rng, 240, D=3)
    fam = get_family("student_t", covariance_type=ct)
    comp = _random_comp(fam, X, 3, rng)
    full = _full(fam, comp["covariances"], 3, 3)
    # the stored Cholesky factors are those of the inverse scale matrices
    prec = np.broadcast_to(fam.structure.precisions(comp["precisions_cholesky"]), (3, 3, 3)) \
        if ct not in ("diag", "spherical") else None
    if prec is not None:
        np.testing.assert_allclose(np.einsum("kij,kjl->kil", prec, full), np.broadcast_to(np.eye(3), (3, 3, 3)),
                                   atol=1e-10)
    expected = _scipy_logpdf(X, comp["means"], full, comp["dof"])
    np.testing.assert_allclose(fam.log_prob(X, comp), expected, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("ct", ["E", "V"])
def test_univariate_models_match_scipy_t(ct):
    rng = np.random.default_rng(1)
    X = rng.standard_t(3, (150, 1)) * 2 + 1
    fam = get_family("student_t", covariance_type=ct)
    comp = _random_comp(fam, X, 2, rng)
    var = np.asarray(comp["covariances"]).reshape(2, -1)[:, 0]
    expected = np.stack([ss.t(df=nu, loc=m, scale=np.sqrt(v)).logpdf(X[:, 0])
                         for m, v, nu in zip(comp["means"][:, 0], var, comp["dof"])], axis=1)
    np.testing.assert_allclose(fam.log_prob(X, comp), expected, rtol=1e-11, atol=1e-11)
    with pytest.raises(ValueError, match="univariate"):
        fam.encode(np.zeros((3, 2)))


def test_huge_dof_is_the_gaussian_density():
    rng = np.random.default_rng(2)
    X = _two_t_clusters(rng, 200)
    fam = get_family("student_t")
    comp = _random_comp(fam, X, 2, rng)
    comp["dof"] = np.array([1e12, 1e15])
    gauss = np.stack([ss.multivariate_normal(m, c).logpdf(X) for m, c in zip(comp["means"], comp["covariances"])],
                     axis=1)
    np.testing.assert_allclose(fam.log_prob(X, comp), gauss, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------ EM iteration
def _numpy_t_em_step(X, weights, means, covs, dof, lo=0.5, hi=200.0):
    """One EM iteration for a full-covariance t mixture, from the formulas of
    McLachlan & Peel (2000, ch. 7), with nu maximizing the nu part of Q by
    scipy's bounded scalar search (not by the root-finder under test)."""
    n, D = X.shape
    K = len(weights)
    logp = np.log(weights) + _scipy_logpdf(X, means, covs, dof)
    r = np.exp(logp - logp.max(axis=1, keepdims=True))
    r /= r.sum(axis=1, keepdims=True)
    new_w, new_m, new_c, new_nu = np.empty(K), np.empty((K, D)), np.empty((K, D, D)), np.empty(K)
    for k in range(K):
        diff = X - means[k]
        maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(covs[k]), diff)
        u = (dof[k] + D) / (dof[k] + maha)
        nk = r[:, k].sum()
        new_w[k] = nk / n
        new_m[k] = (r[:, k] * u) @ X / (r[:, k] * u).sum()
        Z = X - new_m[k]
        new_c[k] = (Z * (r[:, k] * u)[:, None]).T @ Z / nk
        e_log_tau = np.log(u) + digamma((dof[k] + D) / 2) - np.log((dof[k] + D) / 2)
        a = (r[:, k] * (e_log_tau - u)).sum()

        def neg_q(log_nu, nk=nk, a=a):
            h = np.exp(log_nu) / 2
            return -(nk * (h * np.log(h) - gammaln(h)) + h * a)

        new_nu[k] = np.exp(minimize_scalar(neg_q, bounds=(np.log(lo), np.log(hi)), method="bounded",
                                           options={"xatol": 1e-10}).x)
    return new_w, new_m, new_c, new_nu


def test_em_iteration_equals_an_independent_implementation():
    rng = np.random.default_rng(3)
    X = _two_t_clusters(rng, 500)
    fam = get_family("student_t", reg_covar=0.0)
    comp = _random_comp(fam, X, 2, rng)
    comp["dof"] = np.array([3.0, 12.0])
    weights = np.array([0.35, 0.65])
    mix = Mixture(fam)
    params = MixtureParams(weights, comp)
    new = mix.m_step(mix.e_step(X, None, params), params)
    w, m, c, nu = _numpy_t_em_step(X, weights, comp["means"], comp["covariances"], comp["dof"])
    np.testing.assert_allclose(new.weights, w, rtol=1e-12)
    np.testing.assert_allclose(new.components["means"], m, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(new.components["covariances"], c, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(new.components["dof"], nu, rtol=1e-6)


def test_dof_root_maximizes_its_objective_and_is_clipped():
    for c in (-1.001, -1.05, -1.3, -2.0, -4.0):
        nu = dof_equation_root(c, (0.5, 200.0))

        def neg_q(log_nu, c=c):
            h = np.exp(log_nu) / 2
            return -(h * np.log(h) - gammaln(h) + h * c)

        ref = np.exp(minimize_scalar(neg_q, bounds=(np.log(0.5), np.log(200.0)), method="bounded",
                                     options={"xatol": 1e-12}).x)
        np.testing.assert_allclose(nu, ref, rtol=1e-6)
    assert dof_equation_root(-1.0, (0.5, 200.0)) == 200.0  # Gaussian-like rows: the upper bound
    assert dof_equation_root(-50.0, (0.5, 200.0)) == 0.5


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical", "VVI", "EEE", "VEV", "EVE"])
@pytest.mark.parametrize("dof", ["per_component", "shared"])
@pytest.mark.parametrize("seed", [0, 1])
def test_em_never_decreases_the_loglik(ct, dof, seed):
    rng = np.random.default_rng(seed)
    X = _two_t_clusters(rng, 300)
    X[:4] += 25.0  # a few outliers
    m = _quiet_fit(emix.StudentTMixture(3, covariance_type=ct, dof=dof, reg_covar=0.0, tol=0, max_iter=150,
                                        random_state=seed, init_params="random"), X)
    lb = np.array(m.lower_bounds_)
    assert len(lb) == 150
    assert np.all(np.diff(lb) >= -1e-12 * np.abs(lb[1:])), np.diff(lb).min()
    assert m.score(X) >= lb[-1] - 1e-12 * abs(lb[-1])


# ---------------------------------------------------------- dof modes
def test_fixed_dof_stays_fixed_and_shared_dof_is_shared():
    rng = np.random.default_rng(4)
    X = _two_t_clusters(rng, 400)
    fixed = emix.StudentTMixture(2, dof=4.5, random_state=0).fit(X)
    np.testing.assert_array_equal(fixed.dof_, [4.5, 4.5])
    shared = emix.StudentTMixture(2, dof="shared", random_state=0).fit(X)
    assert shared.dof_[0] == shared.dof_[1] and shared.dof_[0] != 10.0
    per = emix.StudentTMixture(2, random_state=0).fit(X)
    assert per.dof_[0] != per.dof_[1]
    # free parameters: means + full scale matrices + weights, then the free dof
    base = 2 * 3 + 2 * 6 + 1
    assert [fixed._n_parameters(), shared._n_parameters(), per._n_parameters()] == [base, base + 1, base + 2]
    ll = per.score(X) * X.shape[0]
    np.testing.assert_allclose(per.bic(X), -2 * ll + (base + 2) * np.log(X.shape[0]), rtol=1e-12)


@pytest.mark.slow
def test_per_component_dof_recovers_planted_values():
    rng = np.random.default_rng(0)
    n = 6000
    A = ss.multivariate_t([0, 0], [[1, 0.3], [0.3, 1]], df=3).rvs(n, random_state=rng)
    B = ss.multivariate_t([12, 0], [[1, 0], [0, 2]], df=30).rvs(n, random_state=rng)
    m = emix.StudentTMixture(2, random_state=0, tol=1e-8, max_iter=500).fit(np.vstack([A, B]))
    nu = m.dof_[np.argsort(m.means_[:, 0])]
    assert 2.6 < nu[0] < 3.4, nu
    assert 15 < nu[1] < 60, nu


def test_large_fixed_dof_gives_gaussian_mixture_fit():
    rng = np.random.default_rng(5)
    X = _two_t_clusters(rng, 400, dfs=(50, 50), gap=4.0)
    gm = emix.GaussianMixture(2, random_state=0, max_iter=1, tol=0)
    _quiet_fit(gm, X)
    gm2 = emix.GaussianMixture(2, weights_init=gm.weights_, means_init=gm.means_,
                               precisions_init=gm.precisions_, tol=0, max_iter=40)
    _quiet_fit(gm2, X)
    t0 = _quiet_fit(emix.StudentTMixture(2, dof=1e9, max_iter=1, random_state=0), X)
    t = _warm(emix.StudentTMixture(2, dof=1e9, tol=0, max_iter=40), t0, weights_=gm.weights_, means_=gm.means_,
              covariances_=gm.covariances_, precisions_cholesky_=gm.precisions_cholesky_)
    _quiet_fit(t, X)
    np.testing.assert_allclose(t.weights_, gm2.weights_, rtol=1e-6)
    np.testing.assert_allclose(t.means_, gm2.means_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(t.covariances_, gm2.covariances_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(t.score(X), gm2.score(X), rtol=1e-7)


# ------------------------------------------------------------- outliers
def test_outliers_get_small_scale_weights_and_do_not_move_the_means():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [8.0, 0.0]])
    X = np.vstack([rng.standard_normal((300, 2)) + c for c in centers])
    angle, radius = rng.uniform(0, 2 * np.pi, 10), rng.uniform(30, 80, 10)
    Xo = np.vstack([X, np.c_[np.cos(angle), np.sin(angle)] * radius[:, None] + [4.0, 0.0]])
    t = emix.StudentTMixture(2, random_state=0, n_init=5, max_iter=500).fit(Xo)
    s = t.scale_weights(Xo)
    assert s.shape == (Xo.shape[0],)
    assert np.all(s[-10:] < 0.02), s[-10:]
    assert 0.9 < np.median(s[:-10]) < 1.2
    # independent formula: sum_k r_nk (nu_k + D) / (nu_k + m_nk)
    resp = t.predict_proba(Xo)
    maha = np.stack([np.einsum("ni,ij,nj->n", Xo - m, np.linalg.inv(c), Xo - m)
                     for m, c in zip(t.means_, t.covariances_)], axis=1)
    np.testing.assert_allclose(s, np.sum(resp * (t.dof_ + 2) / (t.dof_ + maha), axis=1), rtol=1e-10)
    err_t = np.abs(t.means_[np.argsort(t.means_[:, 0])] - centers).max()
    # a Gaussian mixture with the same starts spends a component on the outliers
    gm = emix.GaussianMixture(2, random_state=0, n_init=5).fit(Xo)
    err_g = np.abs(gm.means_[np.argsort(gm.means_[:, 0])] - centers).max()
    assert err_t < 0.2 and err_g > 3.0, (err_t, err_g)


# ---------------------------------------------------------------- numerics
def test_float32_far_from_origin_matches_float64():
    rng = np.random.default_rng(7)
    X = _two_t_clusters(rng, 600, D=2)
    X32 = (X + 1000.0).astype(np.float32)
    kw = {"random_state": 0, "tol": 0, "max_iter": 30}
    a = _quiet_fit(emix.StudentTMixture(2, **kw), X32)
    b = _quiet_fit(emix.StudentTMixture(2, **kw), X + 1000.0)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-7)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.dof_, b.dof_, rtol=1e-5)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-5)


def test_statistics_are_translation_equivariant_far_from_origin():
    """Shifted statistics: moving the data by 1e7 changes the fitted scale
    matrices by no more than rounding of the data (uncentered sums would lose
    about 14 of 16 digits)."""
    rng = np.random.default_rng(8)
    X = _two_t_clusters(rng, 400)
    off = 1e7
    kw = {"random_state": 0, "tol": 0, "max_iter": 25}
    a = _quiet_fit(emix.StudentTMixture(2, covariance_type="full", **kw), X)
    b = _quiet_fit(emix.StudentTMixture(2, covariance_type="full", **kw), X + off)
    np.testing.assert_allclose(b.means_ - off, a.means_, atol=1e-7)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(b.dof_, a.dof_, rtol=1e-6)


@pytest.mark.parametrize("ct", ["tied", "diag", "VEV"])
def test_integer_sample_weights_equal_repeated_rows(ct):
    rng = np.random.default_rng(9)
    X = _two_t_clusters(rng, 150)
    w = rng.integers(0, 4, X.shape[0])
    rep = np.repeat(X, w, axis=0)
    kw = {"covariance_type": ct, "dof": "shared", "tol": 0, "max_iter": 20}
    start = emix.StudentTMixture(2, max_iter=1, random_state=0, **{k: kw[k] for k in ("covariance_type", "dof")})
    _quiet_fit(start, X)
    a = _quiet_fit(_warm(emix.StudentTMixture(2, **kw), start), X, sample_weight=w)
    b = _quiet_fit(_warm(emix.StudentTMixture(2, **kw), start), rep)
    for name in ("weights_", "means_", "covariances_", "dof_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(a.score(X, sample_weight=w), b.score(rep), rtol=1e-12)


def test_sample_has_the_t_moments():
    rng = np.random.default_rng(10)
    X = _two_t_clusters(rng, 400, D=2, gap=20)
    m = emix.StudentTMixture(2, dof=6.0, random_state=0).fit(X)
    Xs, y = m.sample(60000)
    for k in range(2):
        Z = Xs[y == k]
        # Var = Sigma nu / (nu - 2); scipy's t marginal gives the same kurtosis
        np.testing.assert_allclose(Z.mean(axis=0), m.means_[k], atol=0.05)
        np.testing.assert_allclose(np.cov(Z.T), m.covariances_[k] * 6.0 / 4.0, rtol=0.12, atol=0.03)
        z0 = (Z[:, 0] - m.means_[k, 0]) / np.sqrt(m.covariances_[k][0, 0])
        assert ss.kstest(z0, ss.t(df=6.0).cdf).pvalue > 1e-3


def test_scale_weights_and_attributes():
    rng = np.random.default_rng(11)
    X = _two_t_clusters(rng, 200)
    m = emix.StudentTMixture(2, covariance_type="diag", random_state=0).fit(X)
    np.testing.assert_allclose(m.precisions_, 1.0 / m.covariances_, rtol=1e-12)
    with pytest.raises(emix.NotFittedError):
        emix.StudentTMixture(2).scale_weights(X)
    mm = emix.MixtureModel(2, family="student_t", covariance_type="diag", random_state=0).fit(X)
    np.testing.assert_allclose(mm.means_, m.means_, rtol=1e-12)
    np.testing.assert_allclose(mm.dof_, m.dof_, rtol=1e-12)


# ------------------------------------------------------------ validation
@pytest.mark.parametrize("kw, exc, msg", [
    ({"dof": "auto"}, ValueError, "per_component"),
    ({"dof": -1.0}, ValueError, "dof"),
    ({"dof": True}, TypeError, "dof"),
    ({"dof": float("inf")}, ValueError, "dof"),
    ({"dof_bounds": (5.0, 1.0)}, ValueError, "dof_bounds"),
    ({"dof_bounds": 3.0}, TypeError, "dof_bounds"),
    ({"dof_init": 500.0}, ValueError, "dof_init"),
    ({"covariance_type": "VVX"}, ValueError, "covariance_type"),
    ({"reg_covar": -1.0}, ValueError, "reg_covar"),
])
def test_bad_options_raise(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        StudentT(**kw)
    with pytest.raises(exc, match=msg):
        emix.StudentTMixture(2, **kw).fit(np.random.default_rng(0).standard_normal((20, 2)))


def test_check_params_and_config_round_trip():
    fam = get_family("student_t", covariance_type="tied", dof="shared", dof_bounds=(1.0, 50.0))
    again = get_family(fam.config()["name"], **fam.config()["options"])
    assert again.config() == fam.config()
    good = {"means": np.zeros((2, 3)), "covariances": np.eye(3), "precisions_cholesky": None, "dof": [3.0, 4.0]}
    out = fam.check_params(good, 2, 3)
    np.testing.assert_allclose(out["precisions_cholesky"], np.eye(3))
    with pytest.raises(ValueError, match="dof"):
        fam.check_params(dict(good, dof=[3.0, 0.0]), 2, 3)
    with pytest.raises(ValueError, match="covariances"):
        fam.check_params(dict(good, covariances=np.eye(2)), 2, 3)


def test_model_file_round_trip(tmp_path):
    rng = np.random.default_rng(12)
    X = _two_t_clusters(rng, 200)
    m = emix.StudentTMixture(2, covariance_type="EEV", dof="shared", random_state=0).fit(X)
    emix.save(m, tmp_path / "t.emix")
    back = emix.load(tmp_path / "t.emix")
    np.testing.assert_array_equal(back.score_samples(X), m.score_samples(X))
    np.testing.assert_array_equal(back.dof_, m.dof_)


# ------------------------------------------------- scikit-learn's checks
RANDOM_INIT_REASON = (
    "The default k-means initialization draws its seeds with random_state from the rows it is given; "
    "weighted rows and the same rows repeated are different inputs to that draw, so the two fits start in "
    "different places (as for GaussianMixture and scikit-learn's KMeans). From the same start, weighted and "
    "repeated fits agree: test_integer_sample_weights_equal_repeated_rows here and "
    "tests/test_family_contract.py::test_integer_weights_equal_repeated_rows."
)
CHECKED = [
    emix.StudentTMixture(1, max_iter=20, random_state=0),
    emix.StudentTMixture(2, max_iter=20, random_state=0),
    emix.StudentTMixture(2, covariance_type="diag", dof="shared", max_iter=20, random_state=0),
    emix.StudentTMixture(2, covariance_type="spherical", dof=5.0, max_iter=20, random_state=0),
]


def _expected(est):
    return {"check_sample_weight_equivalence_on_dense_data": RANDOM_INIT_REASON} if est.n_components > 1 else {}


_names, _params, _kwargs = estimator_checks_params(CHECKED, _expected)


@pytest.mark.parametrize(_names, _params, **_kwargs)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_online_batch_pass_is_one_em_iteration():
    rng = np.random.default_rng(13)
    X = _two_t_clusters(rng, 400)
    chunks = np.array_split(X, 4)
    m = emix.StudentTMixture(2, online_mode="exact", batches_per_pass=4, random_state=0)
    m.partial_fit(chunks[0])
    p0 = m._params()
    for c in chunks[1:]:
        m.partial_fit(c)
    mix = Mixture(m.family_)
    expected = mix.m_step(mix.e_step(X, None, p0), p0)
    np.testing.assert_allclose(m.weights_, expected.weights, rtol=1e-12)
    for name in ("means", "covariances", "dof"):
        np.testing.assert_allclose(getattr(m, name + "_"), expected.components[name], rtol=1e-10, err_msg=name)
    # stepwise online EM over shuffled batches lands near the batch fit
    step = emix.StudentTMixture(2, random_state=0)
    for _ in range(3):
        for c in np.array_split(rng.permutation(X), 8):
            step.partial_fit(c)
    full = emix.StudentTMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(np.sort(step.means_, axis=0), np.sort(full.means_, axis=0), atol=0.3)


# ------------------------------------------------------------- far rows (issue: no silent NaN)
def _far_oracle(x, model):
    """log t_k(x) for a far row, written independently: the covariance inverted
    with numpy, the distance scaled by the row's largest coordinate, log(1 + m / nu)
    from log m."""
    from scipy.special import gammaln

    x = np.asarray(x, dtype=np.float64)
    D = x.shape[0]
    s = max(np.max(np.abs(x)), np.max(np.abs(model.means_)), 1.0)
    covs = model.covariances_
    out = []
    for k in range(model.n_components):
        cov = _full_cov(model, k, D)
        d = x / s - model.means_[k] / s
        log_m = 2 * np.log(s) + np.log(d @ np.linalg.solve(cov, d))
        nu = model.dof_[k]
        _, logdet = np.linalg.slogdet(cov)
        const = gammaln((nu + D) / 2) - gammaln(nu / 2) - D / 2 * np.log(nu * np.pi) - logdet / 2
        out.append(const - (nu + D) / 2 * np.logaddexp(log_m - np.log(nu), 0.0))
    del covs
    return np.array(out)


def _full_cov(model, k, D):
    c = np.asarray(model.covariances_)
    if c.ndim == 3:
        return c[k]
    if c.ndim == 2 and c.shape == (D, D) and model.covariance_type in ("tied", "EEE"):
        return c
    if c.ndim == 2:
        return np.diag(c[k])
    return np.eye(D) * c[k]


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "VEV"])
def test_far_rows_get_finite_limits_not_nan(covariance_type):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 2))
    X[:150] += 5
    m = emix.StudentTMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    far = np.array([[1e300, 1e300], [1e150, -1e150], [-1e300, 3.0], [1e20, 0.0], [-1e300, 1e300]])
    lp = m.score_samples(far)
    proba = m.predict_proba(far)
    assert np.all(np.isfinite(lp)) and np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(m.predict(far), np.argmax(proba, axis=1))
    # the heavier tail (smaller dof) takes the far rows, as in the limit
    heavy = int(np.argmin(m.dof_))
    assert np.all(m.predict(far[:3]) == heavy)
    for x, got in zip(far, lp):
        oracle = _far_oracle(x, m)
        np.testing.assert_allclose(got, np.logaddexp.reduce(np.log(m.weights_) + oracle), rtol=1e-9)
    w = m.scale_weights(far)
    assert np.all(np.isfinite(w)) and np.all(w >= 0) and np.all(w < 1e-30)
