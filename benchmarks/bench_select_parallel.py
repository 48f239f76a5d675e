"""emix.select serial against n_jobs > 1: wall time per data set (issue 11, item 11).

Reproduce:
    python benchmarks/bench_select_parallel.py                  # iris, faithful, synthetic 20000 x 5
    python benchmarks/bench_select_parallel.py --quick          # iris, faithful, synthetic 4000 x 5
    python benchmarks/bench_select_parallel.py --n-jobs 4 --repeats 3

Each measurement runs ``emix.select(X, random_state=0, n_jobs=...)`` with
select's defaults (K = 1..9, mclust's 14 models, both starts) in a fresh
Python process, as ``emix select -j N`` does: worker processes start cold.
The same process then runs the call again ("warm": the workers of the first
call still run). Printed: seconds, the ratio parallel / serial (below 1 is a
gain) and whether both chose the same model with the same BIC table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np


def load(name):
    if name == "iris":
        from sklearn.datasets import load_iris

        return load_iris().data
    if name == "faithful":
        from emix.datasets import load_faithful

        return np.asarray(load_faithful()[0], dtype=np.float64)
    n = int(name.split("-")[1])  # synthetic-N: five well separated groups in 5-D
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(3.0 * k, 1.0, (n // 5, 5)) for k in range(5)])


def one(name, n_jobs):
    """Run in a fresh process: cold and warm times, and the BIC table."""
    import emix

    X = load(name)
    times = []
    for _ in range(2):
        t = time.perf_counter()
        res = emix.select(X, random_state=0, n_jobs=n_jobs)
        times.append(time.perf_counter() - t)
    print(json.dumps({"cold": times[0], "warm": times[1], "best": res.best_params_,
                      "bic": [r["bic"] for r in res.rows]}))


def measure(name, n_jobs):
    out = subprocess.run([sys.executable, __file__, "--one", name, str(n_jobs)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--data", nargs="*")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one(args.one[0], int(args.one[1]))
        return
    import emix

    names = args.data or ["iris", "faithful", "synthetic-4000" if args.quick else "synthetic-20000"]
    print(f"emix {emix.__version__} from {os.path.dirname(emix.__file__)}; python {platform.python_version()}; "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print(f"{'data':<16}{'n_jobs':>7}{'cold s':>9}{'warm s':>9}{'cold ratio':>12}{'warm ratio':>12}  same result")
    for name in names:
        for rep in range(args.repeats):
            serial = measure(name, 1)
            par = measure(name, args.n_jobs)
            same = par["best"] == serial["best"] and np.array_equal(par["bic"], serial["bic"], equal_nan=True)
            print(f"{name:<16}{1:>7}{serial['cold']:>9.2f}{serial['warm']:>9.2f}")
            print(f"{name:<16}{args.n_jobs:>7}{par['cold']:>9.2f}{par['warm']:>9.2f}"
                  f"{par['cold'] / serial['cold']:>12.2f}{par['warm'] / serial['warm']:>12.2f}  {same}", flush=True)


if __name__ == "__main__":
    main()
