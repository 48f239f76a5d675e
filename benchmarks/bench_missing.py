"""Cost of one EM iteration with missing values against a complete-data one.

(N, D, K) = (2e5, 16, 16), 'full' covariances, 10% of the entries missing
completely at random (MCAR). Both fits start from the same parameters and run
a fixed number of iterations (tol=0): the time per iteration is the least
time between two iterations (measured through ``callback``) over ``--repeat``
fits of each kind, run alternately (complete, missing, complete, ...), so
that load from other processes on a shared machine, which only ever adds
time, affects both sides alike. The issue's target is a ratio of at most 3.

    python benchmarks/bench_missing.py [--n 200000] [--d 16] [--k 16] [--frac 0.1] [--iters 5]

Prints one line per setting and a JSON summary (also written with --json PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--frac", type=float, default=0.1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--covariance-type", default="full")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from emix import GaussianMixture

    rng = np.random.default_rng(0)
    N, D, K = args.n, args.d, args.k
    centers = rng.normal(scale=4.0, size=(K, D))
    X = centers[rng.integers(K, size=N)] + rng.normal(size=(N, D))
    Xm = X.copy()
    Xm[rng.random(X.shape) < args.frac] = np.nan
    n_patterns = len(np.unique(np.isnan(Xm), axis=0))

    start = GaussianMixture(K, covariance_type=args.covariance_type, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start.fit(X[:20_000])
    inits = dict(weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_)

    def per_iter(data, missing):
        """Least time between two iteration callbacks of one fit (the EM
        loop alone: not the one-off sort by pattern, the initial fill or the
        final labelling pass)."""
        stamps = []
        gm = GaussianMixture(K, covariance_type=args.covariance_type, max_iter=args.iters + 1, tol=0.0,
                             missing=missing, callback=lambda info: stamps.append(time.perf_counter()),
                             **inits)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.fit(data)
        return float(np.min(np.diff(stamps)))

    t_complete = t_missing = np.inf
    for _ in range(args.repeat):
        t_complete = min(t_complete, per_iter(X, "error"))
        t_missing = min(t_missing, per_iter(Xm, "em"))
    out = dict(n=N, d=D, k=K, covariance_type=args.covariance_type, missing_fraction=args.frac,
               n_patterns=int(n_patterns), cores=len(os.sched_getaffinity(0)),
               s_per_iter_complete=t_complete, s_per_iter_missing=t_missing, ratio=t_missing / t_complete)
    print(f"(N, D, K) = ({N}, {D}, {K}) {args.covariance_type}, {args.frac:.0%} MCAR, {n_patterns} patterns, "
          f"{out['cores']} cores: complete {t_complete:.3f} s/iter, missing {t_missing:.3f} s/iter, "
          f"ratio {out['ratio']:.2f}")
    print(json.dumps(out))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
