"""Time per EM iteration of emix, scikit-learn and Intel oneDAL (daal4py
``em_gmm``) side by side in one run, from the same initial parameters, and as
a multiple of this machine's roofline bound.

Reproduce (peaks first, then the table):
    python benchmarks/machine_peaks.py                 # -> benchmarks/results/peaks.json
    python benchmarks/bench_roofline.py --single-thread
    python benchmarks/bench_roofline.py                # all threads
    python benchmarks/bench_roofline.py --quick        # N / 10, smoke run

On a 2-core machine the single-threaded figures are the fair ones (two cores
behave like about 1.2 for floating point, and other processes share them).

Rows: (N, D, K) = (1e6, 2, 8), (2e5, 16, 16), (5e4, 64, 32) full and
(1e6, 10, 5) full and diag, each in float64 and float32. Data: K well separated
Gaussian blobs; initial parameters: K random rows as means, equal weights,
``var(X) * I`` covariances, given to all three libraries (scikit-learn and emix
as weights_init / means_init / precisions_init, oneDAL as its input weights,
means and covariances), so all run the same iterations; the table reports the
largest difference of the means after one iteration as a check (all three
agree to rounding there; oneDAL adds no reg_covar, so later iterations drift
apart by about 1e-7).

Time per iteration = (t(1 + m iterations) - t(1 iteration)) / m with tol = 0,
each t the best of ``--repeat`` runs, and the libraries interleaved within
every repeat so that load from other processes hits them alike; set-up,
initialization and final E-steps cancel. m is at least ``--iters`` and is
raised per library (up to ``--max-iters``) so that the timed iterations take
about ``--min-time`` seconds: with m = 2 a fast library's difference drowns in
the noise of a shared machine. A row faster than its bound is flagged: noise
in that timing, or peaks measured too low under load.

oneDAL: daal4py 2024.7.0 (the version PyPI offers here) imports scikit-learn
internals that were removed after scikit-learn 1.5, so it cannot be imported
next to the scikit-learn emix is tested against. It runs in its own virtual
environment (``--onedal-python``, default /tmp/daal_venv/bin/python; create it
with ``--setup-onedal``) as a persistent subprocess (``_onedal_worker.py``) that
times its own ``compute`` calls; data go through .npy files. numpy 2 works
with it. Single-threaded runs call ``daal4py.daalinit(nthreads=1)`` there.

Roofline bound per iteration (a lower bound; counts per iteration)::

    bound = max(flops / GEMM peak, bytes / bandwidth) + N*K / exp rate

with the peaks of the data's dtype and of the thread count used, read from
``benchmarks/results/peaks.json`` for the BLAS kernel in use (see
``machine_peaks.py``). Counts (one multiply-add = 2 flops):

- full, Gram formulation: the E-step Mahalanobis terms of all components are
  ``F Q`` with ``F`` the ``N x D(D+1)/2`` quadratic features and the linear
  term ``Xc L`` (``N K D``); the M-step is ``R^T F`` and ``R^T Xc``. In all
  ``N K (D(D+1) + 2D)`` multiply-adds, i.e. flops = ``2 N K D (D + 3)``,
  about ``2 N K D^2`` flops (``N K D^2`` multiply-adds).
- diag: E-step ``X^2 P^T`` and ``X (P mu)^T`` (``2 N K D`` multiply-adds),
  M-step ``R^T X`` and ``R^T X^2`` (``2 N K D``): flops = ``8 N K D``. These are
  charged at the GEMM peak although their inner dimension is only D.
- bytes = ``N D`` x itemsize: X is read once per iteration; responsibilities
  and features are assumed to live in cache (blocked, E- and M-step fused).
- exponentials: ``N K`` (one per responsibility) at the measured np.exp rate
  of the dtype; the ``N`` logarithms of the log-sum-exp are neglected.

The bound is deliberately optimistic (peaks measured as best-of on a shared
machine, GEMM peak for thin products), so "x bound" overstates nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

HERE = Path(__file__).resolve().parent
PEAKS = HERE / "results" / "peaks.json"
DEFAULT_ONEDAL_PYTHON = "/tmp/daal_venv/bin/python"

ROWS = [
    (1_000_000, 2, 8, "full"),
    (200_000, 16, 16, "full"),
    (50_000, 64, 32, "full"),
    (1_000_000, 10, 5, "full"),
    (1_000_000, 10, 5, "diag"),
]


# ---------------------------------------------------------------- data, init
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_sklearn import make_data  # noqa: E402  (the same data in both benchmarks)


def make_init(X, K, ct, seed=1):
    """Same initial parameters for every library: covariances and precisions."""
    rng = np.random.default_rng(seed)
    N, D = X.shape
    means = X[rng.choice(N, K, replace=False)].astype(np.float64)
    weights = np.full(K, 1.0 / K)
    var = float(X[:20000].astype(np.float64).var(axis=0).mean())
    if ct == "full":
        cov = np.stack([np.eye(D) * var] * K)
        prec = np.stack([np.eye(D) / var] * K)
    else:
        cov = np.full((K, D), var)
        prec = np.full((K, D), 1.0 / var)
    return dict(weights=weights, means=means, covariances=cov, precisions=prec)


# ---------------------------------------------------------------- roofline
def counts(N, D, K, ct, itemsize):
    if ct == "full":
        flops = 2.0 * N * K * D * (D + 3)
    else:
        flops = 8.0 * N * K * D
    return flops, float(N * D * itemsize), float(N * K)


def bound(N, D, K, ct, dtype, peaks):
    flops, nbytes, nexp = counts(N, D, K, ct, np.dtype(dtype).itemsize)
    name = np.dtype(dtype).name
    t_gemm = flops / peaks["gemm_flops"][name]
    t_mem = nbytes / peaks["bandwidth_Bps"]
    t_exp = nexp / peaks["exp_per_s"][name]
    terms = f"gemm {t_gemm * 1e3:.2g} / mem {t_mem * 1e3:.2g} / exp {t_exp * 1e3:.2g} ms"
    return max(t_gemm, t_mem) + t_exp, terms


def blas_kernel():
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return f"{infos[0].get('internal_api')}:{infos[0].get('architecture', '?')}" if infos else "unknown"


def load_peaks(single):
    kernel = blas_kernel()
    key = "single" if single else "all"
    if PEAKS.exists():
        data = json.loads(PEAKS.read_text())
        entry = data.get("kernels", {}).get(kernel)
        if entry is not None:
            return entry[key], f"{PEAKS.relative_to(HERE.parent)} [{kernel}, {key}, measured {entry.get('when', '?')}]"
    print(f"(no peaks for {kernel} in {PEAKS}: measuring quick peaks now; run machine_peaks.py for better ones)")
    sys.path.insert(0, str(HERE))
    import machine_peaks as mp

    ns = argparse.Namespace(repeat=3, gemm_n=1024, bw_elems=2**24, exp_elems=2**15, exp_inner=20)
    n = 1 if single else (os.cpu_count() or 1)
    return mp.measure(n, ns), f"quick inline measurement [{kernel}, {key}]"


# ---------------------------------------------------------------- runners
class SklearnRunner:
    name = "sklearn"

    def __init__(self, X, K, ct, init):
        from sklearn.mixture import GaussianMixture

        self.cls, self.X, self.K, self.ct, self.init = GaussianMixture, X, K, ct, init
        self.means = None
        self.extra = {}

    def fit(self, iters):
        gm = self.cls(n_components=self.K, covariance_type=self.ct, tol=0.0, max_iter=iters,
                      weights_init=self.init["weights"], means_init=self.init["means"],
                      precisions_init=self.init["precisions"], **self.extra)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            gm.fit(self.X)
            dt = time.perf_counter() - t
        self.means = np.asarray(gm.means_, dtype=np.float64)
        self.n_done = int(gm.n_iter_)
        return dt


class EmixRunner(SklearnRunner):
    name = "emix"
    #: emix's own thread pool over blocks; set to 1 by --single-thread
    n_threads = None

    def __init__(self, X, K, ct, init):
        super().__init__(X, K, ct, init)
        from emix import GaussianMixture

        self.cls = GaussianMixture
        self.extra = {"n_threads": self.n_threads}


class OneDALRunner:
    """Drives ``_onedal_worker.py`` in the oneDAL virtual environment."""

    name = "oneDAL"

    def __init__(self, python, single):
        self.proc = subprocess.Popen([python, str(HERE / "_onedal_worker.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.hello = self._read()
        if single:
            self._call(op="threads", n=1)
        self.tmp = tempfile.TemporaryDirectory(prefix="emix_onedal_")
        self.means = None

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"oneDAL worker exited (code {self.proc.poll()})")
        res = json.loads(line)
        if not res.get("ok"):
            raise RuntimeError(res.get("error"))
        return res

    def _call(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def load(self, X, K, ct, init):
        xp, ip = os.path.join(self.tmp.name, "X.npy"), os.path.join(self.tmp.name, "init.npz")
        np.save(xp, X)
        np.savez(ip, weights=init["weights"], means=init["means"], covariances=init["covariances"])
        self._call(op="load", x=xp, init=ip, cov=ct)

    def fit(self, iters):
        res = self._call(op="fit", iters=iters)
        self.means = np.asarray(res["means"])
        # em_gmm stops when the log-likelihood stops changing at all, even with
        # accuracyThreshold = 0 (a fixed point in floating point): the time per
        # iteration then uses the iterations it really ran
        self.n_done = res["n_iter"]
        return res["seconds"]

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        finally:
            self.tmp.cleanup()


def start_onedal(args):
    if args.no_onedal:
        return None, "skipped (--no-onedal)"
    if not os.path.exists(args.onedal_python):
        return None, (f"not available: {args.onedal_python} missing; create it with "
                      f"`python {Path(__file__).name} --setup-onedal`")
    try:
        r = OneDALRunner(args.onedal_python, args.single_thread)
    except Exception as exc:
        return None, f"not available: worker failed to start: {exc}"
    h = r.hello
    return r, f"daal4py {h['daal4py']} (numpy {h['numpy']}, subprocess {args.onedal_python})"


def setup_onedal(python):
    venv = Path(python).parent.parent
    print(f"creating {venv} with daal4py 2024.7.0, scikit-learn<1.6 (daal4py's import needs it), packaging")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "daal4py==2024.7.0", "scikit-learn<1.6", "packaging"],
                   check=True)


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="divide N by 10")
    ap.add_argument("--single-thread", action="store_true", help="threadpoolctl limit 1, emix n_threads=1 and oneDAL nthreads=1")
    ap.add_argument("--iters", type=int, default=2, help="least timed iterations m (default 2)")
    ap.add_argument("--min-time", type=float, default=0.5,
                    help="raise m per library until m * t(fit(1)) >= this many seconds (default 0.5)")
    ap.add_argument("--max-iters", type=int, default=20, help="largest m (default 20)")
    ap.add_argument("--repeat", type=int, default=2, help="repeats, best kept (default 2)")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--rows", default=None, help="comma list of row indices 0-4 to run (default all)")
    ap.add_argument("--no-onedal", action="store_true")
    ap.add_argument("--onedal-python", default=os.environ.get("EMIX_ONEDAL_PYTHON", DEFAULT_ONEDAL_PYTHON))
    ap.add_argument("--setup-onedal", action="store_true", help="create the oneDAL venv and exit")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    if args.setup_onedal:
        setup_onedal(args.onedal_python)
        return

    import sklearn

    import emix

    env = " ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ)
    limit = threadpool_limits(limits=1) if args.single_thread else nullcontext()
    if args.single_thread:  # one thread on every side: emix's block pool too
        EmixRunner.n_threads = 1
    with limit:
        peaks, peaks_src = load_peaks(args.single_thread)
        onedal, onedal_status = start_onedal(args)
        blas = ", ".join(f"{i['internal_api']}:{i.get('architecture')}({i['num_threads']} threads)"
                         for i in threadpool_info())
        print(f"emix {emix.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}; BLAS {blas}")
        print(f"env: {env or '(no OPENBLAS_* overrides)'}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"oneDAL: {onedal_status}")
        print(f"peaks: {peaks_src}: GEMM f64 {peaks['gemm_flops']['float64'] / 1e9:.1f} / f32 "
              f"{peaks['gemm_flops']['float32'] / 1e9:.1f} GFLOP/s, bandwidth {peaks['bandwidth_Bps'] / 1e9:.1f} GB/s, "
              f"exp f64 {peaks['exp_per_s']['float64'] / 1e9:.2f} / f32 {peaks['exp_per_s']['float32'] / 1e9:.2f} Gelem/s")
        print(f"time per iteration = (t(1+m) - t(1)) / m, m >= {args.iters} per library (column m), "
              f"best of {args.repeat}, libraries interleaved\n")
        hdr = ("| N | D | K | cov | dtype | emix s/it | sklearn s/it | oneDAL s/it | emix/sklearn | emix/oneDAL "
               "| bound s/it | emix/bound | oneDAL/bound | sklearn/bound | bound terms (gemm/mem/exp) | m emix/sk/oneDAL | max dmeans sk, oneDAL |")
        print(hdr)
        print("|" + "---|" * (hdr.count("|") - 1), flush=True)
        rows = ROWS if args.rows is None else [ROWS[int(i)] for i in args.rows.split(",")]
        results = []
        t_start = time.perf_counter()
        for N, D, K, ct in rows:
            if args.quick:
                N //= 10
            for dt_name in args.dtypes.split(","):
                dtype = np.dtype(dt_name)
                X = make_data(N, D, K, dtype)
                init = make_init(X, K, ct)
                runners = [EmixRunner(X, K, ct, init), SklearnRunner(X, K, ct, init)]
                od_err = None
                if onedal is not None:
                    try:
                        onedal.load(X, K, ct, init)
                        runners.append(onedal)
                    except Exception as exc:
                        od_err = str(exc)[:60]
                m = {}
                for r in list(runners):  # warm-up (imports, first-touch, caches), not timed; sets m
                    try:
                        tw = r.fit(1)
                    except Exception as exc:
                        od_err = f"{r.name}: {type(exc).__name__}: {str(exc)[:60]}"
                        runners.remove(r)
                        continue
                    # fit(1) costs more than one iteration, so this m gives at least ~min_time
                    # of timed iterations for the fast libraries, where noise would swamp 2
                    m[r.name] = int(min(args.max_iters, max(args.iters, np.ceil(args.min_time / max(tw, 1e-6)))))
                t1 = {r.name: np.inf for r in runners}
                tm = dict(t1)
                n_m = {}
                for _ in range(args.repeat):
                    for r in list(runners):
                        try:
                            tm[r.name] = min(tm[r.name], r.fit(1 + m[r.name]))
                            n_m[r.name] = r.n_done - 1
                            # fit(1) last, so the means compared below are all after one iteration
                            t1[r.name] = min(t1[r.name], r.fit(1))
                        except Exception as exc:  # a library failing on a row is reported, not fatal
                            od_err = f"{r.name}: {type(exc).__name__}: {str(exc)[:60]}"
                            runners.remove(r)
                            t1[r.name] = tm[r.name] = np.nan
                # a non-positive difference means noise swamped the timed iterations: reported as nan
                m.update(n_m)
                per = {name: (tm[name] - t1[name]) / m[name] if tm[name] > t1[name] and m[name] > 0 else np.nan
                       for name in t1}
                for name in ("emix", "sklearn", "oneDAL"):
                    per.setdefault(name, np.nan)
                b, which = bound(N, D, K, ct, dtype, peaks)
                em_r = next((r for r in runners if r.name == "emix"), None)
                sk_r = next((r for r in runners if r.name == "sklearn"), None)
                dm_sk = float(np.max(np.abs(em_r.means - sk_r.means))) if em_r and sk_r else np.nan
                dm_od = (float(np.max(np.abs(em_r.means - onedal.means)))
                         if em_r and onedal is not None and onedal in runners else np.nan)
                row = dict(N=N, D=D, K=K, cov=ct, dtype=dt_name, m=m, emix=per["emix"], sklearn=per["sklearn"],
                           oneDAL=per["oneDAL"], bound=b, bound_terms=which, dmeans_sklearn=dm_sk,
                           dmeans_onedal=dm_od, error=od_err)
                results.append(row)
                note = f" ({od_err})" if od_err else ""
                m_str = "/".join(str(m.get(n, "-")) for n in ("emix", "sklearn", "oneDAL"))
                if any(per[n] < b for n in per if np.isfinite(per[n])):
                    note += " (below the bound: noise in this timing or in the measured peaks)"
                print(f"| {N:.0e} | {D} | {K} | {ct} | {dt_name} | {per['emix']:.4f} | {per['sklearn']:.4f} | "
                      f"{per['oneDAL']:.4f} | {per['emix'] / per['sklearn']:.3f} | {per['emix'] / per['oneDAL']:.2f} | "
                      f"{b:.5f} | {per['emix'] / b:.1f} | {per['oneDAL'] / b:.1f} | {per['sklearn'] / b:.0f} | "
                      f"{which} | {m_str} | {dm_sk:.1e}, {dm_od:.1e}{note} |", flush=True)
                del X
        if onedal is not None:
            onedal.close()
    print(f"\n(ran in {time.perf_counter() - t_start:.0f} s; load average now {os.getloadavg()[0]:.1f})")
    cmd = " ".join(shlex.quote(a) for a in [sys.executable.split("/")[-1], "benchmarks/" + Path(__file__).name]
                   + sys.argv[1:])
    # the BLAS kernel depends on these variables: name them either way
    print(f"reproduce: {env if env else 'env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE'} {cmd}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(rows=results, peaks=peaks, peaks_source=peaks_src,
                                             onedal=onedal_status, single_thread=args.single_thread,
                                             quick=args.quick, blas=blas), indent=1))


if __name__ == "__main__":
    main()
