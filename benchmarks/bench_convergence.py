"""Iterations and time to converge: plain EM vs SQUAREM vs scikit-learn, side
by side in one run, from the same initial parameters, under two metrics.

Reproduce:
    python benchmarks/bench_convergence.py --single-thread --json benchmarks/results/convergence_single.json \
        --md benchmarks/results/convergence_single.md                   # all 48 workloads
    python benchmarks/bench_convergence.py --single-thread --quick      # smaller N, fewer workloads

Methods (tol = 1e-6, reg_covar = 1e-6):

- ``EM``: ``emix.core.em.fit`` (plain EM; the loop the estimator runs);
- ``SQUAREM``: ``emix.core.accel.fit_squarem`` (S3 steps with adaptive step
  bounds, monotone safeguard, plain EM's convergence rule on its EM steps; its
  iteration count is the number of EM-step evaluations, every one counted:
  stabilizing steps and rejected extrapolations included);
- ``sklearn``: ``sklearn.mixture.GaussianMixture(tol=1e-6, max_iter=...)`` with
  weights_init / means_init / precisions_init set to the same parameters
  (stopping rule only: a check that plain emix EM is scikit-learn's EM).

Metric 1, **stopping rule**: each method runs until its own test fires (plain
EM: one step changes the mean log-likelihood by less than tol) and we report
its iterations, wall time and the final log-likelihood. On slowly converging
problems this stops plain EM far from the optimum (steps are small there, not
the remaining gap), so the counts of a method that takes large steps are not
counts "to the same tolerance".

Metric 2, **to within tol of the optimum**: each emix method is also run to
tol = 1e-10 (``--tight-max-iter`` evaluations at most) from the same start;
its final mean log-likelihood is L*. The count is the number of EM-step
evaluations (and the wall time of that tight run up to then) until the mean
log-likelihood of the accepted point is within tol of L*. When both tight runs
end within 1e-6 of each other (the same stationary point), L* is the larger of
the two for both methods; otherwise each method is measured against its own
L*, the row is marked, and SQUAREM "ended lower" there if its L* is the
lower one. A tight run that hits its evaluation cap is marked "(cap)": its L*
is then only a lower bound and its count an underestimate.

Both emix runs use ``emix.backends.BlockReducer`` over X with the estimator's
default block size; their wall time is the core loop only, scikit-learn's is
its whole ``fit`` (validation included: negligible next to the loop here).
The initial parameters come from emix's initializations, each workload run
twice: ``init_params='kmeans'`` (EM then starts close) and
``'random_from_data'`` (K random rows as means: the slow starts), through
``emix.GaussianMixture(K, covariance_type=..., init_params=..., max_iter=0, random_state=0).fit(X)._params()``.

"final loglik" is the mean log-likelihood of the *returned* parameters, all
evaluated by the same code (one emix E-step), so the columns compare exactly.
Under metric 1 a workload is flagged when SQUAREM ends lower than plain EM by
more than 1e-6 (both may stop at different points of a flat ridge); under
metric 2 when its tight-run optimum is lower by more than 1e-6 (a different
stationary point). Note: with reg_covar > 0 the EM step is not an exact
maximizer, so plain EM is not exactly monotone (it can lose O(reg_covar) per
step on near-singular data; docs/design.md, point 5). The columns "EM drops" /
"SQ drops" count steps in each (stopping-rule) history that decreased the
log-likelihood by more than 1e-9.

Workloads: the shapes of ``bench_roofline.py`` (blobs with centers spread so
that they overlap alike in every D, see ``make_blobs``) with N reduced
((1e6, 2, 8) -> 5e4 rows, (2e5, 16, 16) -> 2e4, (5e4, 64, 32) -> 1e4,
(1e6, 10, 5) -> 5e4; float64), full and diag, plus real data that ships with
scikit-learn and emix (standardized; nothing is downloaded): digits
(1797 x 64), wine (178 x 13), breast cancer (569 x 30), Old Faithful
(272 x 2, ``emix.datasets``), for a few K. ``--quick`` divides the synthetic
N by 4 and keeps the smaller K of each real set.
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
TIGHT_TOL = 1e-10
SAME = 1e-6  # tight-run optima closer than this: the same stationary point

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


def traced(fn, reduce, p0, structure, tol, max_iter):
    """Run ``fn`` recording (evaluations, mean log-likelihood, seconds) at each
    accepted point; returns the result, the trace and the wall time."""
    trace = []
    t0 = time.perf_counter()

    def cb(n, lb, change):
        trace.append((n, lb, time.perf_counter() - t0))

    r = fn(reduce, p0, structure, tol=tol, max_iter=max_iter, reg_covar=REG, callback=cb)
    return r, trace, time.perf_counter() - t0


def first_within(trace, target):
    """Evaluations and seconds until the trace is within TOL of ``target``."""
    for n, lb, t in trace:
        if lb >= target - TOL:
            return n, t
    return None, None


def run_workload(X, K, ct, init, max_iter, tight_max_iter):
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
        # metric 1: the method's own stopping rule at TOL
        try:
            r, _, dt = traced(fn, reduce, p0, structure, TOL, max_iter)
        except Exception as exc:
            out[name] = dict(error=f"{type(exc).__name__}: {str(exc)[:80]}")
            continue
        out[name] = dict(n_iter=r.n_iter, seconds=dt, converged=bool(r.converged),
                         loglik=exact_mean_loglik(reduce, r.params, structure), drops=drops(r.history))
        # metric 2: a tight run of the same method from the same start
        try:
            rt, trace, dtt = traced(fn, reduce, p0, structure, TIGHT_TOL, tight_max_iter)
        except Exception as exc:
            out[name]["tight_error"] = f"{type(exc).__name__}: {str(exc)[:80]}"
            continue
        out[name].update(tight=dict(n_iter=rt.n_iter, seconds=dtt, converged=bool(rt.converged),
                                    loglik=exact_mean_loglik(reduce, rt.params, structure)),
                         _trace=trace)
    em, sq = out["EM"], out["SQUAREM"]
    if "tight" in em and "tight" in sq:
        le, ls = em["tight"]["loglik"], sq["tight"]["loglik"]
        same = abs(ls - le) <= SAME
        targets = (max(le, ls),) * 2 if same else (le, ls)
        for m, target in zip((em, sq), targets):
            n, t = first_within(m["_trace"], target)
            m["opt"] = dict(target=target, n_iter=n, seconds=t, gap_at_stop=target - m["loglik"])
        out["same_optimum"] = bool(same)
        out["dloglik_tight"] = ls - le
    for m in (em, sq):
        m.pop("_trace", None)
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


def fmt_opt(r):
    if "opt" not in r or r["opt"]["n_iter"] is None:
        return "n/a", ""
    cap = "" if r["tight"]["converged"] else " (cap)"
    return f"{r['opt']['n_iter']}{cap}", f"{r['opt']['seconds']:.2f}"


def ratio(a, b):
    return a / b if a is not None and b else np.nan


def summary(rows, key, label, out, min_em=None):
    """Median and range of EM/SQUAREM ratios of ``key(row) -> (em, sq)``; with
    ``min_em``, only the rows where EM's value is at least that."""
    if min_em is not None:
        rows = [r for r in rows if key(r)[0] is not None and key(r)[0] >= min_em]
    vals = np.array([ratio(*key(r)) for r in rows], dtype=float)
    ok = vals[np.isfinite(vals)]
    if not ok.size:
        return
    worst = min((r for r in rows if np.isfinite(ratio(*key(r)))), key=lambda r: ratio(*key(r)))
    out(f"- {label}: median {np.median(ok):.2f} over {ok.size} workloads (min {ok.min():.2f}, max {ok.max():.2f}; "
        f"worst: {worst['workload']} K={worst['K']} {worst['cov']} {worst['init']}); "
        f"SQUAREM slower on {int(np.sum(ok < 1))}")
    for init in INITS:
        v = np.array([ratio(*key(r)) for r in rows if r["init"] == init], dtype=float)
        v = v[np.isfinite(v)]
        if v.size:
            out(f"  - init {init}: median {np.median(v):.2f} over {v.size}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="synthetic N / 4, smaller K only on real data")
    ap.add_argument("--single-thread", action="store_true", help="threadpoolctl limit 1")
    ap.add_argument("--max-iter", type=int, default=2000)
    ap.add_argument("--tight-max-iter", type=int, default=20000,
                    help="evaluation cap of the tol=1e-10 reference runs (metric 2)")
    ap.add_argument("--only", default=None, help="run only workloads whose 'name K cov init' contains this")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument("--md", type=Path, default=None, help="also write the printed report here")
    args = ap.parse_args()

    import sklearn

    import emix

    lines = []

    def out(line=""):
        print(line, flush=True)
        lines.append(line)

    out(f"emix {emix.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}; "
        f"tol {TOL:g} (reference runs {TIGHT_TOL:g}, at most {args.tight_max_iter} evaluations), "
        f"reg_covar {REG:g}, max_iter {args.max_iter}; "
        f"{'1 thread' if args.single_thread else 'all threads'}; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    hdr = ("| workload | K | cov | init | stop rule: iters EM / SQ / sklearn | EM/SQ | s EM / SQ / sklearn "
           "| loglik EM | SQ - EM | to optimum: iters EM / SQ | EM/SQ | s EM / SQ | L* EM | SQ - EM L* "
           "| EM gap at stop | drops EM / SQ |")
    out(hdr)
    out("|" + "---|" * (hdr.count("|") - 1))
    rows = []
    t_start = time.perf_counter()
    with threadpool_limits(limits=1) if args.single_thread else nullcontext():
        for name, X, K, ct, init in workloads(args.quick):
            if args.only and args.only not in f"{name} {K} {ct} {init}":
                continue
            res = run_workload(X, K, ct, init, args.max_iter, args.tight_max_iter)
            em, sq, sk = res["EM"], res["SQUAREM"], res["sklearn"]
            both = "error" not in em and "error" not in sq
            r1 = em["n_iter"] / sq["n_iter"] if both else np.nan
            dll = sq["loglik"] - em["loglik"] if both else np.nan
            flag = " **lower**" if dll < -SAME else ""
            (ei, es, el), (si, ss, _), (ki, ks, _) = fmt(em), fmt(sq), fmt(sk)
            (eo, eos), (so, sos) = fmt_opt(em), fmt_opt(sq)
            r2 = ratio(em.get("opt", {}).get("n_iter"), sq.get("opt", {}).get("n_iter"))
            dt = res.get("dloglik_tight", np.nan)
            tflag = "" if res.get("same_optimum", True) else (" **lower**" if dt < 0 else " (other optimum)")
            lstar = f"{em['tight']['loglik']:.6f}" if "tight" in em else ""
            gap = f"{em['opt']['gap_at_stop']:.1e}" if "opt" in em else ""
            out(f"| {name} | {K} | {ct} | {init.replace('_from_data', '')} | {ei} / {si} / {ki} | {r1:.2f} | "
                f"{es} / {ss} / {ks} | {el} | {dll:+.1e}{flag} | {eo} / {so} | {r2:.2f} | {eos} / {sos} | {lstar} | "
                f"{dt:+.1e}{tflag} | {gap} | {em.get('drops', '')} / {sq.get('drops', '')} |")
            rows.append(dict(workload=name, N=X.shape[0], D=X.shape[1], K=K, cov=ct, init=init, ratio=r1,
                             ratio_opt=r2, dloglik=dll, **res))
    out()
    n_iter = lambda m: lambda r: (r["EM"].get(m, {}).get("n_iter") if m else r["EM"].get("n_iter"),  # noqa: E731
                                  r["SQUAREM"].get(m, {}).get("n_iter") if m else r["SQUAREM"].get("n_iter"))
    secs = lambda m: lambda r: (r["EM"].get(m, {}).get("seconds") if m else r["EM"].get("seconds"),  # noqa: E731
                                r["SQUAREM"].get(m, {}).get("seconds") if m else r["SQUAREM"].get("seconds"))
    out("EM/SQUAREM ratios (> 1: SQUAREM needs fewer):")
    summary(rows, n_iter(None), "iterations, stopping rule", out)
    summary(rows, n_iter("opt"), "iterations to within tol of the optimum", out)
    # sub-0.1 s runs are timer and load noise on a shared machine
    summary(rows, secs(None), "wall time, stopping rule (runs where EM takes >= 0.1 s)", out, 0.1)
    summary(rows, secs("opt"), "wall time to within tol of the optimum (EM >= 0.1 s)", out, 0.1)
    slow = [r for r in rows if r["EM"].get("n_iter", 0) >= 50]
    summary(slow, n_iter(None), "iterations, stopping rule, where plain EM needs >= 50", out)
    summary(slow, n_iter("opt"), "iterations to the optimum, same workloads", out)
    tot = {m: sum(r[m].get("opt", {}).get("seconds") or 0.0 for r in rows) for m in ("EM", "SQUAREM")}
    out(f"total wall time to within tol of the optimum: EM {tot['EM']:.1f} s, SQUAREM {tot['SQUAREM']:.1f} s")
    lower = [r for r in rows if np.isfinite(r["dloglik"]) and r["dloglik"] < -SAME]
    out("SQUAREM ended lower than plain EM (by > 1e-6), stopping rule: "
        + ("; ".join(f"{r['workload']} K={r['K']} {r['cov']} {r['init']} ({r['dloglik']:+.2e})" for r in lower)
           or "none"))
    lower_t = [r for r in rows if not r.get("same_optimum", True) and r["dloglik_tight"] < 0]
    other = [r for r in rows if not r.get("same_optimum", True) and r["dloglik_tight"] > 0]
    out("SQUAREM's tol-1e-10 optimum lower than plain EM's (by > 1e-6): "
        + ("; ".join(f"{r['workload']} K={r['K']} {r['cov']} {r['init']} ({r['dloglik_tight']:+.2e})"
                     for r in lower_t) or "none"))
    out("SQUAREM's tol-1e-10 optimum higher than plain EM's (by > 1e-6): "
        + ("; ".join(f"{r['workload']} K={r['K']} {r['cov']} {r['init']} ({r['dloglik_tight']:+.2e})"
                     for r in other) or "none"))
    not_conv = [f"{r['workload']} K={r['K']} {r['cov']} {r['init']} {m}" for r in rows for m in ("EM", "SQUAREM", "sklearn")
                if "error" in r[m] or not r[m]["converged"]]
    out("not converged / failed (stopping rule): " + ("; ".join(not_conv) or "none"))
    caps = [f"{r['workload']} K={r['K']} {r['cov']} {r['init']} {m}" for r in rows for m in ("EM", "SQUAREM")
            if "tight_error" in r[m] or ("tight" in r[m] and not r[m]["tight"]["converged"])]
    out("reference run capped / failed: " + ("; ".join(caps) or "none"))
    out(f"(ran in {time.perf_counter() - t_start:.0f} s; load average now {os.getloadavg()[0]:.1f})")
    cmd = " ".join(shlex.quote(a) for a in ["python", "benchmarks/" + Path(__file__).name] + sys.argv[1:])
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ)
    # the BLAS kernel depends on these variables: name them either way
    out(f"reproduce: {env if env else 'env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE'} {cmd}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(rows=rows, quick=args.quick, single_thread=args.single_thread,
                                             max_iter=args.max_iter, tight_tol=TIGHT_TOL,
                                             tight_max_iter=args.tight_max_iter), indent=1, default=float))
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
