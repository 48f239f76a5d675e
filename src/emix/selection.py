"""Choosing the number of components and the covariance model, as mclust does.

:func:`select` fits every (n_components, covariance_type) cell of a grid,
in parallel across processes, scores each fit by BIC, ICL and AIC, and keeps
the best by the chosen criterion.

Sign convention
---------------
emix's criteria are **lower is better** (scikit-learn's convention):

- ``BIC = -2 log L + p log n``
- ``ICL = BIC - 2 sum_n log max_k r_nk``
- ``AIC = -2 log L + 2 p``

mclust reports ``BIC = 2 log L - p log n`` and ``ICL = BIC + 2 sum log max r``
(higher is better): mclust's BIC is exactly minus emix's, so a published mclust
BIC of ``-2314.386`` is an emix BIC of ``2314.386``.

Reproducibility
---------------
Each cell's ``random_state`` is derived from ``random_state`` and the cell
itself (``numpy.random.SeedSequence`` with the cell's (K, model) as spawn
key), so a cell's fit does not depend on the rest of the grid, on ``n_jobs``,
or on the order in which cells run.

Singular cells
--------------
A cell whose fit is singular in every restart (a component at the
``reg_covar`` floor, numerically singular, or with too few points for its
own covariance; the rule is in :mod:`emix._singular`) keeps its numbers in
``rows`` with the reason in ``singular``, but is not ranked: like mclust's
NA cells it cannot be chosen, and :meth:`SelectionResult.table` and the
plots show it as missing. Its likelihood comes from the floor, not from the
data, and would otherwise win (Old Faithful: a K = 5 VVI fit with 14 equal
waiting times, BIC 2233 against EEE's 2314).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np

from .core import criteria
from .core import small as _small

CRITERIA = ("bic", "icl", "aic")
#: ``select``'s default ``init_params``: every cell is fitted from emix's
#: hierarchical start and from mclust's (``init_params='mclust'``), and the
#: better fit is kept (a regular fit before a singular one, then the higher
#: likelihood), so that no cell is worse than mclustBIC's.
BOTH_STARTS = "hierarchical+mclust"
ROW_KEYS = (
    "n_components", "covariance_type", "log_likelihood", "n_parameters",
    "bic", "icl", "aic", "converged", "n_iter", "error", "singular", "start", "other_singular",
)


def uncertainty(model, X):
    """Classification uncertainty ``1 - max_k r_nk`` of each row (mclust's
    ``uncertainty``): 0 for a row assigned with certainty, up to
    ``1 - 1/K`` for a row equally likely under all K components.

    Parameters
    ----------
    model : fitted emix.GaussianMixture
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    u : ndarray of shape (n_samples,)
    """
    resp = model.predict_proba(X)
    return 1.0 - np.max(resp, axis=1)


def default_models(n_features):
    """mclust's default models: E and V for one feature, else all 14."""
    from .families.gaussian.mclust import MCLUST_MODELS

    return ("E", "V") if n_features == 1 else MCLUST_MODELS


def _entropy(random_state):
    if random_state is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative integer. Got {random_state!r}.")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    raise TypeError(
        "random_state must be None, a non-negative int, a numpy RandomState or "
        f"Generator. Got {random_state!r}."
    )


def cell_seed(entropy, n_components, covariance_type):
    """The ``random_state`` of one grid cell (independent of the grid)."""
    key = (int(n_components), zlib.crc32(str(covariance_type).encode()))
    ss = np.random.SeedSequence(entropy, spawn_key=key)
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _start_from_labels(X, sample_weight, K, structure, labels, reg_covar, prior=None):
    """weights/means/precisions ``*_init`` from a hard partition: the same
    M-step that ``init_params`` methods go through inside the estimator
    (the posterior-mode one when a ``prior`` is given)."""
    from .core import em
    from .core.prior import resolve_prior

    resp = np.zeros((X.shape[0], K), dtype=X.dtype)
    resp[np.arange(X.shape[0]), labels] = 1
    shift = np.broadcast_to(np.average(X, axis=0, weights=sample_weight).astype(X.dtype), (K, X.shape[1])).copy()
    stats = em.stats_from_resp(X, sample_weight, resp, shift, structure)
    prior = resolve_prior(prior, X, K, sample_weight)
    p0 = em.m_step(stats, structure, reg_covar, X.dtype, prior=prior)
    return {"weights_init": p0.weights, "means_init": p0.means,
            "precisions_init": structure.precisions(p0.precisions_cholesky)}


def _fit_cell(X, sample_weight, K, model, seed, n_init, gm_kwargs, labels=None, block_threads=None,
              other=None, known=None):
    """Fit one cell; never raises (a failure becomes the row's ``error``).
    ``labels``: a shared hierarchical partition into K groups to start from;
    ``block_threads``: at most this many threads over blocks of rows (the
    cell's share of the cores when cells run in parallel); ``other``: a
    second start (mclust's, ``(labels, rows)``), fitted too, the better of
    the two kept (:func:`_better`); ``known``: the known labels of a
    semi-supervised fit (``fit(X, labels=known)``; -1 for unlabelled rows)."""
    from ._parallel import block_threads_cap, one_blas_thread

    def empty_row():
        row = dict.fromkeys(ROW_KEYS)
        row.update(n_components=int(K), covariance_type=model, converged=False, n_iter=0)
        for key in ("log_likelihood", "bic", "icl", "aic"):
            row[key] = math.nan
        return row

    # Cells are the unit of parallelism: BLAS threads inside one (usually
    # small) fit only lose time, badly so for the many tiny LAPACK calls on a
    # loaded machine (11x on Old Faithful with 2 contended cores).
    # No more threads over blocks of rows than the cell's share of the cores
    # (a pool only: the blocks, and so the fit, do not change).
    if known is not None and K <= int(known.max()):  # labels name components this K does not have
        row = empty_row()
        row["error"] = (f"not applicable: the labels name component {int(known.max())}, so K must be at "
                        f"least {int(known.max()) + 1}")
        return row, None
    with (contextlib.nullcontext() if _POOLED.get() else one_blas_thread()), block_threads_cap(block_threads):
        best = _fit_cell_inner(X, sample_weight, K, model, seed, n_init, gm_kwargs, labels, empty_row(), known)
        best[0]["start"] = "mclust" if isinstance(labels, tuple) else gm_kwargs.get("init_params")
        if other is not None:
            alt = _fit_cell_inner(X, sample_weight, K, model, seed, n_init, gm_kwargs, other, empty_row(), known)
            alt[0]["start"] = "mclust"
            kept = _better(best, alt)
            lost = alt if kept is best else best
            if lost[0].get("singular") and lost[0]["log_likelihood"] > kept[0]["log_likelihood"]:
                kept[0]["other_singular"] = lost[0]["singular"]  # a higher likelihood, not kept
            best = kept
        return best


def _better(a, b):
    """The better of two fits ``(row, model)`` of one cell: a fit beats a
    failed one, a regular fit a singular one (:mod:`emix._singular`: a higher
    likelihood from a component collapsing onto a few points is not a better
    fit), then the higher log-likelihood; ``a`` on ties."""
    def rank(res):
        row, model = res
        ok = model is not None and row["error"] is None and np.isfinite(row["log_likelihood"])
        return (ok, ok and not row.get("singular"), row["log_likelihood"] if ok else -math.inf)

    return b if rank(b) > rank(a) else a


def _fit_cell_inner(X, sample_weight, K, model, seed, n_init, gm_kwargs, labels, row, known=None):
    from . import _validation as _V
    from .backends import array_api as _aa
    from .core import missing as _missing
    from .estimator import GaussianMixture
    from .families.gaussian import get_structure

    try:
        structure = get_structure(model)
        gm = GaussianMixture(n_components=K, covariance_type=model, n_init=n_init,
                             random_state=seed, **gm_kwargs)
        row["n_parameters"] = int(criteria.n_parameters(
            structure, K, X.shape[1], equal_proportions=bool(gm_kwargs.get("equal_proportions", False)),
            noise=gm_kwargs.get("noise") is not None))
        mclust_me = isinstance(labels, tuple)  # (labels, rows): mclust's me(), init_params='mclust'
        nan = _missing.has_missing(X)
        if labels is not None and not mclust_me:
            Xs = _missing.column_fill(X, sample_weight) if nan else X  # the estimator's fill
            for name, value in _start_from_labels(Xs, sample_weight, K, structure, labels,
                                                  gm_kwargs.get("reg_covar", gm.reg_covar),
                                                  gm_kwargs.get("prior")).items():
                setattr(gm, name, value)  # set_params' effect, without its per-call introspection
        small_fit = (not nan and known is None and type(X) is np.ndarray and X.dtype == np.float64
                     and _small.available() and bool(_small._loop_code(structure)))
        with (contextlib.nullcontext() if _POOLED.get() else warnings.catch_warnings()):
            if not _POOLED.get():  # (a pool holds warnings off for all its cells)
                warnings.simplefilter("ignore")
            if small_fit and labels is not None and not mclust_me and n_init == 1 and gm.max_iter >= 1 \
                    and not set(gm_kwargs) - _PLAIN_KWARGS:
                _fit_from_start(gm, X, sample_weight, structure)
            elif mclust_me:
                from .core.mclust_hc import fit_like_mclust

                fit_like_mclust(gm, X, labels[0], labels[1], sample_weight)
            elif known is not None:
                gm.fit(X, sample_weight=sample_weight, labels=known)
            else:
                gm.fit(X, sample_weight=sample_weight)
            n_eff = float(X.shape[0]) if sample_weight is None else float(np.sum(sample_weight, dtype=np.float64))
            fast = _small.loglik_and_entropy(X, sample_weight, gm._params(), structure) if small_fit else None
            if fast is not None:  # both sums from one compiled E-step (the figures of the branch below)
                ll, s = fast
            elif known is not None:  # the semi-supervised objective and fixed responsibilities of labelled rows
                ll, log_max = _missing.labelled_loglik(gm, X, known, sample_weight)
            elif type(X) is np.ndarray and not _aa.uses_array_api(gm, X) and not _missing.has_missing(X):
                # what score() and predict_proba() compute, from one validation
                # and one pass: log_resp's per-row log p(x) is score_samples'
                # (the same logsumexp and far-row rule), so the figures are
                # the same, at half the cost of the two public calls (complete
                # rows only: with NaN the two differ in the last bits)
                Xv = gm._check_X(X)
                norm, log_r = gm._log_resp(Xv)
                wv = _V.check_sample_weight(sample_weight, Xv.shape[0], np.float64)
                ll = float(np.average(norm.astype(np.float64), weights=wv)) * n_eff
                log_max = np.log(np.max(np.exp(log_r), axis=1).astype(np.float64))
            else:  # public methods only: log L = n_eff * mean log-likelihood
                ll = gm.score(X, sample_weight=sample_weight) * n_eff
                log_max = np.log(np.max(gm.predict_proba(X), axis=1).astype(np.float64))
        if fast is None:  # the per-row log max_k r_nk of the branches above, weighted
            s = log_max.sum() if sample_weight is None else float(log_max @ np.asarray(sample_weight, np.float64))
        if gm_kwargs.get("fixed"):  # held parameters are not estimated
            row["n_parameters"] = gm._n_parameters()
        p = row["n_parameters"]
        row.update(
            log_likelihood=float(ll),
            bic=float(criteria.bic(ll, p, n_eff)),
            icl=float(criteria.icl(ll, p, n_eff, s)),
            aic=float(criteria.aic(ll, p)),
            converged=bool(gm.converged_),
            n_iter=int(gm.n_iter_),
            singular=_cell_singular(gm, X.shape[0]),
        )
        if not np.isfinite(row["log_likelihood"]):
            raise FloatingPointError(f"log-likelihood is {row['log_likelihood']}")
        return row, gm
    except Exception as exc:  # recorded, never aborts the grid
        row["error"] = f"{type(exc).__name__}: {exc}"
        for key in ("log_likelihood", "bic", "icl", "aic"):
            row[key] = math.nan
        return row, None


#: ``select`` keyword arguments under which a cell's hierarchical-start fit
#: may run as :func:`_fit_from_start` (anything else goes through ``fit``).
_PLAIN_KWARGS = frozenset({"init_params", "tol", "max_iter", "reg_covar", "n_threads"})


def _fit_from_start(gm, X, sample_weight, structure):
    """``gm.fit(X, sample_weight)`` for one restart from the ``*_init`` that
    select has just set from its own M-step (so valid), without the
    estimator's per-call validation, initialization and final labelling:
    the same start (``_initial_params`` from the same ``*_init``), the same
    EM (:func:`emix.core.em.fit`, compiled for these models), the same
    fitted attributes and singular-fit verdict as ``fit`` with ``n_init=1``.
    Raises as ``fit`` does (``DegenerateComponentError``)."""
    from .backends.reduce import BlockReducer
    from .core import em

    w = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float64)
    p0 = gm._initial_params(X, w, structure, None, None, (gm.weights_init, gm.means_init, gm.precisions_init))
    result = em.fit(BlockReducer(X, w), p0, structure, tol=gm.tol, max_iter=gm.max_iter, reg_covar=gm.reg_covar)
    gm.n_features_in_ = X.shape[1]
    gm._n_fit = int(X.shape[0])
    gm._set_fitted(result, structure)
    gm._fit_singular = gm._singular_reason(result.params, structure)
    return gm


def _cell_singular(model, n_samples):
    """Why a cell's fit is singular (None: regular): the verdict its restart
    loop recorded, or the rule applied to the fitted model when the fit did
    not go through that loop (:mod:`emix._singular`)."""
    if hasattr(model, "_fit_singular"):
        return model._fit_singular
    from ._singular import model_reason

    return model_reason(model, n_samples)


def _fit_cell_at(i, *args):
    """:func:`_fit_cell` tagged with the cell's index in the grid."""
    return i, _fit_cell(*args)


def _as_completed(Parallel, n_jobs, jobs):
    """The jobs' results as they finish (joblib >= 1.4), else in order as
    they come (joblib 1.3), else all at the end (older joblib)."""
    for return_as in ("generator_unordered", "generator"):
        try:
            parallel = Parallel(n_jobs=n_jobs, return_as=return_as)
        except (TypeError, ValueError):  # this joblib does not know it
            continue
        return parallel(jobs)
    return Parallel(n_jobs=n_jobs)(jobs)


@dataclass
class SelectionResult:
    """Outcome of :func:`select`.

    Attributes
    ----------
    best_ : emix.GaussianMixture or emix.MixtureModel
        The fitted model with the lowest criterion (a MixtureModel for a
        ``family`` other than 'gaussian'). With the hierarchical
        start shared across the grid, its ``weights_init``, ``means_init``
        and ``precisions_init`` hold that start, so refitting it reproduces
        the fit. Fitted on a DataFrame of string column names, it carries
        their ``feature_names_in_``, as after ``fit(DataFrame)``.
    best_estimator_ : estimator
        ``best_``, under scikit-learn's name (``GridSearchCV``).
    best_score_ : float
        Minus the criterion of ``best_`` (greater is better, as scikit-learn's
        search objects score).
    best_params_ : dict
        ``{"n_components": K, "covariance_type": name}`` of ``best_``; for
        another family ``{"n_components": K, "family": family}``, with
        ``covariance_type`` for a family that has one (Student-t).
    criterion : str
        The criterion used to choose (``"bic"``, ``"icl"`` or ``"aic"``).
    rows : list of dict
        One per grid cell, in grid order (K ascending, models in the order
        given), with keys n_components, covariance_type, log_likelihood,
        n_parameters, bic, icl, aic, converged, n_iter, error (None, or the
        exception's type and message when that fit failed; its numbers are
        then NaN), singular (None, or why every restart of that fit was
        singular: see :mod:`emix._singular`; the cell keeps its numbers but
        is not ranked), start (the start the kept fit came from:
        'hierarchical' or 'mclust' under the default
        ``init_params='hierarchical+mclust'``, else the ``init_params``
        used; None for other families), other_singular (None, or the reason
        why the other start's fit, of higher likelihood, was singular and not
        kept), and for another family than 'gaussian' ``family`` (its
        name) too, with ``covariance_type`` None for a family without one.
    """

    best_: object
    best_params_: dict
    criterion: str
    rows: list = field(default_factory=list)

    @property
    def best_estimator_(self):
        """``best_`` under the name scikit-learn's search objects
        (``GridSearchCV``) give the chosen, fitted estimator."""
        return self.best_

    @property
    def best_score_(self):
        """Minus the criterion of ``best_`` (e.g. ``-BIC``): greater is better,
        the convention of scikit-learn's search objects, whose model-selection
        example for Gaussian mixtures scores with ``-estimator.bic(X)``."""
        best = self.best_params_
        for r in self.rows:
            if (r["n_components"] == best.get("n_components")
                    and r.get("covariance_type") == best.get("covariance_type")
                    and not r.get("singular") and np.isfinite(r[self.criterion])):
                return -float(r[self.criterion])
        return math.nan

    def to_frame(self):
        """The table as a :class:`pandas.DataFrame` (pandas imported here)."""
        import pandas as pd

        family = any("family" in r for r in self.rows)
        return pd.DataFrame(self.rows, columns=list(ROW_KEYS) + (["family"] if family else []))

    def table(self, criterion=None):
        """``(Ks, models, values)``: the criterion as a (n_K, n_models) array
        (NaN where a fit failed or is singular), like mclust's BIC table (with
        emix's sign)."""
        criterion = self.criterion if criterion is None else criterion
        Ks = sorted({r["n_components"] for r in self.rows})
        models = list(dict.fromkeys(r["covariance_type"] for r in self.rows))
        values = np.full((len(Ks), len(models)), np.nan)
        for r in self.rows:
            value = math.nan if r.get("singular") else r[criterion]
            values[Ks.index(r["n_components"]), models.index(r["covariance_type"])] = value
        return Ks, models, values

    def plot(self, ax=None, criterion=None):
        """Criterion curves against K, one per covariance model, like mclust's
        BIC plot (emix's sign: lower is better; the chosen model starred):
        the CLI's ``emix select --plot`` figure, drawn by
        :func:`emix.plotting.plot_criterion` (title, a distinct colour and
        marker per model, the y axis zoomed on the competitive fits with the
        fits above it named). matplotlib is imported here; with ``ax=None``
        a new pyplot figure is made. Returns the axes."""
        from .plotting import plot_criterion

        criterion = self.criterion if criterion is None else criterion
        if ax is None:
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(8.4, 4.8))
        else:
            fig = None
        best = dict(self.best_params_) if self.best_params_ else None
        plot_criterion(self.rows, criterion, ax=ax, best=best)
        if fig is not None:
            fig.tight_layout()
        return ax

    def __repr__(self):
        b = self.best_params_
        ok = sum(r["error"] is None and not r.get("singular") for r in self.rows)
        family = f"family={self.rows[0]['family']!r}, " if self.rows and "family" in self.rows[0] else ""
        return (f"SelectionResult({family}best={b.get('covariance_type')!r}, K={b.get('n_components')}, "
                f"criterion={self.criterion!r}, fits={ok}/{len(self.rows)})")


def select(X, n_components=range(1, 10), covariance_types=None, criterion="bic", n_init=1,
           sample_weight=None, n_jobs=None, random_state=None, cell_callback=None, family="gaussian",
           labels=None, **gm_kwargs) -> SelectionResult:
    """Fit a grid of mixtures and choose K and the covariance model.

    The emix counterpart of mclust's ``Mclust()`` / ``mclustBIC()`` for
    Gaussian mixtures (the default), and the same grid search over K (and
    covariance types, for Student-t) for any other family of
    :class:`~emix.MixtureModel`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : int or iterable of int, default=range(1, 10)
        Numbers of components to try (mclust's ``G``).
    covariance_types : iterable of str, default=None
        Names accepted by ``GaussianMixture(covariance_type=...)``. None means
        mclust's defaults: the 14 models EII ... VVV, or E and V when X has a
        single feature.
    criterion : {'bic', 'icl', 'aic'}, default='bic'
        Lower is better (mclust's BIC and ICL are minus these).
    n_init : int, default=1
        Restarts per cell.
    sample_weight : array-like of shape (n_samples,), default=None
    n_jobs : int or None, default=None
        Cells fitted at once (joblib's convention); None means 1, -1 all
        cores. This process fits cells itself from the start, cheapest
        first, and ``n_jobs - 1`` worker processes (joblib's reusable loky
        pool) take the costliest as soon as each has started; when the
        grid's estimated work is below the cost of starting workers (about
        2 s cold, measured once started; ~0 when an earlier call's workers
        still run) no worker is started, so ``n_jobs > 1`` is not slower
        than serial (:func:`emix._parallel.plan_workers`). Each cell's fit
        then uses ``cores // n_jobs`` threads over blocks of rows (at least
        1) and one BLAS thread, so the processes do not oversubscribe the
        cores. Under another joblib backend (``joblib.parallel_config``)
        the cells go to ``joblib.Parallel``. The fits do not depend on any
        of this: rows equal the serial ones.
    random_state : int, RandomState, Generator or None, default=None
        Seeds every cell reproducibly (see the module notes).
    cell_callback : callable or None, default=None
        Called in the calling process each time a grid cell's fit finishes,
        as ``cell_callback(info)`` with a dict holding ``done`` (cells finished
        so far), ``total`` (cells in the grid) and ``row`` (the finished
        cell's row, as in ``rows``). With ``n_jobs > 1`` cells finish in any
        order. Progress over the grid hooks in here; unlike the estimator's
        ``callback`` it works with worker processes. (The result does not
        depend on it.)
    family : str or dict, default='gaussian'
        'gaussian': :class:`~emix.GaussianMixture` cells, as described here.
        Any other ``family`` of :class:`~emix.MixtureModel` ('poisson',
        'student_t', 'bernoulli', 'categorical', a mapping of columns to
        families, 'auto'): :class:`~emix.MixtureModel` cells, one per K, and
        for a family with covariance structures (Student-t) one per (K,
        covariance type), by default scikit-learn's four types ('full',
        'tied', 'diag', 'spherical'; any of mclust's 14 names may be given).
        ``X`` is passed to the estimator as is (a DataFrame of categories, for
        example); each row's ``family`` is the family's name, and
        ``best_params_`` holds ``family`` (and ``covariance_type`` only where
        the family has one), ready for ``MixtureModel(**best_params_)``. The
        cells' defaults are ``tol=1e-5``, ``max_iter=1000`` and
        ``init_params='kmeans'`` (k-means on the family's numeric view);
        criteria are the estimator's own (``best_.bic(X)`` equals the table's
        value). mclust's options (``noise``, ``prior``, ``equal_proportions``)
        and the hierarchical start are Gaussian only.
    labels : array-like of shape (n_samples,) of int, default=None
        Semi-supervised selection (Gaussian only): every cell is fitted with
        ``fit(X, labels=labels)`` (a component index for a labelled row, -1
        for an unlabelled one); cells whose K is not above the largest label
        are not applicable (recorded with that reason in ``error``, not
        ranked). Each cell starts from its labelled rows (not from the
        shared hierarchical tree), and its log-likelihood and ICL are those
        of the fitted objective: ``log pi_y N(x | y)`` for a labelled row
        (responsibility 1 on ``y``), ``log p(x)`` for the others (McLachlan
        & Peel 2000, section 2.19). See docs/missing.md.
    **gm_kwargs
        Other :class:`~emix.GaussianMixture` parameters (``init_params``,
        ``tol``, ``reg_covar``, ``max_iter``...), used for every cell. Unlike
        ``GaussianMixture``, ``select`` defaults to mclust's strategy:
        ``init_params='hierarchical+mclust'``, ``tol=1e-5`` and
        ``max_iter=1000``. That start fits every cell twice, from emix's
        hierarchical start (``'hierarchical'``, emix's EM) and from
        mclustBIC's own (``'mclust'``: its hc tree and me() loop, see
        :mod:`emix.core.mclust_hc`), and keeps the better fit: a regular fit
        before a singular one (:mod:`emix._singular`), then the higher
        log-likelihood; so no cell is worse than mclust's. Either start
        alone may be asked for by name. When mclust's start wins a cell,
        ``best_``'s ``*_init`` do not hold it (refit with
        ``init_params='mclust'`` in ``select`` to reproduce it). mclust's options
        pass through too: ``equal_proportions=True``, ``noise='box'`` (or a
        hyper-volume; the box is that of all of ``X``, the same in every
        cell), ``prior='default'``.

    Returns
    -------
    SelectionResult

    Raises
    ------
    ValueError
        If the arguments are invalid, or if every fit in the grid failed or
        is singular. A fit that fails for one cell is recorded in ``rows``
        with its error and does not stop the others; a singular fit (see the
        module notes) is recorded with its reason and not ranked.

    Examples
    --------
    >>> import emix
    >>> from emix.datasets import load_faithful
    >>> X, _ = load_faithful()
    >>> res = emix.select(X, n_components=range(1, 4), covariance_types=["EII", "EEE"],
    ...                   random_state=0)
    >>> res.best_params_
    {'n_components': 3, 'covariance_type': 'EEE'}
    """
    from sklearn.utils import check_array
    from sklearn.utils.validation import _get_feature_names

    from . import _parallel
    from . import _validation as V
    from .families.gaussian import get_structure

    if not (isinstance(family, str) and family == "gaussian"):
        return _select_family(X, family, n_components, covariance_types, criterion, n_init, sample_weight,
                              n_jobs, random_state, cell_callback, gm_kwargs)
    # a DataFrame's column names, by scikit-learn's rule (all strings, or none)
    names = _get_feature_names(X)
    nan_ok = gm_kwargs.get("missing", "error") == "em"  # missing values inside EM: NaN allowed
    try:
        X = check_array(X, dtype=[np.float64, np.float32], ensure_min_samples=2,
                        ensure_all_finite="allow-nan" if nan_ok else True)
    except ValueError as exc:
        if nan_ok or "NaN" not in str(exc):
            raise
        raise ValueError(f"{exc} To select with missing values (NaN) inside EM, pass missing='em' to "
                         "select.") from None
    w = V.check_sample_weight(sample_weight, X.shape[0], X.dtype)
    X_start = X  # what the shared starts see: X with holes filled by the estimator's rule
    if nan_ok:
        from .core import missing as _missing

        if _missing.has_missing(X):
            _missing.check_observed_columns(X, names)
            X_start = _missing.column_fill(X, w)
    if labels is not None:
        from .core import missing as _missing

        labels = _missing.check_labels(labels, X.shape[0], max(1 + int(np.max(labels, initial=-1)), 1))
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {list(CRITERIA)}. Got {criterion!r}.")
    if isinstance(n_components, numbers.Integral):
        n_components = [n_components]
    Ks = [V.check_int("n_components", k, 1) for k in n_components]
    if not Ks:
        raise ValueError("n_components must hold at least one integer. Got an empty sequence.")
    models = list(default_models(X.shape[1]) if covariance_types is None else covariance_types)
    if isinstance(covariance_types, str):
        models = [covariance_types]
    if not models:
        raise ValueError("covariance_types must hold at least one name. Got an empty sequence.")
    for m in models:
        get_structure(m)  # unknown names are a usage error, not a failed fit
    V.check_int("n_init", n_init, 1)
    for bad in ("n_components", "covariance_type", "n_init", "random_state"):
        if bad in gm_kwargs:
            raise TypeError(f"{bad!r} is set by select() itself; it cannot be passed in gm_kwargs.")

    # mclust's strategy: every cell starts from model-based hierarchical
    # agglomeration, and EM runs to a tighter tolerance than scikit-learn's
    # default (emix's tol is on the mean log-likelihood; 1e-5 is at least as
    # strict as mclust's relative 1e-5 for typical data). Both can be overridden.
    # mclust's EM has no practical iteration cap; 1000 lets slow cells on a
    # likelihood ridge converge instead of stopping at scikit-learn's 100.
    # The default start is both emix's and mclust's (init_params=BOTH_STARTS):
    # each cell keeps the better fit, so no cell is worse than mclustBIC's.
    both = gm_kwargs.get("init_params", BOTH_STARTS) == BOTH_STARTS
    if both:
        gm_kwargs = {k: v for k, v in gm_kwargs.items() if k != "init_params"}
    gm_kwargs = {"init_params": "hierarchical", "tol": 1e-5, "max_iter": 1000, **gm_kwargs}
    entropy = _entropy(random_state)
    starts_given = n_init == 1 and labels is None and not any(
        gm_kwargs.get(k) is not None for k in ("weights_init", "means_init", "precisions_init"))
    # One hierarchical tree serves every cell (as in mclust): cut once per K
    # here instead of rebuilding it in each of the len(models) cells per K.
    if cell_callback is not None and not callable(cell_callback):
        raise TypeError(f"cell_callback must be callable or None. Got {cell_callback!r}.")
    # the cells' work split is decided here, and the workers (if any) start
    # now, while this process builds the shared trees
    cells = [(K, m) for K in Ks for m in models]
    costs = [_parallel.cell_cost(X.shape[0], X.shape[1], K, m, n_init * (2 if both else 1)) for K, m in cells]
    threads = _pool_threads(X, Ks, models, n_init, gm_kwargs, labels, starts_given, n_jobs)
    workers = 0 if threads >= 1 else _plan_cells(costs, n_jobs)
    with _parallel.one_blas_thread():  # the trees' many tiny LAPACK calls: BLAS threads only spin
        partitions, others = _shared_starts(X, X_start, Ks, entropy, gm_kwargs, starts_given, both)
    results = _run_cells(
        lambda i, block_threads: (_fit_cell_at, i, X, w, cells[i][0], cells[i][1],
                                  cell_seed(entropy, *cells[i]), n_init, gm_kwargs, partitions.get(cells[i][0]),
                                  block_threads, others.get(cells[i][0]), labels),
        costs, n_jobs, cell_callback, workers, threads)
    rows, best_i = _choose(results, criterion)
    best_row = rows[best_i]
    if names is not None:  # so that best_.predict(DataFrame) checks names as after best_.fit(DataFrame)
        results[best_i][1].feature_names_in_ = names
    return SelectionResult(
        best_=results[best_i][1],
        best_params_={"n_components": best_row["n_components"],
                      "covariance_type": best_row["covariance_type"]},
        criterion=criterion,
        rows=rows,
    )


def _mclust_starts(X, Ks, entropy, gm_kwargs, filled=False):
    """``{K: start}`` of mclustBIC: its hc(VVV, SVD) tree cut per K
    (:mod:`emix.core.mclust_hc`); each start is ``(labels, rows)`` for
    mclust's me() loop and stopping rule, or, with a prior, noise, equal
    proportions or missing values (``filled``: ``X`` is the data with holes
    filled, which mclust's me() must not fit), the labels for emix's EM (then
    only without mclust's subset of rows)."""
    from .core.mclust_hc import mclust_partitions

    parts, rows = mclust_partitions(X, [K for K in Ks if K <= X.shape[0]],
                                    np.random.RandomState(cell_seed(entropy, 0, "hc")))
    if not filled and not any(gm_kwargs.get(k) for k in ("prior", "noise", "equal_proportions")):
        sub = None if rows.size == X.shape[0] else rows
        return {K: (lab, sub) for K, lab in parts.items()}
    return parts if rows.size == X.shape[0] else {}


def _plan_cells(costs, n_jobs):
    """Worker processes for cells of estimated ``costs``
    (:func:`emix._parallel.plan_workers`), asked for now
    (:func:`emix._parallel.prestart`); None under a joblib backend other
    than the default process pool (then ``joblib.Parallel`` runs the cells)."""
    from joblib import effective_n_jobs

    from . import _parallel

    n_jobs = min(len(costs), effective_n_jobs(n_jobs))
    if n_jobs > 1 and not _parallel.loky_is_active():
        return None
    workers = _parallel.plan_workers(costs, n_jobs, _parallel.start_cost(max(1, n_jobs - 1)))
    _parallel.prestart(workers)
    return workers


def _shared_starts(X, X_start, Ks, entropy, gm_kwargs, starts_given, both):
    """``(partitions, others)``: the shared hierarchical starts of the grid's
    cells (emix's tree, and mclust's as the second start with ``both``), or
    mclust's alone under ``init_params='mclust'``; empty without shared starts."""
    partitions, others = {}, {}
    if gm_kwargs.get("init_params") == "hierarchical" and starts_given:
        from .core.hierarchical import hierarchical_partitions

        partitions = hierarchical_partitions(X_start, [K for K in Ks if K <= X.shape[0]],
                                             np.random.RandomState(cell_seed(entropy, 0, "hc")))
        if both:
            others = _mclust_starts(X_start, Ks, entropy, gm_kwargs, X_start is not X)
    elif gm_kwargs.get("init_params") == "mclust" and starts_given:
        partitions = _mclust_starts(X_start, Ks, entropy, gm_kwargs, X_start is not X)
    return partitions, others


def _pool_threads(X, Ks, models, n_init, gm_kwargs, labels, starts_given, n_jobs):
    """Threads to run the grid's cells on (0: not a thread pool).

    A grid whose every cell is a small compiled fit (:mod:`emix.core.small`:
    float64 numpy data without NaN, mclust's models or 'full', one start per
    cell from the shared trees, no option beyond ``tol``/``max_iter``/
    ``reg_covar``/``n_threads``) spends its time in C with the GIL released,
    so its cells run on threads: as many as ``n_jobs`` asks for, by default
    the estimator's ``n_threads`` (all cores), the threads emix uses anyway
    over blocks of rows of one large fit. Worker processes would cost more to
    start than such a grid takes."""
    from .backends.reduce import available_cores
    from .core import missing as _missing
    from .families.gaussian import get_structure

    if not (_small.available() and type(X) is np.ndarray and X.dtype == np.float64 and labels is None
            and n_init == 1 and starts_given and not _missing.has_missing(X)):
        return 0
    if set(gm_kwargs) - _PLAIN_KWARGS or gm_kwargs.get("init_params") not in ("hierarchical", "mclust"):
        return 0
    n, D = X.shape
    if D > _small.SMALL_FEATURES or n * max(Ks) * D * (D + 1) > _small.SMALL_WORK:
        return 0
    if not all(_small._loop_code(get_structure(m)) for m in models):  # names checked by select
        return 0
    if n_jobs is not None:
        from joblib import effective_n_jobs

        threads = effective_n_jobs(n_jobs)
    elif gm_kwargs.get("n_threads") is not None:
        threads = int(gm_kwargs["n_threads"])
    else:
        threads = available_cores()
    return min(int(threads), len(Ks) * len(models))


#: True inside a cell run by :func:`_run_pooled`: the pool holds BLAS to one
#: thread and numpy's warnings off for all its cells (both are process-wide
#: settings that threads entering and leaving them would corrupt).
_POOLED = contextvars.ContextVar("emix_select_pooled", default=False)


def _run_pooled(tasks, costs, threads, report):
    """The cells' ``(fn, *args)`` tasks on ``threads`` threads (one: in this
    thread), the costliest first; results in task order, ``report`` called
    here as each ends."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from . import _parallel

    def run(task):
        token = _POOLED.set(True)
        try:
            return task[0](*task[1:])
        finally:
            _POOLED.reset(token)

    results = [None] * len(tasks)
    order = sorted(range(len(tasks)), key=lambda i: (-costs[i], i))
    with _parallel.one_blas_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if threads == 1:  # in this thread, with the settings entered once for all cells
            for i in order:
                _, res = run(tasks[i])
                results[i] = res
                report(res)
            return results
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="emix-select")
        try:
            futures = [pool.submit(run, tasks[i]) for i in order]
            for fut in as_completed(futures):
                i, res = fut.result()
                results[i] = res
                report(res)
        finally:  # on Ctrl-C (or a failing callback) the cells not started are dropped
            pool.shutdown(wait=True, cancel_futures=True)
    return results


def _run_cells(make_task, costs, n_jobs, cell_callback, workers=None, threads=0):
    """``[(row, model or None)]`` of the grid's cells in grid order;
    ``cell_callback`` called as each finishes; ``workers``: as planned by
    :func:`_plan_cells` (None: planned here).

    ``make_task(i, block_threads)`` gives cell ``i``'s ``(function, *args)``
    (the function returns ``(i, (row, model))``), ``costs`` each cell's
    estimated seconds (:func:`emix._parallel.cell_cost`). Under joblib's
    default process backend, :func:`emix._parallel.run_cells` runs them:
    serially when the estimated work is below the cost of starting workers
    (:func:`emix._parallel.plan_workers`), else in this process and
    ``n_jobs - 1`` workers, each cell's fit then using ``cores // n_jobs``
    threads over blocks of rows; under another joblib backend
    (``joblib.parallel_config``), by ``joblib.Parallel``."""
    from joblib import Parallel, delayed, effective_n_jobs

    from . import _parallel
    from .backends.reduce import available_cores

    n_cells = len(costs)
    n_jobs = min(n_cells, effective_n_jobs(n_jobs))
    done = [0]

    def report(res):
        done[0] += 1
        if cell_callback is not None:
            cell_callback({"done": done[0], "total": n_cells, "row": dict(res[0])})

    if threads >= 1:  # small compiled cells: a thread pool, or this thread alone (see _pool_threads)
        return _run_pooled([make_task(i, 1) for i in range(n_cells)], costs, threads, report)
    if workers is None:
        workers = _plan_cells(costs, n_jobs)
    if n_jobs > 1 and workers is None:  # a backend the user chose
        block_threads = max(1, available_cores() // n_jobs)
        tasks = [make_task(i, block_threads) for i in range(n_cells)]
        jobs = (delayed(task[0])(*task[1:]) for task in tasks)
        results = [None] * n_cells
        for i, res in _as_completed(Parallel, n_jobs, jobs):
            results[i] = res
            report(res)
        return results
    block_threads = max(1, available_cores() // (workers + 1)) if workers else None
    tasks = [make_task(i, block_threads) for i in range(n_cells)]
    out = _parallel.run_cells(_parallel.call, tasks, costs, n_jobs,
                              on_done=lambda i, tagged: report(tagged[1]), n_workers=workers)
    return [res for _, res in out]


def _choose(results, criterion):
    """``(rows, index of the best cell)``: the lowest finite criterion among
    the regular (not singular) fits, the first in grid order on ties.
    Raises ValueError when every fit failed or is singular."""
    rows = [r for r, _ in results]
    best_i = None
    for i, (r, model) in enumerate(results):
        if model is None or r.get("singular") or not np.isfinite(r[criterion]):
            continue
        if best_i is None or r[criterion] < rows[best_i][criterion]:
            best_i = i
    if best_i is None:
        singular = [r for r in rows if r.get("singular") and not r.get("error")]
        bad = "; ".join(f"(K={r['n_components']}, {r['covariance_type']}): {r['error'] or r['singular']}"
                        for r in rows[:3])
        if singular:
            raise ValueError(
                f"No regular fit in the grid: {len(singular)} of {len(rows)} cells are singular (a component "
                "at the reg_covar floor or with too few points; see emix._singular) and the others failed. "
                "Try smaller n_components, other covariance types, or check the data for repeated values "
                f"(too few distinct rows for these models). First cells: {bad}")
        raise ValueError(f"Every fit in the grid failed. First failures: {bad}")
    return rows, best_i


#: Covariance types a family with covariance structures (Student-t) is tried
#: with by default: scikit-learn's four.
FAMILY_COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
#: Defaults of the cells of a non-Gaussian grid (as the Gaussian grid's tol and max_iter).
_FAMILY_DEFAULTS = {"tol": 1e-5, "max_iter": 1000}


def _takes_covariance_type(family):
    """Whether a resolved family has Gaussian covariance structures (its
    configuration holds a ``covariance_type``)."""
    return "covariance_type" in family.config().get("options", {})


def _select_family(X, family, n_components, covariance_types, criterion, n_init, sample_weight, n_jobs,
                   random_state, cell_callback, kwargs):
    """:func:`select` for a non-Gaussian ``family``: MixtureModel cells."""
    from . import _validation as V
    from .families.gaussian import get_structure
    from .mixture import MixtureModel, _n_columns

    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {list(CRITERIA)}. Got {criterion!r}.")
    if isinstance(n_components, numbers.Integral):
        n_components = [n_components]
    Ks = [V.check_int("n_components", k, 1) for k in n_components]
    if not Ks:
        raise ValueError("n_components must hold at least one integer. Got an empty sequence.")
    V.check_int("n_init", n_init, 1)
    for bad in ("n_components", "covariance_type", "n_init", "random_state"):
        if bad in kwargs:
            raise TypeError(f"{bad!r} is set by select() itself; it cannot be passed in gm_kwargs.")
    if cell_callback is not None and not callable(cell_callback):
        raise TypeError(f"cell_callback must be callable or None. Got {cell_callback!r}.")
    kwargs = {**_FAMILY_DEFAULTS, **kwargs}
    # the family and the options are checked once here: a usage error, not a failed fit per cell
    probe = MixtureModel(family=family, **kwargs)
    probe._check_params()
    fam = probe._resolve()
    if _takes_covariance_type(fam):
        models = list(FAMILY_COVARIANCE_TYPES if covariance_types is None else
                      [covariance_types] if isinstance(covariance_types, str) else covariance_types)
        if not models:
            raise ValueError("covariance_types must hold at least one name. Got an empty sequence.")
        for m in models:
            get_structure(m)
    else:
        if covariance_types is not None:
            raise ValueError(f"The {fam.name} family has no covariance types; leave covariance_types=None. "
                             f"Got {covariance_types!r}.")
        models = [None]
    n_samples = X.shape[0] if getattr(X, "shape", None) is not None and len(X.shape) >= 1 else len(X)
    _n_columns(X)  # a 2-D table, or a clear error
    w = V.check_sample_weight(sample_weight, n_samples, np.float64)
    entropy = _entropy(random_state)
    name = family if isinstance(family, str) else fam.name
    cells = [(K, m) for K in Ks for m in models]
    from ._parallel import cell_cost

    costs = [cell_cost(n_samples, _n_columns(X), K, m, n_init) for K, m in cells]
    results = _run_cells(
        lambda i, block_threads: (_fit_family_cell_at, i, X, w, cells[i][0], cells[i][1],
                                  cell_seed(entropy, cells[i][0], f"{fam.name}:{cells[i][1]}"), n_init, family,
                                  name, kwargs, block_threads),
        costs, n_jobs, cell_callback)
    rows, best_i = _choose(results, criterion)
    best_row = rows[best_i]
    best_params = {"n_components": best_row["n_components"]}
    if best_row["covariance_type"] is not None:
        best_params["covariance_type"] = best_row["covariance_type"]
    best_params["family"] = family
    return SelectionResult(best_=results[best_i][1], best_params_=best_params, criterion=criterion, rows=rows)


def _fit_family_cell_at(i, X, w, K, model, seed, n_init, family, name, kwargs, block_threads):
    """One MixtureModel cell (see :func:`_fit_cell`), tagged with its index;
    never raises (a failure becomes the row's ``error``)."""
    from ._parallel import block_threads_cap, one_blas_thread
    from .mixture import MixtureModel

    row = dict.fromkeys(ROW_KEYS)
    row.update(n_components=int(K), covariance_type=model, converged=False, n_iter=0, family=name)
    nan_row = {key: math.nan for key in ("log_likelihood", "bic", "icl", "aic")}
    row.update(nan_row)
    try:
        with one_blas_thread(), block_threads_cap(block_threads):
            options = {} if model is None else {"covariance_type": model}
            est = MixtureModel(n_components=K, family=family, n_init=n_init, random_state=seed, **options,
                               **kwargs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X, sample_weight=w)
                # the estimator's own criteria: the same sums as best_.bic(X) and friends
                ll_rows = est.score_samples(X).astype(np.float64)
                ll = float(ll_rows.sum() if w is None else ll_rows @ w)
                n_eff = float(ll_rows.shape[0]) if w is None else float(w.sum())
                p = int(est._n_parameters())
                icl = float(est.icl(X, sample_weight=w))
        row.update(n_parameters=p, log_likelihood=ll, bic=float(criteria.bic(ll, p, n_eff)), icl=icl,
                   aic=float(criteria.aic(ll, p)), converged=bool(est.converged_), n_iter=int(est.n_iter_),
                   singular=_cell_singular(est, ll_rows.shape[0]))
        if not np.isfinite(ll):
            raise FloatingPointError(f"log-likelihood is {ll}")
        return i, (row, est)
    except Exception as exc:  # recorded, never aborts the grid
        row["error"] = f"{type(exc).__name__}: {exc}"
        row.update(nan_row)
        return i, (row, None)


__all__ = ["SelectionResult", "select", "uncertainty", "cell_seed", "default_models"]
