"""Initial responsibilities. Every method yields an (n, K) responsibility
matrix that then goes through the same M-step as EM itself.

k-means and k-means++ are scikit-learn's public ``KMeans`` and
``kmeans_plusplus``, called exactly as scikit-learn's ``GaussianMixture``
calls them (so the same ``random_state`` gives the same start), with the
sample weights passed through.

On PyTorch/CuPy arrays (``xp`` not numpy) initialization runs on the device:

- ``'k-means++'``: weighted D^2 seeding with greedy local trials
  (``2 + floor(log K)`` candidates per center, the best reducing the weighted
  potential), written with array-API operations; the uniform draws come from a
  numpy ``RandomState`` driven by ``random_state``. The start is a proper
  k-means++ seeding but not the one scikit-learn's ``kmeans_plusplus`` picks.
- ``'kmeans'``: that seeding followed by at most ``LLOYD_ITERATIONS`` weighted
  Lloyd iterations on the device (stopping when no label changes), not
  scikit-learn's ``KMeans`` run to convergence.
- ``'random'`` and ``'random_from_data'``: the same host draws as on numpy,
  moved to the device, so the start equals the numpy one.
- ``'hierarchical'``: computed on the host (numpy), labels moved to the device.
- ``'mclust'``: the same (mclust's exact ``hc()`` tree, :mod:`emix.core.mclust_hc`).
"""

from __future__ import annotations

import math

import numpy as np

from ..backends import _xp

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data", "hierarchical", "mclust")

#: Most Lloyd iterations of the on-device 'kmeans' initialization.
LLOYD_ITERATIONS = 10


def initial_resp(X, sample_weight, n_components, method, random_state, xp=np):
    if xp is not np:
        return _initial_resp_xp(X, sample_weight, n_components, method, random_state, xp)
    n = X.shape[0]
    K = n_components
    if method == "kmeans":
        from sklearn.cluster import KMeans

        labels = (
            KMeans(n_clusters=K, n_init=1, random_state=random_state)
            .fit(X, sample_weight=sample_weight)
            .labels_
        )
        resp = np.zeros((n, K), dtype=X.dtype)
        resp[np.arange(n), labels] = 1
    elif method == "k-means++":
        from sklearn.cluster import kmeans_plusplus

        _, indices = kmeans_plusplus(
            X, K, random_state=random_state, sample_weight=sample_weight
        )
        resp = np.zeros((n, K), dtype=X.dtype)
        resp[indices, np.arange(K)] = 1
    elif method == "random":
        resp = np.asarray(random_state.uniform(size=(n, K)), dtype=X.dtype)
        resp /= resp.sum(axis=1)[:, None]
    elif method == "random_from_data":
        if sample_weight is None:
            indices = random_state.choice(n, size=K, replace=False)
        else:
            p = np.asarray(sample_weight, dtype=np.float64)
            indices = random_state.choice(n, size=K, replace=False, p=p / p.sum())
        resp = np.zeros((n, K), dtype=X.dtype)
        resp[indices, np.arange(K)] = 1
    elif method == "hierarchical":  # model-based agglomeration (Fraley 1998)
        from .hierarchical import hierarchical_labels

        labels = hierarchical_labels(X, K, random_state)
        resp = np.zeros((n, K), dtype=X.dtype)
        resp[np.arange(n), labels] = 1
    elif method == "mclust":  # mclust's hc(VVV, SVD) tree exactly (core/mclust_hc.py)
        from .mclust_hc import mclust_partitions

        parts, rows = mclust_partitions(X, [K], random_state)
        resp = np.zeros((n, K), dtype=X.dtype)
        if rows.size == n:
            resp[np.arange(n), parts[K]] = 1
        else:  # the subset's partition; the other rows are left to the first M-step's E-step
            resp[rows, parts[K]] = 1
    else:  # validated at the API edge
        raise ValueError(f"Unknown init_params {method!r}.")
    return resp


# ------------------------------------------------------------- array API path
def _sq_dist_to(xp, X, c):
    """Squared distances of the rows of ``X`` to the point ``c`` (direct)."""
    Z = X - c
    return _xp.rowdot(xp, Z, Z)


def _draw(xp, cum, u):
    """Indices ``i`` with ``cum[i-1] <= u < cum[i]`` (rows with zero mass are
    never drawn), for host draws ``u``."""
    n = cum.shape[0]
    u = xp.asarray(np.atleast_1d(np.asarray(u, dtype=np.float64)), dtype=cum.dtype, device=_xp.device(cum))
    idx = xp.searchsorted(cum, u, side="right")
    return [min(int(i), n - 1) for i in _xp.to_numpy(idx)]


def kmeans_plusplus_xp(X, sample_weight, n_clusters, random_state, xp):
    """Indices of ``n_clusters`` rows of ``X`` chosen by greedy weighted
    k-means++ seeding, computed with ``xp`` operations on X's device."""
    f64 = _xp.accumulation_dtype(xp, X)
    n = X.shape[0]
    dev = _xp.device(X)
    w = xp.ones(n, dtype=f64, device=dev) if sample_weight is None else xp.astype(sample_weight, f64)
    n_trials = 2 + int(math.log(n_clusters))
    cum_w = xp.cumulative_sum(w)
    first = _draw(xp, cum_w, random_state.uniform() * float(cum_w[-1]))[0]
    centers = [first]
    d2 = xp.astype(_sq_dist_to(xp, X, X[first]), f64)
    for _ in range(1, n_clusters):
        cum = xp.cumulative_sum(w * d2)
        total = float(cum[-1])
        if total <= 0.0:  # every row sits on a center: take any weighted row
            cum, total = cum_w, float(cum_w[-1])
        cands = _draw(xp, cum, random_state.uniform(size=n_trials) * total)
        best, best_pot, best_d2 = None, math.inf, None
        for c in cands:
            nd2 = xp.minimum(d2, xp.astype(_sq_dist_to(xp, X, X[c]), f64))
            pot = float(xp.sum(w * nd2))
            if pot < best_pot:
                best, best_pot, best_d2 = c, pot, nd2
        centers.append(best)
        d2 = best_d2
    return centers


def _one_hot(xp, labels, K, dtype):
    ks = xp.arange(K, device=_xp.device(labels))
    return xp.astype(labels[:, None] == ks[None, :], dtype)


def _lloyd_xp(X, sample_weight, centers, xp, n_iter):
    """Weighted Lloyd iterations from ``centers``; returns the labels. An
    empty cluster keeps its previous center."""
    K = centers.shape[0]
    # distances by expansion lose accuracy far from the origin: center first
    g = xp.mean(X, axis=0)
    X, centers = X - g, centers - g
    x2 = _xp.rowdot(xp, X, X)
    labels = None
    for _ in range(n_iter + 1):
        d = x2[:, None] - 2.0 * (X @ centers.T) + _xp.rowdot(xp, centers, centers)[None, :]
        new = xp.argmin(d, axis=1)
        if labels is not None and bool(xp.all(new == labels)):
            break
        labels = new
        R = _one_hot(xp, labels, K, X.dtype)
        if sample_weight is not None:
            R = R * xp.astype(sample_weight, X.dtype)[:, None]
        size = xp.sum(R, axis=0)
        sums = R.T @ X
        keep = size <= 0
        centers = xp.where(keep[:, None], centers, sums / xp.where(keep, 1.0, size)[:, None])
    return labels


def _initial_resp_xp(X, sample_weight, n_components, method, random_state, xp):
    n, K = X.shape[0], n_components
    dev = _xp.device(X)
    if method in ("kmeans", "k-means++"):
        idx = kmeans_plusplus_xp(X, sample_weight, K, random_state, xp)
        if method == "k-means++":
            labels_of = xp.full((n,), -1, dtype=xp.int64, device=dev)
            labels_of[xp.asarray(idx, device=dev)] = xp.arange(K, device=dev)
            return _one_hot(xp, labels_of, K, X.dtype)
        centers = X[xp.asarray(idx, device=dev)]
        return _one_hot(xp, _lloyd_xp(X, sample_weight, centers, xp, LLOYD_ITERATIONS), K, X.dtype)
    # the numpy draws on the host, then the result on the device
    Xh = _xp.to_numpy(X) if method in ("hierarchical", "mclust") else np.empty((n, 0), dtype=_xp.to_numpy(X[:1]).dtype)
    resp = initial_resp(Xh, _xp.to_numpy(sample_weight), K, method, random_state)
    return xp.asarray(resp, device=dev)
