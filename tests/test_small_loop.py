"""The compiled EM loop and M-steps of small fits (emix.core.small.em_loop,
m_step, loglik_and_entropy) against the numpy path (the compiled module
switched off), which is itself tested against scipy and scikit-learn
elsewhere; and the log-likelihood/ICL sums against scipy.stats directly."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from emix import GaussianMixture
from emix.core import em, small
from emix.core.mclust_hc import MclustFailure, mclust_em
from emix.core.types import SuffStats
from emix.datasets import load_faithful
from emix.exceptions import DegenerateComponentError
from emix.families.gaussian import get_structure

pytestmark = pytest.mark.skipif(not small.available(), reason="the optional C extension was not built")

MODELS = ["EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
          "full"]


@pytest.fixture
def numpy_only(monkeypatch):
    """A context in which every compiled path is off (the numpy loop runs)."""
    def off():
        monkeypatch.setattr(small, "_kernels", None)
    return off


def _data(seed=0, n=240, d=3, k=3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4, size=(k, d))
    scales = rng.uniform(0.5, 2.0, size=(k, d))
    lab = rng.integers(k, size=n)
    return centers[lab] + rng.normal(size=(n, d)) * scales[lab], rng


def _fit(X, w=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(**kw).fit(X, sample_weight=w)


def _close(a, b, rtol=1e-9):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        x, y = getattr(a, name), getattr(b, name)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.max(np.abs(y)), err_msg=name)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("weighted", [False, True])
def test_fit_equals_numpy_loop(model, weighted, numpy_only):
    X, rng = _data(1)
    w = rng.uniform(0.2, 3.0, X.shape[0]) if weighted else None
    kw = dict(n_components=3, covariance_type=model, random_state=0, max_iter=300, tol=1e-8)
    fast = _fit(X, w, **kw)
    numpy_only()
    slow = _fit(X, w, **kw)
    assert fast.n_iter_ == slow.n_iter_ and fast.converged_ == slow.converged_
    _close(fast, slow)
    np.testing.assert_allclose(fast.lower_bounds_, slow.lower_bounds_, rtol=1e-12)


@pytest.mark.parametrize("model", ["E", "V"])
def test_univariate_models(model, numpy_only):
    X = load_faithful()[0][:, :1]
    kw = dict(n_components=3, covariance_type=model, random_state=0, max_iter=200, tol=1e-8)
    fast = _fit(X, **kw)
    numpy_only()
    slow = _fit(X, **kw)
    assert fast.n_iter_ == slow.n_iter_
    _close(fast, slow)


@pytest.mark.parametrize("model", MODELS[:-1])
def test_mclust_me_equals_numpy_loop(model, numpy_only):
    """mclust's rule (relative tolerance, checks on every M-step): the same
    iterations, history and parameters as the numpy loop, or the same failure."""
    X = load_faithful()[0]
    structure = get_structure(model)
    lab = np.argsort(np.argsort(X[:, 0])) * 4 // X.shape[0]  # four groups along the first feature

    def run():
        try:
            return mclust_em(X, lab, structure)
        except MclustFailure as exc:
            return str(exc)

    fast = run()
    numpy_only()
    slow = run()
    if isinstance(slow, str):
        assert isinstance(fast, str)
        return
    assert fast.n_iter == slow.n_iter and fast.converged == slow.converged
    np.testing.assert_allclose(fast.history, slow.history, rtol=1e-12)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(fast.params, name), getattr(slow.params, name), rtol=1e-8,
                                   atol=1e-10)


def test_mclust_failure_is_the_same(numpy_only):
    """A component on a line under mclust's reg_covar=0: mclust's NA
    (singular covariance), from the compiled loop as from numpy."""
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(40, 2)), [[8.0, 8.0], [9.0, 9.0], [10.0, 10.0], [11.0, 11.0]]])
    lab = np.r_[np.zeros(40, int), np.ones(4, int)]
    with pytest.raises(MclustFailure, match="singular"):
        mclust_em(X, lab, get_structure("VVV"))
    numpy_only()
    with pytest.raises(MclustFailure, match="singular"):
        mclust_em(X, lab, get_structure("VVV"))


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), d=st.integers(1, 5), warm=st.booleans())
def test_m_step_equals_numpy(model, seed, k, d, warm):
    """One M-step from random statistics (random soft responsibilities),
    shifted at arbitrary centres: the compiled M-step equals the numpy one."""
    if model in ("EVE", "VVE", "VEE", "EEV", "VEV", "EVV", "EEE", "VVV", "full") and d == 1:
        d = 2
    X, rng = _data(seed, n=60, d=d, k=k)
    structure = get_structure(model)
    resp = rng.dirichlet(np.ones(k), size=X.shape[0])
    shift = X.mean(axis=0) + rng.normal(size=(k, d))
    stats = em.stats_from_resp(X, None, resp, shift, structure)
    prev = None
    if warm:
        prev = em.m_step(em.stats_from_resp(X, None, rng.dirichlet(np.ones(k), size=X.shape[0]), shift,
                                            structure), structure, 1e-6, np.float64)
    fast = em.m_step(stats, structure, 1e-6, np.float64, previous=prev)
    kernels, small._kernels = small._kernels, None
    try:
        slow = em.m_step(stats, structure, 1e-6, np.float64, previous=prev)
    finally:
        small._kernels = kernels
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        a, b = getattr(fast, name), getattr(slow, name)
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9 * np.max(np.abs(b)), err_msg=name)


def test_far_row_falls_back_to_numpy(numpy_only):
    """A row far from every component (the compiled E-step declines it): the
    loop hands over to numpy at that iteration; the fit is the numpy one."""
    X, _ = _data(2)
    X = np.vstack([X, [[1e5, -1e5, 1e5]]])
    kw = dict(n_components=3, covariance_type="VVV", random_state=0, max_iter=100, tol=1e-8)
    fast = _fit(X, **kw)
    numpy_only()
    slow = _fit(X, **kw)
    assert fast.n_iter_ == slow.n_iter_
    _close(fast, slow)


def test_degenerate_component_raises_as_numpy(numpy_only):
    """reg_covar=0 and a component holding two identical rows far from the
    rest: its covariance becomes exactly 0, DegenerateComponentError naming
    the same component from both paths."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(60, 2)), [[40.0, 40.0], [40.0, 40.0]]])
    structure = get_structure("VVV")
    resp = np.zeros((62, 2))
    resp[:60, 0] = 1
    resp[60:, 1] = 1
    stats = em.stats_from_resp(X, None, resp, np.zeros((2, 2)), structure)
    p0 = em.m_step(stats, structure, 1e-3, np.float64)
    from emix.backends.reduce import BlockReducer

    errors = []
    for off in (False, True):
        if off:
            numpy_only()
        with pytest.raises(DegenerateComponentError) as info:
            with np.errstate(all="ignore"):
                em.fit(BlockReducer(X), p0, structure, tol=1e-10, max_iter=50, reg_covar=0.0)
        errors.append(info.value.component)
    assert errors[0] == errors[1] == 1


@pytest.mark.parametrize("model", ["VVV", "VEI", "EEE", "full"])
@pytest.mark.parametrize("weighted", [False, True])
def test_loglik_and_entropy_against_scipy(model, weighted):
    X, rng = _data(4)
    w = rng.uniform(0.5, 2, X.shape[0]) if weighted else None
    gm = _fit(X, w, n_components=3, covariance_type=model, random_state=0)
    p = gm._params()
    logp = np.column_stack([np.log(p.weights[k]) + multivariate_normal(p.means[k], p.covariances[k]).logpdf(X)
                            for k in range(3)])
    norm = logsumexp(logp, axis=1)
    log_max = np.max(logp, axis=1) - norm
    ww = np.ones(X.shape[0]) if w is None else w
    ll, ent = small.loglik_and_entropy(X, w, p, get_structure(model))
    assert ll == pytest.approx(float(ww @ norm), rel=1e-12)
    assert ent == pytest.approx(float(ww @ log_max), rel=1e-10, abs=1e-10)


def test_callback_still_sees_every_iteration():
    """With a callback the numpy loop reports each iteration; the fit is the
    compiled loop's."""
    X, _ = _data(5)
    seen = []
    a = _fit(X, n_components=3, random_state=0, callback=lambda info: seen.append(info["n_iter"]))
    b = _fit(X, n_components=3, random_state=0)
    assert seen == list(range(1, a.n_iter_ + 1))
    assert a.n_iter_ == b.n_iter_
    _close(a, b)


@pytest.mark.parametrize("model", ["VVV", "VEI", "diag", "full", "E"])
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), weighted=st.booleans())
def test_stats_from_resp_equals_numpy(model, seed, k, weighted):
    """The compiled statistics of given responsibilities equal numpy's
    (expanded around the mean of the shifts) and a direct sum."""
    d = 1 if model == "E" else 3
    X, rng = _data(seed, n=50, d=d, k=k)
    structure = get_structure(model)
    resp = rng.dirichlet(np.ones(k), size=X.shape[0])
    resp[rng.random(X.shape[0]) < 0.3] = np.eye(k)[0]  # some hard rows (exact zeros)
    w = rng.uniform(0.1, 2, X.shape[0]) if weighted else None
    shift = X.mean(axis=0) + rng.normal(scale=3, size=(k, d))
    fast = em.stats_from_resp(X, w, resp, shift, structure)
    kernels, small._kernels = small._kernels, None
    try:
        slow = em.stats_from_resp(X, w, resp, shift, structure)
    finally:
        small._kernels = kernels
    ww = np.ones(X.shape[0]) if w is None else w
    for kk in range(k):
        z = X - shift[kk]
        r = resp[:, kk] * ww
        direct = (z * r[:, None]).T @ z
        got = fast.s2[kk] if fast.s2.ndim == 3 else np.diag(fast.s2[kk])
        want = direct if fast.s2.ndim == 3 else np.diag(np.diag(direct))
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    for name in ("nk", "s1", "s2"):
        np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=1e-9, atol=1e-9)
    assert fast.sum_w == pytest.approx(slow.sum_w, rel=1e-14)


@pytest.mark.parametrize("model", ["EVE", "VVE"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mclust_mm_first_step_equals_numpy(model, seed):
    """mclust's EVE/VVE M-step from a hard partition (the first M-step of
    mclust_em): the compiled step equals the numpy one, state included."""
    from emix.core import mclust_hc

    X, rng = _data(seed, n=120, d=4, k=3)
    lab = rng.integers(3, size=X.shape[0])
    structure = get_structure(model)
    resp = np.eye(3)[lab]
    stats = em.stats_from_resp(X, None, resp, np.broadcast_to(X.mean(0), (3, 4)).copy(), structure)
    state_c = mclust_hc._mm_state(structure, 3, 4)
    state_n = mclust_hc._mm_state(structure, 3, 4)
    fast = small.mm_m_step(stats, structure, state_c, np.finfo(float).eps)
    slow = mclust_hc._mm_params(stats, structure, state_n)
    assert fast is not None and fast is not False
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.abs(state_c[1]), np.abs(state_n[1]), atol=1e-8)  # axes up to sign
    np.testing.assert_allclose(state_c[2], state_n[2], rtol=1e-8)
