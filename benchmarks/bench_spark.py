"""Spark MLlib's GaussianMixture on a Parquet directory: the peer for bench_dask.py.

pyspark is a benchmark-only dependency (``pip install pyspark``; needs Java 17+),
never a dependency of emix. Run standalone or through ``bench_dask.py --spark``::

    python benchmarks/bench_spark.py --data /tmp/emix-bench/data.parquet -k 8 --iters 10

Prints one JSON line: session start, load+cache, fit times with maxIter=1 and
maxIter=ITERS (per-iteration time is their slope, fixed cost the rest), and
the log-likelihood (mean per row) after ITERS iterations.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def run(data, k, iters, seed=0, master="local[2]", driver_memory="6g"):
    t0 = time.perf_counter()
    from pyspark.ml.clustering import GaussianMixture
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(master)
        .appName("emix-bench")
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    t_session = time.perf_counter() - t0

    t0 = time.perf_counter()
    df = spark.read.parquet(os.fspath(data))
    vec = VectorAssembler(inputCols=df.columns, outputCol="features").transform(df).select("features").cache()
    n = vec.count()
    t_load = time.perf_counter() - t0

    def fit(max_iter):
        # tol=0: run exactly max_iter iterations (Spark stops when the change is <= tol)
        gm = GaussianMixture(k=k, maxIter=max_iter, tol=0.0, seed=seed, featuresCol="features")
        t = time.perf_counter()
        model = gm.fit(vec)
        return time.perf_counter() - t, model

    t_warm, _ = fit(1)  # JIT and netlib warm-up, reported separately
    t1, _ = fit(1)
    tm, model = fit(iters)
    summary = model.summary
    out = {
        "engine": "spark", "master": master, "n_samples": n, "k": k, "iters": iters,
        "session_s": t_session, "load_s": t_load, "warmup_fit1_s": t_warm, "fit1_s": t1, f"fit{iters}_s": tm,
        "per_iter_s": (tm - t1) / max(1, iters - 1),
        "fixed_s": t1 - (tm - t1) / max(1, iters - 1),
        "num_iter": int(summary.numIter),
        "mean_loglik": float(summary.logLikelihood) / n,
    }
    spark.stop()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="Parquet directory (one float column per feature)")
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="6g")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.data, args.k, args.iters, args.seed, args.master, args.driver_memory)))


if __name__ == "__main__":
    main()
