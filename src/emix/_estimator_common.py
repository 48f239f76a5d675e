"""Steps that :class:`emix.GaussianMixture` and :class:`emix.BayesianGaussianMixture`
take the same way: opening an out-of-core source and drawing from a fitted mixture."""

from __future__ import annotations

import numpy as np

from . import _validation as V


def open_out_of_core(X, sample_weight, *, is_dask, structure, n_components, working_memory, rng, moments,
                     allow_nan=False):
    """Scan a Dask array/DataFrame or a block source once and build its reducer.

    The pass draws a uniform sample of ``emix.backends.chunked.DEFAULT_INIT_SAMPLE``
    rows for the initialization (all rows when there are fewer) and, with
    ``moments=True``, the weighted mean and covariance of the rows.

    Parameters
    ----------
    X : dask collection or block source
    sample_weight : dask array or None
        Only with a Dask ``X``; a block source yields ``(X_block, w_block)`` pairs.
    is_dask : bool
        Whether ``X`` is a Dask collection (else a block source).
    structure, n_components, working_memory
        Size the blocks (:func:`emix.backends.reduce.block_rows_for`).
    rng : numpy.random.RandomState
        The estimator's generator; the sample's seed is drawn from it.
    moments : bool
        Whether the pass also sums the moments of the rows.
    allow_nan : bool, default=False
        NaN entries are missing values (``missing='em'``): the scan counts the
        rows in which each column is observed (``info['n_observed']``)
        instead of refusing them.

    Returns
    -------
    reducer, info, feature_names, rng
        ``info`` is the scan's summary (``n_samples``, ``n_features``, ``n_eff``, ...);
        ``feature_names`` is None unless a Dask DataFrame has column names; ``rng``
        is the generator the initialization goes on with (advanced past the sample
        when one was drawn).

    Raises
    ------
    ValueError
        When a block source comes with ``sample_weight``, or there are fewer
        than 2 rows, or fewer rows of positive weight than components.
    """
    from .backends import chunked
    from .backends import dask as dk
    from .backends.reduce import block_rows_for

    seed, advanced = chunked.sample_seed(rng)
    names = None
    if is_dask:
        Xd = dk.as_dask_array(X)
        wd = dk.as_dask_weights(sample_weight, Xd.chunks[0], Xd.dtype)
        names = dk.feature_names(X)
        client = dk.get_client()
        rows = block_rows_for(structure, n_components, Xd.shape[1], Xd.dtype.itemsize, working_memory)
        if client is not None:
            reducer = dk.DaskReducer(Xd, wd, client, block_rows=rows)
            info = dk.scan(*reducer._persisted, chunked.DEFAULT_INIT_SAMPLE, seed, moments=moments,
                           allow_nan=allow_nan)
        else:
            info = dk.scan(Xd, wd, chunked.DEFAULT_INIT_SAMPLE, seed, moments=moments, allow_nan=allow_nan)
            reducer = chunked.ChunkedReducer(dk.local_source(Xd, wd), Xd.shape[1], Xd.dtype, rows)
    else:
        if sample_weight is not None:
            raise ValueError(
                "sample_weight cannot be passed with a block source; yield (X_block, w_block) pairs instead."
            )
        info = chunked.scan_source(X, chunked.DEFAULT_INIT_SAMPLE, seed, moments=moments, allow_nan=allow_nan)
        rows = block_rows_for(structure, n_components, info["n_features"], info["dtype"].itemsize, working_memory)
        reducer = chunked.ChunkedReducer(X, info["n_features"], info["dtype"], rows)
    if info["sampled"]:
        rng = advanced
    if info["n_samples"] < 2:
        raise ValueError(f"Found {info['n_samples']} sample(s); at least 2 are required.")
    V.check_enough_samples(info["n_eff"], n_components, info["weighted"])
    return reducer, info, names, rng


def set_feature_names(estimator, names):
    """Set ``feature_names_in_`` to ``names``, or remove it when ``names`` is None."""
    if names is not None:
        estimator.feature_names_in_ = names
    elif hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_


def draw_sample(estimator, n_samples):
    """Draw ``n_samples`` rows from a fitted Gaussian mixture (weights, then rows).

    The component counts are one multinomial draw with the mixture weights,
    then each component's rows are drawn from its Gaussian, with
    ``check_random_state(estimator.random_state)``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        The component of each row.
    """
    from sklearn.utils import check_random_state

    rng = check_random_state(estimator.random_state)
    counts = rng.multinomial(n_samples, estimator.weights_.astype(np.float64))
    X = estimator._structure().draw(rng, estimator.means_, estimator.covariances_, counts)
    y = np.concatenate([np.full(c, k, dtype=int) for k, c in enumerate(counts)])
    return X, y
