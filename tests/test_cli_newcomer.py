"""What a newcomer meets first with the command line: files written by pandas
(the index is not a feature), decimal commas, a header of numbers, --dims by
name, ``python -m emix``, a fast start, Ctrl-C at any time, the phases before
the first EM iteration, and a Parquet error that must exit 1, not abort."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import emix
from emix import _files, cli
from emix.cli import main

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names")

ROOT = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n) * 2 + 1,
                         "target": rng.integers(0, 3, size=n)})


def _fit_names(path, tmp_path, *extra):
    out = tmp_path / f"m{len(list(tmp_path.iterdir()))}.emix"
    assert main(["fit", str(path), "-k", "1", "-o", str(out), "--covariance", "diag", "-q", *extra]) == 0
    m = emix.load(out)
    return [str(n) for n in m.feature_names_in_], m


# ------------------------------------------------------------ 1. the pandas index
def test_parquet_index_after_dropna_is_not_a_feature(tmp_path, capsys):
    df = _frame()
    df.loc[[3, 10], "a"] = np.nan
    clean = df.dropna()
    p = tmp_path / "d.parquet"
    clean.to_parquet(p)  # writes __index_level_0__ (the index is no longer a RangeIndex)
    assert "__index_level_0__" in __import__("pyarrow.parquet").parquet.read_table(p).column_names
    out = tmp_path / "m.emix"
    assert main(["fit", str(p), "-k", "1", "-o", str(out), "--covariance", "diag"]) == 0
    err = capsys.readouterr().err
    assert "note" in err and "__index_level_0__" in err and "pandas index" in err
    m = emix.load(out)
    assert list(m.feature_names_in_) == ["a", "b", "target"]
    # oracle: the one-component fit's mean is the columns' mean (numpy)
    np.testing.assert_allclose(m.means_[0], clean[["a", "b", "target"]].to_numpy().mean(axis=0), rtol=1e-12)
    # predict copies the index (the original row labels) to its output
    pred = tmp_path / "p.csv"
    assert main(["predict", str(out), str(p), "-o", str(pred), "-q"]) == 0
    got = pd.read_csv(pred)
    assert list(got["__index_level_0__"]) == list(clean.index)


def test_parquet_set_index_label_is_not_a_feature(tmp_path):
    df = _frame()
    p = tmp_path / "s.parquet"
    df.set_index("target").to_parquet(p)  # an integer class label: it used to be fitted silently
    names, m = _fit_names(p, tmp_path)
    assert names == ["a", "b"]
    np.testing.assert_allclose(m.means_[0], df[["a", "b"]].to_numpy().mean(axis=0), rtol=1e-12)
    t = _files.read_table(p)
    assert t.index_columns == ["target"] and t.names[0] == "target"  # kept, first, as reset_index
    # named in --columns it is used
    names, _ = _fit_names(p, tmp_path, "--columns", "target,a")
    assert names == ["target", "a"]
    # a MultiIndex: both levels
    q = tmp_path / "multi.parquet"
    df.assign(g=np.arange(len(df)) % 2).set_index(["target", "g"]).to_parquet(q)
    assert _fit_names(q, tmp_path)[0] == ["a", "b"]
    # a RangeIndex is metadata only: nothing to drop, no note
    r = tmp_path / "range.parquet"
    df.to_parquet(r)
    t = _files.read_table(r)
    assert t.index_columns == [] and t.notes == []


@pytest.mark.parametrize("with_pandas", [True, False])
def test_csv_with_index_column(tmp_path, monkeypatch, with_pandas, capsys):
    df = _frame()
    df.loc[[3, 10], "a"] = np.nan
    clean = df.dropna()
    p = tmp_path / "i.csv"
    clean.to_csv(p)  # ",a,b,target" then "0,...": the index with an empty header
    if not with_pandas:
        monkeypatch.setattr(_files, "_optional", lambda name: None)
    t = _files.read_table(p)
    assert t.names[0] == "Unnamed: 0" and t.index_columns == ["Unnamed: 0"]
    X, names, _ = _files.select_features(t)
    assert names == ["a", "b", "target"]
    np.testing.assert_allclose(X, clean[["a", "b", "target"]].to_numpy(), rtol=1e-15)
    assert "Unnamed: 0" in t.notes[0] and "index" in t.notes[0]
    # headerless, to_csv(header=False): a first column 0..n-1 is the index; features stay x0, x1, ...
    q = tmp_path / "nohead.csv"
    df.dropna().reset_index(drop=True).to_csv(q, header=False)
    t = _files.read_table(q)
    assert t.names == ["index", "x0", "x1", "x2"] and t.index_columns == ["index"]
    X, names, _ = _files.select_features(t)
    assert names == ["x0", "x1", "x2"] and X.shape == (len(clean), 3)
    # a first column that is not 0..n-1 is data
    r = tmp_path / "data.csv"
    r.write_text("5,1.5\n7,2.5\n9,0.5\n")
    assert _files.read_table(r).index_columns == []


def test_index_note_through_main_and_quiet(tmp_path, capsys):
    p = tmp_path / "i.csv"
    _frame().to_csv(p)
    out = tmp_path / "m.emix"
    assert main(["fit", str(p), "-k", "1", "-o", str(out), "--covariance", "diag"]) == 0
    assert "emix: note:" in capsys.readouterr().err
    assert main(["fit", str(p), "-k", "1", "-o", str(out), "--covariance", "diag", "-q", "-f"]) == 0
    assert capsys.readouterr().err == ""
    assert list(emix.load(out).feature_names_in_) == ["a", "b", "target"]


# ------------------------------------- 4. an error right after reading Parquet: exit 1, never abort
def _penguins_like(path):
    """The shape of palmerpenguins' table (rownames, text columns, measurements
    with NaN, year), written by pandas."""
    rng = np.random.default_rng(1)
    n = 344
    df = pd.DataFrame({
        "rownames": np.arange(1, n + 1),
        "species": rng.choice(["Adelie", "Gentoo", "Chinstrap"], n),
        "island": rng.choice(["Torgersen", "Biscoe", "Dream"], n),
        "bill_length_mm": rng.normal(44, 5, n).round(1),
        "bill_depth_mm": rng.normal(17, 2, n).round(1),
        "flipper_length_mm": rng.normal(200, 14, n).round(0),
        "body_mass_g": rng.normal(4200, 800, n).round(0),
        "sex": rng.choice(["male", "female", None], n),
        "year": rng.choice([2007, 2008, 2009], n),
    })
    df.loc[[3, 271], ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]] = np.nan
    df.to_parquet(path)


def test_parquet_reader_gives_arrow_no_python_buffers(tmp_path, monkeypatch):
    """The root cause of the abort: Arrow's reader released Python buffers on
    its I/O threads after read_table returned; during interpreter exit that
    aborts. The reader must hand Arrow a path or Arrow-owned memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "p.parquet"
    _penguins_like(p)
    seen = []
    real = pq.read_table

    def spy(source, *a, **k):
        seen.append(source)
        return real(source, *a, **k)

    monkeypatch.setattr(pq, "read_table", spy)
    t = _files.read_table(p)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(p.read_bytes())))
    t_stdin = _files.read_table("-")
    assert isinstance(seen[0], str) and os.path.samefile(seen[0], p)
    assert isinstance(seen[1], pa.NativeFile)
    assert isinstance(seen[1], pa.BufferReader)
    for name in t.names:
        np.testing.assert_array_equal(t.columns[name], t_stdin.columns[name])


@pytest.mark.slow
def test_parquet_nan_error_exits_1_every_time(tmp_path):
    """The issue's command, 30 times: `terminate called without an active
    exception` / exit 134 came in about 1 run in 8 before the fix."""
    p = tmp_path / "penguins.parquet"
    _penguins_like(p)
    cmd = [sys.executable, "-m", "emix", "fit", str(p), "-k", "3", "-o", str(tmp_path / "f7.emix"),
           "--exclude", "rownames,species,island,sex,year"]

    def run(_):
        r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
        return r.returncode, r.stderr

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(run, range(30)))
    bad = [(rc, err[-300:]) for rc, err in results if rc != 1]
    assert not bad, bad
    for _, err in results:
        assert err.strip().splitlines() == [
            "emix: error: column 'bill_length_mm' of " + str(p) + " has 2 missing or infinite value(s); "
            "the first is missing (empty or NaN), at data row 4. Remove or impute those rows, or fit with "
            "--missing em (Gaussian mixtures: missing values handled inside EM)."]
    assert not (tmp_path / "f7.emix").exists()


# ---------------------------------------------------- 6. decimal commas, thousands
def test_semicolon_file_reads_decimal_commas(tmp_path):
    p = tmp_path / "eu.csv"
    p.write_text("a;b;c\n14,23;1.065,5;3\n2,5;7;-0,25\n-1,75;2 000,0;1e3\n")
    X, names, _ = _files.select_features(_files.read_table(p))
    np.testing.assert_array_equal(X, [[14.23, 1065.5, 3.0], [2.5, 7.0, -0.25], [-1.75, 2000.0, 1000.0]])
    # --decimal . overrides (a ';' file with decimal points)
    q = tmp_path / "points.csv"
    q.write_text("a;b\n1.5;2\n2.5;3\n")
    np.testing.assert_array_equal(_files.select_features(_files.read_table(q, decimal="."))[0],
                                  [[1.5, 2.0], [2.5, 3.0]])


def test_decimal_option_and_hint(tmp_path, capsys):
    p = tmp_path / "q.csv"
    p.write_text('a,b\n"14,23",1\n"2,5",2\n"3,1",4\n"0,5",3\n')
    out = tmp_path / "m.emix"
    assert main(["fit", str(p), "-k", "1", "-o", str(out), "--covariance", "diag"]) == 1
    err = capsys.readouterr().err
    assert "--decimal ," in err and "--exclude" not in err
    assert main(["fit", str(p), "-k", "1", "-o", str(out), "--covariance", "diag", "--decimal", ",", "-q"]) == 0
    np.testing.assert_allclose(emix.load(out).means_[0], [np.mean([14.23, 2.5, 3.1, 0.5]), 2.5], rtol=1e-12)
    # a column of words keeps the --exclude hint
    r = tmp_path / "w.csv"
    r.write_text("a,name\n1.5,x\n2.5,y\n")
    assert main(["fit", str(r), "-k", "1", "-o", str(tmp_path / "w.emix")]) == 1
    assert "--exclude name" in capsys.readouterr().err
    assert main(["fit", str(p), "-k", "1", "-o", str(out), "--decimal", ";"]) == 2  # a usage error


def test_thousands_separators(tmp_path):
    p = tmp_path / "us.csv"
    p.write_text('pop,area\n"1,065",2.5\n"12,300,000",3.5\n"950",1\n')
    X, _, _ = _files.select_features(_files.read_table(p))
    np.testing.assert_array_equal(X[:, 0], [1065.0, 12_300_000.0, 950.0])
    for bad in ("1,06", "1,0655", ",065"):  # not groups of three: not a number
        assert _files._column_from_strings([bad, "1"]).dtype == object


# ------------------------------------------------- 6. a header of numbers
def test_numeric_header_warns(tmp_path, capsys):
    p = tmp_path / "years.csv"
    p.write_text("2019,2020,2021\n1.5,2.5,3.5\n2.5,3.0,4.5\n0.5,1.0,1.5\n")
    out = tmp_path / "m.emix"
    assert main(["fit", str(p), "-k", "1", "-o", str(out), "--covariance", "diag", "-q"]) == 0
    err = capsys.readouterr().err
    assert "emix: warning:" in err and "2019, 2020, 2021" in err and "--header" in err
    assert emix.load(out).means_.shape == (1, 3)
    assert main(["fit", str(p), "-k", "1", "-o", str(out), "--covariance", "diag", "-q", "-f", "--header"]) == 0
    assert capsys.readouterr().err == ""
    m = emix.load(out)
    assert list(m.feature_names_in_) == ["2019", "2020", "2021"]
    np.testing.assert_allclose(m.means_[0], [1.5, 2.1666666666666665, 3.1666666666666665], rtol=1e-12)
    assert main(["fit", str(p), "-k", "1", "-o", str(out), "-q", "-f", "--no-header"]) == 0
    assert capsys.readouterr().err == ""
    # a table of integers (1, 2 / 3, 4) is data: no warning
    q = tmp_path / "ints.csv"
    q.write_text("1,2\n3,4\n6,5\n")
    assert main(["fit", str(q), "-k", "1", "-o", str(tmp_path / "i.emix"), "-q"]) == 0
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------- 6. --dims by name
def test_plot_dims_by_name_or_position(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    import emix.plotting as P

    p = tmp_path / "d.csv"
    _frame().to_csv(p, index=False)
    model = tmp_path / "m.emix"
    assert main(["fit", str(p), "-k", "2", "-o", str(model), "--seed", "0", "-q"]) == 0
    seen = []
    real = P.plot_clusters
    monkeypatch.setattr(P, "plot_clusters", lambda *a, **k: (seen.append(k["dims"]), real(*a, **k))[1])
    for dims in (["target", "a"], ["2", "0"]):
        assert main(["plot", str(model), str(p), "--dims", *dims, "-o", str(tmp_path / "f.png"), "-f", "-q"]) == 0
    assert seen == [(2, 0), (2, 0)]
    assert main(["plot", str(model), str(p), "--dims", "a", "zz", "-o", str(tmp_path / "g.png")]) == 1
    err = capsys.readouterr().err
    assert "'zz'" in err and "a, b, target" in err
    assert not (tmp_path / "g.png").exists()


# ------------------------------------------- 6. python -m emix, a start without model code
def test_python_dash_m_emix():
    r = subprocess.run([sys.executable, "-m", "emix", "--version"], capture_output=True, text=True,
                       env=_env(), timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"emix {emix.__version__}"
    r = subprocess.run([sys.executable, "-m", "emix", "fit"], capture_output=True, text=True,
                       env=_env(), timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("usage: emix fit")


_IMPORTS = """
import sys
from emix.cli import main
code = main({argv!r})
heavy = sorted(m for m in ("sklearn", "scipy", "pandas", "pyarrow", "matplotlib", "joblib") if m in sys.modules)
print("HEAVY", heavy)
"""


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["predict", "--help"], ["nosuch"]])
def test_start_imports_no_model_code(argv):
    """`emix --version` took ~4 s: `import emix` imported scikit-learn. The
    modules imported are the measure (timings vary with the machine)."""
    r = subprocess.run([sys.executable, "-c", _IMPORTS.format(argv=argv)], capture_output=True, text=True,
                       env=_env(), timeout=60)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr


def test_import_emix_is_lazy_and_complete():
    r = subprocess.run([sys.executable, "-c", "import sys, emix; print('sklearn' in sys.modules)"],
                       capture_output=True, text=True, env=_env(), timeout=60)
    assert r.stdout.strip() == "False", r.stderr
    for name in emix.__all__:
        assert getattr(emix, name) is not None
    assert set(emix.__all__) <= set(dir(emix))
    from sklearn.exceptions import ConvergenceWarning

    assert emix.ConvergenceWarning is ConvergenceWarning
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        emix.nosuch  # noqa: B018


# ------------------------------------------------------- 6. Ctrl-C at start-up
@pytest.mark.parametrize("where", ["build_parser", "_covariance_list"])
def test_ctrl_c_during_start_up_is_one_line(monkeypatch, capsys, data_csv, where):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, where, interrupted)
    assert main(["select", str(data_csv), "--covariance", "VVV", "-k", "1"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "emix: interrupted; no partial output was written\n" and captured.out == ""


def test_ctrl_c_stops_joblib_workers():
    """After Ctrl-C the loky workers of -j N are ended (and their memmapped
    folders removed) before the process exits, not left to the tracker."""
    joblib = pytest.importorskip("joblib")
    from joblib.externals.loky import reusable_executor

    assert joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]
    executor = reusable_executor._executor
    procs = list(executor._processes.values())
    assert procs and all(p.is_alive() for p in procs)
    cli._stop_workers()
    for p in procs:
        p.join(timeout=10)
    assert not any(p.is_alive() for p in procs)


@pytest.mark.slow
def test_select_jobs_interrupted_exits_cleanly(tmp_path):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(20000, 4)), rng.normal(size=(20000, 4)) + 3])
    p = tmp_path / "big.csv"
    np.savetxt(p, X, delimiter=",", header="a,b,c,d", comments="")
    # numpy-path models: a grid of compiled models (VVV, EEE, ...) runs on threads, not workers
    proc = subprocess.Popen([sys.executable, "-m", "emix", "select", str(p), "-k", "1..8", "-j", "2",
                             "--covariance", "tied,diag,spherical"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_env(), start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:  # wait for the workers to be busy
        kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if len(kids) >= 3:
            break
        time.sleep(0.1)
    time.sleep(2.0)
    assert proc.poll() is None, "the grid finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    out, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130, err
    # the warning of the issue: joblib's resource tracker reporting leaked folders or semaphores
    assert "resource_tracker" not in err and "leaked" not in err, err
    # (a worker process that Ctrl-C catches while it is still importing its modules prints its
    # own KeyboardInterrupt traceback above this line: that is the worker's, not emix's)
    assert err.strip().splitlines()[-1] == "emix: interrupted; no partial output was written"


# --------------------------------------------- 6. phases before the first iteration
class _TTY(io.StringIO):
    def isatty(self):
        return True


class _Args:
    quiet = False
    init = None


def test_status_line_shows_and_erases_a_phase(monkeypatch):
    tty = _TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    with cli._Status(_Args(), "reading big.csv", delay=0.05):
        time.sleep(0.4)
    text = tty.getvalue()
    assert "\rreading big.csv ... 0s" in text and text.endswith("\r")
    width = len("reading big.csv ... 0s")
    assert text.endswith("\r" + " " * width + "\r")  # erased
    # fast phases show nothing; --quiet and a non-terminal never
    tty2 = _TTY()
    monkeypatch.setattr(sys, "stderr", tty2)
    with cli._Status(_Args(), "quick", delay=5):
        pass
    quiet = _Args()
    quiet.quiet = True
    with cli._Status(quiet, "quiet", delay=0):
        time.sleep(0.1)
    assert tty2.getvalue() == ""


def test_progress_names_the_start_until_the_first_iteration(monkeypatch):
    tty = _TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    monkeypatch.setattr(cli._Status.__init__, "__defaults__", (0.05,))
    progress = cli._Progress(_Args())
    progress.enabled = True
    progress._open = lambda *a, **k: False  # no tqdm bar here: only the status line is looked at
    with progress:
        time.sleep(0.3)
        assert progress.status.thread is not None
        progress({"max_iter": 10, "n_iter": 1, "init": 0, "n_init": 1, "lower_bound": -1.0, "change": 1.0})
        assert progress.status.thread is None  # the first iteration ends the phase
    assert "EM: initializing (kmeans) ... 0s" in tty.getvalue()


def test_reading_phase_through_main(tmp_path, monkeypatch):
    p = tmp_path / "d.csv"
    _frame().to_csv(p, index=False)
    real = _files.read_table

    def slow(*a, **k):
        time.sleep(0.4)
        return real(*a, **k)

    monkeypatch.setattr(_files, "read_table", slow)
    monkeypatch.setattr(cli._Status.__init__, "__defaults__", (0.05,))
    tty = _TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    assert main(["fit", str(p), "-k", "1", "-o", str(tmp_path / "m.emix")]) == 0
    assert f"reading {p} ... 0s" in tty.getvalue()


# ------------------------------------------------------------------ 10. docs
def test_docs_install_from_checkout_and_plot_pairs_return():
    text = (ROOT / "docs" / "cli.md").read_text()
    assert 'pip install ".[io,plot,progress]"' in text and "from a checkout" in text
    assert "returns the `(D, D)` NumPy array of its axes" in text
    pytest.importorskip("matplotlib")
    import emix.plotting as P

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    m = emix.GaussianMixture(2, random_state=0).fit(X)
    axes = P.plot_pairs(m, X)
    assert isinstance(axes, np.ndarray) and axes.shape == (3, 3)
    assert all(ax.figure is axes[0, 0].figure for ax in axes.flat)
