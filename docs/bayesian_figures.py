"""Figures and numbers of docs/bayesian.md (EM and variational Bayes on Old Faithful).

Reproduce:
    python docs/bayesian_figures.py            # writes docs/img/bayesian_*.png, prints the numbers
"""

from __future__ import annotations

import os

import numpy as np

import emix
from emix.datasets import load_faithful

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emix.plotting import plot_clusters

    X, _ = load_faithful()
    X = (X - X.mean(axis=0)) / X.std(axis=0)  # the two columns have different units
    os.makedirs(os.path.join(HERE, "img"), exist_ok=True)

    # EM: one fit per K, BIC picks K
    bics = {}
    fits = {}
    for K in range(1, 9):
        gm = emix.GaussianMixture(K, covariance_type="full", n_init=5, random_state=0, tol=1e-6,
                                  max_iter=1000).fit(X)
        bics[K], fits[K] = gm.bic(X), gm
    k_bic = min(bics, key=bics.get)
    em = fits[k_bic]
    print("BIC by K:", {k: round(v, 1) for k, v in bics.items()}, "-> K =", k_bic)

    # VB: one fit with 8 components offered, both weight priors
    vbs = {}
    for kind in ("dirichlet_process", "dirichlet_distribution"):
        vbs[kind] = emix.BayesianGaussianMixture(
            n_components=8, weight_concentration_prior_type=kind, weight_concentration_prior=1e-2,
            n_init=5, random_state=0, tol=1e-6, max_iter=2000).fit(X)
        b = vbs[kind]
        print(kind, "effective components:", b.n_effective_components_, "n_iter:", b.n_iter_,
              f"lower bound: {b.lower_bound_:.3f}", "weights:", np.round(b.weights_, 4))
    em8 = emix.GaussianMixture(8, covariance_type="full", random_state=0, tol=1e-6, max_iter=2000).fit(X)
    print("EM with 8 components, weights:", np.round(np.sort(em8.weights_)[::-1], 3))

    # 1. the recorded quantity per iteration
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(np.arange(1, len(em.lower_bounds_) + 1), em.lower_bounds_, color="C0")
    axes[0].set(title=f"EM, K = {k_bic}: mean log-likelihood", xlabel="iteration", ylabel="mean log p(x)")
    for kind, c in (("dirichlet_process", "C1"), ("dirichlet_distribution", "C2")):
        lb = vbs[kind].lower_bounds_
        axes[1].plot(np.arange(1, len(lb) + 1), lb, color=c, label=kind)
    axes[1].set(title="VB, 8 components offered: evidence lower bound", xlabel="iteration",
                ylabel="lower bound (total, up to a constant)")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "img", "bayesian_bound.png"), dpi=90)

    # 2. expected weights of the components
    fig, ax = plt.subplots(figsize=(8, 3.6))
    idx = np.arange(8)
    ax.bar(idx - 0.27, np.sort(em8.weights_)[::-1], width=0.27, label="EM, 8 components (sorted)", color="C0")
    ax.bar(idx, vbs["dirichlet_process"].weights_, width=0.27, label="VB, Dirichlet process", color="C1")
    ax.bar(idx + 0.27, np.sort(vbs["dirichlet_distribution"].weights_)[::-1], width=0.27,
           label="VB, Dirichlet distribution (sorted)", color="C2")
    ax.axhline(0.01, color="k", lw=0.8, ls="--")
    ax.text(7.5, 0.012, "threshold 0.01", ha="right", va="bottom", fontsize=8)
    ax.set(xticks=idx, xlabel="component", ylabel="weight", title="Expected weights, Old Faithful (standardized)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "img", "bayesian_weights.png"), dpi=90)

    # 3. the clusters
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    plot_clusters(em, X, ax=axes[0], title=f"EM + BIC (K = {k_bic})", feature_names=["eruptions", "waiting"])
    plot_clusters(vbs["dirichlet_process"], X, ax=axes[1], feature_names=["eruptions", "waiting"],
                  title="VB, Dirichlet process (8 offered)")
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "img", "bayesian_clusters.png"), dpi=90)


if __name__ == "__main__":
    main()
