"""The component-family protocol and the mixture driver built on it.

A *component family* (Poisson, categorical, Student-t, a product of
per-column families, ...) is one object that answers the questions EM asks
of a component, and nothing about the mixture:

=====================================  ==========================================
``encode(X, meta=None)``               the data as a float array, and what it learned
                                       at fit time (e.g. category labels); at
                                       predict time it checks ``X`` against ``meta``
``log_prob(X, comp)``                  (n, K) per-component log densities
``suff_stats(X, rw, comp)``            additive statistics (dict of float64 arrays)
                                       of rows ``X`` with weighted responsibilities
                                       ``rw = w_n r_nk``
``m_step(sums, nk, comp_prev)``        component parameters maximizing the expected
                                       complete-data log-likelihood
``n_parameters(comp)``                 free parameters of the K components
``sample(comp, counts, rng)``          rows drawn from each component
``check_params(comp, K, D)``           validation (model files, user starts)
``config()``                           ``{"name": ..., "options": {...}}``, JSON-able:
                                       ``get_family(name, **options)`` rebuilds it
``singular_reason(comp, weights, n)``  why a fit is singular (:mod:`emix._singular`),
                                       or None; default: a component with less
                                       than one effective point (``weights * n``)
``merge_meta(metas)`` (optional)       what ``encode`` would learn from all blocks
                                       together, from what it learned per block (for
                                       block sources and Dask; see emix._family_blocks)
``with_meta(meta)``                    the family configured with what ``encode``
                                       learned: a NEW instance where the family keeps
                                       some of it (categories, column layout), else
                                       ``self`` (default); the estimators fit, predict
                                       and save with this instance
=====================================  ==========================================

Families are immutable: ``encode`` and ``merge_meta`` only *return* what they
learn; the estimator stores it (``encoding_``) and fits with
``family.with_meta(meta)``.

``encode``'s ``meta`` (the fitted ``encoding_``) must be JSON-able (dicts,
lists, strings, numbers, None) so that model files store it without pickle.
A family with ``raw_input = True`` receives the user's table (a DataFrame or
an object array: strings, categoricals) in ``encode``; the others receive a
validated float array.

Component parameters ``comp`` are a flat ``dict`` of arrays (the names are
the family's fitted attributes without the trailing underscore), so model
files, ``warm_start`` and the estimator's attributes need no per-family code.

Everything about the *mixture* lives here, once: the mixing weights and
their M-step, log-space responsibilities, the log-likelihood, the
additive :class:`Stats`. A family whose E-step has latent variables of its
own (Student-t's scale weights) computes them inside ``suff_stats``
(or a fused ``e_step``); they are sums like the others.

The Gaussian family keeps its fused kernels behind the same loop
(:func:`emix.core.em.fit`); :mod:`emix.families.gaussian.family` exposes it
through this protocol too, for mixed data and the contract tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.numerics import eps_nk, logsumexp
from ..exceptions import DegenerateComponentError


def _add(a, b):
    if isinstance(a, dict):
        if a.keys() != b.keys():
            raise ValueError("Cannot add statistics of different families (their fields differ).")
        return {k: _add(a[k], b[k]) for k in a}
    return a + b


def _scale(a, f):
    if isinstance(a, dict):
        return {k: _scale(v, f) for k, v in a.items()}
    return a * f


@dataclass(frozen=True)
class Stats:
    """Additive statistics of one E-step over some rows, for any family.

    ``nk[k] = sum_n w_n r_nk``; ``sums`` is the family's own statistics (a
    dict, possibly nested, of float64 arrays); ``loglik = sum_n w_n log
    p(x_n)`` and ``sum_w = sum_n w_n``. Statistics of disjoint row sets under
    the same parameters add with ``+``.
    """

    nk: np.ndarray
    sums: dict
    loglik: float
    sum_w: float

    def __add__(self, other):
        if not isinstance(other, Stats):
            return NotImplemented
        return Stats(self.nk + other.nk, _add(self.sums, other.sums), self.loglik + other.loglik,
                     self.sum_w + other.sum_w)

    def __radd__(self, other):
        if other == 0:  # sum()
            return self
        return NotImplemented

    def scaled(self, factor: float) -> "Stats":
        """Statistics times ``factor`` (stepwise online EM)."""
        return Stats(self.nk * factor, _scale(self.sums, factor), self.loglik * factor, self.sum_w * factor)


@dataclass(frozen=True)
class MixtureParams:
    """Mixing weights and the family's component parameters (a dict of arrays)."""

    weights: np.ndarray
    components: dict

    @property
    def n_components(self) -> int:
        return int(self.weights.shape[0])

    def replace(self, **changes) -> "MixtureParams":
        from dataclasses import replace

        return replace(self, **changes)


class ComponentFamily:
    """Base class with the protocol's defaults; see the module docstring.

    Subclasses set ``name`` and implement ``log_prob``, ``suff_stats``,
    ``m_step``, ``n_parameters``, ``sample`` and ``check_params``. Options
    (e.g. a pseudo-count) are constructor arguments; instances are immutable
    and picklable (restarts run in worker processes).
    """

    name = "?"
    #: attribute names (without ``_``) of ``comp``, in documentation order
    param_names: tuple = ()
    #: whether rows may hold NaN (missing answers, marginalized)
    allows_missing = False
    #: whether ``encode`` takes the user's table as is (strings, categoricals)
    raw_input = False

    def config(self):
        """``{"name": name, "options": {...}}`` (JSON-able) that rebuilds this
        family through :func:`emix.families.get_family`."""
        return {"name": self.name, "options": {}}

    def encode(self, X, meta=None):
        """``X`` (already a 2-D float array) checked for this family; returns
        ``(X, meta)``. The default accepts finite floats."""
        X = np.asarray(X, dtype=np.float64) if X.dtype.kind != "f" else X
        if not self.allows_missing and not np.all(np.isfinite(X)):
            raise ValueError(f"The {self.name} family needs finite values; the data hold NaN or infinity.")
        return X, meta

    def with_meta(self, meta):
        """This family configured with ``meta``, what :meth:`encode` learned
        (the estimator's ``encoding_``). Families that keep nothing of it
        return ``self``; the others return a new instance (this one is left
        as it is), whose :meth:`config` then rebuilds the fitted family."""
        return self

    def init_features(self, X):
        """A numeric matrix for k-means style initialization (default ``X``
        with missing entries set to their column mean)."""
        if not np.isnan(X).any():
            return X
        X = X.copy()
        col = np.nanmean(X, axis=0)
        r, c = np.nonzero(np.isnan(X))
        X[r, c] = np.where(np.isnan(col[c]), 0.0, col[c])
        return X

    def log_prob_cached(self, X, comp):
        """``(log_prob(X, comp), cache)``. A family whose statistics reuse
        work done for its densities (Student-t: the Mahalanobis distances)
        returns that work as ``cache``, and the E-step then calls
        ``suff_stats(X, rw, comp, cache=cache)``. Default: no cache."""
        return self.log_prob(X, comp), None

    def decode_sample(self, X, meta):
        """Sampled float rows back in the user's coding (default: as is)."""
        return X

    def singular_reason(self, comp, weights, n_samples):
        """Why the fitted ``comp``/``weights`` are a singular fit, or None
        (:mod:`emix._singular`); ``n_samples``: rows of the fit (None when
        unknown). Default, for families with a bounded likelihood (where
        probabilities of 0 or 1 are legitimate estimates): a component with
        less than one effective point ``weights_k * n_samples``."""
        from .._singular import size_reason

        return size_reason(weights, n_samples, 1.0)


def empty_component_check(nk, family_name, min_size=0.0):
    """The degenerate-restart policy's trigger for families without a
    covariance: a component whose effective size is (numerically) zero."""
    bad = np.flatnonzero(nk <= min_size)
    if len(bad):
        k = int(bad[0])
        raise DegenerateComponentError(
            f"Component {k} is empty: its effective number of points is {float(nk[k]):.4g} "
            f"({family_name} family). Try fewer components, another initialization, or a "
            "pseudo-count (pseudo_count > 0).",
            component=k, effective_size=float(nk[k]))


class Mixture:
    """The mixture driver: binds a :class:`ComponentFamily` to the generic
    EM loop (:func:`emix.core.loop.run_em`) with the mixing weights'
    M-step, and provides the E-step that every reducer maps over blocks.
    Picklable (sent to restart workers and Dask)."""

    def __init__(self, family, dtype=np.float64):
        self.family = family
        self.dtype = np.dtype(dtype)
        self.name = family.name

    def weighted_log_prob(self, X, params: MixtureParams):
        lp = np.asarray(self.family.log_prob(X, params.components), dtype=np.float64)
        with np.errstate(divide="ignore"):
            lp = lp + np.log(params.weights.astype(np.float64))
        return lp

    def log_resp(self, X, params):
        return self._log_resp(self.weighted_log_prob(X, params))

    def _log_resp(self, lp):
        norm = logsumexp(lp, axis=1)
        with np.errstate(invalid="ignore"):
            lr = lp - norm[:, None]
        bad = ~np.isfinite(norm)
        if bad.any():  # a row no component can produce: see emix.exceptions
            lr[bad] = _fallback_log_resp(lp[bad])
        return norm, lr

    def e_step(self, X, w, params: MixtureParams) -> Stats:
        lp, cache = self.family.log_prob_cached(X, params.components)
        with np.errstate(divide="ignore"):
            logw = np.log(params.weights.astype(np.float64))
        # Responsibilities in the (K, n) layout, r_nk = exp(l_nk - m_n) / s_n with
        # m_n = max_k l_nk and s_n = sum_k exp(l_nk - m_n): each reduction over the
        # components is then K - 1 elementwise passes over contiguous rows instead
        # of a short strided reduction per row (several times faster for small K).
        # A block with a row whose largest term is not finite (no component can
        # produce it, or a NaN) takes the general path below.
        RT = np.array(np.asarray(lp, dtype=np.float64).T, order="C")
        RT += logw[:, None]
        m = RT.max(axis=0)
        if np.isfinite(m).all():
            RT -= m
            np.exp(RT, out=RT)
            s = RT.sum(axis=0)
            norm = np.log(s)
            norm += m
            if w is None:
                RT /= s
                loglik, sum_w = float(norm.sum()), float(X.shape[0])
            else:
                wf = w.astype(np.float64)
                RT *= wf / s
                loglik, sum_w = float(norm @ wf), float(wf.sum())
            return self._stats(X, RT.T, RT.sum(axis=1), loglik, sum_w, params.components, cache)
        lp = np.asarray(lp, dtype=np.float64) + logw
        norm, lr = self._log_resp(lp)
        bad = ~np.isfinite(norm)
        if w is not None and bad.any():  # rows of weight 0 count for nothing, whatever their density
            bad &= w > 0
            norm = np.where(w > 0, norm, 0.0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DegenerateComponentError(
                f"Row {i} of a block has zero probability under every component of the current "
                f"{self.family.name} model (log-likelihood {norm[i]}). With maximum likelihood this "
                "happens when a category or value was seen by no component; try pseudo_count > 0.",
                component=None, effective_size=None)
        resp = np.exp(lr)
        if w is not None:
            wf = w.astype(np.float64)
            rw = resp * wf[:, None]
            loglik, sum_w = float(norm @ wf), float(wf.sum())
        else:
            rw = resp
            loglik, sum_w = float(norm.sum()), float(X.shape[0])
        return self._stats(X, rw, rw.sum(axis=0), loglik, sum_w, params.components, cache)

    def _stats(self, X, rw, nk, loglik, sum_w, comp, cache=None):
        """The family's sums of weighted responsibilities ``rw``, as :class:`Stats`
        (``cache``: what ``log_prob_cached`` returned, passed on when there is one)."""
        kw = {} if cache is None else {"cache": cache}
        return Stats(nk, self.family.suff_stats(X, rw, comp, **kw), loglik, sum_w)

    def stats_from_resp(self, X, w, resp, params_or_none):
        rw = resp if w is None else resp * w.astype(np.float64)[:, None]
        comp = None if params_or_none is None else params_or_none.components
        return self._stats(X, rw, rw.sum(axis=0), 0.0, float(X.shape[0]) if w is None else float(w.sum()), comp)

    def m_step(self, stats: Stats, params_prev) -> MixtureParams:
        nk = np.asarray(stats.nk, dtype=np.float64) + eps_nk(self.dtype)
        comp_prev = None if params_prev is None else params_prev.components
        comp = self.family.m_step(stats.sums, nk, comp_prev)
        return MixtureParams(weights=(nk / nk.sum()), components=comp)

    def n_parameters(self, params: MixtureParams) -> int:
        return int(self.family.n_parameters(params.components) + params.n_components - 1)


def _fallback_log_resp(lp):
    """Log responsibilities of rows whose normalizer is not finite: every
    weighted log density -inf, or a +inf, or a NaN term (a NaN component gets
    nothing: it is taken as -inf). The largest term takes all, ties share
    equally; a row whose largest term is finite is normalized as usual."""
    out = np.full(lp.shape, -np.inf)
    for i, row in enumerate(lp):
        row = np.where(np.isnan(row), -np.inf, row)
        m = np.max(row)
        if np.isfinite(m):
            out[i] = row - (m + np.log(np.sum(np.exp(row - m))))
            continue
        top = row == m
        out[i, top] = -np.log(top.sum())
    return out


def fit_mixture(reduce, params0, mixture, *, tol, max_iter, reg_covar=None, lower_bound0=-np.inf, callback=None):
    """The EM loop for a component family (``reg_covar`` is accepted for the
    restart loop's common signature and not used: families take their own
    regularization options)."""
    from ..core.loop import run_em

    return run_em(lambda p: reduce(lambda Xb, wb: mixture.e_step(Xb, wb, p)), mixture.m_step, params0,
                  tol=tol, max_iter=max_iter, lower_bound0=lower_bound0, callback=callback)
