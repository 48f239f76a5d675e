"""mclust's initialization and BIC table, exactly (``init_params='mclust'``).

Oracle: R 4.2.2 with mclust 6.0.0, the files ``tests/data/mclust_*.csv``
written by ``Rscript benchmarks/mclust_reference.R`` (see tests/data/README.md):

- ``mclust_hc_<data>.csv``: ``hc(X, modelName = "VVV", use = "SVD")``, the
  tree ``mclustBIC`` starts from; ``mclust_hcvars_<data>.csv``: ``hc(X)`` on
  the raw data;
- ``mclust_bic_<data>.csv``: ``mclustBIC(X, G = 1:9)`` with mclust's sign
  (higher is better), NA where mclust failed.

These tests need neither R nor a network.
"""

from pathlib import Path

import numpy as np
import pytest
from mclust_data import load as _load

import emix
from emix.core.mclust_hc import (
    hc_pairs,
    hclass,
    mclust_partitions,
    qclass,
    svd_transform,
)

DATA = Path(__file__).parent / "data"
#: Models whose mclust M-step is the MM iteration of Browne & McNicholas
#: (2014), with its own start and stopping; emix maximizes the same
#: conditional objective differently (plane rotations), so the EM paths and
#: the stopped iterates differ (docs/mclust.md). Compared only as a count.
MM_MODELS = ("EVE", "VVE")


def _merges(path):
    return np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64)


def _bic_table(name):
    """(models, (9, 14) array): mclust's BIC, NaN for NA."""
    with open(DATA / f"mclust_bic_{name}.csv") as f:
        header = f.readline().strip().split(",")[1:]
        vals = [[float("nan") if v.strip() == "NA" else float(v) for v in line.strip().split(",")[1:]]
                for line in f if line.strip()]
    return header, np.array(vals)


@pytest.mark.parametrize("name", ["faithful30", "faithful", "iris", "banknote", "thyroid"])
def test_hc_merge_sequence_equals_mclust(name):
    """Every merge of mclust's default tree (VVV criterion on SVD-transformed
    data), in order and with mclust's naming of the clusters."""
    X = _load(name)
    ref = _merges(DATA / f"mclust_hc_{name}.csv")
    got = hc_pairs(svd_transform(X))
    assert got.shape == ref.shape == (X.shape[0] - 1, 2)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name", ["faithful30", "banknote"])
def test_hc_on_raw_data_equals_mclust(name):
    """hc(X) on the raw data (use = "VARS"): the criterion alone, without
    the transformation. (On iris, thyroid and all of faithful the raw,
    rounded values give exactly tied merge costs, broken by the last bits
    of each program's arithmetic; see docs/mclust.md.)"""
    X = _load(name)
    np.testing.assert_array_equal(hc_pairs(X), _merges(DATA / f"mclust_hcvars_{name}.csv"))


def test_hclass_nested_partitions_match_merges():
    X = _load("faithful30")
    pairs = _merges(DATA / "mclust_hc_faithful30.csv")
    parts = hclass(pairs, 30, range(1, 31))
    for K in range(1, 31):
        lab = parts[K]
        assert sorted(np.unique(lab)) == list(range(K))
        assert lab[0] == 0  # numbered in order of first appearance (mclust's partconv)
        if K > 1:  # nested: K-1 groups are unions of the K groups
            coarse = parts[K - 1]
            assert all(np.unique(coarse[lab == g]).size == 1 for g in range(K))
    assert X.shape[0] == 30


def test_svd_transform_matches_definition():
    """Z = standardized X times V diag(1/sqrt(s)): Z^T Z = diag(s)."""
    X = _load("iris")
    Z = svd_transform(X)
    Xs = (X - X.mean(0)) / X.std(0, ddof=1)
    s = np.linalg.svd(Xs, compute_uv=False)
    np.testing.assert_allclose(Z.T @ Z, np.diag(s), atol=1e-10)
    # a constant column is dropped, not turned into NaN
    Xc = np.column_stack([X, np.ones(len(X))])
    np.testing.assert_allclose(np.abs(svd_transform(Xc)), np.abs(Z), atol=1e-10)


def test_merge_costs_against_direct_formula():
    """The merge chosen first is the pair of rows minimizing Fraley's
    regularized VVV increase, computed here directly from the formula."""
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(12, 3))
    n, p = Z.shape
    alpha = np.sum((Z - Z.mean(0)) ** 2) / (n * p)
    cost = {(i + 1, j + 1): 2 * np.log((0.5 * np.sum((Z[i] - Z[j]) ** 2) + alpha) / 2) - 2 * np.log(alpha)
            for i in range(n) for j in range(i + 1, n)}
    assert tuple(hc_pairs(Z)[0]) == min(cost, key=cost.get)


def test_qclass_quantile_classes():
    x = np.arange(10.0)
    np.testing.assert_array_equal(qclass(x, 2), [0] * 5 + [1] * 5)
    lab = qclass(np.r_[np.zeros(5), np.arange(1.0, 6.0)], 3)
    assert set(lab) == {0, 1, 2}


def test_subset_rule_for_large_n():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2100, 2))
    parts, rows = mclust_partitions(X, [3], np.random.RandomState(0), subset=100)
    assert rows.size == 100 and np.all(np.diff(rows) > 0)
    assert parts[3].shape == (100,)


def test_init_params_mclust_in_estimator():
    X = _load("faithful")
    gm = emix.GaussianMixture(3, covariance_type="EEE", init_params="mclust", reg_covar=0.0, tol=1e-8,
                              random_state=0).fit(X)
    assert abs(gm.score(X) * len(X) - (-1126.3159)) < 1e-3  # the EEE/3 optimum (test_mclust_reference)


@pytest.fixture(scope="module")
def tables():
    out = {}
    for name in ("faithful", "iris", "banknote", "thyroid"):
        models, ref = _bic_table(name)
        res = emix.select(_load(name), n_components=range(1, 10), covariance_types=models,
                          init_params="mclust", random_state=0)
        values = np.full((9, len(models)), np.nan)
        for r in res.rows:  # every cell with numbers: mclust has no singular-fit rule
            values[r["n_components"] - 1, models.index(r["covariance_type"])] = r["bic"]
        out[name] = (models, ref, -values)  # mclust's sign
    return out


#: Cells (outside EVE/VVE) within 1e-3 of mclustBIC where both have numbers,
#: out of the cells where both have numbers; the rest are within 1e-2
#: (K = 8, 9 fits near singularity with an iterative M-step: docs/mclust.md).
EXPECTED_EQUAL = {"faithful": (108, 108), "iris": (103, 103), "banknote": (101, 103), "thyroid": (103, 105)}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["faithful", "iris", "banknote", "thyroid"])
def test_bic_table_equals_mclustBIC(tables, name):
    """Cell by cell against mclustBIC, outside the two models whose M-step
    differs (EVE, VVE): within 1e-3 in all but the documented near-singular
    K = 8, 9 cells, which are within 1e-2; emix fails in at most one cell
    where mclust has a number; the best (K, model) is mclust's."""
    models, ref, got = tables[name]
    cols = [j for j, m in enumerate(models) if m not in MM_MODELS]
    r, g = ref[:, cols], got[:, cols]
    both = np.isfinite(r) & np.isfinite(g)
    diff = np.abs(g - r)[both]
    # at least the documented count within 1e-3 (near-singular cells move with rounding: a
    # change of eigen-solver brought banknote's K = 8 VEV from 1.2e-3 to within 1e-3)
    equal, total = EXPECTED_EQUAL[name]
    assert int(both.sum()) == total and int(np.sum(diff <= 1e-3)) >= equal
    assert np.all(diff <= 1e-2), np.max(diff)
    assert np.sum(np.isfinite(r) & ~np.isfinite(g)) <= 1
    # the best model and K agree (over the whole table)
    best = np.unravel_index(np.nanargmax(ref), ref.shape)
    assert np.unravel_index(np.nanargmax(got), got.shape) == best
