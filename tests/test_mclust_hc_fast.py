"""mclust_hc.hc_pairs keeps each row's least merge cost instead of scanning the
whole cost matrix per merge; its merge sequence must stay exactly that of
the full scan (itself checked against mclust's hc() on four data sets in
tests/test_mclust_exact.py), ties included."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from emix.core.mclust_hc import _RTHALF, _vvv_term, hc_pairs, svd_transform


def dense_hc_pairs(Z, model="VVV", alpha=1.0, beta=1.0):
    """The merge loop as it was before the row-minimum cache (a full scan of
    the cost matrix per merge), validated against mclust's hc() merges."""
    Z = np.asarray(Z, dtype=np.float64)
    n, p = Z.shape
    if model not in ("VVV", "EII"):
        raise ValueError(f"model must be 'VVV' or 'EII'. Got {model!r}.")
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    Zc = Z - Z.mean(axis=0)
    alpha = max(alpha * float(np.sum(Zc * Zc)) / (n * p), np.finfo(np.float64).eps)
    ablog = math.log(beta * alpha)
    size = np.ones(n)
    mean = Z.copy()
    W = np.zeros((n, p, p)) if model == "VVV" else None
    tr = np.zeros(n)
    term = np.full(n, ablog)
    name = np.arange(1, n + 1)
    D = np.full((n, n), np.inf)
    iu, ju = np.triu_indices(n, 1)
    if model == "VVV":
        # singleton pairs as mclust evaluates them: v = (z_i - z_j) / sqrt 2
        v = (Z[iu] - Z[ju]) * _RTHALF
        t = np.zeros(iu.size)
        for c in range(p):  # left-to-right sum, as ddot
            t = t + v[:, c] * v[:, c]
        D[iu, ju] = 2.0 * np.log(beta * (t + alpha) / 2.0) - (ablog + ablog)
    else:
        diff = Z[iu] - Z[ju]
        D[iu, ju] = 0.5 * np.einsum("ij,ij->i", diff, diff)
    del iu, ju
    pairs = np.empty((n - 1, 2), dtype=np.int64)
    lg = n
    for step in range(n - 1):
        sub = D[:lg, :lg]
        best = sub.min()
        ii, jj = np.nonzero(sub == best)
        k = np.lexsort((ii, jj))[-1]  # largest j, then largest i
        i, j = int(ii[k]), int(jj[k])
        a, b = name[i], name[j]
        pairs[step] = (min(a, b), max(a, b))
        if lg == 2:
            break
        # merge j into i
        ni, nj = size[i], size[j]
        nij = ni + nj
        d = mean[i] - mean[j]
        coef = ni * nj / nij
        tr[i] = (tr[i] + tr[j]) + coef * float(d @ d)
        if W is not None:
            W[i] = W[i] + W[j] + coef * np.outer(d, d)
        mean[i] = (ni * mean[i] + nj * mean[j]) / nij
        size[i] = nij
        name[i] = min(a, b)
        last = lg - 1
        if j != last:  # the last cluster moves into position j
            size[j], mean[j], tr[j], term[j], name[j] = size[last], mean[last], tr[last], term[last], name[last]
            if W is not None:
                W[j] = W[last]
            # pair (k, last) becomes pair (min(k, j), max(k, j))
            vals = D[:last, last].copy()
            D[:j, j] = vals[:j]
            D[j, j + 1:last] = vals[j + 1:]
        D[last, :] = np.inf
        D[:, last] = np.inf
        lg -= 1
        others = np.array([k for k in range(lg) if k != i], dtype=np.int64)
        if others.size == 0:
            continue
        if model == "VVV":
            term[i] = _vvv_term(np.array([size[i]]), W[i : i + 1], np.array([tr[i]]), p, alpha, beta)[0]
            m = size[i] + size[others]
            dd = mean[others] - mean[i]
            c = size[i] * size[others] / m
            trij = (tr[i] + tr[others]) + c * np.einsum("ij,ij->i", dd, dd)
            Wij = W[i] + W[others] + c[:, None, None] * (dd[:, :, None] * dd[:, None, :])
            cost = _vvv_term(m, Wij, trij, p, alpha, beta) - (term[i] + term[others])
        else:
            dd = mean[others] - mean[i]
            cost = (size[i] * size[others] / (size[i] + size[others])) * np.einsum("ij,ij->i", dd, dd)
        lo = others[others < i]
        hi = others[others > i]
        D[lo, i] = cost[others < i]
        D[i, hi] = cost[others > i]
    return pairs


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 90), p=st.integers(1, 4),
       decimals=st.sampled_from([None, 1, 0]), model=st.sampled_from(["VVV", "EII"]))
def test_same_merges_as_the_full_scan(seed, n, p, decimals, model):
    """Random data, rounded to force exact ties in the costs."""
    X = np.random.default_rng(seed).normal(scale=2.0, size=(n, p))
    if decimals is not None:
        X = np.round(X, decimals)
    for Z in (svd_transform(X), X):
        if Z.shape[1] == 0:  # every column constant: the transform keeps none (hc_pairs refuses it)
            continue
        np.testing.assert_array_equal(hc_pairs(Z, model=model), dense_hc_pairs(Z, model=model))


def test_same_merges_on_a_larger_mixture():
    from emix.testing import make_mixture

    X, _, _ = make_mixture(n_samples=400, n_components=4, n_features=3, separation=3.0, random_state=1)
    Z = svd_transform(X)
    np.testing.assert_array_equal(hc_pairs(Z), dense_hc_pairs(Z))


def test_constant_columns_still_give_mclust_starts():
    # the SVD transform keeps no column of constant data; mclust_partitions must
    # still give a partition per K (all rows alike: any tree will do) rather than
    # an error about the transformed array
    from emix.core.mclust_hc import mclust_partitions

    parts, rows = mclust_partitions(np.ones((12, 3)), [1, 2, 3])
    assert sorted(parts) == [1, 2, 3]
    for K, lab in parts.items():
        assert lab.shape == (12,) and sorted(set(lab.tolist())) == list(range(K))
    np.testing.assert_array_equal(rows, np.arange(12))
