"""The common-orientation M-step of EVE and VVE (``_eigen.common_orientation``):
exact plane rotations, the round-robin sweep, the warm start from the
previous parameters, and monotone EM on the data where the cold start went
down (wine, K = 5, hierarchical start)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.datasets import load_wine

import emix
from emix.core import em
from emix.families.gaussian import get_structure
from emix.families.gaussian.mclust import EVE, VVE, _eigen


def _scatters(seed, K=4, d=5, n=40):
    rng = np.random.default_rng(seed)
    W = []
    for _ in range(K):
        Z = rng.normal(size=(n, d)) * rng.uniform(0.1, 10.0, size=d)
        W.append(Z.T @ Z)
    return np.array(W), np.full(K, float(n))


def _f(W, D, inv_shape):
    """sum_k tr(W_k D N_k D^T), N_k = diag(inv_shape[k])."""
    return float(sum(np.trace(Wk @ (D * nk) @ D.T) for Wk, nk in zip(W, inv_shape)))


def _minus_2q(covs, W, nk):
    """-2 Q (covariance part): sum_k n_k log|Sigma_k| + tr(W_k Sigma_k^-1)."""
    return float(sum(n * np.linalg.slogdet(S)[1] + np.trace(np.linalg.solve(S, Wk))
                     for S, Wk, n in zip(covs, W, nk)))


def _random_rotation(rng, d):
    Q, R = np.linalg.qr(rng.normal(size=(d, d)))
    return Q * np.sign(np.diag(R))


@pytest.mark.parametrize("d", [2, 3, 4, 5, 8, 13])
def test_round_robin_covers_every_pair_once_in_disjoint_rounds(d):
    rounds = _eigen.round_robin(d)
    pairs = [tuple(p) for r in rounds for p in r]
    assert sorted(pairs) == list(itertools.combinations(range(d), 2))
    for r in rounds:
        assert len(set(r.ravel())) == r.size  # no column twice in a round
    assert len(rounds) == (d - 1 if d % 2 == 0 else d)


@pytest.mark.parametrize("seed", range(5))
def test_plane_rotation_is_the_exact_minimizer_along_its_plane(seed):
    """d = 2: one sweep is one rotation; a fine grid of angles (the oracle)
    finds nothing lower."""
    rng = np.random.default_rng(seed)
    W, _ = _scatters(seed, K=3, d=2)
    inv = rng.uniform(0.2, 5.0, size=(3, 2))
    D0 = _random_rotation(rng, 2)
    got = _f(W, _eigen.orientation_sweep(W, D0, inv), inv)
    t = np.linspace(0.0, np.pi, 200001)
    R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]).transpose(2, 0, 1)
    Dt = D0 @ R  # (T, 2, 2): every rotation of the plane
    vals = np.einsum("tam,kab,tbm,km->t", Dt, W, Dt, inv)
    assert got <= vals.min() + 1e-9 * abs(vals.min())
    assert got >= vals.min() - 1e-8 * abs(vals.min())  # the grid is fine enough to come close


@pytest.mark.parametrize("seed", range(5))
def test_sweep_keeps_d_orthogonal_and_never_increases_f(seed):
    rng = np.random.default_rng(seed)
    W, _ = _scatters(seed, K=4, d=7)
    inv = rng.uniform(0.2, 5.0, size=(4, 7))
    D = _random_rotation(rng, 7)
    f = _f(W, D, inv)
    for _ in range(5):
        D = _eigen.orientation_sweep(W, D, inv)
        np.testing.assert_allclose(D.T @ D, np.eye(7), atol=1e-12)
        f_new = _f(W, D, inv)
        assert f_new <= f * (1 + 1e-13)
        f = f_new


def test_sweep_leaves_a_common_eigenbasis_alone():
    """W_k = D diag(w_k) D^T with N_k ordered like w_k: D is optimal (rearrangement inequality)."""
    rng = np.random.default_rng(3)
    D = _random_rotation(rng, 5)
    w = np.sort(rng.uniform(1.0, 10.0, size=(3, 5)), axis=1)
    W = (D * w[:, None, :]) @ D.T
    inv = 1.0 / w  # decreasing where w increases
    out = _eigen.orientation_sweep(W, D, inv)
    np.testing.assert_allclose(np.abs(out.T @ D), np.eye(5), atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_orientation_of_reads_d_back(seed):
    rng = np.random.default_rng(seed)
    D = _random_rotation(rng, 6)
    C = rng.uniform(0.1, 10.0, size=(3, 6))
    cov = (D * C[:, None, :]) @ D.T
    got = _eigen.orientation_of(cov)
    # the same columns up to order and sign: got^T D is a signed permutation
    P = np.abs(got.T @ D)
    np.testing.assert_allclose(np.sort(P, axis=1)[:, -1], 1.0, atol=1e-10)
    np.testing.assert_allclose((got * np.diagonal(got.T @ cov @ got, axis1=1, axis2=2)[:, None, :]) @ got.T,
                               cov, rtol=1e-10, atol=1e-10)


def test_orientation_of_refuses_covariances_without_a_common_orientation():
    rng = np.random.default_rng(0)
    cov = np.array([A @ A.T + np.eye(4) for A in rng.normal(size=(3, 4, 4))])
    assert _eigen.orientation_of(cov) is None


@pytest.mark.parametrize("structure", [EVE, VVE])
@pytest.mark.parametrize("seed", range(4))
def test_warm_m_step_never_decreases_q(structure, seed):
    """From any parameters of the model, the warm M-step (one cycle) gives a
    Q at least as large (-2Q computed independently with slogdet/solve)."""
    rng = np.random.default_rng(seed)
    W, nk = _scatters(seed, K=3, d=5)
    D = _random_rotation(rng, 5)
    C = rng.uniform(0.5, 50.0, size=(3, 5))
    if structure is EVE:  # equal volume: |C_k| the same for every k
        C = C / np.exp(np.log(C).mean(axis=1, keepdims=True)) * 7.0
    previous = (D * C[:, None, :]) @ D.T
    new = structure.solve(W, nk, previous=previous)
    assert _minus_2q(new, W, nk) <= _minus_2q(previous, W, nk) - 1e-9 * abs(_minus_2q(previous, W, nk))


def _wine(standardize):
    X = load_wine().data
    return (X - X.mean(axis=0)) / X.std(axis=0) if standardize else X


@pytest.mark.filterwarnings("ignore:The fit is singular")  # K = 5 on 178 rows: a tiny component
@pytest.mark.parametrize("model", ["EVE", "VVE"])
@pytest.mark.parametrize("standardize", [False, True])
def test_wine_k5_em_is_monotone(model, standardize):
    """The issue's cells: the cold-started orientation step (500 inner sweeps
    from the pooled eigenvectors every iteration) went down by 8e-2 per row
    on raw wine EVE; warm-started EM never goes down."""
    gm = emix.GaussianMixture(5, covariance_type=model, init_params="hierarchical", tol=0.0,
                              max_iter=60)
    with pytest.warns(emix.ConvergenceWarning):
        gm.fit(_wine(standardize))
    lb = np.asarray(gm.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:])), np.diff(lb).min()


@pytest.mark.filterwarnings("ignore:The fit is singular")
@pytest.mark.parametrize("model", ["EVE", "VVE"])
def test_one_sweep_per_em_iteration(model, monkeypatch):
    """What makes an iteration cheap: one sweep per M-step inside EM (the
    initial M-step, from no previous parameters, runs to convergence)."""
    calls = []
    sweep = _eigen.orientation_sweep
    monkeypatch.setattr(_eigen, "orientation_sweep", lambda *a: calls.append(1) or sweep(*a))
    # counted on the numpy M-step: the compiled one (emix.core.small) runs the
    # same cycles and is checked equal to it in tests/test_small_loop.py
    from emix.core import small

    monkeypatch.setattr(small, "_kernels", None)
    gm = emix.GaussianMixture(5, covariance_type=model, init_params="hierarchical", tol=0.0,
                              max_iter=30)
    with pytest.warns(emix.ConvergenceWarning):
        gm.fit(_wine(True))
    init = len(calls) - 30 * _eigen.WARM_CYCLES
    assert 0 <= init <= _eigen.INNER_MAX_ITER


@pytest.mark.parametrize("model", ["EVE", "VVE"])
def test_m_step_from_previous_parameters_does_not_lower_the_likelihood(model):
    """em.m_step(previous=...) (the warm path): the log-likelihood of its
    parameters is at least that of the parameters it started from."""
    X = _wine(True)
    structure = get_structure(model)
    with pytest.warns(emix.ConvergenceWarning):
        gm = emix.GaussianMixture(3, covariance_type=model, random_state=0, max_iter=5, tol=0.0).fit(X)
    p = gm._params()
    for _ in range(5):
        stats = em.e_step(X, None, p, structure)
        p = em.m_step(stats, structure, gm.reg_covar, X.dtype, previous=p)
        after = em.e_step(X, None, p, structure).loglik
        assert after >= stats.loglik - 1e-9 * abs(stats.loglik)
