"""Checks at the API boundary. Every message says what was received."""

from __future__ import annotations

import numbers

import numpy as np

from .core.init import INIT_METHODS


def _is_int(x):
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_int(name, value, minimum):
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer. Got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}. Got {value!r}.")
    return int(value)


def check_real(name, value, minimum):
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number. Got {value!r} of type {type(value).__name__}.")
    if not np.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}. Got {value!r}.")
    return float(value)


def check_estimator_params(est):
    """Validate the constructor parameters of a GaussianMixture (at fit time)."""
    check_int("n_components", est.n_components, 1)
    check_real("tol", est.tol, 0.0)
    check_real("reg_covar", est.reg_covar, 0.0)
    check_int("max_iter", est.max_iter, 0)
    check_int("n_init", est.n_init, 1)
    check_int("verbose", est.verbose, 0)
    check_int("verbose_interval", est.verbose_interval, 1)
    if est.init_params not in INIT_METHODS:
        raise ValueError(f"init_params must be one of {list(INIT_METHODS)}. Got {est.init_params!r}.")
    if not isinstance(est.warm_start, (bool, np.bool_)):
        raise TypeError(f"warm_start must be a bool. Got {est.warm_start!r}.")
    if est.n_threads is not None:
        check_int("n_threads", est.n_threads, 1)
    check_n_jobs(getattr(est, "n_jobs", None))
    if getattr(est, "accelerate", None) not in (None, "squarem"):
        raise ValueError(f"accelerate must be None or 'squarem'. Got {est.accelerate!r}.")
    check_mixing_options(getattr(est, "equal_proportions", False), getattr(est, "noise", None))
    if est.callback is not None and not callable(est.callback):
        raise TypeError(f"callback must be callable or None. Got {est.callback!r}.")
    if est.working_memory is not None:
        check_real("working_memory", est.working_memory, 0.0)
        if est.working_memory <= 0:
            raise ValueError(f"working_memory must be > 0 (MiB). Got {est.working_memory!r}.")
    if hasattr(est, "missing") or hasattr(est, "fixed"):  # missing values and held parameters
        from .core.missing import check_fixed, check_missing_option

        check_missing_option(getattr(est, "missing", "error"))
        check_fixed(getattr(est, "fixed", ()))


def check_n_jobs(n_jobs):
    """None, a positive int, or a negative int (joblib's -1 = every core)."""
    if n_jobs is None:
        return None
    if not _is_int(n_jobs):
        raise TypeError(f"n_jobs must be an integer or None. Got {n_jobs!r} of type {type(n_jobs).__name__}.")
    if n_jobs == 0:
        raise ValueError(
            "n_jobs must be None (1), a positive number of workers, -1 (every core) or -k (every "
            "core but k - 1). Got 0."
        )
    return int(n_jobs)


def check_mixing_options(equal_proportions, noise):
    """``equal_proportions`` a bool; ``noise`` None, 'box' or a finite hyper-volume > 0."""
    if not isinstance(equal_proportions, (bool, np.bool_)):
        raise TypeError(f"equal_proportions must be a bool. Got {equal_proportions!r}.")
    if noise is None or (isinstance(noise, str) and noise == "box"):
        return
    if not _is_real(noise):
        raise ValueError(
            "noise must be None, 'box' (the bounding box of the training data) or a positive "
            f"hyper-volume. Got {noise!r}."
        )
    if not (np.isfinite(noise) and noise > 0):
        raise ValueError(f"noise as a hyper-volume must be finite and > 0. Got {noise!r}.")


def check_sample_weight(sample_weight, n_samples, dtype, normalize=False):
    """1-D, length n_samples, finite, non-negative, not all zero.

    With ``normalize`` the weights are scaled (in float64, before the cast to
    ``dtype``) to a mean of 1. A fit is invariant to a common scale of the
    weights except for the ``10 * eps`` added to every ``n_k``, which dominates
    when the weights are tiny (1e-30), and for under/overflow in float32
    (1e-45, 1e300); normalizing removes both.
    """
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sample_weight must be an array of numbers. Got {sample_weight!r:.80}: {exc}") from None
    if w.ndim == 0:
        w = np.full(n_samples, float(w))
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight must have shape ({n_samples},) to match X. Got shape {w.shape}."
        )
    if not np.all(np.isfinite(w)):
        raise ValueError(f"sample_weight must be finite. Got {int(np.sum(~np.isfinite(w)))} NaN or infinite values.")
    if np.any(w < 0):
        raise ValueError(f"sample_weight must be >= 0. Got minimum {float(w.min())!r}.")
    if not np.any(w > 0):
        raise ValueError("sample_weight must have at least one positive value. Got all zeros.")
    if normalize:
        w = w / np.max(w)  # cannot overflow, then the mean is >= 1 / n_samples
        w = w / np.mean(w)
    return w.astype(dtype, copy=False)


def sklearn_shape_message(name, expected, got):
    """scikit-learn's sentence for a ``*_init`` of the wrong shape ("The
    parameter 'means' should have the shape of (3, 2), but got (2, 2)"), which
    emix's messages begin with so that code matching scikit-learn's errors
    keeps working; emix's own detail follows it."""
    expected = tuple(int(v) for v in expected)
    got = tuple(int(v) for v in got)
    return f"The parameter '{name}' should have the shape of {expected}, but got {got}."


def check_weights_init(weights, K, dtype):
    w = np.asarray(weights, dtype=dtype)
    if w.shape != (K,):
        raise ValueError(f"{sklearn_shape_message('weights', (K,), w.shape)} "
                         f"weights_init must have shape ({K},). Got shape {w.shape}.")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights_init contains NaN or infinite values.")
    if np.any(w < 0) or np.any(w > 1):
        raise ValueError(f"weights_init must be in [0, 1]. Got min {float(w.min())!r}, max {float(w.max())!r}.")
    if not np.isclose(float(np.sum(w, dtype=np.float64)), 1.0, atol=1e-6, rtol=0):
        raise ValueError(f"weights_init must sum to 1. Got sum {float(np.sum(w)):.8g}.")
    return w


def check_means_init(means, K, D, dtype):
    m = np.asarray(means, dtype=dtype)
    if m.shape != (K, D):
        raise ValueError(f"{sklearn_shape_message('means', (K, D), m.shape)} "
                         f"means_init must have shape ({K}, {D}) (n_components, n_features). Got shape {m.shape}.")
    if not np.all(np.isfinite(m)):
        raise ValueError("means_init contains NaN or infinite values.")
    return m


def check_enough_samples(n_eff, n_components, weighted):
    """At least ``n_components`` rows (with positive weight, when weighted)."""
    if n_eff < n_components:
        raise ValueError(
            "Expected n_samples >= n_components but got "
            f"n_components = {n_components}, n_samples = {n_eff}"
            + (" (rows with positive sample_weight)" if weighted else "")
            + ". Use fewer components or more data."
        )
