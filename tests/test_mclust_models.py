"""The 14 mclust covariance models: M-step optimality against a numerical
oracle, parameter counts against mclust's table, the structural constraints,
monotone EM, alias equality with the scikit-learn names, univariate E/V,
save/load round trips; and the MAP M-step under a conjugate prior."""

import numpy as np
import pytest
from scipy.optimize import minimize

import emix
from emix.core import em
from emix.families.gaussian import get_structure
from emix.families.gaussian.mclust import MCLUST_MODELS
from emix.testing import make_mixture, oracle_log_prob, random_params

# mclust's nVarParams (Scrucca et al. 2016, Table 1; Fraley et al. 2012,
# nMclustParams): free covariance parameters for d features, G components.
MCLUST_TABLE = {
    "EII": lambda d, G: 1,
    "VII": lambda d, G: G,
    "EEI": lambda d, G: d,
    "VEI": lambda d, G: G + (d - 1),
    "EVI": lambda d, G: 1 + G * (d - 1),
    "VVI": lambda d, G: G * d,
    "EEE": lambda d, G: d * (d + 1) // 2,
    "VEE": lambda d, G: G + (d - 1) + d * (d - 1) // 2,
    "EVE": lambda d, G: 1 + G * (d - 1) + d * (d - 1) // 2,
    "VVE": lambda d, G: G + G * (d - 1) + d * (d - 1) // 2,
    "EEV": lambda d, G: 1 + (d - 1) + G * d * (d - 1) // 2,
    "VEV": lambda d, G: G + (d - 1) + G * d * (d - 1) // 2,
    "EVV": lambda d, G: 1 + G * (d - 1) + G * d * (d - 1) // 2,
    "VVV": lambda d, G: G * d * (d + 1) // 2,
}


@pytest.mark.parametrize("model", MCLUST_MODELS)
@pytest.mark.parametrize("d,G", [(1, 1), (2, 3), (4, 2), (5, 9)])
def test_parameter_counts_match_mclust_table(model, d, G):
    assert get_structure(model).n_cov_parameters(G, d) == MCLUST_TABLE[model](d, G)


def test_total_parameters_published_examples():
    # df printed by mclust: faithful EEE G=3 -> 11; iris VEV G=2 -> 26
    from emix.core.criteria import n_parameters

    assert n_parameters(get_structure("EEE"), 3, 2) == 11
    assert n_parameters(get_structure("VEV"), 2, 4) == 26
    assert get_structure("E").n_cov_parameters(3, 1) == 1
    assert get_structure("V").n_cov_parameters(3, 1) == 3


# ------------------------------------------------------------ M-step oracle
def _stats_problem(seed, K=2, D=3, n=60):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D)) @ rng.normal(size=(D, D)) + rng.normal(scale=2, size=D)
    resp = rng.dirichlet(np.full(K, 0.7), size=n)
    shift = X[rng.choice(n, K, replace=False)]
    return X, resp, shift


def _Q(covs, W, nk):
    """Expected complete-data log-likelihood, covariance part (to maximize)."""
    total = 0.0
    for S, Wk, n in zip(covs, W, nk):
        _, logdet = np.linalg.slogdet(S)
        total += -0.5 * (n * logdet + np.trace(np.linalg.solve(S, Wk)))
    return total


def _build(model, theta, K, D):
    """Sigma_k = exp(v_k) R_k diag(exp(s_k)) R_k^T under the model's equalities
    (V: per component, E: shared, I: identity)."""
    vol, shape, orient = model
    nv = K if vol == "V" else 1
    ns = {"V": K, "E": 1, "I": 0}[shape] * (D - 1)
    no = {"V": K, "E": 1, "I": 0}[orient] * (D * (D - 1) // 2)
    v = theta[:nv]
    s = theta[nv : nv + ns].reshape(-1, D - 1) if ns else np.zeros((1, D - 1))
    r = theta[nv + ns : nv + ns + no].reshape(-1, D * (D - 1) // 2) if no else np.zeros((1, D * (D - 1) // 2))
    iu = np.triu_indices(D, 1)
    covs = []
    for k in range(K):
        lam = np.exp(v[k if nv > 1 else 0])
        sk = s[k if s.shape[0] > 1 else 0]
        a = np.exp(np.append(sk, -sk.sum()))
        M = np.zeros((D, D))
        M[iu] = r[k if r.shape[0] > 1 else 0]
        S = M - M.T  # Cayley transform: a rotation from a skew matrix
        R = np.linalg.solve(np.eye(D) - S, np.eye(D) + S)
        covs.append(lam * (R * a) @ R.T)
    return np.array(covs), nv + ns + no


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_m_step_maximizes_expected_complete_loglik(model):
    """No numerical maximization of Q over the model's parameter space
    (BFGS from several starts, including emix's own answer perturbed) beats
    the M-step's covariances."""
    K, D = 2, 3
    X, resp, shift = _stats_problem(1, K, D)
    s = get_structure(model)
    stats = em.stats_from_resp(X, None, resp, shift, s)
    nk = stats.nk
    delta = stats.s1 / nk[:, None]
    cov = s.covariances(stats.s2, nk, delta, 0.0, np.float64)
    mu = shift + delta
    W = np.stack([(resp[:, k : k + 1] * (X - mu[k])).T @ (X - mu[k]) for k in range(K)])
    q_emix = _Q(cov, W, nk)
    _, p = _build(model, np.zeros(100), K, D)
    rng = np.random.default_rng(0)
    best = -np.inf
    for start in range(3):
        theta0 = rng.normal(scale=0.5, size=p)
        res = minimize(lambda t: -_Q(_build(model, t, K, D)[0], W, nk), theta0, method="BFGS",
                       options={"gtol": 1e-8, "maxiter": 1000})
        best = max(best, -res.fun)
    assert q_emix >= best - 1e-7 * abs(best), (q_emix, best)
    # and random perturbations inside the model never increase Q
    dec = _decompose(model, cov)
    if dec is not None:
        for _ in range(20):
            t = dec + rng.normal(scale=1e-3, size=dec.size)
            assert _Q(_build(model, t, K, D)[0], W, nk) <= q_emix + 1e-10 * abs(q_emix)


def _decompose(model, cov):
    """theta of ``_build`` reproducing ``cov`` (only for the models whose
    orientation is identity or per component, where eigen-decomposition
    recovers the parameters exactly)."""
    vol, shape, orient = model
    K, D, _ = cov.shape
    if orient == "E":
        return None
    vals, vecs = np.linalg.eigh(cov)
    vals, vecs = vals[:, ::-1], vecs[:, :, ::-1]
    if orient == "I":
        vals = np.diagonal(cov, axis1=1, axis2=2)
        vecs = np.broadcast_to(np.eye(D), (K, D, D))
    lam = np.exp(np.mean(np.log(vals), axis=1))
    a = vals / lam[:, None]
    theta = [np.log(lam) if vol == "V" else np.log(lam[:1])]
    if shape != "I":
        la = np.log(a[:, : D - 1])
        theta.append(la.ravel() if shape == "V" else la[0])
    if orient == "V":
        for k in range(K):
            R = vecs[k] * np.where(np.diag(vecs[k]) < 0, -1.0, 1.0)  # column signs are free
            if np.linalg.det(R) < 0:
                R = R.copy()
                R[:, np.argmin(np.abs(np.diag(R)))] *= -1
            S = (R - np.eye(D)) @ np.linalg.inv(R + np.eye(D))  # inverse Cayley
            theta.append(S[np.triu_indices(D, 1)])
    th = np.concatenate(theta)
    np.testing.assert_allclose(_build(model, th, K, D)[0], cov, rtol=1e-6, atol=1e-9)
    return th


# ---------------------------------------------------- fitted structure & EM
def _data(seed=0, n=300, D=3, K=3):
    X, _, _ = make_mixture(n_samples=n, n_components=K, n_features=D, separation=3.0, random_state=seed)
    return X


def _decomp(cov):
    vals, vecs = np.linalg.eigh(cov)
    vals, vecs = vals[:, ::-1], vecs[:, :, ::-1]
    lam = np.exp(np.mean(np.log(vals), axis=1))
    return lam, vals / lam[:, None], vecs


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_fitted_covariances_satisfy_the_model(model):
    X = _data()
    gm = emix.GaussianMixture(3, covariance_type=model, random_state=0, reg_covar=0.0, max_iter=50).fit(X)
    cov = gm.covariances_
    assert cov.shape == (3, 3, 3)
    lam, shape, vecs = _decomp(cov)
    vol, shp, ori = model
    if vol == "E":
        np.testing.assert_allclose(lam, lam[0], rtol=1e-8)
    if ori == "I":
        off = cov - np.stack([np.diag(np.diag(c)) for c in cov])
        assert np.max(np.abs(off)) == 0.0
        shape = np.diagonal(cov, axis1=1, axis2=2) / lam[:, None]
        if shp == "I":
            np.testing.assert_allclose(shape, 1.0, rtol=1e-10)
    if shp == "E":
        np.testing.assert_allclose(shape, shape[:1].repeat(3, 0), rtol=1e-6)
    if ori == "E":
        # a common orientation: all covariances commute
        for k in range(1, 3):
            C = cov[0] @ cov[k] - cov[k] @ cov[0]
            assert np.max(np.abs(C)) <= 1e-7 * np.max(np.abs(cov[0])) * np.max(np.abs(cov[k]))


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_em_is_monotone(model):
    X = _data(seed=3, n=200)
    gm = emix.GaussianMixture(3, covariance_type=model, random_state=1, tol=0.0, max_iter=40,
                              reg_covar=1e-6, init_params="random_from_data")
    with pytest.warns(emix.ConvergenceWarning):
        gm.fit(X)
    lb = np.asarray(gm.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:])), np.diff(lb).min()


@pytest.mark.parametrize("model", MCLUST_MODELS + ("E", "V"))
def test_densities_match_scipy(model):
    D = 1 if model in ("E", "V") else 3
    params, s = random_params(model, 3, D, random_state=2)
    X = np.random.default_rng(0).normal(size=(50, D))
    lp = s.log_prob(X, params.means, params.precisions_cholesky)
    full = s.full_covariances(params.covariances, 3, D)
    np.testing.assert_allclose(lp, oracle_log_prob(X, params.means, full), rtol=1e-9)
    np.testing.assert_allclose(s.cov_from_prec_chol(params.precisions_cholesky), params.covariances,
                               rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------- aliases
@pytest.mark.parametrize("sk,mc", [("full", "VVV"), ("tied", "EEE"), ("diag", "VVI"), ("spherical", "VII")])
def test_sklearn_names_are_aliases(sk, mc):
    X = _data(seed=5)
    a = emix.GaussianMixture(3, covariance_type=sk, random_state=0).fit(X)
    b = emix.GaussianMixture(3, covariance_type=mc, random_state=0).fit(X)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-10)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
    s = get_structure(sk)
    np.testing.assert_allclose(s.full_covariances(a.covariances_, 3, 3), b.covariances_, rtol=1e-10)
    assert b.covariances_.shape == (3, 3, 3)
    if sk == "full":  # the very same structure object
        assert get_structure("VVV") is get_structure("full")
        np.testing.assert_array_equal(a.covariances_, b.covariances_)


def test_univariate_E_V():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, 150), rng.normal(5, 2, 150)])[:, None]
    for name, equiv in (("E", "EII"), ("V", "VII")):
        a = emix.GaussianMixture(2, covariance_type=name, random_state=0).fit(X)
        b = emix.GaussianMixture(2, covariance_type=equiv, random_state=0).fit(X)
        np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-12)
    v = emix.GaussianMixture(2, covariance_type="V", random_state=0).fit(X)
    assert abs(np.sqrt(v.covariances_.ravel()).max() - 2) < 0.4
    with pytest.raises(ValueError, match="univariate"):
        emix.GaussianMixture(2, covariance_type="E").fit(np.c_[X, X])


def test_diagonal_models_reject_full_precisions_init():
    X = _data()
    P = np.stack([np.array([[1.0, 0.2, 0], [0.2, 1, 0], [0, 0, 1]])] * 3)
    with pytest.raises(ValueError, match="diagonal"):
        emix.GaussianMixture(3, covariance_type="VEI", precisions_init=P).fit(X)
    emix.GaussianMixture(3, covariance_type="VEV", precisions_init=P, max_iter=5).fit(X)


@pytest.mark.parametrize("model", ["EVE", "VVE", "VEI", "EII"])
def test_float32_and_offset(model):
    X = _data(seed=2) + 1000.0
    a = emix.GaussianMixture(3, covariance_type=model, random_state=0).fit(X.astype(np.float32))
    b = emix.GaussianMixture(3, covariance_type=model, random_state=0).fit(X)
    assert a.means_.dtype == np.float32 and a.covariances_.dtype == np.float32
    assert abs(a.score(X.astype(np.float32)) - b.score(X)) < 1e-3


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_save_load_round_trip(model, tmp_path):
    X = _data(seed=4, n=120)
    gm = emix.GaussianMixture(2, covariance_type=model, random_state=0, max_iter=20).fit(X)
    emix.save(gm, tmp_path / "m.emix")
    back = emix.load(tmp_path / "m.emix")
    assert back.covariance_type == model
    np.testing.assert_array_equal(back.score_samples(X), gm.score_samples(X))
    Xs, ys = gm.sample(50)
    assert Xs.shape == (50, 3)


# ------------------------------------------------- MAP under a conjugate prior
from emix.core.prior import ConjugatePrior, default_prior, map_m_step  # noqa: E402


def _map_problem():
    X, resp, shift = _stats_problem(2, K=2, D=3)
    prior = default_prior(X, 2)
    return X, resp, shift, prior


def test_default_prior_is_mclusts():
    X = _data()
    p = default_prior(X, 4)
    np.testing.assert_allclose(p.mean, X.mean(axis=0))
    assert p.shrinkage == 0.01 and p.dof == X.shape[1] + 2
    np.testing.assert_allclose(p.scale, np.cov(X, rowvar=False) / 4 ** (2 / 3))


def test_map_vvv_matches_fraley_raftery_2007():
    X, resp, shift, prior = _map_problem()
    s = get_structure("VVV")
    p = map_m_step(em.stats_from_resp(X, None, resp, shift, s), s, prior, 0.0, np.float64)
    nk = resp.sum(0)
    xbar = resp.T @ X / nk[:, None]
    kappa, nu, d = prior.shrinkage, prior.dof, 3
    for k in range(2):
        Wk = (resp[:, k : k + 1] * (X - xbar[k])).T @ (X - xbar[k])
        dm = xbar[k] - prior.mean
        Sk = (prior.scale + Wk + kappa * nk[k] / (nk[k] + kappa) * np.outer(dm, dm)) / (nk[k] + nu + d + 2)
        np.testing.assert_allclose(p.covariances[k], Sk, rtol=1e-10)
        np.testing.assert_allclose(p.means[k], (nk[k] * xbar[k] + kappa * prior.mean) / (nk[k] + kappa), rtol=1e-12)
    np.testing.assert_allclose(p.weights, nk / nk.sum(), rtol=1e-12)


@pytest.mark.parametrize("model", ["EII", "VEI", "EEE", "EVE", "VEV", "EVV"])
def test_map_m_step_maximizes_the_log_posterior(model):
    """With one prior per component the covariance part of the log-posterior
    is Q with (W_k, n_k) -> (W_k^P, n_k + nu + d + 2): BFGS cannot beat it."""
    K, D = 2, 3
    X, resp, shift, prior = _map_problem()
    s = get_structure(model)
    cov = map_m_step(em.stats_from_resp(X, None, resp, shift, s), s, prior, 0.0, np.float64).covariances
    nk = resp.sum(0)
    xbar = resp.T @ X / nk[:, None]
    WP = np.stack([(resp[:, k : k + 1] * (X - xbar[k])).T @ (X - xbar[k]) + prior.scale
                   + prior.shrinkage * nk[k] / (nk[k] + prior.shrinkage) * np.outer(xbar[k] - prior.mean, xbar[k] - prior.mean)
                   for k in range(K)])
    nt = nk + prior.dof + D + 2
    q = _Q(cov, WP, nt)
    _, p = _build(model, np.zeros(100), K, D)
    rng = np.random.default_rng(1)
    best = max(-minimize(lambda t: -_Q(_build(model, t, K, D)[0], WP, nt), rng.normal(scale=0.5, size=p),
                         method="BFGS", options={"gtol": 1e-8}).fun for _ in range(2))
    assert q >= best - 1e-7 * abs(best)


def test_prior_keeps_degenerate_fits_alive():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(40, 2)), np.tile([[8.0, 8.0]], (3, 1))]  # 3 identical points
    means = np.array([[0.0, 0.0], [8.0, 8.0]])
    with pytest.raises(emix.DegenerateComponentError):  # one restart: the error itself, no warning
        emix.GaussianMixture(2, covariance_type="VVV", reg_covar=0.0, means_init=means).fit(X)
    gm = emix.GaussianMixture(2, covariance_type="VVV", reg_covar=0.0, means_init=means, prior="default").fit(X)
    assert np.all(np.linalg.eigvalsh(gm.covariances_) > 0)


def test_prior_none_is_the_default_path_and_other_paths_refuse():
    X = _data()
    a = emix.GaussianMixture(3, covariance_type="EVE", random_state=0).fit(X)
    b = emix.GaussianMixture(3, covariance_type="EVE", random_state=0, prior=None).fit(X)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    c = emix.GaussianMixture(3, covariance_type="EVE", random_state=0, prior="default").fit(X)
    assert c.score(X) < a.score(X) + 1e-9  # MAP does not beat the MLE's likelihood (same optimum basin)
    with pytest.raises(NotImplementedError, match="prior"):
        emix.GaussianMixture(3, prior="default").partial_fit(X)
    with pytest.raises(ValueError, match="prior"):
        emix.GaussianMixture(3, prior="bogus").fit(X)
    bad = ConjugatePrior(mean=np.zeros(2), shrinkage=0.01, dof=5.0, scale=np.eye(2))
    with pytest.raises(ValueError, match="shape"):
        emix.GaussianMixture(3, prior=bad).fit(X)
