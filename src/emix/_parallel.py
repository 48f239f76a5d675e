"""Restarts in parallel: ``GaussianMixture(n_jobs=...)``.

The estimator computes every restart's initial parameters first, in the
calling thread (so the random state is consumed exactly as in a sequential
fit), then runs the restarts' EM loops with :func:`em_restart` in joblib
workers (processes by default) and replays, in restart order, what each
restart would have reported: the callback's calls, the verbose lines and its
warnings. The EM loop draws no random numbers and sums its blocks in a fixed
order, so every restart ends bit for bit where it ends sequentially.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import os
import time
import warnings

from threadpoolctl import ThreadpoolController

from .backends.reduce import available_cores
from .exceptions import DegenerateComponentError


#: At most this many threads over blocks of rows in any fit of this context
#: (None: no cap); see :func:`block_threads_cap`.
_BLOCK_THREADS_CAP = contextvars.ContextVar("emix_block_threads_cap", default=None)


@contextlib.contextmanager
def block_threads_cap(n_threads):
    """Fits inside run at most ``n_threads`` threads over blocks of rows (None:
    no cap), for callers that are themselves one of several parallel workers
    (``emix.select``'s cells). Only the pool shrinks: the blocks, and so the
    results, stay those of the uncapped fit."""
    token = _BLOCK_THREADS_CAP.set(None if n_threads is None else max(1, int(n_threads)))
    try:
        yield
    finally:
        _BLOCK_THREADS_CAP.reset(token)


def capped_block_threads(n_threads):
    """``n_threads`` under the cap of :func:`block_threads_cap`, if any."""
    cap = _BLOCK_THREADS_CAP.get()
    return n_threads if cap is None else min(n_threads, cap)


def effective_n_jobs(n_jobs):
    """Workers asked for: None means 1, -1 every core, -k every core but k - 1
    (joblib's convention). ``n_jobs`` is assumed validated (an int, not 0)."""
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, available_cores() + 1 + int(n_jobs))
    return int(n_jobs)


def em_restart(run, reducer, n_threads, params0, structure, options, record, parent_pid):
    """One restart's EM loop, in a worker.

    ``run`` is :func:`emix.core.em.fit` or :func:`emix.core.accel.fit_squarem`
    with keyword ``options``; ``reducer`` a :class:`BlockReducer`, used with
    ``n_threads`` threads over its blocks (same blocks, so the same sums).
    With ``record``, the ``(n_iter, lower_bound, change, time)`` of every
    iteration are kept for the caller to replay.

    Returns ``(result, t_start, events, caught)``: the ``FitResult`` or the
    ``DegenerateComponentError`` that ended the restart, the wall-clock time
    it started, the recorded iterations (None without ``record``) and, in a
    worker process, the warnings it raised as ``(category, message,
    filename, lineno)`` (a worker thread's warnings go out directly).
    """
    if os.getpid() == parent_pid:  # a thread of the caller, whose BLAS is already limited
        return (*_em_restart(run, reducer, n_threads, params0, structure, options, record), [])
    with one_blas_thread(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _em_restart(run, reducer, n_threads, params0, structure, options, record)
    return (*out, [(w.category, str(w.message), w.filename, w.lineno) for w in caught])


_controller = None


def _blas_controller():
    """This process's threadpoolctl controller, made once: ``threadpool_limits``
    looks up the loaded libraries anew on every call (~3-4 ms, as much as a
    short restart's EM loop; 0.01 ms through the controller)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller


def one_blas_thread():
    """Context: BLAS held to one thread (every fit, restart and grid cell)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def _em_restart(run, reducer, n_threads, params0, structure, options, record):
    if reducer.n_threads != n_threads:
        reducer = copy.copy(reducer)
        reducer.n_threads = n_threads
    events = [] if record else None

    def callback(n_iter, lower_bound, change):
        if events is not None:
            events.append((n_iter, lower_bound, change, time.time()))

    t_start = time.time()
    try:
        result = run(reducer, params0, structure, callback=callback if record else None, **options)
    except DegenerateComponentError as exc:
        result = exc
    return result, t_start, events


# ------------------------------------------------------------------ grid cells
# emix.select fits a grid of independent cells. Worker processes cost seconds
# to start (a fresh interpreter imports numpy, scipy, scikit-learn and emix:
# 1.3 s of CPU here, 2-6 s of wall time on a loaded machine) while a small
# grid's cells take milliseconds (iris: 126 cells in 1.7 s), so handing the
# whole grid to fresh workers made ``select(iris, n_jobs=2)`` slower than
# serial (4.2-4.8 s against 1.7 s; 34-37 s against 19 s in issue 11).
# :func:`run_cells` therefore (1) lets the calling process fit cells itself
# from the start, cheapest first, so it progresses exactly as a serial run
# does, (2) hands cells, most expensive first, to a worker only once that
# worker has answered (so no cell waits behind a worker's start-up) and
# (3) starts no worker at all when the estimated work is below the cost of
# starting one (:func:`plan_workers`). Every cell is the same function of its
# own arguments wherever it runs, so results equal the serial ones.

#: Rough seconds per component per fit of one EM run: the per-iteration
#: Python overhead (fitted on iris and Old Faithful: 1.5 ms) plus a cost per
#: row x component x covariance size (35 ns, fitted on 5000 x 5 synthetic
#: data); measured on 2 cores of a loaded machine. Only the ratio of the
#: estimated work to the start-up cost matters, within a factor of ~2.
_S_PER_COMPONENT = 1.5e-3
_S_PER_ELEMENT = 35e-9
#: Seconds to start worker processes before any has been started in this
#: process (then the measured time is used), and to reach already running ones.
_COLD_START_S = 2.0
_WARM_START_S = 0.02
_measured_start_s = None
#: Modules a worker imports before it says it is ready (so that its first
#: cell does not pay for them).
_WORKER_IMPORTS = ("emix.selection", "emix.estimator", "emix.core.mclust_hc", "emix.mixture")
_SPHERICAL = {"EII", "VII", "spherical"}
_DIAGONAL = {"EEI", "VEI", "EVI", "VVI", "diag"}


def cell_cost(n_samples, n_features, n_components, covariance_type=None, n_fits=1):
    """Estimated seconds of one grid cell: ``n_fits`` EM runs of
    ``n_components`` components, each ``K (a + b n c)`` with ``c = d`` for
    spherical and diagonal models (and families without a covariance
    type), ``d^2`` for the others. A relative scale for scheduling and for
    :func:`plan_workers`, not a prediction."""
    d = max(1, int(n_features))
    size = d if covariance_type is None or covariance_type in _SPHERICAL | _DIAGONAL else d * d
    return float(n_fits) * n_components * (_S_PER_COMPONENT + _S_PER_ELEMENT * n_samples * size)


def plan_workers(costs, n_jobs, start_cost):
    """How many worker processes to start for cells of estimated ``costs``
    (seconds) when ``n_jobs`` may run at once (this process being one of
    them) and a worker is ready ``start_cost`` seconds after it is asked for.

    With ``w`` workers joining this process after ``s`` seconds, the grid
    of total work ``W`` ends after about ``max((W + w s) / (w + 1), max
    cost)``, which is below ``W`` (serial) only when ``W > s``; so no
    worker is started when ``W <= s`` (or when there is a single cell or
    ``n_jobs <= 1``), else ``n_jobs - 1``, at most one per cell but one.
    Returns 0 for a serial run.
    """
    costs = [float(c) for c in costs]
    n_jobs = int(n_jobs)
    if n_jobs <= 1 or len(costs) <= 1 or sum(costs) <= float(start_cost):
        return 0
    return min(n_jobs - 1, len(costs) - 1)


def call(function, *args):
    """``function(*args)``: runs a ``(function, *args)`` task in a worker."""
    return function(*args)


def _worker_ready(modules):
    """Run in a worker: import ``modules`` and return this process's id."""
    import importlib

    for name in modules:
        importlib.import_module(name)
    return os.getpid()


def _loky_executor(n_workers):
    """joblib's reusable (memory-mapping) loky executor with ``n_workers``
    workers, configured as ``Parallel(n_jobs=n_workers)`` would configure
    it, so that both reuse the same worker processes; plus its context id
    for cleaning its temporary files. None where this joblib lacks it."""
    try:
        from uuid import uuid4

        from joblib._parallel_backends import LokyBackend
        from joblib.executor import get_memmapping_executor

        context = uuid4().hex
        env = LokyBackend()._prepare_worker_env(n_jobs=n_workers)
        return get_memmapping_executor(n_workers, timeout=300, env=env, context_id=context), context
    except Exception:  # noqa: BLE001 - a joblib without these internals: the caller uses joblib.Parallel
        return None


def _running_workers():
    """Worker processes of joblib's reusable executor now alive (0: none)."""
    try:
        from joblib.externals.loky import reusable_executor

        executor = reusable_executor._executor
        if executor is None or getattr(executor, "_broken", False):
            return 0
        return sum(p.is_alive() for p in list(getattr(executor, "_processes", {}).values()))
    except Exception:  # noqa: BLE001 - unknown internals: count as cold
        return 0


def start_cost(n_workers):
    """Seconds until ``n_workers`` workers can take cells: ~0 when that many
    already run (an earlier call's), else the start-up measured in this
    process, else :data:`_COLD_START_S`."""
    if _running_workers() >= n_workers:
        return _WARM_START_S
    return _COLD_START_S if _measured_start_s is None else _measured_start_s


def prestart(n_workers):
    """Ask for ``n_workers`` workers now, without waiting, so that their
    start-up overlaps the caller's serial work (``select``'s shared trees);
    a later :func:`run_cells` reuses them. Returns whether it asked."""
    if n_workers <= 0:
        return False
    made = _loky_executor(n_workers)
    if made is None:
        return False
    with contextlib.suppress(Exception):
        for _ in range(n_workers):
            made[0].submit(_worker_ready, _WORKER_IMPORTS)
    return True


def loky_is_active():
    """Whether joblib's active backend is its default process pool (loky):
    only then does :func:`run_cells` use its own scheduling; under another
    backend (``parallel_config('threading')``, dask, inside a joblib worker)
    the cells go to ``joblib.Parallel`` as given."""
    try:
        from joblib.parallel import get_active_backend

        backend, _ = get_active_backend()
        return type(backend).__name__ == "LokyBackend"
    except Exception:  # noqa: BLE001
        return False


def run_cells(fn, tasks, costs, n_jobs, on_done=None, n_workers=None):
    """``[fn(*task) for task in tasks]``, with up to ``n_jobs`` at once.

    ``costs``: each task's estimated cost (:func:`cell_cost`), for the
    order and for :func:`plan_workers`; ``on_done(i, result)`` is called in
    the calling thread as each task ends; ``n_workers``: worker processes
    to use, overriding :func:`plan_workers` (tests). ``fn`` must not raise
    (a grid cell records its failure); a task whose worker fails (a killed
    process) is run again here. Serial runs go in task order; otherwise this
    process takes the cheapest tasks first and the workers, as each becomes
    ready, the most expensive first. Results do not depend on who ran what.
    """
    n = len(tasks)
    cold = _running_workers() < max(1, min(int(n_jobs) - 1, n - 1))
    if n_workers is None:
        n_workers = plan_workers(costs, n_jobs, start_cost(max(1, min(int(n_jobs) - 1, n - 1))))
    results = [None] * n
    made = _loky_executor(n_workers) if n_workers > 0 else None
    if made is None:  # serial, in task order
        for i, task in enumerate(tasks):
            results[i] = fn(*task)
            if on_done is not None:
                on_done(i, results[i])
        return results
    return _run_hybrid(fn, tasks, costs, n_workers, on_done, results, cold, *made)


def _run_hybrid(fn, tasks, costs, n_workers, on_done, results, cold, executor, context):
    import collections
    import queue
    import threading

    order = sorted(range(len(tasks)), key=lambda i: (-costs[i], i))
    pending = collections.deque(order)  # workers pop the left (expensive) end, this process the right
    lock = threading.Lock()
    events, out = queue.Queue(), queue.Queue()
    stop = threading.Event()
    t0 = time.perf_counter()

    def dispatch():
        global _measured_start_s
        ready, inflight, pings, last_ping = set(), {}, 0, 0.0
        try:
            def ping():
                nonlocal pings, last_ping
                fut = executor.submit(_worker_ready, _WORKER_IMPORTS)
                fut.add_done_callback(lambda f: events.put(("ping", f)))
                pings, last_ping = pings + 1, time.perf_counter()

            for _ in range(n_workers):
                ping()
            while not stop.is_set():
                try:
                    kind, fut = events.get(timeout=0.05)
                except queue.Empty:
                    kind = fut = None
                if kind == "ping":
                    pings -= 1
                    pid = fut.result()  # a failed start raises: this process does the rest
                    if cold and not ready:  # the first worker of a fresh start: its measured cost
                        _measured_start_s = time.perf_counter() - t0
                    ready.add(pid)
                elif kind == "cell":
                    i = inflight.pop(fut)
                    exc = fut.exception()
                    out.put((i, None if exc is None else exc, None if exc is not None else fut.result()))
                while len(inflight) < len(ready) and not stop.is_set():
                    with lock:
                        if not pending:
                            break
                        i = pending.popleft()
                    fut = executor.submit(fn, *tasks[i])
                    inflight[fut] = i
                    fut.add_done_callback(lambda f: events.put(("cell", f)))
                with lock:
                    more = bool(pending)
                if not more and not inflight:
                    return
                # a worker not yet heard of: ask again, at most every 50 ms
                if more and len(ready) < n_workers and pings == 0 and time.perf_counter() - last_ping > 0.05:
                    ping()
        except BaseException as exc:  # noqa: BLE001 - the workers are unusable: hand their cells back
            with lock:
                for i in inflight.values():
                    out.put((i, exc, None))
                inflight.clear()

    thread = threading.Thread(target=dispatch, name="emix-cells", daemon=True)
    thread.start()
    left = len(tasks)
    try:
        while left:
            try:  # finished worker cells first, so the callback sees them early
                i, exc, res = out.get_nowait()
            except queue.Empty:
                with lock:
                    i = pending.pop() if pending else None
                if i is None:
                    i, exc, res = out.get()
                else:
                    exc, res = None, fn(*tasks[i])
            if exc is not None:  # the worker failed, not the cell: run it here
                res = fn(*tasks[i])
            results[i] = res
            left -= 1
            if on_done is not None:
                on_done(i, res)
    finally:
        stop.set()
        with contextlib.suppress(Exception):  # as joblib's LokyBackend.terminate: keep the workers
            executor._temp_folder_manager._clean_temporary_resources(context_id=context, force=False)
    return results
