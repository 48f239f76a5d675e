"""The command line for variational Bayesian Gaussian mixtures:
``emix fit --bayesian`` and what ``info``, ``score``, ``plot`` and
``report`` print for a :class:`emix.BayesianGaussianMixture` model file
(used by :mod:`emix.cli` through one-line hooks).

A variational fit takes ``-k K`` as an upper bound: components the data do
not need keep an expected weight near zero, and the summary counts the
*effective* ones, those whose expected weight exceeds
:data:`emix.bayesian.EFFECTIVE_WEIGHT_THRESHOLD` (0.01). It has no BIC, ICL
or AIC; ``score`` reports the plug-in log-likelihood (see
:mod:`emix._report_bayesian`).
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from ._report_bayesian import fit_stats, is_bayesian, plot_elbo, prior_text

__all__ = ["add_options", "check_args", "fit", "info", "is_bayesian", "plot_convergence", "score"]

#: --weight-prior spellings -> scikit-learn's weight_concentration_prior_type
_WEIGHT_PRIORS = {"dirichlet_process": "dirichlet_process", "dp": "dirichlet_process",
                  "dirichlet_distribution": "dirichlet_distribution", "dirichlet": "dirichlet_distribution"}


def _weight_prior(s):
    t = s.strip().lower().replace("-", "_")
    if t not in _WEIGHT_PRIORS:
        raise argparse.ArgumentTypeError(
            f"expected dirichlet_process (or dp) or dirichlet_distribution (or dirichlet), got {s!r}")
    return _WEIGHT_PRIORS[t]


def _positive(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {s!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {s!r}")
    return v


def add_options(parser):
    """The 'variational Bayes' option group of ``emix fit``."""
    g = parser.add_argument_group("variational Bayes")
    g.add_argument("--bayesian", action="store_true",
                   help="fit a variational Bayesian Gaussian mixture (BayesianGaussianMixture): -k is an upper "
                        "bound, components the data do not need keep an expected weight near 0, and the summary "
                        "gives the effective number of components (expected weight > 0.01)")
    g.add_argument("--weight-prior", "--prior-type", dest="weight_prior", type=_weight_prior, default=None,
                   metavar="dirichlet_process|dirichlet_distribution",
                   help="prior on the mixing weights: a stick-breaking Dirichlet process (dp, the default) or a "
                        "symmetric Dirichlet distribution (dirichlet)")
    g.add_argument("--weight-concentration", type=_positive, default=None, metavar="G",
                   help="the weight prior's concentration > 0 (default 1/K); smaller values leave more "
                        "components empty, larger ones spread the weight")
    return g


def check_args(args, parser):
    """Usage errors of the Bayesian options (exit 2)."""
    if not getattr(args, "bayesian", False):
        given = [o for o, v in (("--weight-prior", getattr(args, "weight_prior", None)),
                                ("--weight-concentration", getattr(args, "weight_concentration", None)))
                 if v is not None]
        if given:
            parser.error(f"{' and '.join(given)} {'applies' if len(given) == 1 else 'apply'} to a variational "
                         "Bayesian fit; add --bayesian")
        return
    fam = getattr(args, "family", None)
    if fam not in (None, "gaussian"):
        parser.error(f"--bayesian fits Gaussian mixtures; it cannot be combined with --family {fam}")
    other = [o for o, on in (
        ("--noise", getattr(args, "noise", None) is not None),
        ("--prior", getattr(args, "prior", None) is not None),
        ("--equal-proportions", getattr(args, "equal_proportions", False)),
        ("--missing em", getattr(args, "missing", None) == "em")) if on]
    if other:
        parser.error(f"{' and '.join(other)} cannot be combined with --bayesian (the variational fit has its "
                     "own priors: --weight-prior, --weight-concentration)")
    from .core.vb import STRUCTURES

    cov = getattr(args, "covariance", None)
    if cov is not None:
        from .families.gaussian import get_structure

        if get_structure(cov).name not in STRUCTURES:
            parser.error(f"--bayesian supports --covariance {', '.join(STRUCTURES)}; got {cov!r}")


def _kwargs(args):
    from .families.gaussian import get_structure

    kw = {"max_iter": args.max_iter, "tol": args.tol, "reg_covar": args.reg_covar, "init_params": args.init,
          "n_init": args.n_init, "weight_concentration_prior_type": args.weight_prior,
          "weight_concentration_prior": args.weight_concentration}
    kw = {k: v for k, v in kw.items() if v is not None}
    kw["covariance_type"] = get_structure(args.covariance or "full").name
    return kw


def fit(args):
    """``emix fit --bayesian``: fit, save, print the summary."""
    from . import cli as C
    from ._files import check_writable
    from .bayesian import BayesianGaussianMixture

    out_of_core = getattr(args, "chunk_rows", None) or getattr(args, "scheduler", None)
    close, w, table, stats, scaler = (lambda: None), None, None, None, None
    if out_of_core:
        columns, exclude = C._split_names(args.columns), C._split_names(args.exclude) or ()
        if args.scheduler:
            X, w, names, close = C._dask_table(args.data, args.scheduler, columns, exclude, args.weights)
        else:
            from .backends.chunked import table_source

            X, names = table_source(args.data, args.chunk_rows, columns, exclude, args.weights)
    else:
        table, X, names, w = C._read(args)
        C._dominance_note(args, X, names)
        scaler, X = C._fit_scaling(args, X, w)
    try:
        with C._Progress(args, desc="VB") as progress:
            model = BayesianGaussianMixture(n_components=args.n_components, random_state=args.seed,
                                            callback=progress, n_jobs=args.jobs, **_kwargs(args))
            model.fit(X, sample_weight=w)
    finally:
        close()
    model.set_params(callback=None)
    if out_of_core:
        model.feature_names_in_ = np.asarray(names, dtype=object)
    else:
        C._set_names(model, table, names, scaler)
        stats = fit_stats(model, X, w, C._log_jacobian(model))
    check_writable(args.output, args.force)
    C._save_model(model, args.output)
    if not args.quiet:
        print(summary(model, stats, names))
    C._note(args, f"wrote {args.output}")
    return 0


def summary(model, stats=None, names=None):
    """Text summary: the prior, the fit, the effective components and every
    component's expected weight, means and standard deviations (in the
    data's units for a --scale model)."""
    from . import cli as C
    from .bayesian import EFFECTIVE_WEIGHT_THRESHOLD

    K, D = model.means_.shape
    names = names or C._model_names(model)
    listed = ", ".join(names) if len(", ".join(names)) <= 40 else f"{names[0]}, ..., {names[-1]}"
    lines = [(f"BayesianGaussianMixture: K={K} components offered, covariance '{model.covariance_type}', "
             f"{D} feature{'s' if D != 1 else ''} ({listed})"),
             f"weight prior: {prior_text(model)}"]
    state = "converged" if model.converged_ else "did NOT converge (raise --max-iter or --tol)"
    lines.append(f"variational Bayes: {model.n_iter_} iterations, {state}; tol {model.tol:g}, n_init {model.n_init}")
    if C._scaling(model):
        lines.append(f"with {C._scaling_word(model)} features (--scale, kept in the model file; "
                     "means and sds in the data's units)")
    eff = np.flatnonzero(np.asarray(model.weights_) > EFFECTIVE_WEIGHT_THRESHOLD)
    lines.append(f"effective components: {len(eff)} of {K} (expected weight > {EFFECTIVE_WEIGHT_THRESHOLD:g}): "
                 + ", ".join(str(int(k)) for k in eff))
    lines.append(f"ELBO {model.lower_bound_:.6f} (lower_bound_, up to constants as in scikit-learn)")
    if stats:
        lines.append(f"rows {stats['n_rows']:,}   log-likelihood {stats['log_likelihood']:.6f} "
                     f"(mean {stats['mean_log_likelihood']:.6f}; plug-in: expected weights, posterior means "
                     "and covariances)")
    means, sds = C._data_unit_params(model)
    lines.append("")
    lines.append("expected weights E[pi_k] of all components:")
    lines.extend(C._component_table(names, np.asarray(model.weights_, dtype=np.float64), means, sds))
    return "\n".join(lines)


def info(args, model):
    """``emix info`` of a Bayesian model file."""
    from . import cli as C
    from .bayesian import EFFECTIVE_WEIGHT_THRESHOLD

    if not args.json:
        print(f"model file: {args.model}")
        print(summary(model))
        return 0
    wc = model.weight_concentration_
    out = {
        "model": "BayesianGaussianMixture", "n_components": int(model.n_components),
        "covariance_type": model.covariance_type, "n_features": int(model.n_features_in_),
        "feature_names": C._model_names(model),
        "n_effective_components": int(model.n_effective_components_),
        "effective_weight_threshold": EFFECTIVE_WEIGHT_THRESHOLD,
        "effective_components": [int(k) for k in model.effective_components()],
        "weights": np.asarray(model.weights_).tolist(), "means": np.asarray(model.means_).tolist(),
        "covariances": np.asarray(model.covariances_).tolist(),
        "weight_concentration_prior_type": model.weight_concentration_prior_type,
        "weight_concentration": ([np.asarray(a).tolist() for a in wc] if isinstance(wc, tuple)
                                 else np.asarray(wc).tolist()),
        "mean_precision": np.asarray(model.mean_precision_).tolist(),
        "degrees_of_freedom": np.asarray(model.degrees_of_freedom_).tolist(),
        "converged": bool(model.converged_), "n_iter": int(model.n_iter_),
        "lower_bound": float(model.lower_bound_),
        "lower_bounds": [float(v) for v in model.lower_bounds_],
        "priors": {"weight_concentration": float(model.weight_concentration_prior_),
                   "mean_precision": float(model.mean_precision_prior_),
                   "mean": np.asarray(model.mean_prior_).tolist(),
                   "degrees_of_freedom": float(model.degrees_of_freedom_prior_),
                   "covariance": np.asarray(model.covariance_prior_).tolist()},
        "params": {k: v for k, v in model.get_params().items() if isinstance(v, (int, float, str, bool, type(None)))},
    }
    ab = C._affine(model)
    if ab is not None:
        out["scaling"] = {"steps": [type(sc).__name__ for sc in C._scaling(model)], "slope": ab[0].tolist(),
                          "intercept": ab[1].tolist(), "note": "means and covariances are of z = slope * x + intercept"}
    print(json.dumps(out, indent=1))
    return 0


def score(args, model):
    """``emix score`` of a Bayesian model: the plug-in log-likelihood (no
    BIC, ICL or AIC for a variational fit) and the variational score."""
    from . import cli as C

    _, X, _, w = C._read_for(args, model)
    stats = fit_stats(model, X, w, C._log_jacobian(model))
    if args.json:
        print(json.dumps(stats, indent=1))
        return 0
    print(f"rows                      {stats['n_rows']:,}")
    print(f"log-likelihood (plug-in)  {stats['log_likelihood']:.6f}")
    print(f"mean log-likelihood       {stats['mean_log_likelihood']:.6f}")
    print(f"variational score (mean)  {stats['variational_score']:.6f}")
    print(f"effective components      {stats['n_effective_components']} of {model.n_components}")
    print("(a variational fit has no BIC, ICL or AIC: the effective components answer 'how many?')")
    return 0


def plot_convergence(args, model):
    """``emix plot --kind convergence`` of a Bayesian model: the ELBO per
    iteration (left) and the expected weights (right)."""
    from . import cli as C
    from . import plotting as P
    from ._report_bayesian import plot_expected_weights

    fig = P.new_figure(figsize=(12.0, 4.2))
    plot_elbo(model, ax=fig.add_subplot(1, 2, 1))
    plot_expected_weights(model, ax=fig.add_subplot(1, 2, 2))
    fig.tight_layout()
    P.save_figure(fig, args.output, force=args.force, dpi=args.dpi)
    C._note(args, f"wrote {args.output}")
    return 0
