"""The data sets the mclust comparisons use (Old Faithful, iris, and mclust's
banknote and thyroid as vendored in tests/data, see tests/data/README.md),
loaded as benchmarks/bench_vs_mclust.py gives them to ``mclustBIC``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"


def load(name):
    """``name``: 'faithful', 'faithful30' (its first 30 rows), 'iris',
    'banknote' or 'thyroid'; a float64 (n, d) array."""
    if name.startswith("faithful"):
        from emix.datasets import load_faithful

        X = load_faithful()[0]
        return X[:30] if name == "faithful30" else X
    if name == "iris":
        from sklearn.datasets import load_iris

        return load_iris().data
    rows = np.genfromtxt(DATA / f"mclust_{name}.csv", delimiter=",", skip_header=1, dtype=str)
    return rows[:, 1:].astype(np.float64)
