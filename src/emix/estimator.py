"""The estimator: the only stateful layer of emix."""

from __future__ import annotations

import math
import os
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _estimator_common as _common
from . import _parallel
from . import _validation as V
from ._restarts import RestartsMixin
from .backends import _xp
from .backends import array_api as _aa
from .backends.reduce import DEFAULT_WORKING_MEMORY_MIB, BlockReducer, available_cores, block_rows_for
from .core import accel, criteria, em
from .core import missing as _missing
from .core.init import initial_resp
from .core.prior import prior_from_moments, resolve_prior
from .core.types import FitResult, GaussianParams
from .exceptions import ConvergenceWarning, DegenerateComponentError, DegenerateRestartWarning
from .families.gaussian import get_structure

#: Initial weight of the noise component (``noise`` set); the Gaussians start
#: from the usual initialization on all rows with their weights scaled by 0.9.
NOISE_WEIGHT_INIT = 0.1


class GaussianMixture(RestartsMixin, DensityMixin, BaseEstimator):
    """Gaussian mixture model fitted by Expectation-Maximization.

    A drop-in replacement for :class:`sklearn.mixture.GaussianMixture`: the same
    constructor parameters, defaults, methods and fitted attributes, and from the
    same initial parameters the same fit. In addition it accepts
    ``sample_weight``, survives restarts in which a component collapses, keeps
    float32 data in float32 without losing accuracy (statistics are centered at
    the previous means and accumulated in float64), and bounds its temporary
    memory by working on blocks of rows.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        Structure of the component covariances:
        'full' (each its own matrix), 'tied' (one shared matrix), 'diag' (each
        its own diagonal), 'spherical' (each its own single variance).
    tol : float, default=1e-3
        EM stops when the mean log-likelihood improves by less than ``tol``.
    reg_covar : float, default=1e-6
        Non-negative value added to the diagonal of every covariance.
    max_iter : int, default=100
        Maximum number of EM iterations per restart.
    n_init : int, default=1
        Number of restarts; the one with the highest log-likelihood is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are drawn.
    weights_init : array-like of shape (n_components,), default=None
    means_init : array-like of shape (n_components, n_features), default=None
    precisions_init : array-like, default=None
        Initial precisions (inverse covariances), shaped as ``precisions_``.
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
        If True, each ``fit`` starts from the previous solution (``n_init`` is
        then ignored).
    verbose : int, default=0
        1 prints each restart; 2 also prints every ``verbose_interval`` iterations
        with the time and change of the log-likelihood.
    verbose_interval : int, default=10
    working_memory : float or None, default=None
        Budget in MiB for the temporaries of one block of rows (responsibilities,
        centered data). None means 64 MiB. Results do not depend on it beyond
        rounding. (An emix extension.)
    callback : callable or None, default=None
        Called after every EM iteration as ``callback(info)`` with a dict holding
        ``init`` (restart index), ``n_init``, ``n_iter``, ``max_iter``,
        ``lower_bound`` and ``change``. Progress bars hook in here. It is
        always called from the calling thread; with ``n_jobs`` > 1, a
        restart's calls come together once that restart has finished. (An
        emix extension.)
    online_mode : {'stepwise', 'exact'}, default='stepwise'
        How :meth:`partial_fit` learns: stepwise EM (new parameters after every
        batch) or exact mini-batch EM (one M-step per ``batches_per_pass``
        batches). Ignored by ``fit``. (An emix extension; see :mod:`emix.online`.)
    learning_decay : float in (0.5, 1], default=0.7
        Stepwise EM step sizes are ``rho_t = (t + learning_offset) ** -learning_decay``.
    learning_offset : float >= 0, default=2.0
        Larger values make the first batches count less.
    batches_per_pass : int or None, default=None
        Batches in one pass over the data (required by ``online_mode='exact'``).
    prior : None, 'default' or emix.core.prior.ConjugatePrior, default=None
        None fits by maximum likelihood. Otherwise the parameters are the
        posterior mode under a conjugate normal-inverse-Wishart prior (Fraley &
        Raftery 2007); ``'default'`` is mclust's ``defaultPrior`` (out of
        core and on Dask from the mean and covariance of all rows, found in
        the initial scan). ``fit`` on numpy arrays, block sources and Dask
        only: not ``partial_fit``, PyTorch/CuPy arrays or
        ``accelerate='squarem'``. (An emix extension; see
        :mod:`emix.core.prior`.)
    n_threads : int or None, default=None
        Threads working on blocks of rows at the same time (BLAS itself is
        held to one thread during ``fit``). None uses every core this process
        may run on. Results do not depend on it. (An emix extension.)
    n_jobs : int or None, default=None
        Restarts (``n_init``) whose EM loops run at the same time, in joblib
        worker processes (``joblib.parallel_config(backend='threading')``
        switches to threads). None means 1, -1 every core, -k every core but
        k - 1. The initializations are still computed one after the other in
        the calling process, drawing from ``random_state`` exactly as with
        ``n_jobs=None``, and the EM loop draws nothing, so the fit is the same
        bit for bit whatever ``n_jobs``. The ``n_threads`` threads over blocks
        of rows are shared between the workers (``n_threads // n_jobs`` each,
        at least 1) and BLAS runs one thread in each. The callback, verbose
        lines and warnings of a restart come from the calling thread, in
        restart order, once that restart has finished. In-memory numpy
        ``fit`` only: Dask, block-source and PyTorch/CuPy fits run their
        restarts one after the other. (An emix extension.)
    accelerate : None or 'squarem', default=None
        'squarem' accelerates EM with SQUAREM (Varadhan & Roland 2008) with a
        monotonicity safeguard; ``n_iter_`` then counts EM steps. Off by default:
        on the benchmark suite it saves iterations on slow problems but not on
        every one (see docs/benchmarks.md). (An emix extension.)
    equal_proportions : bool, default=False
        Constrain the K Gaussian mixing weights to be equal (mclust's
        ``equalPro``): ``weights_ = (1 - noise_weight_) / K`` each. The K - 1
        weights then are not free parameters (BIC/AIC/ICL count them out).
        ``fit`` on numpy arrays, block sources and Dask only: not
        ``partial_fit``, PyTorch/CuPy arrays or ``accelerate='squarem'``.
        (An emix extension; see docs/mclust.md.)
    noise : None, 'box' or float > 0, default=None
        Add a uniform noise component for outliers (Banfield & Raftery 1993;
        Fraley & Raftery 1998, 2002): ``p(x) = pi_0 / V + sum_k pi_k N(x |
        mu_k, Sigma_k)``. ``'box'``: ``V`` is the volume of the bounding box
        of the training rows (with positive weight; out of core and on Dask
        all rows, found in the initial scan, not the initialization sample),
        mclust's default ``hypvol``; a float is ``V`` itself, in the data's units. ``V`` is
        fixed during EM, ``pi_0`` is estimated. EM starts from the usual
        initialization on all rows with ``pi_0 = 0.1`` (``NOISE_WEIGHT_INIT``)
        and the Gaussian weights scaled to ``0.9``. With noise, ``predict``
        labels noise rows ``-1`` (mclust labels them 0), ``predict_proba``
        has one more, last, column (the noise), ``score_samples`` includes
        the noise density, the criteria count one more parameter, and
        ``sample`` is not available. A ``warm_start`` fit keeps the previous
        ``V``. ``fit`` on numpy arrays, block sources and Dask only (and
        inference on them: lazy on Dask): not ``partial_fit``, PyTorch/CuPy
        arrays or ``accelerate='squarem'``. (An emix extension; see
        docs/mclust.md.)
    missing : {'error', 'em'}, default='error'
        'error': NaN in ``X`` is an error, as in scikit-learn. 'em': NaN
        entries are missing values, handled inside EM (Little & Rubin 2002,
        ch. 8 and 11; Ghahramani & Jordan 1994): the E-step completes each row
        by the conditional mean of its missing block given its observed one
        under each component and adds the conditional covariance to the
        scatter, so EM maximizes the observed-data likelihood (what
        ``lower_bounds_`` records; it never decreases). Initialization runs
        on the data with each hole filled by its column mean. ``predict``,
        ``predict_proba``, ``score_samples`` and ``score`` use each row's
        marginal density over its observed coordinates; a row with no
        observed value gets the mixing weights as probabilities (and adds
        nothing to the fit); a column never observed is an error. See also
        :meth:`impute` and :meth:`sample_missing`. Without NaN the fit is the
        default one, bit for bit. ``fit`` on numpy arrays, block sources and
        Dask (equal to the in-memory fit when the initialization sample is
        every row), and ``partial_fit``; not PyTorch/CuPy arrays, and not
        with ``noise`` or ``prior`` when X holds NaN. (An emix extension;
        see docs/missing.md and :mod:`emix.core.missing`.)
    fixed : tuple of {'weights', 'means', 'covariances'}, default=()
        Parameters held at their initial values (``weights_init``,
        ``means_init``, ``precisions_init``, which must then be given) while
        EM updates the others (a generalized EM step: the likelihood still
        never decreases). BIC/AIC/ICL count only the free parameters. (An
        emix extension; see docs/missing.md.)

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical.
    precisions_ : ndarray
        Inverses of ``covariances_``, same shapes.
    precisions_cholesky_ : ndarray
        Upper-triangular ``U`` with ``precisions_ = U U^T`` (full, tied) or
        ``1 / sqrt(covariances_)`` (diag, spherical), as scikit-learn stores them.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean (weighted) log-likelihood of the kept run's last E-step.
    lower_bounds_ : list of float
        The mean log-likelihood at each iteration of the kept run.
    noise_weight_ : float
        ``pi_0``, the weight of the noise component (only with ``noise``;
        ``weights_`` then sum to ``1 - noise_weight_``).
    noise_log_volume_ : float
        ``log V`` of the noise component (only with ``noise``).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when X has string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from emix import GaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> np.round(np.sort(gm.means_[:, 0]), 3)
    array([ 1., 10.])
    >>> gm.predict([[0, 0], [12, 3]]).tolist() == [gm.predict([[1, 2]])[0], gm.predict([[10, 2]])[0]]
    True
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        working_memory=None,
        callback=None,
        online_mode="stepwise",
        learning_decay=0.7,
        learning_offset=2.0,
        batches_per_pass=None,
        prior=None,
        accelerate=None,
        equal_proportions=False,
        noise=None,
        n_threads=None,
        n_jobs=None,
        missing="error",
        fixed=(),
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.working_memory = working_memory
        self.callback = callback
        self.online_mode = online_mode
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.batches_per_pass = batches_per_pass
        self.prior = prior
        self.accelerate = accelerate
        self.equal_proportions = equal_proportions
        self.noise = noise
        self.n_threads = n_threads
        self.n_jobs = n_jobs
        self.missing = missing
        self.fixed = fixed

    # ------------------------------------------------------------------ helpers
    def _structure(self):
        return get_structure(self.covariance_type)

    def _n_threads(self):
        return available_cores() if self.n_threads is None else int(self.n_threads)

    def _reducer(self, X, sample_weight=None):
        structure = self._structure()
        K, D = self.n_components, X.shape[1]
        threads = self._n_threads() if isinstance(X, np.ndarray) else 1
        budget = DEFAULT_WORKING_MEMORY_MIB if self.working_memory is None else self.working_memory
        # the kernels' temporaries are float64 whatever the data dtype; the
        # budget is shared by the threads working on blocks at the same time
        rows = block_rows_for(structure, K, D, max(8, X.dtype.itemsize), budget / threads, n_samples=X.shape[0])
        return BlockReducer(X, sample_weight, rows, n_threads=_parallel.capped_block_threads(threads))

    def _params(self):
        noise_weight = getattr(self, "noise_weight_", None)
        return GaussianParams(
            weights=self.weights_,
            means=self.means_,
            covariances=self.covariances_,
            precisions_cholesky=self.precisions_cholesky_,
            noise_weight=noise_weight,
            log_volume=None if noise_weight is None else self.noise_log_volume_,
        )

    def _check_inits(self, X, structure):
        K, D = self.n_components, X.shape[1]
        weights = means = prec = None
        if self.weights_init is not None:
            weights = V.check_weights_init(self.weights_init, K, X.dtype)
        if self.means_init is not None:
            means = V.check_means_init(self.means_init, K, D, X.dtype)
        if self.precisions_init is not None:
            prec = structure.check_precisions(np.asarray(self.precisions_init, dtype=X.dtype), K, D)
        return weights, means, prec

    def _no_prior(self, where):
        if getattr(self, "prior", None) is not None:
            raise NotImplementedError(
                f"prior={self.prior!r} is supported by fit on numpy arrays, block sources and Dask only, "
                f"not {where}."
            )

    def _no_mixing_options(self, where):
        """equal_proportions and noise: ``fit`` on numpy arrays, block sources
        and Dask only."""
        if getattr(self, "equal_proportions", False):
            raise NotImplementedError(
                f"equal_proportions=True is supported by fit on numpy arrays, block sources and Dask "
                f"only, not {where}."
            )
        if getattr(self, "noise", None) is not None:
            raise NotImplementedError(
                f"noise={self.noise!r} is supported by fit on numpy arrays, block sources and Dask only, "
                f"not {where}."
            )

    def _check_noise_inference(self, where):
        """A model fitted with a noise component predicts on numpy arrays,
        block sources and Dask only."""
        if getattr(self, "noise_weight_", None) is not None:
            raise NotImplementedError(
                f"A model with a noise component (noise={self.noise!r}) supports inference on "
                f"numpy arrays, block sources and Dask only, not {where}."
            )

    def _log_volume(self, bounds):
        """``log V`` of the noise component (None without one): for
        ``noise='box'`` the box ``bounds()`` returns, the per-feature ``(lo,
        hi)`` of the rows with positive weight (in memory from the array, out
        of core from the initial scan), else ``log(noise)``."""
        if self.noise is None:
            return None
        if not (isinstance(self.noise, str) and self.noise == "box"):
            return float(math.log(self.noise))
        lo, hi = bounds()
        span = np.asarray(hi).astype(np.float64) - np.asarray(lo).astype(np.float64)
        flat = np.flatnonzero(~(span > 0))
        if len(flat):
            raise ValueError(
                f"noise='box' needs data spread along every feature, but feature {int(flat[0])} is "
                "constant (the bounding box has zero volume). Pass a hyper-volume as noise=V instead."
            )
        return float(np.sum(np.log(span)))

    def _initial_params(self, X, sample_weight, structure, rng, reducer, inits, xp=np, prior=None,
                        log_volume=None):
        weights_init, means_init, prec_init = inits
        K = self.n_components
        params = None
        kw = {} if xp is np else {"xp": xp}
        if weights_init is None or means_init is None or prec_init is None:
            resp = initial_resp(X, sample_weight, K, self.init_params, rng, **kw)
            shift = self._component_means(X, sample_weight, resp, reducer, xp)
            stats = None
            start = 0
            for Xb, wb in reducer.blocks():
                stop = start + Xb.shape[0]
                s = em.stats_from_resp(Xb, wb, resp[start:stop], shift, structure, **kw)
                stats = s if stats is None else stats + s
                start = stop
            params = em.m_step(stats, structure, self.reg_covar, X.dtype, prior=prior, **kw)
        weights = weights_init if weights_init is not None else params.weights
        means = means_init if means_init is not None else params.means
        if prec_init is not None:
            prec_chol = structure.prec_chol_from_precisions(prec_init, **kw)
            cov = structure.cov_from_prec_chol(prec_chol, **kw)
        else:
            prec_chol, cov = params.precisions_cholesky, params.covariances
        noise_weight = None
        if log_volume is not None:  # the Gaussians share 1 - pi_0
            noise_weight = NOISE_WEIGHT_INIT
            weights = weights * weights.dtype.type(1.0 - noise_weight)
        if getattr(self, "equal_proportions", False):
            share = 1.0 if noise_weight is None else 1.0 - noise_weight
            weights = np.full(K, share / K, dtype=weights.dtype)
        return GaussianParams(weights=weights, means=means, covariances=cov, precisions_cholesky=prec_chol,
                              noise_weight=noise_weight, log_volume=log_volume)

    @staticmethod
    def _component_means(X, sample_weight, resp, reducer, xp):
        """Responsibility-weighted mean of each component, accumulated in float64
        over blocks. The initial statistics are centered there, so the M-step's
        ``S2/n - d d^T`` has ``d = 0`` (no cancellation, no ``10 eps`` bias);
        an empty component falls back to the overall mean."""
        f64 = xp.float64
        K, D = resp.shape[1], X.shape[1]
        num = xp.zeros((K, D), dtype=f64, device=_xp.device(X)) if xp is not np else np.zeros((K, D))
        den = xp.zeros((K,), dtype=f64, device=_xp.device(X)) if xp is not np else np.zeros(K)
        tot = xp.zeros((D,), dtype=f64, device=_xp.device(X)) if xp is not np else np.zeros(D)
        wsum = 0.0
        start = 0
        for Xb, wb in reducer.blocks():
            stop = start + Xb.shape[0]
            rb = xp.astype(resp[start:stop], f64) if xp is not np else resp[start:stop].astype(f64)
            xb = xp.astype(Xb, f64) if xp is not np else Xb.astype(f64)
            if wb is not None:
                wf = xp.astype(wb, f64) if xp is not np else wb.astype(f64)
                rb = rb * wf[:, None]
                tot = tot + wf @ xb
                wsum += float(xp.sum(wf))
            else:
                tot = tot + xp.sum(xb, axis=0)
                wsum += Xb.shape[0]
            num = num + rb.T @ xb
            den = den + xp.sum(rb, axis=0)
            start = stop
        overall = tot / wsum
        safe = xp.where(den > 0, den, xp.ones_like(den))
        means = xp.where((den > 0)[:, None], num / safe[:, None], overall[None, :])
        return xp.astype(means, X.dtype) if xp is not np else means.astype(X.dtype)

    def _validate_nan(self, X, **kwargs):
        """``validate_data`` with NaN allowed under ``missing='em'``; under
        ``missing='error'`` scikit-learn's NaN error says how to opt in."""
        allow = getattr(self, "missing", "error") == "em"
        try:
            return validate_data(self, X, dtype=[np.float64, np.float32],
                                 ensure_all_finite="allow-nan" if allow else True, **kwargs)
        except ValueError as exc:
            if allow or "NaN" not in str(exc):
                raise
            raise ValueError(f"{exc} To fit and predict with missing values (NaN) inside EM, pass "
                             "missing='em' to GaussianMixture.") from None

    def _validate_fit_input(self, X, sample_weight):
        V.check_estimator_params(self)
        structure = self._structure()
        X = self._validate_nan(X, ensure_min_samples=2)
        # the fit is invariant to a common scale of the weights: bring them to a
        # mean of 1 so that tiny or huge weights neither meet eps nor overflow float32
        w = V.check_sample_weight(sample_weight, X.shape[0], X.dtype, normalize=True)
        n_eff = X.shape[0] if w is None else int(np.count_nonzero(w))
        V.check_enough_samples(n_eff, self.n_components, w is not None)
        return X, w, structure

    # ---------------------------------------------------------------- fitting
    def fit(self, X, y=None, sample_weight=None, labels=None):
        """Estimate the parameters with the EM algorithm.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN entries are missing values with ``missing='em'``.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; a weight of 2 counts a row twice.
        labels : array-like of shape (n_samples,) of int, default=None
            Semi-supervised fitting: a component index for a labelled row,
            -1 for an unlabelled one (scikit-learn's convention). Labelled
            rows' responsibilities are fixed to their label; EM starts from
            the labelled rows' class means (unlabelled rows at the nearest).
            With every row labelled the fit is the closed-form weighted
            estimate. ``y`` stays ignored, so pipelines that pass ``y`` keep
            the unsupervised fit. Out of core: numpy labels with a block
            source (aligned with the rows it yields), numpy or Dask labels
            with a Dask ``X``. (An emix extension; see docs/missing.md.)

        Returns
        -------
        self : GaussianMixture
        """
        if self._out_of_core_kind(X) is not None:
            return self._fit_out_of_core(X, sample_weight, labels)
        self.fit_predict(X, y, sample_weight=sample_weight, labels=labels)
        return self

    def fit_predict(self, X, y=None, sample_weight=None, labels=None):
        """Fit, then return the most probable component of each row of ``X``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        if labels is not None and _xp.is_array_api_input(X):
            raise NotImplementedError("labels are supported by fit on numpy arrays, block sources and Dask only.")
        if self._out_of_core_kind(X) is not None:
            return self._fit_out_of_core(X, sample_weight, labels)._infer_out_of_core("predict", X)
        if _xp.is_array_api_input(X):  # PyTorch / CuPy: see emix.backends.array_api
            self._no_prior("PyTorch/CuPy arrays")
            self._no_mixing_options("PyTorch/CuPy arrays")
            self._n_fit = int(X.shape[0])  # rows, for the singular-fit rule (emix._singular)
            return _aa.fit_predict(self, X, sample_weight)
        X, w, structure = self._validate_fit_input(X, sample_weight)
        self._n_fit = int(X.shape[0])
        if labels is not None or (self.missing == "em" and _missing.has_missing(X)):
            return self._fit_incomplete(X, w, structure, labels)  # missing values, labels
        prior = resolve_prior(self.prior, X, self.n_components, w)
        inits = self._check_inits(X, structure)
        reducer = self._reducer(X, w)
        rng = check_random_state(self.random_state)
        def bounds():
            rows = X if w is None else X[w > 0]
            return rows.min(axis=0), rows.max(axis=0)

        log_volume = self._log_volume(bounds)
        self._check_warm_noise()

        def params0():
            return self._initial_params(X, w, structure, rng, reducer, inits, prior=prior,
                                        log_volume=log_volume)

        # Parallelism comes from threads over blocks of rows; BLAS itself runs one
        # thread, since its own threads on the small per-block products and the
        # per-component factorizations cost up to 10x on a busy machine.
        with _parallel.one_blas_thread():
            best = self._em_restarts(reducer, params0, structure, prior=prior, parallel=True)
            self._set_fitted(best, structure)
            # the final E-step makes fit_predict(X) agree with fit(X).predict(X);
            # block by block, so no (n, K) array is held
            return self._by_blocks(X, lambda Xb, p, s: self._labels(em.log_resp(Xb, p, s)[1]))

    def _fit_incomplete(self, X, w, structure, labels):
        """``fit_predict`` on rows with missing values (``missing='em'``)
        and/or known ``labels``: the unchanged EM loop with the structure
        wrapped by :class:`emix.core.missing.IncompleteStructure` (labels
        travel as a last column of the array the reducer splits), started
        from the data with holes filled by column means (and, with labels,
        from the labelled rows' class means)."""
        K = self.n_components
        nan = _missing.has_missing(X)
        if nan:
            _missing.check_observed_columns(X, getattr(self, "feature_names_in_", None))
            # the singular-fit rule's row count (emix._singular, rule 3: pi_k N effective
            # points): rows with nothing observed add nothing to the fit, nor to N
            self._n_fit = int(np.count_nonzero(~np.all(np.isnan(X), axis=1)))
            for option in ("noise", "prior"):
                if getattr(self, option) is not None:
                    raise NotImplementedError(f"{option}={getattr(self, option)!r} cannot be combined with "
                                              "missing values yet (missing='em' with NaN in X).")
        self._check_warm_noise()
        if self.noise is not None:
            raise NotImplementedError(f"noise={self.noise!r} cannot be combined with labels yet.")
        if labels is not None:
            labels = _missing.check_labels(labels, X.shape[0], K)
        Xinit = _missing.column_fill(X, w) if nan else X
        prior = resolve_prior(self.prior, Xinit, K, w)
        inits = self._check_inits(Xinit, structure)
        rng = check_random_state(self.random_state)
        init_reducer = self._reducer(Xinit, w)
        labelled = labels is not None and bool(np.any(labels >= 0))

        def params0():
            if not labelled:
                return self._initial_params(Xinit, w, structure, rng, init_reducer, inits, prior=prior)
            return self._labelled_start(Xinit, w, labels, structure, rng, inits)

        Xfit = X if labels is None else np.concatenate([X, labels[:, None].astype(X.dtype)], axis=1)
        wfit = w
        if nan:  # rows grouped by missingness pattern: long runs of one pattern per block
            order = _missing.pattern_order(X)
            Xfit, wfit = Xfit[order], (None if w is None else w[order])
        em_structure = _missing.IncompleteStructure(structure, labelled=labels is not None)
        with _parallel.one_blas_thread():
            best = self._em_restarts(self._reducer(Xfit, wfit), params0, em_structure, prior=prior,
                                     parallel=True)
            self._set_fitted(best, structure)
            return self._by_blocks(X, lambda Xb, p, s: self._labels(em.log_resp(Xb, p, s)[1]))

    def impute(self, X):
        """``X`` with each missing (NaN) entry replaced by its conditional
        expectation under the fitted mixture, ``E[x_M | x_O] = sum_k
        r_k(x_O) (mu_kM + Sigma_kMO Sigma_kOO^-1 (x_O - mu_kO))`` with
        ``r_k(x_O)`` the responsibilities from the observed coordinates (a
        row with nothing observed gets the mixture mean). Needs
        ``missing='em'``.

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features)
        """
        X = self._check_missing_X(X)
        return _missing.impute(X, self._params(), self._structure())

    def sample_missing(self, X, n_imputations=5, random_state=None):
        """Multiple imputation: ``n_imputations`` draws of the missing
        entries of ``X`` from their conditional distribution under the
        fitted mixture (for each row and draw, a component ``k`` from
        ``r_k(x_O)``, then ``x_M ~ N(E[x_M | x_O, k], Sigma_kMM -
        Sigma_kMO Sigma_kOO^-1 Sigma_kOM)``; Little & Rubin 2002, ch. 10).
        Needs ``missing='em'``.

        Returns
        -------
        X_imputed : ndarray of shape (n_imputations, n_samples, n_features)
            Observed entries are those of ``X``.
        """
        n_imputations = V.check_int("n_imputations", n_imputations, 1)
        X = self._check_missing_X(X)
        return _missing.sample_missing(X, self._params(), self._structure(), n_imputations,
                                       check_random_state(random_state))

    def _check_missing_X(self, X):
        if getattr(self, "missing", "error") != "em":
            raise ValueError(f"impute and sample_missing need missing='em'. Got missing={self.missing!r}.")
        if getattr(self, "noise_weight_", None) is not None:
            raise NotImplementedError("impute and sample_missing are not available with a noise component.")
        return self._check_X(X)

    def _structure_for(self, X):
        """The structure for inference on ``X``: the marginal densities of
        :class:`emix.core.missing.IncompleteStructure` when it holds NaN."""
        structure = self._structure()
        if getattr(self, "missing", "error") == "em" and isinstance(X, np.ndarray) and _missing.has_missing(X):
            return _missing.IncompleteStructure(structure)
        return structure

    def _check_warm_noise(self):
        if self.warm_start and hasattr(self, "converged_") and (
                (self.noise is None) != (getattr(self, "noise_weight_", None) is None)):
            raise ValueError(
                "warm_start cannot add or remove the noise component (the previous fit was made "
                "with a different noise setting). Fit with warm_start=False."
            )

    def _labels(self, lp):
        """argmax over the columns; the noise column (last, when there is one) is -1."""
        return self._column_labels(np.argmax(lp, axis=1))

    def _column_labels(self, cols):
        """Labels from column indices: the noise column (``K``, last) is -1."""
        cols[cols == self.means_.shape[0]] = -1
        return cols

    # ------------------------------------------------ out of core and online
    @staticmethod
    def _out_of_core_kind(X):
        """'dask' for a Dask collection, 'source' for a block source, else None."""
        from .backends.chunked import is_block_source
        from .backends.dask import is_dask_collection

        if is_dask_collection(X):
            return "dask"
        if is_block_source(X):
            return "source"
        return None

    def _fit_out_of_core(self, X, sample_weight, labels=None):
        """``fit`` on a Dask array/DataFrame or a block source.

        Initialization runs ``init_params`` on a uniform sample of
        ``emix.backends.chunked.DEFAULT_INIT_SAMPLE`` rows drawn in one pass
        (all rows when there are fewer, which gives exactly the in-memory
        start); then every restart is :func:`emix.core.em.fit` with a reducer
        that makes one pass over the data per iteration. The same pass finds
        what ``noise='box'`` (the bounding box of the rows with positive
        weight) and ``prior='default'`` (their weighted mean and covariance)
        need, so these resolve exactly as in memory.

        With ``missing='em'`` the scan tolerates NaN (counting the rows in
        which each column is observed) and the sample is filled by column
        means as in memory; ``labels`` (numpy, or Dask with a Dask ``X``)
        travel as one more, last, column of the data, split off by
        :class:`emix.core.missing.IncompleteStructure`, and the start is the
        labelled rows' classes in the sample, as in memory.
        """
        from .backends import chunked
        from .backends import dask as dk

        V.check_estimator_params(self)
        self._check_warm_noise()
        structure = self._structure()
        default_prior = isinstance(self.prior, str) and self.prior == "default"
        K = self.n_components
        is_dask = self._out_of_core_kind(X) == "dask"
        labelled = labels is not None
        if labelled:
            if self.noise is not None:
                raise NotImplementedError(f"noise={self.noise!r} cannot be combined with labels yet.")
            names0 = dk.feature_names(X) if is_dask else None
            X = dk.with_labels(X, labels, K) if is_dask else chunked.with_labels(X, labels, K)
        reducer, info, names, rng = _common.open_out_of_core(
            X, sample_weight, is_dask=is_dask, structure=structure, n_components=K,
            working_memory=self.working_memory, rng=check_random_state(self.random_state), moments=default_prior,
            allow_nan=self.missing == "em")
        D = int(info["n_features"]) - labelled
        Xs, ws = info["sample"], info["sample_weight"]
        summary = info["summary"]
        n_observed = None if info["n_observed"] is None else info["n_observed"][:D]
        if labelled:  # the last column holds the labels
            names = names0
            Xs, labels_s = Xs[:, :D], Xs[:, D].astype(np.intp)
        self._n_fit = int(info["n_samples"])
        self.n_features_in_ = D
        _common.set_feature_names(self, names)
        nan = n_observed is not None and bool(np.any(n_observed < info["n_samples"]))
        if nan:  # missing values: checked as in memory, the sample filled as in memory
            self._check_incomplete_options(n_observed, names)
            self._n_fit = int(info["n_samples"] - info["n_empty"])  # rows with nothing observed add nothing
            Xs = _missing.column_fill(Xs, ws)
        if default_prior:
            mean, cov = chunked.summary_mean_cov(summary)
            prior = prior_from_moments(mean[:D], cov[:D, :D], K)  # without the labels' column
        else:
            prior = resolve_prior(self.prior, Xs, K)
        if prior is not None and info["weighted"]:  # weights to a mean of 1, as in memory
            scale = info["n_samples"] / info["sum_w"]
            reducer = chunked.ScaledWeights(reducer, scale)
            ws = ws * ws.dtype.type(scale)
        log_volume = self._log_volume(lambda: (summary["lo"], summary["hi"]))  # all rows, not the sample
        inits = self._check_inits(Xs, structure)
        sample_reducer = self._reducer(Xs, ws)

        def params0():
            if labelled and np.any(labels_s >= 0):
                return self._labelled_start(Xs, ws, labels_s, structure, rng, inits)
            return self._initial_params(Xs, ws, structure, rng, sample_reducer, inits, prior=prior,
                                        log_volume=log_volume)

        em_structure = _missing.IncompleteStructure(structure, labelled=labelled) if nan or labelled else structure
        best = self._em_restarts(reducer, params0, em_structure, prior=prior)
        self._set_fitted(best, structure)
        self.n_passes_ = getattr(reducer, "n_calls", None)
        return self

    def _labelled_start(self, Xinit, w, labels, structure, rng, inits):
        """Initial parameters from known labels (rows without holes, or
        filled): the labelled rows' classes, the unlabelled rows at the
        nearest class mean; components without labelled rows from
        ``init_params`` matched to the labelled classes; then the given
        ``*_init``."""
        K = self.n_components
        resp, every = _missing.label_resp(Xinit, labels, K)
        if not every:  # components without labelled rows: the usual start for the unlabelled rows
            resp = _missing.align_to_labels(initial_resp(Xinit, w, K, self.init_params, rng), labels)
        p = _missing.params_from_resp(Xinit, w, resp, structure, self.reg_covar, Xinit.dtype)
        weights_init, means_init, prec_init = inits
        if prec_init is not None:
            prec_chol = structure.prec_chol_from_precisions(prec_init)
            p = p.replace(precisions_cholesky=prec_chol, covariances=structure.cov_from_prec_chol(prec_chol))
        return p.replace(weights=p.weights if weights_init is None else weights_init,
                         means=p.means if means_init is None else means_init)

    def _check_incomplete_options(self, n_observed, names=None):
        """Out of core with missing values: a column observed in no row is
        the in-memory error (naming it), and ``noise``/``prior`` are refused
        as in memory. ``n_observed``: rows in which each column is observed."""
        never = np.where(np.asarray(n_observed) > 0, 0.0, np.nan)[None, :]  # one row: NaN where never seen
        _missing.check_observed_columns(never, names)
        for option in ("noise", "prior"):
            if getattr(self, option) is not None:
                raise NotImplementedError(f"{option}={getattr(self, option)!r} cannot be combined with "
                                          "missing values yet (missing='em' with NaN in X).")

    def _runner(self, prior):
        """The EM loop a restart runs and its extra options: plain EM or
        SQUAREM, with the prior and mclust's mixing options."""
        if self.accelerate == "squarem":
            if prior is not None:
                raise NotImplementedError("accelerate='squarem' cannot be combined with prior yet.")
            self._no_mixing_options("accelerate='squarem'")
            return accel.fit_squarem, {}
        extra = {} if prior is None else {"prior": prior}
        if self.equal_proportions:
            extra["equal_proportions"] = True
        if self._fixed():
            return _missing.fit, dict(extra, fixed=self._fixed())
        return em.fit, extra

    def _fixed(self):
        """``fixed`` checked: held parameters need their ``*_init``."""
        fixed = _missing.check_fixed(getattr(self, "fixed", ()))
        warm = self.warm_start and hasattr(self, "converged_")
        for name, init in (("weights", "weights_init"), ("means", "means_init"),
                           ("covariances", "precisions_init")):
            if name in fixed and getattr(self, init) is None and not warm:
                raise ValueError(f"fixed={tuple(fixed)!r} holds {name} at {init}, which is None. Pass {init}.")
        if fixed and self.accelerate is not None:
            raise NotImplementedError("fixed parameters cannot be combined with accelerate='squarem' yet.")
        return fixed

    @staticmethod
    def _check_start(run, params0):
        if run is accel.fit_squarem and not isinstance(params0.means, np.ndarray):
            raise NotImplementedError("accelerate='squarem' supports numpy arrays only.")

    def _singular_reason(self, params, structure):
        """Why a restart's parameters are a singular fit (a component at the
        reg_covar floor or with too few points; :mod:`emix._singular`), or None."""
        from ._singular import gaussian_reason

        return gaussian_reason(params.weights, params.means, params.covariances, self.covariance_type,
                               self.reg_covar, getattr(self, "_n_fit", None), params.precisions_cholesky)

    def _set_fitted(self, result, structure):
        p = result.params
        self.weights_ = p.weights
        self.means_ = p.means
        self.covariances_ = p.covariances
        self.precisions_cholesky_ = p.precisions_cholesky
        self.precisions_ = structure.precisions(p.precisions_cholesky)
        self.converged_ = bool(result.converged)
        self.n_iter_ = result.n_iter
        self.lower_bound_ = result.lower_bound
        self.lower_bounds_ = list(result.history)
        if p.noise_weight is not None:
            self.noise_weight_ = float(p.noise_weight)
            self.noise_log_volume_ = float(p.log_volume)
        else:
            for name in ("noise_weight_", "noise_log_volume_"):
                if hasattr(self, name):
                    delattr(self, name)

    def _infer_out_of_core(self, kind, X):
        """predict / predict_proba / score_samples on a Dask collection (lazy)
        or a block source (computed, concatenated). With a noise component,
        ``predict`` labels noise rows -1 and ``predict_proba`` has its column
        last, as in memory."""
        check_is_fitted(self)
        params, structure = self._params(), self._structure()
        allow = getattr(self, "missing", "error") == "em"
        if allow:  # rows with NaN: marginal densities over their observed coordinates, as in memory
            structure = _missing.IncompleteStructure(structure)
        if self._out_of_core_kind(X) == "dask":
            from .backends.dask import lazy_inference

            return lazy_inference(kind, X, params, structure, self.n_features_in_, refuse_nan=not allow)
        from .backends.chunked import ChunkedReducer
        from .backends.dask import _refuse_nan

        D = self.n_features_in_
        rows = block_rows_for(self._structure(), self.n_components, D, self.means_.dtype.itemsize,
                              self.working_memory)
        reducer = ChunkedReducer(X, D, self.means_.dtype, rows)
        if kind == "predict":
            fn = lambda Xb: self._column_labels(em.argmax_column(Xb, params, structure))
        elif kind == "predict_proba":
            fn = lambda Xb: np.exp(em.log_resp(Xb, params, structure)[1])
        else:
            fn = lambda Xb: em.log_density(Xb, params, structure)
        if allow:
            return reducer.map(fn)

        def guarded(Xb):  # missing='error': a block with NaN is the in-memory error, not NaN or arbitrary labels
            _refuse_nan(Xb)
            return fn(Xb)

        return reducer.map(guarded)

    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the model with one batch of rows (online EM).

        ``online_mode='stepwise'`` (default) runs stepwise EM: running
        per-row statistics ``S <- (1 - rho_t) S + rho_t s(batch)`` with
        ``rho_t = (t + learning_offset) ** -learning_decay``, and new
        parameters after every batch. ``online_mode='exact'`` sums the
        statistics of ``batches_per_pass`` batches under fixed parameters and
        then takes one M-step (one batch-EM iteration per pass). See
        :mod:`emix.online` for when to use which.

        The first call initializes from its batch with ``init_params`` (or
        from ``weights_init``/``means_init``/``precisions_init`` when all are
        given); after ``fit`` or ``load``, calls continue from the fitted
        parameters. With ``missing='em'`` batches may hold NaN: the E-step
        is the missing-value one, and the first batch initializes on its
        values with the holes filled by column means.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : GaussianMixture
        """
        from . import online

        V.check_estimator_params(self)
        self._no_prior("partial_fit")
        self._no_mixing_options("partial_fit")
        self._check_noise_inference("partial_fit")
        if self.accelerate is not None:
            warnings.warn(f"accelerate={self.accelerate!r} has no effect in partial_fit (online EM takes "
                          "one step per batch); it applies to fit.", UserWarning, stacklevel=2)
        if _xp.is_array_api_input(X):
            raise NotImplementedError(
                "partial_fit supports numpy arrays (and array-likes) only; got a "
                f"{type(X).__module__}.{type(X).__name__}. Convert the batch with .cpu().numpy(), "
                "or use fit, which runs on PyTorch/CuPy arrays."
            )
        online.check_online_params(self)
        structure = self._structure()
        first = not hasattr(self, "means_")
        X = self._validate_nan(X, reset=first)  # NaN: missing values under missing='em'
        if not first:
            X = X.astype(self.means_.dtype, copy=False)
        w = V.check_sample_weight(sample_weight, X.shape[0], X.dtype)
        nan = self.missing == "em" and _missing.has_missing(X)
        state = getattr(self, "_online", None)
        if state is not None and (state.mode != self.online_mode or first
                                  or state.params.means is not self.means_):
            state = None  # fit, load, set_params or a mode change since: start over
        if state is None:
            if first:
                n_eff = X.shape[0] if w is None else int(np.count_nonzero(w))
                inits = self._check_inits(X, structure)
                if n_eff < self.n_components and not all(i is not None for i in inits):
                    raise ValueError(
                        f"The first partial_fit batch initializes the model and needs at least n_components = "
                        f"{self.n_components} rows (with positive weight). Got {n_eff}."
                    )
                rng = check_random_state(self.random_state)
                Xinit = X
                if nan:  # initialization on the batch with its holes filled by column means, as fit does
                    if not all(i is not None for i in inits):
                        _missing.check_observed_columns(X, getattr(self, "feature_names_in_", None))
                    Xinit = _missing.column_fill(X, w)
                params = self._initial_params(Xinit, w, structure, rng, self._reducer(Xinit, w), inits)
            else:
                params = self._params()
            state = online.OnlineState(mode=self.online_mode, params=params)
            if not first and self.online_mode == "stepwise":
                state.stats = online.stats_of_params(params, structure, self.reg_covar)
                state.t = 1
        e_structure = _missing.IncompleteStructure(structure) if nan else structure
        batch = self._reducer(X, w)(lambda Xb, wb: em.e_step(Xb, wb, state.params, e_structure))
        params, n_iter, converged, lower_bound = online.absorb_batch(
            state, batch, self, m_step=lambda S: em.m_step(S, structure, self.reg_covar, X.dtype),
            bound=online.mean_loglik, first=first,
            recenter=lambda S, shift: online.recenter(S, shift, structure))
        self._set_fitted(FitResult(params, n_iter, converged, lower_bound, ()), structure)
        self.lower_bounds_ = state.history
        self._online = state
        return self

    # ------------------------------------------------------------- inference
    def _check_X(self, X):
        check_is_fitted(self)
        # scikit-learn's finiteness check sums X: huge finite values of both
        # signs give inf - inf there (a spurious 'invalid value' warning)
        with np.errstate(invalid="ignore"):
            return self._validate_nan(X, reset=False)

    def _log_resp(self, X):
        params, structure = self._params(), self._structure_for(X)
        parts = [em.log_resp(Xb, params, structure) for Xb, _ in self._reducer(X).blocks()]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _by_blocks(self, X, fn):
        """``fn(X_block, params, structure)`` over the blocks of ``X``,
        concatenated: per-row results without an (n, K) temporary."""
        params, structure = self._params(), self._structure_for(X)
        return self._reducer(X).map(lambda Xb: fn(Xb, params, structure))

    def score_samples(self, X):
        """Log density ``log p(x)`` of each row of ``X``.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            Never NaN for finite ``X``. A row so far from every component
            that ``log p(x)`` is below the most negative number of the dtype
            (about ``-1.8e308`` in float64, ``-3.4e38`` in float32; in float64
            from ``|x|`` of about ``1e154`` on, with unit variances) gets
            ``-inf``: the density underflows. ``score``, ``bic``, ``aic`` and
            ``icl`` are then ``-inf`` / ``inf``.
        """
        if self._out_of_core_kind(X) is not None:
            return self._infer_out_of_core("score_samples", X)
        if _aa.uses_array_api(self, X):
            self._check_noise_inference("PyTorch/CuPy arrays")
            return _aa.score_samples(self, X)
        X = self._check_X(X)
        return self._by_blocks(X, lambda Xb, p, s: em.log_density(Xb, p, s))

    def score(self, X, y=None, sample_weight=None):
        """Mean (weighted) log-likelihood of ``X``."""
        if sample_weight is None and self._out_of_core_kind(X) is not None:
            ll = self._infer_out_of_core("score_samples", X)
            return float(ll.astype(np.float64).mean().compute() if hasattr(ll, "compute") else ll.mean(dtype=np.float64))
        if _aa.uses_array_api(self, X):
            self._check_noise_inference("PyTorch/CuPy arrays")
            return _aa.score(self, X, sample_weight)
        X = self._check_X(X)
        w = V.check_sample_weight(sample_weight, X.shape[0], np.float64)
        ll = self._by_blocks(X, lambda Xb, p, s: em.log_density(Xb, p, s))
        return float(np.average(ll.astype(np.float64), weights=w))

    def predict(self, X):
        """Most probable component of each row of ``X`` (``argmax`` of the
        weighted log densities; for rows far from every component, the
        component that takes the row in :meth:`predict_proba`)."""
        if self._out_of_core_kind(X) is not None:
            return self._infer_out_of_core("predict", X)
        if _aa.uses_array_api(self, X):
            self._check_noise_inference("PyTorch/CuPy arrays")
            return _aa.predict(self, X)
        X = self._check_X(X)
        return self._by_blocks(X, lambda Xb, p, s: self._column_labels(em.argmax_column(Xb, p, s)))

    def predict_proba(self, X):
        """Responsibilities: posterior probability of each component for each row.

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            (n_samples, n_components + 1) for a model with a noise component:
            the last column is the noise. Defined for every finite row: for a
            row far from every component (where the densities underflow) the
            exact differences of the log densities decide
            (:func:`emix.core.em.far_log_prob`), so in the limit the component
            with the largest term takes it all (the smallest
            ``(x/s)^T P_k (x/s)``, ``s = max|x|``; on ties, as for 'tied', the
            linear term; then weights and determinants), and the noise
            component takes every far row.
        """
        if self._out_of_core_kind(X) is not None:
            return self._infer_out_of_core("predict_proba", X)
        if _aa.uses_array_api(self, X):
            self._check_noise_inference("PyTorch/CuPy arrays")
            return _aa.predict_proba(self, X)
        X = self._check_X(X)
        return np.exp(self._log_resp(X)[1])

    def sample(self, n_samples=1):
        """Draw ``n_samples`` rows from the fitted mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component of each row (rows are grouped by component).
        """
        check_is_fitted(self)
        if getattr(self, "noise_weight_", None) is not None:
            raise NotImplementedError(
                "sample() is not available for a model with a noise component (noise="
                f"{self.noise!r}): only its volume is stored, not its region."
            )
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            # scikit-learn's sentence first, for code that matches it
            raise ValueError(f"Invalid value for 'n_samples': {n_samples!r}. The sampling requires at "
                             f"least one sample. n_samples must be an integer >= 1. Got {n_samples!r}.")
        if _aa.uses_array_api(self):
            return _aa.sample(self, n_samples)
        return _common.draw_sample(self, n_samples)

    def uncertainty(self, X):
        """Classification uncertainty ``1 - max_k r_nk`` of each row (mclust's
        ``uncertainty``). Returns an ndarray of shape (n_samples,)."""
        from .selection import uncertainty

        return uncertainty(self, X)

    # ------------------------------------------------------------- criteria
    def _n_parameters(self):
        equal = bool(getattr(self, "equal_proportions", False))
        p = criteria.n_parameters(
            self._structure(), *self.means_.shape,
            equal_proportions=equal,
            noise=getattr(self, "noise_weight_", None) is not None,
        )
        fixed = _missing.check_fixed(getattr(self, "fixed", ()))  # held parameters are not estimated
        K, D = self.means_.shape
        p -= ("weights" in fixed and not equal) * (K - 1) + ("means" in fixed) * K * D
        return int(p - ("covariances" in fixed) * self._structure().n_cov_parameters(K, D))

    def _loglik_sum(self, X, sample_weight):
        X = self._check_X(X)
        w = V.check_sample_weight(sample_weight, X.shape[0], np.float64)
        ll = self._by_blocks(X, lambda Xb, p, s: em.log_density(Xb, p, s)).astype(np.float64)
        n_eff = X.shape[0] if w is None else float(w.sum())
        return (ll.sum() if w is None else ll @ w), n_eff, X, w

    def bic(self, X, sample_weight=None):
        """Bayesian information criterion ``-2 log L + p log n`` (lower is better)."""
        if _aa.uses_array_api(self, X):
            self._check_noise_inference("PyTorch/CuPy arrays")
            return _aa.criterion(self, X, sample_weight, "bic")
        ll, n_eff, _, _ = self._loglik_sum(X, sample_weight)
        return criteria.bic(ll, self._n_parameters(), n_eff)

    def aic(self, X, sample_weight=None):
        """Akaike information criterion ``-2 log L + 2 p`` (lower is better)."""
        if _aa.uses_array_api(self, X):
            self._check_noise_inference("PyTorch/CuPy arrays")
            return _aa.criterion(self, X, sample_weight, "aic")
        ll, _, _, _ = self._loglik_sum(X, sample_weight)
        return criteria.aic(ll, self._n_parameters())

    def icl(self, X, sample_weight=None):
        """Integrated completed likelihood, ``BIC - 2 sum_n log max_k r_nk``
        (lower is better; mclust's ICL is minus this)."""
        if _aa.uses_array_api(self, X):
            self._check_noise_inference("PyTorch/CuPy arrays")
            return _aa.criterion(self, X, sample_weight, "icl")
        ll, n_eff, X, w = self._loglik_sum(X, sample_weight)
        log_max = np.max(self._log_resp(X)[1], axis=1).astype(np.float64)
        s = log_max.sum() if w is None else log_max @ w
        return criteria.icl(ll, self._n_parameters(), n_eff, s)
