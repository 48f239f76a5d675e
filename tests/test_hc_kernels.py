"""The compiled merge loop of mclust's hc tree (emix._hc_kernels, used by
mclust_hc.hc_pairs) against the numpy loop it replaces (_hc_pairs_numpy, itself
checked against mclust 6.0.0's hc() merges in tests/test_mclust_exact.py and
against a dense full scan in tests/test_mclust_hc_fast.py): the same merge
sequence, ties included."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mclust_data import load as _load

from emix.core import mclust_hc
from emix.core.mclust_hc import _hc_pairs_numpy, hc_pairs, svd_transform

pytestmark = pytest.mark.skipif(
    mclust_hc._hc_kernels is None,
    reason="emix._hc_kernels is not built (no C compiler at install): hc_pairs runs its numpy loop",
)


def _same(Z, model):
    got = hc_pairs(Z, model=model)
    want = _hc_pairs_numpy(Z, model=model)
    assert got.dtype == np.int64 and got.shape == (Z.shape[0] - 1, 2)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 60), p=st.integers(1, 5),
       kind=st.sampled_from(["normal", "one decimal", "integer", "duplicates"]),
       model=st.sampled_from(["VVV", "EII"]))
def test_same_merges_as_numpy(seed, n, p, kind, model):
    """Continuous data, data rounded to force exact ties in the costs, and
    data with duplicated rows (ties between identical clusters)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=2.0, size=(n, p))
    if kind == "one decimal":
        X = np.round(X, 1)
    elif kind == "integer":
        X = np.round(X)
    elif kind == "duplicates":
        X = X[rng.integers(0, max(1, n // 3), size=n)]
    _same(X, model)
    Z = svd_transform(X)
    if Z.shape[1] > 0 and np.all(np.isfinite(Z)):  # (constant or rank-deficient samples have none)
        _same(Z, model)


@pytest.mark.parametrize("name", ["faithful", "iris", "banknote", "thyroid"])
@pytest.mark.parametrize("model", ["VVV", "EII"])
def test_same_merges_on_the_mclust_data_sets(name, model):
    X = _load(name)
    _same(svd_transform(X), model)
    _same(X, model)


def test_larger_mixture_and_more_columns():
    """A 500-row, 7-column mixture (p >= 6 takes OpenBLAS's blocked LU kernels
    in numpy's slogdet; the merges must still agree)."""
    from emix.testing import make_mixture

    X, _, _ = make_mixture(n_samples=500, n_components=4, n_features=7, separation=3.0, random_state=3)
    _same(svd_transform(X), "VVV")


@pytest.mark.parametrize("n", [2, 3, 7])
def test_all_ties_follow_mclusts_rule(n):
    """Identical rows under Ward's criterion: every cost is 0, so every merge
    is a tie; the rule (largest j, then largest i) merges the last two
    clusters each time: (n-1, n), (n-2, n-1), ..., (1, 2)."""
    Z = np.ones((n, 3))
    want = np.array([(k, k + 1) for k in range(n - 1, 0, -1)], dtype=np.int64)
    np.testing.assert_array_equal(hc_pairs(Z, model="EII"), want)


def test_first_merge_is_the_closest_pair():
    """An independent check of the costs: the first merge joins the closest
    two rows (both criteria are increasing in their distance)."""
    rng = np.random.default_rng(7)
    Z = rng.normal(size=(40, 3))
    d = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=-1)
    d[np.tril_indices(40)] = np.inf
    a, b = np.unravel_index(np.argmin(d), d.shape)
    for model in ("VVV", "EII"):
        assert tuple(hc_pairs(Z, model=model)[0]) == (a + 1, b + 1)


def test_compiled_false_and_small_inputs():
    Z = np.random.default_rng(0).normal(size=(30, 2))
    np.testing.assert_array_equal(hc_pairs(Z, compiled=False), _hc_pairs_numpy(Z))
    assert hc_pairs(Z[:1]).shape == (0, 2)
    np.testing.assert_array_equal(hc_pairs(Z[:2]), [[1, 2]])
    # Fortran-ordered and non-contiguous input: the same merges
    np.testing.assert_array_equal(hc_pairs(np.asfortranarray(Z)), hc_pairs(Z))
    W = np.random.default_rng(1).normal(size=(30, 4))
    np.testing.assert_array_equal(hc_pairs(W[:, ::2]), _hc_pairs_numpy(np.ascontiguousarray(W[:, ::2])))


def test_bad_input_is_refused():
    Z = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="model must be"):
        hc_pairs(Z, model="VVI")
    bad = Z.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        hc_pairs(bad)
    with pytest.raises(ValueError, match="2-D"):
        hc_pairs(Z[:, 0])
    kern = mclust_hc._hc_kernels
    pairs = np.empty((9, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="expected 10 x 3"):
        kern.hc_pairs(Z, pairs, 10, 3, 0, 1.0, 1.0)
    with pytest.raises(ValueError, match="pairs holds"):
        kern.hc_pairs(Z, np.empty((8, 2), dtype=np.int64), 10, 2, 0, 1.0, 1.0)
    with pytest.raises(ValueError, match="model 0"):
        kern.hc_pairs(Z, pairs, 10, 2, 2, 1.0, 1.0)
    with pytest.raises(ValueError, match="finite and positive"):
        kern.hc_pairs(Z, pairs, 10, 2, 0, 1.0, -1.0)
    with pytest.raises(ValueError, match="not finite"):  # Ward costs that overflow
        kern.hc_pairs(np.array([[0.0], [1e300], [-1e300]]), np.empty((2, 2), dtype=np.int64), 3, 1, 1, 1.0, 1.0)
