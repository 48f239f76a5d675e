"""Model-based agglomerative hierarchical clustering (Fraley 1998), used as
``init_params='hierarchical'``.

Starting from singletons, agglomeration merges at each stage the pair of
clusters whose merge decreases the classification likelihood of a Gaussian
model the least (Banfield & Raftery 1993; Fraley 1998). Two stages:

1. On whitened data (centered, rotated to the principal axes and scaled to
   unit variance, in the spirit of mclust's default ``hcUse = "SVD"``) the
   spherical equal-volume model (EII). Its merge cost,
   ``n_i n_j / (n_i + n_j) |m_i - m_j|^2``, is Ward's criterion (Fraley 1998,
   Section 3), so scipy's O(m^2) Ward linkage computes it.
2. From ``M`` clusters on, the unconstrained model (VVV) with each cluster's
   covariance regularized as in Fraley & Raftery (2007): ``Sigma_k =
   (W_k + nu Psi) / (n_k + nu)`` with ``Psi`` the data covariance scaled to the
   volume of one of ``M`` clusters. The merge cost is the increase of
   ``sum_k [n_k log|Sigma_k| + tr(W_k Sigma_k^{-1})]``.

For large data the tree is built on a random subset of rows (``max_samples``);
each other row joins the subset cluster under whose (regularized) Gaussian it
is most probable.
The whole procedure is affine invariant up to the random subset.
"""

from __future__ import annotations

import numpy as np

#: Rows used to build the tree; more are subsampled (mclust's practice).
HC_MAX_SAMPLES = 2000
#: Clusters left by the Ward stage before the VVV stage takes over.
HC_VVV_START = 60


def _whiten(X):
    mean = X.mean(axis=0)
    Xc = X - mean
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    scale = s / np.sqrt(max(X.shape[0] - 1, 1))
    keep = scale > scale[0] * 1e-10 if scale.size else scale > 0
    return (Xc @ Vt[keep].T) / scale[keep], mean, Vt[keep], scale[keep]


def _cost(n, W, Psi, nu):
    """``n log|Sigma| + tr(W Sigma^{-1})`` with ``Sigma = (W + nu Psi)/(n + nu)``
    for stacks ``n`` (m,), ``W`` (m, d, d)."""
    S = (W + nu * Psi) / (n + nu)[:, None, None]
    _, logdet = np.linalg.slogdet(S)
    L = np.linalg.cholesky(S)
    # tr(W S^{-1}) = |L^{-1} W^{1/2}|^2; solve with W directly
    Y = np.linalg.solve(L, W)
    Z = np.linalg.solve(L, Y.transpose(0, 2, 1))
    return n * logdet + np.trace(Z, axis1=1, axis2=2)


def _merged(n, m, W, i, j):
    """Size, mean, scatter of the union of clusters i and j (arrays over j)."""
    ni, nj = np.asarray(n[i], dtype=np.float64), np.asarray(n[j], dtype=np.float64)
    nij = ni + nj
    d = m[i] - m[j]
    coef = ni * nj / nij
    mij = (ni[..., None] * m[i] + nj[..., None] * m[j]) / nij[..., None]
    Wij = W[i] + W[j] + coef[..., None, None] * (d[..., :, None] * d[..., None, :])
    return nij, mij, Wij


def _vvv_agglomerate(Z, labels, n_clusters, nu=1.0):
    """Merge the clusters given by ``labels`` (0..M-1) on rows ``Z`` with the
    regularized VVV criterion. ``n_clusters`` is an int or a collection of
    ints; returns the labels at that number of clusters (or a dict of them)."""
    targets = {int(n_clusters)} if np.ndim(n_clusters) == 0 else {int(k) for k in n_clusters}
    M = int(labels.max()) + 1
    d = Z.shape[1]
    n = np.bincount(labels, minlength=M).astype(np.float64)
    m = np.stack([Z[labels == c].mean(axis=0) for c in range(M)])
    W = np.stack([(Z[labels == c] - m[c]).T @ (Z[labels == c] - m[c]) for c in range(M)])
    Psi = np.cov(Z, rowvar=False).reshape(d, d) * M ** (-2.0 / d)
    own = _cost(n, W, Psi, nu)
    alive = np.ones(M, dtype=bool)
    delta = np.full((M, M), np.inf)
    iu, ju = np.triu_indices(M, 1)
    nij, _, Wij = _merged(n, m, W, iu, ju)
    delta[iu, ju] = _cost(nij, Wij, Psi, nu) - own[iu] - own[ju]
    delta[ju, iu] = delta[iu, ju]
    parent = np.arange(M)
    out = {}

    def snapshot():
        roots = np.flatnonzero(alive)
        relabel = np.full(M, -1)
        relabel[roots] = np.arange(roots.size)
        return relabel[parent[labels]]

    if M in targets:
        out[M] = snapshot()
    for step in range(M - max(1, min(targets))):
        flat = int(np.argmin(delta))
        i, j = divmod(flat, M)
        i, j = min(i, j), max(i, j)
        n[i], m[i], W[i] = _merged(n, m, W, i, j)
        own[i] = _cost(n[i : i + 1], W[i : i + 1], Psi, nu)[0]
        alive[j] = False
        parent[parent == j] = i
        delta[j, :] = delta[:, j] = np.inf
        others = np.flatnonzero(alive)
        others = others[others != i]
        if others.size:
            nij, _, Wij = _merged(n, m, W, np.full(others.size, i), others)
            row = _cost(nij, Wij, Psi, nu) - own[i] - own[others]
            delta[i, others] = row
            delta[others, i] = row
        if M - step - 1 in targets:
            out[M - step - 1] = snapshot()
    return out[int(n_clusters)] if np.ndim(n_clusters) == 0 else out


def hierarchical_partitions(X, n_clusters, random_state, max_samples=HC_MAX_SAMPLES,
                            vvv_start=HC_VVV_START):
    """One agglomeration tree cut at several numbers of clusters: a dict
    ``{K: labels (n,)}``. The partitions are nested and equal to those of
    :func:`hierarchical_labels` called with each K (for K <= vvv_start / 4)."""
    from scipy.cluster.hierarchy import fcluster, ward

    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    Ks = sorted({int(k) for k in n_clusters})
    out = {K: np.arange(n) % K for K in Ks if K >= n}
    Ks = [K for K in Ks if K < n]
    if not Ks:
        return out
    if n > max_samples:
        sub = np.sort(random_state.choice(n, size=max_samples, replace=False))
    else:
        sub = np.arange(n)
    Zs, mean, Vt, scale = _whiten(X[sub])
    m = Zs.shape[0]
    parts = {}
    if Zs.shape[1] == 0:
        parts = {K: np.zeros(m, dtype=int) for K in Ks}
    else:
        M = min(m, max(vvv_start, 4 * max(Ks)))
        tree = ward(Zs)
        start = fcluster(tree, t=M, criterion="maxclust") - 1
        # fcluster may return fewer groups when distances tie; relabel densely
        _, start = np.unique(start, return_inverse=True)
        G = int(start.max()) + 1
        small = [K for K in Ks if K < G]
        if small:
            parts.update(_vvv_agglomerate(Zs, start, small))
        for K in Ks:
            if K >= G:
                _, lab = np.unique(fcluster(tree, t=K, criterion="maxclust") - 1, return_inverse=True)
                parts[K] = lab
    if sub.size == n:
        out.update(parts)
        return out
    # the other rows join the cluster under which they are most probable: a
    # Gaussian per subset cluster (covariance regularized as in the VVV stage)
    Zall = ((X - mean) @ Vt.T) / scale
    d = Zs.shape[1]
    for K, lab in parts.items():
        G = int(lab.max()) + 1
        Psi = np.cov(Zs, rowvar=False).reshape(d, d) * G ** (-2.0 / d)
        score = np.empty((n, G))
        for c in range(G):
            Zc = Zs[lab == c]
            nc = Zc.shape[0]
            mu = Zc.mean(axis=0)
            S = ((Zc - mu).T @ (Zc - mu) + Psi) / (nc + 1)
            L = np.linalg.cholesky(S)
            Y = np.linalg.solve(L, (Zall - mu).T)
            score[:, c] = (np.log(nc / Zs.shape[0]) - np.sum(np.log(np.diag(L)))
                           - 0.5 * np.einsum("ij,ij->j", Y, Y))
        labels = np.argmax(score, axis=1)
        labels[sub] = lab
        out[K] = labels
    return out


def hierarchical_labels(X, n_clusters, random_state, max_samples=HC_MAX_SAMPLES,
                        vvv_start=HC_VVV_START):
    """Partition the rows of ``X`` into ``n_clusters`` groups by model-based
    agglomerative hierarchical clustering. Returns integer labels (n,)."""
    K = int(n_clusters)
    return hierarchical_partitions(X, [K], random_state, max_samples, vvv_start)[K]
