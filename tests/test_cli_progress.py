"""Progress of `emix select -j N`: a bar over finished grid cells (the fits
run in worker processes, out of reach of the estimator's callback), and
emix.select's cell_callback that feeds it."""

from __future__ import annotations

import io
import sys

import pytest

import emix
from emix.cli import main
from emix.datasets import load_faithful

pytestmark = pytest.mark.filterwarnings("ignore:X does not have valid feature names")


@pytest.fixture(scope="module")
def X():
    return load_faithful()[0]


class _RecordingBar:
    """Stands in for tqdm: records the bars the CLI makes and their counts."""

    made = []

    def __init__(self, total=None, **kwargs):
        self.total, self.kwargs, self.n, self.updates, self.closed = total, kwargs, 0, [], False
        _RecordingBar.made.append(self)

    def update(self, n=1):
        self.updates.append(n)
        self.n += n

    def reset(self, total=None):
        self.total, self.n = total, 0

    def set_description(self, *a, **k):
        pass

    def set_postfix_str(self, *a, **k):
        pass

    def close(self):
        self.closed = True


class _TTY(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def recorded_bars(monkeypatch):
    """tqdm replaced by _RecordingBar. Each test puts a TTY on sys.stderr in
    its body: pytest's capture sets sys.stderr again between setup and call."""
    tqdm_auto = pytest.importorskip("tqdm.auto")
    _RecordingBar.made = []
    monkeypatch.setattr(tqdm_auto, "tqdm", _RecordingBar)
    return _RecordingBar.made


@pytest.mark.parametrize("jobs", [2, -1])
def test_select_parallel_progress_counts_grid_cells(data_csv, recorded_bars, jobs, monkeypatch):
    monkeypatch.setattr(sys, "stderr", _TTY())
    assert main(["select", str(data_csv), "-k", "1..3", "--covariance", "EII,EEE,VVV", "--seed", "0",
                 "-j", str(jobs)]) == 0
    assert len(recorded_bars) == 1
    bar = recorded_bars[0]
    assert bar.total == 9 and bar.n == 9 and sum(bar.updates) == 9  # 3 K x 3 models
    assert bar.kwargs["unit"] == "fit" and bar.kwargs["file"] is sys.stderr and bar.closed


def test_select_serial_progress_still_counts_iterations(data_csv, recorded_bars, monkeypatch):
    monkeypatch.setattr(sys, "stderr", _TTY())
    assert main(["select", str(data_csv), "-k", "1..2", "--covariance", "EEE", "--seed", "0", "-j", "1"]) == 0
    assert len(recorded_bars) == 1
    assert recorded_bars[0].kwargs["unit"] == "iter" and recorded_bars[0].closed


def test_quiet_select_parallel_has_no_bar(data_csv, recorded_bars, monkeypatch):
    monkeypatch.setattr(sys, "stderr", _TTY())
    assert main(["select", str(data_csv), "-k", "1..2", "--covariance", "EEE", "-j", "2", "-q"]) == 0
    assert recorded_bars == []


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_select_cell_callback(X, n_jobs):
    seen = []
    res = emix.select(X, n_components=[1, 2], covariance_types=["EII", "VVV", "EEE"], random_state=0,
                      n_jobs=n_jobs, cell_callback=seen.append)
    assert [i["done"] for i in seen] == [1, 2, 3, 4, 5, 6]
    assert all(i["total"] == 6 for i in seen)
    key = lambda r: (r["n_components"], r["covariance_type"])  # noqa: E731
    assert sorted(key(i["row"]) for i in seen) == sorted(key(r) for r in res.rows)
    # the rows stay in grid order and are the same as without the callback
    plain = emix.select(X, n_components=[1, 2], covariance_types=["EII", "VVV", "EEE"], random_state=0)
    assert [key(r) for r in res.rows] == [key(r) for r in plain.rows]
    for a, b in zip(res.rows, plain.rows):
        assert a["bic"] == pytest.approx(b["bic"], rel=1e-12)
    for i in seen:
        assert i["row"]["bic"] == pytest.approx(next(r["bic"] for r in res.rows if key(r) == key(i["row"])),
                                                rel=1e-12)


def test_select_cell_callback_must_be_callable(X):
    with pytest.raises(TypeError, match="cell_callback must be callable"):
        emix.select(X, n_components=[1], covariance_types=["EII"], cell_callback=3)
