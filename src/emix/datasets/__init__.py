"""Small data sets shipped with emix."""

from __future__ import annotations

from importlib import resources

import numpy as np


def faithful_path():
    """Path of the Old Faithful CSV shipped with emix (columns eruptions, waiting)."""
    return resources.files(__name__) / "data" / "faithful.csv"


def load_faithful():
    """Old Faithful geyser data: 272 eruptions of the Old Faithful geyser,
    Yellowstone (Azzalini & Bowman 1990; Härdle 1991; R's ``datasets::faithful``).

    Returns
    -------
    X : ndarray of shape (272, 2)
        Columns: eruption duration (minutes), waiting time to the next
        eruption (minutes).
    feature_names : list of str
    """
    with resources.as_file(faithful_path()) as p:
        X = np.loadtxt(p, delimiter=",", skiprows=1)
    return X, ["eruptions", "waiting"]


__all__ = ["faithful_path", "load_faithful"]
