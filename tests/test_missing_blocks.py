"""The missing-value E-step works block by block: statistics of any split of
the rows into blocks (unsorted, runs of one pattern cut anywhere) add up to
those of the whole array, and the observed-data log-likelihood they carry is
scipy's marginal density over each row's observed coordinates. This is what
an out-of-core fit (a reducer calling ``step(X_block, w_block)``) relies on."""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from emix import GaussianMixture
from emix.core import missing as M
from emix.families.gaussian import get_structure


def _problem(seed, n=1200, d=6, k=3, frac=0.25):
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=3, size=(k, d))[rng.integers(k, size=n)] + rng.normal(size=(n, d))
    X[rng.random(X.shape) < frac] = np.nan
    X[5] = np.nan  # a row with nothing observed
    return X, rng


def _fitted(X, ct):
    gm = GaussianMixture(3, covariance_type=ct, max_iter=3, tol=0, missing="em", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    return gm


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("block", [1, 7, 64, 500])
def test_block_stats_add_up(ct, block):
    X, rng = _problem(0)
    w = rng.random(X.shape[0])
    gm = _fitted(X, ct)
    st, p = get_structure(ct), gm._params()
    whole = M.e_step(X, w, p, st)  # rows as they come, not sorted by pattern
    parts = [M.e_step(X[a:a + block], w[a:a + block], p, st) for a in range(0, X.shape[0], block)]
    total = parts[0]
    for s in parts[1:]:
        total = total + s
    for name in ("nk", "s1", "s2"):
        np.testing.assert_allclose(getattr(total, name), getattr(whole, name), rtol=1e-10, atol=1e-9)
    assert total.loglik == pytest.approx(whole.loglik, rel=1e-12)
    assert total.sum_w == pytest.approx(w.sum() - w[5], rel=1e-12)  # the empty row adds no weight


def test_block_loglik_is_scipy_marginal():
    X, rng = _problem(1, n=300)
    gm = _fitted(X, "full")
    st, p = get_structure("full"), gm._params()
    ref = 0.0
    for x in X:
        o = ~np.isnan(x)
        if not o.any():
            continue  # density 1 over no coordinates
        comp = [np.log(gm.weights_[k]) + multivariate_normal(gm.means_[k, o], gm.covariances_[k][np.ix_(o, o)])
                .logpdf(x[o]) for k in range(3)]
        ref += logsumexp(comp)
    got = sum(M.e_step(X[a:a + 13], None, p, st).loglik for a in range(0, X.shape[0], 13))
    assert got == pytest.approx(ref, rel=1e-10)
