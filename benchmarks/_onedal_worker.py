"""Timing worker for Intel oneDAL's EM for GMM (daal4py ``em_gmm``), driven by
``bench_roofline.py`` over stdin/stdout, one JSON object per line.

It runs in its own virtual environment: daal4py 2024.7.0 imports scikit-learn
internals that were removed after scikit-learn 1.5, so it cannot live next to
the scikit-learn emix is tested against. Data and initial parameters come
through .npy / .npz files. Not meant to be run by hand.

Requests:
    {"op": "threads", "n": 1}                 -> daalinit(nthreads=n)
    {"op": "load", "x": PATH, "init": PATH, "cov": "full"|"diag"}
    {"op": "fit", "iters": n}                  -> {"seconds", "n_iter", "means"}
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main():
    from importlib.metadata import version

    import daal4py as d4p

    state = {}
    out = sys.stdout
    print(json.dumps({"ok": True, "daal4py": version("daal4py"), "numpy": np.__version__,
                      "threads": d4p.num_threads()}), file=out, flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["op"] == "threads":
                d4p.daalinit(nthreads=int(req["n"]))
                res = {"ok": True, "threads": d4p.num_threads()}
            elif req["op"] == "load":
                X = np.ascontiguousarray(np.load(req["x"]))
                init = np.load(req["init"])
                dt = X.dtype
                K = init["weights"].shape[0]
                cov = init["covariances"]
                if req["cov"] == "full":
                    covs = [np.ascontiguousarray(cov[k], dtype=dt) for k in range(K)]
                    storage = "full"
                else:
                    covs = [np.ascontiguousarray(cov[k][None, :], dtype=dt) for k in range(K)]
                    storage = "diagonal"
                state = dict(X=X, K=K, storage=storage, covs=covs,
                             weights=np.ascontiguousarray(init["weights"][None, :], dtype=dt),
                             means=np.ascontiguousarray(init["means"], dtype=dt),
                             fptype="double" if dt == np.float64 else "float")
                res = {"ok": True}
            elif req["op"] == "fit":
                s = state
                algo = d4p.em_gmm(nComponents=s["K"], maxIterations=int(req["iters"]), accuracyThreshold=0.0,
                                  covarianceStorage=s["storage"], fptype=s["fptype"])
                t = time.perf_counter()
                r = algo.compute(s["X"], s["weights"], s["means"], s["covs"])
                dt = time.perf_counter() - t
                res = {"ok": True, "seconds": dt, "n_iter": int(np.asarray(r.nIterations).ravel()[0]),
                       "means": np.asarray(r.means, dtype=np.float64).tolist()}
            else:
                res = {"ok": False, "error": f"unknown op {req['op']}"}
        except Exception as exc:  # report, keep serving
            res = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(res), file=out, flush=True)


if __name__ == "__main__":
    main()
