"""Plots (issue 11, items 7 and 9): criterion curves account for every model
in their legend (zoomed-out fits are named), ``SelectionResult.plot`` is the
CLI's figure (title, zoom, a distinct colour and marker per model), contour
labels sit above the points, and projections say when one feature holds the
variance."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgba

import emix
from emix import plotting as P
from emix.datasets import load_faithful
from emix.selection import SelectionResult

MCLUST = ["EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV"]


def _rows(offsets):
    rows = []
    for t, off in offsets.items():
        for k in range(1, 10):
            rows.append({"n_components": k, "covariance_type": t, "error": None, "singular": None,
                         "bic": 1000.0 + off + (3000.0 if k == 1 else 0.0) + 5.0 * (k - 4) ** 2})
    return rows


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_zoomed_criterion_plot_names_the_fits_above():
    offsets = {t: 10.0 * i for i, t in enumerate(MCLUST)}
    offsets.update(EII=5000.0, VII=5000.0)
    rows = _rows(offsets)
    fig = P.new_figure()
    ax = P.plot_criterion(rows, "bic", ax=fig.add_subplot(1, 1, 1))
    top = ax.get_ylim()[1]
    values = np.array([r["bic"] for r in rows])
    assert top < values.max()  # zoomed
    n_above = int(np.sum(values > top))  # numpy oracle of what the note must say
    notes = [t.get_text() for t in ax.texts]
    assert any(f"{n_above} worse fits lie above" in t and "EII, VII" in t for t in notes), notes
    legend = _legend_texts(ax)
    assert "EII  ↑ all above (best 6000.0)" in legend and "VII  ↑ all above (best 6000.0)" in legend
    # every type whose curve has points above says how many
    for t in MCLUST[2:]:
        above = sum(1 for r in rows if r["covariance_type"] == t and r["bic"] > top)
        label = next(x for x in legend if x.split()[0] == t)
        assert (f"↑ {above} above" in label) == (0 < above < 9), label
    # each type's best fit stays in view unless it is itself far off
    for t in MCLUST[2:]:
        assert min(r["bic"] for r in rows if r["covariance_type"] == t) <= top


def test_unzoomed_plot_has_plain_legend():
    rows = _rows({"EEE": 0.0, "VVV": 5.0})
    for r in rows:
        r["bic"] = 1000.0 + 5.0 * (r["n_components"] - 4) ** 2 + (5.0 if r["covariance_type"] == "VVV" else 0.0)
    fig = P.new_figure()
    ax = P.plot_criterion(rows, "bic", ax=fig.add_subplot(1, 1, 1))
    assert not ax.texts and _legend_texts(ax)[:2] == ["EEE", "VVV"]


def test_fourteen_models_have_distinct_colour_and_marker_pairs():
    rows = _rows({t: 10.0 * i for i, t in enumerate(MCLUST)})
    fig = P.new_figure()
    ax = P.plot_criterion(rows, "bic", ax=fig.add_subplot(1, 1, 1))
    curves = [ln for ln in ax.get_lines() if ln.get_label() in MCLUST]
    assert len(curves) == 14
    colours = {to_rgba(ln.get_color()) for ln in curves}
    pairs = {(to_rgba(ln.get_color()), ln.get_marker()) for ln in curves}
    assert len(colours) == 14 and len(pairs) == 14


@pytest.fixture(scope="module")
def selection():
    X, _ = load_faithful()
    return emix.select(X, n_components=range(1, 4), random_state=0)


def test_selection_result_plot_is_the_cli_figure(selection):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = selection.plot()
    fig_cli = P.new_figure()
    ax_cli = P.plot_criterion(selection.rows, "bic", ax=fig_cli.add_subplot(1, 1, 1),
                              best=dict(selection.best_params_))
    assert ax.get_title() == ax_cli.get_title() and ax.get_title().startswith("Model selection by BIC")
    assert _legend_texts(ax) == _legend_texts(ax_cli)
    assert ax.get_ylim() == pytest.approx(ax_cli.get_ylim())
    curves = [ln for ln in ax.get_lines() if ln.get_label() in MCLUST]
    assert len({(to_rgba(ln.get_color()), ln.get_marker()) for ln in curves}) == len(curves) == 14
    b = selection.best_params_
    star = next(ln for ln in ax.get_lines() if ln.get_label().startswith("chosen"))
    assert star.get_xdata()[0] == b["n_components"]
    assert star.get_ydata()[0] == pytest.approx(min(r["bic"] for r in selection.rows
                                                    if not r["error"] and not r.get("singular")))
    plt.close("all")


def test_selection_plot_of_a_family_without_covariance_types():
    rows = [{"n_components": k, "covariance_type": None, "family": "poisson", "bic": 100.0 - k, "icl": 0.0,
             "aic": 0.0, "error": None, "singular": None, "log_likelihood": 0.0, "n_parameters": k,
             "converged": True, "n_iter": 3} for k in (1, 2, 3)]
    res = SelectionResult.__new__(SelectionResult)
    res.rows, res.criterion = rows, "bic"
    res.best_params_ = {"n_components": 3}
    fig = P.new_figure()
    ax = res.plot(ax=fig.add_subplot(1, 1, 1))
    assert _legend_texts(ax) == ["poisson", "chosen: K=3, poisson"]


def test_contour_labels_sit_above_the_points():
    X, names = load_faithful()
    gm = emix.GaussianMixture(3, random_state=0).fit(X)
    fig = P.new_figure()
    ax = P.plot_clusters(gm, X, ax=fig.add_subplot(1, 1, 1), feature_names=names)
    labels = [t for t in ax.texts if t.get_text() in ("50%", "90%", "99%")]
    assert labels
    top = max(c.get_zorder() for c in ax.collections)  # points, contours
    top = max([top] + [p.get_zorder() for p in ax.patches] + [ln.get_zorder() for ln in ax.get_lines()])
    for t in labels:
        assert t.get_zorder() > top
        box = t.get_bbox_patch()
        assert box is not None and to_rgba(box.get_facecolor())[:3] == (1.0, 1.0, 1.0)


def test_projection_hint_when_one_feature_dominates():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=300), rng.normal(size=300), 1000.0 * rng.normal(size=300)])
    X[:150, 0] += 5.0
    gm = emix.GaussianMixture(2, random_state=0).fit(X)
    fig = P.new_figure()
    ax = P.plot_clusters(gm, X, ax=fig.add_subplot(1, 1, 1), feature_names=["a", "b", "big"])
    var = X.var(axis=0)  # numpy oracle of the share
    assert f"'big' holds {100 * var[2] / var.sum():.1f}% of the variance" in ax.get_xlabel()
    assert "--scale" in ax.get_xlabel()
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    gz = emix.GaussianMixture(2, random_state=0).fit(Z)
    fig = P.new_figure()
    ax = P.plot_clusters(gz, Z, ax=fig.add_subplot(1, 1, 1))
    assert "holds" not in ax.get_xlabel()
    assert P.dominance_hint(X[:, :2]) is None  # two comparable features
