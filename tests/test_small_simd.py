"""The compiled E-step's vector layout (src/emix/_small_kernels.c: rows in
passes of 64, transposed, 4 rows per vector, padded tails; an AVX2+FMA
variant chosen at run time and a portable one): both variants against scipy's
densities for every feature count the kernel specializes (1-12) and the
column-wise path above, at row counts around the pass and vector sizes;
float32 blocks read as float32 and computed in float64; additivity of the
statistics over any split of the rows (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal, norm

from emix.core import em, small
from emix.core.types import GaussianParams
from emix.families.gaussian import get_structure

pytestmark = pytest.mark.skipif(not small.available(), reason="the compiled module is not built (no C compiler)")

#: (structure name, kernel mode): 0 full factors, 1 (K, D, D) diagonal factors, 2 (K, D) ones
MODES = [("full", 0), ("VVI", 1), ("diag", 2)]


@pytest.fixture(params=["portable", "native"])
def variant(request):
    """Run a test with the portable variant forced, then with the CPU's own
    (the AVX2 one where the CPU has it; on other CPUs both are portable)."""
    kernels = small._kernels
    active = kernels.set_isa(0 if request.param == "portable" else -1)
    yield active
    kernels.set_isa(-1)


def _params(D, K, diag, seed):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=2.0, size=(K, D))
    if diag:
        cov = np.stack([np.diag(rng.uniform(0.3, 2.0, D)) for _ in range(K)])
    else:
        A = rng.normal(size=(K, D, D))
        cov = A @ np.transpose(A, (0, 2, 1)) + D * np.eye(D)
    U = np.linalg.inv(np.linalg.cholesky(cov)).transpose(0, 2, 1).copy()  # U U^T = Sigma^-1, upper
    weights = rng.dirichlet(np.ones(K) * 3)
    return GaussianParams(weights=weights, means=means, covariances=cov, precisions_cholesky=U)


def _call(X, w, p, mode):
    K, D = p.means.shape
    U = np.ascontiguousarray(np.stack([np.diag(u) for u in p.precisions_cholesky]) if mode == 2
                             else p.precisions_cholesky)
    nk, s1 = np.empty(K), np.empty((K, D))
    s2 = np.empty((K, D, D) if mode == 0 else (K, D))
    f32 = X.dtype == np.float32
    loglik, sum_w, status, logmax = small._kernels.estep(np.ascontiguousarray(X), w, p.means, U, p.weights,
                                                         nk, s1, s2, X.shape[0], D, K, mode, f32)
    assert status == 0
    return loglik, sum_w, logmax, nk, s1, s2


def _oracle(X, w, p, mode):
    """scipy's log densities, then the statistics in plain numpy."""
    K = p.means.shape[0]
    logp = np.stack([np.log(p.weights[k]) + np.atleast_1d(multivariate_normal(p.means[k], p.covariances[k])
                                                          .logpdf(X)) for k in range(K)], axis=1)
    tot = np.logaddexp.reduce(logp, axis=1)
    R = np.exp(logp - tot[:, None])
    wr = R * w[:, None]
    s1 = np.stack([wr[:, k] @ (X - p.means[k]) for k in range(K)])
    if mode == 0:
        s2 = np.stack([(X - p.means[k]).T @ ((X - p.means[k]) * wr[:, [k]]) for k in range(K)])
    else:
        s2 = np.stack([wr[:, k] @ (X - p.means[k]) ** 2 for k in range(K)])
    return tot @ w, w.sum(), w @ np.log(R.max(axis=1)), wr.sum(0), s1, s2


@pytest.mark.parametrize("D", [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13])
@pytest.mark.parametrize("name,mode", MODES)
@pytest.mark.parametrize("n", [1, 3, 63, 64, 65, 130])
def test_estep_against_scipy(variant, D, name, mode, n):
    rng = np.random.default_rng(D * 100 + n)
    p = _params(D, 3, mode != 0, seed=D + n)
    X = p.means[rng.integers(0, 3, n)] + rng.normal(size=(n, D))
    w = rng.uniform(0.5, 2.0, n)
    got = _call(X, w, p, mode)
    want = _oracle(X, w, p, mode)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10 * (1 + np.max(np.abs(e))))
    unweighted = _call(X, None, p, mode)
    ones = _oracle(X, np.ones(n), p, mode)
    for g, e in zip(unweighted, ones):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10 * (1 + np.max(np.abs(e))))


def test_univariate_oracle_is_scipy_norm():
    # the one-feature case against scipy.stats.norm directly (no multivariate wrapper)
    p = _params(1, 2, True, seed=3)
    X = np.linspace(-4, 4, 37)[:, None]
    loglik = _call(X, None, p, 2)[0]
    dens = sum(p.weights[k] * norm(p.means[k, 0], np.sqrt(p.covariances[k, 0, 0])).pdf(X[:, 0]) for k in range(2))
    np.testing.assert_allclose(loglik, np.log(dens).sum(), rtol=1e-13)


@pytest.mark.parametrize("name,mode", MODES)
def test_variants_agree(name, mode):
    kernels = small._kernels
    rng = np.random.default_rng(5)
    for D in (2, 5, 8, 10, 14):
        p = _params(D, 4, mode != 0, seed=D)
        X = p.means[rng.integers(0, 4, 301)] + rng.normal(size=(301, D))
        kernels.set_isa(0)
        try:
            a = _call(X, None, p, mode)
        finally:
            kernels.set_isa(-1)
        b = _call(X, None, p, mode)
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,mode", MODES)
def test_float32_rows_are_read_exactly(variant, name, mode):
    rng = np.random.default_rng(7)
    p = _params(3, 3, mode != 0, seed=7)
    X32 = (p.means[rng.integers(0, 3, 203)] + rng.normal(size=(203, 3))).astype(np.float32)
    a = _call(X32, None, p, mode)
    b = _call(X32.astype(np.float64), None, p, mode)
    for x, y in zip(a, b):  # the kernel widens each value as it reads it: the same arithmetic
        np.testing.assert_array_equal(x, y)


def test_float32_block_goes_through_em_e_step(monkeypatch):
    rng = np.random.default_rng(8)
    p = _params(2, 3, False, seed=8)
    X = (p.means[rng.integers(0, 3, 5000)] + rng.normal(size=(5000, 2))).astype(np.float32)
    p32 = GaussianParams(*(a.astype(np.float32) for a in (p.weights, p.means, p.covariances,
                                                             p.precisions_cholesky)))
    st_full = get_structure("full")
    fast = small.e_step(X, None, p32, st_full)
    assert fast is not None
    with monkeypatch.context() as m:
        m.setattr(small, "_kernels", None)
        general = em.e_step(X, None, p32, st_full)
    # the general path computes float32 blocks partly in float32: agreement to its precision
    np.testing.assert_allclose(fast.nk, general.nk, rtol=1e-5)
    np.testing.assert_allclose(fast.loglik, general.loglik, rtol=1e-6)
    np.testing.assert_allclose(fast.s2, general.s2, rtol=1e-4)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 300), D=st.integers(1, 9), split=st.floats(0.0, 1.0), mode_i=st.integers(0, 2),
       seed=st.integers(0, 2**16))
def test_statistics_add_over_any_split(n, D, split, mode_i, seed):
    mode = MODES[mode_i][1]
    rng = np.random.default_rng(seed)
    p = _params(D, 3, mode != 0, seed=seed)
    X = p.means[rng.integers(0, 3, n)] + rng.normal(size=(n, D))
    w = rng.uniform(0.1, 3.0, n)
    cut = int(split * n)
    whole = _call(X, w, p, mode)
    a, b = _call(X[:cut], w[:cut], p, mode), _call(X[cut:], w[cut:], p, mode)
    for i in (0, 1, 2, 3, 4, 5):
        np.testing.assert_allclose(whole[i], np.asarray(a[i]) + np.asarray(b[i]), rtol=1e-11,
                                   atol=1e-11 * (1 + np.max(np.abs(whole[i]))))
