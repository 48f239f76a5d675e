"""The family E-step (emix.families.base.Mixture.e_step) and the Poisson
log-factorial table against scipy: the fast (K, n) normalization, its
fallback for blocks holding a row no component can produce, and sample
weights."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as ss
from scipy.special import gammaln, logsumexp

from emix.exceptions import DegenerateComponentError
from emix.families import Mixture, MixtureParams, get_family
from emix.families.poisson import LOG_FACTORIAL_TOP, log_factorial_rows


def _oracle(X, w, weights, rates):
    """Statistics of one E-step written with scipy.stats (rows of weight 0
    that no component can produce are left out, as they count for nothing)."""
    with np.errstate(divide="ignore"):
        lp = ss.poisson.logpmf(X[:, None, :], rates[None]).sum(axis=2) + np.log(weights)[None, :]
    w = np.ones(X.shape[0]) if w is None else w
    keep = w > 0
    lp, X, w = lp[keep], X[keep], w[keep]
    norm = logsumexp(lp, axis=1)
    rw = np.exp(lp - norm[:, None]) * w[:, None]
    return rw.sum(axis=0), rw.T @ X, float(norm @ w), float(w.sum())


def _check(X, w, weights, rates):
    st_ = Mixture(get_family("poisson")).e_step(X, w, MixtureParams(weights=weights, components={"rates": rates}))
    nk, sx, ll, sw = _oracle(X, w, weights, rates)
    np.testing.assert_allclose(st_.nk, nk, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(st_.sums["sx"], sx, rtol=1e-12, atol=1e-10)
    assert st_.loglik == pytest.approx(ll, rel=1e-13)
    assert st_.sum_w == pytest.approx(sw, rel=1e-15)


def test_e_step_equals_scipy_unweighted_and_weighted():
    rng = np.random.default_rng(0)
    rates = np.array([[0.5, 3.0, 9.0], [6.0, 1.0, 0.3], [2.0, 2.0, 2.0]])
    X = rng.poisson(rates[rng.integers(0, 3, 500)]).astype(np.float64)
    weights = np.array([0.5, 0.3, 0.2])
    _check(X, None, weights, rates)
    _check(X, rng.uniform(0.0, 3.0, 500), weights, rates)


def test_e_step_zero_rate_and_zero_weight_component():
    """A zero rate gives some rows -inf under one component (finite under
    another: the fast path), a zero mixing weight gives -inf everywhere."""
    rng = np.random.default_rng(1)
    X = rng.poisson(2.0, (300, 2)).astype(np.float64)
    rates = np.array([[0.0, 2.0], [2.0, 2.0], [1.0, 1.0]])
    _check(X, None, np.array([0.4, 0.6, 0.0]), rates)


def test_e_step_impossible_row_fallback():
    """A row no component can produce: an error with weight > 0, nothing with
    weight 0 (the block then takes the general path; same statistics)."""
    X = np.array([[0.0, 1.0], [3.0, 0.0], [0.0, 2.0], [5.0, 4.0]])
    rates = np.array([[0.0, 1.5], [0.0, 3.0]])  # rows 1 and 3 have x_0 > 0: impossible
    weights = np.array([0.5, 0.5])
    mix = Mixture(get_family("poisson"))
    params = MixtureParams(weights=weights, components={"rates": rates})
    with pytest.raises(DegenerateComponentError, match="Row 1 of a block has zero probability"):
        mix.e_step(X, None, params)
    _check(X, np.array([1.0, 0.0, 2.0, 0.0]), weights, rates)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 6), n=st.integers(1, 60), weighted=st.booleans())
def test_e_step_property(seed, K, n, weighted):
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.05, 20.0, (K, 3))
    X = rng.poisson(rates[rng.integers(0, K, n)]).astype(np.float64)
    weights = rng.dirichlet(np.ones(K))
    w = rng.uniform(0.0, 2.0, n) if weighted else None
    _check(X, w, weights, rates)


def test_log_factorial_rows_equals_gammaln():
    rng = np.random.default_rng(2)
    cases = [
        rng.integers(0, 50, (100, 4)).astype(np.float64),
        np.array([[0.0, float(LOG_FACTORIAL_TOP)], [1.0, 2.0]]),  # the table's ends
        np.array([[0.0, float(LOG_FACTORIAL_TOP + 1)], [1e9, 2.0]]),  # beyond: lgamma
        np.array([[0.5, 2.25], [3.0, 7.5]]),  # non-integer (allow_noninteger)
        np.zeros((0, 3)),
        np.zeros((4, 0)),
    ]
    for X in cases:
        np.testing.assert_allclose(log_factorial_rows(X), gammaln(X + 1.0).sum(axis=1), rtol=1e-14, atol=1e-12)
        assert log_factorial_rows(X).shape == (X.shape[0],)


def _bernoulli_oracle(X, P, rw):
    obs = ~np.isnan(X)
    Xz = np.where(obs, X, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lpmf = ss.bernoulli.logpmf(Xz[:, None, :], P[None])  # (n, K, D)
    lp = np.where(obs[:, None, :], lpmf, 0.0).sum(axis=2)
    ones = rw.T @ (Xz * obs)
    zeros = rw.T @ ((1.0 - Xz) * obs)
    return lp, zeros, ones


@pytest.mark.parametrize("case", ["dense", "prob_0_and_1", "missing"])
def test_bernoulli_dense_and_sparse_products_equal_scipy(case):
    """Complete 0/1 blocks with probabilities inside (0, 1) take one GEMM; a
    probability of exactly 0 or 1, or a missing answer, the sparse one-hot
    product. Both give scipy's densities and the direct counts."""
    rng = np.random.default_rng(3)
    K, D, n = 3, 6, 400
    P = rng.uniform(0.02, 0.98, (K, D))
    X = (rng.random((n, D)) < 0.4).astype(np.float64)
    if case == "prob_0_and_1":
        P[0, 0], P[1, 2] = 0.0, 1.0
    if case == "missing":
        X[rng.random((n, D)) < 0.1] = np.nan
    rw = rng.dirichlet(np.ones(K), n) * rng.uniform(0.5, 2.0, (n, 1))
    fam = get_family("bernoulli")
    lp_o, zeros_o, ones_o = _bernoulli_oracle(X, P, rw)
    lp = fam.log_prob(X, {"probabilities": P})
    np.testing.assert_allclose(lp, lp_o, rtol=1e-12, atol=1e-12)
    s = fam.suff_stats(X, rw, {"probabilities": P})
    np.testing.assert_allclose(s["ones"], ones_o, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s["zeros"], zeros_o, rtol=1e-12, atol=1e-12)
    s_f = fam.suff_stats(X, np.asfortranarray(rw), {"probabilities": P})  # the E-step's (K, n) layout
    np.testing.assert_allclose(s_f["ones"], ones_o, rtol=1e-12, atol=1e-12)


def test_bernoulli_stray_code_is_an_error_on_every_path():
    fam = get_family("bernoulli")
    X = np.array([[0.0, 1.0], [2.0, 0.0]])
    P = np.array([[0.3, 0.6]])
    with pytest.raises(ValueError, match="Row 1, column 0 holds code"):
        fam.log_prob(X, {"probabilities": P})
    with pytest.raises(ValueError, match="Row 1, column 0 holds code"):
        fam.suff_stats(X, np.ones((2, 1)), {"probabilities": P})
