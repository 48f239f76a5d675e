"""Variational Bayesian Gaussian mixture: :class:`BayesianGaussianMixture`.

A drop-in for :class:`sklearn.mixture.BayesianGaussianMixture` built on
emix's core: the variational E-step is emix's Gaussian E-step with
"effective" parameters and yields the same additive statistics as EM, so
blocks of rows, the thread pool, sample weights, restarts and out-of-core
fitting work as for :class:`emix.GaussianMixture`. The formulas and the
bound are in :mod:`emix.core.vb`.
"""

from __future__ import annotations

import numbers
from dataclasses import replace

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _estimator_common as _common
from . import _parallel
from . import _validation as V
from ._restarts import RestartsMixin
from .backends import _xp
from .core import em, vb
from .core.init import initial_resp
from .estimator import GaussianMixture
from .families.gaussian import get_structure

#: A component counts in ``n_effective_components_`` when its expected
#: weight (``weights_``) exceeds this fraction.
EFFECTIVE_WEIGHT_THRESHOLD = 1e-2


def _host(a):
    return _xp.to_numpy(a) if _xp.is_array_api_input(a) else a


def _exp(a):
    return np.exp(a) if isinstance(a, np.ndarray) else _xp.namespace(a).exp(a)


def _is_real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


class BayesianGaussianMixture(RestartsMixin, DensityMixin, BaseEstimator):
    """Variational Bayesian estimation of a Gaussian mixture.

    scikit-learn's :class:`~sklearn.mixture.BayesianGaussianMixture` with the
    same constructor parameters, defaults, methods and fitted attributes, and
    from the same initial responsibilities the same fit (to rounding). The
    posterior over the weights, means and precisions is approximated by
    coordinate ascent on the evidence lower bound (Bishop 2006, section 10.2;
    Blei & Jordan 2006 for the Dirichlet process); components the data do
    not need keep an expected weight near zero. See :mod:`emix.core.vb` for
    every update and for the bound, and docs/bayesian.md for when to prefer
    it to BIC selection.

    In addition it accepts ``sample_weight`` (a weight of 2 counts a row
    twice: the weights are not rescaled, since the prior's strength is
    measured against the total weight), fits Dask arrays and block sources
    out of core, runs restarts in parallel (``n_jobs``) and blocks of rows
    on a thread pool (``n_threads``), keeps float32 data in float32 with
    statistics centered and accumulated in float64, and reports the
    effective number of components. PyTorch and CuPy arrays are fitted on
    their device (the E-step there, the K x D x D M-step on the host; see
    docs/gpu.md), with fitted arrays and outputs on that device.

    Parameters
    ----------
    n_components : int, default=1
        Upper bound on the number of components.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        Iterations stop when the lower bound (a total over rows, not a mean)
        changes by less than ``tol``.
    reg_covar : float, default=1e-6
        Added to the diagonal of each component's sample covariance ``S_k``.
    max_iter : int, default=100
    n_init : int, default=1
        Restarts; the one with the highest lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are drawn (also emix's
        'hierarchical').
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}, \
default='dirichlet_process'
        Stick-breaking (truncated Dirichlet process) or symmetric Dirichlet
        prior on the weights.
    weight_concentration_prior : float > 0 or None, default=None
        ``gamma_0``; None means ``1 / n_components``. Smaller values favour
        fewer active components.
    mean_precision_prior : float > 0 or None, default=None
        ``beta_0``; None means 1.
    mean_prior : array-like of shape (n_features,) or None, default=None
        ``m_0``; None means the (weighted) mean of X.
    degrees_of_freedom_prior : float > n_features - 1 or None, default=None
        ``nu_0``; None means ``n_features``.
    covariance_prior : float or array-like or None, default=None
        ``Psi_0 = W_0^-1``: (D, D) for 'full' and 'tied', (D,) for 'diag', a
        float for 'spherical'. None means the (weighted, ``sum w - 1``
        denominator) covariance of X, its diagonal, or the mean of the
        diagonal.
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
    verbose : int, default=0
        1 prints each restart and, at the end, the effective number of
        components; 2 also every ``verbose_interval`` iterations.
    verbose_interval : int, default=10
    working_memory : float or None, default=None
        MiB for the temporaries of one block of rows (None: 64). (emix.)
    callback : callable or None, default=None
        Called after every iteration with a dict (``init``, ``n_init``,
        ``n_iter``, ``max_iter``, ``lower_bound``, ``change``). (emix.)
    n_threads : int or None, default=None
        Threads over blocks of rows (None: every core). (emix.)
    n_jobs : int or None, default=None
        Restarts run at the same time in joblib workers; the fit does not
        depend on it. (emix.)
    online_mode : {'stepwise', 'exact'}, default='stepwise'
        :meth:`partial_fit`: stochastic variational inference (Hoffman et
        al. 2013), or one variational iteration per pass of
        ``batches_per_pass`` batches. (emix, as GaussianMixture.)
    learning_decay : float in (0.5, 1], default=0.7
        Stochastic variational inference's step sizes are
        ``rho_t = (t + learning_offset) ** -learning_decay`` (``t`` =
        batches absorbed before this one, the first at ``t = 1``; capped at
        1), Robbins-Monro steps for ``learning_decay`` in (0.5, 1]. (emix.)
    learning_offset : float >= 0, default=2.0
        Larger values down-weight the early batches. (emix.)
    batches_per_pass : int or None, default=None
        Batches in one pass over the data (required by
        ``online_mode='exact'``). (emix.)
    total_samples : float > 0 or None, default=None
        ``N``, the size (total weight) of the data the stream comes from:
        stochastic variational inference weighs each batch of weight ``|B|``
        by ``N / |B|``, as if it were the whole data set repeated, which
        sets how strongly the data outweigh the prior. None means the total
        weight of the batches seen so far (the right value on a single pass
        over a stream; on repeated passes over a finite data set pass its
        size). (emix; scikit-learn's LatentDirichletAllocation names the
        same hint ``total_samples``.)

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Expected mixing weights ``E[pi_k]`` (normalized).
    means_ : ndarray of shape (n_components, n_features)
        ``m_k``.
    covariances_, precisions_, precisions_cholesky_ : ndarray
        ``W_k^-1 / nu_k``, its inverse ``E[Lambda_k] = nu_k W_k`` and the
        inverse Cholesky factor, in scikit-learn's shapes.
    weight_concentration_ : ndarray or tuple of two ndarrays
    mean_precision_ : ndarray of shape (n_components,)
    degrees_of_freedom_ : ndarray of shape (n_components,) (a float for 'tied')
    weight_concentration_prior_, mean_precision_prior_, mean_prior_,
    degrees_of_freedom_prior_, covariance_prior_ :
        The priors used.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Evidence lower bound (up to constants) of the kept run.
    lower_bounds_ : list of float
        The lower bound at each iteration of the kept run (never decreasing,
        to rounding, for ``reg_covar=0``).
    n_effective_components_ : int
        Components whose expected weight exceeds
        ``EFFECTIVE_WEIGHT_THRESHOLD`` (0.01).
    n_features_in_ : int
    feature_names_in_ : ndarray

    References
    ----------
    Bishop, C. M. (2006). Pattern Recognition and Machine Learning, ch. 10.
    Blei, D. M. and Jordan, M. I. (2006). Variational inference for Dirichlet
    process mixtures. Bayesian Analysis 1(1), 121-144.

    Examples
    --------
    >>> import numpy as np
    >>> from emix import BayesianGaussianMixture
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.normal(0, 1, (200, 2)), rng.normal(8, 1, (200, 2))])
    >>> bgm = BayesianGaussianMixture(n_components=6, random_state=0, max_iter=500).fit(X)
    >>> bgm.n_effective_components_
    2
    """

    def __init__(
        self,
        *,
        n_components=1,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        working_memory=None,
        callback=None,
        n_threads=None,
        n_jobs=None,
        online_mode="stepwise",
        learning_decay=0.7,
        learning_offset=2.0,
        batches_per_pass=None,
        total_samples=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.working_memory = working_memory
        self.callback = callback
        self.n_threads = n_threads
        self.n_jobs = n_jobs
        self.online_mode = online_mode
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.batches_per_pass = batches_per_pass
        self.total_samples = total_samples

    # helpers shared with GaussianMixture (plain functions of these attributes)
    _n_threads = GaussianMixture._n_threads
    _reducer = GaussianMixture._reducer
    _component_means = staticmethod(GaussianMixture._component_means)
    _out_of_core_kind = staticmethod(GaussianMixture._out_of_core_kind)

    def _structure(self):
        return get_structure(self.covariance_type)

    # ------------------------------------------------------------ checking
    def _check_params(self):
        V.check_estimator_params(self)
        if self.covariance_type not in vb.STRUCTURES:
            raise ValueError(
                f"covariance_type must be one of {list(vb.STRUCTURES)}. Got {self.covariance_type!r}."
            )
        if self.weight_concentration_prior_type not in vb.PRIOR_TYPES:
            raise ValueError(
                f"weight_concentration_prior_type must be one of {list(vb.PRIOR_TYPES)}. "
                f"Got {self.weight_concentration_prior_type!r}."
            )
        for name in ("weight_concentration_prior", "mean_precision_prior", "degrees_of_freedom_prior"):
            value = getattr(self, name)
            if value is None:
                continue
            if not _is_real(value):
                raise TypeError(f"{name} must be a float > 0 or None. Got {value!r}.")
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite float > 0 or None. Got {value!r}.")

    def _resolve_prior(self, D, mean, cov, dtype) -> vb.VBPrior:
        """The priors (scikit-learn's ``_check_parameters``), from the
        weighted ``mean`` and covariance ``cov`` of the data (each only used
        when its prior is None; ``cov`` may be a callable giving it)."""
        K = self.n_components
        gamma0 = 1.0 / K if self.weight_concentration_prior is None else float(self.weight_concentration_prior)
        beta0 = 1.0 if self.mean_precision_prior is None else float(self.mean_precision_prior)
        if self.mean_prior is None:
            m0 = np.asarray(mean, dtype=dtype)
        else:
            m0 = np.asarray(self.mean_prior, dtype=np.float64)
            if m0.shape != (D,):
                raise ValueError(f"The parameter 'means' should have the shape of ({D},), but got {m0.shape}.")
            if not np.all(np.isfinite(m0)):
                raise ValueError("mean_prior contains NaN or infinite values.")
        if self.degrees_of_freedom_prior is None:
            nu0 = float(D)
        elif self.degrees_of_freedom_prior > D - 1.0:
            nu0 = float(self.degrees_of_freedom_prior)
        else:
            raise ValueError(
                f"The parameter 'degrees_of_freedom_prior' should be greater than {D - 1}, "
                f"but got {self.degrees_of_freedom_prior:.3f}."
            )
        ct = self.covariance_type
        if self.covariance_prior is None:
            C = np.atleast_2d(np.asarray(cov() if callable(cov) else cov, dtype=np.float64))
            psi0 = {"full": C, "tied": C, "diag": np.diag(C).copy(), "spherical": float(np.diag(C).mean())}[ct]
        elif ct in ("full", "tied"):
            psi0 = np.asarray(self.covariance_prior, dtype=np.float64)
            if psi0.shape != (D, D):
                raise ValueError(
                    f"The parameter '{ct} covariance_prior' should have the shape of ({D}, {D}), "
                    f"but got {psi0.shape}."
                )
            if not (np.all(np.isfinite(psi0)) and np.allclose(psi0, psi0.T)
                    and np.all(np.linalg.eigvalsh(psi0) > 0.0)):
                raise ValueError(f"'{ct} covariance_prior' should be symmetric, positive-definite.")
        elif ct == "diag":
            psi0 = np.asarray(self.covariance_prior, dtype=np.float64)
            if psi0.shape != (D,):
                raise ValueError(
                    f"The parameter 'diag covariance_prior' should have the shape of ({D},), "
                    f"but got {psi0.shape}."
                )
            if not (np.all(np.isfinite(psi0)) and np.all(psi0 > 0)):
                raise ValueError("'diag covariance_prior' should be positive.")
        else:
            if not _is_real(self.covariance_prior) or not (np.isfinite(self.covariance_prior)
                                                           and self.covariance_prior > 0):
                raise ValueError(
                    f"'spherical covariance_prior' should be a float > 0. Got {self.covariance_prior!r}."
                )
            psi0 = float(self.covariance_prior)
        return vb.VBPrior(self.weight_concentration_prior_type, gamma0, beta0, m0, nu0, psi0)

    def _set_prior(self, prior: vb.VBPrior):
        if prior.prior_type == "dirichlet_process":
            self.weight_concentration_prior_ = prior.weight_concentration
        else:
            self.weight_concentration_prior_ = prior.weight_concentration
        self.mean_precision_prior_ = prior.mean_precision
        self.mean_prior_ = prior.mean
        self.degrees_of_freedom_prior_ = prior.degrees_of_freedom
        self.covariance_prior_ = prior.covariance

    @staticmethod
    def _moments(X, w, block_rows=65536):
        """Weighted mean and covariance of the rows (frequency weights: the
        covariance divides by ``sum w - 1``, so integer weights equal
        repeated rows; without weights ``np.cov``'s value). Two passes over
        blocks of ``block_rows`` rows in float64, so no (n, D) temporary.
        The covariance is a callable, evaluated only when it is needed."""
        n = X.shape[0]
        blocks = range(0, n, block_rows)
        wf = None if w is None else np.asarray(w, dtype=np.float64)
        sw = float(n) if wf is None else float(wf.sum())
        total = np.zeros(X.shape[1])
        for i in blocks:
            Xb = X[i:i + block_rows].astype(np.float64)
            total += Xb.sum(axis=0) if wf is None else wf[i:i + block_rows] @ Xb
        mean = total / sw

        def cov():
            if not sw > 1.0:
                raise ValueError(
                    "The default covariance_prior is the weighted covariance of X, which needs "
                    f"sum(sample_weight) > 1 (it divides by sum(w) - 1). Got sum {sw!r}. Pass "
                    "covariance_prior, or weights that count rows."
                )
            C = np.zeros((X.shape[1], X.shape[1]))
            for i in blocks:
                Zb = X[i:i + block_rows].astype(np.float64) - mean
                C += (Zb.T if wf is None else Zb.T * wf[i:i + block_rows]) @ Zb
            return C / (sw - 1.0)

        return mean.astype(X.dtype), cov

    # ------------------------------------------------------------- fitting
    def _initial_params(self, X, w, structure, rng, reducer, prior):
        """scikit-learn's ``_initialize``: the variational M-step on the
        statistics of the initial responsibilities."""
        resp = initial_resp(X, w, self.n_components, self.init_params, rng)
        shift = self._component_means(X, w, resp, reducer, np)
        stats = None
        start = 0
        for Xb, wb in reducer.blocks():
            stop = start + Xb.shape[0]
            s = em.stats_from_resp(Xb, wb, resp[start:stop], shift, structure)
            stats = s if stats is None else stats + s
            start = stop
        return vb.m_step(stats, structure, prior, self.reg_covar, X.dtype)

    def _runner(self, prior):
        device = getattr(self, "_device_fit", None)  # (xp, like) during _fit_predict_xp
        if device is not None:
            return vb.fit, {"prior": prior, "xp": device[0], "like": device[1]}
        return vb.fit, {"prior": prior}

    def _params(self):
        """The fitted posterior as numpy :class:`~emix.core.vb.VBParams` (host
        copies when the model was fitted on PyTorch/CuPy arrays)."""
        host = _host if _xp.is_array_api_input(self.means_) else (lambda a: a)
        wc = self.weight_concentration_
        return vb.VBParams(
            weight_concentration=tuple(host(a) for a in wc) if isinstance(wc, tuple) else host(wc),
            mean_precision=host(self.mean_precision_), means=host(self.means_),
            degrees_of_freedom=host(self.degrees_of_freedom_), covariances=host(self.covariances_),
            precisions_cholesky=host(self.precisions_cholesky_),
        )

    # ------------------------------------------------------- array API path
    def _moments_xp(self, X, w, xp, block_rows=65536):
        """:meth:`_moments` on a PyTorch/CuPy array: float64 sums over blocks on
        X's device; the (D,) mean and (D, D) covariance come back as numpy."""
        n, D = X.shape
        f64 = _xp.accumulation_dtype(xp, X)
        wf = None if w is None else xp.astype(w, f64)
        sw = float(n) if wf is None else float(xp.sum(wf))
        total = xp.zeros((D,), dtype=f64, device=_xp.device(X))
        for i in range(0, n, block_rows):
            Xb = xp.astype(X[i:i + block_rows], f64)
            total = total + (xp.sum(Xb, axis=0) if wf is None else wf[i:i + block_rows] @ Xb)
        mean = total / sw

        def cov():
            if not sw > 1.0:
                raise ValueError(
                    "The default covariance_prior is the weighted covariance of X, which needs "
                    f"sum(sample_weight) > 1 (it divides by sum(w) - 1). Got sum {sw!r}. Pass "
                    "covariance_prior, or weights that count rows."
                )
            C = xp.zeros((D, D), dtype=f64, device=_xp.device(X))
            for i in range(0, n, block_rows):
                Zb = xp.astype(X[i:i + block_rows], f64) - mean
                C = C + (Zb.T if wf is None else Zb.T * wf[i:i + block_rows]) @ Zb
            return _xp.to_numpy(C) / (sw - 1.0)

        return _xp.to_numpy(mean), cov

    def _fit_predict_xp(self, X, sample_weight):
        """``fit_predict`` on a PyTorch/CuPy array (see :mod:`emix.backends.array_api`
        for the conventions, which are GaussianMixture's). The E-step runs on
        X's device through the Gaussian kernels with the effective parameters
        of :func:`emix.core.vb.effective_params`; its statistics (K x D x D
        numbers) come to the host each iteration, where the variational
        M-step and the bound run with the numpy code, so the fit equals the
        numpy fit from the same start to rounding. Fitted arrays are put on
        X's device: means, covariances, precisions and weights in X's dtype,
        the K-sized posterior parameters in float64 (as the numpy fit)."""
        from .backends import array_api as _aa
        from .backends.reduce import BlockReducer

        self._check_params()
        structure = self._structure()
        xp = _xp.namespace(X)
        with _xp.no_grad(xp):
            X = _aa._check_array(X, xp)
            n, D = X.shape
            if n < 2:
                raise ValueError(
                    f"Found array with {n} sample(s) (shape={tuple(X.shape)}) while a minimum of 2 is required."
                )
            host_dtype = np.float64 if X.dtype == xp.float64 else np.float32
            w = None
            if sample_weight is not None:  # not rescaled: the prior's strength is against sum(w)
                w = V.check_sample_weight(_xp.to_numpy(sample_weight), n, host_dtype)
            n_eff = n if w is None else int(np.count_nonzero(w))
            V.check_enough_samples(n_eff, self.n_components, w is not None)
            w = _aa._to_device(xp, w, X)
            mean, cov = self._moments_xp(X, w, xp)
            prior = self._resolve_prior(D, mean.astype(host_dtype), cov, host_dtype)
            self._set_prior(prior)
            self.n_features_in_ = D
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            reducer = BlockReducer(X, w, _aa._block_rows(self, X, structure))
            rng = check_random_state(self.random_state)

            def params0():
                resp = initial_resp(X, w, self.n_components, self.init_params, rng, xp=xp)
                shift = self._component_means(X, w, resp, reducer, xp)
                stats = None
                start = 0
                for Xb, wb in reducer.blocks():
                    stop = start + Xb.shape[0]
                    s = em.stats_from_resp(Xb, wb, resp[start:stop], shift, structure, xp=xp)
                    stats = s if stats is None else stats + s
                    start = stop
                return vb.m_step(vb.host_stats(stats), structure, prior, self.reg_covar, host_dtype)

            self._device_fit = (xp, X)
            try:
                best = self._em_restarts(reducer, params0, structure, prior=prior)
            finally:
                del self._device_fit
            self._set_fitted(best, structure)
            self._put_on_device(xp, X)
            return self.predict(X)

    def _put_on_device(self, xp, like):
        """The fitted arrays (numpy after :meth:`_set_fitted`) on ``like``'s
        namespace and device."""
        dev = _xp.device(like)
        f64 = _xp.accumulation_dtype(xp, like)

        def put(a, dtype):
            if not isinstance(a, np.ndarray):
                return a  # 'tied' degrees of freedom, a float
            return xp.asarray(np.ascontiguousarray(a), dtype=dtype, device=dev)

        for name in ("means_", "covariances_", "precisions_cholesky_", "precisions_", "weights_"):
            setattr(self, name, put(getattr(self, name), like.dtype))
        for name in ("mean_precision_", "degrees_of_freedom_"):
            setattr(self, name, put(getattr(self, name), f64))
        wc = self.weight_concentration_
        self.weight_concentration_ = tuple(put(np.asarray(a), f64) for a in wc) if isinstance(wc, tuple) \
            else put(wc, f64)

    def _infer_xp(self, X, fn):
        """``fn(X_block, effective params, structure)`` over blocks of ``X`` on a
        device: X moved to the fitted parameters' device (a model fitted on
        numpy applied to PyTorch/CuPy input: the parameters go to X's)."""
        from .backends import array_api as _aa
        from .backends.reduce import BlockReducer

        structure = self._structure()
        if _xp.is_array_api_input(self.means_):
            xp = _xp.namespace(self.means_)
            dev = _xp.device(self.means_)
            if not _xp.is_array_api_input(X):
                X = xp.asarray(np.asarray(X), device=dev)
            elif _xp.device(X) != dev:
                X = xp.asarray(X, device=dev)
            dtype = self.means_.dtype
        else:
            xp = _xp.namespace(X)
            dtype = xp.float64 if self.means_.dtype == np.float64 else xp.float32
        with _xp.no_grad(xp):
            X = _aa._check_array(X, xp)
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
            X = xp.astype(X, dtype)
            eff = vb.device_params(self._effective(), xp, X)
            return BlockReducer(X, None, _aa._block_rows(self, X, structure)).map(lambda Xb: fn(Xb, eff, structure))

    def _set_fitted(self, result, structure):
        p = result.params
        kind = self.weight_concentration_prior_type
        self.weight_concentration_ = p.weight_concentration
        self.mean_precision_ = p.mean_precision
        self.means_ = p.means
        self.degrees_of_freedom_ = p.degrees_of_freedom
        self.covariances_ = p.covariances
        self.precisions_cholesky_ = p.precisions_cholesky
        self.precisions_ = structure.precisions(p.precisions_cholesky)
        self.weights_ = vb.expected_weights(p.weight_concentration, kind).astype(p.means.dtype)
        self.converged_ = bool(result.converged)
        self.n_iter_ = result.n_iter
        self.lower_bound_ = result.lower_bound
        self.lower_bounds_ = list(result.history)
        self.n_effective_components_ = int(np.sum(self.weights_ > EFFECTIVE_WEIGHT_THRESHOLD))
        if self.verbose:
            print(f"Effective components: {self.n_effective_components_} of {self.n_components} "
                  f"(expected weight > {EFFECTIVE_WEIGHT_THRESHOLD}).")

    def fit(self, X, y=None, sample_weight=None):
        """Fit the variational posterior.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), a Dask array or
            DataFrame, or a block source (see :mod:`emix.backends.chunked`)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; a weight of 2 counts a row twice.

        Returns
        -------
        self : BayesianGaussianMixture
        """
        if self._out_of_core_kind(X) is not None:
            return self._fit_out_of_core(X, sample_weight)
        self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of each row of ``X``."""
        if self._out_of_core_kind(X) is not None:
            return self._fit_out_of_core(X, sample_weight).predict(X)
        if _xp.is_array_api_input(X):  # PyTorch / CuPy
            return self._fit_predict_xp(X, sample_weight)
        self._check_params()
        structure = self._structure()
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        w = V.check_sample_weight(sample_weight, X.shape[0], X.dtype)
        n_eff = X.shape[0] if w is None else int(np.count_nonzero(w))
        V.check_enough_samples(n_eff, self.n_components, w is not None)
        mean, cov = self._moments(X, w)
        prior = self._resolve_prior(X.shape[1], mean, cov, X.dtype)
        self._set_prior(prior)
        reducer = self._reducer(X, w)
        rng = check_random_state(self.random_state)

        def params0():
            return self._initial_params(X, w, structure, rng, reducer, prior)

        with _parallel.one_blas_thread():
            best = self._em_restarts(reducer, params0, structure, prior=prior, parallel=True)
            self._set_fitted(best, structure)
            eff = self._effective()
            return reducer.map(lambda Xb: em.argmax_column(Xb, eff, structure))

    def _fit_out_of_core(self, X, sample_weight):
        """``fit`` on a Dask collection or a block source: one pass finds the
        shape, the weighted mean and covariance (the default priors) and a
        uniform initialization sample; each iteration is one more pass."""
        self._check_params()
        structure = self._structure()
        K = self.n_components
        reducer, info, names, rng = _common.open_out_of_core(
            X, sample_weight, is_dask=self._out_of_core_kind(X) == "dask", structure=structure, n_components=K,
            working_memory=self.working_memory, rng=check_random_state(self.random_state), moments=True)
        self.n_features_in_ = int(info["n_features"])
        _common.set_feature_names(self, names)
        summary = info["summary"]
        sw = float(summary["sw"])

        def cov():
            if not sw > 1.0:
                raise ValueError(
                    "The default covariance_prior is the weighted covariance of X, which needs "
                    f"sum(sample_weight) > 1. Got sum {sw!r}. Pass covariance_prior."
                )
            return np.asarray(summary["m2"], dtype=np.float64) / (sw - 1.0)

        prior = self._resolve_prior(self.n_features_in_, np.asarray(summary["mean"]).astype(info["dtype"]),
                                    cov, info["dtype"])
        self._set_prior(prior)
        Xs, ws = info["sample"], info["sample_weight"]
        sample_reducer = self._reducer(Xs, ws)

        def params0():
            return self._initial_params(Xs, ws, structure, rng, sample_reducer, prior)

        best = self._em_restarts(reducer, params0, structure, prior=prior)
        self._set_fitted(best, structure)
        self.n_passes_ = getattr(reducer, "n_calls", None)
        return self

    # ------------------------------------------------------------ online
    def _current_prior(self):
        return vb.VBPrior(self.weight_concentration_prior_type, self.weight_concentration_prior_,
                          self.mean_precision_prior_, self.mean_prior_, self.degrees_of_freedom_prior_,
                          self.covariance_prior_)

    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the variational posterior with one batch of rows.

        ``online_mode='stepwise'`` (default): stochastic variational
        inference (Hoffman, Blei, Wang & Paisley 2013, algorithm 1). The
        batch's variational E-step gives its statistics ``s(B)``; scaled by
        ``N / |B|`` (``N`` = ``total_samples``, ``|B|`` the batch's weight)
        they are the statistics of the whole data set if it were the batch
        repeated. The running statistics move by
        ``S <- (1 - rho_t) S + rho_t (N / |B|) s(B)`` with
        ``rho_t = (t + learning_offset) ** -learning_decay``, and the
        variational M-step turns ``S`` into the posterior. Because the
        conjugate posterior's natural parameters (``beta_k``,
        ``beta_k m_k``, ``W_k^-1 + beta_k m_k m_k^T``, ``nu_k`` and the
        weights' concentrations) are the prior's plus these statistics, this
        is Hoffman et al.'s natural-gradient step
        ``lambda <- (1 - rho_t) lambda + rho_t lambda_hat`` exactly (for
        'tied', whose shared scale is scikit-learn's and not a conjugate
        update, the same step on the statistics). The first batch
        initializes (``init_params``, its statistics scaled the same way)
        and then takes a full step; the priors left as None come from that
        batch's moments.

        ``online_mode='exact'``: the statistics of ``batches_per_pass``
        batches are summed under fixed parameters and one variational
        M-step follows: each pass is one iteration of :meth:`fit`.

        After :meth:`fit` or :func:`emix.load`, the first call starts from
        the fitted posterior (its E-step) with a full step.

        ``lower_bound_`` after a stepwise call is the batch's estimate of the
        bound, ``(N / |B|)`` times its responsibilities' entropy plus the
        parameter terms (:func:`emix.core.vb.bound_terms`); ``lower_bounds_``
        keeps one per call (exact: one per pass, the bound of that pass).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : BayesianGaussianMixture

        References
        ----------
        Hoffman, M. D., Blei, D. M., Wang, C. and Paisley, J. (2013).
        Stochastic variational inference. JMLR 14, 1303-1347.
        """
        from . import online
        from .core.types import FitResult

        if _xp.is_array_api_input(X) or _xp.is_array_api_input(getattr(self, "means_", None)):
            raise NotImplementedError(
                "BayesianGaussianMixture.partial_fit supports numpy arrays only, not PyTorch/CuPy "
                "arrays (fit supports them). Pass numpy batches (e.g. tensor.cpu().numpy())."
            )
        self._check_params()
        online.check_online_params(self)
        if self.total_samples is not None and not (
                _is_real(self.total_samples) and np.isfinite(self.total_samples) and self.total_samples > 0):
            raise ValueError(f"total_samples must be a finite number > 0 or None. Got {self.total_samples!r}.")
        structure = self._structure()
        first = not hasattr(self, "means_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=first)
        if not first:
            X = X.astype(self.means_.dtype, copy=False)
        w = V.check_sample_weight(sample_weight, X.shape[0], X.dtype)
        bw = float(X.shape[0]) if w is None else float(np.sum(w, dtype=np.float64))
        if not bw > 0:
            raise ValueError(f"the batch's total sample weight must be > 0. Got {bw!r}.")
        reducer = self._reducer(X, w)
        state = getattr(self, "_online", None)
        if state is not None and (state.mode != self.online_mode or first
                                  or state.params.means is not self.means_):
            state = None  # fit, load, set_params or a mode change since: start over
        if state is None:
            seen = 0.0
            if first:
                n_eff = X.shape[0] if w is None else int(np.count_nonzero(w))
                V.check_enough_samples(n_eff, self.n_components, w is not None)
                mean, cov = self._moments(X, w)
                prior = self._resolve_prior(X.shape[1], mean, cov, X.dtype)
                self._set_prior(prior)
                scale = 1.0 if self.online_mode == "exact" else (self.total_samples or bw) / bw
                resp = initial_resp(X, w, self.n_components, self.init_params, check_random_state(self.random_state))
                shift = self._component_means(X, w, resp, reducer, np)
                st = None
                start = 0
                for Xb, wb in reducer.blocks():
                    stop = start + Xb.shape[0]
                    part = em.stats_from_resp(Xb, wb, resp[start:stop], shift, structure)
                    st = part if st is None else st + part
                    start = stop
                params = vb.m_step(st.scaled(scale), structure, prior, self.reg_covar, X.dtype)
            else:
                params = self._params()
            state = online.OnlineState(mode=self.online_mode, params=params)
            state.seen = seen
        prior = self._current_prior()
        kind = self.weight_concentration_prior_type
        state.seen += bw
        eff = vb.effective_params(state.params, kind)
        batch = reducer(lambda Xb, wb: em.e_step(Xb, wb, eff, structure, np))
        batch = replace(batch, loglik=vb.responsibility_entropy(batch, eff, structure))
        def bound(S, params):  # the ELBO: the statistics' part plus the parameters' terms
            return S.loglik + vb.bound_terms(params, kind, structure)

        def stepwise_bound(S, s, params):  # stepwise reports the bound of the scaled batch
            value = bound(s, params)
            return value, value

        params, n_iter, converged, lower_bound = online.absorb_batch(
            state, batch, self, m_step=lambda S: vb.m_step(S, structure, prior, self.reg_covar, X.dtype),
            bound=bound, first=first, scale=(self.total_samples or state.seen) / bw,
            recenter=lambda S, shift: online.recenter(S, shift, structure), stepwise_bound=stepwise_bound)
        verbose, self.verbose = self.verbose, 0
        try:
            self._set_fitted(FitResult(params, n_iter, converged, lower_bound, ()), structure)
        finally:
            self.verbose = verbose
        self.lower_bounds_ = state.history
        self._online = state
        state.params = self._params()  # the same arrays as the fitted attributes
        return self

    # ------------------------------------------------------------- inference
    def _effective(self):
        """Gaussian parameters whose weighted log densities are the
        variational ``log rho_nk`` (see :func:`emix.core.vb.effective_params`)."""
        return vb.effective_params(self._params(), self.weight_concentration_prior_type)

    def _check_X(self, X):
        check_is_fitted(self)
        with np.errstate(invalid="ignore"):
            return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def _infer(self, X, kind, fn):
        """``fn(X_block, effective params, structure)`` over the blocks of
        ``X``: numpy arrays, block sources (concatenated) or Dask collections
        (lazily, ``kind`` in 'predict', 'predict_proba', 'score_samples')."""
        check_is_fitted(self)
        if _xp.is_array_api_input(X) or _xp.is_array_api_input(self.means_):
            return self._infer_xp(X, fn)
        where = self._out_of_core_kind(X)
        eff, structure = self._effective(), self._structure()
        if where == "dask":
            from .backends.dask import lazy_inference

            return lazy_inference(kind, X, eff, structure, self.n_features_in_)
        if where == "source":
            from .backends.chunked import ChunkedReducer
            from .backends.reduce import block_rows_for

            D = self.n_features_in_
            rows = block_rows_for(structure, self.n_components, D, self.means_.dtype.itemsize, self.working_memory)
            return ChunkedReducer(X, D, self.means_.dtype, rows).map(lambda Xb: fn(Xb, eff, structure))
        X = self._check_X(X)
        return self._reducer(X).map(lambda Xb: fn(Xb, eff, structure))

    def score_samples(self, X):
        """``log sum_k exp(log rho_nk)`` for each row (scikit-learn's
        ``score_samples`` of a variational mixture: the log-normalizer of
        the variational responsibilities, not a posterior predictive density).
        """
        return self._infer(X, "score_samples", lambda Xb, p, s: em.log_density(Xb, p, s))

    def score(self, X, y=None, sample_weight=None):
        """Mean (weighted) :meth:`score_samples`."""
        ll = self.score_samples(X)
        if _xp.is_array_api_input(ll):
            from .backends.array_api import _weighted_sum

            s, n_eff = _weighted_sum(_xp.namespace(ll), ll, sample_weight, ll.shape[0])
            return s / n_eff
        if hasattr(ll, "compute"):
            ll = ll.compute()
        w = None if sample_weight is None else V.check_sample_weight(sample_weight, ll.shape[0], np.float64)
        return float(np.average(np.asarray(ll, dtype=np.float64), weights=w))

    def predict(self, X):
        """Component with the largest responsibility for each row."""
        return self._infer(X, "predict", lambda Xb, p, s: em.argmax_column(Xb, p, s))

    def predict_proba(self, X):
        """Variational responsibilities ``r_nk``, shape (n_samples, n_components)."""
        return self._infer(X, "predict_proba", lambda Xb, p, s: _exp(em.log_resp(Xb, p, s)[1]))

    def sample(self, n_samples=1):
        """Draw ``n_samples`` rows from the mixture with the expected weights,
        means ``m_k`` and covariances ``covariances_`` (as scikit-learn).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1. Got {n_samples!r}.")
        if _xp.is_array_api_input(self.means_):
            raise NotImplementedError(
                "sample() of a BayesianGaussianMixture fitted on PyTorch/CuPy arrays is not "
                "supported yet: emix.load(emix.save(...)) gives a numpy model that samples."
            )
        return _common.draw_sample(self, n_samples)

    def effective_components(self, threshold=EFFECTIVE_WEIGHT_THRESHOLD):
        """Indices of the components whose expected weight exceeds ``threshold``."""
        check_is_fitted(self)
        return np.flatnonzero(self.weights_ > threshold)


__all__ = ["EFFECTIVE_WEIGHT_THRESHOLD", "BayesianGaussianMixture"]
