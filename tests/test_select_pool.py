"""select's thread pool for small compiled grids (emix.selection._pool_threads):
the same table as one thread, cell for cell and bit for bit, and nothing of
the pool (warnings filters, BLAS limits) left behind."""

import warnings

import numpy as np
import pytest

import emix
from emix import selection
from emix.core import small
from emix.datasets import load_faithful

pytestmark = pytest.mark.skipif(not small.available(), reason="the optional C extension was not built")

KEYS = ("n_components", "covariance_type", "log_likelihood", "bic", "icl", "aic", "converged", "n_iter",
        "singular", "error", "start")


def _rows(res):
    return [tuple(r.get(k) for k in KEYS) for r in res.rows]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x[:2] == y[:2]
        for u, v in zip(x[2:], y[2:]):
            assert (u == v) or (isinstance(u, float) and np.isnan(u) and np.isnan(v)), (x, y)


@pytest.mark.parametrize("init", [None, "mclust", "hierarchical"])
def test_pooled_table_equals_one_thread(init):
    X = load_faithful()[0]
    kw = {} if init is None else {"init_params": init}
    one = emix.select(X, n_components=range(1, 6), random_state=0, n_threads=1, **kw)
    many = emix.select(X, n_components=range(1, 6), random_state=0, n_threads=3, **kw)
    _same(_rows(one), _rows(many))
    np.testing.assert_array_equal(one.best_.means_, many.best_.means_)
    assert one.best_params_ == many.best_params_


def test_pool_leaves_warnings_and_blas_as_they_were():
    from threadpoolctl import threadpool_info

    X = load_faithful()[0]
    before_filters = list(warnings.filters)
    before_blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    cells = []
    res = emix.select(X, n_components=range(1, 4), random_state=0, n_threads=2, cell_callback=cells.append)
    assert list(warnings.filters) == before_filters
    after_blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    assert after_blas == before_blas
    assert sorted(c["done"] for c in cells) == list(range(1, len(res.rows) + 1))
    with pytest.warns(UserWarning, match="still seen"):  # warnings are not left switched off
        warnings.warn("still seen", UserWarning)


def test_which_grids_are_pooled():
    X = load_faithful()[0]
    kw = dict(init_params="hierarchical", tol=1e-5, max_iter=1000)
    assert selection._pool_threads(X, [1, 2], ["VVV", "EII"], 1, kw, None, True, 2) == 2
    assert selection._pool_threads(X, [1, 2], ["VVV", "tied"], 1, kw, None, True, 2) == 0  # not compiled
    assert selection._pool_threads(X, [1, 2], ["VVV"], 1, dict(kw, prior="default"), None, True, 2) == 0
    assert selection._pool_threads(X, [1, 2], ["VVV"], 2, kw, None, True, 2) == 0  # restarts
    assert selection._pool_threads(X.astype(np.float32), [1, 2], ["VVV"], 1, kw, None, True, 2) == 0
    Xn = X.copy()
    Xn[0, 0] = np.nan
    assert selection._pool_threads(Xn, [1, 2], ["VVV"], 1, kw, None, True, 2) == 0
    assert selection._pool_threads(X, [1, 2], ["VVV"], 1, dict(kw, n_threads=1), None, True, None) == 1
