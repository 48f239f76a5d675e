"""emix's non-Gaussian families vs StepMix and pomegranate, side by side in one
run: time per EM iteration and the final mean log-likelihood, from the same
initial parameters.

Reproduce (both thread settings, N = 1e5 and 1e6; minutes):
    python benchmarks/bench_families.py
    python benchmarks/bench_families.py --quick                 # N = 20000, a smoke run
    python benchmarks/bench_families.py --threads single --n 100000 --families poisson

Workloads (planted data, fixed seeds, K = 4):
    bernoulli    D = 10 binary items            emix 'bernoulli' | StepMix 'binary' | pomegranate Bernoulli
    categorical  D = 10 items, 3-5 categories   emix 'categorical' | StepMix 'categorical' | pomegranate Categorical
    poisson      D = 5 counts                   emix 'poisson' | pomegranate Poisson
    gaussian     D = 5, full covariances        emix | pomegranate Normal(full) | scikit-learn (reference)
    student_t    D = 5, full scale matrices     emix alone (no Python peer); its gaussian row is the reference

Method
    * Same start for every library: responsibilities ``0.8 onehot(k-means
      label) + 0.2 / K`` (scikit-learn KMeans, seed 0, fitted on 20,000 rows),
      turned into weights and component parameters by one M-step written here
      in numpy; each library is then given those parameters (emix:
      ``warm_start``; StepMix: its ``_initialize_parameters`` replaced by one
      that sets them; pomegranate: initialized distributions and ``priors``;
      scikit-learn and emix's Gaussian: ``weights_init/means_init/precisions_init``).
      Maximum likelihood everywhere (no pseudo-counts; ``reg_covar = 0`` for
      the Gaussian libraries, pomegranate has none).
    * Fixed iterations, never stopping early: emix ``tol=0``, StepMix
      ``abs_tol=rel_tol=0``, pomegranate ``tol=-inf``, scikit-learn ``tol=0``.
    * Time per iteration = ``(t(1 + m) - t(1)) / m`` with ``m = --iters``,
      best of ``--repeat`` runs, so setup (encoding, tensor checks, the final
      E-step of scikit-learn) cancels; ``fit s`` is ``t(1 + m)``, setup included.
    * The final mean log-likelihood per row of every library is computed by
      ONE function here (:func:`mean_loglik`: scipy.stats densities on each
      library's final parameters, scipy's logsumexp), not by the libraries.
    * pomegranate gets float64 parameters and the data as torch tensors
      (int64 codes for Categorical, float64 otherwise) built outside the
      timing, with ``check_data=False`` (its fastest setting); StepMix gets
      numpy arrays (integer codes for 'categorical'), emix the same arrays.
    * Threads: ``--threads single`` sets OMP/MKL/OPENBLAS_NUM_THREADS=1 before
      numpy is imported, ``torch.set_num_threads(1)`` and emix ``n_threads=1``;
      ``--threads default`` changes nothing. ``--threads both`` (the default)
      runs each setting in its own process and merges the results.

Output: a markdown table on stdout and ``<out>.md`` / ``<out>.json``
(default ``benchmarks/results/families``), with the command line.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "--threads" in sys.argv:
    _i = sys.argv.index("--threads")
    if _i + 1 < len(sys.argv) and sys.argv[_i + 1] == "single":
        for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
            os.environ[_v] = "1"

import argparse
import gc
import json
import platform
import subprocess
import time
import warnings

import numpy as np
from scipy import stats
from scipy.special import logsumexp

K = 4
FAMILIES = ("bernoulli", "categorical", "poisson", "gaussian", "student_t")
N_CATEGORIES = (3, 4, 5, 3, 4, 5, 3, 4, 5, 3)
D_OF = {"bernoulli": 10, "categorical": 10, "poisson": 5, "gaussian": 5, "student_t": 5}


# ------------------------------------------------------------------ data
def make_data(family, N, seed=0):
    """Planted mixture data (fixed seed): X, the float view used by k-means."""
    rng = np.random.default_rng(seed)
    w = np.array([0.4, 0.3, 0.2, 0.1])
    z = rng.choice(K, size=N, p=w)
    D = D_OF[family]
    if family == "bernoulli":
        P = rng.uniform(0.05, 0.95, size=(K, D))
        X = (rng.random((N, D)) < P[z]).astype(np.float64)
        return X, X
    if family == "categorical":
        X = np.empty((N, D), dtype=np.int64)
        for d, C in enumerate(N_CATEGORIES):
            theta = rng.dirichlet(np.full(C, 0.7), size=K)  # (K, C)
            cum = np.cumsum(theta[z], axis=1)
            X[:, d] = np.minimum((rng.random(N)[:, None] > cum).sum(axis=1), C - 1)
        return X, onehot(X)
    if family == "poisson":
        rates = rng.uniform(0.5, 12.0, size=(K, D))
        X = rng.poisson(rates[z]).astype(np.float64)
        return X, X
    means = rng.normal(scale=3.0, size=(K, D))
    A = rng.normal(size=(K, D, D)) / np.sqrt(D)
    covs = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(D)
    L = np.linalg.cholesky(covs)
    E = rng.normal(size=(N, D))
    if family == "student_t":
        E = E / np.sqrt(rng.chisquare(5.0, size=N) / 5.0)[:, None]
    X = means[z] + np.einsum("nij,nj->ni", L[z], E)
    return X, X


def onehot(X):
    return np.hstack([(X[:, [d]] == np.arange(C)[None, :]).astype(np.float64)
                      for d, C in enumerate(N_CATEGORIES)])


# ------------------------------------------------------- common start
def start_resp(F, seed=0):
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    sub = F[rng.choice(F.shape[0], min(F.shape[0], 20000), replace=False)]
    km = KMeans(K, n_init=1, random_state=seed).fit(sub)
    lab = km.predict(F)
    return 0.8 * np.eye(K)[lab] + 0.2 / K


def m_step(family, X, R):
    """Initial parameters from responsibilities R (maximum likelihood, numpy)."""
    nk = R.sum(axis=0)
    p = {"weights": nk / nk.sum()}
    if family in ("bernoulli", "poisson"):
        p["theta"] = (R.T @ X) / nk[:, None]
    elif family == "categorical":
        Cmax = max(N_CATEGORIES)
        theta = np.zeros((K, X.shape[1], Cmax))
        for d, C in enumerate(N_CATEGORIES):
            for c in range(C):
                theta[:, d, c] = R[X[:, d] == c].sum(axis=0) / nk
        p["theta"] = theta
    else:
        means = (R.T @ X) / nk[:, None]
        covs = np.stack([((X - means[k]).T * R[:, k]) @ (X - means[k]) / nk[k] for k in range(K)])
        p["means"], p["covs"] = means, covs
        if family == "student_t":
            p["dof"] = np.full(K, 10.0)
    return p


# --------------------------------------------- the one log-likelihood
def mean_loglik(family, X, p, block=100_000):
    """Mean log-likelihood per row of parameters ``p`` (this module's format),
    from scipy.stats densities: the same function for every library."""
    total = 0.0
    logw = np.log(p["weights"])
    for s in range(0, X.shape[0], block):
        Xb = X[s:s + block]
        if family == "bernoulli":
            lp = stats.bernoulli.logpmf(Xb[:, None, :], p["theta"][None]).sum(axis=2)
        elif family == "poisson":
            lp = stats.poisson.logpmf(Xb[:, None, :], p["theta"][None]).sum(axis=2)
        elif family == "categorical":
            with np.errstate(divide="ignore"):
                logt = np.log(p["theta"])  # (K, D, C_max): log P(x_d = c | k), by definition
            lp = sum(logt[:, d, Xb[:, d]].T for d in range(Xb.shape[1]))
        elif family == "gaussian":
            lp = np.column_stack([stats.multivariate_normal.logpdf(Xb, p["means"][k], p["covs"][k])
                                  for k in range(K)])
        else:
            lp = np.column_stack([stats.multivariate_t.logpdf(Xb, p["means"][k], p["covs"][k], df=p["dof"][k])
                                  for k in range(K)])
        total += float(logsumexp(lp + logw[None, :], axis=1).sum())
    return total / X.shape[0]


# ----------------------------------------------------------- runners
# Each runner: runner(n_iter) -> (seconds, final parameters in this module's format).

def emix_runner(family, X, p0, n_threads):
    import emix

    if family == "gaussian":
        prec = np.linalg.inv(p0["covs"])

        def run(n_iter):
            gm = emix.GaussianMixture(K, covariance_type="full", tol=0.0, reg_covar=0.0, max_iter=n_iter,
                                      weights_init=p0["weights"], means_init=p0["means"], precisions_init=prec,
                                      n_threads=n_threads)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                gm.fit(X)
                el = time.perf_counter() - t
            return el, {"weights": gm.weights_, "means": gm.means_, "covs": gm.covariances_}
        return run

    m = emix.MixtureModel(K, family=family, tol=0.0, max_iter=0, warm_start=True, n_threads=n_threads,
                          random_state=0, reg_covar=0.0 if family == "student_t" else 1e-6)
    m.fit(X)  # max_iter=0: learns the coding (categories), no EM; the start is set below

    def set_start():
        m.weights_ = p0["weights"].copy()
        if family in ("bernoulli", "poisson"):
            setattr(m, "probabilities_" if family == "bernoulli" else "rates_", p0["theta"].copy())
        elif family == "categorical":
            m.probabilities_ = p0["theta"].copy()
        else:
            m.means_, m.covariances_, m.dof_ = p0["means"].copy(), p0["covs"].copy(), p0["dof"].copy()
            m.precisions_cholesky_ = np.stack([np.linalg.inv(np.linalg.cholesky(c)).T for c in p0["covs"]])
        m.lower_bound_ = -np.inf
        m.converged_ = False

    def run(n_iter):
        set_start()
        m.set_params(max_iter=n_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            m.fit(X)
            el = time.perf_counter() - t
        assert m.n_iter_ == n_iter, (m.n_iter_, n_iter)
        out = {"weights": m.weights_}
        if family == "bernoulli":
            out["theta"] = m.probabilities_
        elif family == "poisson":
            out["theta"] = m.rates_
        elif family == "categorical":
            out["theta"] = m.probabilities_
        else:
            out.update(means=m.means_, covs=m.covariances_, dof=m.dof_)
        return el, out
    return run


def stepmix_runner(family, X, p0):
    from stepmix.stepmix import StepMix

    measurement = {"bernoulli": "binary", "categorical": "categorical"}[family]
    Cmax = max(N_CATEGORIES)

    def init(self, X_, random_state):  # replaces StepMix._initialize_parameters: the common start
        self.weights_ = p0["weights"].copy()
        self.log_resp_ = np.zeros((X_.shape[0], K))
        self._initialize_parameters_measurement(X_, random_state, init_emission=False)
        if family == "bernoulli":
            self._mm.set_parameters({"pis": p0["theta"].copy()})
        else:
            self._mm.set_parameters({"pis": p0["theta"].reshape(K, -1).copy(), "max_n_outcomes": Cmax,
                                     "total_outcomes": X_.shape[1] * Cmax})

    def run(n_iter):
        sm = StepMix(n_components=K, measurement=measurement, max_iter=n_iter, abs_tol=0.0, rel_tol=0.0,
                     n_init=1, verbose=0, progress_bar=0, random_state=0)
        sm._initialize_parameters = init.__get__(sm)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            sm.fit(X)
            el = time.perf_counter() - t
        pis = np.asarray(sm._mm.parameters["pis"])
        theta = pis if family == "bernoulli" else pis.reshape(K, X.shape[1], Cmax)
        return el, {"weights": np.asarray(sm.weights_), "theta": theta}
    return run


def pomegranate_runner(family, X, p0):
    import torch
    from pomegranate import distributions as pd_
    from pomegranate.gmm import GeneralMixtureModel

    Xt = torch.as_tensor(X.astype(np.int64) if family == "categorical" else X)

    def dists():
        if family == "bernoulli":
            return [pd_.Bernoulli(probs=p0["theta"][k].copy(), check_data=False) for k in range(K)]
        if family == "poisson":
            return [pd_.Poisson(lambdas=p0["theta"][k].copy(), check_data=False) for k in range(K)]
        if family == "categorical":
            return [pd_.Categorical(probs=p0["theta"][k].copy(), check_data=False) for k in range(K)]
        return [pd_.Normal(means=p0["means"][k].copy(), covs=p0["covs"][k].copy(), covariance_type="full",
                           check_data=False) for k in range(K)]

    def run(n_iter):
        gmm = GeneralMixtureModel(dists(), priors=p0["weights"].copy(), max_iter=n_iter, tol=-np.inf,
                                  check_data=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            gmm.fit(Xt)
            el = time.perf_counter() - t
        out = {"weights": gmm.priors.detach().numpy().astype(np.float64)}
        ds = gmm.distributions
        if family == "bernoulli":
            out["theta"] = np.stack([d.probs.detach().numpy() for d in ds]).astype(np.float64)
        elif family == "poisson":
            out["theta"] = np.stack([d.lambdas.detach().numpy() for d in ds]).astype(np.float64)
        elif family == "categorical":
            out["theta"] = np.stack([d.probs.detach().numpy() for d in ds]).astype(np.float64)
        else:
            out["means"] = np.stack([d.means.detach().numpy() for d in ds]).astype(np.float64)
            out["covs"] = np.stack([d.covs.detach().numpy() for d in ds]).astype(np.float64)
        return el, out
    return run


def sklearn_runner(X, p0):
    from sklearn.mixture import GaussianMixture

    prec = np.linalg.inv(p0["covs"])

    def run(n_iter):
        gm = GaussianMixture(K, covariance_type="full", tol=0.0, reg_covar=0.0, max_iter=n_iter,
                             weights_init=p0["weights"], means_init=p0["means"], precisions_init=prec)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            gm.fit(X)
            el = time.perf_counter() - t
        return el, {"weights": gm.weights_, "means": gm.means_, "covs": gm.covariances_}
    return run


def peers(family):
    return {"bernoulli": ["stepmix", "pomegranate"], "categorical": ["stepmix", "pomegranate"],
            "poisson": ["pomegranate"], "gaussian": ["pomegranate", "sklearn"], "student_t": []}[family]


# ------------------------------------------------------------ driver
def measure(run, iters, repeat):
    best1 = best = np.inf
    params = None
    for _ in range(repeat):
        gc.collect()
        t1, _p = run(1)
        gc.collect()
        tm, params = run(1 + iters)
        best1, best = min(best1, t1), min(best, tm)
    return max(best - best1, 0.0) / iters, best, params


def bench(families, sizes, iters, repeat, threads, only=None):
    import torch

    if threads == "single":
        torch.set_num_threads(1)
    n_threads = 1 if threads == "single" else None
    rows = []
    for family in families:
        for N in sizes:
            X, F = make_data(family, N)
            p0 = m_step(family, X, start_resp(F))
            libs = [("emix", emix_runner(family, X, p0, n_threads))]
            if family == "student_t":  # emix's own Gaussian on the same data and start, for reference
                libs.append(("emix gaussian", emix_runner("gaussian", X, p0, n_threads)))
            for peer in peers(family):
                if peer == "stepmix":
                    libs.append(("stepmix", stepmix_runner(family, X, p0)))
                elif peer == "pomegranate":
                    libs.append(("pomegranate", pomegranate_runner(family, X, p0)))
                else:
                    libs.append(("sklearn", sklearn_runner(X, p0)))
            ll0 = mean_loglik(family, X, p0)
            for lib, run in libs:
                if only and lib.split()[0] not in only:
                    continue
                per_iter, total, params = measure(run, iters, repeat)
                fam_ll = "gaussian" if lib == "emix gaussian" else family
                ll = mean_loglik(fam_ll, X, params)
                row = {"family": family, "N": N, "D": X.shape[1], "K": K, "threads": threads, "library": lib,
                       "iters": iters, "s_per_iter": per_iter, "fit_s": total, "mean_loglik": ll, "start_loglik": ll0}
                rows.append(row)
                print(f"[{threads}] {family:11s} N={N:.0e} {lib:14s} {per_iter:.4f} s/iter  fit {total:.2f} s  "
                      f"loglik {ll:.6f}", file=sys.stderr, flush=True)
            del X, F, libs
    return rows


def table(rows):
    out = [("| threads | family | N | library | s/iter | fit s | mean loglik | peer s/iter ÷ emix s/iter "
            "| emix − peer loglik |"),
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = next((e for e in rows if e["library"] == "emix" and e["family"] == r["family"] and e["N"] == r["N"]
                    and e["threads"] == r["threads"]), None)
        is_emix = r["library"] == "emix" or ref is None
        speed = "" if is_emix else f"{r['s_per_iter'] / ref['s_per_iter']:.1f}x"
        diff = "" if is_emix else f"{ref['mean_loglik'] - r['mean_loglik']:+.1e}"
        if r["library"] == "emix gaussian":  # another model: its cost, not a comparison
            speed, diff = f"(t: {ref['s_per_iter'] / r['s_per_iter']:.1f}x the Gaussian)", ""
        out.append(f"| {r['threads']} | {r['family']} | {r['N']:.0e} | {r['library']} | {r['s_per_iter']:.4f} "
                   f"| {r['fit_s']:.2f} | {r['mean_loglik']:.6f} | {speed} | {diff} |")
    return "\n".join(out)


def versions():
    from importlib.metadata import version

    import pomegranate
    import scipy
    import sklearn
    import stepmix  # noqa: F401
    import torch

    import emix

    return {"emix": emix.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "stepmix": version("stepmix"),
            "pomegranate": getattr(pomegranate, "__version__", version("pomegranate")),
            "torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", choices=["single", "default", "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="N = 20000 only")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "families"))
    ap.add_argument("--libs", nargs="+", default=None, help="only these libraries (emix, stepmix, pomegranate, "
                    "sklearn)")
    ap.add_argument("--update", action="store_true", help="replace the (family, N, threads) rows of an existing "
                    "<out>.json with this run's and rewrite <out>.md")
    ap.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    sizes = [20_000] if a.quick else a.n
    command = "python benchmarks/bench_families.py " + " ".join(sys.argv[1:])
    if a.threads == "both":
        rows = []
        for mode in ("single", "default"):
            argv = [sys.executable, __file__, "--threads", mode, "--json-only", "--iters", str(a.iters),
                    "--repeat", str(a.repeat), "--n", *map(str, sizes), "--families", *a.families]
            if a.libs:
                argv += ["--libs", *a.libs]
            res = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
            rows += json.loads(res.stdout)
    else:
        rows = bench(a.families, sizes, a.iters, a.repeat, a.threads, a.libs)
        if a.json_only:
            print(json.dumps(rows))
            return
    commands = [command.strip()]
    if a.update and os.path.exists(a.out + ".json"):
        with open(a.out + ".json") as f:
            old = json.load(f)
        new_keys = {(r["family"], r["N"], r["threads"]) for r in rows}
        kept = [r for r in old["rows"] if (r["family"], r["N"], r["threads"]) not in new_keys]
        order = {f: i for i, f in enumerate(FAMILIES)}
        rows = sorted(kept + rows, key=lambda r: (r["threads"] != "single", order[r["family"]], r["N"]))
        commands = old.get("commands", [old.get("command", "")]) + commands
    md = table(rows)
    info = versions()
    text = ("Commands: " + "; then ".join(f"`{c}`" for c in commands) + "\n\n"
            f"Versions: {', '.join(f'{k} {v}' for k, v in info.items())}\n\n" + md + "\n")
    print(text)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out + ".md", "w") as f:
        f.write(text)
    with open(a.out + ".json", "w") as f:
        json.dump({"commands": commands, "versions": info, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
