"""The contract every component family (emix.families.base protocol) meets.

One table, ``CASES``: each row gives a family, a data generator, random
component parameters, an independent oracle for the per-component log
densities (scipy.stats) and, where a closed form exists, the per-cluster
maximum-likelihood estimate written independently in numpy. Adding a family
is adding a row here. Invariants checked for every row: oracle densities,
statistics of two halves add up to the whole, integer weights equal repeated
rows, row permutation changes nothing, EM never decreases the
log-likelihood, the one-hot M-step is the per-cluster MLE, sampling has the
fitted parameters' moments.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as ss

import emix
from emix.families import Mixture, MixtureParams, get_family


class Case:
    """``model_kw``: how MixtureModel fits the family (default ``family=name``)."""

    def __init__(self, name, family, data, random_comp, oracle, mle=None, rtol=1e-10, model_kw=None):
        self.name, self.family, self.data, self.random_comp = name, family, data, random_comp
        self.oracle, self.mle, self.rtol = oracle, mle, rtol
        self.model_kw = {"family": name} if model_kw is None else model_kw


# ---------------------------------------------------------------- poisson
def _poisson_data(rng, n=300, D=3):
    lam = np.array([[0.5, 2.0, 6.0], [7.0, 1.0, 0.2]])[:, :D]
    z = rng.integers(0, 2, n)
    return rng.poisson(lam[z]).astype(np.float64)


def _poisson_comp(rng, K, D):
    return {"rates": rng.uniform(0.1, 9.0, (K, D))}


def _poisson_oracle(X, comp):
    return np.stack([ss.poisson.logpmf(X, lam).sum(axis=1) for lam in comp["rates"]], axis=1)


def _poisson_mle(X, w):
    return {"rates": (w @ X) / w.sum()}


# ---------------------------------------------------------------- gaussian (the protocol view)
def _gaussian_data(rng, n=300, D=3):
    z = rng.integers(0, 2, n)
    centers = np.array([[5.0, -3.0, 10.0], [8.0, -1.0, 7.0]])[:, :D]
    return centers[z] + rng.normal(size=(n, D)) * np.where(z, 1.5, 0.7)[:, None]


def _prec_chol(cov):  # upper U with U U^T = inv(cov): inv(L)^T for cov = L L^T
    return np.linalg.inv(np.linalg.cholesky(cov)).T


def _gaussian_comp(covariance_type):
    def comp(rng, K, D):
        means = rng.normal(6.0, 3.0, (K, D))
        if covariance_type == "diag":
            var = rng.uniform(0.3, 4.0, (K, D))
            return {"means": means, "covariances": var, "precisions_cholesky": 1.0 / np.sqrt(var)}
        A = rng.normal(size=(K, D, D))
        cov = A @ A.transpose(0, 2, 1) / D + 0.5 * np.eye(D)
        return {"means": means, "covariances": cov, "precisions_cholesky": np.stack([_prec_chol(c) for c in cov])}
    return comp


def _gaussian_oracle(X, comp):
    cov = comp["covariances"]
    cov = [np.diag(c) for c in cov] if cov.ndim == 2 else cov
    return np.stack([ss.multivariate_normal(m, c).logpdf(X) for m, c in zip(comp["means"], cov)], axis=1)


def _gaussian_mle(covariance_type, reg_covar=1e-6):
    def mle(X, w):
        m = (w @ X) / w.sum()
        cov = ((X - m).T * w) @ (X - m) / w.sum() + reg_covar * np.eye(X.shape[1])
        if covariance_type == "diag":
            return {"means": m, "covariances": np.diag(cov), "precisions_cholesky": 1.0 / np.sqrt(np.diag(cov))}
        return {"means": m, "covariances": cov, "precisions_cholesky": _prec_chol(cov)}
    return mle


def _gaussian_case(covariance_type):
    # MixtureModel(family='gaussian') runs GaussianMixture; the protocol family goes through the generic
    # estimator as the one member of a mixed family ('auto': every float column is Gaussian)
    return Case(f"gaussian-{covariance_type}", lambda: get_family("gaussian", covariance_type=covariance_type),
                _gaussian_data, _gaussian_comp(covariance_type), _gaussian_oracle, _gaussian_mle(covariance_type),
                model_kw={"family": "auto", "family_options": {"gaussian": {"covariance_type": covariance_type}}})


# ---------------------------------------------------------------- mixed (gaussian, poisson, gaussian columns)
def _mixed_data(rng, n=300):
    z = rng.integers(0, 2, n)
    return np.column_stack([rng.normal(np.where(z, 4.0, 0.0), np.where(z, 0.6, 1.3)),
                            rng.poisson(np.where(z, 1.0, 7.0)), rng.normal(np.where(z, -2.0, 2.0), 1.0)])


def _mixed_comp(rng, K, D):
    var = rng.uniform(1.0, 4.0, (K, 2))
    return {"gaussian_means": rng.uniform(-1.0, 3.0, (K, 2)), "gaussian_covariances": var,
            "gaussian_precisions_cholesky": 1.0 / np.sqrt(var), "poisson_rates": rng.uniform(1.0, 7.0, (K, 1))}


def _mixed_oracle(X, comp):
    g = {k[len("gaussian_"):]: v for k, v in comp.items() if k.startswith("gaussian_")}
    return _gaussian_oracle(X[:, [0, 2]], g) + _poisson_oracle(X[:, [1]], {"rates": comp["poisson_rates"]})


def _mixed_mle(X, w):
    g = _gaussian_mle("diag")(X[:, [0, 2]], w)
    return {"gaussian_" + k: v for k, v in g.items()} | {"poisson_rates": _poisson_mle(X[:, [1]], w)["rates"]}


# ---------------------------------------------------------------- student_t (full scale matrices)
def _student_t_data(rng, n=300, D=2):
    z = rng.integers(0, 2, n)
    g = np.where(z, rng.chisquare(3.0, n) / 3.0, rng.chisquare(12.0, n) / 12.0)
    return np.array([[0.0, 1.0], [6.0, -2.0]])[z, :D] + rng.normal(size=(n, D)) / np.sqrt(g)[:, None]


def _student_t_comp(rng, K, D):
    A = rng.normal(size=(K, D, D))
    cov = A @ A.transpose(0, 2, 1) / D + 0.5 * np.eye(D)
    return {"means": rng.normal(2.0, 3.0, (K, D)), "covariances": cov,
            "precisions_cholesky": np.stack([np.linalg.inv(np.linalg.cholesky(c)).T for c in cov]),
            "dof": rng.uniform(1.0, 30.0, K)}


def _student_t_oracle(X, comp):
    return np.stack([ss.multivariate_t(m, c, df=nu).logpdf(X)
                     for m, c, nu in zip(comp["means"], comp["covariances"], comp["dof"])], axis=1)


# ---------------------------------------------------------------- categorical, bernoulli (latent class models)
_CAT_LABELS = (["no", "yes"], [10, 20, 30], ["a", "b", "c", "d"])  # strings, integers: labels of any type
_CAT_P = ([[0.9, 0.1], [0.75, 0.2, 0.05], [0.05, 0.1, 0.4, 0.45]],
          [[0.15, 0.85], [0.1, 0.2, 0.7], [0.5, 0.35, 0.1, 0.05]])


def _cat_data(rng, n=300):
    """An object table with some answers missing (None); the first rows
    hold every category, so that every draw has all of them."""
    z = rng.integers(0, 2, n)
    cols = []
    for d, labels in enumerate(_CAT_LABELS):
        C = len(labels)
        cum = np.cumsum(np.array([_CAT_P[0][d], _CAT_P[1][d]])[z], axis=1)
        codes = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), C - 1)
        codes[:C] = np.arange(C)
        col = np.array(labels, dtype=object)[codes]
        miss = rng.random(n) < 0.06
        miss[:4] = False
        col[miss] = None
        cols.append(col)
    return np.column_stack(cols)


def _cat_comp(rng, K, D):
    P = np.zeros((K, D, 4))
    for d, labels in enumerate(_CAT_LABELS[:D]):
        P[:, d, :len(labels)] = rng.dirichlet(np.ones(len(labels)), size=K)
    return {"probabilities": P}


def _cat_oracle(X, comp):
    out = np.zeros((X.shape[0], comp["probabilities"].shape[0]))
    for k, P in enumerate(comp["probabilities"]):
        for d, labels in enumerate(_CAT_LABELS):
            obs = ~np.isnan(X[:, d])  # missing answers add nothing
            onehot = np.eye(len(labels))[X[obs, d].astype(int)]
            out[obs, k] += ss.multinomial.logpmf(onehot, 1, P[d, :len(labels)])
    return out


def _cat_mle(X, w):
    P = np.zeros((X.shape[1], 4))
    for d, labels in enumerate(_CAT_LABELS):
        obs = ~np.isnan(X[:, d])
        P[d, :len(labels)] = np.bincount(X[obs, d].astype(int), weights=w[obs], minlength=len(labels)) / w[obs].sum()
    return {"probabilities": P}


_BERN_P = np.array([[0.9, 0.8, 0.15, 0.7], [0.1, 0.2, 0.85, 0.25]])


def _bern_data(rng, n=300):
    """Binary columns coded as booleans, 'no'/'yes', 0/1 and 0.0/1.0 (NaN and
    None missing)."""
    x = rng.random((n, 4)) < _BERN_P[rng.integers(0, 2, n)]
    x[0], x[1] = False, True
    cols = [x[:, 0].astype(object), np.where(x[:, 1], "yes", "no").astype(object), x[:, 2].astype(int).astype(object),
            x[:, 3].astype(float).astype(object)]
    for d in (1, 3):
        miss = rng.random(n) < 0.06
        miss[:2] = False
        cols[d][miss] = None if d == 1 else np.nan
    return np.column_stack(cols)


def _bern_comp(rng, K, D):
    return {"probabilities": rng.uniform(0.05, 0.95, (K, D))}


def _bern_oracle(X, comp):
    obs = ~np.isnan(X)
    return np.stack([np.where(obs, ss.bernoulli.logpmf(np.where(obs, X, 0), p), 0.0).sum(axis=1)
                     for p in comp["probabilities"]], axis=1)


def _bern_mle(X, w):
    obs = ~np.isnan(X)
    return {"probabilities": (w @ np.where(obs, X, 0.0)) / (w @ obs)}


CASES = [
    Case("poisson", lambda: get_family("poisson"), _poisson_data, _poisson_comp, _poisson_oracle, _poisson_mle),
    _gaussian_case("full"),
    _gaussian_case("diag"),
    Case("mixed", lambda: get_family("mixed", columns=["gaussian", "poisson", "gaussian"]), _mixed_data, _mixed_comp,
         _mixed_oracle, _mixed_mle, model_kw={"family": {0: "gaussian", 1: "poisson", 2: "gaussian"}}),
    # no mle: a one-hot M-step without previous parameters is the start (u = 1, dof_init), not the t MLE
    Case("student_t", lambda: get_family("student_t"), _student_t_data, _student_t_comp, _student_t_oracle),
    Case("categorical", lambda: get_family("categorical"), _cat_data, _cat_comp, _cat_oracle, _cat_mle),
    Case("bernoulli", lambda: get_family("bernoulli"), _bern_data, _bern_comp, _bern_oracle, _bern_mle),
]
IDS = [c.name for c in CASES]


def _stack_mle(case, X, labels, K, w=None):
    w = np.ones(X.shape[0]) if w is None else w
    parts = [case.mle(X[labels == k], w[labels == k]) for k in range(K)]
    return {key: np.stack([p[key] for p in parts]) if np.ndim(parts[0][key]) else np.array([p[key] for p in parts])
            for key in parts[0]}


def _encode(fam, data):
    """``(X_float, family)``: ``data`` encoded, and the family configured
    with what encode learned (families are immutable: a new instance)."""
    X, meta = fam.encode(data)
    return X, fam.with_meta(meta)


def _allclose(a, b, rtol, msg=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), msg
        for k in a:
            _allclose(a[k], b[k], rtol, f"{msg}/{k}")
        return
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(b[np.isfinite(b)]))) if np.isfinite(b).any() else 1.0)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=msg)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_log_prob_matches_oracle(case):
    rng = np.random.default_rng(0)
    fam = case.family()
    X, fam = _encode(fam, case.data(rng))
    comp = case.random_comp(rng, 3, X.shape[1])
    _allclose(fam.log_prob(X, comp), case.oracle(X, comp), 1e-10)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_encode_leaves_the_family_unchanged(case):
    # families are immutable: encode returns what it learns, with_meta gives a new configured instance
    fam = case.family()
    before = json.dumps(fam.config(), sort_keys=True, default=repr)
    X, meta = fam.encode(case.data(np.random.default_rng(0)))
    fitted = fam.with_meta(meta)
    assert json.dumps(fam.config(), sort_keys=True, default=repr) == before
    assert fitted.encode(case.data(np.random.default_rng(0)), meta)[0].shape == X.shape


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_halves_add_to_the_whole(case):
    rng = np.random.default_rng(1)
    fam = case.family()
    X, fam = _encode(fam, case.data(rng))
    mix = Mixture(fam)
    comp = case.random_comp(rng, 3, X.shape[1])
    params = MixtureParams(np.array([0.2, 0.3, 0.5]), comp)
    w = rng.uniform(0, 2, X.shape[0])
    whole = mix.e_step(X, w, params)
    cut = X.shape[0] // 3
    halves = mix.e_step(X[:cut], w[:cut], params) + mix.e_step(X[cut:], w[cut:], params)
    _allclose(halves.nk, whole.nk, case.rtol, "nk")
    _allclose(halves.sums, whole.sums, case.rtol, "sums")
    _allclose(halves.loglik, whole.loglik, case.rtol, "loglik")
    # and the M-step of the sum is the M-step of the whole
    _allclose(mix.m_step(halves, params).components, mix.m_step(whole, params).components, 1e-8, "m_step")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_integer_weights_equal_repeated_rows(case):
    rng = np.random.default_rng(2)
    X = case.data(rng, 120)
    w = rng.integers(0, 4, X.shape[0])
    w[0] = 1
    rep = np.repeat(X, w, axis=0)
    kw = dict(case.model_kw, random_state=0, init_params="random_from_data", tol=1e-10, max_iter=30)
    m_w = emix.MixtureModel(2, **kw)
    m_r = emix.MixtureModel(2, **kw)
    # same start: initialize both from the same parameters via warm start
    m_r.fit(rep)
    m_w.set_params(warm_start=True)
    m_w.family_, m_w.encoding_ = m_r.family_, m_r.encoding_
    for name in ("weights_", *[p + "_" for p in m_r.family_.param_names]):
        setattr(m_w, name, getattr(m_r, name))
    m_w.converged_, m_w.lower_bound_, m_w.n_features_in_ = False, -np.inf, m_r.n_features_in_
    m_r2 = emix.MixtureModel(2, **kw)
    m_r2.set_params(warm_start=True)
    m_r2.family_, m_r2.encoding_ = m_r.family_, m_r.encoding_
    for name in ("weights_", *[p + "_" for p in m_r.family_.param_names]):
        setattr(m_r2, name, getattr(m_r, name))
    m_r2.converged_, m_r2.lower_bound_, m_r2.n_features_in_ = False, -np.inf, m_r.n_features_in_
    m_w.fit(X, sample_weight=w)
    m_r2.fit(rep)
    _allclose(m_w.weights_, m_r2.weights_, 1e-8, "weights")
    for p in m_r.family_.param_names:
        _allclose(getattr(m_w, p + "_"), getattr(m_r2, p + "_"), 1e-8, p)
    np.testing.assert_allclose(m_w.score(X, sample_weight=w), m_r2.score(rep), rtol=1e-10)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_row_permutation_changes_nothing(case):
    rng = np.random.default_rng(3)
    X = case.data(rng)
    fam = case.family()
    Xf, fam = _encode(fam, X)
    mix = Mixture(fam)
    params = MixtureParams(np.array([0.5, 0.5]), case.random_comp(rng, 2, Xf.shape[1]))
    perm = rng.permutation(Xf.shape[0])
    a, b = mix.e_step(Xf, None, params), mix.e_step(Xf[perm], None, params)
    _allclose(a.sums, b.sums, 1e-10)
    _allclose(a.loglik, b.loglik, 1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_em_never_decreases_the_loglik(case, seed):
    rng = np.random.default_rng(seed)
    X = case.data(rng)
    m = emix.MixtureModel(3, **case.model_kw, random_state=seed, init_params="random", tol=0, max_iter=60)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emix.ConvergenceWarning)
        m.fit(X)
    lb = np.array(m.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-10 * np.abs(lb[1:])), lb
    # the recorded bound is the log-likelihood of the parameters that entered the last iteration;
    # the returned parameters are at least as good
    assert m.score(X) >= lb[-1] - 1e-10 * abs(lb[-1])


@pytest.mark.parametrize("case", [c for c in CASES if c.mle is not None], ids=[c.name for c in CASES if c.mle])
def test_one_hot_m_step_is_the_per_cluster_mle(case):
    rng = np.random.default_rng(4)
    fam = case.family()
    X, fam = _encode(fam, case.data(rng))
    K = 3
    labels = np.arange(X.shape[0]) % K
    resp = np.eye(K)[labels]
    w = rng.uniform(0.5, 2.0, X.shape[0])
    mix = Mixture(fam)
    params = mix.m_step(mix.stats_from_resp(X, w, resp, None), None)
    _allclose(params.components, _stack_mle(case, X, labels, K, w), 1e-9)
    _allclose(params.weights, np.array([w[labels == k].sum() for k in range(K)]) / w.sum(), 1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@settings(max_examples=15, deadline=None)
@given(cut=st.integers(1, 59), seed=st.integers(0, 2**16))
def test_property_any_split_adds_up(case, cut, seed):
    rng = np.random.default_rng(seed)
    fam = case.family()
    X, fam = _encode(fam, case.data(rng, 60))
    mix = Mixture(fam)
    params = MixtureParams(np.array([0.4, 0.6]), case.random_comp(rng, 2, X.shape[1]))
    a = mix.e_step(X[:cut], None, params) + mix.e_step(X[cut:], None, params)
    b = mix.e_step(X, None, params)
    _allclose(a.sums, b.sums, 1e-9)
    _allclose(a.nk, b.nk, 1e-9)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sample_then_refit_recovers_weights(case):
    rng = np.random.default_rng(5)
    X = case.data(rng, 2000)
    m = emix.MixtureModel(2, **case.model_kw, random_state=0, n_init=3).fit(X)
    Xs, ys = m.sample(4000)
    assert Xs.shape == (4000, m.n_features_in_)
    np.testing.assert_allclose(np.bincount(ys, minlength=2) / 4000, m.weights_, atol=0.04)
    m2 = emix.MixtureModel(2, **case.model_kw, random_state=0, n_init=3).fit(Xs)
    np.testing.assert_allclose(np.sort(m2.weights_), np.sort(m.weights_), atol=0.05)
