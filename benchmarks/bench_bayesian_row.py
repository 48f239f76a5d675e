"""One BayesianGaussianMixture row of bench_vs_sklearn, alone and interleaved.

Reproduce (the diag float64 row whose ratio moved with load in the full run):
    python benchmarks/bench_bayesian_row.py --n 1000000 -d 10 -k 5 --cov diag

Time per iteration = (t(max_iter=1 + m) - t(max_iter=1)) / m with tol=0, both
libraries started from the same ``init_params='random_from_data'`` draw; the
two are measured alternately and the least time of ``--repeat`` rounds kept.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.mixture import BayesianGaussianMixture as SK

import emix


def per_iter(cls, X, K, cov, m):
    def fit(it):
        t = time.perf_counter()
        cls(n_components=K, covariance_type=cov, init_params="random_from_data", random_state=0,
            max_iter=it, tol=0).fit(X)
        return time.perf_counter() - t
    return (fit(1 + m) - fit(1)) / m


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("-d", type=int, default=10)
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--cov", default="diag")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--repeat", type=int, default=2)
    a = p.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((a.n, a.d)) + rng.integers(0, a.k, a.n)[:, None] * 3.0).astype(a.dtype)
    sk, em = [], []
    for _ in range(a.repeat):
        sk.append(per_iter(SK, X, a.k, a.cov, a.iters))
        em.append(per_iter(emix.BayesianGaussianMixture, X, a.k, a.cov, a.iters))
    print(f"| {a.n:.0e} | {a.d} | {a.k} | {a.cov} | {a.dtype} | {min(sk):.4f} | {min(em):.4f} | "
          f"{min(em) / min(sk):.2f} |")


if __name__ == "__main__":
    main()
