"""What a fitted :class:`emix.BayesianGaussianMixture` shows: its plug-in
log-likelihood, the ELBO and expected-weight plots, and its HTML report
(used by :func:`emix.report.build_report` and the command line).

A variational fit has no maximum-likelihood BIC/ICL/AIC: the number of
components is read from the posterior instead. A component is *effective*
when its expected weight ``E[pi_k]`` exceeds
:data:`emix.bayesian.EFFECTIVE_WEIGHT_THRESHOLD` (0.01; the model's
``n_effective_components_``). The likelihood reported is that of the
*plug-in* mixture, the Gaussian mixture with the expected weights
``weights_``, the posterior means ``means_`` and ``covariances_``
(``W_k^-1 / nu_k``, the inverse of ``E[Lambda_k]``), which is also what
``sample`` draws from; scikit-learn's ``score`` of a variational mixture is
a different number (the log-normalizer of the variational responsibilities),
shown next to it as the *variational score*.
"""

from __future__ import annotations

import datetime as _dt
import warnings

import numpy as np

__all__ = ["build_report", "is_bayesian", "plot_elbo", "plot_expected_weights", "plugin_log_density"]


def is_bayesian(model):
    """True for a :class:`emix.BayesianGaussianMixture` (not a Pipeline)."""
    from .bayesian import BayesianGaussianMixture

    return isinstance(model, BayesianGaussianMixture)


def plugin_params(model):
    """:class:`~emix.core.types.GaussianParams` of the plug-in mixture
    (expected weights, ``means_``, ``covariances_``)."""
    from .core.types import GaussianParams

    return GaussianParams(weights=np.asarray(model.weights_, dtype=np.float64), means=model.means_,
                          covariances=model.covariances_, precisions_cholesky=model.precisions_cholesky_)


def plugin_log_density(model, X):
    """``log sum_k E[pi_k] N(x_n | m_k, covariances_k)`` for each row of ``X``
    (in the model's units; float64, shape (n,))."""
    from .core import em

    X = model._check_X(X)
    p, structure = plugin_params(model), model._structure()
    return np.asarray(model._reducer(X).map(lambda Xb: em.log_density(Xb, p, structure)), dtype=np.float64)


def fit_stats(model, X, w, log_jacobian=0.0):
    """Rows, plug-in log-likelihood (plus ``n_eff * log_jacobian`` for a
    scaled model, so it is of the data in its own units), its mean, the
    variational score and the effective number of components."""
    n_eff = X.shape[0] if w is None else float(np.sum(w))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        lp = plugin_log_density(model, X)
        score = float(model.score(X, sample_weight=w))
    ll = float(np.sum(lp) if w is None else np.dot(np.asarray(w, dtype=np.float64), lp))
    ll += log_jacobian * n_eff
    return {"n_rows": int(X.shape[0]), "log_likelihood": ll, "mean_log_likelihood": ll / n_eff,
            "variational_score": score, "elbo": float(model.lower_bound_),
            "n_effective_components": int(model.n_effective_components_)}


def prior_text(model):
    """One line naming the weight prior and its concentration."""
    kind = model.weight_concentration_prior_type
    g0 = float(model.weight_concentration_prior_)
    what = ("Dirichlet process (stick-breaking)" if kind == "dirichlet_process"
            else "Dirichlet distribution (symmetric)")
    return f"{what}, weight concentration {g0:.4g}"


def plot_elbo(model, ax=None, *, title=None):
    """The evidence lower bound (``lower_bounds_``, a total over rows) per
    iteration of the kept run, and the size of its change on a log scale
    against ``tol``."""
    from .plotting import _ax

    ax = _ax(ax)
    lb = np.asarray(model.lower_bounds_, dtype=np.float64)
    if lb.size == 0:
        ax.text(0.5, 0.5, "no iterations recorded", ha="center", va="center", transform=ax.transAxes)
        return ax
    it = np.arange(1, lb.size + 1)
    ax.plot(it, lb, marker="o", markersize=3.5, color="#1f4e79", linewidth=1.6, label="ELBO")
    ax.set_xlabel("variational iteration")
    ax.set_ylabel("evidence lower bound (ELBO)", color="#1f4e79")
    ax.grid(True, color="0.92", linewidth=0.6)
    handles = ax.get_legend_handles_labels()[0]
    if lb.size > 1:
        ax2 = ax.twinx()
        ax2.semilogy(it[1:], np.maximum(np.abs(np.diff(lb)), 1e-16), color="#c0392b", linestyle="--",
                     marker=".", linewidth=1.0, label="|change| (log scale)")
        ax2.axhline(model.tol, color="#c0392b", linewidth=0.8, linestyle=":", label=f"tol = {model.tol:g}")
        ax2.set_ylabel("|change in ELBO|", color="#c0392b")
        handles += ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="center right", fontsize=8, framealpha=0.9)
    state = "converged" if model.converged_ else "did NOT converge"
    ax.set_title(title if title is not None else f"Variational Bayes: {lb.size} iterations, {state}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return ax


def plot_expected_weights(model, ax=None, *, threshold=None, title=None):
    """Bar chart of the expected weights ``E[pi_k]`` with the threshold of
    the effective components (drawn in a darker colour)."""
    from .bayesian import EFFECTIVE_WEIGHT_THRESHOLD
    from .plotting import _ax

    ax = _ax(ax)
    threshold = EFFECTIVE_WEIGHT_THRESHOLD if threshold is None else threshold
    w = np.asarray(model.weights_, dtype=np.float64)
    k = np.arange(w.size)
    on = w > threshold
    ax.bar(k[on], w[on], color="#1f4e79", label=f"effective ({int(on.sum())})")
    ax.bar(k[~on], w[~on], color="#b0b7c3", label=f"below {threshold:g} ({int((~on).sum())})")
    ax.axhline(threshold, color="#c0392b", linewidth=0.8, linestyle=":")
    ax.set_xlabel("component")
    ax.set_ylabel("expected weight E[π_k]")
    if w.size <= 30:
        ax.set_xticks(k)
    ax.legend(fontsize=8, framealpha=0.9)
    ax.grid(True, axis="y", color="0.92", linewidth=0.6)
    ax.set_title(title if title is not None else f"Expected weights: {int(on.sum())} of {w.size} components "
                                                 f"above {threshold:g}")
    return ax


def _correlations(covs, eff, names):
    """Correlations within the effective components ``eff`` (their own
    indices), pairs of features as columns, for up to 6 features."""
    from .report import _num, _table

    D = covs.shape[1]
    if D < 2 or len(eff) == 0:
        return ""
    head = "<h3>Correlations within the effective components</h3>"
    if D > 6:
        return head + ("<p class=meta>Not shown for more than 6 features; the covariances are in the model "
                       "file (<code>emix info MODEL --json</code>, or <code>covariances_</code> in Python).</p>")
    rows = []
    for k in eff:
        s = np.sqrt(np.clip(np.diagonal(covs[k]), 1e-300, None))
        c = covs[k] / np.outer(s, s)
        rows.append([int(k)] + [_num(float(c[i, j]), 3) for i in range(D) for j in range(i + 1, D)])
    return head + _table(["component"] + [f"{names[i]} ~ {names[j]}" for i in range(D) for j in range(i + 1, D)],
                         rows)


def _model_section(model, X, names, sample_weight, resp, affine=None):
    from .bayesian import EFFECTIVE_WEIGHT_THRESHOLD
    from .plotting import full_covariances
    from .report import _fixed, _num, _table

    K, _D = model.means_.shape
    jac = 0.0 if affine is None else float(np.sum(np.log(np.abs(affine[0]))))
    st = fit_stats(model, X, sample_weight, jac)
    eff = np.flatnonzero(np.asarray(model.weights_) > EFFECTIVE_WEIGHT_THRESHOLD)
    stats = [
        ["components offered K", K],
        ["effective components", f"{len(eff)} (expected weight > {EFFECTIVE_WEIGHT_THRESHOLD:g}): "
                                 + ", ".join(str(int(k)) for k in eff)],
        ["weight prior", prior_text(model)],
        ["covariance type", model.covariance_type],
        ["ELBO (lower bound)", _fixed(st["elbo"], 3)],
        ["log-likelihood (plug-in)", _fixed(st["log_likelihood"], 3)],
        ["variational score (mean)", _fixed(st["variational_score"], 4)],
        ["iterations", model.n_iter_], ["converged", _num(bool(model.converged_))],
        ["tol / reg_covar / n_init", f"{model.tol:g} / {model.reg_covar:g} / {model.n_init}"],
    ]
    if affine is not None:
        stats.append(["scaling", ("fitted to scaled features z = a·x + b (stored in the model file); "
                                 "likelihood, means and standard deviations in the data's units, "
                                 "plots in the scaled units")])
    labels = np.argmax(resp, axis=1)
    counts = np.bincount(labels, minlength=K)
    unc = 1.0 - resp.max(axis=1)
    covs = full_covariances(model)
    means = np.asarray(model.means_, dtype=np.float64)
    sds = np.sqrt(np.clip(np.diagonal(covs, axis1=1, axis2=2), 0.0, None))
    if affine is not None:
        a, b = affine
        means, sds = (means - b) / a, sds / np.abs(a)
    rows = [[int(k), _num(float(model.weights_[k])), f"{counts[k]:,}",
             _fixed(float(np.mean(unc[labels == k])), 3) if counts[k] else "–"]
            + [_num(float(m)) for m in means[k]] + [_num(float(s)) for s in sds[k]] for k in eff]
    parts = [
        '<section id="model"><h2>Variational Bayesian Gaussian mixture</h2>',
        ("<p class=meta>K is an upper bound: components the data do not need keep an expected weight near 0. "
        "The plug-in log-likelihood is that of the mixture with the expected weights, posterior means and "
        "covariances; there is no BIC for a variational fit.</p>"),
        _table(["statistic", "value"], stats, left=(0, 1)),
        (f"<h3>Effective components ({len(eff)} of {K})</h3><p class=meta>weight = expected mixing "
        "proportion E[π_k]; rows = points whose most probable component it is; mean uncertainty = average "
        "of 1 − max responsibility over those rows.</p>"),
        _table(["component", "weight", "rows", "mean uncertainty"] + [f"mean {n}" for n in names]
               + [f"sd {n}" for n in names], rows),
    ]
    parts.append(_correlations(covs, eff, names))
    parts.append("</section>")
    return "".join(parts)


def _plots_section(model, X, names, max_points):
    from . import plotting as P
    from .report import _e, figure_to_data_uri

    figs = []
    D = model.means_.shape[1]
    figs.append(("clusters", P.plot_model(model, X, feature_names=names, max_points=max_points),
                 ("Points coloured by most probable component, with the posterior covariance ellipses "
                 "(histogram and densities for one feature; pairs or principal axes for more than two).")))
    if D >= 2:
        fig = P.new_figure(figsize=(7.2, 5.4))
        P.plot_uncertainty(model, X, ax=fig.add_subplot(1, 1, 1), feature_names=names, max_points=max_points,
                           projection="pca" if D > 2 else None)
        fig.tight_layout()
        figs.append(("uncertainty", fig, "Classification uncertainty 1 − max responsibility."))
    fig = P.new_figure(figsize=(7.2, 4.2))
    plot_expected_weights(model, ax=fig.add_subplot(1, 1, 1))
    fig.tight_layout()
    figs.append(("weights", fig, ("Expected weight of every offered component; the dotted line is the "
                                 "threshold of the effective components.")))
    fig = P.new_figure(figsize=(7.2, 4.2))
    plot_elbo(model, ax=fig.add_subplot(1, 1, 1))
    fig.tight_layout()
    figs.append(("elbo", fig, ("Evidence lower bound (lower_bounds_) per iteration of the kept run and its "
                              "change against tol.")))
    out = ['<section id="plots"><h2>Plots</h2>']
    for name, fig, caption in figs:
        out.append(f'<figure id="plot-{name}"><img alt="{_e(name)} plot" src="{figure_to_data_uri(fig)}">'
                   f"<figcaption>{_e(caption)}</figcaption></figure>")
    out.append("</section>")
    return "".join(out)


def build_report(model, X, *, names, source, sample_weight, command, max_points, title, X_data, affine):
    """The HTML report of a BayesianGaussianMixture (called by
    :func:`emix.report.build_report`, which has applied any scaler: ``X`` in
    the model's units, ``X_data`` in the data's, ``affine`` the scaling)."""
    from . import __version__
    from .report import _CSS, _data_section, _e

    K, D = model.means_.shape
    X = np.asarray(X, dtype=np.float64)
    X_data = np.asarray(X_data, dtype=np.float64)
    names = list(names) if names is not None else [f"x{j}" for j in range(D)]
    plot_names = names if affine is None else [f"{n} (scaled)" for n in names]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        resp = model.predict_proba(X)
        body = [_data_section(X_data, names, source, sample_weight),
                _model_section(model, X, names, sample_weight, resp, affine),
                _plots_section(model, X, plot_names, max_points)]
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    repro = f"<pre>{_e(command)}</pre>" if command else "<p>Fitted with the emix Python API.</p>"
    title = title or f"Variational Bayesian Gaussian mixture of {source}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class=meta>emix {_e(__version__)} · {now} · "
        f"{int(model.n_effective_components_)} effective of K = {K} components, covariance "
        f"'{_e(model.covariance_type)}', {X.shape[0]:,} rows × {D} features</p>"
        + "".join(body)
        + f'<section id="reproduce"><h2>Reproduce</h2>{repro}</section></body></html>\n'
    )
