"""Partial supervision: ``fit(X, labels=...)`` and ``fixed=(...)``.

Oracles: closed-form weighted estimates (numpy) for an all-labelled fit; the
planted labels for accuracy; invariants (monotone objective, held
parameters unchanged, parameter counts).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from emix import GaussianMixture


def _planted(n=600, D=2, K=3, seed=0, sep=2.5):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=sep, size=(K, D))
    z = rng.integers(K, size=n)
    A = rng.normal(size=(K, D, D)) * 0.5 + np.eye(D)
    X = centers[z] + np.einsum("nij,nj->ni", A[z], rng.normal(size=(n, D)))
    return X, z


def _quiet(gm, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gm.fit(*args, **kw)


# --------------------------------------------------------------- labels
@pytest.mark.parametrize("ct", ["full", "diag", "tied", "spherical"])
def test_all_labelled_is_the_closed_form(ct):
    X, z = _planted(n=300, D=3, seed=1)
    w = np.random.default_rng(2).random(len(X)) + 0.5
    gm = _quiet(GaussianMixture(3, covariance_type=ct, tol=1e-12, reg_covar=1e-6), X, sample_weight=w, labels=z)
    assert gm.n_iter_ <= 2  # the second iteration only confirms the first
    ww = w / w.mean()
    for k in range(3):
        wk = ww[z == k]
        mu = np.average(X[z == k], axis=0, weights=wk)
        np.testing.assert_allclose(gm.means_[k], mu, rtol=1e-10, atol=1e-10)
        assert gm.weights_[k] == pytest.approx(wk.sum() / ww.sum(), rel=1e-9)
    covs = [np.cov(X[z == k].T, aweights=ww[z == k], bias=True) for k in range(3)]
    if ct == "full":
        ref = np.stack(covs) + 1e-6 * np.eye(3)
    elif ct == "diag":
        ref = np.stack([np.diag(c) for c in covs]) + 1e-6
    elif ct == "spherical":
        ref = np.array([np.trace(c) / 3 for c in covs]) + 1e-6
    else:
        nk = np.array([ww[z == k].sum() for k in range(3)])
        ref = sum(n * c for n, c in zip(nk, covs)) / nk.sum() + 1e-6 * np.eye(3)
    np.testing.assert_allclose(gm.covariances_, ref, rtol=1e-8, atol=1e-12)


def test_accuracy_on_unlabelled_rows_grows_with_labelled_fraction():
    X, z = _planted(n=900, D=2, K=3, seed=3, sep=1.6)
    rng = np.random.default_rng(4)
    order = rng.permutation(len(X))
    acc = []
    for frac in (0.01, 0.05, 0.3):
        labels = np.full(len(X), -1)
        known = order[: int(frac * len(X))]
        labels[known] = z[known]
        gm = _quiet(GaussianMixture(3, random_state=0, max_iter=300), X, labels=labels)
        un = labels < 0
        acc.append(np.mean(gm.predict(X[un]) == z[un]))
    assert acc[0] <= acc[1] + 0.01 <= acc[2] + 0.02, acc
    assert acc[2] > 0.8, acc


def test_labelled_objective_never_decreases_with_missing_values():
    X, z = _planted(n=400, D=3, seed=5)
    Xm = X.copy()
    Xm[np.random.default_rng(6).random(X.shape) < 0.25] = np.nan
    labels = np.where(np.random.default_rng(7).random(len(X)) < 0.2, z, -1)
    gm = _quiet(GaussianMixture(3, missing="em", random_state=0, tol=0.0, max_iter=60), Xm, labels=labels)
    lb = np.asarray(gm.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:]))


def test_labels_fix_the_responsibilities():
    """The objective the fit records is sum_labelled log pi_y N(x | y) +
    sum_unlabelled log p(x), evaluated with the entering parameters."""
    X, z = _planted(n=200, seed=8)
    labels = np.where(np.arange(len(X)) % 4 == 0, z, -1)
    a = _quiet(GaussianMixture(3, random_state=0, tol=0.0, max_iter=5), X, labels=labels)
    b = _quiet(GaussianMixture(3, random_state=0, tol=0.0, max_iter=6), X, labels=labels)
    from scipy.stats import multivariate_normal as mvn

    lab = labels >= 0
    dens = np.stack([a.weights_[k] * mvn.pdf(X, a.means_[k], a.covariances_[k]) for k in range(3)], axis=1)
    obj = np.log(dens[lab, labels[lab]]).sum() + np.log(dens[~lab].sum(axis=1)).sum()
    assert b.lower_bounds_[-1] == pytest.approx(obj / len(X), rel=1e-10)


def test_y_stays_ignored_and_bad_labels_are_errors():
    X, z = _planted(n=120, seed=9)
    a = GaussianMixture(3, random_state=0).fit(X, z)
    b = GaussianMixture(3, random_state=0).fit(X)
    assert np.array_equal(a.means_, b.means_)
    with pytest.raises(ValueError, match="component index in 0..2"):
        GaussianMixture(3).fit(X, labels=np.full(len(X), 3))
    with pytest.raises(ValueError, match="shape"):
        GaussianMixture(3).fit(X, labels=z[:-1])
    with pytest.raises(TypeError, match="integer"):
        GaussianMixture(3).fit(X, labels=z.astype(str))


def test_components_without_labelled_rows_start_from_the_usual_initialization():
    X, z = _planted(n=300, seed=10, sep=4.0)
    labels = np.where((z == 0) & (np.arange(len(X)) % 3 == 0), 0, -1)
    gm = _quiet(GaussianMixture(3, random_state=0), X, labels=labels)
    assert np.mean(gm.predict(X[z == 0]) == 0) > 0.9


# --------------------------------------------------------- fixed parameters
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical", "EEV", "VEI"])
@pytest.mark.parametrize("fixed", [("means",), ("covariances",), ("weights",), ("weights", "means")])
def test_fixed_parameters_are_held_and_likelihood_is_monotone(ct, fixed):
    X, z = _planted(n=300, D=3, seed=11)
    ref = _quiet(GaussianMixture(3, covariance_type=ct, random_state=0, max_iter=3), X)
    inits = dict(weights_init=np.full(3, 1 / 3), means_init=ref.means_ + 0.3, precisions_init=ref.precisions_)
    gm = _quiet(GaussianMixture(3, covariance_type=ct, fixed=fixed, tol=0.0, max_iter=40, **inits), X)
    if "means" in fixed:
        assert np.array_equal(gm.means_, inits["means_init"])
    else:
        assert not np.array_equal(gm.means_, inits["means_init"])
    if "weights" in fixed:
        assert np.array_equal(gm.weights_, inits["weights_init"])
    if "covariances" in fixed:
        np.testing.assert_allclose(gm.precisions_, inits["precisions_init"], rtol=1e-10)
    lb = np.asarray(gm.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:])), np.diff(lb).min()
    free = GaussianMixture(3, covariance_type=ct)
    free.means_ = gm.means_
    K, D = 3, 3
    drop = ("weights" in fixed) * (K - 1) + ("means" in fixed) * K * D
    drop += ("covariances" in fixed) * gm._structure().n_cov_parameters(K, D)
    assert gm._n_parameters() == free._n_parameters() - drop
    ll = gm.score(X) * len(X)
    assert gm.bic(X) == pytest.approx(-2 * ll + gm._n_parameters() * np.log(len(X)), rel=1e-12)


def test_fixed_means_give_the_scatter_around_them():
    X, z = _planted(n=300, D=2, seed=12)
    # held near (not at) the planted groups' means, so that no component empties out with reg_covar=0
    mu = np.stack([X[z == k].mean(axis=0) for k in range(3)]) + np.array([[0.3, -0.2], [0.1, 0.2], [-0.2, 0.1]])
    gm = _quiet(GaussianMixture(3, fixed=("means",), means_init=mu, tol=1e-12, max_iter=2000, reg_covar=0.0,
                                random_state=0), X)
    r = gm.predict_proba(X)  # at convergence the covariance is the responsibility-weighted scatter around mu
    for k in range(3):
        d = X - mu[k]
        S = (r[:, k, None] * d).T @ d / r[:, k].sum()
        np.testing.assert_allclose(gm.covariances_[k], S, rtol=1e-5, atol=1e-6)


def test_fixed_needs_its_init():
    X, _ = _planted(n=60)
    with pytest.raises(ValueError, match="means_init"):
        GaussianMixture(2, fixed=("means",)).fit(X)
    with pytest.raises(ValueError, match="fixed must hold names"):
        GaussianMixture(2, fixed=("mean",)).fit(X)
