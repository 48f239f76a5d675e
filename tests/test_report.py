"""The HTML report is one self-contained file that parses and holds its sections."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import emix  # noqa: E402
from emix.datasets import load_faithful  # noqa: E402
from emix.report import SECTIONS, build_report  # noqa: E402


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.imgs, self.links, self.tables, self.h2 = [], [], [], 0, []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "img":
            self.imgs.append(a["src"])
        elif tag in ("link", "script") or (tag == "a" and "href" in a):
            self.links.append(a)
        elif tag == "table":
            self.tables += 1
        elif tag == "h2":
            self._in_h2 = True

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data)


@pytest.fixture(scope="module")
def selection():
    X, names = load_faithful()
    return emix.select(X, n_components=range(1, 4), covariance_types=["EII", "VVV"], random_state=0), X, names


def test_report_parses_and_is_self_contained(selection):
    res, X, names = selection
    html = build_report(res.best_, X, feature_names=names, source="faithful.csv", selection_rows=res.rows,
                        criterion="bic", best=res.best_params_, command="emix report faithful.csv -o r.html")
    p = Collect()
    p.feed(html)
    p.close()
    assert p.sections == list(SECTIONS)
    assert p.h2 == ["Data", "Model selection", "Chosen model", "Plots", "Reproduce"]
    assert p.links == []  # no external stylesheet, script or link
    assert "http://" not in html and "https://" not in html
    assert len(p.imgs) == 4  # clusters, uncertainty, criterion, convergence
    for src in p.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert p.tables >= 5
    assert "272" in html and "eruptions" in html and "emix report faithful.csv" in html
    # every grid row appears; the chosen one is marked
    assert html.count("<tr class=\"best\">") == 1
    bic = f"{res.best_.bic(X):.3f}"
    assert bic in html


def test_report_without_selection_escapes_names():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(4, 1, (100, 2))])
    m = emix.GaussianMixture(2, random_state=0).fit(X)
    html = build_report(m, X, feature_names=["<b>x</b>", "y & z"], source="a<b>.csv")
    p = Collect()
    p.feed(html)
    assert p.sections == list(SECTIONS)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html and "y &amp; z" in html
    assert "No selection was run" in html
    assert len(p.imgs) == 3


def test_report_shows_noise_prior_and_equal_proportions():
    """A model with mclust's options says so in its report: the noise weight and
    volume, a noise row in the components table with the rows labelled -1, the
    prior and equal proportions (the weights alone would not sum to one)."""
    X, names = load_faithful()
    m = emix.GaussianMixture(2, random_state=0, noise="box", prior="default", equal_proportions=True).fit(X)
    html = build_report(m, X, feature_names=names)
    assert f"weight {float(m.noise_weight_):.4g}" in html
    assert "noise (−1)" in html
    n_noise = int(np.sum(m.predict(X) == -1))
    assert f"noise (−1)</td><td>{float(m.noise_weight_):.4g}</td><td>{n_noise:,}" in html.replace("\n", "")
    assert "default conjugate prior (MAP fit)" in html and "equalPro" in html
    plain = build_report(emix.GaussianMixture(2, random_state=0).fit(X), X, feature_names=names)
    assert "noise component" not in plain and "prior" not in plain.lower().split("<section id=\"model\">")[1]
