"""What every emix estimator shares: the restart loop.

:class:`RestartsMixin` runs ``n_init`` restarts of the one EM loop over a
reducer, drops a restart whose component collapses or that ends singular
(:mod:`emix._singular`; with a
:class:`~emix.exceptions.DegenerateRestartWarning`), runs restarts in joblib
workers with ``n_jobs``, reports progress through ``callback`` and
``verbose``, and returns the best surviving run. The estimator provides
``_runner(prior) -> (run, extra)`` (the loop and its options),
``_check_start(run, params0)``, ``_params()`` (for ``warm_start``) and
``_singular_reason(params, structure)`` (None: regular; else the reason; the
kept run's is left in ``_fit_singular``, with a
:class:`~emix.exceptions.SingularFitWarning` when no restart was regular);
``run(reducer, params0, model, tol=, max_iter=, reg_covar=, lower_bound0=,
callback=, **extra)`` returns a :class:`~emix.core.types.FitResult`.
"""

from __future__ import annotations

import math
import os
import time
import warnings

from . import _parallel
from .core.types import FitResult
from .exceptions import ConvergenceWarning, DegenerateComponentError, DegenerateRestartWarning, SingularFitWarning


class RestartsMixin:
    """The restart loop shared by every estimator (see the module docstring)."""

    @staticmethod
    def _check_start(run, params0):
        """Raise if ``run`` cannot start from ``params0`` (default: it can)."""

    def _singular_reason(self, params, structure):
        """Why the parameters a restart ended with are a singular fit (see
        :mod:`emix._singular`), or None. Default: never singular."""
        return None

    def _reports(self):
        """Whether a restart reports its iterations (a ``callback`` or ``verbose``)."""
        return self.callback is not None or bool(self.verbose)

    def _em_restarts(self, reducer, params0_fn, structure, prior=None, parallel=False):
        """The restart loop shared by every way of fitting (numpy, array API,
        out of core, Dask): ``n_init`` runs of the core EM loop over ``reducer``,
        a restart whose component collapses dropped with a warning, the best
        surviving run returned. Verbose output follows scikit-learn's.
        ``parallel``: ``reducer`` is an in-memory numpy ``BlockReducer``, and
        ``n_jobs`` applies (see :mod:`emix._parallel`)."""
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        run, extra = self._runner(prior)

        def reporter(init, t_start):
            """What one restart reports after each iteration: the callback and
            the verbose lines (``now`` is when that iteration ended)."""
            t_iter = t_start

            def report(n_iter, lower_bound, change, now):
                nonlocal t_iter
                if self.callback is not None:
                    self.callback({"init": init, "n_init": n_init, "n_iter": n_iter,
                                   "max_iter": self.max_iter, "lower_bound": lower_bound,
                                   "change": change})
                if self.verbose and n_iter % self.verbose_interval == 0:
                    if self.verbose == 1:
                        print(f"  Iteration {n_iter}")
                    else:
                        print(f"  Iteration {n_iter}\t time lapse {now - t_iter:.5f}s\t "
                              f"ll change {change:.5f}")
                        t_iter = now

            return report

        def sequential():
            """(restart, FitResult or DegenerateComponentError, start time), one
            restart after the other."""
            for init in range(n_init):
                if self.verbose:
                    print(f"Initialization {init}")
                t_init = time.time()
                try:
                    if do_init:
                        params0, lb0 = params0_fn(), -math.inf
                    else:
                        params0, lb0 = self._params(), self.lower_bound_
                    self._check_start(run, params0)
                    if self.max_iter == 0:
                        result = FitResult(params0, 0, False, -math.inf, ())
                    else:
                        report = reporter(init, t_init)
                        result = run(
                            reducer, params0, structure, tol=self.tol, max_iter=self.max_iter,
                            reg_covar=self.reg_covar, lower_bound0=lb0,
                            # no callback when nothing would be reported: the
                            # loop may then run compiled (emix.core.small.em_loop)
                            callback=(lambda n, lb, ch: report(n, lb, ch, time.time())) if self._reports()
                            else None, **extra,
                        )
                except DegenerateComponentError as exc:
                    result = exc
                yield init, result, t_init

        def in_parallel(n_jobs):
            """The same, from the restarts' EM loops run by ``n_jobs`` joblib
            workers: the initializations first, one after the other here, then
            each restart's report replayed in order as it finishes."""
            from joblib import Parallel, delayed

            starts = []
            for init in range(n_init):
                t0 = time.time()
                try:
                    params0 = params0_fn()
                except DegenerateComponentError as exc:
                    params0 = exc
                starts.append((params0, time.time() - t0))
            todo = [p for p, _ in starts if not isinstance(p, DegenerateComponentError)]
            n_jobs = min(n_jobs, len(todo))
            options = dict(tol=self.tol, max_iter=self.max_iter, reg_covar=self.reg_covar,
                           lower_bound0=-math.inf, **extra)
            record = self._reports()
            threads = max(1, reducer.n_threads // max(1, n_jobs))
            tasks = (delayed(_parallel.em_restart)(run, reducer, threads, p, structure, options, record,
                                                   os.getpid()) for p in todo)
            if n_jobs > 1:
                done = Parallel(n_jobs=n_jobs, prefer="processes", return_as="generator")(tasks)
            else:
                done = (f(*args, **kw) for f, args, kw in tasks)
            for init, (params0, t_params0) in enumerate(starts):
                if self.verbose:
                    print(f"Initialization {init}")
                if isinstance(params0, DegenerateComponentError):
                    yield init, params0, time.time() - t_params0
                    continue
                result, t_start, events, caught = next(done)
                for category, message, filename, lineno in caught:
                    warnings.warn_explicit(message, category, filename, lineno)
                report = reporter(init, t_start - t_params0)
                for event in events or ():
                    report(*event)
                yield init, result, t_start - t_params0

        n_jobs = _parallel.effective_n_jobs(self.n_jobs) if parallel and do_init and n_init > 1 else 1
        outcomes = in_parallel(n_jobs) if n_jobs > 1 and self.max_iter > 0 else sequential()
        best, failures = None, []
        singular = None  # (result, reason) of the best restart that ended singular
        self._fit_singular = None
        for init, result, t_init in outcomes:
            if isinstance(result, DegenerateComponentError):
                failures.append(result)
                if n_init > 1:
                    warnings.warn(f"Restart {init + 1} of {n_init} dropped: {result}",
                                  DegenerateRestartWarning, stacklevel=3)
                continue
            reason = self._singular_reason(result.params, structure) if self.max_iter > 0 else None
            if reason is not None:  # a spurious optimum: dropped, kept only if no restart is regular
                if n_init > 1:
                    warnings.warn(f"Restart {init + 1} of {n_init} dropped: singular fit, {reason}.",
                                  DegenerateRestartWarning, stacklevel=3)
                if singular is None or result.lower_bound > singular[0].lower_bound:
                    singular = (result, reason)
                continue
            if self.verbose and self.max_iter > 0:
                state = "converged" if result.converged else "did not converge"
                if self.verbose == 1:
                    print(f"Initialization {state}.")
                else:
                    print(f"Initialization {state}. time lapse {time.time() - t_init:.5f}s\t "
                          f"lower bound {result.lower_bound:.5f}.")
            if best is None or result.lower_bound > best.lower_bound or best.lower_bound == -math.inf:
                best = result
        if best is None and singular is not None:
            best, self._fit_singular = singular
            warnings.warn(
                f"The fit is singular: {self._fit_singular}" + (f" (in all {n_init} restarts)" if n_init > 1 else "")
                + ". Its likelihood comes from the reg_covar floor or from too few points, not from the data "
                "(see emix._singular). Try fewer components, another covariance_type, more restarts, or "
                "check the data for repeated values.", SingularFitWarning, stacklevel=3)
        if best is None:
            last = failures[-1]
            if n_init == 1:
                raise last
            raise DegenerateComponentError(
                f"All {n_init} restart(s) failed. Last failure: {last}",
                component=last.component, effective_size=last.effective_size,
            ) from last
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning, stacklevel=3,
            )
        return best

