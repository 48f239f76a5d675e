"""EVE and VVE (a common orientation D) against EEE: time per EM iteration.

Reproduce:
    python benchmarks/bench_eve.py                      # raw and standardized wine
    python benchmarks/bench_eve.py --rounds 3 --md benchmarks/results/eve.md

Workload: the wine data (``sklearn.datasets.load_wine``, 178 x 13), raw and
standardized (zero mean, unit variance per column), K = 5,
``init_params='hierarchical'``, ``tol=1e-5``, ``max_iter=1000`` (the cells of
the issue that found EVE at 131.7 s for 51 iterations), BLAS on one thread as
every emix fit holds it.

Columns:

- ``ms/iter``: wall time of one EM iteration (E-step and M-step, through
  ``emix.core.em.fit(..., max_iter=1)``, the loop ``fit`` runs, over a
  ``BlockReducer`` of the whole array), started from that model's fitted
  parameters: the median of ``--reps`` single iterations, the three models
  interleaved (EEE, EVE, VVE, EEE, ...) so that a change in the machine's
  load hits them alike; the initialization is not in it;
- ``x EEE``: the median, over the interleaved repetitions, of that
  iteration's time over the EEE iteration next to it;
- ``fit s``: wall time of the whole ``fit`` (initialization included), median
  over ``--rounds`` fits;
- ``n_iter``, ``lower bound`` (mean log-likelihood of the last iteration),
  ``converged``;
- ``min step``: the smallest change of the mean log-likelihood between
  consecutive iterations (``lower_bounds_``): negative means EM went down.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import numpy as np
from sklearn.datasets import load_wine
from threadpoolctl import threadpool_limits

import emix
from emix.backends import BlockReducer
from emix.core import em
from emix.families.gaussian import get_structure

MODELS = ("EEE", "EVE", "VVE")


def run_one(X, model, max_iter):
    gm = emix.GaussianMixture(5, covariance_type=model, init_params="hierarchical", tol=1e-5,
                              max_iter=max_iter)
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # K = 5 on 178 rows: a tiny component (SingularFitWarning)
        warnings.filterwarnings("ignore", message="The fit is singular")
        gm.fit(X)
    total = time.perf_counter() - t0
    lb = np.asarray(gm.lower_bounds_)
    return {
        "gm": gm,
        "fit_s": total,
        "n_iter": int(gm.n_iter_),
        "lower_bound": float(gm.lower_bound_),
        "converged": bool(gm.converged_),
        "min_step": float(np.diff(lb).min()) if lb.size > 1 else float("nan"),
    }


def one_iteration(X, gm):
    """Seconds of one EM iteration from ``gm``'s fitted parameters."""
    reduce = BlockReducer(X, None)
    structure = get_structure(gm.covariance_type)
    params = gm._params()
    t0 = time.perf_counter()
    em.fit(reduce, params, structure, tol=0.0, max_iter=1, reg_covar=gm.reg_covar)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1, help="whole fits per model")
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=300, help="interleaved single iterations per model")
    ap.add_argument("--md", help="also write the table to this markdown file")
    args = ap.parse_args(argv)

    X = load_wine().data
    data = {"raw": X, "standardized": (X - X.mean(axis=0)) / X.std(axis=0)}
    rows = []
    with threadpool_limits(1, user_api="blas"):
        for name, Xd in data.items():
            runs = {m: [] for m in MODELS}
            for _ in range(args.rounds):
                for m in MODELS:
                    runs[m].append(run_one(Xd, m, args.max_iter))
            fitted = {m: runs[m][-1]["gm"] for m in MODELS}
            times = {m: [] for m in MODELS}
            for _ in range(args.reps):
                for m in MODELS:
                    times[m].append(one_iteration(Xd, fitted[m]))
            for m in MODELS:
                r = runs[m]
                ratio = float(np.median(np.divide(times[m], times["EEE"])))
                last = r[-1]
                rows.append((name, m, 1e3 * float(np.median(times[m])), ratio,
                             statistics.median(a["fit_s"] for a in r), last["n_iter"],
                             last["lower_bound"], last["converged"], last["min_step"]))
    head = ("| wine | model | ms/iter | x EEE | fit s | n_iter | lower bound | converged | min step |\n"
            "|---|---|---:|---:|---:|---:|---:|---|---:|")
    lines = [head] + [
        f"| {d} | {m} | {ms:.2f} | {ratio:.2f} | {fit:.2f} | {it} | {lb:.6f} | {conv} | {step:.2e} |"
        for d, m, ms, ratio, fit, it, lb, conv, step in rows
    ]
    table = "\n".join(lines)
    print(table)
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(f"`python benchmarks/bench_eve.py {' '.join(argv or sys.argv[1:])}`\n\n{table}\n")
    return rows


if __name__ == "__main__":
    main()
