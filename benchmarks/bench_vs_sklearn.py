"""emix vs scikit-learn, side by side in one run: time per EM iteration, peak
memory and final log-likelihood, from the same initial parameters.

Reproduce:
    python benchmarks/bench_vs_sklearn.py            # all rows, float64 and float32
    python benchmarks/bench_vs_sklearn.py --quick    # smaller N, for a smoke run
    python benchmarks/bench_vs_sklearn.py --single-thread   # one thread on both sides
    python benchmarks/bench_vs_sklearn.py --bayesian  # BayesianGaussianMixture rows instead

Time per iteration = (t(max_iter=1 + m) - t(max_iter=1)) / m with tol=0, the
best of ``--repeat`` runs, so initialization and the final E-step cancel.
Peak memory = tracemalloc peak of the fit (numpy reports its buffers to
tracemalloc), measured in a separate run. Both libraries get the same
weights_init / means_init / precisions_init, so they run the same iterations.
With ``--bayesian`` both BayesianGaussianMixture classes (Dirichlet-process
prior, the defaults) start from the same initial responsibilities instead
(``init_params='random_from_data'``, the same ``random_state``), and the last
column is the relative difference of the final lower bounds.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
import warnings

import numpy as np

ROWS = [
    (1_000_000, 2, 8, "full"),
    (200_000, 16, 16, "full"),
    (50_000, 64, 32, "full"),
    (1_000_000, 10, 5, "diag"),
]


def make_data(N, D, K, dtype, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(K, D))
    labels = rng.integers(0, K, size=N)
    X = centers[labels] + rng.normal(size=(N, D))
    return X.astype(dtype)


def make_init(X, K, ct, seed=1):
    rng = np.random.default_rng(seed)
    N, D = X.shape
    means = X[rng.choice(N, K, replace=False)].astype(np.float64)
    weights = np.full(K, 1.0 / K)
    var = X[:20000].astype(np.float64).var(axis=0).mean()
    if ct == "full":
        prec = np.stack([np.eye(D) / var] * K)
    elif ct == "tied":
        prec = np.eye(D) / var
    elif ct == "diag":
        prec = np.full((K, D), 1.0 / var)
    else:
        prec = np.full(K, 1.0 / var)
    return dict(weights_init=weights, means_init=means, precisions_init=prec)


EMIX_KWARGS = {}


def bayesian_init(X, K, ct):
    """Same initial responsibilities on both sides (BayesianGaussianMixture
    takes no initial parameters): K rows drawn by the same random state."""
    return {"init_params": "random_from_data", "random_state": 0}


def run(cls, X, K, ct, init, max_iter):
    extra = EMIX_KWARGS if cls.__module__.startswith("emix") else {}
    gm = cls(n_components=K, covariance_type=ct, tol=0.0, max_iter=max_iter, **init, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        gm.fit(X)
        dt = time.perf_counter() - t
    return dt, gm


def per_iter(cls, X, K, ct, init, m, repeat):
    t1 = min(run(cls, X, K, ct, init, 1)[0] for _ in range(repeat))
    best, gm = None, None
    for _ in range(repeat):
        dt, gm = run(cls, X, K, ct, init, 1 + m)
        best = dt if best is None else min(best, dt)
    return max(best - t1, 1e-9) / m, gm


def peak_mem(cls, X, K, ct, init):
    gc.collect()
    tracemalloc.start()
    run(cls, X, K, ct, init, 2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main():
    import sklearn
    from sklearn.mixture import GaussianMixture as SkGM
    from threadpoolctl import threadpool_info

    import emix
    from emix import GaussianMixture as EmGM

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="divide N by 10")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations m")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--bayesian", action="store_true",
                    help="BayesianGaussianMixture (variational Bayes) rows instead of GaussianMixture")
    ap.add_argument("--single-thread", action="store_true",
                    help="one thread on both sides: BLAS limited to 1 (threadpoolctl) and emix n_threads=1")
    args = ap.parse_args()
    if args.bayesian:
        from sklearn.mixture import BayesianGaussianMixture as SkGM

        from emix import BayesianGaussianMixture as EmGM
    if args.single_thread:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        EMIX_KWARGS["n_threads"] = 1

    blas = ", ".join(f"{i['internal_api']}({i['num_threads']} threads)" for i in threadpool_info())
    print(f"emix {emix.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}; BLAS: {blas}")
    print(f"timed iterations per fit: {args.iters}, best of {args.repeat}\n")
    last = "rel. lower bound diff" if args.bayesian else "mean loglik diff"
    hdr = ("| N | D | K | cov | dtype | sklearn s/iter | emix s/iter | ratio emix/sklearn | sklearn peak MiB "
           f"| emix peak MiB | {last} |")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for N, D, K, ct in ROWS:
        if args.quick:
            N //= 10
        for dt_name in args.dtypes.split(","):
            dtype = np.dtype(dt_name)
            X = make_data(N, D, K, dtype)
            init = bayesian_init(X, K, ct) if args.bayesian else make_init(X, K, ct)
            try:
                t_sk, g_sk = per_iter(SkGM, X, K, ct, init, args.iters, args.repeat)
            except ValueError as exc:
                print(f"| {N:.0e} | {D} | {K} | {ct} | {dt_name} | scikit-learn failed: {str(exc)[:60]} |")
                continue
            t_em, g_em = per_iter(EmGM, X, K, ct, init, args.iters, args.repeat)
            if args.no_memory:
                m_sk = m_em = float("nan")
            else:
                m_sk = peak_mem(SkGM, X, K, ct, init) / 2**20
                m_em = peak_mem(EmGM, X, K, ct, init) / 2**20
            dll = g_em.lower_bound_ - g_sk.lower_bound_
            if args.bayesian:
                dll = float(np.ravel(dll)[0]) / abs(float(np.ravel(g_sk.lower_bound_)[0]))
            print(f"| {N:.0e} | {D} | {K} | {ct} | {dt_name} | {t_sk:.4f} | {t_em:.4f} | {t_em / t_sk:.2f} | {m_sk:.0f} | {m_em:.0f} | {dll:.1e} |", flush=True)
            del X


if __name__ == "__main__":
    main()
