"""Measure this machine's peak rates, single-threaded and with all threads,
for the roofline bound of ``bench_roofline.py``.

Reproduce:
    python benchmarks/machine_peaks.py            # writes benchmarks/results/peaks.json
    python benchmarks/machine_peaks.py --quick    # smaller sizes, fewer repeats

What is measured (best of ``--repeat`` timings each; the best is the figure
closest to the hardware on a machine shared with other processes):

- GEMM rate, float64 and float32: ``A @ B`` on square ``n x n`` matrices,
  ``2 n^3`` flops per product (one multiply-add = 2 flops).
- Memory bandwidth: on arrays far larger than the last-level cache,
  ``copy`` (``np.copyto(b, a)``, counted as 2 arrays moved: read a, write b,
  the STREAM convention), ``triad`` (``a = b + s * c`` done by numpy in two
  passes, counted as the 5 arrays those passes really move) and ``read``
  (``np.sum(a)``, 1 array). ``bandwidth_Bps`` is the largest of the three,
  so the roofline bound built on it is a true lower bound.
- exp rate, float64 and float32: ``np.exp(a, out=b)`` on an array that fits
  in L2, repeated, elements per second (the compute rate of numpy's SIMD exp,
  not a memory rate).

"All threads": BLAS uses all its threads for GEMM; the elementwise kernels
(numpy ufuncs are single-threaded but release the GIL) run on one Python
thread per core, each on its own slice, and their rates are summed over the
wall time. "Single thread": ``threadpoolctl.threadpool_limits(1)`` and one
Python thread.

Results go to ``benchmarks/results/peaks.json`` keyed by the BLAS kernel
(threadpoolctl's ``architecture``), so runs under different kernels sit side
by side and ``bench_roofline.py`` picks the entry of the kernel it runs with.
On a shared machine other processes only ever lower a measured rate, so a new
run keeps, figure by figure, the best of itself and the entry already in the
file (``--fresh`` replaces it instead, e.g. on other hardware): run it a few
times, ideally when the machine is quiet.

OpenBLAS kernel selection: ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` may be
set on this machine (a workaround for a bug of older OpenBLAS builds). They
force e.g. the Haswell (AVX2) kernel even on an AVX-512 CPU and can slow a
current numpy. To benchmark without them, unset both together in that command
alone, and check with threadpoolctl which kernel runs (printed first)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/machine_peaks.py

Report both if they differ (``--both-kernels`` runs the script a second time
in a subprocess with both variables unset and merges its entry into the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

RESULTS = Path(__file__).resolve().parent / "results" / "peaks.json"


def blas_kernel():
    """'openblas:Haswell', ... of the BLAS numpy uses (first one listed)."""
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not infos:
        return "unknown"
    i = infos[0]
    return f"{i.get('internal_api')}:{i.get('architecture', '?')}"


def best_time(fn, repeat, warmup=1):
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def parallel(fns):
    """Run the callables each on its own thread; wall time of all."""
    if len(fns) == 1:
        fns[0]()
        return
    ts = [threading.Thread(target=f) for f in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def gemm_rate(dtype, n, repeat):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n)).astype(dtype)
    B = rng.standard_normal((n, n)).astype(dtype)
    C = np.empty((n, n), dtype=dtype)
    t = best_time(lambda: np.matmul(A, B, out=C), repeat)
    return 2.0 * n**3 / t


def bandwidth(n_elem, n_threads, repeat):
    """Bytes per second for copy / triad / read, ``n_threads`` Python threads."""
    per = n_elem // n_threads
    a = [np.full(per, 1.0) for _ in range(n_threads)]
    b = [np.full(per, 2.0) for _ in range(n_threads)]
    c = [np.full(per, 3.0) for _ in range(n_threads)]
    nbytes = per * 8 * n_threads

    def copy():
        parallel([lambda i=i: np.copyto(b[i], a[i]) for i in range(n_threads)])

    def triad_one(i):
        np.multiply(c[i], 3.0, out=a[i])
        np.add(a[i], b[i], out=a[i])

    def triad():
        parallel([lambda i=i: triad_one(i) for i in range(n_threads)])

    def read():
        parallel([lambda i=i: np.add.reduce(a[i]) for i in range(n_threads)])

    return {
        "copy_Bps": 2 * nbytes / best_time(copy, repeat),
        "triad_Bps": 5 * nbytes / best_time(triad, repeat),
        "read_Bps": nbytes / best_time(read, repeat),
    }


def exp_rate(dtype, n_elem, inner, n_threads, repeat):
    rng = np.random.default_rng(0)
    xs = [(-10.0 * rng.random(n_elem)).astype(dtype) for _ in range(n_threads)]
    ys = [np.empty_like(x) for x in xs]

    def work(i):
        for _ in range(inner):
            np.exp(xs[i], out=ys[i])

    t = best_time(lambda: parallel([lambda i=i: work(i) for i in range(n_threads)]), repeat)
    return n_elem * inner * n_threads / t


def measure(n_threads, args):
    with threadpool_limits(limits=n_threads, user_api="blas"):
        out = {
            "gemm_flops": {
                "float64": gemm_rate(np.float64, args.gemm_n, args.repeat),
                "float32": gemm_rate(np.float32, args.gemm_n, args.repeat),
            },
        }
        out.update(bandwidth(args.bw_elems, n_threads, args.repeat))
        out["bandwidth_Bps"] = max(out["copy_Bps"], out["triad_Bps"], out["read_Bps"])
        out["exp_per_s"] = {
            "float64": exp_rate(np.float64, args.exp_elems, args.exp_inner, n_threads, args.repeat),
            "float32": exp_rate(np.float32, args.exp_elems, args.exp_inner, n_threads, args.repeat),
        }
    return out


def print_table(kernel, res):
    print(f"\nBLAS kernel {kernel}")
    print("| threads | GEMM f64 GFLOP/s | GEMM f32 GFLOP/s | copy GB/s | triad GB/s | read GB/s | exp f64 Gelem/s | exp f32 Gelem/s |")
    print("|---|---|---|---|---|---|---|---|")
    for key in ("single", "all"):
        r = res[key]
        print(f"| {r['threads']} | {r['gemm_flops']['float64'] / 1e9:.1f} | {r['gemm_flops']['float32'] / 1e9:.1f} | "
              f"{r['copy_Bps'] / 1e9:.1f} | {r['triad_Bps'] / 1e9:.1f} | {r['read_Bps'] / 1e9:.1f} | "
              f"{r['exp_per_s']['float64'] / 1e9:.2f} | {r['exp_per_s']['float32'] / 1e9:.2f} |")


def merge_best(old, new):
    """Per figure, the larger of two runs: load from other processes only ever
    lowers a measured rate, so the best run is the closest to the hardware."""
    out = dict(new)
    for key in ("single", "all"):
        a, b = old.get(key, {}), dict(new[key])
        for fig in ("copy_Bps", "triad_Bps", "read_Bps", "bandwidth_Bps"):
            b[fig] = max(a.get(fig, 0.0), b[fig])
        for fig in ("gemm_flops", "exp_per_s"):
            b[fig] = {dt: max(a.get(fig, {}).get(dt, 0.0), v) for dt, v in b[fig].items()}
        out[key] = b
    out["runs"] = old.get("runs", 1) + 1
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and 3 repeats")
    ap.add_argument("--repeat", type=int, default=None, help="timings per figure (best is kept); default 7, 3 with --quick")
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument("--fresh", action="store_true",
                    help="replace this kernel's entry instead of keeping the best of it and this run")
    ap.add_argument("--both-kernels", action="store_true",
                    help="also run once with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (subprocess)")
    args = ap.parse_args()
    if args.repeat is None:
        args.repeat = 3 if args.quick else 7
    args.gemm_n = 1024 if args.quick else 2048
    args.bw_elems = 2**24 if args.quick else 2**25  # 128 / 256 MiB per float64 array (L3 is tens of MiB)
    args.exp_elems = 2**15  # 256 KiB float64: stays in L2
    args.exp_inner = 20 if args.quick else 100

    kernel = blas_kernel()
    n_all = os.cpu_count() or 1
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                      "OMP_NUM_THREADS") if k in os.environ}
    print(f"numpy {np.__version__}, {platform.processor() or platform.machine()}, {n_all} CPUs, "
          f"BLAS kernel {kernel}, env {env or '{}'}")
    print("threadpoolctl:", [(i["internal_api"], i.get("architecture"), i.get("version"),
                              Path(i["filepath"]).name) for i in threadpool_info()])
    t0 = time.perf_counter()
    res = {
        "single": dict(threads=1, **measure(1, args)),
        "all": dict(threads=n_all, **measure(n_all, args)),
        "env": env,
        "numpy": np.__version__,
        "load_avg_1min": os.getloadavg()[0],
        "quick": args.quick,
        "repeat": args.repeat,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print_table(kernel, res)
    print(f"(load average {res['load_avg_1min']:.1f} on {n_all} CPUs; measured in {time.perf_counter() - t0:.0f} s)")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    data = {}
    if args.output.exists():
        try:
            data = json.loads(args.output.read_text())
        except ValueError:
            data = {}
    old = data.setdefault("kernels", {}).get(kernel)
    if old is not None and not args.fresh:
        res = merge_best(old, res)
        print_table(kernel + " (best over all runs kept in the file)", res)
    data["kernels"][kernel] = res
    args.output.write_text(json.dumps(data, indent=1))
    print(f"wrote {args.output}")

    if args.both_kernels and ("OPENBLAS_CORETYPE" in os.environ or "OPENBLAS_L2_SIZE" in os.environ):
        sub_env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        cmd = [sys.executable, __file__, "--output", str(args.output), "--repeat", str(args.repeat)]
        if args.fresh:
            cmd.append("--fresh")
        if args.quick:
            cmd.append("--quick")
        print("\n$ env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE " + " ".join(cmd[1:]))
        subprocess.run(cmd, env=sub_env, check=True)


if __name__ == "__main__":
    main()
