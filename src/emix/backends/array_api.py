"""The estimator on PyTorch / CuPy arrays (the array API path).

:class:`emix.GaussianMixture` hands a call to this module when its input (or
its fitted parameters) are PyTorch or CuPy arrays. Everything else is shared
with the numpy path: the same EM loop (:func:`emix.core.em.fit`, via the
estimator's restart loop), the same kernels (called with the input's array
namespace ``xp``), the same M-step and the same validation of the constructor
parameters.

Conventions (as scikit-learn's ``array_api_dispatch``):

- The namespace is found once per public call (:func:`emix.backends._xp.namespace`).
- Fitted attributes stay in the input's namespace and on its device; methods
  given numpy input on a model fitted on a device move that input there and
  return device arrays. ``emix.save`` stores numpy copies; ``emix.load`` returns
  a numpy model.
- Statistics accumulate in float64 on the device (float32 on devices without
  float64). Parameters and outputs keep the data's dtype.
- ``sample_weight`` and the ``*_init`` arrays are validated on the host (one
  copy) and moved to the device.
- Initialization: see :mod:`emix.core.init` ('k-means++' and 'kmeans' run on the
  device and differ from scikit-learn's; 'random' and 'random_from_data' give
  the numpy start).
- ``sample`` draws on the host with numpy (the same draws as a numpy model with
  the same parameters) and returns device arrays.
- full, tied, diag, spherical (and 'VVV', which is full) run entirely on the
  device. The other mclust models run their E-step on the device and their
  constrained M-step on the host (:class:`HostMStep`). ``prior`` is numpy-only.
"""

from __future__ import annotations


import numpy as np
from sklearn.utils import check_random_state

from .. import _validation as V
from ..core import criteria, em
from ..core.types import GaussianParams
from . import _xp
from .reduce import BlockReducer, default_block_rows

#: Default block budget (MiB) off the CPU: big blocks keep a GPU busy.
DEVICE_WORKING_MEMORY_MIB = 1024


def uses_array_api(est, X=None) -> bool:
    """True when ``X`` or the fitted parameters of ``est`` are PyTorch/CuPy arrays."""
    return _xp.is_array_api_input(X) or _xp.is_array_api_input(getattr(est, "means_", None))


def _check_structure(est):
    structure = est._structure()
    if getattr(structure, "array_api", False):
        return structure
    from ..families.gaussian.mclust._eigen import MclustDiagonal, MclustFull

    if isinstance(structure, type) and issubclass(structure, MclustFull):
        return HostMStep(structure, diagonal=issubclass(structure, MclustDiagonal))
    raise NotImplementedError(
        f"covariance_type={est.covariance_type!r} supports numpy input only. On PyTorch/CuPy "
        "arrays use 'full' (or 'VVV'), 'tied', 'diag', 'spherical' or an mclust model, or pass "
        "numpy arrays."
    )


class HostMStep:
    """An mclust model (numpy-only M-step) on device arrays.

    Densities and statistics run on the device with the generic kernels of the
    model's (K, D, D) storage: the full kernels, or the diagonal ones for the
    diagonal models (exactly what the numpy model uses). The constrained
    M-step (eigen-decompositions, iterative orientation and shape updates)
    runs on the host with the model's own numpy code: the K x D x D statistics
    go to the host and the covariances come back, once per iteration.
    """

    array_api = True
    suff_stats = None  # no fused kernel: densities, then statistics

    def __init__(self, structure, diagonal):
        self._s = structure
        self.name = structure.name
        self._diagonal = diagonal

    def __getattr__(self, name):  # shapes, parameter counts, checks, draw: the model's own
        return getattr(self._s, name)

    def log_prob(self, X, means, prec_chol, xp=np):
        from ..families.gaussian.diag import _diag_log_prob
        from ..families.gaussian.full import Full

        if self._diagonal:
            u = xp.linalg.diagonal(prec_chol)
            return _diag_log_prob(X, means, u * u, xp)
        return Full.log_prob(X, means, prec_chol, xp)

    def scatter(self, X, resp, shift, xp=np):
        from ..families.gaussian.diag import _diag_scatter
        from ..families.gaussian.full import Full

        generic = _diag_scatter if self._diagonal else Full.scatter
        if self._s.scatter is not generic:  # e.g. the univariate E/V check their input
            K, D = shift.shape
            self._s.scatter(np.zeros((1, D)), np.zeros((1, K)), np.zeros((K, D)))
        return generic(X, resp, shift, xp=xp)

    @staticmethod
    def _host(xp, dtype):
        return np.float64 if dtype == xp.float64 else np.float32

    def _back(self, xp, a, like):
        return xp.asarray(np.ascontiguousarray(a), dtype=like.dtype, device=_xp.device(like))

    def covariances(self, s2, nk, delta, reg_covar, dtype, xp=np, previous=None):
        # previous: the covariances entering the EM iteration (EVE, VVE start there)
        kw = {} if previous is None else {"previous": _xp.to_numpy(previous)}
        cov = self._s.covariances(_xp.to_numpy(s2), _xp.to_numpy(nk), _xp.to_numpy(delta),
                                  reg_covar, self._host(xp, dtype), **kw)
        return xp.asarray(cov, dtype=dtype, device=_xp.device(s2))

    def prec_chol_from_cov(self, cov, xp=np):
        return self._back(xp, self._s.prec_chol_from_cov(_xp.to_numpy(cov)), cov)

    def prec_chol_from_precisions(self, prec, xp=np):
        return self._back(xp, self._s.prec_chol_from_precisions(_xp.to_numpy(prec)), prec)

    def cov_from_prec_chol(self, prec_chol, xp=np):
        return self._back(xp, self._s.cov_from_prec_chol(_xp.to_numpy(prec_chol)), prec_chol)

    def precisions(self, prec_chol, xp=np):
        return prec_chol @ _xp.matrix_transpose(_xp.namespace(prec_chol), prec_chol)


def _check_array(X, xp, name="X"):
    """2-D, floating (integers become float64), finite, at least one row."""
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array for {name}. Got an array of shape {tuple(X.shape)}.")
    if X.dtype not in (xp.float32, xp.float64):
        if xp.isdtype(X.dtype, "real floating"):  # float16, bfloat16
            X = xp.astype(X, xp.float32)
        else:
            X = xp.astype(X, xp.float64)
    if X.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a minimum of 1 is required.")
    if not bool(xp.all(xp.isfinite(X))):
        raise ValueError(f"Input {name} contains NaN or infinity.")
    return X


def _block_rows(est, X, structure):
    K, D = est.n_components, X.shape[1]
    dev = _xp.device(X)
    on_cpu = str(getattr(dev, "type", dev)) == "cpu"
    itemsize = 8 if X.dtype == _xp.namespace(X).float64 else 4
    if on_cpu:
        return default_block_rows(X.shape[0], structure.temp_per_row(K, D), itemsize, est.working_memory)
    mib = DEVICE_WORKING_MEMORY_MIB if est.working_memory is None else est.working_memory
    rows = int(mib * 2**20 // max(1, structure.temp_per_row(K, D) * 8))
    return max(1, min(X.shape[0], rows))


def _to_device(xp, a, like):
    return None if a is None else _xp.asarray(xp, _xp.to_numpy(a), dtype=like.dtype, device=_xp.device(like))


def _check_inits(est, X, structure, xp):
    """The ``*_init`` arrays validated on the host, then on X's device."""
    K, D = est.n_components, X.shape[1]
    host_dtype = np.float64 if X.dtype == xp.float64 else np.float32
    weights = means = prec = None
    if est.weights_init is not None:
        weights = V.check_weights_init(_xp.to_numpy(est.weights_init), K, host_dtype)
    if est.means_init is not None:
        means = V.check_means_init(_xp.to_numpy(est.means_init), K, D, host_dtype)
    if est.precisions_init is not None:
        prec = structure.check_precisions(np.asarray(_xp.to_numpy(est.precisions_init), dtype=host_dtype), K, D)
    return tuple(_to_device(xp, a, X) for a in (weights, means, prec))


def fit_predict(est, X, sample_weight=None):
    """``GaussianMixture.fit_predict`` on a PyTorch/CuPy array."""
    V.check_estimator_params(est)
    if getattr(est, "prior", None) is not None:
        raise NotImplementedError(
            f"prior={est.prior!r} is supported by the numpy fit only, not on PyTorch/CuPy arrays."
        )
    structure = _check_structure(est)
    xp = _xp.namespace(X)
    with _xp.no_grad(xp):
        return _fit_predict(est, X, sample_weight, structure, xp)


def _fit_predict(est, X, sample_weight, structure, xp):
    X = _check_array(X, xp)
    n, D = X.shape
    if n < 2:
        raise ValueError(f"Found array with {n} sample(s) (shape={tuple(X.shape)}) while a minimum of 2 is required.")
    w = None
    if sample_weight is not None:
        host_dtype = np.float64 if X.dtype == xp.float64 else np.float32
        w = V.check_sample_weight(_xp.to_numpy(sample_weight), n, host_dtype, normalize=True)
    n_eff = n if w is None else int(np.count_nonzero(w))
    V.check_enough_samples(n_eff, est.n_components, w is not None)
    warm = est.warm_start and hasattr(est, "converged_")
    if warm and not _xp.is_array_api_input(est.means_):
        _move_fitted(est, xp, X)  # a numpy model continued on the device
    w = _to_device(xp, w, X)
    inits = _check_inits(est, X, structure, xp)
    est.n_features_in_ = D
    if hasattr(est, "feature_names_in_"):
        del est.feature_names_in_
    reducer = BlockReducer(X, w, _block_rows(est, X, structure))
    rng = check_random_state(est.random_state)

    def params0():
        return est._initial_params(X, w, structure, rng, reducer, inits, xp=xp)

    best = est._em_restarts(reducer, params0, structure)
    est._set_fitted(best, structure)
    return predict(est, X)


def _move_fitted(est, xp, like):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        setattr(est, name, _to_device(xp, getattr(est, name), like))


def _fitted(est, X):
    """X checked and moved to the fitted parameters' namespace/device; the
    namespace, the parameters and the structure."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est)
    structure = _check_structure(est)
    if _xp.is_array_api_input(est.means_):
        xp = _xp.namespace(est.means_)
        if not _xp.is_array_api_input(X):
            X = xp.asarray(np.asarray(X), device=_xp.device(est.means_))
        elif _xp.device(X) != _xp.device(est.means_):
            X = xp.asarray(X, device=_xp.device(est.means_))
        like = est.means_
    else:  # a numpy model applied to device arrays: parameters go to X's device
        xp = _xp.namespace(X)
        like = X
    X = _check_array(X, xp)
    if X.shape[1] != est.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(est).__name__} is expecting "
            f"{est.n_features_in_} features as input."
        )
    dtype = est.means_.dtype if _xp.is_array_api_input(est.means_) else (
        xp.float64 if est.means_.dtype == np.float64 else xp.float32
    )

    def conv(a):
        if _xp.is_array_api_input(a):
            return a
        return xp.asarray(np.asarray(a), dtype=dtype, device=_xp.device(like))

    params = GaussianParams(
        weights=conv(est.weights_), means=conv(est.means_),
        covariances=conv(est.covariances_), precisions_cholesky=conv(est.precisions_cholesky_),
    )
    return X, xp, params, structure


def _map(est, X, structure, fn):
    return BlockReducer(X, None, _block_rows(est, X, structure)).map(fn)


def log_resp(est, X):
    X, xp, params, structure = _fitted(est, X)
    with _xp.no_grad(xp):
        return _map(est, X, structure, lambda Xb: em.log_resp(Xb, params, structure, xp)[1]), xp


def score_samples(est, X):
    X, xp, params, structure = _fitted(est, X)
    with _xp.no_grad(xp):
        return _map(est, X, structure, lambda Xb: em.log_density(Xb, params, structure, xp))


def predict(est, X):
    X, xp, params, structure = _fitted(est, X)
    with _xp.no_grad(xp):
        return _map(est, X, structure, lambda Xb: em.argmax_column(Xb, params, structure, xp))


def predict_proba(est, X):
    lr, xp = log_resp(est, X)
    return xp.exp(lr)


def _weighted_sum(xp, values, sample_weight, n):
    """(sum of values, effective n), weighted by ``sample_weight`` if given, in float64."""
    f64 = _xp.accumulation_dtype(xp, values)
    v = xp.astype(values, f64)
    if sample_weight is None:
        return float(xp.sum(v)), float(n)
    w = V.check_sample_weight(_xp.to_numpy(sample_weight), n, np.float64)
    w = xp.asarray(w, dtype=f64, device=_xp.device(v))
    return float(xp.sum(v * w)), float(xp.sum(w))


def score(est, X, sample_weight=None):
    ll = score_samples(est, X)
    s, n_eff = _weighted_sum(_xp.namespace(ll), ll, sample_weight, ll.shape[0])
    return s / n_eff


def criterion(est, X, sample_weight, kind):
    """'bic', 'aic' or 'icl' as the numpy methods compute them."""
    ll = score_samples(est, X)
    xp = _xp.namespace(ll)
    s, n_eff = _weighted_sum(xp, ll, sample_weight, ll.shape[0])
    p = criteria.n_parameters(est._structure(), *tuple(est.means_.shape))
    if kind == "bic":
        return criteria.bic(s, p, n_eff)
    if kind == "aic":
        return criteria.aic(s, p)
    lr, _ = log_resp(est, X)
    log_max, _ = _weighted_sum(xp, xp.max(lr, axis=1), sample_weight, ll.shape[0])
    return criteria.icl(s, p, n_eff, log_max)


def sample(est, n_samples):
    """Draws on the host with numpy (as the numpy model), returned on the device."""
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1. Got {n_samples!r}.")
    xp = _xp.namespace(est.means_)
    rng = check_random_state(est.random_state)
    weights = _xp.to_numpy(est.weights_).astype(np.float64)
    counts = rng.multinomial(n_samples, weights)
    X = est._structure().draw(rng, _xp.to_numpy(est.means_), _xp.to_numpy(est.covariances_), counts)
    y = np.concatenate([np.full(c, k, dtype=np.int64) for k, c in enumerate(counts)])
    dev = _xp.device(est.means_)
    return xp.asarray(X, dtype=est.means_.dtype, device=dev), xp.asarray(y, device=dev)


__all__ = ["uses_array_api", "fit_predict", "score_samples", "predict", "predict_proba",
           "score", "criterion", "sample"]
