"""select's parallel cells: the work split, the serial fallback, results equal to serial.

No timing is asserted: the fallback is tested through the decision function
with given costs, the scheduling through its outcome.
"""

import os

import numpy as np
import pytest

import emix
from emix import _parallel
from emix.datasets import load_faithful


# ------------------------------------------------------------ the decision
def test_tiny_grid_falls_back_to_serial():
    # 126 cells of 5 ms each: 0.63 s of work, below a 2 s start-up
    assert _parallel.plan_workers([0.005] * 126, n_jobs=2, start_cost=2.0) == 0
    # the same cells once workers already run (start-up ~0): parallel
    assert _parallel.plan_workers([0.005] * 126, n_jobs=2, start_cost=0.02) == 1


def test_work_above_start_cost_uses_n_jobs_minus_one_workers():
    # this process is one of the n_jobs: 4 jobs, 3 workers
    assert _parallel.plan_workers([0.5] * 20, n_jobs=4, start_cost=2.0) == 3
    # never more workers than cells but one (this process takes a cell too)
    assert _parallel.plan_workers([5.0, 5.0], n_jobs=8, start_cost=1.0) == 1


@pytest.mark.parametrize("costs, n_jobs", [([100.0], 4), ([1.0] * 10, 1), ([1.0] * 10, None)])
def test_no_worker_for_one_cell_or_one_job(costs, n_jobs):
    assert _parallel.plan_workers(costs, n_jobs=n_jobs or 1, start_cost=0.0) == 0


def test_boundary_total_equal_to_start_cost_is_serial():
    # with w workers ready after s, the grid ends at (W + w s) / (w + 1) >= W iff W <= s
    assert _parallel.plan_workers([1.0, 1.0], n_jobs=2, start_cost=2.0) == 0
    assert _parallel.plan_workers([1.0, 1.0 + 1e-9], n_jobs=2, start_cost=2.0) == 1


def test_start_cost_warm_and_cold(monkeypatch):
    monkeypatch.setattr(_parallel, "_measured_start_s", None)
    monkeypatch.setattr(_parallel, "_running_workers", lambda: 0)
    assert _parallel.start_cost(1) == _parallel._COLD_START_S
    monkeypatch.setattr(_parallel, "_measured_start_s", 3.5)
    assert _parallel.start_cost(1) == 3.5  # measured in this process beats the default
    monkeypatch.setattr(_parallel, "_running_workers", lambda: 2)
    assert _parallel.start_cost(2) == _parallel._WARM_START_S
    assert _parallel.start_cost(3) == 3.5  # a third worker must still start


def test_cell_cost_orders_cells_by_k_and_model():
    c = _parallel.cell_cost
    assert c(1000, 5, 4, "VVV") > c(1000, 5, 4, "VVI") > c(1000, 5, 2, "VVI")
    assert c(1000, 5, 4, "VVI") == c(1000, 5, 4, "EII")  # both O(d) per row and component
    assert c(1000, 5, 4, "VVV", n_fits=2) == pytest.approx(2 * c(1000, 5, 4, "VVV"))
    assert c(4000, 5, 4, "VVV") > c(1000, 5, 4, "VVV")


def test_select_on_small_data_makes_no_worker(monkeypatch):
    """Old Faithful's 3 x 2 grid is estimated far below a start-up: the
    scheduler is never asked for workers."""
    X, _ = load_faithful()
    seen = []
    real = _parallel.run_cells
    monkeypatch.setattr(_parallel, "_running_workers", lambda: 0)
    monkeypatch.setattr(_parallel, "run_cells", lambda *a, **k: seen.append(k["n_workers"]) or real(*a, **k))
    emix.select(X, n_components=range(1, 4), covariance_types=["EII", "tied"], random_state=0, n_jobs=2)
    assert seen == [0]


def test_select_on_small_compiled_grid_uses_threads_not_workers(monkeypatch):
    """A grid of small compiled fits (mclust's models) runs its cells on a
    thread pool (emix.selection._pool_threads): no worker process at all."""
    from emix import selection

    X, _ = load_faithful()
    seen, pooled = [], []
    real_pool = selection._run_pooled
    monkeypatch.setattr(_parallel, "run_cells", lambda *a, **k: seen.append(k["n_workers"]))
    monkeypatch.setattr(selection, "_run_pooled", lambda *a: pooled.append(a[2]) or real_pool(*a))
    emix.select(X, n_components=range(1, 4), covariance_types=["EII", "VVV"], random_state=0, n_jobs=2)
    assert seen == [] and pooled == [2]


# ------------------------------------------------------- the scheduling
def _wait_for(path, i):
    """Cheap task of this process: waits until a worker has written ``path``."""
    import time

    for _ in range(1200):
        if os.path.exists(path):
            return i, os.getpid()
        time.sleep(0.05)
    raise AssertionError("no worker ran a task within 60 s")


def _write(path, i):
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    return i, os.getpid()


def test_workers_take_the_expensive_end_and_results_keep_task_order(tmp_path):
    path = str(tmp_path / "done")
    # task 0 (cheapest) is this process's first; it only returns once a worker
    # has run a costly task, so the run ends only if both sides work
    tasks = [(_wait_for, path, 0)] + [(_write, path, i) for i in range(1, 6)]
    costs = [0.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    order = []
    out = _parallel.run_cells(_parallel.call, tasks, costs, n_jobs=2, n_workers=1,
                              on_done=lambda i, res: order.append(i))
    assert [i for i, _ in out] == list(range(6))
    assert sorted(order) == list(range(6))
    pids = {pid for _, pid in out}
    assert os.getpid() in pids and len(pids) == 2
    assert out[0][1] == os.getpid() and out[1][1] != os.getpid()  # the costliest went to the worker


def _die_in_worker(parent, i):
    if os.getpid() != parent:
        os._exit(3)  # a killed worker, not a failed cell
    return i


def test_a_dead_worker_costs_no_cell(tmp_path):
    parent = os.getpid()
    tasks = [(_die_in_worker, parent, i) for i in range(4)]
    out = _parallel.run_cells(_parallel.call, tasks, [1.0] * 4, n_jobs=2, n_workers=1)
    assert out == [0, 1, 2, 3]


# ------------------------------------------------- equal to serial
@pytest.fixture
def force_workers(monkeypatch):
    """Workers whatever the estimate (the grids here are small)."""
    monkeypatch.setattr(_parallel, "plan_workers",
                        lambda costs, n_jobs, start_cost: min(int(n_jobs) - 1, len(costs) - 1))


def test_parallel_grid_equals_serial(force_workers):
    X, _ = load_faithful()
    grid = dict(n_components=range(1, 5), covariance_types=["EII", "VEV", "EEE", "VVV"], random_state=3)
    serial = emix.select(X, **grid)
    calls = []
    par = emix.select(X, n_jobs=2, cell_callback=calls.append, **grid)
    assert par.rows == serial.rows  # bit for bit: every number, start and reason
    assert par.best_params_ == serial.best_params_
    np.testing.assert_array_equal(par.best_.means_, serial.best_.means_)
    assert sorted(c["done"] for c in calls) == list(range(1, 17))
    assert {(c["row"]["n_components"], c["row"]["covariance_type"]) for c in calls} == {
        (r["n_components"], r["covariance_type"]) for r in serial.rows}


def test_parallel_family_grid_equals_serial(force_workers):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.poisson(2, (150, 3)), rng.poisson(9, (150, 3))])
    serial = emix.select(X, n_components=range(1, 4), family="poisson", random_state=0)
    par = emix.select(X, n_components=range(1, 4), family="poisson", random_state=0, n_jobs=2)
    assert par.rows == serial.rows
    assert par.best_params_ == serial.best_params_


def test_another_joblib_backend_is_respected(monkeypatch):
    """Under parallel_config('threading') the cells go to joblib.Parallel
    (threads: no process of emix's own), with the same rows."""
    from joblib import parallel_config

    X, _ = load_faithful()
    monkeypatch.setattr(_parallel, "run_cells", lambda *a, **k: pytest.fail("emix's scheduler was used"))
    grid = dict(n_components=range(1, 3), covariance_types=["EII", "VVV"], random_state=0)
    with parallel_config(backend="threading"):
        par = emix.select(X, n_jobs=2, **grid)
    monkeypatch.undo()
    assert par.rows == emix.select(X, **grid).rows
