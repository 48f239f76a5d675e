"""Plots render with Agg and draw what the model says: ellipse axes and
angles read back from the matplotlib artists, subsampling, every layout."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

import emix  # noqa: E402
from emix import plotting as P  # noqa: E402
from emix.datasets import load_faithful  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(data):
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture(scope="module")
def faithful_model():
    X, names = load_faithful()
    return emix.GaussianMixture(2, random_state=0).fit(X), X, names


def _ellipses(ax):
    return [p for p in ax.patches if isinstance(p, Ellipse)]


def _check_ellipse(e, cov, k):
    vals, vecs = np.linalg.eigh(cov)
    assert e.width == pytest.approx(2 * k * math.sqrt(vals[1]), rel=1e-10)
    assert e.height == pytest.approx(2 * k * math.sqrt(vals[0]), rel=1e-10)
    # the angle is that of the major eigenvector, up to its sign (mod 180 degrees)
    a = math.radians(e.angle)
    assert abs(abs(np.dot([math.cos(a), math.sin(a)], vecs[:, 1])) - 1.0) < 1e-10


@pytest.mark.parametrize("theta", [0.0, 30.0, 90.0, 135.0])
def test_ellipse_axes_of_known_covariance(theta):
    t = math.radians(theta)
    R = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    cov = R @ np.diag([9.0, 1.0]) @ R.T
    fig = P.new_figure()
    ax = P.plot_ellipses([[1.0, -2.0]], [cov], ax=fig.add_subplot(1, 1, 1))
    es = _ellipses(ax)
    assert len(es) == 2
    for e, k in zip(es, P.N_STD):
        assert e.center == pytest.approx((1.0, -2.0))
        assert e.width == pytest.approx(2 * k * 3.0) and e.height == pytest.approx(2 * k * 1.0)
        assert (e.angle - theta) % 180 == pytest.approx(0.0, abs=1e-9) or \
            (e.angle - theta) % 180 == pytest.approx(180.0, abs=1e-9)
        _check_ellipse(e, cov, k)


def test_cluster_plot_ellipses_match_fitted_model(faithful_model, tmp_path):
    model, X, names = faithful_model
    fig = P.plot_model(model, X, feature_names=names)
    ax = fig.axes[0]
    es = _ellipses(ax)
    assert len(es) == 2 * model.n_components
    for k in range(model.n_components):
        for j, s in enumerate(P.N_STD):
            e = es[2 * k + j]
            assert e.center == pytest.approx(tuple(model.means_[k]))
            _check_ellipse(e, model.covariances_[k], s)
    assert ax.get_xlabel() == "eruptions" and ax.get_ylabel() == "waiting"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("component 0") and "2σ ellipse" in labels
    out = P.save_figure(fig, tmp_path / "c.png")
    assert png_size(open(out, "rb").read()) == (720, 560)
    with pytest.raises(ValueError, match="exists"):
        P.save_figure(fig, tmp_path / "c.png")


@pytest.mark.parametrize("ctype", ["tied", "diag", "spherical", "EEE", "VII"])
def test_ellipses_for_every_structure(ctype, faithful_model):
    _, X, _ = faithful_model
    m = emix.GaussianMixture(2, covariance_type=ctype, random_state=0, max_iter=20, tol=1e-2).fit(X)
    full = P.full_covariances(m)
    assert full.shape == (2, 2, 2)
    fig = P.new_figure()
    ax = P.plot_clusters(m, X, ax=fig.add_subplot(1, 1, 1), contours=False)
    es = _ellipses(ax)
    for k in range(2):
        _check_ellipse(es[2 * k], full[k], 1.0)


def test_subsampling_draws_at_most_max_points():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (3000, 2)), rng.normal(6, 1, (3000, 2))])
    m = emix.GaussianMixture(2, random_state=0, max_iter=20).fit(X)
    fig = P.new_figure()
    ax = P.plot_clusters(m, X, ax=fig.add_subplot(1, 1, 1), max_points=500)
    pts = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(pts) == 1 and len(pts[0].get_offsets()) == 500
    assert any("showing 500 of 6,000 points" in t.get_text() for t in ax.texts)


def test_many_components_legend_outside():
    rng = np.random.default_rng(1)
    means = rng.uniform(-40, 40, (20, 2))
    X = np.concatenate([rng.normal(m, 1.0, (40, 2)) for m in means])
    m = emix.GaussianMixture(20, covariance_type="spherical", random_state=0, max_iter=10, tol=1e-1,
                             means_init=means).fit(X)
    colors = P.component_colors(20)
    assert len({tuple(c) for c in colors}) == 20
    fig = P.plot_model(m, X)
    leg = fig.axes[0].get_legend()
    assert len(leg.get_texts()) == 20 + 3
    assert leg.get_bbox_to_anchor() is not None


def test_one_feature_histogram_and_pair_plot_and_projection():
    rng = np.random.default_rng(2)
    X1 = np.concatenate([rng.normal(0, 1, 200), rng.normal(5, 1, 200)])[:, None]
    m1 = emix.GaussianMixture(2, random_state=0).fit(X1)
    fig = P.plot_model(m1, X1)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "mixture density" in labels and fig.axes[0].get_ylabel() == "density"

    X3 = rng.normal(size=(300, 3)) + np.repeat([[0, 0, 0], [5, 5, 5]], 150, axis=0)
    m3 = emix.GaussianMixture(2, random_state=0).fit(X3)
    axes = P.plot_pairs(m3, X3, feature_names=["a", "b", "c"])
    assert axes.shape == (3, 3)
    assert axes[2, 0].get_xlabel() == "a" and axes[2, 0].get_ylabel() == "c"
    # lower-triangle panels carry the marginal ellipses of their pair
    sub = P.full_covariances(m3)[0][np.ix_([0, 2], [0, 2])]
    _check_ellipse(_ellipses(axes[2, 0])[0], sub, 1.0)

    X6 = np.concatenate([X3, X3[:, ::-1] * 0.5], axis=1)
    m6 = emix.GaussianMixture(2, random_state=0).fit(X6)
    fig = P.plot_model(m6, X6)
    assert fig.axes[0].get_xlabel().startswith("principal axis 1")


def test_convergence_trace(faithful_model, tmp_path):
    model, _, _ = faithful_model
    fig = P.new_figure(figsize=(6, 4), dpi=100)
    ax = P.plot_convergence(model, ax=fig.add_subplot(1, 1, 1))
    y = ax.get_lines()[0].get_ydata()
    np.testing.assert_allclose(y, model.lower_bounds_)
    assert "converged" in ax.get_title()
    out = P.save_figure(fig, tmp_path / "t.png")
    assert png_size(open(out, "rb").read()) == (600, 400)


def test_criterion_curves_skip_failures_and_star_best():
    rows = []
    for t, off in (("EII", 50.0), ("VVV", 0.0)):
        for k in (1, 2, 3):
            rows.append({"n_components": k, "covariance_type": t, "bic": 100.0 - 10 * k + off + (k == 3) * 25,
                         "error": None})
    rows.append({"n_components": 4, "covariance_type": "VVV", "bic": float("nan"), "error": "ValueError: x"})
    fig = P.new_figure()
    ax = P.plot_criterion(rows, "bic", ax=fig.add_subplot(1, 1, 1))
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_allclose(lines["VVV"].get_xdata(), [1, 2, 3])
    star = lines["chosen: K=2, VVV"]
    assert star.get_xdata()[0] == 2 and star.get_ydata()[0] == 80.0
    assert "1 fit(s) failed" in ax.get_title() and ax.get_ylabel() == "BIC (lower is better)"


def test_uncertainty_plot(faithful_model, tmp_path):
    model, X, names = faithful_model
    fig = P.new_figure(figsize=(7, 5))
    ax = P.plot_uncertainty(model, X, ax=fig.add_subplot(1, 1, 1), feature_names=names)
    sc = [c for c in ax.collections if isinstance(c, PathCollection)][0]
    u = 1 - model.predict_proba(X).max(axis=1)
    np.testing.assert_allclose(np.sort(sc.get_array()), np.sort(u))
    assert len(fig.axes) == 2  # the colorbar
    out = P.save_figure(fig, tmp_path / "u.svg")
    assert b"<svg" in open(out, "rb").read(400)


def test_noise_model_points_are_grey_and_in_the_legend():
    import emix
    from emix import plotting

    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(150, 2)), rng.normal(size=(150, 2)) + 6, rng.uniform(-5, 11, size=(40, 2))]
    gm = emix.GaussianMixture(2, noise="box", random_state=0).fit(X)
    ax = plotting.plot_clusters(gm, X)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("noise") for t in texts)
    colors = ax.collections[0].get_facecolors()
    grey = np.isclose(colors[:, 0], 0.6) & np.isclose(colors[:, 1], 0.6) & np.isclose(colors[:, 2], 0.6)
    n_noise = int(np.sum(gm.predict(X) == -1))
    assert n_noise > 0 and grey.sum() == n_noise
    plotting.plot_uncertainty(gm, X)
