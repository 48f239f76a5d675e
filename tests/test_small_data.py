"""The small-data fast path (emix.core.small, src/emix/_small_kernels.c):
the compiled E-step and precision factors against scipy and numpy, and
against emix's general path (the same statistics to rounding, the same fits
with the same iteration counts)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import emix
from emix.core import em, small
from emix.core.types import GaussianParams
from emix.exceptions import DegenerateComponentError
from emix.families.gaussian import get_structure
from emix.families.gaussian._common import NotPositiveDefinite

MODELS = ["full", "diag", "VVV", "EII", "VII", "EEI", "VEI", "EVI", "VVI",
          "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV"]


def test_kernel_is_built():
    # setup.py builds it on any machine with a C compiler (CI included)
    assert small.available()


def _data(seed=0, n=150, D=3):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * D, [3.0] * D, [-2.0] + [4.0] * (D - 1)])
    return np.concatenate([rng.normal(size=(n // 3, D)) @ rng.normal(size=(D, D)) * 0.7 + c for c in centres])


def _params(X, model, K=3, seed=1):
    gm = emix.GaussianMixture(K, covariance_type=model, max_iter=3, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    return gm._params(), get_structure(model)


def _general(monkeypatch, fn, *args):
    with monkeypatch.context() as m:
        m.setattr(small, "_kernels", None)
        return fn(*args)


def test_estep_against_scipy():
    X = _data()
    p, st = _params(X, "full")
    w = np.random.default_rng(2).uniform(0.5, 2.0, X.shape[0])
    stats = small.e_step(X, w, p, st)
    assert stats is not None
    logp = np.stack([np.log(p.weights[k]) + multivariate_normal(p.means[k], p.covariances[k]).logpdf(X)
                     for k in range(3)], axis=1)
    norm = np.logaddexp.reduce(logp, axis=1)
    R = np.exp(logp - norm[:, None]) * w[:, None]
    np.testing.assert_allclose(stats.loglik, norm @ w, rtol=1e-12)
    np.testing.assert_allclose(stats.sum_w, w.sum(), rtol=1e-14)
    np.testing.assert_allclose(stats.nk, R.sum(0), rtol=1e-12)
    for k in range(3):
        Z = X - p.means[k]
        np.testing.assert_allclose(stats.s1[k], R[:, k] @ Z, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(stats.s2[k], (Z * R[:, [k]]).T @ Z, rtol=1e-11)
    assert stats.shift is p.means


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("weighted", [False, True])
def test_estep_equals_general_path(monkeypatch, model, weighted):
    X = _data(seed=3)
    p, st = _params(X, model)
    w = np.random.default_rng(4).uniform(0.1, 3.0, X.shape[0]) if weighted else None
    fast = small.e_step(X, w, p, st)
    assert fast is not None
    ref = _general(monkeypatch, em.e_step, X, w, p, st)
    assert np.shape(fast.s2) == np.shape(ref.s2)
    np.testing.assert_allclose(fast.loglik, ref.loglik, rtol=1e-12)
    np.testing.assert_allclose(fast.nk, ref.nk, rtol=1e-12)
    scale = np.abs(ref.s2).max()
    np.testing.assert_allclose(fast.s1, ref.s1, atol=1e-11 * scale)
    np.testing.assert_allclose(fast.s2, ref.s2, atol=1e-12 * scale, rtol=1e-12)
    assert fast.sum_w == pytest.approx(ref.sum_w, rel=1e-14)


@pytest.mark.parametrize("model", ["full", "VVV", "EEE", "VEV", "VVI", "EII"])
def test_prec_chol_against_numpy(model):
    X = _data(seed=5, D=4)
    p, st = _params(X, model)
    cov = np.asarray(p.covariances, dtype=np.float64)
    U = small.prec_chol_from_cov(cov, st)
    assert U is not None
    np.testing.assert_array_equal(U, np.triu(U))
    np.testing.assert_allclose(U @ U.transpose(0, 2, 1), np.linalg.inv(cov), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(U, st.prec_chol_from_cov(cov), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bad", [np.nan, -1.0])
def test_prec_chol_names_the_bad_component(bad):
    cov = np.stack([np.eye(3), np.eye(3), np.eye(3)])
    cov[1, 2, 2] = bad
    with pytest.raises(NotPositiveDefinite) as info:
        small.prec_chol_from_cov(cov, get_structure("full"))
    assert info.value.component == 1


def test_singular_component_is_degenerate_error():
    X = _data(seed=6)
    p, st = _params(X, "full")
    stats = small.e_step(X, None, p, st)
    s2 = stats.s2.copy()
    s2[2] = stats.s1[2][:, None] * stats.s1[2][None, :] / stats.nk[2]  # rank one: W_2 = 0
    from dataclasses import replace

    with pytest.raises(DegenerateComponentError):
        em.m_step(replace(stats, s2=s2), st, 0.0, np.float64)


@pytest.mark.parametrize("model", MODELS)
def test_fit_equals_general_path(monkeypatch, model):
    X = _data(seed=7)
    kw = dict(n_components=3, covariance_type=model, random_state=0, tol=1e-8, max_iter=300)
    fast = emix.GaussianMixture(**kw).fit(X)
    ref = _general(monkeypatch, emix.GaussianMixture(**kw).fit, X)
    assert fast.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(fast.lower_bound_, ref.lower_bound_, rtol=1e-12)
    np.testing.assert_allclose(fast.means_, ref.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fast.covariances_, ref.covariances_, rtol=1e-8, atol=1e-10)


def test_far_rows_take_the_general_path(monkeypatch):
    X = _data(seed=8)
    p, st = _params(X, "full")
    Xf = np.vstack([X, [[1e9, -1e9, 1e9]]])
    assert small.e_step(Xf, None, p, st) is None
    np.testing.assert_allclose(em.e_step(Xf, None, p, st).nk, _general(monkeypatch, em.e_step, Xf, None, p, st).nk)


def test_not_for_other_inputs():
    X = _data(seed=9)
    p, st = _params(X, "full")
    assert small.e_step(X.astype(np.float32), None, p, st) is None
    assert small.e_step(X, None, p, get_structure("tied")) is None
    noisy = p.replace(noise_weight=0.1, log_volume=1.0)
    assert small.e_step(X, None, noisy, st) is None
    one = GaussianParams(p.weights, p.means, p.covariances, p.precisions_cholesky)
    assert small.e_step(np.asfortranarray(X), None, one, st) is not None  # copied to C order


def test_univariate_names_keep_their_check():
    X = _data(seed=10, D=2)
    with pytest.raises(ValueError, match="univariate"):
        emix.GaussianMixture(2, covariance_type="E").fit(X)
    x = X[:, :1].copy()
    fit = emix.GaussianMixture(2, covariance_type="V", random_state=0).fit(x)
    ref = emix.GaussianMixture(2, covariance_type="VII", random_state=0).fit(x)
    np.testing.assert_allclose(fit.means_, ref.means_)


# ------------------------------------------------------- select: both starts
def _mclust_table(name):
    import pandas as pd
    from pathlib import Path

    df = pd.read_csv(Path(__file__).parent / "data" / f"mclust_bic_{name}.csv", skipinitialspace=True,
                     na_values=["NA"])
    return list(df.columns[1:]), df.iloc[:, 1:].to_numpy(dtype=np.float64)


def test_select_keeps_the_better_start_and_is_never_below_mclust():
    from emix.datasets import load_faithful

    X = load_faithful()[0]
    models = ["EII", "VVI", "EEE", "VEV", "VVV"]
    kw = dict(n_components=range(1, 5), covariance_types=models, random_state=0)
    both = emix.select(X, **kw)
    alone = {s: emix.select(X, init_params=s, **kw) for s in ("hierarchical", "mclust")}
    names, ref = _mclust_table("faithful")  # mclust 6.0.0, benchmarks/mclust_reference.R
    for i, r in enumerate(both.rows):
        others = [alone[s].rows[i] for s in ("hierarchical", "mclust")]
        regular = [o["log_likelihood"] for o in others if o["error"] is None and not o["singular"]]
        assert r["start"] in ("hierarchical", "mclust")
        assert r["log_likelihood"] == pytest.approx(max(regular), rel=1e-12)
        mine = alone[r["start"]].rows[i]
        assert r["bic"] == mine["bic"] and r["n_iter"] == mine["n_iter"]
        mclust_bic = ref[r["n_components"] - 1, names.index(r["covariance_type"])]
        assert -r["bic"] >= mclust_bic - 1e-3, (r, mclust_bic)  # mclust's sign: higher is better
