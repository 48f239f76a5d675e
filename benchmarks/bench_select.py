"""Model selection over K and covariance model: emix.select vs a scikit-learn loop.

Reproduce:
    python benchmarks/bench_select.py                 # faithful + synthetic N=20000, D=5
    python benchmarks/bench_select.py --quick         # synthetic N=4000, for a smoke run
    python benchmarks/bench_select.py --n-jobs 4      # more workers

Rows per data set (K = 1..9 each):

- ``sklearn loop``: scikit-learn's GaussianMixture over its 4 covariance types,
  sequentially, default settings (k-means start, tol=1e-3), best BIC kept. This
  is what a scikit-learn user writes today.
- ``emix 4 types``: emix.select over the same 4 types with the same settings
  (init_params='kmeans', tol=1e-3), one process: the like-for-like row.
- ``emix 14 models``: emix.select over mclust's 14 models with its defaults
  (hierarchical start, tol=1e-5), ``n_jobs=1``, then ``n_jobs=--n-jobs`` (threads for a grid
  of small compiled fits, worker processes otherwise: see emix.selection._pool_threads).

Wall time includes everything (initializations, all EM runs, the criteria).
BIC is emix's lower-is-better value (mclust's is minus this).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np


def sklearn_loop(X, Ks, seed):
    from sklearn.mixture import GaussianMixture

    best = None
    fits = failed = 0
    for K in Ks:
        for cov in ("full", "tied", "diag", "spherical"):
            fits += 1
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    gm = GaussianMixture(K, covariance_type=cov, random_state=seed).fit(X)
                b = gm.bic(X)
            except Exception:
                failed += 1
                continue
            if best is None or b < best[0]:
                best = (b, K, cov)
    return best, fits, failed


def emix_select(X, Ks, models, seed, n_jobs, **kw):
    import emix

    res = emix.select(X, n_components=Ks, covariance_types=models, random_state=seed,
                      n_jobs=n_jobs, **kw)
    row = [r for r in res.rows if r["n_components"] == res.best_params_["n_components"]
           and r["covariance_type"] == res.best_params_["covariance_type"]][0]
    failed = sum(r["error"] is not None for r in res.rows)
    return (row["bic"], row["n_components"], row["covariance_type"]), len(res.rows), failed


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="synthetic N=4000 instead of 20000")
    p.add_argument("--n-jobs", type=int, default=2, help="n_jobs of the parallel emix row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-faithful", action="store_true")
    args = p.parse_args(argv)

    import sklearn

    import emix
    from emix.datasets import load_faithful
    from emix.families.gaussian.mclust import MCLUST_MODELS
    from emix.testing import make_mixture

    Ks = list(range(1, 10))
    sets = []
    if not args.skip_faithful:
        sets.append(("faithful (272 x 2)", load_faithful()[0]))
    N = 4000 if args.quick else 20000
    Xs, _, _ = make_mixture(n_samples=N, n_components=4, n_features=5, separation=4.0, random_state=args.seed)
    sets.append((f"synthetic ({N} x 5, 4 true)", Xs))

    print(f"# emix {emix.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
          f"python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"# command: python benchmarks/bench_select.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    header = f"{'data':<30} {'method':<28} {'fits':>5} {'failed':>6} {'wall s':>8} {'best (K, model)':>18} {'BIC':>12}"
    print(header)
    print("-" * len(header))
    for name, X in sets:
        rows = [
            ("sklearn loop, 4 types", lambda: sklearn_loop(X, Ks, args.seed)),
            ("emix 4 types, n_jobs=1", lambda: emix_select(X, Ks, ["full", "tied", "diag", "spherical"], args.seed,
                                                         1, init_params="kmeans", tol=1e-3)),
            ("emix 14 models, n_jobs=1", lambda: emix_select(X, Ks, list(MCLUST_MODELS), args.seed, 1)),
            (f"emix 14 models, n_jobs={args.n_jobs}", lambda: emix_select(X, Ks, list(MCLUST_MODELS), args.seed,
                                                                       args.n_jobs)),
        ]
        for label, fn in rows:
            wall, (best, fits, failed) = timed(fn)
            print(f"{name:<30} {label:<28} {fits:>5} {failed:>6} {wall:>8.2f} "
                  f"{'(%d, %s)' % (best[1], best[2]):>18} {best[0]:>12.3f}", flush=True)


if __name__ == "__main__":
    main()
