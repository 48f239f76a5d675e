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
