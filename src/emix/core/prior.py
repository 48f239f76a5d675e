"""MAP estimation under a conjugate prior (Fraley & Raftery 2007).

Prior, for every component ``k``:

- ``mu_k | Sigma_k ~ N(mu_P, Sigma_k / kappa_P)``
- ``Sigma_k ~ inverse-Wishart(nu_P, Lambda_P)``, density proportional to
  ``|Sigma|^(-(nu_P + d + 1)/2) exp(-tr(Lambda_P Sigma^{-1}) / 2)``

and no prior on the mixing weights. The M-step maximizes the expected
complete-data log-posterior. Maximizing over ``mu_k`` first,

    mu_k = (n_k xbar_k + kappa_P mu_P) / (n_k + kappa_P)

and the covariance part becomes ``-1/2 sum_k [ntilde_k log|Sigma_k| +
tr(W_k^P Sigma_k^{-1})]`` with

    W_k^P    = Lambda_P + W_k + kappa_P n_k / (n_k + kappa_P) (xbar_k - mu_P)(xbar_k - mu_P)^T
    ntilde_k = n_k + nu_P + d + 2

which is the maximum-likelihood covariance problem of every structure with
``(W_k, n_k)`` replaced by ``(W_k^P, ntilde_k)``. For the unconstrained model
(VVV/'full') this gives Fraley & Raftery's ``Sigma_k = W_k^P / (n_k + nu_P + d
+ 2)``. For the constrained models emix keeps one prior per component (so the
shared factors of, e.g., EEE see ``K`` prior terms); Fraley & Raftery place a
single prior on shared factors, so the constrained models' MAP estimates
differ slightly from mclust's (by O(1/n)).

``default_prior`` is mclust's ``defaultPrior``: ``mu_P`` the data mean,
``kappa_P = 0.01``, ``nu_P = d + 2``, ``Lambda_P = cov(X) / K^(2/d)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import DegenerateComponentError
from ..families.gaussian._common import NotPositiveDefinite
from .numerics import eps_nk
from .types import GaussianParams


@dataclass(frozen=True)
class ConjugatePrior:
    """Normal-inverse-Wishart prior (see the module notes).

    Attributes
    ----------
    mean : ndarray of shape (n_features,)
        ``mu_P``.
    shrinkage : float
        ``kappa_P > 0``: the prior's weight on ``mu_P``, in observations.
    dof : float
        ``nu_P > d - 1``: inverse-Wishart degrees of freedom.
    scale : ndarray of shape (n_features, n_features)
        ``Lambda_P``, symmetric positive definite.
    """

    mean: np.ndarray
    shrinkage: float
    dof: float
    scale: np.ndarray

    def check(self, n_features):
        mean = np.asarray(self.mean, dtype=np.float64)
        scale = np.asarray(self.scale, dtype=np.float64)
        D = int(n_features)
        if mean.shape != (D,) or scale.shape != (D, D):
            raise ValueError(
                f"prior.mean must have shape ({D},) and prior.scale ({D}, {D}). "
                f"Got {mean.shape} and {scale.shape}."
            )
        if not (np.isfinite(self.shrinkage) and self.shrinkage > 0):
            raise ValueError(f"prior.shrinkage must be > 0. Got {self.shrinkage!r}.")
        if not (np.isfinite(self.dof) and self.dof > D - 1):
            raise ValueError(f"prior.dof must be > n_features - 1 = {D - 1}. Got {self.dof!r}.")
        if not np.allclose(scale, scale.T) or np.any(np.linalg.eigvalsh(scale) <= 0):
            raise ValueError("prior.scale must be symmetric positive definite.")
        return ConjugatePrior(mean=mean, shrinkage=float(self.shrinkage), dof=float(self.dof), scale=scale)


def default_prior(X, n_components, sample_weight=None, shrinkage=0.01):
    """mclust's ``defaultPrior`` for data ``X`` and ``n_components`` components."""
    X = np.asarray(X, dtype=np.float64)
    n, D = X.shape
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    mean = np.average(X, axis=0, weights=w)
    cov = np.cov(X, rowvar=False, aweights=w)
    return prior_from_moments(mean, cov, n_components, shrinkage)


def prior_from_moments(mean, cov, n_components, shrinkage=0.01):
    """:func:`default_prior` from the data's (weighted) mean and (unbiased)
    covariance, for data seen block by block (out of core, Dask)."""
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    D = mean.shape[0]
    return ConjugatePrior(mean=mean, shrinkage=float(shrinkage), dof=float(D + 2),
                          scale=cov / float(n_components) ** (2.0 / D))


def resolve_prior(prior, X, n_components, sample_weight=None):
    """``None`` -> None; ``"default"`` -> :func:`default_prior`; a
    :class:`ConjugatePrior` -> checked copy."""
    if prior is None:
        return None
    if isinstance(prior, str) and prior == "default":
        return default_prior(X, n_components, sample_weight)
    if isinstance(prior, ConjugatePrior):
        return prior.check(np.shape(X)[1])
    raise ValueError(f"prior must be None, 'default' or an emix.core.prior.ConjugatePrior. Got {prior!r}.")


def _scatter_kind(structure, D):
    """'full' (K, D, D), 'pooled' (D, D) or 'diag' (K, D): the shape of the
    structure's statistic, probed with D + 1 components so that (K, D) and
    (D, D) cannot be confused."""
    P = D + 1
    probe = structure.scatter(np.zeros((1, D)), np.ones((1, P)), np.zeros((P, D)))
    shape = np.shape(probe)
    if shape == (P, D, D):
        return "full"
    if shape == (D, D):
        return "pooled"
    if shape == (P, D):
        return "diag"
    raise TypeError(f"Cannot apply a prior to structure {structure.name!r} (statistic shape {shape}).")


def map_m_step(stats, structure, prior: ConjugatePrior, reg_covar, dtype) -> GaussianParams:
    """Posterior-mode parameters from summed statistics (see the module notes).

    Raises
    ------
    DegenerateComponentError
        If a covariance is not positive definite.
    """
    nk = np.asarray(stats.nk, dtype=np.float64) + eps_nk(dtype)
    K, D = stats.s1.shape
    delta = stats.s1 / nk[:, None]
    xbar = np.asarray(stats.shift, dtype=np.float64) + delta
    kappa, nu = prior.shrinkage, prior.dof
    means = ((nk[:, None] * xbar + kappa * prior.mean) / (nk + kappa)[:, None]).astype(dtype)
    weights = (nk / nk.sum()).astype(dtype)
    dm = xbar - prior.mean
    coef = kappa * nk / (nk + kappa)
    s2 = np.asarray(stats.s2, dtype=np.float64)
    kind = _scatter_kind(structure, D)
    if kind == "full":
        WP = (s2 - nk[:, None, None] * delta[:, :, None] * delta[:, None, :]
              + coef[:, None, None] * dm[:, :, None] * dm[:, None, :] + prior.scale)
    elif kind == "pooled":
        WP = (s2 - (delta.T * nk) @ delta + (dm.T * coef) @ dm + K * prior.scale)
    else:
        WP = s2 - nk[:, None] * delta * delta + coef[:, None] * dm * dm + np.diag(prior.scale)
    n_tilde = nk + nu + D + 2.0
    cov = structure.covariances(WP, n_tilde, np.zeros_like(delta), reg_covar, dtype)
    try:
        prec_chol = structure.prec_chol_from_cov(cov)
    except NotPositiveDefinite as exc:
        raise DegenerateComponentError.for_component(
            exc.component, float(stats.nk[exc.component]), structure.name, reg_covar
        ) from None
    return GaussianParams(weights=weights, means=means, covariances=cov, precisions_cholesky=prec_chol)


__all__ = ["ConjugatePrior", "default_prior", "map_m_step", "prior_from_moments", "resolve_prior"]
