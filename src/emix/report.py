"""A self-contained HTML report of a fitted mixture.

One file, no external resources: CSS inline, plots as base64 PNG ``<img>``
data URIs. Sections (each an ``<section id=...>``): ``data`` (summary of the
columns), ``selection`` (the grid of a model selection, when there was one),
``model`` (fit statistics, weights, means, standard deviations and
correlations per component, cluster sizes), ``plots`` and ``reproduce``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import warnings

import numpy as np

from . import __version__

__all__ = ["build_report", "figure_to_data_uri", "SECTIONS"]

SECTIONS = ("data", "selection", "model", "plots", "reproduce")

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1000px;
color:#222;background:#fff;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;border-bottom:2px solid #1f4e79;padding-bottom:.2em}
h2{font-size:1.25em;color:#1f4e79;margin-top:1.8em}
h3{font-size:1.05em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:right}
th{background:#f3f6fa;border-bottom:2px solid #bbb}
td.l,th.l{text-align:left}
tr.best td{background:#fff6cc;font-weight:600}
tr.failed td{color:#999}
.meta{color:#555;font-size:.9em}
figure{margin:1em 0 2em}
figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em;margin-top:.3em}
code,pre{background:#f5f5f5;padding:.1em .3em;border-radius:3px}
pre{padding:.6em;overflow-x:auto}
.warn{color:#a94400}
table.grid td.bestcell{background:#fff6cc;font-weight:700;outline:2px solid #d4a017}
table.grid td.noconv{font-style:italic;color:#666}
table.grid td.failed{color:#b00}
details summary{cursor:pointer;color:#1f4e79;margin:.5em 0}
.scroll{overflow-x:auto;max-width:100%}
table.corr td{min-width:3.2em}
"""


def figure_to_data_uri(fig, dpi=100):
    """PNG bytes of a matplotlib figure as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _e(x):
    return html.escape(str(x), quote=True)


def _num(v, digits=4):
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    v = float(v)
    if not math.isfinite(v):
        return "–"
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.{digits}e}"
    return f"{v:,.{digits}g}" if abs(v) >= 1e4 else f"{v:.{digits}g}"


def _table(header, rows, left=(0,), row_classes=None, cls=None, cell_styles=None):
    """An HTML table in a horizontally scrolling box: however many columns,
    the page itself never grows wider than its 1000-px column."""
    out = ['<div class="scroll">', f'<table class="{cls}"><thead><tr>' if cls else "<table><thead><tr>"]
    out += [(f'<th class="l">{_e(h)}</th>' if i in left else f"<th>{_e(h)}</th>") for i, h in enumerate(header)]
    out.append("</tr></thead><tbody>")
    for r, row in enumerate(rows):
        cls = row_classes[r] if row_classes else ""
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        styles = cell_styles[r] if cell_styles else None
        out += [(f'<td class="l">{_e(c)}</td>' if i in left else
                 (f'<td style="{styles[i]}">{_e(c)}</td>' if styles and styles[i] else f"<td>{_e(c)}</td>"))
                for i, c in enumerate(row)]
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _data_section(X, names, source, sample_weight):
    n, d = X.shape
    rows = []
    for j, name in enumerate(names):
        x = X[:, j]
        q = np.quantile(x, [0.0, 0.25, 0.5, 0.75, 1.0])
        rows.append([name, _num(float(x.mean())), _num(float(x.std(ddof=1)) if n > 1 else 0.0)] + [_num(v) for v in q])
    w = "" if sample_weight is None else (
        f" Rows are weighted (total weight {_num(float(np.sum(sample_weight)))}).")
    return (
        f'<section id="data"><h2>Data</h2><p>{_e(source)}: <b>{n:,}</b> rows, <b>{d}</b> feature'
        f"{'s' if d != 1 else ''} used in the fit.{_e(w)}</p>"
        + _table(["column", "mean", "sd", "min", "25%", "median", "75%", "max"], rows)
        + "</section>"
    )


def _fixed(v, digits=2):
    return "–" if v is None or not math.isfinite(float(v)) else f"{float(v):.{digits}f}"


def _selection_section(rows, criterion, best):
    if not rows:
        return ('<section id="selection"><h2>Model selection</h2><p>No selection was run: the number of '
                "components and the covariance type were given.</p></section>")
    key = criterion.lower()
    ok = [r for r in rows if not r.get("error") and not r.get("singular") and r.get(key) is not None
          and math.isfinite(r[key])]  # singular fits are not ranked (emix._singular)
    is_best = lambda r: best and (r["n_components"], r["covariance_type"]) == (  # noqa: E731
        best["n_components"], best["covariance_type"])
    # mclust-style grid: K down, covariance types across, the chosen cell marked
    types = list(dict.fromkeys(r["covariance_type"] for r in rows))
    ks = sorted({r["n_components"] for r in rows})
    by = {(r["n_components"], r["covariance_type"]): r for r in rows}
    grid = ['<table class="grid"><thead><tr><th>K</th>'] + [f"<th>{_e(t)}</th>" for t in types] + ["</tr></thead><tbody>"]
    for k in ks:
        grid.append(f"<tr><td>{k}</td>")
        for t in types:
            r = by.get((k, t))
            if r is None:
                grid.append("<td></td>")
            elif r.get("error"):
                grid.append(f'<td class="failed" title="{_e(r["error"])}">failed</td>')
            elif r.get("singular"):
                grid.append(f'<td class="failed" title="{_e(r["singular"])}">singular</td>')
            else:
                cls = ' class="bestcell"' if is_best(r) else (' class="noconv"' if r.get("converged") is False else "")
                grid.append(f"<td{cls}>{_fixed(r[key])}</td>")
        grid.append("</tr>")
    grid.append("</tbody></table>")
    grid = ['<div class="scroll">'] + grid + ["</div>"]
    head = ["rank", "K", "covariance", "log-likelihood", "parameters", "BIC", "ICL", "AIC", "iterations",
            "converged", "note"]
    ordered = sorted(ok, key=lambda r: r[key]) + [r for r in rows if r not in ok]
    body, classes = [], []
    for i, r in enumerate(ordered):
        failed = r not in ok
        body.append(["" if failed else i + 1, r["n_components"], r["covariance_type"],
                     _fixed(r.get("log_likelihood")), _num(r.get("n_parameters")), _fixed(r.get("bic")),
                     _fixed(r.get("icl")), _fixed(r.get("aic")), _num(r.get("n_iter")),
                     "–" if r.get("converged") is None else _num(bool(r.get("converged"))),
                     ((str(r.get("error")) if r.get("error") else f"singular: {r.get('singular')}")[:160]
                      if failed else ("chosen" if is_best(r) else ""))])
        classes.append("best" if is_best(r) else ("failed" if failed else ""))
    n_singular = sum(1 for r in rows if r.get("singular") and not r.get("error"))
    n_fail = len(rows) - len(ok) - n_singular
    n_noconv = sum(1 for r in ok if r.get("converged") is False)
    notes = []
    if n_fail:
        notes.append(f'<span class="warn">{n_fail} fit(s) failed</span> (hover a cell for the reason)')
    if n_singular:
        notes.append(f'<span class="warn">{n_singular} fit(s) singular</span>, not ranked: a component at the '
                     "reg_covar floor or with too few points, whose likelihood is not a real estimate "
                     "(hover a cell for the reason)")
    if n_noconv:
        notes.append(f"{n_noconv} fit(s) stopped at max_iter before converging (in italics)")
    return (
        f'<section id="selection"><h2>Model selection</h2><p>{len(rows)} models compared by '
        f"<b>{_e(key.upper())}</b> (lower is better; mclust reports minus these values). Chosen: "
        f"<b>K = {best['n_components']}, {_chosen_what(best)}</b>.</p>"
        + (f"<p class=meta>{'; '.join(notes)}.</p>" if notes else "")
        + "".join(grid)
        + f"<details><summary>All {len(rows)} fits, best first</summary>"
        + _table(head, body, left=(2, 10), row_classes=classes) + "</details></section>"
    )


def _chosen_what(best):
    fam = best.get("family")
    if fam is None or fam == "gaussian":
        return f"covariance '{_e(best['covariance_type'])}'"
    if best.get("covariance_type") not in (None, fam):
        return f"family '{_e(fam)}', covariance '{_e(best['covariance_type'])}'"
    return f"family '{_e(fam)}'"


def volume_text(log_volume):
    """A noise hyper-volume ``exp(log_volume)`` for people: the number, or
    ``exp(...)`` where it would overflow a float (from about 710)."""
    return f"{math.exp(log_volume):.6g}" if abs(log_volume) < 700 else f"exp({log_volume:.6g})"


def _singular_stat(stats, model, X):
    """A 'singular fit' line when the model is (emix._singular): its
    likelihood comes from the reg_covar floor or from too few points."""
    from ._singular import model_reason

    n = X.shape[0]
    if np.issubdtype(np.asarray(X).dtype, np.floating) and np.isnan(X).any():
        n = int(np.count_nonzero(~np.all(np.isnan(X), axis=1)))  # rows with nothing observed add nothing
    reason = model_reason(model, n)
    if reason is not None:
        stats.append(["singular fit", f"yes: {reason}"])


#: Up to this many features, a component's means (and standard deviations)
#: are one row of a table; beyond, features go down and components across.
WIDE_FEATURES = 6
#: Correlations within components: a column per pair of features up to this
#: many features, a lower-triangular matrix per component up to
#: ``MAX_CORRELATION_FEATURES``, beyond which the section says why it is omitted.
PAIR_FEATURES = 4
MAX_CORRELATION_FEATURES = 40


def _corr_style(v):
    """A background tint for a correlation: blue for positive, red for negative."""
    if not math.isfinite(v) or abs(v) < 0.05:
        return ""
    a = min(abs(v), 1.0) * 0.55
    return f"background:rgba({'31,78,121' if v > 0 else '192,57,43'},{a:.2f})" + (";color:#fff" if a > 0.35 else "")


def _correlation_html(covs, names):
    """Correlations within each component, for any number of features: pairs
    as columns for a few features, one matrix per component for more, and an
    explicit note (never silence) above ``MAX_CORRELATION_FEATURES``."""
    K, D = covs.shape[0], covs.shape[1]
    if D < 2:
        return ""
    head = "<h3>Correlations within components</h3>"
    corr = []
    for k in range(K):
        s = np.sqrt(np.clip(np.diagonal(covs[k]), 1e-300, None))
        corr.append(covs[k] / np.outer(s, s))
    if D <= PAIR_FEATURES:
        rows = [[k] + [_num(float(corr[k][i, j]), 3) for i in range(D) for j in range(i + 1, D)] for k in range(K)]
        pair_names = [f"{names[i]} ~ {names[j]}" for i in range(D) for j in range(i + 1, D)]
        return head + _table(["component"] + pair_names, rows)
    if D > MAX_CORRELATION_FEATURES:
        return (head + f"<p class=meta>Not shown: {D} features give {D * (D - 1) // 2:,} pairs per component. "
                "The covariances are in the model file (<code>emix info MODEL --json</code>, or "
                "<code>covariances_</code> in Python).</p>")
    parts = [head, f"<p class=meta>One matrix per component (lower triangle; blue positive, red negative); "
                   f"{D} features.</p>"]
    for k in range(K):
        rows = [[names[i]] + [_num(float(corr[k][i, j]), 2) if j < i else ("1" if j == i else "")
                              for j in range(D)] for i in range(D)]
        styles = [[""] + [_corr_style(float(corr[k][i, j])) if j < i else "" for j in range(D)] for i in range(D)]
        parts.append(f"<details{' open' if k == 0 else ''}><summary>component {k}</summary>"
                     + _table([""] + [str(n) for n in names], rows, cls="corr", cell_styles=styles)
                     + "</details>")
    return "".join(parts)


def _model_section(model, X, names, sample_weight, resp, affine=None):
    """``X`` in the model's units; ``affine``: ``(a, b)`` of a scaled model
    (z = a x + b), whose likelihood, means and standard deviations are
    reported in the data's units (log-likelihood + n sum log|a|)."""
    from .plotting import full_covariances

    K, D = model.means_.shape
    n_eff = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))
    shift = 0.0 if affine is None else n_eff * float(np.sum(np.log(np.abs(affine[0]))))
    ll = float(model.score(X, sample_weight=sample_weight)) * n_eff + shift
    stats = [
        ["components K", K], ["covariance type", model.covariance_type],
        ["log-likelihood", _fixed(ll, 3)], ["BIC", _fixed(model.bic(X, sample_weight) - 2 * shift, 3)],
        ["ICL", _fixed(model.icl(X, sample_weight) - 2 * shift, 3)],
        ["AIC", _fixed(model.aic(X, sample_weight) - 2 * shift, 3)],
        ["EM iterations", model.n_iter_], ["converged", _num(bool(model.converged_))],
        ["tol / reg_covar / n_init", f"{model.tol:g} / {model.reg_covar:g} / {model.n_init}"],
    ]
    if affine is not None:
        stats.append(["scaling", "fitted to scaled features z = a·x + b (stored in the model file); "
                                 "likelihood, criteria, means and standard deviations in the data's units, "
                                 "plots in the scaled units"])
    _singular_stat(stats, model, X)
    noise_weight = getattr(model, "noise_weight_", None)
    if noise_weight is not None:
        volume = volume_text(float(model.noise_log_volume_))
        stats.append(["noise component", f"weight {_num(float(noise_weight))}, hyper-volume {volume} "
                                          "(its rows are labelled −1; the Gaussian weights sum to 1 − this)"])
    prior = getattr(model, "prior", None)
    if prior is not None:
        stats.append(["prior", "mclust's default conjugate prior (MAP fit)" if isinstance(prior, str)
                      else f"conjugate prior (MAP fit): shrinkage {prior.shrinkage:g}, dof {prior.dof:g}"])
    if getattr(model, "equal_proportions", False):
        stats.append(["equal proportions", "yes (mclust's equalPro)"])
    labels = np.argmax(resp, axis=1)
    counts = np.bincount(labels, minlength=resp.shape[1])
    unc = 1.0 - resp.max(axis=1)
    covs = full_covariances(model)
    means = np.asarray(model.means_, dtype=np.float64)
    sds = np.sqrt(np.clip(np.diagonal(covs, axis1=1, axis2=2), 0.0, None))
    if affine is not None:
        a, b = affine
        means, sds = (means - b) / a, sds / np.abs(a)

    def row(k, name, weight):
        return [name, _num(float(weight)), f"{counts[k]:,}",
                _fixed(float(np.mean(unc[labels == k])), 3) if counts[k] else "–"]

    wide = D <= WIDE_FEATURES
    comp = [row(k, k, model.weights_[k]) + ([_num(float(m)) for m in means[k]] if wide else []) for k in range(K)]
    if noise_weight is not None and resp.shape[1] > K:
        comp.append(row(K, "noise (−1)", noise_weight) + (["–"] * D if wide else []))
    parts = [
        '<section id="model"><h2>Chosen model</h2>',
        _table(["statistic", "value"], stats, left=(0, 1)),
        "<h3>Components</h3><p class=meta>weight = mixing proportion; rows = points whose most probable "
        "component it is; mean uncertainty = average of 1 − max responsibility over those rows.</p>",
        _table(["component", "weight", "rows", "mean uncertainty"] + ([f"mean {n}" for n in names] if wide else []),
               comp),
    ]
    if wide:
        parts += ["<h3>Standard deviations</h3>",
                  _table(["component"] + [f"sd {n}" for n in names],
                         [[k] + [_num(float(v)) for v in sds[k]] for k in range(K)])]
    else:  # features down, components across: the table grows with K, not with D
        comps = [f"component {k}" for k in range(K)]
        parts += ["<h3>Means</h3>",
                  _table(["feature"] + comps, [[n] + [_num(float(means[k, j])) for k in range(K)]
                                               for j, n in enumerate(names)]),
                  "<h3>Standard deviations</h3>",
                  _table(["feature"] + comps, [[n] + [_num(float(sds[k, j])) for k in range(K)]
                                               for j, n in enumerate(names)])]
    parts.append(_correlation_html(covs, names))
    parts.append("</section>")
    return "".join(parts)


def _plots_section(model, X, names, rows, criterion, best, max_points):
    from . import plotting as P

    figs = []
    D = model.means_.shape[1]
    fig = P.plot_model(model, X, feature_names=names, max_points=max_points)
    what = {1: "Histogram of the data with the mixture density and the weighted component densities.",
            2: "Points coloured by most probable component; 1σ (solid) and 2σ (dashed) covariance "
               "ellipses; grey contours enclose 50%, 90% and 99% of the mixture's probability."}
    figs.append(("clusters", fig, what.get(D, "Pairs of features (D ≤ 5) or the first two principal axes "
                                            "(D > 5), points coloured by most probable component, with "
                                            "the projected covariance ellipses.")))
    if D >= 2:
        fig = P.new_figure(figsize=(7.2, 5.4))
        P.plot_uncertainty(model, X, ax=fig.add_subplot(1, 1, 1), feature_names=names, max_points=max_points,
                           projection="pca" if D > 2 else None)
        fig.tight_layout()
        figs.append(("uncertainty", fig, "Classification uncertainty 1 − max responsibility: large dark "
                                         "points lie between components."))
    return _plots_html(P, figs, model, rows, criterion, best)


def _plots_html(P, figs, model, rows, criterion, best):
    """The report's plots section: ``figs`` (``(name, figure, caption)``, the
    model-specific ones) followed by the selection criterion against K (when
    ``rows`` are given) and the EM trace, each embedded as a PNG data URI."""
    if rows:
        fig = P.new_figure(figsize=(7.2, 4.8))
        P.plot_criterion(rows, criterion, ax=fig.add_subplot(1, 1, 1), best=best)
        fig.tight_layout()
        figs.append(("criterion", fig, f"{criterion.upper()} of every fitted model against K; the star marks "
                                       "the chosen model."))
    fig = P.new_figure(figsize=(7.2, 4.2))
    P.plot_convergence(model, ax=fig.add_subplot(1, 1, 1))
    fig.tight_layout()
    figs.append(("convergence", fig, "EM trace of the chosen model's best restart: mean log-likelihood "
                                     "per iteration and its change against tol."))
    out = ['<section id="plots"><h2>Plots</h2>']
    for name, fig, caption in figs:
        uri = figure_to_data_uri(fig)
        out.append(f'<figure id="plot-{name}"><img alt="{_e(name)} plot" src="{uri}">'
                   f"<figcaption>{_e(caption)}</figcaption></figure>")
    out.append("</section>")
    return "".join(out)


def build_report(model, X, *, feature_names=None, source="data", selection_rows=None, criterion="bic",
                 best=None, sample_weight=None, command=None, max_points=20000, title=None, scaler=None):
    """HTML text of the report.

    Parameters
    ----------
    model : fitted GaussianMixture, or MixtureModel of any family
        Other families get their own sections: class-conditional
        probabilities (heat map) for latent classes, rates for Poisson,
        locations, scales, degrees of freedom and the outlier view for
        Student-t, one block per column group for mixed data.
    X : ndarray of shape (n_samples, n_features), or a DataFrame
        The data the model was fitted on (or is to be judged on); for the
        families that take categories, the table as the model takes it.
    feature_names : list of str, optional
    source : str
        Where the data came from (shown in the report).
    selection_rows : list of dict, optional
        Rows of a model selection (see :func:`emix.selection.select`).
    criterion : str
    best : dict, optional
        ``{"n_components", "covariance_type"}`` of the chosen model.
    command : str, optional
        The command line that produced the report.
    scaler : fitted scaler or list of them, optional
        For a mixture fitted to scaled features (``emix fit --scale``): the
        scalers (StandardScaler, MinMaxScaler, RobustScaler, MaxAbsScaler)
        that map ``X``, given in the data's units, to the model's. ``model``
        may also be a scikit-learn Pipeline of such scalers ending in a
        mixture. The data section, log-likelihood, criteria, means and
        standard deviations are then in the data's units (the change of
        variables adds ``n sum_j log|a_j|`` to the log-likelihood, for
        z = a x + b), the plots in the scaled units.

    Returns
    -------
    str
    """
    from ._family_views import family_name
    from .io import _is_pipeline, scaler_affine

    if _is_pipeline(model):
        if scaler is not None:
            raise ValueError("give either a Pipeline or scaler=, not both")
        scaler = [step for _, step in model.steps[:-1] if not (step is None or isinstance(step, str))]
        model = model.steps[-1][1]
    scalers = [] if scaler is None else (list(scaler) if isinstance(scaler, (list, tuple)) else [scaler])
    affine = None
    if scalers:
        X_data = np.asarray(X, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            for sc in scalers:
                X = np.asarray(sc.transform(X), dtype=np.float64)
        a, b = np.ones(X.shape[1]), np.zeros(X.shape[1])
        for sc in scalers:
            ab = scaler_affine(sc)
            if ab is not None:
                a, b = ab[0] * a, ab[0] * b + ab[1]
        affine = (a, b)

    if family_name(model) is not None:  # student_t, poisson, latent classes, mixed data
        return _build_family_report(model, X, feature_names=feature_names, source=source,
                                    selection_rows=selection_rows, criterion=criterion, best=best,
                                    sample_weight=sample_weight, command=command, max_points=max_points, title=title)
    from ._report_bayesian import is_bayesian

    if is_bayesian(model):  # variational Bayes: effective components and the ELBO (no BIC)
        from ._report_bayesian import build_report as _bayesian_report

        return _bayesian_report(model, X, names=feature_names, source=source, sample_weight=sample_weight,
                                command=command, max_points=max_points, title=title,
                                X_data=X_data if affine is not None else X, affine=affine)
    X = np.asarray(X, dtype=np.float64)
    K, D = model.means_.shape
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(D)]
    word = "standardized" if (len(scalers) == 1 and type(scalers[0]).__name__ == "StandardScaler"
                              and scalers[0].with_mean and scalers[0].with_std) else "scaled"
    plot_names = names if affine is None else [f"{n} ({word})" for n in names]
    best = best or {"n_components": K, "covariance_type": model.covariance_type}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        resp = model.predict_proba(X)
        body = [
            _data_section(X if affine is None else X_data, names, source, sample_weight),
            _selection_section(selection_rows or [], criterion, best),
            _model_section(model, X, names, sample_weight, resp, affine),
            _plots_section(model, X, plot_names, selection_rows, criterion, best, max_points),
        ]
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    repro = (f"<pre>{_e(command)}</pre>" if command else
             "<p>Fitted with the emix Python API.</p>")
    title = title or f"Gaussian mixture of {source}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class=meta>emix {_e(__version__)} · {now} · "
        f"K = {K}, covariance '{_e(model.covariance_type)}', {X.shape[0]:,} rows × {D} features</p>"
        + "".join(body)
        + f'<section id="reproduce"><h2>Reproduce</h2>{repro}</section></body></html>\n'
    )


# ------------------------------------------------------- other families
def _family_data_section(X, names, source, sample_weight):
    """Numeric columns: mean, sd and quantiles; others: categories, the most
    frequent ones and missing entries."""
    import pandas as pd

    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X), columns=list(names))
    n, d = frame.shape
    num_rows, cat_rows = [], []
    for j, name in enumerate(names):
        s = frame.iloc[:, j]
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            x = s.to_numpy(dtype=np.float64, na_value=np.nan)
            x = x[np.isfinite(x)]
            if x.size == 0:
                num_rows.append([name] + ["–"] * 7 + [f"{n:,}"])
                continue
            q = np.quantile(x, [0.0, 0.25, 0.5, 0.75, 1.0])
            num_rows.append([name, _num(float(x.mean())), _num(float(x.std(ddof=1)) if x.size > 1 else 0.0)]
                            + [_num(v) for v in q] + [f"{n - x.size:,}"])
        else:
            counts = s.value_counts(dropna=True)
            top = ", ".join(f"{k} ({v:,})" for k, v in counts.head(4).items())
            cat_rows.append([name, f"{counts.size:,}", top + (", ..." if counts.size > 4 else ""),
                             f"{int(s.isna().sum()):,}"])
    w = "" if sample_weight is None else (
        f" Rows are weighted (total weight {_num(float(np.sum(sample_weight)))}).")
    parts = [f'<section id="data"><h2>Data</h2><p>{_e(source)}: <b>{n:,}</b> rows, <b>{d}</b> feature'
             f"{'s' if d != 1 else ''} used in the fit.{_e(w)}</p>"]
    if num_rows:
        parts.append(_table(["column", "mean", "sd", "min", "25%", "median", "75%", "max", "missing"], num_rows))
    if cat_rows:
        parts.append(_table(["column", "categories", "most frequent (count)", "missing"], cat_rows, left=(0, 2)))
    parts.append("</section>")
    return "".join(parts)


def _block_html(b, K):
    comps = [str(k) for k in range(K)]
    if b["kind"] == "probabilities":
        what = ("probability of each category given the component" if b["family"] == "categorical" else
                "probability of each column's second label given the component")
        rows = [[f"{c} = {lab}"] + [_fixed(v, 3) for v in vals] for (c, lab), vals in zip(b["rows"], b["values"])]
        return (f"<h3>Class-conditional probabilities ({_e(b['family'])})</h3><p class=meta>{_e(what)}.</p>"
                + _table(["column = label"] + [f"component {k}" for k in comps], rows))
    if b["kind"] == "rates":
        rows = [[k] + [_num(float(v)) for v in b["values"][k]] for k in range(K)]
        return ("<h3>Poisson rates</h3><p class=meta>mean count of each column in each component.</p>"
                + _table(["component"] + [f"rate {c}" for c in b["columns"]], rows))
    if b["kind"] == "locations":
        t = b["family"] == "student_t"
        head = ["component"] + [f"mean {c}" for c in b["columns"]] + [
            f"{'scale' if t else 'sd'} {c}" for c in b["columns"]] + (["dof"] if b["dof"] is not None else [])
        rows = [[k] + [_num(float(v)) for v in b["means"][k]] + [_num(float(v)) for v in b["scales"][k]]
                + ([_num(float(b["dof"][k]))] if b["dof"] is not None else []) for k in range(K)]
        note = ("locations, square roots of the scale matrices' diagonals (the covariance is scale·ν/(ν−2) for "
                "ν > 2) and degrees of freedom ν" if t else
                f"means and standard deviations (covariance '{b['covariance_type']}')")
        return (f"<h3>{'Student-t' if t else 'Gaussian'} columns</h3><p class=meta>{_e(note)}.</p>"
                + _table(head, rows))
    return f"<h3>{_e(b['family'])}</h3><p>parameters: {_e(', '.join(b['params']))}</p>"


def _family_model_section(model, X, names, sample_weight, resp):
    from ._family_views import blocks

    K = int(model.n_components)
    fam = model.family_
    n_eff = (X.shape[0] if sample_weight is None else float(np.sum(sample_weight)))
    ll = float(model.score(X, sample_weight=sample_weight)) * n_eff
    groups = ""
    if fam.name == "mixed":
        groups = "; ".join(f"{f}: {', '.join(str(names[j]) for j in cols)}" for f, cols in fam.groups)
    stats = [["components K", K], ["family", fam.name + (f" ({groups})" if groups else "")],
             ["log-likelihood", _fixed(ll, 3)], ["BIC", _fixed(model.bic(X, sample_weight), 3)],
             ["ICL", _fixed(model.icl(X, sample_weight), 3)], ["AIC", _fixed(model.aic(X, sample_weight), 3)],
             ["EM iterations", model.n_iter_], ["converged", _num(bool(model.converged_))],
             ["tol / n_init", f"{model.tol:g} / {model.n_init}"]]
    _singular_stat(stats, model, X)
    labels = np.argmax(resp, axis=1)
    counts = np.bincount(labels, minlength=K)
    unc = 1.0 - resp.max(axis=1)
    comp = [[k, _num(float(model.weights_[k])), f"{counts[k]:,}",
             _fixed(float(np.mean(unc[labels == k])), 3) if counts[k] else "–"] for k in range(K)]
    parts = ['<section id="model"><h2>Chosen model</h2>', _table(["statistic", "value"], stats, left=(0, 1)),
             "<h3>Components</h3><p class=meta>weight = mixing proportion; rows = points whose most probable "
             "component it is; mean uncertainty = average of 1 − max responsibility over those rows.</p>",
             _table(["component", "weight", "rows", "mean uncertainty"], comp)]
    parts += [_block_html(b, K) for b in blocks(model, names)]
    parts.append("</section>")
    return "".join(parts)


def _family_plots_section(model, X, names, rows, criterion, best, max_points):
    from . import plotting as P
    from ._family_views import blocks

    kinds = {b["kind"] for b in blocks(model, names)}
    figs = []
    if "probabilities" in kinds:
        n_rows = sum(len(b["rows"]) for b in blocks(model, names) if b["kind"] == "probabilities")
        fig = P.new_figure(figsize=(2.2 + 0.9 * model.n_components + 1.5, max(3.0, 1.2 + 0.28 * n_rows)))
        P.plot_class_probabilities(model, ax=fig.add_subplot(1, 1, 1), feature_names=names)
        fig.tight_layout()
        figs.append(("probabilities", fig, "Class-conditional probabilities: each row a column's category, each "
                                           "column a component (its weight below); darker = more probable."))
    if "rates" in kinds:
        fig = P.new_figure(figsize=(7.2, 4.8))
        P.plot_rates(model, ax=fig.add_subplot(1, 1, 1), feature_names=names)
        fig.tight_layout()
        figs.append(("rates", fig, "Poisson rates (mean counts) of each column in each component."))
    if model.family_.name == "student_t":
        fig = P.new_figure(figsize=(7.2, 5.4))
        P.plot_outliers(model, np.asarray(X, dtype=np.float64), ax=fig.add_subplot(1, 1, 1), feature_names=names,
                        max_points=max_points)
        fig.tight_layout()
        figs.append(("outliers", fig, "Each point coloured by its expected Student-t scale weight Σ_k r_nk u_nk, "
                                      "u_nk = (ν_k + D)/(ν_k + Mahalanobis²): near 1 typical, near 0 an outlier "
                                      "the fit down-weights; 1σ/2σ ellipses of the scale matrices."))
    return _plots_html(P, figs, model, rows, criterion, best)


def _build_family_report(model, X, *, feature_names, source, selection_rows, criterion, best, sample_weight,
                         command, max_points, title):
    from ._family_views import feature_names as model_names

    K = int(model.n_components)
    fam = model.family_.name
    names = list(feature_names) if feature_names is not None else model_names(model)
    best = best or {"n_components": K, "covariance_type": fam, "family": fam}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        resp = model.predict_proba(X)
        body = [
            _family_data_section(X, names, source, sample_weight),
            _selection_section(selection_rows or [], criterion, best),
            _family_model_section(model, X, names, sample_weight, resp),
            _family_plots_section(model, X, names, selection_rows, criterion, best, max_points),
        ]
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    repro = f"<pre>{_e(command)}</pre>" if command else "<p>Fitted with the emix Python API.</p>"
    title = title or f"{fam.replace('_', '-').capitalize()} mixture of {source}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class=meta>emix {_e(__version__)} · {now} · "
        f"K = {K}, family '{_e(fam)}', {X.shape[0]:,} rows × {len(names)} features</p>"
        + "".join(body)
        + f'<section id="reproduce"><h2>Reproduce</h2>{repro}</section></body></html>\n'
    )
