"""``MixtureModel``: one estimator for every component family.

The Gaussian family keeps its own estimator (:class:`emix.GaussianMixture`,
fused kernels, mclust's models, noise, priors, array API); ``MixtureModel(
family='gaussian')`` delegates to it. Every other family goes through the
protocol of :mod:`emix.families.base` and the one EM loop
(:func:`emix.core.loop.run_em`), with the same restart policy, ``n_jobs``,
sample weights, ``warm_start``, callbacks, criteria and ``partial_fit``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _family_blocks, _parallel
from . import _validation as V
from ._restarts import RestartsMixin
from .backends.reduce import DEFAULT_WORKING_MEMORY_MIB, BlockReducer, available_cores, default_block_rows
from .core import criteria
from .core.init import initial_resp
from .core.numerics import logsumexp
from .core.types import FitResult
from .families.base import Mixture, MixtureParams, fit_mixture

#: Constructor parameters passed on to GaussianMixture when family='gaussian'.
_GAUSSIAN_KEYS = ("n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init", "init_params",
                  "random_state", "warm_start", "verbose", "verbose_interval", "working_memory", "callback",
                  "n_threads", "n_jobs")


def resolve_family(family, covariance_type="full", reg_covar=1e-6, family_options=None):
    """The :class:`~emix.families.base.ComponentFamily` for ``family`` (a
    registered name, or a mapping of columns to names for mixed data, or
    'auto'), built with ``family_options``. 'gaussian' returns None (the
    estimator then uses :class:`emix.GaussianMixture`)."""
    from .families import get_family

    options = dict(family_options or {})
    if isinstance(family, str) and family == "gaussian":
        return None
    if isinstance(family, dict) or (isinstance(family, str) and family == "auto"):
        gaussian = dict(options.get("gaussian", {}))
        gaussian.setdefault("reg_covar", reg_covar)  # the estimator's reg_covar reaches Gaussian columns
        options["gaussian"] = gaussian
        return get_family("mixed", columns=family, **options)
    if isinstance(family, str) and family == "student_t":
        options.setdefault("covariance_type", covariance_type)
        options.setdefault("reg_covar", reg_covar)
    if not isinstance(family, str):
        raise TypeError(f"family must be a string or a mapping of columns to family names. Got {family!r}.")
    return get_family(family, **options)


class MixtureModel(RestartsMixin, DensityMixin, BaseEstimator):
    """Mixture of any registered component family, fitted by EM.

    Parameters
    ----------
    n_components : int, default=1
    family : str or dict, default='gaussian'
        'gaussian' (all of :class:`GaussianMixture`'s behaviour and covariance
        types), 'student_t', 'bernoulli', 'categorical', 'poisson', a mapping
        ``{column name or index: family name}`` for mixed data, or 'auto'
        (per column from pandas dtypes; see :mod:`emix.families.mixed`).
    covariance_type : str, default='full'
        For 'gaussian' and 'student_t'.
    tol : float, default=1e-3
        EM stops when the mean log-likelihood improves by less than ``tol``.
    reg_covar : float, default=1e-6
        For 'gaussian' and 'student_t'.
    max_iter : int, default=100
    n_init : int, default=1
        Restarts; the best surviving one is kept (a restart whose component
        empties or collapses is dropped with a DegenerateRestartWarning).
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        Initial responsibilities, computed on the family's numeric view of
        the data (one-hot codes for categorical columns).
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
    verbose : int, default=0
    verbose_interval : int, default=10
    callback : callable or None, default=None
        ``callback(info)`` after every EM iteration (see GaussianMixture).
    family_options : dict or None, default=None
        Options of the family (e.g. ``{'pseudo_count': 1.0}``; Student-t:
        ``{'dof': 'shared'}``); see each family's class in
        :mod:`emix.families`.
    working_memory : float or None, default=None
        MiB for one block of rows' temporaries (None: 64).
    n_threads : int or None, default=None
        Threads over blocks of rows (None: all cores).
    n_jobs : int or None, default=None
        Restarts run in this many joblib processes (same fit whatever n_jobs).
    online_mode, learning_decay, learning_offset, batches_per_pass
        How :meth:`partial_fit` learns (see GaussianMixture).

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    <parameters>_ : ndarray
        The family's fitted parameters, one attribute each (``family_.param_names``):
        e.g. ``rates_`` (poisson), ``probabilities_`` (bernoulli), ``means_``,
        ``covariances_``, ``dof_`` (student_t).
    family_ : ComponentFamily
        The resolved family (for 'auto' and mappings, the column groups).
    encoding_ : object
        What the family learned from the training data about its coding
        (e.g. category labels per column), used at predict time.
    converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_, feature_names_in_
        As in scikit-learn's GaussianMixture.

    Examples
    --------
    >>> import numpy as np
    >>> import emix
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.poisson(1.0, (200, 3)), rng.poisson(8.0, (200, 3))])
    >>> mm = emix.MixtureModel(2, family="poisson", random_state=0).fit(X)
    >>> np.round(np.sort(mm.rates_[:, 0]), 0)
    array([1., 8.])
    """

    def __init__(self, n_components=1, *, family="gaussian", covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", random_state=None, warm_start=False, verbose=0,
                 verbose_interval=10, callback=None, family_options=None, working_memory=None, n_threads=None,
                 n_jobs=None, online_mode="stepwise", learning_decay=0.7, learning_offset=2.0,
                 batches_per_pass=None):
        self.n_components = n_components
        self.family = family
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.callback = callback
        self.family_options = family_options
        self.working_memory = working_memory
        self.n_threads = n_threads
        self.n_jobs = n_jobs
        self.online_mode = online_mode
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.batches_per_pass = batches_per_pass

    # ----------------------------------------------------------- resolution
    def _resolve(self):
        return resolve_family(self.family, self.covariance_type, self.reg_covar, self.family_options)

    def _is_gaussian(self):
        return isinstance(self.family, str) and self.family == "gaussian"

    def _gaussian(self):
        from .estimator import GaussianMixture

        return GaussianMixture(**{k: getattr(self, k) for k in _GAUSSIAN_KEYS})

    def _check_params(self):
        V.check_int("n_components", self.n_components, 1)
        V.check_real("tol", self.tol, 0.0)
        V.check_int("max_iter", self.max_iter, 0)
        V.check_int("n_init", self.n_init, 1)
        V.check_int("verbose", self.verbose, 0)
        V.check_int("verbose_interval", self.verbose_interval, 1)
        from .core.init import INIT_METHODS

        if self.init_params not in INIT_METHODS or self.init_params == "hierarchical":
            raise ValueError("init_params must be one of ['kmeans', 'k-means++', 'random', 'random_from_data'] "
                             f"for this family. Got {self.init_params!r}.")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise TypeError(f"warm_start must be a bool. Got {self.warm_start!r}.")
        if self.n_threads is not None:
            V.check_int("n_threads", self.n_threads, 1)
        V.check_n_jobs(self.n_jobs)
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback must be callable or None. Got {self.callback!r}.")
        if self.family_options is not None and not isinstance(self.family_options, dict):
            raise TypeError(f"family_options must be a dict or None. Got {self.family_options!r}.")

    # ------------------------------------------------------------ data edge
    def _encode(self, X, reset):
        """``(family, X_float, meta)``: the family's float view of ``X`` and,
        at fit, what it learned and the family configured with it."""
        family = self._resolve() if reset else self.family_
        if getattr(family, "raw_input", False):
            ndim = len(getattr(X, "shape", None) or np.shape(np.asarray(X, dtype=object)))
            if ndim == 1:
                raise ValueError("Expected a 2D table, got a 1D array instead. Reshape your data either using "
                                 "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) "
                                 "if it contains a single sample.")
            validate_data(self, X, reset=reset, skip_check_array=True)
            if reset:
                self.n_features_in_ = _n_columns(X)
            elif _n_columns(X) != self.n_features_in_:
                raise ValueError(f"X has {_n_columns(X)} features, but {type(self).__name__} is expecting "
                                 f"{self.n_features_in_} features as input.")
            Xf, meta = family.encode(X, None if reset else self.encoding_)
        else:
            Xa = validate_data(self, X, dtype=[np.float64, np.float32], reset=reset,
                               ensure_all_finite=not family.allows_missing)
            Xf, meta = family.encode(Xa.astype(np.float64, copy=False), None if reset else self.encoding_)
        if reset:  # the family configured with what it learned (a new instance; families are immutable)
            family = family.with_meta(meta)
        return family, Xf, meta

    def _reducer(self, X, w=None):
        K, D = self.n_components, X.shape[1]
        threads = available_cores() if self.n_threads is None else int(self.n_threads)
        budget = DEFAULT_WORKING_MEMORY_MIB if self.working_memory is None else self.working_memory
        rows = default_block_rows(X.shape[0], 6 * K + 2 * D, 8, budget / threads)
        return BlockReducer(X, w, rows, n_threads=_parallel.capped_block_threads(threads))

    # ---------------------------------------------------------- restarts API
    def _runner(self, prior):
        return fit_mixture, {}

    def _singular_reason(self, params, structure):
        """The family's verdict on a restart's parameters (:mod:`emix._singular`),
        or None (a family without the hook is never singular)."""
        family = getattr(structure, "family", None)
        check = getattr(family, "singular_reason", None)
        if check is None:
            return None
        return check(params.components, params.weights, getattr(self, "_n_fit", None))

    def _params(self):
        comp = {name: getattr(self, name + "_") for name in self.family_.param_names}
        return MixtureParams(weights=self.weights_, components=comp)

    def _initial_params(self, mixture, X, w, rng):
        F = mixture.family.init_features(X)
        resp = initial_resp(F, w, self.n_components, self.init_params, rng).astype(np.float64)
        if np.any(resp.sum(axis=1) == 0):
            # 'k-means++' and 'random_from_data' give responsibilities to K rows only, which for a
            # family without a covariance floor makes zero rates/probabilities: every row goes to
            # the nearest chosen row instead (one k-means assignment step)
            centers = (resp.T @ F) / np.maximum(resp.sum(axis=0), 1e-300)[:, None]
            d2 = (F * F).sum(axis=1)[:, None] - 2.0 * F @ centers.T + (centers * centers).sum(axis=1)[None, :]
            # chosen rows that coincide (common in discrete data) tie for many rows: a tied row goes to
            # one of its nearest centres at random, not always to the first
            low = d2.min(axis=1, keepdims=True)
            tied = d2 <= low + 1e-12 * np.maximum(np.abs(low), 1.0)
            if np.any(tied.sum(axis=1) > 1):
                labels = np.argmax(np.where(tied, rng.random_sample(d2.shape), -1.0), axis=1)
            else:
                labels = np.argmin(d2, axis=1)
            resp = np.eye(self.n_components)[labels]
        return mixture.m_step(mixture.stats_from_resp(X, w, resp, None), None)

    # --------------------------------------------------------------- fitting
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters with EM (``n_init`` restarts, best kept).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Also a block source or a Dask array/DataFrame (out of core; see
            :mod:`emix._family_blocks` and docs/cluster.md).
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; a weight of 2 counts a row twice.

        Returns
        -------
        self
        """
        if not self._is_gaussian() and _family_blocks.data_kind(X) is not None:  # out of core, Dask
            return _family_blocks.fit(self, X, sample_weight)
        self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of each row."""
        if self._is_gaussian():
            gm = self._gaussian()
            if self.warm_start and hasattr(self, "_gm"):
                gm = self._gm
                gm.set_params(**{k: getattr(self, k) for k in _GAUSSIAN_KEYS})
            labels = gm.fit_predict(X, sample_weight=sample_weight)
            self._adopt_gaussian(gm)
            return labels
        if _family_blocks.data_kind(X) is not None:
            return _family_blocks.infer(_family_blocks.fit(self, X, sample_weight), "predict", X)
        self._check_params()
        warm = self.warm_start and hasattr(self, "converged_") and hasattr(self, "family_")
        family, Xf, meta = self._encode(X, reset=not warm)
        if Xf.shape[0] < 2:
            raise ValueError(f"Found {Xf.shape[0]} sample(s) (shape={Xf.shape}) while a minimum of 2 is required.")
        w = V.check_sample_weight(sample_weight, Xf.shape[0], np.float64, normalize=True)
        n_eff = Xf.shape[0] if w is None else int(np.count_nonzero(w))
        V.check_enough_samples(n_eff, self.n_components, w is not None)
        self._n_fit = int(Xf.shape[0])  # rows, for the singular-fit rule (emix._singular)
        mixture = Mixture(family)
        reducer = self._reducer(Xf, w)
        rng = check_random_state(self.random_state)
        self.family_, self.encoding_ = family, meta
        with _parallel.one_blas_thread():
            best = self._em_restarts(reducer, lambda: self._initial_params(mixture, Xf, w, rng), mixture,
                                     parallel=True)
        self._set_fitted(best, family)
        return self._by_blocks(Xf, lambda Xb: np.argmax(mixture.log_resp(Xb, self._params())[1], axis=1))

    def _set_fitted(self, result, family):
        p = result.params
        # a refit with another family leaves none of the previous family's attributes behind
        # (family_ is already the new family here, so the previous names are kept on the side)
        for name in getattr(self, "_param_attrs", ()):
            if name not in family.param_names and hasattr(self, name + "_"):
                delattr(self, name + "_")
        self._param_attrs = tuple(family.param_names)
        self.weights_ = p.weights
        for name in family.param_names:
            setattr(self, name + "_", p.components[name])
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.lower_bound_ = float(result.lower_bound)
        self.lower_bounds_ = list(result.history)

    def _adopt_gaussian(self, gm):
        self._gm = gm
        for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_", "converged_",
                     "n_iter_", "lower_bound_", "lower_bounds_", "n_features_in_", "feature_names_in_"):
            if hasattr(gm, name):
                setattr(self, name, getattr(gm, name))
            elif hasattr(self, name):
                delattr(self, name)

    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the model with one batch of rows (online EM; see
        :meth:`GaussianMixture.partial_fit` and :mod:`emix.online`)."""
        from . import online

        if self._is_gaussian():
            gm = getattr(self, "_gm", None) or self._gaussian()
            gm.partial_fit(X, sample_weight=sample_weight)
            self._adopt_gaussian(gm)
            return self
        if _family_blocks.data_kind(X) == "source":
            raise TypeError("partial_fit takes one batch of rows (an array or DataFrame), not a block source; call "
                            "partial_fit on each block, or fit(source) for batch EM over all blocks.")
        self._check_params()
        online.check_online_params(self)
        first = not hasattr(self, "weights_")
        family, Xf, meta = self._encode(X, reset=first)
        if first:
            self.family_, self.encoding_ = family, meta
        w = V.check_sample_weight(sample_weight, Xf.shape[0], np.float64)
        mixture = Mixture(family)
        state = getattr(self, "_online", None)
        if state is not None and (state.mode != self.online_mode or first or state.params.weights is not self.weights_):
            state = None
        if state is None:
            if first:
                n_eff = Xf.shape[0] if w is None else int(np.count_nonzero(w))
                V.check_enough_samples(n_eff, self.n_components, w is not None)
                params = self._initial_params(mixture, Xf, w, check_random_state(self.random_state))
            else:
                params = self._params()
            state = online.OnlineState(mode=self.online_mode, params=params)
        batch = self._reducer(Xf, w)(lambda Xb, wb: mixture.e_step(Xb, wb, state.params))
        params, n_iter, converged, lower_bound = online.absorb_batch(
            state, batch, self, m_step=lambda S: mixture.m_step(S, state.params),
            bound=online.mean_loglik, first=first)
        self._set_fitted(FitResult(params, n_iter, converged, lower_bound, ()), family)
        self.lower_bounds_ = state.history
        state.params = self._params()
        self._online = state
        return self

    # ------------------------------------------------------------- inference
    def _by_blocks(self, Xf, fn):
        return self._reducer(Xf).map(fn)

    def _prepare(self, X):
        check_is_fitted(self)
        family, Xf, _ = self._encode(X, reset=False)
        return Mixture(family), Xf

    def _weighted_log_prob(self, X):
        mixture, Xf = self._prepare(X)
        params = self._params()
        return self._by_blocks(Xf, lambda Xb: mixture.weighted_log_prob(Xb, params))

    def score_samples(self, X):
        """Log density ``log p(x)`` of each row of ``X`` (``-inf`` where no
        component can produce the row)."""
        if self._is_gaussian():
            check_is_fitted(self)
            return self._gm.score_samples(X)
        if _family_blocks.data_kind(X) is not None:
            return _family_blocks.infer(self, "score_samples", X)
        return logsumexp(self._weighted_log_prob(X), axis=1)

    def score(self, X, y=None, sample_weight=None):
        """Mean (weighted) log-likelihood of ``X``."""
        if self._is_gaussian():
            check_is_fitted(self)
            return self._gm.score(X, sample_weight=sample_weight)
        if _family_blocks.data_kind(X) is not None:
            return _family_blocks.score(self, X, sample_weight)
        ll = self.score_samples(X)
        w = V.check_sample_weight(sample_weight, ll.shape[0], np.float64)
        return float(np.average(ll, weights=w))

    def predict_proba(self, X):
        """Posterior probability of each component for each row."""
        if self._is_gaussian():
            check_is_fitted(self)
            return self._gm.predict_proba(X)
        if _family_blocks.data_kind(X) is not None:
            return _family_blocks.infer(self, "predict_proba", X)
        mixture, Xf = self._prepare(X)
        params = self._params()
        return self._by_blocks(Xf, lambda Xb: np.exp(mixture.log_resp(Xb, params)[1]))

    def predict(self, X):
        """Most probable component of each row."""
        if self._is_gaussian():
            check_is_fitted(self)
            return self._gm.predict(X)
        if _family_blocks.data_kind(X) is not None:
            return _family_blocks.infer(self, "predict", X)
        mixture, Xf = self._prepare(X)
        params = self._params()
        return self._by_blocks(Xf, lambda Xb: np.argmax(mixture.log_resp(Xb, params)[1], axis=1))

    def sample(self, n_samples=1):
        """Draw ``n_samples`` rows; returns ``(X, y)`` with ``y`` the component
        of each row (rows grouped by component)."""
        check_is_fitted(self)
        if self._is_gaussian():
            return self._gm.sample(n_samples)
        if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples!r}. It must be an integer >= 1.")
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_.astype(np.float64) / self.weights_.sum())
        X = self.family_.sample(self._params().components, counts, rng)
        y = np.concatenate([np.full(c, k, dtype=int) for k, c in enumerate(counts)])
        return self.family_.decode_sample(X, self.encoding_), y

    # -------------------------------------------------------------- criteria
    def _n_parameters(self):
        if self._is_gaussian():
            return self._gm._n_parameters()
        return Mixture(self.family_).n_parameters(self._params())

    def _loglik_sum(self, X, sample_weight):
        ll = self.score_samples(X).astype(np.float64)
        w = V.check_sample_weight(sample_weight, ll.shape[0], np.float64)
        n_eff = ll.shape[0] if w is None else float(w.sum())
        return (ll.sum() if w is None else ll @ w), n_eff, w

    def bic(self, X, sample_weight=None):
        """Bayesian information criterion ``-2 log L + p log n`` (lower is better)."""
        if self._is_gaussian():
            check_is_fitted(self)
            return self._gm.bic(X, sample_weight)
        if _family_blocks.data_kind(X) is not None:
            return _family_blocks.criterion(self, "bic", X, sample_weight)
        ll, n_eff, _ = self._loglik_sum(X, sample_weight)
        return criteria.bic(ll, self._n_parameters(), n_eff)

    def aic(self, X, sample_weight=None):
        """Akaike information criterion ``-2 log L + 2 p`` (lower is better)."""
        if self._is_gaussian():
            check_is_fitted(self)
            return self._gm.aic(X, sample_weight)
        if _family_blocks.data_kind(X) is not None:
            return _family_blocks.criterion(self, "aic", X, sample_weight)
        ll, _, _ = self._loglik_sum(X, sample_weight)
        return criteria.aic(ll, self._n_parameters())

    def icl(self, X, sample_weight=None):
        """Integrated completed likelihood ``BIC - 2 sum_n log max_k r_nk`` (lower is better)."""
        if self._is_gaussian():
            check_is_fitted(self)
            return self._gm.icl(X, sample_weight)
        if _family_blocks.data_kind(X) is not None:
            return _family_blocks.criterion(self, "icl", X, sample_weight)
        ll, n_eff, w = self._loglik_sum(X, sample_weight)
        mixture, Xf = self._prepare(X)
        params = self._params()
        log_max = self._by_blocks(Xf, lambda Xb: np.max(mixture.log_resp(Xb, params)[1], axis=1))
        s = log_max.sum() if w is None else log_max @ w
        return criteria.icl(ll, self._n_parameters(), n_eff, s)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        family = None if self._is_gaussian() else _safe_family(self)
        tags.input_tags.allow_nan = bool(getattr(family, "allows_missing", False))
        tags.input_tags.positive_only = bool(getattr(family, "positive_only", False))
        return tags


def _safe_family(est):
    try:
        return est._resolve()
    except (TypeError, ValueError):
        return None


def _n_columns(X):
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2:
        return int(shape[1])
    arr = np.asarray(X, dtype=object)
    if arr.ndim != 2:
        raise ValueError(f"Expected a 2-D table (n_samples, n_features). Got an array of shape {arr.shape}.")
    return int(arr.shape[1])


__all__ = ["MixtureModel", "resolve_family"]
