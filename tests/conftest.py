"""Shared test settings and the fixtures several test files need. Keep this small;
other fixtures belong in the test files."""

import warnings

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


@pytest.fixture(scope="module")
def client():
    """A ``distributed.LocalCluster`` of 2 single-threaded worker processes on
    127.0.0.1 and its client; one per test module (test_dask.py kills workers)."""
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # startup chatter (e.g. port warnings)
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=50,
        )
        c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    """A copy of the shipped Old Faithful CSV (the command-line tests' data)."""
    import shutil

    from emix.datasets import faithful_path

    p = tmp_path_factory.mktemp("data") / "faithful.csv"
    shutil.copyfile(faithful_path(), p)
    return p
