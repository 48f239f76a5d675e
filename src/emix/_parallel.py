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
        result = run(reducer, params0, structure, callback=callback, **options)
    except DegenerateComponentError as exc:
        result = exc
    return result, t_start, events
