"""Shared test settings. Keep this small; fixtures belong in the test files."""

import numpy  # noqa: F401  (load the BLAS libraries before limiting them)
import pytest
import scipy.linalg  # noqa: F401
import sklearn.cluster  # noqa: F401
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_blas():
    """The tests use tiny matrices: BLAS threads only cost time, and on a loaded
    machine a lot (a 4x4 triangular solve took 16 ms with 2 OpenBLAS threads
    competing after a KMeans call). Results do not depend on it."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield
