"""mclust's own EVE/VVE M-step (Browne & McNicholas 2014's MM iterations,
``emix.families.gaussian.mclust._mm``) and the EVE/VVE cells of
``init_params="mclust"`` against mclust 6.0.0.

Oracles: R 4.2.2 + mclust 6.0.0 (``mstep`` numbers committed below, the
``tests/data/mclust_bic_*.csv`` tables of ``benchmarks/mclust_reference.R``);
the expected complete-data log-likelihood ``Q`` computed directly with numpy.
No R needed.
"""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mclust_data import load as _load

import emix
from emix.core import small
from emix.core.mclust_hc import MclustFailure, mclust_em, mclust_partitions
from emix.families.gaussian import get_structure
from emix.families.gaussian.mclust._mm import MMSingular, initial_state, mm_m_step

DATA = Path(__file__).parent / "data"

# R 4.2.2, mclust 6.0.0:
#   X <- as.matrix(iris[, 1:4]); z <- 0.7 * unmap(as.integer(iris$Species)) + 0.1
#   ms <- mstep(modelName = m, data = X, z = z)        # m = "EVE", "VVE"
#   attr(ms, "info")[1]; v <- ms$parameters$variance
#   sprintf("%.15g", v$scale); sprintf("%.15g", t(v$shape)); sprintf("%.15g", aperm(v$sigma, c(3, 1, 2)))
# (column-major flattening: reshape with order="F" to (K, d) and (K, d, d))
R_MSTEP = {
    "EVE": {
        "n_iter": 33,
        "scale": [0.168022427699962],
        "shape": [1.64693003433433, 1.4396517001812, 1.01063048713954, 0.112372262064404, 0.120683225647052,
               0.172403048471626, 18.6058209386462, 11.0711326135059, 11.8974519641522, 0.290413559593065,
               0.519880589891748, 0.482401560378863],
        "sigma": [0.624948592918995, 0.424636436558507, 0.416268001493347, 0.04688675291038, 0.0416971343836123,
               0.00691263975629643, 1.01110046782282, 0.585914291597705, 0.641786504183085, 0.405972174472513,
               0.221495362052204, 0.248796190755289, 0.04688675291038, 0.0416971343836123, 0.00691263975629643,
               0.178932912547373, 0.171242629898067, 0.130497255158317, -0.171586514268037,
               -0.109002363148625, -0.102848963031602, -0.063331269478127, -0.0272604791649,
               -0.0285047527930543, 1.01110046782282, 0.585914291597705, 0.641786504183085,
               -0.171586514268037, -0.109002363148625, -0.102848963031602, 2.26222848374599,
               1.35244837265154, 1.45068360321959, 0.922759144963968, 0.550622901337458, 0.586496198642379,
               0.405972174472513, 0.221495362052204, 0.248796190755289, -0.063331269478127, -0.0272604791649,
               -0.0285047527930543, 0.922759144963968, 0.550622901337458, 0.586496198642379,
               0.404483448468609, 0.26139400109178, 0.281420350594241]},
    "VVE": {
        "n_iter": 33,
        "scale": [0.147604069083862, 0.141947573865181, 0.214515640150844],
        "shape": [1.64693003433432, 1.4396517001812, 1.01063048713954, 0.112372262064405, 0.120683225647053,
               0.172403048471627, 18.6058209386461, 11.0711326135059, 11.8974519641522, 0.290413559593064,
               0.519880589891747, 0.482401560378862],
        "sigma": [0.549003823750241, 0.358738489672765, 0.531452842558101, 0.0411889984595389,
               0.0352262917748897, 0.0088254250504111, 0.888229894938473, 0.49498815916257, 0.819374203013244,
               0.356637775725818, 0.187122217528269, 0.31764017969236, 0.0411889984595389,
               0.0352262917748897, 0.0088254250504111, 0.157188694072326, 0.14466804336222, 0.166606938201147,
               -0.15073504205703, -0.092086641089058, -0.131308132167759, -0.0556351506354302,
               -0.0230300141048415, -0.036392256536506, 0.888229894938473, 0.49498815916257,
               0.819374203013244, -0.15073504205703, -0.092086641089058, -0.131308132167759,
               1.98731880005087, 1.14256631036548, 1.85209990154817, 0.810623953275121, 0.465173524923878,
               0.748784607031569, 0.356637775725818, 0.187122217528269, 0.31764017969236,
               -0.0556351506354302, -0.0230300141048415, -0.036392256536506, 0.810623953275121,
               0.465173524923878, 0.748784607031569, 0.355329962126554, 0.220829116599527, 0.359291717692591]},
}


def _iris_scatter():
    from sklearn.datasets import load_iris

    X = load_iris().data
    z = 0.7 * np.eye(3)[load_iris().target] + 0.1
    nk = z.sum(axis=0)
    mu = z.T @ X / nk[:, None]
    W = np.stack([(X - mu[k]).T @ ((X - mu[k]) * z[:, k, None]) for k in range(3)])
    return W, nk


def _q(W, nk, cov):
    """The covariance part of Q: -1/2 sum_k [n_k log|S_k| + tr(W_k S_k^-1)]."""
    logdet = np.linalg.slogdet(cov)[1]
    return -0.5 * float(nk @ logdet + np.trace(np.linalg.solve(cov, W), axis1=1, axis2=2).sum())


@pytest.mark.parametrize("model", ["EVE", "VVE"])
def test_mstep_equals_mclust(model):
    """From mclust's start (D = I, shapes one): mclust's iteration count,
    volumes, shapes and covariances (mstepEVE/mstepVVE, numbers above)."""
    W, nk = _iris_scatter()
    ref = R_MSTEP[model]
    res = mm_m_step(W, nk, model, *initial_state(3, 4))
    assert res.n_iter == ref["n_iter"]
    np.testing.assert_allclose(res.scale, np.broadcast_to(ref["scale"], (3,)), rtol=1e-10)
    np.testing.assert_allclose(res.shape, np.reshape(ref["shape"], (3, 4), order="F"), rtol=1e-9)
    np.testing.assert_allclose(res.cov, np.reshape(ref["sigma"], (3, 4, 4), order="F"), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(res.orientation.T @ res.orientation, np.eye(4), atol=1e-12)


def _random_problem(seed):
    rng = np.random.default_rng(seed)
    K, d = int(rng.integers(2, 5)), int(rng.integers(2, 6))
    nk = rng.uniform(5.0, 50.0, K)
    W = []
    for n in nk:
        A = rng.normal(size=(d, d + 3)) * rng.uniform(0.2, 3.0, size=(d, 1))
        W.append(A @ A.T * n / d)
    return np.stack(W), nk


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_eve_inner_iterations_never_decrease_q(seed):
    """EVE: every MM iteration (an MM step on D, then the exact shapes and
    volume given D) leaves Q at least where it was, from mclust's start and
    from the state each iteration hands on."""
    W, nk = _random_problem(seed)
    D, a = initial_state(*W.shape[:2])
    qs = []
    for _ in range(15):
        res = mm_m_step(W, nk, "EVE", D, a, max_iter=1)
        qs.append(_q(W, nk, res.cov))
        D, a = res.orientation, res.shape
    assert np.all(np.diff(qs) >= -1e-9 * abs(qs[0]))
    # the whole M-step (mclust's stopping rule) ends at least where its first iteration did
    assert _q(W, nk, mm_m_step(W, nk, "EVE", *initial_state(*W.shape[:2])).cov) >= qs[0] - 1e-9 * abs(qs[0])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_vve_inner_iterations_never_increase_mclust_target(seed):
    """VVE: mclust's MM steps majorize sum_k tr(W_k D A_k^-1 D^T), without
    the volumes that weigh it in Q; that target never increases."""
    W, nk = _random_problem(seed)
    D, a = initial_state(*W.shape[:2])
    prev = np.inf
    for _ in range(15):
        res = mm_m_step(W, nk, "VVE", D, a, max_iter=1)
        D, a = res.orientation, res.shape
        t = float(np.sum(np.einsum("ij,kil,lj->kj", D, W, D) / a))
        assert t <= prev + 1e-9 * abs(t)
        prev = t


def test_vve_mm_step_is_not_a_q_maximizer():
    """The documented caveat: mclust's VVE iteration can lower Q (the
    volumes are left out of its orientation step), so emix's own VVE M-step,
    which never lowers Q, may end higher. Found on a fixed random problem."""
    drops = 0
    for seed in range(40):
        W, nk = _random_problem(seed)
        D, a = initial_state(*W.shape[:2])
        qs = []
        for _ in range(15):
            res = mm_m_step(W, nk, "VVE", D, a, max_iter=1)
            qs.append(_q(W, nk, res.cov))
            D, a = res.orientation, res.shape
        drops += bool(np.any(np.diff(qs) < -1e-6 * abs(qs[0])))
    assert drops > 0


def test_mstep_failures_are_mclusts():
    """A scatter matrix with an eigenvalue below sqrt(eps) (mclust's absolute
    test) fails; a bad model name is a clear ValueError."""
    W, nk = _iris_scatter()
    Ws = W.copy()
    Ws[1] = np.diag([1.0, 1.0, 1.0, 0.0])
    with pytest.raises(MMSingular, match="eigenvalue"):
        mm_m_step(Ws, nk, "EVE", *initial_state(3, 4))
    with pytest.raises(ValueError, match="'EVE' or 'VVE'"):
        mm_m_step(W, nk, "VEV", *initial_state(3, 4))
    with pytest.raises(ValueError, match="orientation must be"):
        mm_m_step(W, nk, "EVE", np.eye(3), np.ones((3, 4)))


@pytest.mark.parametrize("model", ["EVE", "VVE"])
@pytest.mark.parametrize("K", [3, 6])
def test_compiled_mm_loop_equals_numpy(model, K, monkeypatch):
    """mclust_em's compiled loop (the MM M-step in C) follows the numpy MM
    path: same iterations, history to rounding, same parameters."""
    from sklearn.datasets import load_iris

    X = load_iris().data
    lab = mclust_partitions(X, [K])[0][K]
    fast = mclust_em(X, lab, get_structure(model))
    monkeypatch.setattr(small, "_kernels", None)
    slow = mclust_em(X, lab, get_structure(model))
    assert fast.n_iter == slow.n_iter and fast.converged == slow.converged
    np.testing.assert_allclose(fast.history, slow.history, rtol=1e-11)
    np.testing.assert_allclose(fast.params.covariances, slow.params.covariances, rtol=1e-7, atol=1e-10)


def _bic_columns(name, models):
    with open(DATA / f"mclust_bic_{name}.csv") as f:
        header = f.readline().strip().split(",")[1:]
        vals = np.array([[float("nan") if v.strip() == "NA" else float(v) for v in line.strip().split(",")[1:]]
                         for line in f if line.strip()])
    return vals[:, [header.index(m) for m in models]]


@pytest.mark.parametrize("name", ["faithful", "iris", "banknote", "thyroid"])
def test_eve_vve_cells_equal_mclustBIC(name):
    """With init_params="mclust", every EVE/VVE cell of mclustBIC's table
    (mclust 6.0.0) is matched within 1e-3 in BIC, and emix fails (no number)
    exactly where mclust reports NA."""
    models = ["EVE", "VVE"]
    ref = _bic_columns(name, models)
    res = emix.select(_load(name), n_components=range(1, 10), covariance_types=models,
                      init_params="mclust", random_state=0)
    got = np.full(ref.shape, np.nan)
    for r in res.rows:
        got[r["n_components"] - 1, models.index(r["covariance_type"])] = -r["bic"]  # mclust's sign
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref))
    both = np.isfinite(ref)
    assert np.max(np.abs(got - ref)[both]) <= 1e-3


def test_mclust_em_mm_failure_is_mclust_na():
    """Fewer rows than features in a component: W_k is singular, mclust's
    EVE/VVE report NA, and so does mclust_em."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(30, 3)), rng.normal(size=(2, 3)) + 10.0])
    lab = np.r_[np.zeros(30, int), np.ones(2, int)]
    for model in ("EVE", "VVE"):
        with pytest.raises(MclustFailure, match="singular"):
            mclust_em(X, lab, get_structure(model))


@pytest.mark.skipif(not small.available(), reason="the compiled module is not built (no C compiler)")
@pytest.mark.parametrize("model", ["EVE", "VVE"])
@pytest.mark.parametrize("d", [3, 5])
def test_compiled_mm_step_with_a_rank_deficient_polar_factor(model, d):
    """Components sharing their orientation and the order of their shapes
    make the second MM step's matrix lose a column (every component's largest
    inverse shape sits in the same direction): its polar factor is of rank
    d - 1. The compiled step completes the missing column itself (either sign
    flips one column of the orientation, which changes no covariance) where
    the numpy step calls LAPACK's SVD: the same covariances, volumes and
    shapes, with the orientation equal up to the signs of its columns."""
    from emix.core.types import SuffStats
    from emix.families.gaussian.mclust._mm import mm_m_step

    rng = np.random.default_rng(d)
    R = np.linalg.qr(rng.normal(size=(d, d)))[0]
    base = np.linspace(1.0, 9.0, d)  # every component: smallest shape first
    nk = np.array([30.0, 45.0, 60.0])
    W = np.stack([n * (R * (base * s)) @ R.T for n, s in zip(nk, (1.0, 1.7, 0.6))])
    W += np.stack([n * 0.05 * np.diag(rng.uniform(0.5, 1.0, d)) for n in nk])  # not exactly shared
    D0, a0 = np.eye(d), np.ones((3, d))
    ref = mm_m_step(W, nk, model, D0, a0)
    state = [model, D0.copy(), a0.copy()]
    stats = SuffStats(nk=nk, s1=np.zeros((3, d)), s2=W.copy(), shift=np.zeros((3, d)), loglik=0.0,
                      sum_w=float(nk.sum()))
    got = small.mm_m_step(stats, get_structure(model), state, np.finfo(np.float64).eps)
    assert got is not None and got is not False
    np.testing.assert_allclose(got.covariances, ref.cov, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(state[2], ref.shape, rtol=1e-8)
    np.testing.assert_allclose(np.abs(state[1]), np.abs(ref.orientation), atol=1e-7)
