"""Initial responsibilities. Every method yields an (n, K) responsibility
matrix that then goes through the same M-step as EM itself.

k-means and k-means++ are scikit-learn's public ``KMeans`` and
``kmeans_plusplus``, called exactly as scikit-learn's ``GaussianMixture``
calls them (so the same ``random_state`` gives the same start), with the
sample weights passed through.
"""

from __future__ import annotations

import numpy as np

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data", "hierarchical")


def initial_resp(X, sample_weight, n_components, method, random_state):
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
    else:  # validated at the API edge
        raise ValueError(f"Unknown init_params {method!r}.")
    return resp
