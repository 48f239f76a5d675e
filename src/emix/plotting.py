"""Plots of fitted mixtures: clusters with covariance ellipses and density
contours, pair plots, convergence traces, criterion curves, uncertainty.

matplotlib is optional (``pip install "emix[plot]"``) and imported inside the
functions. Every plotting function takes an ``ax`` (or a ``fig`` for grids)
and returns it; with ``ax=None`` it draws on ``matplotlib.pyplot.gca()``'s
figure. Points are subsampled for *drawing* only (``max_points``), never for
fitting, so the plots stay readable and fast for a million rows.

The model is read through its public attributes (``weights_``, ``means_``,
``covariances_``, ``covariance_type``, ``lower_bounds_``) and
:meth:`~emix.GaussianMixture.predict_proba`; covariances of every structure
are expanded to full ``(K, D, D)`` matrices with the registry's
``full_covariances``.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = [
    "component_colors",
    "ellipse_geometry",
    "full_covariances",
    "plot_1d",
    "plot_class_probabilities",
    "plot_clusters",
    "plot_convergence",
    "plot_criterion",
    "plot_ellipses",
    "plot_model",
    "plot_outliers",
    "plot_pairs",
    "plot_rates",
    "plot_uncertainty",
    "scale_weights",
    "new_figure",
    "save_figure",
]

#: Ellipses are drawn at these multiples of the standard deviation.
N_STD = (1.0, 2.0)
#: Probability mass enclosed by the drawn density contours (highest-density regions).
HDR_LEVELS = (0.5, 0.9, 0.99)


def _mpl():
    try:
        import matplotlib
    except ImportError:
        raise ImportError('Plotting needs matplotlib: pip install "emix[plot]"') from None
    return matplotlib


def new_figure(figsize=(7.0, 5.5), dpi=100):
    """A figure with the Agg canvas, independent of pyplot's state and backend."""
    _mpl()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, force=False, dpi=None):
    """Write ``fig`` to ``path`` (format from the extension: png, svg, pdf)
    through a temporary file, atomically."""
    from ._files import atomic_output

    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    if fmt not in ("png", "svg", "pdf"):
        raise ValueError(f"cannot write a figure as {fmt!r}; use .png, .svg or .pdf.")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    with atomic_output(path, force) as fh:
        fig.savefig(fh, format=fmt, dpi=dpi, facecolor="white", bbox_inches=None)
    return path


def _ax(ax):
    if ax is None:
        _mpl()
        import matplotlib.pyplot as plt

        ax = plt.gca()
    return ax


def component_colors(n):
    """``n`` distinguishable colors: tab10 up to 10, tab20 up to 20, then turbo."""
    mpl = _mpl()
    if n <= 10:
        cmap = mpl.colormaps["tab10"]
        return [cmap(i) for i in range(n)]
    if n <= 20:
        cmap = mpl.colormaps["tab20"]
        # pairs of tab20 are light/dark of one hue: take darks first, then lights
        order = list(range(0, 20, 2)) + list(range(1, 20, 2))
        return [cmap(order[i]) for i in range(n)]
    cmap = mpl.colormaps["turbo"]
    return [cmap(x) for x in np.linspace(0.05, 0.95, n)]


def full_covariances(model):
    """The model's covariances as a ``(K, D, D)`` stack, whatever its structure."""
    from .families.gaussian import get_structure

    K, D = model.means_.shape
    cov = get_structure(model.covariance_type).full_covariances(np.asarray(model.covariances_), K, D)
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape == (D, D):
        cov = np.broadcast_to(cov, (K, D, D))
    return cov


def ellipse_geometry(cov, n_std=1.0):
    """``(width, height, angle_degrees)`` of the ``n_std``-sigma ellipse of a
    2x2 covariance: the axes are ``2 * n_std * sqrt(eigenvalues)``, the angle
    is that of the eigenvector of the largest eigenvalue."""
    vals, vecs = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    vals = np.clip(vals, 0.0, None)
    major = vecs[:, 1]
    angle = math.degrees(math.atan2(major[1], major[0]))
    return 2.0 * n_std * math.sqrt(vals[1]), 2.0 * n_std * math.sqrt(vals[0]), angle


def plot_ellipses(means, covariances, ax=None, n_std=N_STD, colors=None, linewidth=1.6, mark_means=True):
    """Draw each component's ``n_std``-sigma ellipses (solid, then dashed).

    Parameters
    ----------
    means : array-like of shape (K, 2)
    covariances : array-like of shape (K, 2, 2)
    """
    _mpl()
    from matplotlib.patches import Ellipse

    ax = _ax(ax)
    means = np.asarray(means, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    colors = [_darker(c) for c in (colors or component_colors(len(means)))]
    styles = ["-", "--", ":", "-."]
    for k, (m, c) in enumerate(zip(means, covariances)):
        for j, s in enumerate(n_std):
            w, h, a = ellipse_geometry(c, s)
            ax.add_patch(Ellipse(tuple(m), w, h, angle=a, fill=False, edgecolor=colors[k],
                                 linewidth=linewidth, linestyle=styles[j % len(styles)], zorder=4,
                                 gid=f"ellipse-{k}-{s:g}sigma"))
        if mark_means:
            ax.plot(m[0], m[1], marker="X", markersize=9, color=colors[k], markeredgecolor="black",
                    markeredgewidth=0.8, zorder=5, linestyle="none")
    return ax


# ------------------------------------------------------------ helpers
def _darker(color, factor=0.72):
    """The same hue, darker: ellipses stay visible over points of their colour."""
    from matplotlib.colors import to_rgba

    r, g, b, a = to_rgba(color)
    return (r * factor, g * factor, b * factor, a)


def _subsample(n, max_points, random_state=0):
    if max_points is None or n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=max_points, replace=False))


def _point_style(n_drawn):
    size = float(np.clip(40.0 * 300.0 / max(n_drawn, 1), 3.5, 28.0))
    alpha = float(np.clip(0.9 * (2000.0 / max(n_drawn, 1)) ** 0.35, 0.25, 0.85))
    return size, alpha


def _mixture_logpdf_2d(P, weights, means, covs):
    """log sum_k w_k N(P | m_k, C_k) for points P of shape (n, 2)."""
    out = []
    for w, m, c in zip(weights, means, covs):
        L = np.linalg.cholesky(c + 1e-12 * np.eye(2) * max(np.trace(c), 1e-300))
        z = np.linalg.solve(L, (P - m).T)
        out.append(math.log(max(w, 1e-300)) - 0.5 * np.sum(z * z, axis=0)
                   - np.log(np.diag(L)).sum() - math.log(2 * math.pi))
    a = np.stack(out, axis=1)
    amax = a.max(axis=1, keepdims=True)
    return (amax + np.log(np.exp(a - amax).sum(axis=1, keepdims=True)))[:, 0]


def _hdr_levels(weights, means, covs, probs=HDR_LEVELS, n=4000, seed=0):
    """Density values c_p with P(f(Y) > c_p) = p for Y drawn from the mixture:
    the contour f = c_p encloses the highest-density region of mass p."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.asarray(weights, dtype=np.float64) / np.sum(weights))
    Y = np.concatenate([rng.multivariate_normal(m, c, size=k, method="eigh")
                        for m, c, k in zip(means, covs, counts) if k > 0])
    logf = _mixture_logpdf_2d(Y, weights, means, covs)
    return {p: float(np.quantile(logf, 1.0 - p)) for p in probs}


def _limits(P, means, covs, pad=0.05, n_sd=2.2):
    lo = np.min(P, axis=0) if len(P) else means.min(axis=0)
    hi = np.max(P, axis=0) if len(P) else means.max(axis=0)
    sd = np.sqrt(np.stack([np.diag(c) for c in covs]))
    lo = np.minimum(lo, (means - n_sd * sd).min(axis=0))
    hi = np.maximum(hi, (means + n_sd * sd).max(axis=0))
    span = np.where(hi > lo, hi - lo, 1.0)
    return lo - pad * span, hi + pad * span


def _project(model, X, dims=None, projection=None, feature_names=None):
    """2-D coordinates, means, covariances and axis labels to draw."""
    D = model.means_.shape[1]
    names = list(feature_names) if feature_names is not None else (
        [str(n) for n in model.feature_names_in_] if hasattr(model, "feature_names_in_") else
        [f"x{j}" for j in range(D)])
    means = np.asarray(model.means_, dtype=np.float64)
    covs = full_covariances(model)
    X = np.asarray(X, dtype=np.float64)
    if projection == "pca" or (projection is None and dims is None and D > 2):
        Xc = X - X.mean(axis=0)
        vals, vecs = np.linalg.eigh(np.cov(Xc, rowvar=False) if len(X) > 1 else np.eye(D))
        order = np.argsort(vals)[::-1][:2]
        W = vecs[:, order]
        W = W * np.where(W[np.argmax(np.abs(W), axis=0), [0, 1]] < 0, -1.0, 1.0)  # deterministic signs
        frac = vals[order] / max(vals.sum(), 1e-300)
        labels = [f"principal axis {i + 1} ({100 * f:.0f}% of variance)" for i, f in enumerate(frac)]
        hint = dominance_hint(X, names)
        if hint:
            labels[0] += "\n" + hint  # under the axis: never over the points
        return X @ W, means @ W, np.stack([W.T @ c @ W for c in covs]), labels
    if D == 1:
        raise ValueError("a 2-D plot needs at least 2 features; use plot_1d for one feature.")
    i, j = dims if dims is not None else (0, 1)
    sub = np.ix_([i, j], [i, j])
    return X[:, [i, j]], means[:, [i, j]], np.stack([c[sub] for c in covs]), [names[i], names[j]]


#: A feature whose variance is at least this share of the total makes the
#: principal axes follow it (:func:`dominance_hint`).
DOMINANT_SHARE = 0.95


def dominance_hint(X, feature_names=None, share=DOMINANT_SHARE):
    """A one-line hint when one feature holds at least ``share`` of the total
    variance of ``X`` (the trace of its covariance), else None.

    Principal axes maximize variance in the data's own units, so such a
    feature *is* principal axis 1 whatever the clusters look like, and the
    projected plot (and k-means starts, spherical covariance models) reflect
    the units more than the structure: standardizing each feature
    (``(x - mean) / sd``: ``emix fit --scale``, or a StandardScaler in a
    Pipeline) gives every feature the same weight.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] < 2 or X.shape[0] < 2:
        return None
    var = np.var(X, axis=0)
    total = float(var.sum())
    if not (total > 0 and np.isfinite(total)):
        return None
    j = int(np.argmax(var))
    if var[j] / total < share:
        return None
    name = feature_names[j] if feature_names is not None else f"x{j}"
    name = name if len(name) <= 24 else name[:21] + "..."
    return f"note: '{name}' holds {100 * var[j] / total:.1f}% of the variance; standardize (emix --scale)"


def _legend(ax, handles, K):
    if K > 8:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  ncol=1 if K <= 20 else 2, frameon=False, borderaxespad=0.0)
    else:
        ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.9)


NOISE_COLOR = "0.6"


def _point_colors(colors, labels):
    """Colors per point; label K (the noise column of a model fitted with
    ``noise=``) is grey."""
    return np.asarray(list(colors) + [NOISE_COLOR], dtype=object)[labels]


def _noise_handles(model):
    from matplotlib.lines import Line2D

    w = getattr(model, "noise_weight_", None)
    if w is None:
        return []
    return [Line2D([], [], marker="o", linestyle="none", color=NOISE_COLOR, markersize=7,
                   label=f"noise  (weight {float(w):.2f})")]


def _component_handles(weights, colors, counts=None):
    from matplotlib.lines import Line2D

    out = []
    for k, (w, c) in enumerate(zip(weights, colors)):
        label = f"component {k}  (weight {w:.2f})"
        out.append(Line2D([], [], marker="o", linestyle="none", color=c, markersize=7, label=label))
    return out


def _style_handles(contours):
    from matplotlib.lines import Line2D

    h = [Line2D([], [], color="0.3", linestyle="-", label="1σ ellipse"),
         Line2D([], [], color="0.3", linestyle="--", label="2σ ellipse")]
    if contours:
        h.append(Line2D([], [], color="0.45", linewidth=0.9,
                        label="density: " + "/".join(f"{100 * p:g}" for p in HDR_LEVELS) + "% regions"))
    return h


def _labels_for(model, X):
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return model.predict_proba(X)


def _finish_axes(ax, lo, hi, axis_labels, title):
    """Limits, axis labels, title and a light grid behind the data."""
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title)
    ax.grid(True, color="0.92", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)


def _shown_note(ax, n_drawn, n_total):
    if n_drawn < n_total:
        ax.text(0.99, 0.01, f"showing {n_drawn:,} of {n_total:,} points", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="0.35")


# ------------------------------------------------------------ plots
def plot_clusters(model, X, ax=None, *, dims=None, projection=None, feature_names=None,
                  resp=None, max_points=20000, ellipses=True, contours=True, legend=True,
                  title=None, random_state=0):
    """Points coloured by their most probable component, each component's
    1σ and 2σ covariance ellipses, and density contours enclosing 50%, 90%
    and 99% of the mixture's probability.

    Parameters
    ----------
    model : fitted GaussianMixture
    X : array-like of shape (n_samples, n_features)
    ax : matplotlib Axes, optional
    dims : (int, int), optional
        The two features to draw. Default: both when D == 2, else the first
        two principal axes of X (``projection="pca"``).
    resp : array-like of shape (n_samples, K), optional
        Responsibilities, if already computed.
    max_points : int or None
        Draw at most this many points (a random subset); the fit is unaffected.

    Returns
    -------
    ax
    """
    ax = _ax(ax)
    X = np.asarray(X, dtype=np.float64)
    K = model.means_.shape[0]
    idx = _subsample(len(X), max_points, random_state)
    Xs = X[idx]
    R = np.asarray(resp)[idx] if resp is not None else _labels_for(model, Xs)
    labels = np.argmax(R, axis=1)
    P, means, covs, axis_labels = _project(model, Xs, dims, projection, feature_names)
    colors = component_colors(K)
    size, alpha = _point_style(len(P))
    point_colors = _point_colors(colors, labels)
    ax.scatter(P[:, 0], P[:, 1], s=size, c=point_colors, alpha=alpha, linewidths=0,
               rasterized=len(P) > 5000, zorder=2)
    lo, hi = _limits(P, means, covs, n_sd=3.0 if contours else 2.2)  # room for the 99% contour
    if contours:
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 160), np.linspace(lo[1], hi[1], 160))
        G = np.column_stack([gx.ravel(), gy.ravel()])
        logf = _mixture_logpdf_2d(G, model.weights_, means, covs).reshape(gx.shape)
        levels = _hdr_levels(model.weights_, means, covs)
        lv = sorted(levels.values())
        if len(set(lv)) == len(lv):
            cs = ax.contour(gx, gy, logf, levels=lv, colors="0.5", linewidths=0.8, linestyles="solid", zorder=3)
            if K <= 6:  # with many components the labels would cover the picture
                names = {v: f"{100 * p:g}%" for p, v in levels.items()}
                texts = ax.clabel(cs, fmt=lambda v: names.get(v, ""), fontsize=7, inline=True, colors="0.2")
                for t in texts:  # above the points and ellipses, on a light patch that keeps them legible
                    t.set_zorder(6)
                    t.set_bbox({"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                                "alpha": 0.8})
    if ellipses:
        plot_ellipses(means, covs, ax=ax, colors=colors)
    _finish_axes(ax, lo, hi, axis_labels, title if title is not None else
                 f"{K} component{'s' if K != 1 else ''}, covariance '{model.covariance_type}'")
    if legend:
        _legend(ax, _component_handles(model.weights_, colors) + _noise_handles(model) + _style_handles(contours), K)
    _shown_note(ax, len(P), len(X))
    return ax


def plot_uncertainty(model, X, ax=None, *, dims=None, projection=None, feature_names=None,
                     resp=None, max_points=20000, title=None, random_state=0):
    """Classification uncertainty ``1 - max_k r_nk`` of each point: certain
    points small and light, uncertain points large and dark (as mclust's
    ``uncertainty`` plot), with the components' 1σ ellipses.

    Returns
    -------
    ax
    """
    mpl = _mpl()
    from matplotlib.colors import LinearSegmentedColormap

    ax = _ax(ax)
    X = np.asarray(X, dtype=np.float64)
    K = model.means_.shape[0]
    idx = _subsample(len(X), max_points, random_state)
    Xs = X[idx]
    R = np.asarray(resp)[idx] if resp is not None else _labels_for(model, Xs)
    u = 1.0 - R.max(axis=1)
    P, means, covs, axis_labels = _project(model, Xs, dims, projection, feature_names)
    umax = max(1.0 - 1.0 / K, 1e-12)
    order = np.argsort(u)  # most uncertain drawn last, on top
    cmap = LinearSegmentedColormap.from_list("emix_uncertainty", ["#d0d0d0", "#f4a259", "#c0392b", "#4a0d0d"])
    base, _ = _point_style(len(P))
    sizes = base * (0.6 + 5.0 * np.sqrt(u[order] / umax))
    sc = ax.scatter(P[order, 0], P[order, 1], c=u[order], cmap=cmap, vmin=0.0, vmax=umax, s=sizes,
                    linewidths=0, alpha=0.9, rasterized=len(P) > 5000, zorder=2)
    plot_ellipses(means, covs, ax=ax, colors=component_colors(K), n_std=(1.0,), linewidth=1.2)
    cb = ax.figure.colorbar(sc, ax=ax, fraction=0.046, pad=0.02)
    cb.set_label("uncertainty  1 − max responsibility")
    lo, hi = _limits(P, means, covs)
    _finish_axes(ax, lo, hi, axis_labels, title if title is not None else
                 f"Classification uncertainty: {np.mean(u > 0.1):.1%} of points above 0.1")
    _shown_note(ax, len(P), len(X))
    del mpl
    return ax


def plot_1d(model, X, ax=None, *, dim=0, feature_names=None, max_points=200000, bins="auto", title=None):
    """Histogram of one feature with the mixture's marginal density and each
    weighted component density."""
    ax = _ax(ax)
    X = np.asarray(X, dtype=np.float64)
    x = X[_subsample(len(X), max_points), dim]
    K = model.means_.shape[0]
    covs = full_covariances(model)
    mu = np.asarray(model.means_, dtype=np.float64)[:, dim]
    sd = np.sqrt(covs[:, dim, dim])
    w = np.asarray(model.weights_, dtype=np.float64)
    lo = min(x.min(), (mu - 3 * sd).min())
    hi = max(x.max(), (mu + 3 * sd).max())
    grid = np.linspace(lo, hi, 600)
    comp = w[:, None] * np.exp(-0.5 * ((grid[None] - mu[:, None]) / sd[:, None]) ** 2) / (sd[:, None] * math.sqrt(2 * math.pi))
    ax.hist(x, bins=bins, density=True, color="0.82", edgecolor="white", linewidth=0.4, label="data")
    colors = component_colors(K)
    for k in range(K):
        ax.plot(grid, comp[k], color=colors[k], linewidth=1.3, label=f"component {k}  (weight {w[k]:.2f})")
    ax.plot(grid, comp.sum(axis=0), color="black", linewidth=2.0, label="mixture density")
    names = feature_names or ([str(n) for n in model.feature_names_in_] if hasattr(model, "feature_names_in_")
                              else [f"x{j}" for j in range(X.shape[1])])
    ax.set_xlabel(names[dim])
    ax.set_ylabel("density")
    ax.set_title(title if title is not None else f"{K} component{'s' if K != 1 else ''}")
    _legend(ax, ax.get_legend_handles_labels()[0], K)
    return ax


def plot_pairs(model, X, fig=None, *, feature_names=None, max_points=5000, random_state=0, resp=None):
    """Pair plot for 3 to ~6 features: scatter and ellipses of every pair of
    features below the diagonal, each feature's histogram and mixture
    marginal density on the diagonal.

    Parameters
    ----------
    fig : matplotlib Figure, optional
        The figure to draw the grid on (a new one when omitted).

    Returns
    -------
    axes : ndarray of matplotlib Axes, shape (D, D)
        ``axes[i, j]`` draws feature ``j`` (x) against feature ``i`` (y); the
        upper triangle is switched off. Not the figure (unlike
        :func:`plot_model`): it is ``axes[0, 0].figure``.
    """
    X = np.asarray(X, dtype=np.float64)
    K, D = model.means_.shape
    if fig is None:
        fig = new_figure(figsize=(2.3 * D + 1.5, 2.3 * D))
    idx = _subsample(len(X), max_points, random_state)
    Xs = X[idx]
    R = np.asarray(resp)[idx] if resp is not None else _labels_for(model, Xs)
    labels = np.argmax(R, axis=1)
    names = list(feature_names) if feature_names is not None else (
        [str(n) for n in model.feature_names_in_] if hasattr(model, "feature_names_in_") else
        [f"x{j}" for j in range(D)])
    colors = component_colors(K)
    axes = fig.subplots(D, D, squeeze=False)
    size, alpha = _point_style(len(Xs))
    covs = full_covariances(model)
    means = np.asarray(model.means_, dtype=np.float64)
    for i in range(D):
        for j in range(D):
            ax = axes[i, j]
            if i == j:
                plot_1d(model, Xs, ax=ax, dim=i, feature_names=names, title="")
                ax.get_legend().remove()
                ax.set_yticks([])
                ax.set_ylabel("")
            elif i > j:
                ax.scatter(Xs[:, j], Xs[:, i], s=size * 0.5, c=_point_colors(colors, labels), alpha=alpha,
                           linewidths=0, rasterized=len(Xs) > 5000)
                sub = np.ix_([j, i], [j, i])
                plot_ellipses(means[:, [j, i]], np.stack([c[sub] for c in covs]), ax=ax, colors=colors,
                              linewidth=1.0, mark_means=False)
                lo, hi = _limits(Xs[:, [j, i]], means[:, [j, i]], np.stack([c[sub] for c in covs]))
                ax.set_xlim(lo[0], hi[0])
                ax.set_ylim(lo[1], hi[1])
            else:
                ax.axis("off")
                continue
            ax.tick_params(labelsize=7)
            ax.set_xlabel(names[j] if i == D - 1 else "", fontsize=9)
            if j == 0 and i > 0:
                ax.set_ylabel(names[i], fontsize=9)
            if i < D - 1:
                ax.set_xticklabels([])
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.07, top=0.93, hspace=0.12, wspace=0.12)
    # the empty upper triangle holds the legend
    fig.legend(handles=_component_handles(model.weights_, colors) + _style_handles(False)[:2],
               loc="upper right", bbox_to_anchor=(0.97, 0.88), fontsize=9, frameon=False,
               ncol=1 if K <= 10 else 2)
    fig.suptitle(f"{K} components, covariance '{model.covariance_type}' (pairs of features; "
                 "1σ and 2σ ellipses of the marginals)")
    return axes


def plot_convergence(model, ax=None, *, tol=None, title=None):
    """EM trace: mean log-likelihood per row at each iteration (left axis) and
    the size of its change on a log scale against ``tol`` (right axis)."""
    ax = _ax(ax)
    lb = np.asarray(getattr(model, "lower_bounds_", model) if not isinstance(model, (list, np.ndarray)) else model,
                    dtype=np.float64)
    tol = tol if tol is not None else getattr(model, "tol", None)
    if lb.size == 0:
        ax.text(0.5, 0.5, "no EM iterations recorded", ha="center", va="center", transform=ax.transAxes)
        return ax
    it = np.arange(1, lb.size + 1)
    ax.plot(it, lb, marker="o", markersize=3.5, color="#1f4e79", linewidth=1.6, label="mean log-likelihood")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("mean log-likelihood per row", color="#1f4e79")
    ax.grid(True, color="0.92", linewidth=0.6)
    handles = ax.get_legend_handles_labels()[0]
    if lb.size > 1:
        change = np.abs(np.diff(lb))
        ax2 = ax.twinx()
        ax2.semilogy(it[1:], np.maximum(change, 1e-16), color="#c0392b", linestyle="--", marker=".",
                     linewidth=1.0, label="|change| (log scale)")
        if tol:
            ax2.axhline(tol, color="#c0392b", linewidth=0.8, linestyle=":", label=f"tol = {tol:g}")
        ax2.set_ylabel("|change in mean log-likelihood|", color="#c0392b")
        handles += ax2.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="center right", fontsize=8, framealpha=0.9)
    conv = getattr(model, "converged_", None)
    state = "" if conv is None else ("converged" if conv else "did NOT converge")
    ax.set_title(title if title is not None else f"EM convergence: {lb.size} iterations, {state}".rstrip(", "))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return ax


def plot_criterion(rows, criterion="bic", ax=None, *, best=None, title=None):
    """Criterion curves of a model selection: one line per covariance type
    against the number of components, the chosen model starred.

    Each covariance type has its own colour *and* marker (14 distinct pairs
    for mclust's 14 models). When poor fits (K = 1, spherical models, ...)
    would squash the competitive ones, the y axis is zoomed on the latter; a
    note at the top says how many fits lie above, and the legend marks each
    covariance type with points above the chart ("↑ n above" or "↑ all above,
    best v"), so that no curve is in the legend without being accounted for.

    Parameters
    ----------
    rows : list of dict
        With keys ``n_components``, ``covariance_type`` and ``criterion``
        (failed and singular fits are left out). Rows whose
        ``covariance_type`` is None (families without covariance types) are
        labelled by their ``family``.
    criterion : {'bic', 'icl', 'aic'}
    best : dict, optional
        ``{"n_components": K, "covariance_type": name}``; default: the lowest.
    title : str, optional
        Default: "Model selection by BIC" (with the number of failed fits).

    Returns
    -------
    ax
    """
    ax = _ax(ax)
    key = criterion.lower()
    types = list(dict.fromkeys(r["covariance_type"] for r in rows))
    names = {t: (str(t) if t is not None else str(next((r.get("family") for r in rows
                                                          if r["covariance_type"] is None and r.get("family")),
                                                         "model"))) for t in types}
    colors = component_colors(len(types))
    markers = "osD^v<>pPh*Xd8"
    ok = [r for r in rows if r.get(key) is not None and np.isfinite(r[key]) and not r.get("error")
          and not r.get("singular")]  # singular cells are not ranked (emix._singular)
    if best is None and ok:
        b = min(ok, key=lambda r: r[key])
        best = {"n_components": b["n_components"], "covariance_type": b["covariance_type"]}
    chosen = [r for r in ok if best and r["n_components"] == best["n_components"]
              and r["covariance_type"] == best.get("covariance_type")]
    values = np.array([r[key] for r in ok], dtype=np.float64)
    top = None
    if values.size > 3:
        lo, worst = values.min(), values.max()
        # zoom on the competitive models when poor ones (K=1, spherical...) squash them
        near = float(np.quantile(values, 0.75))
        if worst - lo > 3 * (near - lo) > 0:
            # and keep each covariance type's best fit in view unless it is itself far off
            bests = [min(r[key] for r in ok if r["covariance_type"] == t) for t in types
                     if any(r["covariance_type"] == t for r in ok)]
            near = max([near] + [v for v in bests if v <= lo + 3 * (near - lo)])
            top = near + 0.05 * (near - lo)
            ax.set_ylim(lo - 0.05 * (near - lo), top)
    from matplotlib.lines import Line2D

    handles = []
    n_above, all_above = 0, []
    for t, (ctype, color) in enumerate(zip(types, colors)):
        pts = sorted((r["n_components"], r[key]) for r in ok if r["covariance_type"] == ctype)
        style = {"marker": markers[t % len(markers)], "color": color, "markersize": 5, "linewidth": 1.4,
                 "linestyle": "-" if t < 10 else "--"}
        label = names[ctype]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, **style, label=names[ctype])
            above = sum(1 for y in ys if top is not None and y > top)
            n_above += above
            if above == len(ys):
                all_above.append(names[ctype])
                label += f"  ↑ all above (best {min(ys):.1f})"
            elif above:
                label += f"  ↑ {above} above"
        else:
            label += "  (no fit)"
        handles.append(Line2D([], [], **style, label=label))
    if chosen:
        x, y = chosen[0]["n_components"], chosen[0][key]
        what = names.get(best.get("covariance_type"), "")
        ax.plot([x], [y], marker="*", markersize=18, color="gold", markeredgecolor="black", zorder=5,
                linestyle="none", label=f"chosen: K={x}, {what}".rstrip(", "))
        handles.append(Line2D([], [], marker="*", markersize=12, color="gold", markeredgecolor="black",
                              linestyle="none", label=f"chosen: K={x}, {what}".rstrip(", ")))
    if top is not None and n_above:
        note = f"y axis zoomed on the best fits: {n_above} worse fit{'s' if n_above != 1 else ''} lie above"
        if all_above:
            note += f" ({', '.join(all_above[:6])}{', ...' if len(all_above) > 6 else ''} entirely)"
        ax.text(0.01, 0.99, "↑ " + note, transform=ax.transAxes, ha="left", va="top", fontsize=8,
                color="#a94400", zorder=6,
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
    failed = sum(1 for r in rows if r.get("error") or r.get(key) is None or not np.isfinite(r[key]))
    singular = sum(1 for r in rows if r.get("singular") and not r.get("error"))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{key.upper()} (lower is better)")
    ax.grid(True, color="0.92", linewidth=0.6)
    many = len(types) > 6 or top is not None
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0) if many else None,
              frameon=not many, framealpha=0.9, borderaxespad=0.0 if many else 0.5)
    ax.set_title(title if title is not None else
                 f"Model selection by {key.upper()}" + (f" ({failed} fit(s) failed)" if failed else "")
                 + (f" ({singular} singular, not ranked)" if singular else ""))
    return ax


def plot_model(model, X, fig=None, *, feature_names=None, max_points=20000, random_state=0, resp=None):
    """The natural picture of a fit: a histogram with densities for one
    feature, clusters with ellipses and contours for two, a pair plot for
    three to five, the first two principal axes beyond. Returns the figure."""
    D = model.means_.shape[1]
    K = model.means_.shape[0]
    if 3 <= D <= 5:
        fig = fig or new_figure(figsize=(2.4 * D + 1.8, 2.4 * D))
        plot_pairs(model, X, fig=fig, feature_names=feature_names, max_points=min(max_points, 5000),
                   random_state=random_state, resp=resp)
        return fig
    fig = fig or new_figure(figsize=(8.6, 5.8) if K > 8 else (7.2, 5.6))
    ax = fig.add_subplot(1, 1, 1)
    if D == 1:
        plot_1d(model, X, ax=ax, feature_names=feature_names)
    else:
        plot_clusters(model, X, ax=ax, feature_names=feature_names, max_points=max_points,
                      random_state=random_state, resp=resp)
    fig.tight_layout()
    return fig


# ------------------------------------------------------- other families
def _family_blocks(model, kind, feature_names=None):
    from ._family_views import blocks, family_name

    if family_name(model) is None:
        return []
    return [b for b in blocks(model, feature_names) if b["kind"] == kind]


def plot_class_probabilities(model, ax=None, *, feature_names=None, annotate=None, title=None):
    """Heat map of the class-conditional category probabilities of a latent
    class model: one row per (column, category), one column per component
    (class), the cell the probability ``P(column = category | class k)``.

    For ``family='categorical'`` (:class:`emix.LatentClassModel`) every
    category of every column has a row (poLCA's ``probs``); for
    'bernoulli' each column has one row, the probability of its second label
    (``1``, ``True``, ``'yes'``); for mixed data the categorical and
    bernoulli columns are shown. Rows of one column are grouped between thin
    lines; the class weights label the x axis.

    Parameters
    ----------
    model : fitted emix.MixtureModel with categorical or bernoulli columns
    ax : matplotlib Axes, optional
    feature_names : list of str, optional
        Column names (default: the model's ``feature_names_in_``).
    annotate : bool, optional
        Write each probability in its cell (default: when there are at most
        400 cells).

    Returns
    -------
    ax

    Raises
    ------
    ValueError
        If the model has no categorical or bernoulli columns.
    """
    bl = _family_blocks(model, "probabilities", feature_names)
    if not bl:
        raise ValueError("plot_class_probabilities needs a model with categorical or bernoulli columns "
                         "(family='categorical', 'bernoulli' or mixed data); got "
                         f"{type(model).__name__} with family {getattr(model, 'family', 'gaussian')!r}.")
    ax = _ax(ax)
    rows = [r for b in bl for r in b["rows"]]
    M = np.vstack([b["values"] for b in bl])  # (R, K)
    R, K = M.shape
    im = ax.imshow(M, aspect="auto", cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    if annotate is None:
        annotate = R * K <= 400
    if annotate:
        for r in range(R):
            for k in range(K):
                ax.text(k, r, f"{M[r, k]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if M[r, k] > 0.6 else "black")
    ax.set_xticks(range(K))
    w = np.asarray(model.weights_, dtype=np.float64)
    ax.set_xticklabels([f"{k}\n({w[k]:.2f})" for k in range(K)], fontsize=8)
    ax.set_xlabel("component (weight)")
    ax.set_yticks(range(R))
    ax.set_yticklabels([f"{c} = {lab}" for c, lab in rows], fontsize=7 if R > 20 else 8)
    prev = None
    for r, (c, _) in enumerate(rows):
        if prev is not None and c != prev:
            ax.axhline(r - 0.5, color="0.3", linewidth=0.8)
        prev = c
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02).set_label("probability")
    fams = sorted({b["family"] for b in bl})
    ax.set_title(title if title is not None else
                 f"Class-conditional probabilities ({', '.join(fams)}), {K} component{'s' if K != 1 else ''}")
    return ax


def plot_rates(model, ax=None, *, feature_names=None, title=None):
    """Grouped bars of the Poisson rates (mean counts): one group per
    column, one bar per component in its colour (for mixed data, the Poisson
    columns). Returns the axes; ``ax.patches`` holds ``K * D`` bars.

    Raises
    ------
    ValueError
        If the model has no Poisson columns.
    """
    bl = _family_blocks(model, "rates", feature_names)
    if not bl:
        raise ValueError("plot_rates needs a model with Poisson columns (family='poisson' or mixed data); got "
                         f"{type(model).__name__} with family {getattr(model, 'family', 'gaussian')!r}.")
    ax = _ax(ax)
    cols = [c for b in bl for c in b["columns"]]
    V = np.hstack([b["values"] for b in bl])  # (K, D)
    K, D = V.shape
    colors = component_colors(K)
    width = 0.8 / K
    x = np.arange(D)
    w = np.asarray(model.weights_, dtype=np.float64)
    for k in range(K):
        ax.bar(x - 0.4 + (k + 0.5) * width, V[k], width=width, color=colors[k], label=f"{k} (weight {w[k]:.2f})")
    ax.set_xticks(x)
    ax.set_xticklabels([str(c) for c in cols], rotation=30 if D > 6 else 0, ha="right" if D > 6 else "center")
    ax.set_ylabel("rate (mean count)")
    ax.grid(True, axis="y", color="0.92", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(title="component", fontsize=8, ncol=2 if K > 6 else 1)
    ax.set_title(title if title is not None else f"Poisson rates per component, {K} component{'s' if K != 1 else ''}")
    return ax


def scale_weights(model, X):
    """Each row's expected scale weight ``sum_k r_nk u_nk`` under a fitted
    Student-t mixture (:meth:`emix.StudentTMixture.scale_weights`, also for
    ``MixtureModel(family='student_t')``): near 1 for typical rows, near 0
    for outliers (McLachlan & Peel 2000, chapter 7)."""
    import warnings

    if hasattr(model, "scale_weights"):
        fn = model.scale_weights
    else:
        from .student_t_estimator import StudentTMixture

        if getattr(getattr(model, "family_", None), "name", None) != "student_t":
            raise ValueError("scale weights are defined for Student-t mixtures (family='student_t'); got "
                             f"{type(model).__name__} with family {getattr(model, 'family', 'gaussian')!r}.")

        def fn(X):
            return StudentTMixture.scale_weights(model, X)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return np.asarray(fn(X), dtype=np.float64)


def plot_outliers(model, X, ax=None, *, dims=None, projection=None, feature_names=None, max_points=20000,
                  threshold=0.5, title=None, random_state=0):
    """The outlier view of a Student-t mixture: points coloured by their
    expected scale weight ``sum_k r_nk u_nk`` (:func:`scale_weights`; dark
    red = strongly down-weighted), rows below ``threshold`` drawn larger and
    on top, and each component's 1σ and 2σ ellipses of its scale matrix.
    One feature: the weight against the value.

    Returns
    -------
    ax
    """
    from matplotlib.colors import LinearSegmentedColormap

    ax = _ax(ax)
    X = np.asarray(X, dtype=np.float64)
    idx = _subsample(len(X), max_points, random_state)
    Xs = X[idx]
    u = scale_weights(model, Xs)
    cmap = LinearSegmentedColormap.from_list("emix_outliers", ["#4a0d0d", "#c0392b", "#f4a259", "#9ecae1", "#1f4e79"])
    vmax = max(1.0, float(np.quantile(u, 0.99))) if len(u) else 1.0
    order = np.argsort(-u)  # most down-weighted drawn last
    base, _ = _point_style(len(Xs))
    sizes = np.where(u[order] < threshold, 3.0 * base, base)
    n_out = int(np.sum(u < threshold))
    if X.shape[1] == 1:
        sc = ax.scatter(Xs[order, 0], u[order], c=u[order], cmap=cmap, vmin=0.0, vmax=vmax, s=sizes, linewidths=0,
                        zorder=2)
        ax.axhline(threshold, color="0.4", linestyle=":", linewidth=0.8)
        ax.set_xlabel(feature_names[0] if feature_names else "x0")
        ax.set_ylabel("expected scale weight")
        ax.grid(True, color="0.92", linewidth=0.6)
    else:
        P, means, covs, axis_labels = _project(model, Xs, dims, projection, feature_names)
        sc = ax.scatter(P[order, 0], P[order, 1], c=u[order], cmap=cmap, vmin=0.0, vmax=vmax, s=sizes,
                        linewidths=0, zorder=2, rasterized=len(P) > 5000)
        plot_ellipses(means, covs, ax=ax, colors=component_colors(len(means)))
        lo, hi = _limits(P, means, covs)
        lo, hi = np.minimum(lo, P.min(axis=0)), np.maximum(hi, P.max(axis=0))
        _finish_axes(ax, lo, hi, axis_labels, None)
    ax.figure.colorbar(sc, ax=ax, fraction=0.046, pad=0.02).set_label("expected scale weight (low = outlier)")
    ax.set_title(title if title is not None else
                 f"Student-t outlier view: {n_out:,} of {len(Xs):,} points weighted below {threshold:g}")
    _shown_note(ax, len(Xs), len(X))
    return ax
