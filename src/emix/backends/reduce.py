"""In-memory reducers: the whole array at once, or blocks of rows."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Default memory budget for the temporaries of one block, in MiB.
DEFAULT_WORKING_MEMORY_MIB = 64
#: Rows per block for structures that do not say how wide their design is
#: (see ``design_width``): time per row was lowest at 4096-8192 rows for the
#: full and diag kernels from (D, K) = (2, 8) to (64, 32) in
#: ``python benchmarks/bench_blocks.py``.
DEFAULT_BLOCK_ROWS = 8192
#: Never more rows than this in one block.
MAX_BLOCK_ROWS = 65536
#: Fewer rows than this per block cost more in per-block overhead than they save.
MIN_CACHE_BLOCK_ROWS = 2048
#: Elements of a block's design matrix (rows x ``design_width``) that keep the
#: two GEMMs over it fast: 2**19 (4 MiB of float64). Measured in whole fits
#: (1e6 rows): D=2, K=8 full 0.028 s per iteration at 32768-65536 rows vs 0.035
#: at 8192; D=10, K=5 full 0.103 at 8192 vs 0.115 at 16384 and 0.18 at 65536.
DESIGN_CACHE_ELEMS = 1 << 19


def default_block_rows(n_samples, temp_per_row, itemsize, working_memory=None, design_width=None):
    """Rows per block so that the ``n x K`` responsibilities and the other
    temporaries (``temp_per_row`` elements per row) fit ``working_memory`` MiB,
    and, with ``design_width`` (the rows of a structure's transposed design,
    e.g. ``D(D+1)/2 + D + 1`` for full covariances), so that the design stays
    about ``DESIGN_CACHE_ELEMS`` elements; else at most ``DEFAULT_BLOCK_ROWS``."""
    mib = DEFAULT_WORKING_MEMORY_MIB if working_memory is None else working_memory
    if design_width:
        cap = min(MAX_BLOCK_ROWS, max(MIN_CACHE_BLOCK_ROWS, DESIGN_CACHE_ELEMS // int(design_width)))
    else:
        cap = DEFAULT_BLOCK_ROWS
    rows = min(float(mib) * 2**20 / max(1, temp_per_row * itemsize), float(cap))
    return max(1, min(n_samples, int(rows), cap))


def block_rows_for(structure, K, D, itemsize, working_memory=None, n_samples=1 << 62):
    """:func:`default_block_rows` for a covariance structure: its temporaries
    per row and, when its numpy kernel has one, its design width."""
    width = getattr(structure, "design_width", None)
    return default_block_rows(n_samples, structure.temp_per_row(K, D), itemsize, working_memory,
                              design_width=None if width is None else width(K, D))


class BlockReducer:
    """Sum ``step(X[i:j], w[i:j])`` over consecutive blocks of rows.

    With ``block_rows >= n_samples`` this is the whole-array strategy. Results
    are equal to rounding whatever the block size.

    With ``n_threads > 1`` the blocks are processed by a pool of threads (numpy
    and BLAS release the GIL); the partial sums are added in block order, so the
    result does not depend on the number of threads.
    """

    def __init__(self, X, sample_weight=None, block_rows=None, n_threads=1):
        self.X = X
        self.sample_weight = sample_weight
        n = X.shape[0]
        self.block_rows = n if block_rows is None else max(1, int(block_rows))
        self.n_threads = max(1, int(n_threads))

    def blocks(self):
        n = self.X.shape[0]
        w = self.sample_weight
        for start in range(0, n, self.block_rows):
            stop = min(n, start + self.block_rows)
            yield self.X[start:stop], (None if w is None else w[start:stop])

    def _apply(self, fn):
        """``fn(X_block, w_block)`` for each block, yielded in block order (a
        pool of threads computes ahead when ``n_threads > 1``)."""
        if self.n_threads > 1 and self.X.shape[0] > self.block_rows:
            yield from _pool(self.n_threads).map(lambda b: fn(*b), self.blocks())
        else:
            for Xb, wb in self.blocks():
                yield fn(Xb, wb)

    def __call__(self, step):
        total = None
        for s in self._apply(step):  # summed as they come: one partial result held
            total = s if total is None else total + s
        return total

    def map(self, fn):
        """Apply ``fn(X_block)`` to every block and concatenate the results
        (in the results' own array namespace: numpy, PyTorch, CuPy)."""
        parts = list(self._apply(lambda Xb, wb: fn(Xb)))
        if isinstance(parts[0], np.ndarray):
            return np.concatenate(parts, axis=0)
        from ._xp import namespace

        return namespace(parts[0]).concat(parts, axis=0)


_POOLS = {}
_POOLS_LOCK = threading.Lock()


def _forget_pools_in_child():
    """A forked child inherits the pools but not their threads: start afresh."""
    global _POOLS_LOCK
    _POOLS.clear()
    _POOLS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)


def _pool(n_threads):
    """One shared pool of ``n_threads`` threads per process, made on first use
    and reused by every reduce: starting threads anew for each EM iteration
    cost more than the blocks themselves on small data (20,000 rows: 2.6x)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(n_threads)
        if pool is None:
            pool = _POOLS[n_threads] = ThreadPoolExecutor(n_threads, thread_name_prefix="emix-blocks")
        return pool


def available_cores():
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
