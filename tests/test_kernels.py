"""The fused per-block kernels (E-step + additive statistics) against a direct
oracle: scipy.stats densities for the responsibilities and explicit
``sum_n r_nk w_n (x_n - mu_k)(x_n - mu_k)^T`` for the statistics.

The kernels expand Mahalanobis terms and scatters around a common center (one
GEMM over a transposed design matrix); components far from that center
relative to their own spread are recomputed with direct differences. The
"far and narrow" cases below need that fallback: the last test shows they fail
without it, so the fallback is exercised, not assumed.
"""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from emix.core.types import GaussianParams
from emix.families.gaussian import _gram, diag, get_structure


def _oracle(X, w, params, covariance_type):
    X = np.asarray(X, dtype=np.float64)
    K, D = params.means.shape
    # the densities the kernel is asked for: those of the precision factors it
    # is given (for float32 parameters these differ from the float32
    # covariances by rounding)
    U = np.asarray(params.precisions_cholesky, dtype=np.float64)
    if covariance_type == "full":
        full = np.linalg.inv(U @ U.transpose(0, 2, 1))
    else:
        full = np.stack([np.diag(1.0 / u**2) for u in U])
    lp = np.column_stack(
        [multivariate_normal(params.means[k].astype(np.float64), full[k]).logpdf(X) for k in range(K)]
    ).reshape(len(X), K) + np.log(params.weights.astype(np.float64))
    norm = logsumexp(lp, axis=1)
    w = np.ones(len(X)) if w is None else np.asarray(w, dtype=np.float64)
    R = np.exp(lp - norm[:, None]) * w[:, None]
    nk = R.sum(axis=0)
    Z = X[None, :, :] - params.means.astype(np.float64)[:, None, :]  # (K, n, D)
    s1 = np.einsum("nk,knd->kd", R, Z)
    s2 = np.einsum("nk,kni,knj->kij", R, Z, Z)
    if covariance_type == "diag":
        s2 = np.diagonal(s2, axis1=1, axis2=2)
    # the size of the summed terms: the scale that rounding errors relate to
    # (s1 itself nearly cancels when mu_k is close to the weighted mean)
    a = np.abs(Z)
    scales = (np.einsum("nk,knd->k", R, a), np.einsum("nk,knd,knd->k", R, a, a))
    return float(norm @ w), nk, s1, s2, scales


def _params(covariance_type, means, sds, rng, dtype=np.float64):
    K, D = means.shape
    weights = rng.dirichlet(np.full(K, 3.0))
    if covariance_type == "full":
        cov = []
        for s in sds:
            A = rng.normal(size=(D, D))
            Q, _ = np.linalg.qr(A)
            cov.append((Q * (s * rng.uniform(0.5, 1.5, size=D)) ** 2) @ Q.T)
        cov = np.array(cov)
    else:
        cov = np.array([(s * rng.uniform(0.5, 1.5, size=D)) ** 2 for s in sds])
    st = get_structure(covariance_type)
    return GaussianParams(
        weights=weights.astype(dtype), means=means.astype(dtype), covariances=cov.astype(dtype),
        precisions_cholesky=st.prec_chol_from_cov(cov.astype(dtype)),
    )


def _far_and_narrow(covariance_type, D, rng, dtype=np.float64):
    """One broad component near the origin, one narrow one 1e3 away: the
    expansion around the common center loses ~(1e3 / 1e-3)^2 eps there."""
    means = np.zeros((3, D))
    means[1] = 1e3
    means[2] = -1.0
    params = _params(covariance_type, means, [1.0, 1e-3, 2.0], rng, dtype)
    X = np.vstack([
        rng.normal(size=(300, D)),
        1e3 + 1e-3 * rng.normal(size=(200, D)),
        -1.0 + 2.0 * rng.normal(size=(100, D)),
    ]).astype(dtype)
    return X, params


def _check(stats, ref, rtol):
    loglik, nk, s1, s2, scales = ref
    assert stats.loglik == pytest.approx(loglik, rel=rtol)
    np.testing.assert_allclose(stats.nk, nk, rtol=rtol, atol=rtol * nk.max())
    # s1, s2 are sums around the shift, which is params.means here
    for got, want, scale in ((stats.s1, s1, scales[0]), (stats.s2, s2, scales[1])):
        scale = scale + 1e-300
        err = np.abs(got - want).reshape(len(want), -1).max(axis=1)
        assert np.all(err <= rtol * scale), (err / scale).max()


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("D,K", [(1, 3), (2, 8), (5, 4), (10, 5)])
@pytest.mark.parametrize("weighted", [False, True])
def test_fused_stats_match_oracle(covariance_type, D, K, weighted):
    rng = np.random.default_rng(100 * D + K)
    means = rng.normal(scale=3.0, size=(K, D)) + 50.0
    params = _params(covariance_type, means, rng.uniform(0.5, 2.0, size=K), rng)
    X = means[rng.integers(K, size=700)] + rng.normal(scale=1.5, size=(700, D))
    w = rng.uniform(0.0, 3.0, size=len(X)) if weighted else None
    stats = get_structure(covariance_type).suff_stats(X, w, params)
    _check(stats, _oracle(X, w, params, covariance_type), 1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("D", [1, 3, 6])
def test_far_and_narrow_components_are_exact(covariance_type, D):
    rng = np.random.default_rng(D)
    X, params = _far_and_narrow(covariance_type, D, rng)
    stats = get_structure(covariance_type).suff_stats(X, None, params)
    _check(stats, _oracle(X, None, params, covariance_type), 1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_float32_blocks_accumulate_in_float64(covariance_type):
    rng = np.random.default_rng(5)
    X, params = _far_and_narrow(covariance_type, 3, rng, np.float32)
    stats = get_structure(covariance_type).suff_stats(X, None, params)
    assert stats.nk.dtype == np.float64 and stats.s2.dtype == np.float64
    # the oracle sees the very same float32 numbers, widened
    _check(stats, _oracle(X, None, params, covariance_type), 1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_without_the_fallback_the_far_case_would_be_wrong(covariance_type, monkeypatch):
    """Disable the direct recomputation: the same case is then far off, so the
    previous test passes because the fallback runs."""
    rng = np.random.default_rng(3)
    X, params = _far_and_narrow(covariance_type, 3, rng)
    monkeypatch.setattr(_gram, "TOL", np.inf)
    monkeypatch.setattr(diag, "_TOL", np.inf)
    stats = get_structure(covariance_type).suff_stats(X, None, params)
    _, nk, s1, s2, _ = _oracle(X, None, params, covariance_type)
    rel = np.abs(stats.s2[1] - s2[1]).max() / np.abs(s2[1]).max()
    assert rel > 1e-6


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_log_prob_far_and_narrow_matches_scipy(covariance_type):
    rng = np.random.default_rng(11)
    X, params = _far_and_narrow(covariance_type, 4, rng)
    st = get_structure(covariance_type)
    got = st.log_prob(X, params.means, params.precisions_cholesky)
    cov = params.covariances if covariance_type == "full" else [np.diag(c) for c in params.covariances]
    want = np.column_stack([multivariate_normal(m, c).logpdf(X) for m, c in zip(params.means, cov)])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_block_sums_equal_whole(covariance_type):
    """Split-then-sum: statistics of blocks add up to the statistics of the whole."""
    rng = np.random.default_rng(8)
    X, params = _far_and_narrow(covariance_type, 2, rng)
    st = get_structure(covariance_type)
    whole = st.suff_stats(X, None, params)
    parts = [st.suff_stats(X[i : i + 97], None, params) for i in range(0, len(X), 97)]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    np.testing.assert_allclose(total.nk, whole.nk, rtol=1e-12)
    np.testing.assert_allclose(total.s1, whole.s1, rtol=1e-9, atol=1e-9 * np.abs(whole.s1).max())
    # the expansion's error is bounded relative to the scatter's scale (TOL = 1e-9)
    np.testing.assert_allclose(total.s2, whole.s2, rtol=1e-9, atol=1e-9 * np.abs(whole.s2).max())
    assert total.loglik == pytest.approx(whole.loglik, rel=1e-12)


def test_resp_from_logp_matches_scipy_softmax():
    from scipy.special import softmax

    from emix.core.numerics import resp_from_logp_T

    rng = np.random.default_rng(2)
    lp = rng.normal(scale=30.0, size=(4, 50)) - 700.0  # exp underflows without the max shift
    lp[2, 5] = -np.inf  # a zero-weight component for one row
    lp[:, 7] = -np.inf  # a row no component gives density
    w = rng.uniform(0.0, 2.0, size=50)
    with np.errstate(divide="ignore", invalid="ignore"):  # the all -inf row
        want_R = np.nan_to_num(softmax(lp, axis=0)) * w
        norm = logsumexp(lp, axis=0)
    R, loglik, sum_w = resp_from_logp_T(lp.copy(), w)
    np.testing.assert_allclose(R, want_R, rtol=1e-13, atol=1e-300)
    assert np.all(R[:, 7] == 0.0)
    assert loglik == -np.inf and sum_w == pytest.approx(w.sum())
    keep = np.isfinite(norm)
    R2, loglik2, n = resp_from_logp_T(lp[:, keep].copy())
    assert loglik2 == pytest.approx(norm[keep].sum(), rel=1e-14) and n == keep.sum()
    np.testing.assert_allclose(R2.sum(axis=0), 1.0, rtol=1e-14)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(
    covariance_type=st.sampled_from(["full", "diag"]),
    D=st.integers(1, 6),
    K=st.integers(1, 6),
    offset=st.sampled_from([0.0, 1e2, 1e4]),
    log_separation=st.floats(0.0, 3.0),
    log_spread=st.floats(-4.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_fused_stats_match_oracle_property(covariance_type, D, K, offset, log_separation, log_spread, seed):
    """Any small shape, common offset and component spread (relative to the
    distances between components): the fused kernel equals the direct oracle to
    1e-8 of the summed terms' size, and its statistics are invariant to a
    permutation of the rows."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=10.0**log_separation, size=(K, D)) + offset
    sds = 10.0 ** (log_spread + rng.uniform(-0.5, 0.5, size=K))
    params = _params(covariance_type, means, sds, rng)
    z = rng.integers(K, size=300)
    X = means[z] + sds[z, None] * rng.normal(size=(300, D))
    w = rng.uniform(0.0, 2.0, size=300)
    structure = get_structure(covariance_type)
    stats = structure.suff_stats(X, w, params)
    ref = _oracle(X, w, params, covariance_type)
    if not np.isfinite(ref[0]):  # every density underflowed for some row: nothing to compare
        return
    _check(stats, ref, 1e-8)
    perm = rng.permutation(len(X))
    shuffled = structure.suff_stats(X[perm], w[perm], params)
    np.testing.assert_allclose(shuffled.nk, stats.nk, rtol=1e-12, atol=1e-12 * stats.nk.max())
    assert shuffled.loglik == pytest.approx(stats.loglik, rel=1e-12, abs=1e-9)
