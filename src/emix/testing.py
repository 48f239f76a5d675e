"""Helpers for testing code that uses emix (and emix itself)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def make_mixture(n_samples=500, n_components=3, n_features=2, *, separation=6.0,
                 offset=0.0, dtype=np.float64, random_state=0):
    """Draw rows from a random, well separated Gaussian mixture.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
    truth : dict with 'weights', 'means', 'covariances' (full, (K, D, D))
    """
    rng = np.random.default_rng(random_state)
    K, D = n_components, n_features
    weights = rng.dirichlet(np.full(K, 5.0))
    means = rng.normal(scale=separation, size=(K, D)) + offset
    covs = []
    for _ in range(K):
        A = rng.normal(size=(D, D)) / np.sqrt(D)
        covs.append(A @ A.T + 0.5 * np.eye(D))
    covs = np.array(covs)
    labels = rng.choice(K, size=n_samples, p=weights)
    X = np.empty((n_samples, D))
    for k in range(K):
        idx = labels == k
        X[idx] = rng.multivariate_normal(means[k], covs[k], size=int(idx.sum()))
    return X.astype(dtype), labels, {"weights": weights, "means": means, "covariances": covs}


def match_components(means_a, means_b):
    """Permutation ``p`` minimizing ``sum |means_a[p[k]] - means_b[k]|``."""
    cost = np.linalg.norm(np.asarray(means_a)[:, None] - np.asarray(means_b)[None], axis=2)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty_like(rows)
    perm[cols] = rows
    return perm


def assert_mixture_allclose(a, b, *, rtol=1e-7, atol=0.0, match=True):
    """Assert two fitted mixtures have the same weights, means and covariances,
    up to a permutation of components when ``match`` is true."""
    K = a.means_.shape[0]
    perm = match_components(a.means_, b.means_) if match else np.arange(K)
    np.testing.assert_allclose(a.weights_[perm], b.weights_, rtol=rtol, atol=atol, err_msg="weights_")
    np.testing.assert_allclose(a.means_[perm], b.means_, rtol=rtol, atol=atol, err_msg="means_")
    ca, cb = np.asarray(a.covariances_), np.asarray(b.covariances_)
    if getattr(a, "covariance_type", "full") != "tied":
        ca = ca[perm]
    np.testing.assert_allclose(ca, cb, rtol=rtol, atol=atol, err_msg="covariances_")


__all__ = ["assert_mixture_allclose", "make_mixture", "match_components"]
