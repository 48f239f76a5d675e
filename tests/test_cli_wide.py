"""More than 8 features (issue 11, item 8): the CLI summary shows every
feature in lines that fit a terminal, the report's tables never widen the
page, and correlations within components are shown (or their omission said)
for any number of features."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

import emix
from emix.cli import SUMMARY_WIDTH, main
from emix.report import MAX_CORRELATION_FEATURES, build_report


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """Wine (178 x 13, long column names) standardized, as a CSV."""
    from sklearn.datasets import load_wine

    d = load_wine()
    X = (d.data - d.data.mean(axis=0)) / d.data.std(axis=0)
    names = [str(n).replace("/", "_") for n in d.feature_names]
    path = tmp_path_factory.mktemp("wide") / "wine.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        w.writerows(X.tolist())
    return str(path), X, names


def test_summary_shows_every_feature_within_the_width(wide, tmp_path, capsys):
    path, _X, names = wide
    assert main(["fit", path, "-k", "3", "--seed", "0", "-o", str(tmp_path / "m.emix")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(ln) for ln in lines) <= SUMMARY_WIDTH, max(lines, key=len)
    model = emix.load(tmp_path / "m.emix")
    # every feature has a row of means (and one of sds) with K values: the model's (oracle: the file)
    for j, n in enumerate(names):
        rows = [ln for ln in lines if ln.startswith(n[:20])]
        assert len(rows) == 2, n
        np.testing.assert_allclose([float(v) for v in rows[0].split()[1:]], model.means_[:, j], rtol=1e-4, atol=1e-4)
        sd = np.sqrt([c[j, j] for c in model.covariances_])
        np.testing.assert_allclose([float(v) for v in rows[1].split()[1:]], sd, rtol=1e-3)
    weights = next(ln for ln in lines if ln.startswith("weight"))
    np.testing.assert_allclose([float(v) for v in weights.split()[1:]], model.weights_, atol=1e-4)


def test_summary_blocks_many_components(wide, tmp_path, capsys):
    path, _X, _names = wide
    assert main(["fit", path, "-k", "9", "--seed", "0", "--covariance", "diag", "-o", str(tmp_path / "m.emix")]) == 0
    out = capsys.readouterr().out
    assert max(len(ln) for ln in out.splitlines()) <= SUMMARY_WIDTH
    headers = [ln for ln in out.splitlines() if ln.startswith("component ")]
    shown = [int(k) for h in headers[: len(headers) // 2] for k in h.split()[1:]]
    assert shown == list(range(9))  # every component, in blocks


def test_info_on_a_two_feature_model_keeps_one_row_per_component(tmp_path, capsys):
    from emix.datasets import load_faithful

    X, names = load_faithful()
    gm = emix.GaussianMixture(2, random_state=0).fit(X)
    gm.feature_names_in_ = np.asarray(names, dtype=object)
    emix.save(gm, tmp_path / "f.emix")
    assert main(["info", str(tmp_path / "f.emix")]) == 0
    out = capsys.readouterr().out
    assert "mean eruptions" in out and "sd waiting" in out


def _tables(html):
    return re.findall(r"(<div class=\"scroll\">)?<table[^>]*>(.*?)</table>", html, flags=re.DOTALL)


@pytest.mark.parametrize("D", [13, 30, MAX_CORRELATION_FEATURES + 5])
def test_report_tables_fit_the_page_and_correlations_are_never_silently_dropped(D):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, D)) + np.repeat([[0.0], [4.0]], 200, axis=0)
    names = [f"a_rather_long_feature_name_{j}" for j in range(D)]
    gm = emix.GaussianMixture(2, covariance_type="full", random_state=0).fit(X)
    html = build_report(gm, X, feature_names=names)
    tables = _tables(html)
    assert tables and all(wrapper for wrapper, _ in tables)  # every table scrolls inside the page
    assert ".scroll{overflow-x:auto" in html and "max-width:1000px" in html
    model = html.split('id="model"')[1].split('id="plots"')[0]
    # the components' tables grow with K, not with D: features down
    for _, body in _tables(model)[1:3]:
        first_row = re.search(r"<tr>(.*?)</tr>", body, flags=re.DOTALL).group(1)
        assert first_row.count("<th") <= gm.n_components + 4
    assert "Correlations within components" in model
    if D <= MAX_CORRELATION_FEATURES:
        # a matrix per component, values = the covariance's correlations (numpy oracle)
        c = gm.covariances_[0]
        r = c[1, 0] / np.sqrt(c[0, 0] * c[1, 1])
        assert model.count("<summary>component ") == gm.n_components
        matrix = model.split("<summary>component 0</summary>")[1].split("</table>")[0]
        second_row = re.findall(r"<tr>(.*?)</tr>", matrix, flags=re.DOTALL)[2]
        cells = re.findall(r"<td[^>]*>(.*?)</td>", second_row)
        assert float(cells[1]) == pytest.approx(r, abs=0.006)
    else:
        assert f"Not shown: {D} features give {D * (D - 1) // 2:,} pairs" in model


def test_report_two_features_keeps_pair_columns():
    from emix.datasets import load_faithful

    X, names = load_faithful()
    gm = emix.GaussianMixture(2, random_state=0).fit(X)
    html = build_report(gm, X, feature_names=names)
    assert "eruptions ~ waiting" in html and "mean eruptions" in html
