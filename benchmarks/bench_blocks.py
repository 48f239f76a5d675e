"""Time per row of one fused E-step + statistics pass, by block size.

The numbers behind ``emix.backends.reduce``'s block sizes: for each shape the
same rows are processed in blocks of 1024 ... 65536 rows, one BLAS thread, and
the time per row is printed (lower is better). Blocks whose temporaries stay in
the cache win; very small blocks pay Python's per-call overhead.

    python benchmarks/bench_blocks.py [--cov full diag] [--rows 65536]
    python benchmarks/bench_blocks.py --formulations   # full: Gram vs per component

``--formulations`` compares, for full covariances at 8192-row blocks, emix's
Gram kernel (one GEMM over the quadratic design for all components) with the
per-component formulation (triangular product ``(X - mu_k) U_k`` by BLAS
``dtrmm`` and scatter by ``dsyrk``, component by component): the shape choice
the issue asks to show. The per-component code here is a benchmark reference
only.
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


def per_component_stats(X, params):
    """Reference per-component formulation (float64): dtrmm + dsyrk per k."""
    from scipy.linalg import blas

    from emix.core.numerics import log_weight_consts, resp_from_logp_T

    n, D = X.shape
    c = np.asarray(params.means, dtype=np.float64)
    U = np.asarray(params.precisions_cholesky, dtype=np.float64)
    Xf = np.asfortranarray(X, dtype=np.float64)
    const = log_weight_consts(np.log(np.diagonal(U, axis1=1, axis2=2)).sum(axis=1), D, params.weights)
    lp = np.empty((len(c), n))
    for k in range(len(c)):
        Y = blas.dtrmm(1.0, U[k], Xf - c[k], side=1, lower=0)
        lp[k] = const[k] - 0.5 * np.einsum("ij,ij->i", Y, Y)
    RT, loglik, _ = resp_from_logp_T(lp)
    S = np.empty((len(c), D, D))
    for k in range(len(c)):
        Z = Xf - c[k]
        S[k] = blas.dsyrk(1.0, Z * np.sqrt(RT[k])[:, None], trans=1, lower=0)
    return loglik, S


def formulations(rng, n=65536, block=8192):
    from emix.families.gaussian import _gram

    print(f"full covariance, ns per row, {block}-row blocks, one BLAS thread (best of 3)")
    print("| D | K | Gram (emix) | per component (dtrmm + dsyrk) | per component / Gram |")
    print("|---|---|---|---|---|")
    for D, K in SHAPES:
        X = rng.standard_normal((n, D))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params = emix.GaussianMixture(K, max_iter=2, random_state=0,
                                          init_params="random_from_data").fit(X[:20000])._params()
        a, b = np.inf, np.inf
        with threadpool_limits(1):
            for _ in range(3):
                t = time.perf_counter()
                for s in range(0, n, block):
                    _gram.suff_stats_full(X[s : s + block], None, params)
                a = min(a, time.perf_counter() - t)
                t = time.perf_counter()
                for s in range(0, n, block):
                    per_component_stats(X[s : s + block], params)
                b = min(b, time.perf_counter() - t)
        print(f"| {D} | {K} | {a / n * 1e9:.0f} | {b / n * 1e9:.0f} | {b / a:.2f} |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cov", nargs="+", default=["full", "diag"])
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--formulations", action="store_true", help="Gram vs per-component kernels")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    if args.formulations:
        return formulations(rng)
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
