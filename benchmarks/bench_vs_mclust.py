"""emix.select against R's mclustBIC, cell by cell and in time.

    python benchmarks/bench_vs_mclust.py [--init hierarchical+mclust|mclust|hierarchical|both|all] [--no-r]
                                         [--data NAME ...]

For Old Faithful, iris, banknote and thyroid (K = 1..9, the 14 models) it
prints per data set: mclust's time (``system.time(mclustBIC(X, G = 1:9))``
inside R, R's start-up excluded), emix's time (``emix.select(X,
n_components=range(1, 10))``, after one warm-up call as R's, with
its default threads and with ``n_threads=1``; least time of ``--repeat``
calls on both sides), their ratios, and how many cells
of emix's BIC table are below, equal to (within 1e-3) or above mclust's
(mclust's sign: higher is better, so "below" is a worse fit than mclust's),
and the cells where only one of the two failed.

Installs nothing. Without ``Rscript`` on the PATH (or with ``--no-r``) it
compares with the tables committed under ``tests/data/mclust_bic_*.csv``
(mclust 6.0.0, ``benchmarks/mclust_reference.R``) and prints no R time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
TOL = 1e-3

R_TIMING = r"""
suppressPackageStartupMessages(library(mclust))
X <- as.matrix(read.csv("{csv}"))
invisible(mclustBIC(X, G = 1:9, verbose = FALSE))  # warm-up (byte code, BLAS)
t <- min(sapply(1:{repeat}, function(i) system.time(b <<- mclustBIC(X, G = 1:9, verbose = FALSE))[["elapsed"]]))
tab <- matrix(as.numeric(b), nrow = nrow(b), dimnames = dimnames(b))
write.csv(data.frame(G = 1:9, format(tab, digits = 17), check.names = FALSE), "{out}",
          row.names = FALSE, quote = FALSE)
cat(t, "\n")
"""


def load(name):
    """The data set as a float array (the columns mclustBIC is given)."""
    if name == "faithful":
        from emix.datasets import load_faithful

        return load_faithful()[0]
    if name == "iris":
        from sklearn.datasets import load_iris

        return load_iris().data
    import pandas as pd

    return pd.read_csv(DATA / f"mclust_{name}.csv").iloc[:, 1:].to_numpy(dtype=np.float64)


def read_table(path):
    """``(models, values)`` of an mclust BIC CSV (rows G = 1..9, NaN = NA)."""
    import pandas as pd

    df = pd.read_csv(path, skipinitialspace=True, na_values=["NA"])
    return list(df.columns[1:]), df.iloc[:, 1:].to_numpy(dtype=np.float64)


def run_r(X, repeat=1):
    """``(seconds, models, table)`` from one Rscript (the least time of
    ``repeat`` calls after a warm-up), or None when R is missing."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv, out = os.path.join(tmp, "x.csv"), os.path.join(tmp, "bic.csv")
        np.savetxt(csv, X, delimiter=",", header=",".join(f"x{i}" for i in range(X.shape[1])),
                   comments="", fmt="%.17g")
        script = os.path.join(tmp, "t.R")
        Path(script).write_text(R_TIMING.format(csv=csv, out=out, repeat=int(repeat)))
        proc = subprocess.run(["Rscript", script], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return None
        seconds = float(proc.stdout.split()[-1])
        models, table = read_table(out)
    return seconds, models, table


def raw_table(res, models):
    """(9, n_models) BIC of every cell that has numbers, including cells that
    emix's singular-fit rule leaves out of the ranking (mclust has no such
    rule: its table keeps them)."""
    values = np.full((9, len(models)), np.nan)
    for r in res.rows:
        values[r["n_components"] - 1, models.index(r["covariance_type"])] = r["bic"]
    return values


def compare(ours, ref, tol=TOL):
    """Counts of cells below / equal / above ``ref`` (mclust's sign), and of
    cells NA in one table only."""
    both = np.isfinite(ours) & np.isfinite(ref)
    diff = ours[both] - ref[both]
    return {"below": int(np.sum(diff < -tol)), "equal": int(np.sum(np.abs(diff) <= tol)),
            "above": int(np.sum(diff > tol)), "only_emix_na": int(np.sum(~np.isfinite(ours) & np.isfinite(ref))),
            "only_mclust_na": int(np.sum(np.isfinite(ours) & ~np.isfinite(ref))),
            "worst": float(diff.min()) if diff.size else 0.0}


def main(argv=None):
    import emix

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", default="hierarchical+mclust",
                    choices=["hierarchical+mclust", "mclust", "hierarchical", "both", "all"],
                    help="select's start: its default 'hierarchical+mclust' (both starts per cell, the better "
                         "kept), one of the two alone, 'both' (each alone), 'all' (the three)")
    ap.add_argument("--no-r", action="store_true", help="compare with the committed tables only")
    ap.add_argument("--data", nargs="*", default=["faithful", "iris", "banknote", "thyroid"])
    ap.add_argument("--repeat", type=int, default=5,
                    help="timed calls per side (least time kept: load on a shared machine only adds time)")
    args = ap.parse_args(argv)
    inits = {"both": ["mclust", "hierarchical"],
             "all": ["hierarchical+mclust", "mclust", "hierarchical"]}.get(args.init, [args.init])
    print(f"{'data':9s} {'init':19s} {'mclust s':>8s} {'emix s':>7s} {'ratio':>6s} {'1 thr s':>7s} {'ratio':>6s} "
          f"{'below':>5s} {'equal':>5s} {'above':>5s} {'NA e/m':>6s} {'worst':>9s}  reference")
    for name in args.data:
        X = load(name)
        r = None if args.no_r else run_r(X)
        if r is None:
            r_s, (models, ref), source = None, read_table(DATA / f"mclust_bic_{name}.csv"), "committed mclust 6.0.0"
        else:
            r_s, models, ref = r
            source = "Rscript now"
        for init in inits:
            # warm-up, as R's timing has one: the first call pays for imports
            # (scikit-learn's alone is about a second) and first-use set-up
            emix.select(X, n_components=range(1, 10), covariance_types=models, init_params=init,
                        random_state=0)
            # rounds of one mclust call (a fresh Rscript, its own warm-up untimed) and one
            # emix call per setting: default threads (all cores) and one thread; the least
            # time of each (load from other processes only ever adds time)
            times = {None: [], 1: []}
            r_times = [r_s] if r_s else []
            for rep in range(args.repeat):
                if r_s and rep:
                    again = run_r(X)
                    if again is not None:
                        r_times.append(again[0])
                for threads in times:
                    t0 = time.perf_counter()
                    res = emix.select(X, n_components=range(1, 10), covariance_types=models,
                                      init_params=init, random_state=0, n_threads=threads)
                    times[threads].append(time.perf_counter() - t0)
            e_s, e1_s = min(times[None]), min(times[1])
            r_s = min(r_times) if r_times else None
            c = compare(-raw_table(res, models), ref)  # mclust's sign
            # below cells where the kept fit passed over a higher-likelihood singular one
            # (emix's rule, emix._singular: mclust's table keeps such fits)
            c["below_singular"] = sum(1 for r in res.rows if r.get("other_singular")
                                      and np.isfinite(ref[r["n_components"] - 1, models.index(r["covariance_type"])])
                                      and -r["bic"] < ref[r["n_components"] - 1,
                                                          models.index(r["covariance_type"])] - TOL)
            ratio = f"{e_s / r_s:6.2f}" if r_s else "     -"
            ratio1 = f"{e1_s / r_s:6.2f}" if r_s else "     -"
            r_txt = f"{r_s:8.2f}" if r_s else "       -"
            print(f"{name:9s} {init:19s} {r_txt} {e_s:7.2f} {ratio} {e1_s:7.2f} {ratio1} {c['below']:5d} {c['equal']:5d} "
                  f"{c['above']:5d} {c['only_emix_na']:>2d}/{c['only_mclust_na']:<3d} {c['worst']:9.3f}  {source}"
                  + (f"; {c['below_singular']} below: mclust's fit singular by emix's rule" if c["below_singular"]
                     else ""))
    print(f"times: least of {args.repeat} rounds (mclust, emix default, emix one thread); emix s: select's default (small grids run their cells on "
          f"threads, {os.cpu_count()} cores here), 1 thr s: n_threads=1.")
    print("ratio = emix s / mclust s; below/equal/above: emix's BIC (mclust's sign) vs mclust's, "
          f"within {TOL:g}; NA e/m: cells failed only in emix / only in mclust; worst: lowest emix - mclust.")


if __name__ == "__main__":
    main()
