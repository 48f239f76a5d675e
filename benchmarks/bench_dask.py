"""emix beyond memory, side by side: in memory, out of core (Parquet row groups),
on a 2-worker Dask LocalCluster, online (partial_fit), and Spark MLlib (--spark).

    python benchmarks/bench_dask.py --n 1000000 -d 8 -k 8 --iters 10 --spark

The data is a K-component Gaussian mixture written to a Parquet directory
(8 files). Every emix run starts from the same parameters (k-means on a 100k-row
sample) and runs exactly ITERS iterations (tol=0); per-iteration time is the
median gap between iterations (stamped by the estimator's callback, robust to
other load on a shared machine), fixed cost the rest of the fit's wall time
(reading, persisting, scanning). Dask's per-iteration overhead is measured
directly, as the time of one reduce over the persisted blocks with an E-step
that does nothing. Spark runs in a subprocess (bench_spark.py) on the same
Parquet directory with local[2]: the same 2 cores as the Dask cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np


def make_data(path, n, d, k, seed=0, files=8):
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(path, exist_ok=True)
    for old in os.listdir(path):
        os.unlink(os.path.join(path, old))
    per = -(-n // files)
    for i in range(files):
        X = _draw_like(seed, min(per, n - i * per), k, d, i)
        pq.write_table(pa.table({f"x{j}": X[:, j] for j in range(d)}), os.path.join(path, f"part-{i:03d}.parquet"),
                       row_group_size=1 << 17)


def _draw_like(seed, n, k, d, part):
    """Rows of part ``part`` from the mixture that make_mixture(random_state=seed) defines."""
    from emix.testing import make_mixture

    _, _, truth = make_mixture(k, k, d, separation=4.0, random_state=seed)
    rng = np.random.default_rng([seed, part])
    z = rng.choice(k, size=n, p=truth["weights"])
    X = np.empty((n, d))
    for c in range(k):
        idx = z == c
        X[idx] = rng.multivariate_normal(truth["means"][c], truth["covariances"][c], size=int(idx.sum()))
    return X


def timed_fits(make_gm, data, iters):
    """One fit of ITERS iterations; the callback stamps every iteration, so the
    per-iteration time is the median gap between stamps (robust to other load
    on a shared machine) and the fixed cost is the rest of the wall time."""
    from emix.exceptions import ConvergenceWarning

    stamps = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = make_gm(iters)
        gm.set_params(callback=lambda info: stamps.append(time.perf_counter()))
        t = time.perf_counter()
        gm.fit(data)
        total = time.perf_counter() - t
    gaps = np.diff(stamps)
    per = float(np.median(gaps))
    return {"total_s": total, "per_iter_s": per, "per_iter_min_s": float(gaps.min()),
            "fixed_s": total - per * iters, "mean_loglik": float(gm.lower_bound_)}, gm


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=1e6)
    ap.add_argument("-d", type=int, default=8)
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--dir", default="/tmp/emix-bench")
    ap.add_argument("--spark", action="store_true", help="also run Spark MLlib (needs pyspark and Java 17+)")
    ap.add_argument("--skip-memory", action="store_true", help="skip the in-memory and block-source runs")
    args = ap.parse_args(argv)
    n, d, k, iters = int(args.n), args.d, args.k, args.iters
    cmd = "python benchmarks/bench_dask.py " + " ".join(sys.argv[1:] if argv is None else argv)

    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client, LocalCluster

    from emix import GaussianMixture
    from emix.backends import chunked
    from emix.backends.dask import DaskReducer, as_dask_array
    from emix.core.types import SuffStats

    path = os.path.join(args.dir, f"mix-n{n}-d{d}-k{k}.parquet")
    t = time.perf_counter()
    if not os.path.isdir(path) or len(os.listdir(path)) != 8:
        make_data(path, n, d, k)
    print(f"data: {n:,} x {d}, K={k}, at {path} ({time.perf_counter() - t:.1f} s to make or find)", flush=True)

    results = {}
    X = pd.read_parquet(path).to_numpy()
    sample = X[np.random.default_rng(0).choice(n, size=min(n, 100_000), replace=False)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = GaussianMixture(k, random_state=0, max_iter=1).fit(sample)
    init = dict(weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_)

    def make(max_iter, **kw):
        return lambda m: GaussianMixture(k, tol=0.0, max_iter=m if max_iter is None else max_iter, **init, **kw)

    from threadpoolctl import threadpool_limits

    if not args.skip_memory:
        results["emix in memory (default n_threads = cores)"], _ = timed_fits(make(None), X, iters)
        print("in memory:", json.dumps(results["emix in memory (default n_threads = cores)"]), flush=True)
    # The estimator holds BLAS to one thread during fit and spreads blocks over
    # its own thread pool (n_threads, default: the cores); the runs below use
    # one thread, and the client keeps one BLAS thread (it runs the M-step)
    blas1 = threadpool_limits(limits=1, user_api="blas")
    if not args.skip_memory:
        results["emix in memory (n_threads=1)"], _ = timed_fits(make(None, n_threads=1), X, iters)
        print("in memory, 1 BLAS thread:", json.dumps(results["emix in memory (n_threads=1)"]), flush=True)
        results["emix out of core, Parquet (1 BLAS thread)"], _ = timed_fits(
            make(None, n_threads=1), chunked.parquet_source(path), iters)
        print("out of core:", json.dumps(results["emix out of core, Parquet (1 BLAS thread)"]), flush=True)

    # online: one pass of partial_fit
    for batch in (1_000, 10_000):
        rows = min(n, 200 * batch)
        g = GaussianMixture(k, random_state=0)
        t = time.perf_counter()
        for i in range(0, rows, batch):
            g.partial_fit(X[i : i + batch])
        dt = time.perf_counter() - t
        results[f"partial_fit batch {batch} (1 BLAS thread)"] = {"rows_per_s": rows / dt, "rows": rows,
                                                 "mean_loglik_on_all": float(g.score(X[:200_000]))}
        print(f"partial_fit batch {batch}: {rows / dt:,.0f} rows/s", flush=True)
    del X  # the Dask client keeps 1 BLAS thread too: it runs the M-step

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=50)
        client = Client(cluster)
    try:
        df = dd.read_parquet(path)
        results["emix on Dask (2 workers x 1 thread)"], gd = timed_fits(make(None), df, iters)
        print("dask:", json.dumps(results["emix on Dask (2 workers x 1 thread)"]), flush=True)
        # per-iteration overhead: one reduce over the persisted blocks with a no-op E-step
        Xd = as_dask_array(df)
        reducer = DaskReducer(Xd, None, client)
        zero = SuffStats(nk=np.zeros(k), s1=np.zeros((k, d)), s2=np.zeros((k, d, d)),
                         shift=np.zeros((k, d)), loglik=0.0, sum_w=0.0)
        noop = lambda Xb, wb: zero  # noqa: E731
        reducer(noop)
        reps = 20
        t = time.perf_counter()
        for _ in range(reps):
            reducer(noop)
        overhead = (time.perf_counter() - t) / reps
        results["emix on Dask (2 workers x 1 thread)"].update(
            overhead_per_iter_s=overhead, blocks=len(reducer.x_blocks), tasks_per_iter=len(reducer.groups),
            blas_threads_per_worker=reducer.blas_threads)
        print(f"dask overhead per iteration: {overhead * 1e3:.1f} ms "
              f"({len(reducer.x_blocks)} blocks, {len(reducer.groups)} tasks)", flush=True)
    finally:
        client.close()
        cluster.close()
        blas1.restore_original_limits()

    if args.spark:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_spark.py")
        proc = subprocess.run([sys.executable, script, "--data", path, "-k", str(k), "--iters", str(iters)],
                              capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            print("spark failed:", proc.stderr[-2000:], flush=True)
        else:
            results["Spark MLlib (local[2])"] = json.loads(lines[-1])
            print("spark:", lines[-1], flush=True)

    print()
    print(f"N={n:,} D={d} K={k}, {iters} iterations, full covariance, 2 cores; reproduce: {cmd}")
    print(f"{'engine':44s} {'per iter (s)':>12s} {'fixed (s)':>10s} {'mean loglik':>12s}")
    for name, r in results.items():
        if "per_iter_s" in r:
            print(f"{name:44s} {r['per_iter_s']:12.3f} {r['fixed_s']:10.2f} {r['mean_loglik']:12.5f}")
    for name, r in results.items():
        if "rows_per_s" in r:
            print(f"{name:44s} {r['rows_per_s']:12,.0f} rows/s (one pass over {r['rows']:,} rows; "
                  f"mean loglik {r['mean_loglik_on_all']:.5f})")
    dask = results["emix on Dask (2 workers x 1 thread)"]
    print(f"Dask overhead per iteration: {dask['overhead_per_iter_s'] * 1e3:.1f} ms "
          f"({dask['tasks_per_iter']} tasks over {dask['blocks']} blocks)")
    for name in ("emix in memory (default n_threads = cores)", "emix in memory (n_threads=1)"):
        if name in results:
            print(f"ratio per iteration, Dask / {name}: {dask['per_iter_s'] / results[name]['per_iter_s']:.2f}")
    if "Spark MLlib (local[2])" in results:
        sp = results["Spark MLlib (local[2])"]
        print(f"ratio per iteration, Spark / emix on Dask: {sp['per_iter_s'] / dask['per_iter_s']:.1f}x")
        print(f"mean loglik after {iters} iterations: emix {dask['mean_loglik']:.5f}, Spark {sp['mean_loglik']:.5f} "
              f"(Spark session {sp['session_s']:.1f} s + load {sp['load_s']:.1f} s not in its fixed cost)")
    with open(os.path.join(args.dir, "bench_dask.json"), "w") as fh:
        json.dump({"command": cmd, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
