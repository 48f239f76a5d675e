"""SQUAREM acceleration (accelerate='squarem'): same optimum as plain EM,
monotone accepted log-likelihoods, safeguarded extrapolation."""

import numpy as np
import pytest

import emix
from emix.backends import BlockReducer
from emix.core import accel, em
from emix.families.gaussian import get_structure
from emix.testing import make_mixture


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "VEV", "EEI"])
def test_squarem_reaches_the_plain_em_optimum(covariance_type):
    X, _, _ = make_mixture(600, 3, 3, separation=2.5, random_state=1)
    kw = dict(covariance_type=covariance_type, tol=1e-10, max_iter=3000, reg_covar=0.0, random_state=0)
    plain = emix.GaussianMixture(3, **kw).fit(X)
    fast = emix.GaussianMixture(3, accelerate="squarem", **kw).fit(X)
    assert fast.converged_
    # both converge to a stationary point of the same likelihood from the same start
    assert fast.lower_bound_ >= plain.lower_bound_ - 1e-7
    np.testing.assert_allclose(fast.score(X), plain.score(X), atol=1e-6)
    # the accepted points never lose likelihood (reg_covar = 0: exact EM steps)
    assert np.all(np.diff(fast.lower_bounds_) >= -1e-10 * abs(fast.lower_bound_))


def test_squarem_takes_fewer_steps_on_a_slow_problem():
    # heavily overlapping components: plain EM crawls along a ridge
    X, _, _ = make_mixture(2000, 3, 2, separation=1.0, random_state=3)
    kw = dict(tol=1e-8, max_iter=5000, reg_covar=0.0, random_state=0, covariance_type="diag")
    plain = emix.GaussianMixture(3, **kw).fit(X)
    fast = emix.GaussianMixture(3, accelerate="squarem", **kw).fit(X)
    assert fast.n_iter_ < plain.n_iter_
    assert fast.lower_bound_ >= plain.lower_bound_ - 1e-6


def test_safeguard_rejects_a_bad_extrapolation(monkeypatch):
    """An extrapolation that lowers the likelihood falls back to the EM iterate."""
    X, _, _ = make_mixture(300, 2, 2, random_state=0)
    structure = get_structure("full")
    p0 = emix.GaussianMixture(2, max_iter=0, random_state=0).fit(X)._params()
    real = accel.from_vector

    def wild(theta, template, structure, matrix):  # push the means far away
        p = real(theta, template, structure, matrix)
        return p.replace(means=p.means + 50.0)

    monkeypatch.setattr(accel, "from_vector", wild)
    res = accel.fit_squarem(BlockReducer(X), p0, structure, tol=1e-9, max_iter=200, reg_covar=1e-6)
    ref = em.fit(BlockReducer(X), p0, structure, tol=1e-9, max_iter=200, reg_covar=1e-6)
    assert np.all(np.diff(res.history) >= -1e-9)
    assert res.lower_bound == pytest.approx(ref.lower_bound, abs=1e-6)


def test_accelerate_is_validated_and_saved(tmp_path):
    X, _, _ = make_mixture(100, 2, 2, random_state=0)
    with pytest.raises(ValueError, match="accelerate must be None or 'squarem'. Got 'fast'"):
        emix.GaussianMixture(2, accelerate="fast").fit(X)
    gm = emix.GaussianMixture(2, accelerate="squarem", random_state=0).fit(X)
    emix.save(gm, tmp_path / "m.emix")
    assert emix.load(tmp_path / "m.emix").accelerate == "squarem"


# --- the adaptive step scheme (step_max from 1, x4 on a full step, /4 on a rejection) ---

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from emix.exceptions import DegenerateComponentError  # noqa: E402


class CountingReducer:
    """A BlockReducer that counts its passes over the data (one per E-step)."""

    def __init__(self, X):
        self.inner = BlockReducer(X)
        self.calls = 0

    def __call__(self, step):
        self.calls += 1
        return self.inner(step)


def _start(X, K, covariance_type, init="random_from_data", seed=0):
    return emix.GaussianMixture(K, covariance_type=covariance_type, init_params=init, max_iter=0,
                                random_state=seed).fit(X)._params()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), K=st.integers(1, 4), D=st.integers(1, 3),
       covariance_type=st.sampled_from(["full", "tied", "diag", "spherical"]),
       separation=st.floats(0.5, 4.0), init=st.sampled_from(["kmeans", "random_from_data"]))
def test_step_scheme_never_lowers_the_likelihood(seed, K, D, covariance_type, separation, init):
    X, _, _ = make_mixture(150, max(K, 1), D, separation=separation, random_state=seed)
    structure = get_structure(covariance_type)
    p0 = _start(X, K, covariance_type, init, seed)
    reduce = CountingReducer(X)
    try:
        res = accel.fit_squarem(reduce, p0, structure, tol=1e-9, max_iter=300, reg_covar=0.0)
    except DegenerateComponentError:  # plain EM collapses a component too at reg_covar = 0
        return
    h = np.asarray(res.history)
    # exact EM steps (reg_covar = 0): every accepted point is at least as likely as the one before
    assert np.all(np.diff(h) >= -1e-10 * max(1.0, abs(h[-1])))
    # every E-step + M-step evaluation is counted, rejected extrapolations included
    assert res.n_iter == reduce.calls


def test_n_iter_counts_every_evaluation_including_rejections(monkeypatch):
    X, _, _ = make_mixture(2000, 3, 2, separation=1.0, random_state=3)
    structure = get_structure("diag")
    p0 = _start(X, 3, "diag")
    calls = []
    reduce = CountingReducer(X)
    res = accel.fit_squarem(reduce, p0, structure, tol=1e-8, max_iter=5000, reg_covar=0.0,
                            callback=lambda n, lb, ch: calls.append(n))
    assert res.n_iter == reduce.calls
    assert calls == sorted(set(calls)) and calls[-1] == res.n_iter
    # extrapolations happened: some evaluations were not recorded as EM-step points
    assert len(res.history) < res.n_iter
    # with every extrapolation rejected, the cost is still counted
    real = accel.from_vector

    def wild(theta, template, structure, matrix):
        p = real(theta, template, structure, matrix)
        return p.replace(means=p.means + 50.0)

    monkeypatch.setattr(accel, "from_vector", wild)
    reduce = CountingReducer(X)
    res = accel.fit_squarem(reduce, p0, structure, tol=1e-8, max_iter=5000, reg_covar=0.0)
    assert res.n_iter == reduce.calls
    ref = em.fit(BlockReducer(X), p0, structure, tol=1e-8, max_iter=5000, reg_covar=0.0)
    assert res.lower_bound == pytest.approx(ref.lower_bound, abs=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_first_cycle_is_plain_em(n):
    """step_max starts at 1, so the first cycle is two plain EM steps (no
    extrapolation, no extra evaluation): the first steps are EM's, bit for bit."""
    X, _, _ = make_mixture(400, 3, 2, separation=1.5, random_state=2)
    structure = get_structure("full")
    p0 = _start(X, 3, "full")
    a = accel.fit_squarem(BlockReducer(X), p0, structure, tol=0.0, max_iter=n, reg_covar=1e-6)
    b = em.fit(BlockReducer(X), p0, structure, tol=0.0, max_iter=n, reg_covar=1e-6)
    assert a.n_iter == b.n_iter == n
    assert a.history == b.history
    np.testing.assert_array_equal(a.params.means, b.params.means)


def test_stops_with_plain_em_on_a_fast_problem():
    # EM converges in a few steps: SQUAREM's stopping rule is EM's, so it stops with it
    X, _, _ = make_mixture(500, 2, 2, separation=8.0, random_state=0)
    structure = get_structure("full")
    p0 = _start(X, 2, "full", init="kmeans")
    a = accel.fit_squarem(BlockReducer(X), p0, structure, tol=1e-3, max_iter=100, reg_covar=1e-6)
    b = em.fit(BlockReducer(X), p0, structure, tol=1e-3, max_iter=100, reg_covar=1e-6)
    assert b.n_iter <= 3 and a.n_iter == b.n_iter and a.converged


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_tight_optimum_agrees_with_plain_em(covariance_type):
    """On a well-separated problem both run to tol 1e-10 end at the same optimum,
    SQUAREM with fewer evaluations."""
    X, _, _ = make_mixture(1500, 3, 2, separation=3.0, random_state=5)
    structure = get_structure(covariance_type)
    p0 = _start(X, 3, covariance_type)
    kw = dict(tol=1e-10, max_iter=20000, reg_covar=1e-6)
    ref = em.fit(BlockReducer(X), p0, structure, **kw)
    res = accel.fit_squarem(BlockReducer(X), p0, structure, **kw)
    assert ref.converged and res.converged
    assert res.lower_bound == pytest.approx(ref.lower_bound, abs=1e-8)
    order = np.argsort(ref.params.means[:, 0])
    np.testing.assert_allclose(res.params.means[np.argsort(res.params.means[:, 0])], ref.params.means[order],
                               atol=1e-3)  # a change below 1e-10 in L still leaves ~1e-4 in the means
    assert res.n_iter <= ref.n_iter
