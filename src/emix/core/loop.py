"""The EM loop: the only one in emix.

Every family and every way of fitting runs :func:`run_em`. It knows nothing
about densities or parameters: it takes an ``e_step(params) -> stats``
(already reduced over all rows, e.g. ``reduce(lambda X, w: ...)``) and an
``m_step(stats, params) -> params``, and keeps the log-likelihood
bookkeeping. Statistics must carry ``loglik`` (the weighted sum of
``log p(x_n)`` under the parameters that produced them) and ``sum_w``.
"""

from __future__ import annotations

import math

from .types import FitResult


def run_em(e_step, m_step, params0, *, tol, max_iter, lower_bound0=-math.inf, callback=None,
           bound=None) -> FitResult:
    """Alternate ``stats = e_step(params)`` and ``params = m_step(stats, params)``
    until the mean log-likelihood changes by less than ``tol`` or after
    ``max_iter`` iterations.

    As in scikit-learn, the lower bound recorded at iteration ``i`` is the
    mean log-likelihood of the parameters entering that iteration; the
    returned parameters are those after its M-step. ``callback(n_iter,
    lower_bound, change)`` is called after every iteration.

    ``bound(stats, params)``: the quantity recorded and tested against
    ``tol`` instead of ``stats.loglik / stats.sum_w``, from the statistics
    and the parameters after the M-step (variational Bayes records its
    evidence lower bound this way, :mod:`emix.core.vb`).
    """
    params = params0
    lower_bound = lower_bound0
    history = []
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        prev = lower_bound
        stats = e_step(params)
        params = m_step(stats, params)
        lower_bound = stats.loglik / stats.sum_w if bound is None else bound(stats, params)
        history.append(lower_bound)
        change = lower_bound - prev
        if callback is not None:
            callback(n_iter, lower_bound, change)
        if abs(change) < tol:
            converged = True
            break
    return FitResult(params=params, n_iter=n_iter, converged=converged, lower_bound=lower_bound,
                     history=tuple(history))
