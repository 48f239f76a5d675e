"""Online EM: stepwise EM finds a known mixture from a stream, exact mini-batch
EM is batch EM pass for pass, and the statistics algebra it relies on holds."""

import warnings

import numpy as np
import pytest

from emix import GaussianMixture, load, save
from emix.core import em
from emix.exceptions import ConvergenceWarning
from emix.families.gaussian import get_structure, structure_names
from emix.online import recenter, stats_of_params, step_size
from emix.testing import make_mixture, match_components

WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
COVS = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]], [[0.8, 0.0], [0.0, 0.8]]])


def draw(n, seed):
    rng = np.random.default_rng(seed)
    z = rng.choice(3, size=n, p=WEIGHTS)
    X = np.empty((n, 2))
    for k in range(3):
        X[z == k] = rng.multivariate_normal(MEANS[k], COVS[k], size=int((z == k).sum()))
    return X


@pytest.fixture(scope="module")
def stream():
    return draw(30_000, 0)


@pytest.fixture(scope="module")
def batch_fit(stream):
    return GaussianMixture(3, random_state=0, tol=1e-6).fit(stream)


def test_stepwise_em_recovers_the_mixture_from_a_stream(stream, batch_fit):
    """60 batches of 500 rows, one pass. Margins (stated): means within 0.08 of
    the truth (sampling sd of the smallest component's mean is ~0.01 for 6,000
    rows; stepwise EM weights recent batches more, so its effective sample is
    smaller), weights within 0.01, covariances within 0.15; mean
    log-likelihood on the whole stream within 0.002 nats per row of batch EM's."""
    g = GaussianMixture(3, random_state=0)
    for i in range(0, len(stream), 500):
        g.partial_fit(stream[i : i + 500])
    p = match_components(g.means_, MEANS)
    np.testing.assert_allclose(g.means_[p], MEANS, atol=0.08)
    np.testing.assert_allclose(g.weights_[p], WEIGHTS, atol=0.01)
    np.testing.assert_allclose(g.covariances_[p], COVS, atol=0.15)
    assert g.score(stream) > batch_fit.score(stream) - 2e-3
    assert g.n_iter_ == 60 and len(g.lower_bounds_) == 60 and not g.converged_
    # the batch fit itself is within sampling error of the truth
    q = match_components(batch_fit.means_, MEANS)
    np.testing.assert_allclose(batch_fit.means_[q], MEANS, atol=0.04)


def test_stepwise_average_schedule_matches_batch_em_closely(stream, batch_fit):
    # decay 1, offset 0: every batch counts equally (rho_t = 1/(t+1))
    g = GaussianMixture(3, random_state=0, learning_decay=1.0, learning_offset=1.0)
    for i in range(0, len(stream), 1000):
        g.partial_fit(stream[i : i + 1000])
    assert g.score(stream) > batch_fit.score(stream) - 2e-4


@pytest.mark.parametrize("name", ["full", "tied", "diag", "spherical", "VEV"])
def test_exact_mode_is_batch_em_pass_for_pass(name):
    X, _, _ = make_mixture(1200, 3, 3, separation=4.0, random_state=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = GaussianMixture(3, covariance_type=name, random_state=0, max_iter=1).fit(X)
        init = dict(weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_)
        ref = GaussianMixture(3, covariance_type=name, max_iter=4, tol=0.0, **init).fit(X)
    g = GaussianMixture(3, covariance_type=name, online_mode="exact", batches_per_pass=4, **init)
    for _ in range(4):
        for i in range(0, 1200, 300):
            g.partial_fit(X[i : i + 300])
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(g, attr), getattr(ref, attr), rtol=1e-10, atol=1e-10, err_msg=attr)
    np.testing.assert_allclose(g.lower_bounds_, ref.lower_bounds_, rtol=1e-10)
    assert g.n_iter_ == 4


@pytest.mark.parametrize("name", structure_names())
def test_recenter_equals_statistics_taken_at_the_new_shift(name):
    rng = np.random.default_rng(0)
    D = 1 if name in ("E", "V") else 3
    X = rng.normal(size=(400, D)) * 3 + 10
    resp = rng.dirichlet(np.ones(3), size=400)
    c, c_new = rng.normal(size=(3, D)) + 10, rng.normal(size=(3, D)) + 10
    s = get_structure(name)
    a = recenter(em.stats_from_resp(X, None, resp, c, s), c_new, s)
    b = em.stats_from_resp(X, None, resp, c_new, s)
    np.testing.assert_allclose(a.s1, b.s1, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.s2, b.s2, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["full", "tied", "diag", "spherical"])
def test_stats_of_params_give_back_the_params(name):
    X, _, _ = make_mixture(600, 3, 3, random_state=1)
    g = GaussianMixture(3, covariance_type=name, random_state=0).fit(X)
    s = get_structure(name)
    p = em.m_step(stats_of_params(g._params(), s, g.reg_covar), s, g.reg_covar, X.dtype)
    np.testing.assert_allclose(p.means, g.means_, atol=1e-12)
    np.testing.assert_allclose(p.covariances, g.covariances_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.weights, g.weights_, rtol=1e-10)


def test_partial_fit_continues_after_fit_and_after_load(stream, batch_fit, tmp_path):
    g = GaussianMixture(3, random_state=0).fit(stream[:20_000])
    save(g, tmp_path / "m.emix")
    h = load(tmp_path / "m.emix")
    before = g.means_.copy()
    g.partial_fit(stream[20_000:20_500])
    h.partial_fit(stream[20_000:20_500])
    np.testing.assert_allclose(g.means_, h.means_, rtol=1e-12)
    assert 0 < np.abs(g.means_ - before).max() < 0.2  # a step, not a restart


def test_online_parameters_round_trip_through_model_files(stream, tmp_path):
    g = GaussianMixture(3, random_state=0, online_mode="exact", batches_per_pass=3, learning_decay=0.8,
                        learning_offset=5.0)
    g.partial_fit(stream[:300])
    save(g, tmp_path / "m.emix")
    h = load(tmp_path / "m.emix")
    assert {k: h.get_params()[k] for k in ("online_mode", "batches_per_pass", "learning_decay",
                                           "learning_offset")} == {
        "online_mode": "exact", "batches_per_pass": 3, "learning_decay": 0.8, "learning_offset": 5.0}


def test_sample_weight_counts_rows(stream):
    X = stream[:600]
    w = np.where(np.arange(600) % 2 == 0, 2.0, 1.0)
    dup = np.concatenate([X, X[::2]])
    a = GaussianMixture(3, random_state=0, means_init=MEANS).fit(X[:300])
    init = dict(weights_init=a.weights_, means_init=a.means_, precisions_init=a.precisions_)
    g = GaussianMixture(3, **init).partial_fit(X[:300]).partial_fit(X, sample_weight=w)
    h = GaussianMixture(3, **init).partial_fit(X[:300]).partial_fit(dup)
    np.testing.assert_allclose(g.means_, h.means_, rtol=1e-12)
    np.testing.assert_allclose(g.covariances_, h.covariances_, rtol=1e-10)


def test_float32_batches_stay_float32(stream):
    g = GaussianMixture(3, random_state=0)
    for i in range(0, 3000, 500):
        g.partial_fit(stream[i : i + 500].astype(np.float32))
    assert g.means_.dtype == np.float32 and g.covariances_.dtype == np.float32


def test_step_sizes():
    assert step_size(0, 0.7, 0.0) == 1.0
    assert step_size(3, 0.7, 2.0) == pytest.approx(5.0**-0.7)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"learning_decay": 0.5}, "learning_decay must be in"),
        ({"learning_decay": 1.5}, "learning_decay must be in"),
        ({"learning_offset": -1.0}, "learning_offset"),
        ({"online_mode": "adaptive"}, "online_mode must be one of"),
        ({"online_mode": "exact"}, "needs batches_per_pass"),
        ({"batches_per_pass": 0}, "batches_per_pass must be >= 1"),
    ],
)
def test_invalid_online_parameters(stream, params, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(3, **params).partial_fit(stream[:100])


def test_partial_fit_input_errors(stream):
    with pytest.raises(ValueError, match="at least n_components = 3 rows"):
        GaussianMixture(3).partial_fit(stream[:2])
    g = GaussianMixture(3, random_state=0).partial_fit(stream[:100])
    with pytest.raises(ValueError, match="features"):
        g.partial_fit(np.ones((10, 3)))


@pytest.mark.parametrize("kw, name, dtype", [
    ({}, "full", np.float64), ({}, "diag", np.float32), ({}, "tied", np.float64),
    ({"online_mode": "exact", "batches_per_pass": 3}, "full", np.float64),
    ({"online_mode": "exact", "batches_per_pass": 3}, "spherical", np.float32),
], ids=["stepwise-full", "stepwise-diag-f32", "stepwise-tied", "exact-full", "exact-spherical-f32"])
def test_partial_fit_after_load_continues_as_without_the_save(stream, tmp_path, kw, name, dtype):
    X = stream.astype(dtype)
    g = GaussianMixture(3, covariance_type=name, random_state=0, **kw)
    for i in range(5):  # exact: one pass, then two batches into the next
        g.partial_fit(X[i * 400 : (i + 1) * 400])
    save(g, tmp_path / "m.emix")
    h = load(tmp_path / "m.emix")
    assert h._online.t == g._online.t and h._online.passes == g._online.passes
    for i in range(5, 9):
        g.partial_fit(X[i * 400 : (i + 1) * 400])
        h.partial_fit(X[i * 400 : (i + 1) * 400])
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(h, attr), getattr(g, attr), err_msg=attr)
        assert getattr(h, attr).dtype == dtype
    assert h.lower_bounds_ == g.lower_bounds_ and h.n_iter_ == g.n_iter_ and h.lower_bound_ == g.lower_bound_


def test_stale_or_tampered_partial_fit_state(stream, tmp_path):
    import json
    import zipfile

    from emix.exceptions import ModelFileError

    g = GaussianMixture(3, random_state=0).partial_fit(stream[:400]).partial_fit(stream[400:800])
    save(g, tmp_path / "m.emix")
    with zipfile.ZipFile(tmp_path / "m.emix") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(members["header.json"])
    assert header["online"]["t"] == 2 and "online_s2" in header["arrays"]
    for change, match in ((("t", 0), "t >= 1"), (("mode", "exact"), "mode"), (("sum_w", -1.0), "sum_w"),
                          (("passes", True), "passes")):
        bad = json.loads(members["header.json"])
        bad["online"][change[0]] = change[1]
        with zipfile.ZipFile(tmp_path / "bad.emix", "w") as zf:
            for n, data in members.items():
                zf.writestr(n, json.dumps(bad) if n == "header.json" else data)
        with pytest.raises(ModelFileError, match=match):
            load(tmp_path / "bad.emix")
    g.fit(stream[:2000])  # the online state is stale after fit: not saved
    save(g, tmp_path / "f.emix")
    with zipfile.ZipFile(tmp_path / "f.emix") as zf:
        assert "online" not in json.loads(zf.read("header.json")) and "online_nk.npy" not in zf.namelist()


def test_partial_fit_says_accelerate_does_not_apply():
    X = np.random.default_rng(0).normal(size=(200, 2))
    gm = GaussianMixture(2, random_state=0, accelerate="squarem")
    with pytest.warns(UserWarning, match="no effect in partial_fit"):
        gm.partial_fit(X)
    np.testing.assert_allclose(gm.means_, GaussianMixture(2, random_state=0).partial_fit(X).means_)
