"""The Gaussian family behind the component-family protocol.

:class:`emix.GaussianMixture` fits Gaussian mixtures with its fused kernels,
mclust's models, noise, priors and the array API; ``MixtureModel(
family='gaussian')`` delegates to it. :class:`GaussianFamily` exposes the
same covariance structures (:func:`emix.families.gaussian.get_structure`)
through the small protocol of :mod:`emix.families.base`, so that Gaussian
columns can be a member of a product family (:mod:`emix.families.mixed`) and
so that the generic driver can be checked against the Gaussian estimator.
It reuses the estimator's pure functions, :func:`emix.core.em.stats_from_resp`
and :func:`emix.core.em.m_step`, so both give the same numbers.

Model, for component ``k`` with mean ``mu_k`` and covariance ``Sigma_k`` (in
the structure's parametrization):

``log N(x | mu_k, Sigma_k) = -D/2 log(2 pi) - 1/2 log|Sigma_k| - 1/2 (x - mu_k)^T Sigma_k^{-1} (x - mu_k)``.

Statistics (Dempster, Laird & Rubin 1977; McLachlan & Peel 2000, section
3.2), with ``rw_nk = w_n r_nk`` and a shift ``c_k``:

``s1_k = sum_n rw_nk (x_n - c_k)``, ``s2_k = sum_n rw_nk (x_n - c_k)(x_n - c_k)^T``
(reduced to what the structure needs: the matrices, their sum over ``k``, or
diagonals). M-step: ``delta_k = s1_k / n_k``, ``mu_k = c_k + delta_k``,
``Sigma_k = s2_k / n_k - delta_k delta_k^T + reg_covar I``.

The shift
---------
In an E-step (``comp`` given) the statistics are centered at the previous
means ``c_k = mu_k``: then ``delta_k`` is the (small) step of the means and
``s2_k / n_k - delta_k delta_k^T`` does not cancel, whatever the data's
offset. At initialization (``comp=None``: statistics of given
responsibilities, before any parameters exist) the shift is the origin,
``c_k = 0``: it is the only shift that every block of rows can agree on
without a first pass over the data, so the statistics of disjoint blocks
still add up. The initial covariances then carry a relative rounding error of
about ``eps (|mu| / sigma)^2`` (1e-8 for data offset by 10^4 standard
deviations); every later M-step is centered again. (``GaussianMixture``
instead makes a first pass for the component means; the estimator has the
whole data at hand.)

Precision: parameters are float64. Statistics are accumulated in float64
whatever the data dtype; float32 rows are promoted block by block, so the
shift used for the statistics is exactly the one the M-step adds back.
"""

from __future__ import annotations

import numpy as np

from ...core import em
from ...core.types import GaussianParams, SuffStats
from ..base import ComponentFamily
from . import get_structure
from ._common import NotPositiveDefinite


class GaussianFamily(ComponentFamily):
    """Multivariate normal components with a covariance structure.

    Parameters
    ----------
    covariance_type : str, default='full'
        Any name of :func:`emix.families.gaussian.structure_names`
        ('full', 'tied', 'diag', 'spherical' and mclust's models).
    reg_covar : float >= 0, default=1e-6
        Added to every covariance diagonal in the M-step.

    Notes
    -----
    Component parameters (``comp``) have scikit-learn's shapes for the
    structure: ``means`` (K, D), ``covariances`` (e.g. (K, D, D) for 'full',
    (K, D) for 'diag'), ``precisions_cholesky`` (the same shape; ``P_k = U_k
    U_k^T`` with ``U_k`` upper triangular, or ``1 / sqrt(var)`` for 'diag' and
    'spherical'). See the module docstring for the statistics and their shift.
    """

    name = "gaussian"
    param_names = ("means", "covariances", "precisions_cholesky")

    def __init__(self, covariance_type="full", reg_covar=1e-6):
        self.structure = get_structure(covariance_type)
        self.covariance_type = covariance_type
        try:
            self.reg_covar = float(reg_covar)
        except (TypeError, ValueError):
            raise TypeError(f"reg_covar must be a non-negative number. Got {reg_covar!r}.") from None
        if not self.reg_covar >= 0 or not np.isfinite(self.reg_covar):
            raise ValueError(f"reg_covar must be a finite number >= 0. Got {reg_covar!r}.")

    def config(self):
        return {"name": self.name,
                "options": {"covariance_type": self.covariance_type, "reg_covar": self.reg_covar}}

    # ------------------------------------------------------------- E-step
    @staticmethod
    def _f64(X):
        return X if X.dtype == np.float64 else X.astype(np.float64)

    def log_prob(self, X, comp):
        """Per-component log densities. Rows far from every component
        (distances that overflow) go through :func:`emix.core.em.weighted_log_prob`'s
        stable form (unit weights), so they are finite or -inf, never NaN."""
        X = self._f64(X)
        with np.errstate(over="ignore", invalid="ignore"):
            lp = self.structure.log_prob(X, comp["means"], comp["precisions_cholesky"])
        bad = ~np.all(np.isfinite(lp), axis=1)
        if bad.any():
            K = comp["means"].shape[0]
            params = GaussianParams(weights=np.ones(K), means=comp["means"], covariances=comp["covariances"],
                                    precisions_cholesky=comp["precisions_cholesky"])
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                lp[bad] = em.weighted_log_prob(X[bad], params, self.structure)
        return lp

    def suff_stats(self, X, rw, comp):
        X = self._f64(X)
        if comp is None:
            shift = np.zeros((rw.shape[1], X.shape[1]))
        else:
            shift = np.asarray(comp["means"], dtype=np.float64)
        s = em.stats_from_resp(X, None, rw, shift, self.structure)
        return {"s1": s.s1, "s2": s.s2}

    # ------------------------------------------------------------- M-step
    def m_step(self, sums, nk, comp_prev):
        """Parameters from summed statistics (the shift is ``comp_prev``'s
        means, or the origin when ``comp_prev`` is None).

        ``nk`` already carries the mixture driver's ``10 eps``;
        :func:`emix.core.em.m_step` adds it once more (``2e-15`` in all, below
        float64's resolution of any ``n_k >= 1``; it only keeps an empty
        component's ``s1 / n_k`` finite).

        Raises
        ------
        DegenerateComponentError
            If a covariance is not positive definite (see ``reg_covar``).
        """
        s1 = sums["s1"]
        shift = np.zeros_like(s1) if comp_prev is None else np.asarray(comp_prev["means"], dtype=np.float64)
        stats = SuffStats(nk=np.asarray(nk, dtype=np.float64), s1=s1, s2=sums["s2"], shift=shift,
                          loglik=0.0, sum_w=0.0)
        p = em.m_step(stats, self.structure, self.reg_covar, np.float64)
        return {"means": p.means, "covariances": p.covariances, "precisions_cholesky": p.precisions_cholesky}

    # -------------------------------------------------------------- others
    def n_parameters(self, comp):
        K, D = comp["means"].shape
        return int(K * D + self.structure.n_cov_parameters(K, D))

    def sample(self, comp, counts, rng):
        return np.asarray(self.structure.draw(rng, comp["means"], comp["covariances"], counts), dtype=np.float64)

    def singular_reason(self, comp, weights, n_samples):
        """A component at the ``reg_covar`` floor, numerically singular or
        with too few points for its own covariance (:mod:`emix._singular`)."""
        from ..._singular import gaussian_reason

        return gaussian_reason(weights, comp["means"], comp["covariances"], self.covariance_type, self.reg_covar,
                               n_samples)

    def check_params(self, comp, K, D):
        """Validated float64 ``comp``; either ``covariances`` or
        ``precisions_cholesky`` may be missing (derived from the other).

        Raises
        ------
        ValueError
            On a wrong shape, non-finite values, or a covariance that is not
            positive definite.
        """
        if not isinstance(comp, dict) or "means" not in comp:
            raise ValueError("Gaussian parameters need 'means' and 'covariances' or 'precisions_cholesky'.")
        means = np.asarray(comp["means"], dtype=np.float64)
        if means.shape != (K, D):
            raise ValueError(f"means must have shape ({K}, {D}). Got {means.shape}.")
        if not np.all(np.isfinite(means)):
            raise ValueError("means must be finite.")
        shape = tuple(self.structure.cov_shape(K, D))
        s = self.structure
        if comp.get("covariances") is not None:
            cov = np.asarray(comp["covariances"], dtype=np.float64)
            if cov.shape != shape:
                raise ValueError(f"covariances for covariance_type={self.covariance_type!r} must have shape "
                                 f"{shape}. Got {cov.shape}.")
            try:
                pc = s.prec_chol_from_cov(cov)
            except (NotPositiveDefinite, np.linalg.LinAlgError):
                raise ValueError(f"covariances for covariance_type={self.covariance_type!r} must be symmetric "
                                 "positive definite.") from None
        elif comp.get("precisions_cholesky") is not None:
            pc = np.asarray(comp["precisions_cholesky"], dtype=np.float64)
            if pc.shape != shape:
                raise ValueError(f"precisions_cholesky for covariance_type={self.covariance_type!r} must have "
                                 f"shape {shape}. Got {pc.shape}.")
            if not np.all(np.isfinite(pc)):
                raise ValueError("precisions_cholesky must be finite.")
            cov = s.cov_from_prec_chol(pc)
            try:  # the canonical factor: upper triangular (or positive), positive diagonal
                ok = np.allclose(s.prec_chol_from_cov(cov), pc, rtol=1e-8, atol=0.0)
            except (NotPositiveDefinite, np.linalg.LinAlgError):
                ok = False
            if not ok:
                raise ValueError(f"precisions_cholesky for covariance_type={self.covariance_type!r} must be the "
                                 "upper-triangular Cholesky factor of a precision (positive diagonal).")
        else:
            raise ValueError("Gaussian parameters need 'covariances' or 'precisions_cholesky'.")
        return {"means": means, "covariances": cov, "precisions_cholesky": pc}

