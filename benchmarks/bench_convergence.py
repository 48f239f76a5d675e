"""Iterations and time to converge: plain EM vs SQUAREM vs scikit-learn, side
by side in one run, from the same initial parameters.

Reproduce:
    python benchmarks/bench_convergence.py --single-thread          # all workloads (a few minutes)
    python benchmarks/bench_convergence.py --single-thread --quick  # smaller N, fewer workloads

Methods (tol = 1e-6 on the change of the mean log-likelihood, reg_covar = 1e-6):

- ``EM``: ``emix.core.em.fit`` (plain EM; the loop the estimator runs);
- ``SQUAREM``: ``emix.core.accel.fit_squarem`` (S3 steps, monotone safeguard,
  convergence judged per cycle; its iteration count is the number of EM-step
  evaluations, the unit of cost);
- ``sklearn``: ``sklearn.mixture.GaussianMixture(tol=1e-6, max_iter=...)`` with
  weights_init / means_init / precisions_init set to the same parameters.

Both emix runs use ``emix.backends.BlockReducer`` over X with the estimator's
default block size; their wall time is the core loop only, scikit-learn's is
its whole ``fit`` (validation included: negligible next to the loop here).
The initial parameters come from emix's initializations, each workload run
twice: ``init_params='kmeans'`` (EM then starts close and converges in tens of
iterations) and ``'random_from_data'`` (K random rows as means: the slow
starts where acceleration matters), through
``emix.GaussianMixture(K, covariance_type=..., init_params=..., max_iter=0, random_state=0).fit(X)._params()``.

"final loglik" is the mean log-likelihood of the *returned* parameters, all
evaluated by the same code (one emix E-step), so the three columns compare
exactly. A workload is flagged when SQUAREM ends lower than plain EM by more
than 1e-6. Both may legitimately stop at different points of a flat ridge or
in different local maxima; the flag says where the acceleration cost
likelihood, not that something is wrong. Note: with reg_covar > 0 the EM step
is not an exact maximizer, so plain EM is not exactly monotone (it can lose
O(reg_covar) per step on near-singular data; docs/design.md, point 5). The
columns "EM drops" / "SQ drops" count steps in each history that decreased the
log-likelihood by more than 1e-9.

Workloads: the shapes of ``bench_roofline.py`` (blobs with centers spread so
that they overlap alike in every D, see ``make_blobs``) with N reduced so
that the script runs in a few minutes ((1e6, 2, 8) -> 2e4 rows,
(2e5, 16, 16) -> 1e4, (5e4, 64, 32) -> 5e3, (1e6, 10, 5) -> 2e4; float64),
full and diag, plus real data that ships with scikit-learn and emix
(standardized; nothing is downloaded): digits (1797 x 64), wine (178 x 13),
breast cancer (569 x 30), Old Faithful (272 x 2, ``emix.datasets``), for a few K.
``--quick`` divides the synthetic N by 4 and keeps the smaller K of each real set.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

TOL = 1e-6
REG = 1e-6

SYNTH = [  # (name, N, D, K)
    ("blobs 1e6x2 K8 -> N/20", 50_000, 2, 8),
    ("blobs 2e5x16 K16 -> N/10", 20_000, 16, 16),
    ("blobs 5e4x64 K32 -> N/5", 10_000, 64, 32),
    ("blobs 1e6x10 K5 -> N/20", 50_000, 10, 5),
]
INITS = ("kmeans", "random_from_data")
REAL_K = {"digits": (5, 10), "wine": (2, 3), "breast_cancer": (2, 3), "faithful": (2, 3)}


def make_blobs(N, D, K, seed=0):
    """K unit-variance blobs with centers ~ N(0, s^2 I), s = 4 sqrt(2 / D): the
    expected distance between centers (about 8) is the same for every D, so
    clusters overlap and EM has work to do (with bench_roofline's s = 4 for all
    D, the D >= 10 rows converge from the k-means init in 2 iterations)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0 * np.sqrt(2.0 / D), size=(K, D))
    labels = rng.integers(0, K, size=N)
    return centers[labels] + rng.normal(size=(N, D))


def load_real(name):
    from sklearn import datasets
    from sklearn.preprocessing import StandardScaler

    if name == "faithful":
        from emix.datasets import load_faithful

        X = load_faithful()[0]
    else:
        X = getattr(datasets, f"load_{name}")().data
    # StandardScaler leaves constant columns (digits has some) at scale 1
    return StandardScaler().fit_transform(np.asarray(X, dtype=np.float64))


def workloads(quick):
    for name, N, D, K in SYNTH:
        if quick:
            N //= 4
        X = make_blobs(N, D, K)
        for ct in ("full", "diag"):
            for init in INITS:
                yield f"{name}" + (" /4" if quick else ""), X, K, ct, init
    for name, ks in REAL_K.items():
        X = load_real(name)
        for K in ks[:1] if quick else ks:
            for ct in ("full", "diag"):
                for init in INITS:
                    yield f"{name} ({X.shape[0]}x{X.shape[1]})", X, K, ct, init


def exact_mean_loglik(reduce, params, structure):
    from emix.core.em import e_step

    s = reduce(lambda Xb, wb: e_step(Xb, wb, params, structure))
    return s.loglik / s.sum_w


def drops(history):
    h = np.asarray(history, dtype=np.float64)
    return int(np.sum(np.diff(h) < -1e-9)) if h.size > 1 else 0


def run_workload(X, K, ct, init, max_iter):
    from sklearn.mixture import GaussianMixture as SkGM

    import emix
    from emix.backends import BlockReducer, default_block_rows
    from emix.core.accel import fit_squarem
    from emix.core.em import fit
    from emix.core.types import GaussianParams
    from emix.families.gaussian import get_structure

    structure = get_structure(ct)
    N, D = X.shape
    rows = default_block_rows(N, structure.temp_per_row(K, D), X.dtype.itemsize)
    reduce = BlockReducer(X, None, rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p0 = emix.GaussianMixture(n_components=K, covariance_type=ct, init_params=init, max_iter=0,
                                  random_state=0).fit(X)._params()
    out = {}
    for name, fn in (("EM", fit), ("SQUAREM", fit_squarem)):
        t = time.perf_counter()
        try:
            r = fn(reduce, p0, structure, tol=TOL, max_iter=max_iter, reg_covar=REG)
        except Exception as exc:
            out[name] = dict(error=f"{type(exc).__name__}: {str(exc)[:80]}")
            continue
        dt = time.perf_counter() - t
        out[name] = dict(n_iter=r.n_iter, seconds=dt, converged=bool(r.converged),
                         loglik=exact_mean_loglik(reduce, r.params, structure), drops=drops(r.history))
    gm = SkGM(n_components=K, covariance_type=ct, tol=TOL, reg_covar=REG, max_iter=max_iter, n_init=1,
              weights_init=p0.weights, means_init=p0.means,
              precisions_init=structure.precisions(p0.precisions_cholesky))
    t = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.fit(X)
        dt = time.perf_counter() - t
        pk = GaussianParams(weights=gm.weights_, means=gm.means_, covariances=gm.covariances_,
                            precisions_cholesky=gm.precisions_cholesky_)
        out["sklearn"] = dict(n_iter=int(gm.n_iter_), seconds=dt, converged=bool(gm.converged_),
                              loglik=exact_mean_loglik(reduce, pk, structure), drops=None)
    except Exception as exc:
        out["sklearn"] = dict(error=f"{type(exc).__name__}: {str(exc)[:80]}")
    return out


def fmt(r):
    if "error" in r:
        return "failed", "", ""
    mark = "" if r["converged"] else " (max_iter)"
    return f"{r['n_iter']}{mark}", f"{r['seconds']:.2f}", f"{r['loglik']:.6f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="synthetic N / 4, smaller K only on real data")
    ap.add_argument("--single-thread", action="store_true", help="threadpoolctl limit 1")
    ap.add_argument("--max-iter", type=int, default=2000)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args()

    import sklearn

    import emix

    print(f"emix {emix.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}; "
          f"tol {TOL:g}, reg_covar {REG:g}, max_iter {args.max_iter}; "
          f"{'1 thread' if args.single_thread else 'all threads'}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs\n")
    hdr = ("| workload | K | cov | init | EM iters | SQUAREM iters | sklearn iters | EM/SQUAREM iters | EM s | SQUAREM s "
           "| sklearn s | EM loglik | SQUAREM loglik | sklearn loglik | SQ - EM loglik | EM drops | SQ drops |")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1), flush=True)
    rows = []
    t_start = time.perf_counter()
    with threadpool_limits(limits=1) if args.single_thread else nullcontext():
        for name, X, K, ct, init in workloads(args.quick):
            res = run_workload(X, K, ct, init, args.max_iter)
            em, sq, sk = res["EM"], res["SQUAREM"], res["sklearn"]
            ratio = em["n_iter"] / sq["n_iter"] if "error" not in em and "error" not in sq else np.nan
            dll = sq["loglik"] - em["loglik"] if "error" not in em and "error" not in sq else np.nan
            flag = " **SQUAREM lower**" if dll < -1e-6 else ""
            (ei, es, el), (si, ss, sl), (ki, ks, kl) = fmt(em), fmt(sq), fmt(sk)
            print(f"| {name} | {K} | {ct} | {init} | {ei} | {si} | {ki} | {ratio:.2f} | {es} | {ss} | {ks} | {el} | {sl} | "
                  f"{kl} | {dll:+.1e}{flag} | {em.get('drops', '')} | {sq.get('drops', '')} |", flush=True)
            rows.append(dict(workload=name, N=X.shape[0], D=X.shape[1], K=K, cov=ct, init=init, ratio=ratio,
                             dloglik=dll, **res))
    ratios = np.array([r["ratio"] for r in rows], dtype=float)
    ok = ratios[np.isfinite(ratios)]
    print(f"\nEM/SQUAREM iteration ratio: median {np.median(ok):.2f} over {ok.size} workloads "
          f"(min {ok.min():.2f}, max {ok.max():.2f})")
    for init in INITS:
        r_i = np.array([r["ratio"] for r in rows if r["init"] == init], dtype=float)
        r_i = r_i[np.isfinite(r_i)]
        slow = np.array([r["ratio"] for r in rows if r["init"] == init and r["EM"].get("n_iter", 0) >= 50], dtype=float)
        print(f"  init {init}: median {np.median(r_i):.2f} over {r_i.size}; on the {slow.size} where plain EM "
              f"needs >= 50 iterations: median {np.median(slow) if slow.size else float('nan'):.2f}")
    em_t = np.array([r["EM"].get("seconds", np.nan) for r in rows])
    sq_t = np.array([r["SQUAREM"].get("seconds", np.nan) for r in rows])
    tr = em_t / sq_t
    print(f"EM/SQUAREM wall-time ratio: median {np.nanmedian(tr):.2f}")
    lower = [r for r in rows if np.isfinite(r["dloglik"]) and r["dloglik"] < -1e-6]
    print("SQUAREM ended lower than plain EM (by > 1e-6) on: "
          + ("; ".join(f"{r['workload']} K={r['K']} {r['cov']} {r['init']} ({r['dloglik']:+.2e})" for r in lower)
             or "none"))
    not_conv = [f"{r['workload']} K={r['K']} {r['cov']} {r['init']} {m}" for r in rows for m in ("EM", "SQUAREM", "sklearn")
                if "error" in r[m] or not r[m]["converged"]]
    print("not converged / failed: " + ("; ".join(not_conv) or "none"))
    print(f"(ran in {time.perf_counter() - t_start:.0f} s; load average now {os.getloadavg()[0]:.1f})")
    cmd = " ".join(shlex.quote(a) for a in ["python", "benchmarks/" + Path(__file__).name] + sys.argv[1:])
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ)
    # the BLAS kernel depends on these variables: name them either way
    print(f"reproduce: {env if env else 'env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE'} {cmd}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(rows=rows, quick=args.quick, single_thread=args.single_thread,
                                             max_iter=args.max_iter), indent=1, default=float))


if __name__ == "__main__":
    main()
