"""emix._singular decides most regular fits from a bound on the precision
factors (no eigen-decomposition); the verdict must be the eigenvalues' one,
for regular, floor-collapsed and numerically singular components."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from emix._singular import covariance_reason


def _problem(seed, K, D, scale_exp):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=5, size=(K, D))
    covs = []
    for _ in range(K):
        A = rng.normal(size=(D, D))
        w = np.exp(rng.uniform(-3, 2, size=D))
        w[0] = 10.0 ** scale_exp  # the smallest eigenvalue: regular down to collapsed
        Q, _ = np.linalg.qr(A)
        covs.append((Q * w) @ Q.T)
    cov = np.array(covs)
    cov = 0.5 * (cov + cov.transpose(0, 2, 1))
    U = np.linalg.cholesky(np.linalg.inv(cov)[:, ::-1, ::-1])[:, ::-1, ::-1]  # upper, U U^T = P
    return rng.dirichlet(np.ones(K)), means, cov, U


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), K=st.integers(1, 5), D=st.integers(1, 5),
       scale_exp=st.sampled_from([1, -1, -3, -5, -7, -9, -11, -13]), reg=st.sampled_from([0.0, 1e-6, 1e-3]))
def test_bound_gives_the_eigenvalues_verdict(seed, K, D, scale_exp, reg):
    pi, mu, cov, U = _problem(seed, K, D, scale_exp)
    np.testing.assert_allclose(U @ U.transpose(0, 2, 1), np.linalg.inv(cov), rtol=1e-6, atol=1e-8 * np.abs(
        np.linalg.inv(cov)).max())
    for ct in ("full", "VVV"):
        with_bound = covariance_reason(pi, mu, cov, ct, reg, precisions_cholesky=U)
        eigen_only = covariance_reason(pi, mu, cov, ct, reg)
        assert (with_bound is None) == (eigen_only is None), (with_bound, eigen_only)
        if eigen_only is not None:
            assert with_bound == eigen_only
