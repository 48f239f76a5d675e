"""emix on PyTorch (CUDA if available, else CPU) vs scikit-learn on numpy, side by
side in one run: time per EM iteration from the same initial parameters.

Reproduce:
    python benchmarks/bench_gpu.py                 # all rows, float64 and float32
    python benchmarks/bench_gpu.py --quick         # N / 20: a smoke run (CPU torch is fine)
    python benchmarks/bench_gpu.py --device cpu    # force the device

Needs ``pip install 'emix[gpu]' torch``. Time per iteration =
(t(max_iter=1 + m) - t(max_iter=1)) / m with tol=0, best of ``--repeat`` runs,
so initialization, the transfer of X and the final E-step cancel. CUDA work is
synchronized before each clock read. Both libraries get the same
weights_init / means_init / precisions_init, so they run the same iterations
(the last column is the difference of their final mean log-likelihoods).
scikit-learn runs on the host with the BLAS threads it finds (set
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS to pin them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_sklearn import make_data, make_init  # noqa: E402  (same data and starts)

ROWS = [
    (1_000_000, 2, 8, "full"),
    (200_000, 16, 16, "full"),
    (50_000, 64, 32, "full"),
    (1_000_000, 10, 5, "full"),
    (1_000_000, 10, 5, "diag"),
]


def _sync(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def _fit_time(fit, m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        out = fit(m)
        return time.perf_counter() - t, out


def per_iter(fit, m, repeat):
    """Seconds per iteration: the extra time of ``m`` more iterations (after
    one warm-up fit: CUDA context, kernel caches, allocator)."""
    _fit_time(fit, 1)
    t1 = min(_fit_time(fit, 1)[0] for _ in range(repeat))
    best, out = None, None
    for _ in range(repeat):
        dt, out = _fit_time(fit, 1 + m)
        best = dt if best is None else min(best, dt)
    return max(best - t1, 1e-9) / m, out


def main():
    import sklearn
    import torch
    from sklearn.mixture import GaussianMixture as SkGM

    import emix
    from emix import GaussianMixture as EmGM

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="divide N by 20 (smoke run)")
    ap.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations m (default 5, 2 with --quick)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--no-sklearn", action="store_true", help="time emix only")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch CPU threads (default 1 on the CPU device, as single-threaded BLAS)")
    args = ap.parse_args()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    m = args.iters or (3 if args.quick else 5)
    if args.torch_threads or device == "cpu":
        torch.set_num_threads(args.torch_threads or 1)

    cmd = "python benchmarks/bench_gpu.py " + " ".join(sys.argv[1:])
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none"
    print(f"emix {emix.__version__}, torch {torch.__version__} on {device} (GPU: {gpu}), "
          f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    print(f"reproduce: {cmd.strip()}")
    print(f"timed iterations per fit: {m}, best of {args.repeat}; torch threads {torch.get_num_threads()}\n")
    hdr = ("| N | D | K | cov | dtype | sklearn (numpy) s/iter | emix (torch " + device
           + ") s/iter | speedup sklearn/emix | mean loglik diff |")
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for N, D, K, ct in ROWS:
        if args.quick:
            N //= 20
        for dt_name in args.dtypes.split(","):
            dtype = np.dtype(dt_name)
            X = make_data(N, D, K, dtype)
            init = make_init(X, K, ct)
            Xt = torch.asarray(X, device=device)
            _sync(torch, device)

            def fit_emix(max_iter):
                gm = EmGM(n_components=K, covariance_type=ct, tol=0.0, max_iter=max_iter, **init).fit(Xt)
                _sync(torch, device)
                return gm

            def fit_sklearn(max_iter):
                return SkGM(n_components=K, covariance_type=ct, tol=0.0, max_iter=max_iter, **init).fit(X)

            row = f"| {N:.0e} | {D} | {K} | {ct} | {dt_name} "
            try:
                t_em, g_em = per_iter(fit_emix, m, args.repeat)
            except ValueError as exc:  # e.g. a component collapses in float32
                print(row + f"| - | emix failed: {str(exc)[:50]} | - | - |", flush=True)
                continue
            if args.no_sklearn:
                print(row + f"| - | {t_em:.4f} | - | - |", flush=True)
                continue
            try:
                t_sk, g_sk = per_iter(fit_sklearn, m, args.repeat)
            except ValueError as exc:
                print(row + f"| scikit-learn failed: {str(exc)[:50]} | {t_em:.4f} | - | - |", flush=True)
                continue
            dll = g_em.lower_bound_ - g_sk.lower_bound_
            print(row + f"| {t_sk:.4f} | {t_em:.4f} | {t_sk / t_em:.1f} | {dll:.1e} |", flush=True)
            del X, Xt


if __name__ == "__main__":
    main()
