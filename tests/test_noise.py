"""mclust's mixing options: a uniform noise component (Banfield & Raftery 1993;
Fraley & Raftery 1998, 2002) and equal mixing proportions (``equalPro``)."""

import math
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

import emix
from emix import GaussianMixture
from emix.core import em
from emix.core.types import SuffStats
from emix.exceptions import ConvergenceWarning, ModelFileError
from emix.families.gaussian import get_structure

TRUE_MEANS = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
TRUE_COVS = np.array([[[1.0, 0.5], [0.5, 1.0]], [[0.5, 0.0], [0.0, 0.5]], [[1.5, -0.3], [-0.3, 0.6]]])
N_PER, N_OUT = 300, 100  # outlier fraction 0.1
LOW, HIGH = -8.0, 14.0


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    Xc = np.vstack([rng.multivariate_normal(m, c, N_PER) for m, c in zip(TRUE_MEANS, TRUE_COVS)])
    out = rng.uniform(LOW, HIGH, size=(N_OUT, 2))
    X = np.vstack([Xc, out])
    is_out = np.r_[np.zeros(len(Xc), bool), np.ones(N_OUT, bool)]
    return X, is_out


def _errors(gm):
    """Largest mean error and largest relative covariance error, components
    matched to the true ones by nearest mean."""
    order = [int(np.argmin(np.linalg.norm(gm.means_ - m, axis=1))) for m in TRUE_MEANS]
    assert sorted(order) == [0, 1, 2]
    mean_err = max(np.linalg.norm(gm.means_[j] - m) for j, m in zip(order, TRUE_MEANS))
    cov_err = max(np.linalg.norm(gm.covariances_[j] - c) / np.linalg.norm(c) for j, c in zip(order, TRUE_COVS))
    return mean_err, cov_err


@pytest.fixture(scope="module")
def fits(data):
    X, _ = data
    plain = GaussianMixture(3, random_state=0, tol=1e-6, max_iter=500).fit(X)
    noisy = GaussianMixture(3, noise="box", random_state=0, tol=1e-6, max_iter=500).fit(X)
    return plain, noisy


def test_noise_recovers_clusters_and_flags_outliers(data, fits):
    X, is_out = data
    plain, noisy = fits
    mean_p, cov_p = _errors(plain)
    mean_n, cov_n = _errors(noisy)
    # the background inflates the plain model's covariances (here by > 100%)
    assert cov_n < 0.25 and mean_n < 0.2, (mean_n, cov_n)
    assert cov_n < 0.5 * cov_p and mean_n < mean_p, (mean_p, cov_p, mean_n, cov_n)
    labels = noisy.predict(X)
    assert set(np.unique(labels)) <= {-1, 0, 1, 2}
    # uniform points that fall inside a cluster cannot be told apart: >= 80%
    # of the injected outliers flagged, <= 2% of the cluster points
    assert np.mean(labels[is_out] == -1) >= 0.8
    assert np.mean(labels[~is_out] == -1) <= 0.02
    # pi_0 close to the true 0.1 (V is the bounding box, close to the uniform's square)
    assert abs(noisy.noise_weight_ - N_OUT / len(X)) < 0.02
    assert math.isclose(noisy.noise_log_volume_, float(np.sum(np.log(np.ptp(X, axis=0)))))
    assert math.isclose(noisy.weights_.sum() + noisy.noise_weight_, 1.0, rel_tol=1e-12)
    # fit_predict agrees with predict; predict_proba has the noise as last column
    assert np.array_equal(GaussianMixture(3, noise="box", random_state=0, tol=1e-6, max_iter=500)
                          .fit_predict(X), labels)
    proba = noisy.predict_proba(X)
    assert proba.shape == (len(X), 4)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(np.where(np.argmax(proba, axis=1) == 3, -1, np.argmax(proba, axis=1)), labels)


def test_score_samples_includes_the_noise_density(data, fits):
    X, _ = data
    _, gm = fits
    structure = get_structure("full")
    lp = structure.log_prob(X, gm.means_, gm.precisions_cholesky_) + np.log(gm.weights_)
    expected = logsumexp(np.c_[lp, np.full(len(X), np.log(gm.noise_weight_) - gm.noise_log_volume_)], axis=1)
    assert np.allclose(gm.score_samples(X), expected, rtol=1e-12, atol=1e-12)
    far = np.array([[100.0, -100.0]])  # outside every cluster: the noise density alone
    assert np.isclose(gm.score_samples(far)[0], np.log(gm.noise_weight_) - gm.noise_log_volume_)
    assert gm.predict(far)[0] == -1
    assert np.isclose(gm.score(X), expected.mean())


@pytest.mark.parametrize("covariance_type", ["full", "diag", "VEV"])
@pytest.mark.parametrize("equal", [False, True])
def test_monotone_loglik_with_noise(data, covariance_type, equal):
    X, _ = data
    gm = GaussianMixture(3, covariance_type=covariance_type, noise="box", equal_proportions=equal,
                         reg_covar=0.0, tol=1e-10, max_iter=150, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=1e-10 is not reached in 150 steps
        gm.fit(X)
    lb = np.array(gm.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-10 * np.abs(lb[1:])), np.diff(lb).min()
    # the last lower bound is the mean log-likelihood (score) of the parameters entering the last step
    assert np.isfinite(gm.score(X))


def test_equal_proportions_weights_are_exactly_equal(data):
    X, is_out = data
    gm = GaussianMixture(3, equal_proportions=True, random_state=0).fit(X[~is_out])
    assert np.all(gm.weights_ == gm.weights_[0]) and np.isclose(gm.weights_.sum(), 1.0)
    gn = GaussianMixture(3, equal_proportions=True, noise="box", random_state=0).fit(X)
    assert np.all(gn.weights_ == gn.weights_[0])
    assert np.isclose(3 * gn.weights_[0] + gn.noise_weight_, 1.0)


def _q_weights(nk, n0, pi, pi0):
    return float(np.sum(nk * np.log(pi)) + (n0 * np.log(pi0) if n0 > 0 else 0.0))


@pytest.mark.parametrize("noise", [False, True])
def test_mixing_m_step_maximizes_expected_complete_loglik(noise):
    """The weight part of Q is ``n0 log pi_0 + sum_k n_k log pi_k`` (the
    Gaussian parameters' part does not involve the weights and is the same
    for every choice below). Under equal proportions it is a function of the
    common weight p alone (pi_0 = 1 - K p): brute-force 1-D maximization
    agrees with the closed form; free weights are checked against random
    points of the simplex."""
    rng = np.random.default_rng(3)
    structure = get_structure("full")
    K, D = 4, 2
    X = rng.normal(size=(50, D))
    resp = rng.dirichlet(np.ones(K + 1), size=50)
    if not noise:
        resp = resp[:, :K] / resp[:, :K].sum(axis=1, keepdims=True)
    stats = em.stats_from_resp(X, None, resp[:, :K], np.zeros((K, D)), structure)
    n0 = float(resp[:, K].sum()) if noise else 0.0
    stats = SuffStats(nk=stats.nk, s1=stats.s1, s2=stats.s2, shift=stats.shift, loglik=0.0,
                      sum_w=50.0, n0=n0)
    logv = 1.7 if noise else None
    plain = em.m_step(stats, structure, 0.0, np.float64)
    nk = stats.nk
    # equal proportions
    p = em.m_step(stats, structure, 0.0, np.float64, equal_proportions=True, log_volume=logv)
    assert np.all(p.weights == p.weights[0])
    assert np.array_equal(p.means, plain.means) and np.array_equal(p.covariances, plain.covariances)
    if noise:
        res = minimize_scalar(lambda q: -_q_weights(nk, n0, np.full(K, q), 1 - K * q),
                              bounds=(1e-9, 1 / K - 1e-9), method="bounded", options={"xatol": 1e-12})
        assert np.isclose(p.weights[0], res.x, rtol=1e-6)
        assert np.isclose(p.noise_weight, 1 - K * p.weights[0])
        q_best = _q_weights(nk, n0, p.weights, p.noise_weight)
        for q in np.linspace(0.01, 1 / K - 0.01, 50):
            assert _q_weights(nk, n0, np.full(K, q), 1 - K * q) <= q_best + 1e-12
    else:
        assert np.allclose(p.weights, 1.0 / K) and p.noise_weight is None
    # free weights with noise: no point of the simplex does better
    if noise:
        f = em.m_step(stats, structure, 0.0, np.float64, log_volume=logv)
        assert np.isclose(f.weights.sum() + f.noise_weight, 1.0) and f.log_volume == logv
        q_best = _q_weights(nk, n0, f.weights, f.noise_weight)
        for v in rng.dirichlet(np.ones(K + 1), size=200):
            assert _q_weights(nk, n0, v[:K], v[K]) <= q_best + 1e-12


def test_parameter_counts(data):
    X, _ = data
    base = dict(n_components=3, random_state=0, max_iter=5)
    # full, K = 3, D = 2: 3 * 3 covariance + 6 means + 2 weights
    counts = {}
    for eq in (False, True):
        for noise in (None, "box"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gm = GaussianMixture(**base, equal_proportions=eq, noise=noise).fit(X)
            counts[eq, noise] = gm._n_parameters()
    assert counts == {(False, None): 17, (False, "box"): 18, (True, None): 15, (True, "box"): 16}
    ll = gm.score(X) * len(X)
    assert np.isclose(gm.bic(X), -2 * ll + 16 * np.log(len(X)))
    s = get_structure("VEV")
    from emix.core.criteria import n_parameters

    assert n_parameters(s, 4, 3, equal_proportions=True, noise=True) == n_parameters(s, 4, 3) - 3 + 1


def test_select_passes_the_options_through(data):
    X, _ = data
    res = emix.select(X, n_components=[3], covariance_types=["VVV", "EII"], noise="box",
                      equal_proportions=True, random_state=0)
    assert res.best_.noise_weight_ > 0 and np.all(res.best_.weights_ == res.best_.weights_[0])
    row = next(r for r in res.rows if r["covariance_type"] == "VVV")
    assert row["error"] is None and row["n_parameters"] == 16
    assert res.best_params_ == {"n_components": 3, "covariance_type": "VVV"}
    assert res.best_._n_parameters() == 16 and np.isclose(row["bic"], res.best_.bic(X))


def test_save_load_round_trip(data, tmp_path):
    X, _ = data
    gm = GaussianMixture(3, covariance_type="VVI", noise="box", equal_proportions=True, random_state=0).fit(X)
    path = tmp_path / "m.emix"
    emix.save(gm, path)
    back = emix.load(path)
    assert back.noise == "box" and back.equal_proportions is True
    assert back.noise_weight_ == gm.noise_weight_ and back.noise_log_volume_ == gm.noise_log_volume_
    assert np.array_equal(back.predict(X), gm.predict(X))
    assert np.array_equal(back.predict_proba(X), gm.predict_proba(X))
    assert np.array_equal(back.score_samples(X), gm.score_samples(X))
    assert back._n_parameters() == gm._n_parameters()
    # a given hyper-volume round-trips as a number
    gv = GaussianMixture(2, noise=500.0, random_state=0).fit(X)
    emix.save(gv, tmp_path / "v.emix")
    bv = emix.load(tmp_path / "v.emix")
    assert bv.noise == 500.0 and np.isclose(bv.noise_log_volume_, np.log(500.0))
    # a model without noise has no noise attributes after loading
    emix.save(GaussianMixture(2, random_state=0).fit(X), tmp_path / "p.emix")
    assert not hasattr(emix.load(tmp_path / "p.emix"), "noise_weight_")


def _rewrite_header(src, dst, edit):
    import json
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "header.json":
                h = json.loads(data)
                edit(h)
                data = json.dumps(h).encode()
            zout.writestr(item, data)


@pytest.mark.parametrize("edit, match", [
    (lambda h: h["fitted"].__setitem__("noise_weight_", 1.5), "noise_weight_ must be in"),
    (lambda h: h["fitted"].__setitem__("noise_weight_", 0.3), "sum to 1 with noise_weight_"),
    (lambda h: h["fitted"].pop("noise_log_volume_"), "lacks noise_weight_ or noise_log_volume_"),
    (lambda h: h["fitted"].__setitem__("noise_log_volume_", "x"), "must be a finite number"),
    (lambda h: h["params"].__setitem__("noise", None), "noise parameter is null"),
    (lambda h: h["params"].__setitem__("noise", "bogus"), "invalid estimator parameters"),
])
def test_load_validates_noise(data, tmp_path, edit, match):
    X, _ = data
    gm = GaussianMixture(2, noise="box", random_state=0).fit(X)
    emix.save(gm, tmp_path / "m.emix")
    _rewrite_header(tmp_path / "m.emix", tmp_path / "bad.emix", edit)
    with pytest.raises(ModelFileError, match=match):
        emix.load(tmp_path / "bad.emix")


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "EEE"])
def test_defaults_are_bit_identical(data, covariance_type):
    X, _ = data
    a = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    b = GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                        equal_proportions=False, noise=None).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert a.lower_bounds_ == b.lower_bounds_
    assert not hasattr(b, "noise_weight_") and b.predict_proba(X).shape == (len(X), 3)
    assert b.predict(X).min() >= 0


def test_refit_without_noise_drops_the_noise_attributes(data):
    X, _ = data
    gm = GaussianMixture(2, noise="box", random_state=0).fit(X)
    gm.set_params(noise=None).fit(X)
    assert not hasattr(gm, "noise_weight_") and gm.predict_proba(X).shape[1] == 2


def test_warm_start_keeps_the_noise_and_refuses_a_change(data):
    X, _ = data
    gm = GaussianMixture(3, noise="box", random_state=0, warm_start=True, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
        first = gm.lower_bound_
        gm.fit(X)
    assert gm.noise_weight_ > 0 and gm.lower_bounds_[0] >= first - 1e-12
    with pytest.raises(ValueError, match="warm_start cannot add or remove the noise"):
        gm.set_params(noise=None).fit(X)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"noise": -1}, ValueError, "finite and > 0"),
    ({"noise": 0.0}, ValueError, "finite and > 0"),
    ({"noise": float("inf")}, ValueError, "finite and > 0"),
    ({"noise": "bogus"}, ValueError, "noise must be None, 'box'"),
    ({"noise": True}, ValueError, "noise must be None, 'box'"),
    ({"equal_proportions": "yes"}, TypeError, "equal_proportions must be a bool"),
])
def test_bad_values(data, kwargs, exc, match):
    X, _ = data
    with pytest.raises(exc, match=match):
        GaussianMixture(2, **kwargs).fit(X)


def test_constant_feature_has_no_box(data):
    X, _ = data
    Xc = np.c_[X, np.ones(len(X))]
    with pytest.raises(ValueError, match="feature 2 is constant"):
        GaussianMixture(2, noise="box").fit(Xc)
    gm = GaussianMixture(2, noise=100.0, reg_covar=1e-3, random_state=0).fit(Xc)  # a given volume works
    assert gm.noise_weight_ >= 0


@pytest.mark.parametrize("kwargs, name", [({"noise": "box"}, "noise='box'"),
                                          ({"equal_proportions": True}, "equal_proportions=True")])
def test_unsupported_paths_raise(data, kwargs, name):
    X, _ = data
    X = X[:200]
    with pytest.raises(NotImplementedError, match=f"{name}.*partial_fit"):
        GaussianMixture(2, **kwargs).partial_fit(X)
    with pytest.raises(NotImplementedError, match=f"{name}.*squarem"):
        GaussianMixture(2, accelerate="squarem", **kwargs).fit(X)
    with pytest.raises(NotImplementedError, match=f"{name}.*squarem"):  # out of core too
        GaussianMixture(2, accelerate="squarem", **kwargs).fit(lambda: iter([X[:100], X[100:]]))


def test_unsupported_array_api(data):
    torch = pytest.importorskip("torch")
    X, _ = data
    Xt = torch.as_tensor(X[:200])
    with pytest.raises(NotImplementedError, match="noise='box'.*PyTorch"):
        GaussianMixture(2, noise="box").fit(Xt)
    with pytest.raises(NotImplementedError, match="equal_proportions=True.*PyTorch"):
        GaussianMixture(2, equal_proportions=True).fit(Xt)
    gm = GaussianMixture(2, noise="box", random_state=0).fit(X)
    with pytest.raises(NotImplementedError, match="noise component.*PyTorch"):
        gm.predict(Xt)
    with pytest.raises(NotImplementedError, match="noise component"):
        gm.sample(5)


def test_noise_with_prior_and_weights(data):
    """The options combine with the MAP prior and with sample weights
    (integer weights = repeated rows)."""
    X, _ = data
    gm = GaussianMixture(3, noise="box", prior="default", random_state=0).fit(X)
    assert 0 < gm.noise_weight_ < 0.3
    w = np.ones(len(X))
    w[:50] = 2
    a = GaussianMixture(3, noise="box", random_state=0, tol=1e-8, max_iter=300,
                        means_init=TRUE_MEANS).fit(X, sample_weight=w)
    b = GaussianMixture(3, noise="box", random_state=0, tol=1e-8, max_iter=300,
                        means_init=TRUE_MEANS).fit(np.vstack([X, X[:50]]))
    assert np.allclose(a.means_, b.means_, atol=1e-6) and np.isclose(a.noise_weight_, b.noise_weight_, atol=1e-7)
