"""The emix command line: every subcommand through main(argv), a few through
the installed console script, round trips against the library, bad files,
atomic writes and exit codes."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import emix
from emix import _files

pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names")
from emix.cli import main
from emix.datasets import faithful_path, load_faithful
from emix.testing import read_csv_rows as read_csv
from emix.testing import run_cli as run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model_file(data_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m.emix"
    assert main(["fit", str(data_csv), "-k", "2", "--seed", "0", "-o", str(out), "-q"]) == 0
    return out


# ------------------------------------------------------------------ fit
def test_fit_prints_summary_and_writes_model(data_csv, tmp_path, capsys):
    out = tmp_path / "m.emix"
    code, stdout, err = run(["fit", data_csv, "-k", 2, "--seed", 0, "-o", out], capsys)
    assert code == 0, err
    assert out.exists()
    for word in ("K=2", "covariance 'full'", "log-likelihood", "BIC", "iterations", "converged",
                 "mean eruptions", "mean waiting", "weight"):
        assert word in stdout
    assert f"wrote {out}" in err
    m = emix.load(out)
    assert list(m.feature_names_in_) == ["eruptions", "waiting"]
    X, _ = load_faithful()
    ref = emix.GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(m.means_, ref.means_, rtol=1e-10)
    # the printed BIC is the library's
    assert f"BIC {ref.bic(X):.4f}" in stdout


def test_fit_with_weights_column_matches_library(tmp_path, capsys):
    X, _ = load_faithful()
    w = np.tile([1.0, 2.0, 0.5, 3.0], len(X) // 4)
    p = tmp_path / "w.csv"
    with open(p, "w") as fh:
        fh.write("eruptions,waiting,w\n")
        for (a, b), c in zip(X, w):
            fh.write(f"{float(a)!r},{float(b)!r},{float(c)!r}\n")
    out = tmp_path / "m.emix"
    code, _, err = run(["fit", p, "-k", 2, "--seed", 1, "--weights", "w", "-o", out, "-q", "--covariance", "spherical"],
                       capsys)
    assert code == 0, err
    ref = emix.GaussianMixture(2, covariance_type="spherical", random_state=1).fit(X, sample_weight=w)
    m = emix.load(out)
    assert m.n_features_in_ == 2
    np.testing.assert_allclose(m.weights_, ref.weights_, rtol=1e-10)


def test_fit_from_stdin_and_other_formats(tmp_path, capsys, monkeypatch):
    X, names = load_faithful()
    ref = emix.GaussianMixture(2, random_state=0).fit(X)
    raw = open(faithful_path(), "rb").read()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    out = tmp_path / "stdin.emix"
    assert run(["fit", "-", "-k", 2, "--seed", 0, "-o", out, "-q"], capsys)[0] == 0
    np.testing.assert_allclose(emix.load(out).means_, ref.means_, rtol=1e-10)

    tsv = tmp_path / "f.tsv"
    tsv.write_text(raw.decode().replace(",", "\t"))
    np.save(tmp_path / "f.npy", X)
    np.savez(tmp_path / "f.npz", X=X, other=np.arange(3))
    paths = [tsv, tmp_path / "f.npy", tmp_path / "f.npz"]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"eruptions": X[:, 0], "waiting": X[:, 1]}), tmp_path / "f.parquet")
        paths.append(tmp_path / "f.parquet")
    except ImportError:
        pass
    for p in paths:
        out = tmp_path / (p.name + ".emix")
        code, _, err = run(["fit", p, "-k", 2, "--seed", 0, "-o", out, "-q"], capsys)
        assert code == 0, (p, err)
        np.testing.assert_allclose(emix.load(out).means_, ref.means_, rtol=1e-10, err_msg=str(p))


def test_text_column_can_be_excluded(tmp_path, capsys):
    X, _ = load_faithful()
    p = tmp_path / "ids.csv"
    with open(p, "w") as fh:
        fh.write("id,eruptions,waiting,kind\n")
        for i, (a, b) in enumerate(X):
            fh.write(f"r{i},{float(a)!r},{float(b)!r},{'long' if a > 3 else 'short'}\n")
    out = tmp_path / "m.emix"
    code, _, err = run(["fit", p, "-k", 2, "-o", out], capsys)
    assert code == 1
    assert "column 'id'" in err and "not numeric" in err and "--exclude id" in err
    code, _, err = run(["fit", p, "-k", 2, "--seed", 0, "--exclude", "id,kind", "-o", out, "-q"], capsys)
    assert code == 0, err
    # predict keeps the text columns and picks the features by name
    pred = tmp_path / "pred.csv"
    code, _, err = run(["predict", out, p, "-o", pred, "-q"], capsys)
    assert code == 0, err
    header, rows = read_csv(pred)
    assert header == ["id", "eruptions", "waiting", "kind", "label", "probability"]
    assert rows[0][0] == "r0" and rows[0][3] in ("long", "short")


# -------------------------------------------------------------- predict
def test_predict_round_trip_same_labels_as_library(model_file, data_csv, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    code, _, err = run(["predict", model_file, data_csv, "-o", out, "-a", "--log-likelihood"], capsys)
    assert code == 0, err
    header, rows = read_csv(out)
    assert header == ["eruptions", "waiting", "label", "probability", "p0", "p1", "log_density"]
    X, _ = load_faithful()
    m = emix.load(model_file)
    ref = emix.GaussianMixture(2, random_state=0).fit(X)
    labels = np.array([int(r[2]) for r in rows])
    np.testing.assert_array_equal(labels, m.predict(X))
    np.testing.assert_array_equal(labels, ref.predict(X))
    vals = np.array([[float(v) for v in r] for r in rows])
    np.testing.assert_allclose(vals[:, :2], X)
    np.testing.assert_allclose(vals[:, 4:6], ref.predict_proba(X), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(vals[:, 3], ref.predict_proba(X).max(axis=1), rtol=1e-9)
    np.testing.assert_allclose(vals[:, 6], ref.score_samples(X), rtol=1e-9)
    assert "rows per component" in err


def test_predict_to_stdout_and_npz(model_file, data_csv, tmp_path, capsys):
    code, out, err = run(["predict", model_file, data_csv], capsys)
    assert code == 0 and err == ""
    header, rows = read_csv(out, text=True)
    assert header[-2:] == ["label", "probability"] and len(rows) == 272
    npz = tmp_path / "p.npz"
    assert run(["predict", model_file, data_csv, "-o", npz], capsys)[0] == 0
    with np.load(npz) as z:
        np.testing.assert_array_equal(z["label"], emix.load(model_file).predict(load_faithful()[0]))


def test_no_overwrite_without_force(model_file, data_csv, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    out.write_text("precious\n")
    code, _, err = run(["predict", model_file, data_csv, "-o", out], capsys)
    assert code == 1 and "exists; use --force" in err
    assert out.read_text() == "precious\n"
    assert run(["predict", model_file, data_csv, "-o", out, "--force", "-q"], capsys)[0] == 0
    assert out.read_text().startswith("eruptions,waiting,label")
    # fit refuses before fitting
    code, _, err = run(["fit", data_csv, "-k", 2, "-o", out], capsys)
    assert code == 1 and "exists" in err


def test_ctrl_c_leaves_no_partial_file(model_file, data_csv, tmp_path, capsys, monkeypatch):
    out = tmp_path / "pred.csv"
    calls = {"n": 0}
    real = _files._fmt

    def interrupt_midway(v):
        calls["n"] += 1
        if calls["n"] == 300:
            raise KeyboardInterrupt
        return real(v)

    monkeypatch.setattr(_files, "_fmt", interrupt_midway)
    code, _, err = run(["predict", model_file, data_csv, "-o", out], capsys)
    assert code == 130 and "interrupted" in err
    assert calls["n"] == 300
    assert os.listdir(tmp_path) == []  # neither the output nor a temporary file

    def interrupt_fit(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(emix.GaussianMixture, "fit", interrupt_fit)
    code, _, _ = run(["fit", data_csv, "-k", 2, "-o", tmp_path / "m.emix"], capsys)
    assert code == 130 and os.listdir(tmp_path) == []


def test_outputs_get_normal_permissions(model_file, data_csv, tmp_path, capsys):
    mask = os.umask(0o022)
    os.umask(mask)
    out = tmp_path / "p.csv"
    assert run(["predict", model_file, data_csv, "-o", out], capsys)[0] == 0
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600
    out.chmod(0o640)
    assert run(["predict", model_file, data_csv, "-o", out, "--force"], capsys)[0] == 0
    assert out.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
    m = tmp_path / "m.emix"
    assert run(["fit", data_csv, "-k", 1, "-o", m, "-q"], capsys)[0] == 0
    assert m.stat().st_mode & 0o777 == 0o666 & ~mask


def test_atomic_output_keeps_old_file_on_error(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with _files.atomic_output(p, force=True, mode="w") as fh:
            fh.write("new, half")
            raise RuntimeError("boom")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["x.txt"]


# ------------------------------------------------------------- bad files
def _bad_files(tmp_path):
    X, _ = load_faithful()
    good = "".join(f"{a},{b}\n" for a, b in X[:20])
    files = {
        "empty": ("", "is empty"),
        "header_only": ("eruptions,waiting\n", "header but no data rows"),
        "text_column": ("eruptions,waiting\n" + good + "3.1,long\n",
                        "column 'waiting'"),
        "nan": ("eruptions,waiting\n" + good + "NaN,70\n" + good, "column 'eruptions'"),
        "missing": ("eruptions,waiting\n" + good + ",70\n", "missing"),
        "binary": ("\x00\x01\x02garbage", "binary"),
    }
    out = {}
    for name, (text, msg) in files.items():
        p = tmp_path / f"{name}.csv"
        p.write_text(text)
        out[name] = (p, msg)
    return out


@pytest.mark.parametrize("name", ["empty", "header_only", "text_column", "nan", "missing", "binary"])
def test_bad_data_file_one_line_error(name, tmp_path, capsys):
    p, msg = _bad_files(tmp_path)[name]
    code, out, err = run(["fit", p, "-k", 2, "-o", tmp_path / "m.emix"], capsys)
    assert code == 1
    assert msg in err, err
    assert err.startswith("emix: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "m.emix").exists()


def test_nan_message_names_row(tmp_path, capsys):
    p = tmp_path / "n.csv"
    p.write_text("a,b\n1,2\n3,4\n5,NaN\n")
    code, _, err = run(["fit", p, "-k", 1, "-o", tmp_path / "m"], capsys)
    assert code == 1 and "column 'b'" in err and "data row 3" in err


def test_missing_file_and_bad_column(tmp_path, data_csv, capsys):
    code, _, err = run(["fit", tmp_path / "nope.csv", "-k", 2, "-o", tmp_path / "m"], capsys)
    assert code == 1 and "no such file" in err
    code, _, err = run(["fit", data_csv, "-k", 2, "--columns", "speed", "-o", tmp_path / "m"], capsys)
    assert code == 1 and "no column 'speed'" in err and "eruptions" in err


def test_wrong_column_count_at_predict(model_file, tmp_path, capsys):
    p = tmp_path / "three.csv"
    p.write_text("a,b,c\n1,2,3\n4,5,6\n")
    code, _, err = run(["predict", model_file, p, "-o", tmp_path / "o.csv"], capsys)
    assert code == 1 and "expects 2 feature column(s)" in err and "eruptions, waiting" in err
    assert "Traceback" not in err and not (tmp_path / "o.csv").exists()
    np.save(tmp_path / "one.npy", np.ones((5, 1)))
    code, _, err = run(["score", model_file, tmp_path / "one.npy"], capsys)
    assert code == 1 and "expects 2" in err


def test_corrupt_model(data_csv, model_file, tmp_path, capsys):
    bad = tmp_path / "bad.emix"
    bad.write_bytes(model_file.read_bytes()[:200])
    for argv in (["predict", bad, data_csv], ["info", bad], ["score", bad, data_csv],
                 ["sample", bad, "-n", 3], ["plot", bad, data_csv, "-o", tmp_path / "f.png"]):
        code, _, err = run(argv, capsys)
        assert code == 1, argv
        assert "Cannot load model file" in err and err.count("\n") == 1
    assert not (tmp_path / "f.png").exists()


def test_debug_shows_traceback(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("")
    with pytest.raises(_files.DataError, match="is empty"):
        main(["fit", str(p), "-k", "2", "-o", str(tmp_path / "m"), "--debug"])


@pytest.mark.parametrize("argv", [
    [], ["frobnicate"], ["fit", "x.csv", "-o", "m"], ["fit", "x.csv", "-k", "0", "-o", "m"],
    ["fit", "x.csv", "-k", "2", "--covariance", "banana", "-o", "m"], ["select", "x.csv", "-k", "5..2"],
    ["plot", "m", "d", "-o", "f.png", "--kind", "pie"],
])
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_and_version(capsys):
    assert main(["--version"]) == 0
    assert emix.__version__ in capsys.readouterr().out
    assert main(["fit", "--help"]) == 0
    assert "--covariance" in capsys.readouterr().out


# ------------------------------------------------ other subcommands
def test_select_table_model_plot(data_csv, tmp_path, capsys):
    out, fig, table = tmp_path / "best.emix", tmp_path / "bic.png", tmp_path / "grid.csv"
    code, stdout, err = run(["select", data_csv, "-k", "1..3", "--covariance", "EII,EEE", "--seed", 0,
                             "-o", out, "--plot", fig, "--table", table], capsys)
    assert code == 0, err
    assert "BIC by K" in stdout and "*" in stdout and "chosen: K=3, covariance 'EEE'" in stdout
    assert emix.load(out).covariance_type == "EEE"
    assert fig.read_bytes()[:8] == PNG
    header, rows = read_csv(table)
    assert len(rows) == 6 and header[:2] == ["n_components", "covariance_type"]
    ref = emix.select(load_faithful()[0], n_components=range(1, 4), covariance_types=["EII", "EEE"],
                      random_state=0)
    bic = {(int(r[0]), r[1]): float(r[header.index("bic")]) for r in rows}
    for r in ref.rows:
        assert bic[(r["n_components"], r["covariance_type"])] == pytest.approx(r["bic"], rel=1e-9)


def test_select_keeps_the_users_model_names_and_fits_each_model_once(data_csv, tmp_path, capsys):
    """VVV stays VVV (as in Python), and 'VVV,full' (one model, two names) is fitted once."""
    table = tmp_path / "grid.csv"
    code, stdout, err = run(["select", data_csv, "-k", "2", "--covariance", "VVV,full,EEE", "--seed", 0,
                             "--table", table], capsys)
    assert code == 0, err
    header, rows = read_csv(table)
    assert sorted(r[1] for r in rows) == ["EEE", "VVV"]
    model = tmp_path / "m.emix"
    code, _, err = run(["fit", data_csv, "-k", "2", "--covariance", "VVV", "--seed", 0, "-o", model], capsys)
    assert code == 0, err
    assert emix.load(model).covariance_type == "VVV"


def test_sample_score_info(model_file, data_csv, tmp_path, capsys):
    out = tmp_path / "s.csv"
    code, _, err = run(["sample", model_file, "-n", 50, "--seed", 3, "-o", out], capsys)
    assert code == 0, err
    header, rows = read_csv(out)
    assert header == ["eruptions", "waiting", "component"] and len(rows) == 50

    code, stdout, _ = run(["score", model_file, data_csv, "--json"], capsys)
    assert code == 0
    s = json.loads(stdout)
    X, _ = load_faithful()
    m = emix.load(model_file)
    assert s["bic"] == pytest.approx(m.bic(X), rel=1e-12)
    assert s["mean_log_likelihood"] == pytest.approx(m.score(X), rel=1e-12)
    assert s["n_rows"] == 272
    code, stdout, _ = run(["score", model_file, data_csv], capsys)
    assert code == 0 and "BIC" in stdout and "ICL" in stdout

    code, stdout, _ = run(["info", model_file], capsys)
    assert code == 0 and "K=2" in stdout and "eruptions" in stdout
    code, stdout, _ = run(["info", model_file, "--json"], capsys)
    info = json.loads(stdout)
    assert info["n_components"] == 2 and info["feature_names"] == ["eruptions", "waiting"]
    np.testing.assert_allclose(info["means"], m.means_)


@pytest.mark.parametrize("kind,size", [("clusters", (720, 560)), ("uncertainty", (720, 540)),
                                       ("convergence", (720, 420))])
def test_plot_kinds(kind, size, model_file, data_csv, tmp_path, capsys):
    from PIL import Image

    fig = tmp_path / f"{kind}.png"
    argv = ["plot", model_file] + ([] if kind == "convergence" else [data_csv]) + ["-o", fig, "--kind", kind]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    with Image.open(fig) as im:
        assert im.format == "PNG" and im.size == size


def test_plot_svg_and_needs_data(model_file, data_csv, tmp_path, capsys):
    svg = tmp_path / "f.svg"
    assert run(["plot", model_file, data_csv, "-o", svg, "--dims", 1, 0], capsys)[0] == 0
    assert b"<svg" in svg.read_bytes()[:500]
    code, _, err = run(["plot", model_file, "-o", tmp_path / "g.png"], capsys)
    assert code == 1 and "needs the DATA file" in err
    code, _, err = run(["plot", model_file, data_csv, "-o", tmp_path / "g.gif"], capsys)
    assert code == 1 and ".png, .svg or .pdf" in err


def test_report_with_model(model_file, data_csv, tmp_path, capsys):
    from html.parser import HTMLParser

    out = tmp_path / "r.html"
    code, _, err = run(["report", data_csv, "--model", model_file, "-o", out], capsys)
    assert code == 0, err
    ids = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "section":
                ids.append(dict(attrs)["id"])

    P().feed(out.read_text())
    assert ids == ["data", "selection", "model", "plots", "reproduce"]


def test_demo_writes_plots_and_report(tmp_path, capsys):
    d = tmp_path / "demo"
    code, out, err = run(["demo", "-o", d, "-k", "2..3", "--covariance", "EEE,VVV", "-j", 1], capsys)
    assert code == 0, err
    names = sorted(os.listdir(d))
    assert names == ["clusters.png", "convergence.png", "criterion.png", "faithful.emix", "report.html",
                     "uncertainty.png"]
    assert "K=3" in out and str(d) in out and "report.html" in out
    # a second run does not overwrite without --force
    code, _, err = run(["demo", "-o", d, "-k", "2", "--covariance", "EEE"], capsys)
    assert code == 1 and "--force" in err


def test_progress_bar_only_on_tty(monkeypatch):
    from emix.cli import _Progress

    class Args:
        quiet = False

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not _Progress(Args()).enabled  # not a TTY

    class TTY(io.StringIO):
        def isatty(self):
            return True

    fake = TTY()
    monkeypatch.setattr(sys, "stderr", fake)
    p = _Progress(Args())
    assert p.enabled
    Args.quiet = True
    assert not _Progress(Args()).enabled
    pytest.importorskip("tqdm")
    for i in range(1, 4):
        p({"init": 0, "n_init": 2, "n_iter": i, "max_iter": 100, "lower_bound": -4.0 + i * 0.01, "change": 0.01})
    assert p.bar is not None and p.bar.n == 3
    p.close()


# ---------------------------------------------------- console script
@pytest.mark.skipif(shutil.which("emix") is None, reason="console script not installed")
def test_console_script(data_csv, tmp_path):
    exe = shutil.which("emix")
    m = tmp_path / "m.emix"
    r = subprocess.run([exe, "fit", str(data_csv), "-k", "2", "--seed", "0", "-o", str(m)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "K=2" in r.stdout and r.stderr.strip() == f"wrote {m}"  # no progress bar off a TTY
    r = subprocess.run([exe, "predict", str(m), str(data_csv)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("eruptions,waiting,label,probability\n")
    r = subprocess.run([exe, "predict", str(m), str(tmp_path / "missing.csv")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and r.stderr.strip() == f"emix: error: {tmp_path / 'missing.csv'}: no such file."
    r = subprocess.run([exe, "fit"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "usage:" in r.stderr


def test_unnamed_model_picks_x_columns_of_its_own_output(tmp_path, capsys):
    X, _ = load_faithful()
    np.save(tmp_path / "f.npy", X)
    m, pred = tmp_path / "m.emix", tmp_path / "p.csv"
    assert run(["fit", tmp_path / "f.npy", "-k", 2, "--seed", 0, "-o", m, "-q"], capsys)[0] == 0
    assert not hasattr(emix.load(m), "feature_names_in_")
    assert run(["predict", m, tmp_path / "f.npy", "-o", pred, "-q"], capsys)[0] == 0
    assert read_csv(pred)[0] == ["x0", "x1", "label", "probability"]
    code, out, err = run(["score", m, pred, "--json"], capsys)  # label/probability are not features
    assert code == 0, err
    assert json.loads(out)["bic"] == pytest.approx(emix.load(m).bic(X), rel=1e-12)


def test_csv_reader_without_pandas_matches_pandas(tmp_path, monkeypatch):
    p = tmp_path / "t.csv"
    p.write_text('id,"x, with comma",y\n"a",1.5,2\n"b",  -3e2 ,4\n\n"c",7,8\n')
    with_pd = _files.read_table(p)
    monkeypatch.setattr(_files, "_optional", lambda name: None)
    no_pd = _files.read_table(p)
    for t in (with_pd, no_pd):
        assert t.names == ["id", "x, with comma", "y"] and t.n_rows == 3 and t.named
        assert list(t.columns["id"]) == ["a", "b", "c"]
        np.testing.assert_array_equal(t.columns["x, with comma"], [1.5, -300.0, 7.0])
    X, names, _ = _files.select_features(no_pd, exclude=["id"])
    assert names == ["x, with comma", "y"] and X.shape == (3, 2)
    q = tmp_path / "noheader.txt"
    q.write_text("1;2\n3;4\n")
    t = _files.read_table(q)
    assert t.names == ["x0", "x1"] and not t.named and t.n_rows == 2
    r = tmp_path / "ragged.csv"
    r.write_text("a,b\n1,2\n3\n")
    with pytest.raises(_files.DataError, match="line 3 has 1 fields"):
        _files.read_table(r)


def test_missing_optional_package_names_the_extra(tmp_path, monkeypatch, capsys):
    p = tmp_path / "f.parquet"
    p.write_bytes(b"PAR1" + b"\0" * 16 + b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code, _, err = run(["fit", p, "-k", 1, "-o", tmp_path / "m"], capsys)
    assert code == 1 and 'pip install "emix[io]"' in err and "pyarrow" in err


def test_predict_keeps_integer_columns_integer(model_file, tmp_path, capsys):
    """An id column of integers passes through predict as integers (it came
    out as 0.0, 1.0, ... in Parquet); integer feature columns still fit."""
    pa = pytest.importorskip("pyarrow.parquet")
    X = load_faithful()[0]
    src = tmp_path / "with_id.csv"
    with open(src, "w") as fh:
        fh.write("id,eruptions,waiting\n")
        for i, (a, b) in enumerate(X):
            fh.write(f"{1000 + i},{a},{int(b)}\n")  # waiting is integer-valued in Old Faithful
    out = tmp_path / "pred.parquet"
    code, _, err = run(["predict", model_file, src, "--columns", "eruptions,waiting", "-o", out], capsys)
    assert code == 0, err
    table = pa.read_table(out)
    assert str(table.schema.field("id").type) == "int64"
    assert table.column("id").to_pylist()[:3] == [1000, 1001, 1002]
    ref = emix.load(model_file).predict(X)
    assert table.column("label").to_pylist() == ref.tolist()


def test_fit_jobs_runs_restarts_in_parallel_with_the_same_result(data_csv, tmp_path, capsys):
    a, b = tmp_path / "a.emix", tmp_path / "b.emix"
    for out, jobs in ((a, []), (b, ["-j", "2"])):
        code, _, err = run(["fit", data_csv, "-k", "3", "--n-init", "3", "--init", "k-means++", "--seed", 0,
                            "-o", out, "-q", *jobs], capsys)
        assert code == 0, err
    ma, mb = emix.load(a), emix.load(b)
    np.testing.assert_array_equal(ma.means_, mb.means_)
    assert ma.lower_bound_ == mb.lower_bound_ and mb.n_jobs == 2
    code, _, err = run(["fit", data_csv, "-k", "3", "-j", "0", "-o", tmp_path / "c.emix"], capsys)
    assert code == 2 and "got 0" in err
