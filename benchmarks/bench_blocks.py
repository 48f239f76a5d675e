"""Time per row of one fused E-step + statistics pass, by block size.

The numbers behind ``emix.backends.reduce.MAX_BLOCK_ROWS``: for each shape the
same rows are processed in blocks of 1024 ... 65536 rows, one BLAS thread, and
the time per row is printed (lower is better). Blocks whose temporaries stay in
the cache win; very small blocks pay Python's per-call overhead.

    python benchmarks/bench_blocks.py [--cov full diag] [--rows 65536]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import emix
from emix.families.gaussian import get_structure

SHAPES = [(2, 8), (8, 8), (10, 5), (16, 16), (64, 32)]
BLOCKS = [1024, 2048, 4096, 8192, 16384, 65536]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cov", nargs="+", default=["full", "diag"])
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--dtype", default="float64")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    n = args.rows
    print(f"ns per row, one BLAS thread, {n} rows, {args.dtype}")
    print("| cov | D | K | " + " | ".join(str(b) for b in BLOCKS) + " | best |")
    print("|---|---|---|" + "---|" * (len(BLOCKS) + 1))
    for cov in args.cov:
        st = get_structure(cov)
        for D, K in SHAPES:
            X = rng.standard_normal((n, D)).astype(args.dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gm = emix.GaussianMixture(K, covariance_type=cov, max_iter=2, random_state=0,
                                          init_params="random_from_data").fit(X[: min(n, 20000)])
            params = gm._params()
            reps = max(2, int(6 * 65536 / n / (1 + D * D / 64)))
            times = []
            with threadpool_limits(1):
                for b in BLOCKS:
                    best = np.inf
                    for _ in range(reps):
                        t = time.perf_counter()
                        for s in range(0, n, b):
                            st.suff_stats(X[s : s + b], None, params)
                        best = min(best, time.perf_counter() - t)
                    times.append(best / n * 1e9)
            cells = " | ".join(f"{t:.0f}" for t in times)
            print(f"| {cov} | {D} | {K} | {cells} | {BLOCKS[int(np.argmin(times))]} |", flush=True)


if __name__ == "__main__":
    main()
