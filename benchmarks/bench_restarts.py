"""n_init restarts: sequential vs GaussianMixture(n_jobs=...) vs scikit-learn.

Reproduce:
    python benchmarks/bench_restarts.py                # every workload, 5 rounds, n_jobs=2
    python benchmarks/bench_restarts.py --quick        # medium workload at N=2e4, 3 rounds
    python benchmarks/bench_restarts.py --n-jobs 4 --out -

Workloads (K elongated, overlapping clusters, so that EM needs 10 to 30
iterations at scikit-learn's default tol=1e-3; 'full' covariances,
max_iter=100), each from the default k-means start and from k-means++:

- small:       N=2000, D=5, K=5, n_init=10
- small-tight: the same with tol=1e-6 (EM up to max_iter=100: the EM loops,
  not the initializations, take the time)
- medium:      N=2e5,  D=8, K=8, n_init=4

Columns (wall time of one whole ``fit``, median over the rounds; the variants
run round-robin in every round, so a change in the machine's load hits them
alike):

- ``sklearn``: scikit-learn's GaussianMixture, restarts one after the other,
  BLAS held to one thread as emix holds it (``--sklearn-blas-threads 0``:
  its default threads, 3 to 10 times slower on a shared 2-core machine).
- ``emix seq``: ``n_jobs=None``: restarts one after the other, each fit's
  ``n_threads`` (all cores) threads over blocks of rows, BLAS one thread.
- ``emix procs`` / ``emix threads``: ``n_jobs=--n-jobs`` with joblib's
  default process backend (loky, workers started once and reused: the first
  call's extra start-up is printed separately) / with
  ``joblib.parallel_config(backend='threading')``.
- ``init share``: the initializations alone (``max_iter=0``: the k-means or
  k-means++ starts, drawn one after the other in every variant, timed in
  the same rounds) over ``emix seq``: the part parallel restarts cannot
  shorten.

Every emix variant must give the same fit bit for bit (checked: ``same``);
``d lb vs sklearn`` is emix's minus scikit-learn's lower bound.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

WORKLOADS = {
    "small": dict(N=2000, D=5, K=5, n_init=10, tol=1e-3),
    "small-tight": dict(N=2000, D=5, K=5, n_init=10, tol=1e-6),
    "medium": dict(N=200_000, D=8, K=8, n_init=4, tol=1e-3),
}
INITS = ("kmeans", "k-means++")


def make_data(N, D, K, seed):
    """K elongated, overlapping Gaussian clusters (random full covariances):
    k-means starts are rough there and EM needs 10 to 30 iterations."""
    r = np.random.RandomState(seed)
    means = r.normal(0.0, 1.5, (K, D))
    labels = r.randint(K, size=N)
    A = r.normal(size=(K, D, D)) * r.uniform(0.2, 1.5, size=(K, 1, D))
    return means[labels] + np.einsum("nij,nj->ni", A[labels], r.normal(size=(N, D)))


def fit_time(make, X, backend=None, blas_threads=None):
    """Seconds for one ``fit`` and the fitted model (``backend``: joblib's;
    ``blas_threads``: a BLAS thread limit around the fit)."""
    from contextlib import nullcontext

    from joblib import parallel_config
    from threadpoolctl import threadpool_limits

    gm = make()
    with warnings.catch_warnings(), threadpool_limits(limits=blas_threads, user_api="blas"):
        warnings.simplefilter("ignore")
        with nullcontext() if backend is None else parallel_config(backend=backend):
            t = time.perf_counter()
            gm.fit(X)
            return time.perf_counter() - t, gm


def fit_differences(a, b):
    """The fitted attributes in which two fits differ (none: the same fit bit for bit)."""
    names = ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bound_", "n_iter_")
    return [f"{n} (max abs diff {np.max(np.abs(np.asarray(getattr(a, n)) - np.asarray(getattr(b, n)))):.1e})"
            for n in names if not np.array_equal(getattr(a, n), getattr(b, n))]


def blas_summary():
    from threadpoolctl import threadpool_info

    return ", ".join(f"{i['internal_api']}({i['num_threads']} threads)" for i in threadpool_info())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="medium workload at N=2e4, 3 rounds")
    p.add_argument("--n-jobs", type=int, default=2, help="workers for the parallel rows")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5, --quick 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sklearn-blas-threads", type=int, default=1,
                   help="BLAS threads for scikit-learn's fits (0: its default)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of "
                   + ", ".join(WORKLOADS))
    p.add_argument("--inits", default=",".join(INITS), help="comma-separated subset of " + ", ".join(INITS))
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "restarts.md"),
                   help="markdown file for the results ('-' for none)")
    args = p.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)

    import joblib
    import sklearn
    from sklearn.mixture import GaussianMixture as SkGM

    import emix

    workloads = {k: WORKLOADS[k] for k in args.workloads.split(",")}
    if args.quick and "medium" in workloads:
        workloads["medium"] = dict(workloads["medium"], N=20_000)

    cmd = "python benchmarks/bench_restarts.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    lines = [
        f"emix {emix.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
        f"joblib {joblib.__version__}; {platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores "
        f"(load average at start {os.getloadavg()[0]:.2f}); BLAS: {blas_summary()}",
        f"n_jobs={args.n_jobs}; scikit-learn's BLAS threads: {args.sklearn_blas_threads or 'default'}; "
        f"median of {rounds} rounds, variants round-robin in each; command: `{cmd}`",
        "",
        "| workload | init | N | D | K | n_init | tol | sklearn s | emix seq s | emix procs s | emix threads s "
        "| seq / procs | seq / threads | sklearn / procs | init share | same | d lb vs sklearn |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    cold = None
    data = {}
    for name, w in workloads.items():
        key = (w["N"], w["D"], w["K"])
        if key not in data:
            data[key] = make_data(*key, args.seed)
        X = data[key]
        for init in args.inits.split(","):
            common = dict(n_components=w["K"], covariance_type="full", n_init=w["n_init"], tol=w["tol"],
                          init_params=init, random_state=args.seed)
            sk_blas = args.sklearn_blas_threads or None
            variants = {
                "sklearn": (lambda: SkGM(**common), None, sk_blas),
                "seq": (lambda: emix.GaussianMixture(**common), None, None),
                "procs": (lambda: emix.GaussianMixture(n_jobs=args.n_jobs, **common), "loky", None),
                "threads": (lambda: emix.GaussianMixture(n_jobs=args.n_jobs, **common), "threading", None),
                "init": (lambda: emix.GaussianMixture(max_iter=0, **common), None, None),
            }
            if cold is None:  # the run's first process-backed fit starts the workers (reused after)
                cold = (name, init, fit_time(variants["procs"][0], X, "loky")[0])
            times = {k: [] for k in variants}
            models = {}
            for _ in range(rounds):
                for k, (make, backend, blas) in variants.items():
                    t, models[k] = fit_time(make, X, backend, blas)
                    times[k].append(t)
            med = {k: statistics.median(v) for k, v in times.items()}
            n_iter = []
            fit_time(lambda: emix.GaussianMixture(callback=lambda info: n_iter.append(1), **common), X)
            diffs = {k: fit_differences(models["seq"], models[k]) for k in ("procs", "threads")}
            same = not any(diffs.values())
            lines.append(
                f"| {name} | {init} | {w['N']:g} | {w['D']} | {w['K']} | {w['n_init']} | {w['tol']:g} | {med['sklearn']:.3f} "
                f"| {med['seq']:.3f} | {med['procs']:.3f} | {med['threads']:.3f} | {med['seq'] / med['procs']:.2f} "
                f"| {med['seq'] / med['threads']:.2f} | {med['sklearn'] / med['procs']:.2f} "
                f"| {med['init'] / med['seq']:.2f} | {'yes' if same else 'NO'} "
                f"| {models['seq'].lower_bound_ - models['sklearn'].lower_bound_:+.1e} |"
            )
            notes.append(f"- {name}, {init}: {len(n_iter)} EM iterations over the {w['n_init']} restarts "
                         f"(best restart {models['seq'].n_iter_}); all rounds (s): "
                         + "; ".join(f"{k} " + " ".join(f"{t:.3f}" for t in v) for k, v in times.items()))
            for k, d in diffs.items():
                if d:
                    notes.append(f"  - NOT THE SAME FIT: emix seq vs {k} (last round) differ in {', '.join(d)}")
            print(lines[-1], flush=True)
    notes.insert(0, f"- The run's first process-backed fit ({cold[0]}, {cold[1]}) took {cold[2]:.3f} s, "
                    "starting the workers; later fits reuse them.")
    text = "\n".join(lines + [""] + notes) + "\n"
    print()
    print(text)
    if args.out != "-":
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
