"""BayesianGaussianMixture.partial_fit: stochastic variational inference
(Hoffman et al. 2013) and mini-batch exact passes, against batch VB (fit),
against the natural-parameter update computed here from the fitted
attributes, and the ELBO of a streamed fit against the batch fit's."""

from __future__ import annotations

import numpy as np
import pytest

import emix
from emix import BayesianGaussianMixture as BGM
from emix.core import em, vb

COV = ["full", "tied", "diag", "spherical"]
PRIORS = ["dirichlet_process", "dirichlet_distribution"]


def planted(n_per=1000, seed=0):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.normal(c, 1.0, (n_per, 2)) for c in ([0, 0], [6, 6], [0, 9])])
    return X[rng.permutation(len(X))]


def full_data_elbo(model, X):
    """The bound of one variational iteration on all of ``X`` from the
    model's posterior (scikit-learn's lower_bound_ definition)."""
    st = model._structure()
    eff = model._effective()
    stats = em.e_step(X, None, eff, st, np)
    entropy = vb.responsibility_entropy(stats, eff, st)
    p = vb.m_step(stats, st, model._current_prior(), model.reg_covar, X.dtype)
    return entropy + vb.bound_terms(p, model.weight_concentration_prior_type, st)


def assert_same_fit(a, b, rtol=1e-10):
    for name in ("means_", "covariances_", "precisions_cholesky_", "weights_", "mean_precision_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=1e-12, err_msg=name)
    assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=rtol)


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("cov", COV)
def test_first_call_on_all_data_is_one_vb_iteration(cov, prior):
    """One batch = all data, first step rho = 1: the same as fit with
    max_iter=1 (initialization, then one E- and M-step)."""
    X = planted(200)
    kw = {"n_components": 5, "covariance_type": cov, "weight_concentration_prior_type": prior, "random_state": 3}
    ref = BGM(**kw, max_iter=1, tol=0.0)
    with pytest.warns(UserWarning):  # one iteration does not converge
        ref.fit(X)
    got = BGM(**kw).partial_fit(X)
    assert_same_fit(got, ref)
    assert got.lower_bounds_ == pytest.approx([ref.lower_bound_], rel=1e-12)


@pytest.mark.parametrize("cov", COV)
def test_rho_one_on_all_data_equals_batch_iterations(cov, monkeypatch):
    """With every step size 1 and the whole data as the batch, k calls are k
    iterations of batch VB."""
    import emix.online

    monkeypatch.setattr(emix.online, "step_size", lambda t, decay, offset: 1.0)
    X = planted(150)
    kw = {"n_components": 4, "covariance_type": cov, "random_state": 0}
    ref = BGM(**kw, max_iter=4, tol=0.0)
    with pytest.warns(UserWarning):
        ref.fit(X)
    got = BGM(**kw, total_samples=len(X))  # None would count the repeated data again on each call
    for _ in range(4):
        got.partial_fit(X)
    assert_same_fit(got, ref, rtol=1e-9)
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=1e-9)


def natural(model):
    """Natural parameters of a full-covariance posterior, from the fitted
    attributes: beta_k, beta_k m_k, W_k^-1 + beta_k m_k m_k^T, nu_k and the
    weight concentrations (Bishop 2006, 10.60-10.63 as prior + statistics)."""
    beta = np.asarray(model.mean_precision_, dtype=np.float64)
    m = np.asarray(model.means_, dtype=np.float64)
    nu = np.asarray(model.degrees_of_freedom_, dtype=np.float64)
    w_inv = nu[:, None, None] * np.asarray(model.covariances_, dtype=np.float64)
    wc = model.weight_concentration_
    wc = np.concatenate(wc) if isinstance(wc, tuple) else np.asarray(wc)
    return [beta, beta[:, None] * m, w_inv + beta[:, None, None] * m[:, :, None] * m[:, None, :], nu, wc]


@pytest.mark.parametrize("prior", PRIORS)
def test_stepwise_update_is_the_natural_gradient_step(prior):
    """lambda_new = (1 - rho_t) lambda_old + rho_t lambda_hat, with lambda_hat
    the posterior of the batch repeated N / |B| times under the current
    responsibilities and rho_t = (t + offset) ** -decay."""
    X = planted(400)
    N, decay, offset = len(X), 0.8, 1.5
    model = BGM(n_components=4, weight_concentration_prior_type=prior, random_state=0, total_samples=N,
                learning_decay=decay, learning_offset=offset)
    batches = np.array_split(X, 6)
    for b in batches[:3]:
        model.partial_fit(b)
    old = natural(model)
    t = model._online.t
    new_batch = batches[3]
    st = model._structure()
    stats = em.e_step(new_batch, None, model._effective(), st, np).scaled(N / len(new_batch))
    hat_params = vb.m_step(stats, st, model._current_prior(), model.reg_covar, X.dtype)

    class Hat:  # the attributes ``natural`` reads
        mean_precision_, means_ = hat_params.mean_precision, hat_params.means
        degrees_of_freedom_, covariances_ = hat_params.degrees_of_freedom, hat_params.covariances
        weight_concentration_ = hat_params.weight_concentration

    hat = natural(Hat)
    model.partial_fit(new_batch)
    rho = (t + offset) ** -decay
    for got, a, b in zip(natural(model), old, hat):
        np.testing.assert_allclose(got, (1 - rho) * a + rho * b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("prior", PRIORS)
def test_stream_elbo_approaches_batch_fit(prior):
    """Batches of 500 rows over a few passes: the full-data ELBO of the
    streamed posterior rises towards the converged batch fit's, under the same
    priors (the default priors of partial_fit come from its first batch)."""
    X = planted(2000)
    kw = {"n_components": 3, "random_state": 0, "weight_concentration_prior_type": prior,
              "mean_prior": X.mean(axis=0), "covariance_prior": np.cov(X.T)}
    batch = BGM(**kw, max_iter=1000, tol=1e-9).fit(X)
    target = full_data_elbo(batch, X)
    model = BGM(**kw, total_samples=len(X))
    model.partial_fit(X[:500])
    gaps = [target - full_data_elbo(model, X)]
    for _ in range(4):
        for i in range(0, len(X), 500):
            model.partial_fit(X[i:i + 500])
        gaps.append(target - full_data_elbo(model, X))
    assert np.all(np.diff(gaps) < 0), gaps  # closer after every pass
    assert -1e-6 < gaps[-1] < min(0.01, gaps[0] / 20), gaps  # of a total near -12600
    assert model.n_effective_components_ == 3
    np.testing.assert_allclose(np.sort(model.weights_), np.sort(batch.weights_), atol=5e-3)
    assert len(model.lower_bounds_) == 1 + 4 * 12  # one per call


def test_exact_pass_is_one_fit_iteration():
    """After fit(max_iter=1), one pass of batches_per_pass batches equals
    fit(max_iter=2)."""
    X = planted(300)
    kw = {"n_components": 4, "random_state": 2, "tol": 0.0}
    with pytest.warns(UserWarning):
        ref = BGM(**kw, max_iter=2).fit(X)
    with pytest.warns(UserWarning):
        model = BGM(**kw, max_iter=1, online_mode="exact", batches_per_pass=3).fit(X)
    for b in np.array_split(X, 3):
        model.partial_fit(b)
    assert_same_fit(model, ref, rtol=1e-9)


def test_default_total_samples_is_weight_seen():
    """total_samples=None weighs a batch by the total weight seen so far: the
    first call equals total_samples = the batch's size; integer weights count
    as repeated rows."""
    X = planted(100)
    a = BGM(n_components=3, random_state=0).partial_fit(X)
    b = BGM(n_components=3, random_state=0, total_samples=len(X)).partial_fit(X)
    assert_same_fit(a, b, rtol=1e-12)
    w = np.random.RandomState(1).randint(1, 3, len(X))
    c = BGM(n_components=3, random_state=0, init_params="random_from_data").partial_fit(X, sample_weight=w)
    d = BGM(n_components=3, random_state=0, init_params="random_from_data",
            total_samples=float(w.sum())).partial_fit(X, sample_weight=w)
    assert_same_fit(c, d, rtol=1e-12)


def test_save_load_after_partial_fit(tmp_path):
    X = planted(100)
    model = BGM(n_components=3, random_state=0, learning_decay=0.9, total_samples=1e4).partial_fit(X)
    emix.save(model, tmp_path / "m.emix")
    back = emix.load(tmp_path / "m.emix")
    assert back.learning_decay == 0.9 and back.total_samples == 1e4
    np.testing.assert_allclose(back.predict_proba(X), model.predict_proba(X), rtol=1e-12)


@pytest.mark.parametrize("kw, match", [
    ({"total_samples": 0}, "total_samples must be a finite number > 0"),
    ({"total_samples": np.inf}, "total_samples must be a finite number > 0"),
    ({"learning_decay": 0.4}, "learning_decay must be in"),
    ({"online_mode": "exact"}, "batches_per_pass"),
    ({"online_mode": "svi"}, "online_mode must be one of"),
])
def test_bad_online_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        BGM(n_components=2, **kw).partial_fit(planted(20))


def test_zero_weight_batch_is_an_error():
    X = planted(20)
    with pytest.raises(ValueError, match="at least one positive value"):
        BGM(n_components=2).partial_fit(X, sample_weight=np.zeros(len(X)))
