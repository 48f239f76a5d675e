"""Poisson family: independent counts per column.

``log p(x | lambda_k) = sum_d [x_d log lambda_kd - lambda_kd - log x_d!]``.
Statistics: ``s[k, d] = sum_n w_n r_nk x_nd``; M-step ``lambda_kd = (s_kd +
a) / (n_k + b)`` with an optional Gamma(a + 1, b) pseudo-count (``a = b =
pseudo_count``; 0, the default, is maximum likelihood as in R flexmix's
``FLXMCmvpois``). A rate of exactly 0 is the MLE of a column that is 0 in every
row of the component; such a component gives probability 0 to a positive
count, which the mixture handles (other components take the row).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from ..core.numerics import eps_nk
from .base import ComponentFamily, empty_component_check

#: ``log x!`` for x = 0 .. LOG_FACTORIAL_TOP, the table of :func:`log_factorial_rows`
LOG_FACTORIAL_TOP = 4096
_LOG_FACTORIAL = gammaln(np.arange(LOG_FACTORIAL_TOP + 1) + 1.0)


def log_factorial_rows(X):
    """``sum_d log x_nd!`` of each row (``lgamma(x + 1)``, also off the integers).

    Counts that are integers in ``0 .. LOG_FACTORIAL_TOP`` (the usual case)
    are looked up in a table of ``gammaln(x + 1)`` (the same values, about five
    times faster than evaluating ``lgamma`` per entry on every E-step); any
    other block is evaluated with :func:`scipy.special.gammaln`.
    """
    ones = np.ones(X.shape[1])
    if X.size:
        lo, hi = X.min(), X.max()
        if 0 <= lo and hi <= LOG_FACTORIAL_TOP:  # False for NaN
            Xi = X.astype(np.intp)
            if np.array_equal(Xi, X):
                return _LOG_FACTORIAL.take(Xi) @ ones
    return gammaln(X + 1.0) @ ones


class Poisson(ComponentFamily):
    """Independent Poisson counts (see the module docstring).

    Parameters
    ----------
    pseudo_count : float >= 0, default=0
        ``a = b`` of a Gamma prior on every rate (MAP estimate); 0 is
        maximum likelihood.
    allow_noninteger : bool, default=False
        Accept non-negative real values (e.g. normalized counts), scored by
        the Poisson formula with ``log x! = lgamma(x + 1)``: a
        quasi-likelihood, not a normalized density off the integers (the rate
        estimates are still the weighted means). By default anything but a
        non-negative integer is an error.
    """

    name = "poisson"
    param_names = ("rates",)
    positive_only = True

    def __init__(self, pseudo_count=0.0, allow_noninteger=False):
        self.pseudo_count = float(pseudo_count)
        self.allow_noninteger = bool(allow_noninteger)
        if not self.pseudo_count >= 0:
            raise ValueError(f"pseudo_count must be >= 0. Got {pseudo_count!r}.")

    def config(self):
        return {"name": self.name, "options": {"pseudo_count": self.pseudo_count,
                                              "allow_noninteger": self.allow_noninteger}}

    def encode(self, X, meta=None):
        X, _ = super().encode(X)
        if np.any(X < 0):
            i, j = np.argwhere(X < 0)[0]
            raise ValueError(
                f"Negative values in data passed to the poisson family: row {i}, column {j} holds "
                f"{float(X[i, j])!r}. Counts must be >= 0; use family='gaussian' for continuous data.")
        if not self.allow_noninteger and np.any(X != np.floor(X)):
            i, j = np.argwhere(X != np.floor(X))[0]
            raise ValueError(
                f"Non-integer values in data passed to the poisson family: row {i}, column {j} holds "
                f"{float(X[i, j])!r}. Use family='gaussian' for continuous data, or "
                "family_options={'allow_noninteger': True} for non-negative reals.")
        return X, meta

    def log_prob(self, X, comp):
        lam = comp["rates"].astype(np.float64)
        with np.errstate(divide="ignore"):
            loglam = np.log(lam)
        # 0 * log(0) = 0: a zero rate gives probability 1 to a zero count
        lp = X @ np.where(lam > 0, loglam, 0.0).T - lam.sum(axis=1)[None, :] - log_factorial_rows(X)[:, None]
        if np.any(lam == 0):
            zero = (lam == 0).astype(np.float64)
            lp = np.where((X > 0).astype(np.float64) @ zero.T > 0, -np.inf, lp)
        return lp

    def suff_stats(self, X, rw, comp):
        return {"sx": rw.T @ X}

    def m_step(self, sums, nk, comp_prev):
        empty_component_check(nk, self.name, min_size=2 * eps_nk(np.float64))
        a = self.pseudo_count
        return {"rates": (sums["sx"] + a) / (nk[:, None] + a)}

    def n_parameters(self, comp):
        return int(comp["rates"].size)

    def sample(self, comp, counts, rng):
        return np.vstack([rng.poisson(lam, size=(int(n), lam.shape[0])) for lam, n in zip(comp["rates"], counts)]
                         ).astype(np.float64)

    def check_params(self, comp, K, D):
        rates = np.asarray(comp["rates"], dtype=np.float64)
        if rates.shape != (K, D):
            raise ValueError(f"rates must have shape ({K}, {D}). Got {rates.shape}.")
        if not np.all(np.isfinite(rates)) or np.any(rates < 0):
            raise ValueError("rates must be finite and >= 0.")
        return {"rates": rates}
