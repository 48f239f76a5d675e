"""scikit-learn parity of names and messages: ``select``'s result under the
names of scikit-learn's search objects, feature names through ``select``,
and errors that begin with scikit-learn's own wording (the same input is run
through scikit-learn and its message compared), emix's detail after it."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import mixture as skm

import emix


def _sk_message(fit):
    with pytest.raises(ValueError) as info:
        fit()
    return str(info.value)


def _X(n=60, d=2, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


GOOD = {
    "full": np.stack([np.eye(2), np.eye(2)]),
    "tied": np.eye(2),
    "diag": np.ones((2, 2)),
    "spherical": np.ones(2),
}
BAD = [
    ("weights_init", "full", np.array([0.2, 0.3, 0.5])),
    ("means_init", "full", np.zeros((3, 2))),
    ("precisions_init", "full", np.stack([np.eye(3), np.eye(3)])),
    ("precisions_init", "tied", np.eye(3)),
    ("precisions_init", "diag", np.ones((2, 3))),
    ("precisions_init", "spherical", np.ones(3)),
]


@pytest.mark.parametrize("param,covariance_type,value", BAD)
def test_wrong_init_shape_begins_with_sklearns_message(param, covariance_type, value):
    X = _X()
    kw = {param: value}
    sk = _sk_message(lambda: skm.GaussianMixture(2, covariance_type=covariance_type, **kw).fit(X))
    assert sk.startswith("The parameter '")  # the sentence scikit-learn writes
    with pytest.raises(ValueError, match=re.escape(sk)) as info:
        emix.GaussianMixture(2, covariance_type=covariance_type, **kw).fit(X)
    msg = str(info.value)
    assert msg.startswith(sk), (msg, sk)
    assert f"{param} " in msg[len(sk):] and "Got shape" in msg  # emix's detail follows


def test_mclust_names_use_the_same_sentence():
    with pytest.raises(ValueError, match=re.escape("The parameter 'EVE precision' should have the shape of "
                                                   "(2, 2, 2), but got (2, 3, 3).")):
        emix.GaussianMixture(2, covariance_type="EVE", precisions_init=np.stack([np.eye(3)] * 2)).fit(_X())


@pytest.mark.parametrize("n", [0, -1])
def test_sample_nonpositive_matches_sklearn(n):
    X = _X()
    sk = skm.GaussianMixture(2, random_state=0).fit(X)
    em = emix.GaussianMixture(2, random_state=0).fit(X)
    pattern = "Invalid value for 'n_samples'"
    assert pattern in _sk_message(lambda: sk.sample(n))
    with pytest.raises(ValueError, match=re.escape(pattern) + r".*at least one sample.*Got " + str(n)):
        em.sample(n)


def _collapse_case():
    """Six copies of one point plus spread rows; component 0 starts on the
    copies and, with reg_covar=0, its covariance is singular after one M-step."""
    rng = np.random.default_rng(3)
    X = np.vstack([np.tile([[0.0, 0.0]], (6, 1)), rng.normal(5.0, 1.0, size=(40, 2))])
    kw = {"covariance_type": "full", "reg_covar": 0.0, "weights_init": [0.5, 0.5],
          "means_init": [[0.0, 0.0], [5.0, 5.0]], "precisions_init": np.stack([np.eye(2) * 1e6, np.eye(2)])}
    return X, kw


def test_collapse_message_begins_with_sklearns():
    X, kw = _collapse_case()
    sk = _sk_message(lambda: skm.GaussianMixture(2, **kw).fit(X))
    assert "ill-defined empirical covariance" in sk
    with pytest.raises(emix.DegenerateComponentError, match=re.escape(sk)) as info:
        emix.GaussianMixture(2, **kw).fit(X)
    msg = str(info.value)
    assert msg.startswith(sk)
    assert "Component 0 collapsed" in msg and "effective number of points is 6" in msg
    assert isinstance(info.value, ValueError)  # what scikit-learn raises, so except ValueError still works
    assert sk == emix.exceptions.SKLEARN_COLLAPSE_MESSAGE


def _issue_18216():
    """scikit-learn's regression test for its issue 18216 (the inputs its test
    gives: 30 uniform rows, six spherical components, two of them started on
    single points with precision 1e6)."""
    X = np.random.RandomState(0).uniform(size=(30, 3))
    means_init = np.array([
        [0.670637869618158, 0.21038256107384043, 0.12892629765485303],
        [0.09394051075844147, 0.5759464955561779, 0.929296197576212],
        [0.5033230372781258, 0.9569852381759425, 0.08654043447295741],
        [0.18578301420435747, 0.5531158970919143, 0.19388943970532435],
        [0.4548589928173794, 0.35182513658825276, 0.568146063202464],
        [0.609279894978321, 0.7929063819678847, 0.9620097270828052],
    ])
    precisions_init = np.array([999999.999604483, 999999.9990869573, 553.7603944542167,
                                204.78596008931834, 15.867423501783637, 85.4595728389735])
    weights_init = [0.03333333333333341, 0.03333333333333341, 0.06666666666666674,
                    0.06666666666666674, 0.7000000000000001, 0.10000000000000007]
    kw = {"n_components": 6, "covariance_type": "spherical", "means_init": means_init,
          "weights_init": weights_init, "precisions_init": precisions_init, "max_iter": 1}
    return X, kw


def test_issue_18216_sklearn_fits_on_rounding_noise_emix_reports_the_collapse():
    """With reg_covar=0, components 0 and 1 each own one row after the first
    E-step: their variance is zero up to rounding. scikit-learn checks every
    M-step too (a variance <= 0 raises its collapse error), and its one-pass
    ``E[x^2] - E[x]^2`` lands at +4e-16, rounding noise of the data's scale,
    so its check passes and it returns that fit. emix's shifted statistics
    give the variance to ~1e-36 (it is ~5e-31, below any resolution), and it
    reports the collapse with scikit-learn's sentence."""
    X, kw = _issue_18216()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = skm.GaussianMixture(reg_covar=0, random_state=0, **kw).fit(X)
    assert not sk.converged_
    noise = 16 * np.finfo(np.float64).eps * float(np.max(X ** 2))
    assert np.all(sk.covariances_[:2] < noise)  # what scikit-learn returns is rounding noise
    with pytest.raises(emix.DegenerateComponentError,
                       match=re.escape(emix.exceptions.SKLEARN_COLLAPSE_MESSAGE)) as info:
        emix.GaussianMixture(reg_covar=0, **kw).fit(X)
    assert info.value.component in (0, 1)
    assert info.value.effective_size == pytest.approx(1.0, abs=1e-6)


def test_issue_18216_with_a_floor_gives_an_unconverged_fit_with_parameters_set():
    """What scikit-learn's regression test asks (no error, not converged,
    every fitted attribute set) holds with emix's default reg_covar."""
    X, kw = _issue_18216()
    gm = emix.GaussianMixture(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    assert not gm.converged_
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_", "n_iter_",
                 "lower_bound_", "lower_bounds_"):
        assert hasattr(gm, attr), attr
    assert gm.n_iter_ == 1 and len(gm.lower_bounds_) == 1
    assert np.all(gm.covariances_ >= gm.reg_covar)


@pytest.fixture(scope="module")
def selected():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1, size=(60, 2)), rng.normal(6, 1, size=(60, 2))])
    df = pd.DataFrame(X, columns=["height", "weight"])
    return df, emix.select(df, n_components=[1, 2, 3], covariance_types=["full", "diag"], random_state=0)


def test_select_has_best_estimator_and_best_score(selected):
    df, res = selected
    assert res.best_estimator_ is res.best_
    # -criterion, greater is better: what GridSearchCV with scoring=-bic reports
    assert res.best_score_ == pytest.approx(-res.best_.bic(df), rel=1e-10)
    finite = [r["bic"] for r in res.rows if np.isfinite(r["bic"]) and not r.get("singular")]
    assert res.best_score_ == pytest.approx(-min(finite))


def test_select_dataframe_sets_feature_names(selected):
    df, res = selected
    np.testing.assert_array_equal(res.best_.feature_names_in_, np.array(["height", "weight"], dtype=object))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X has feature names, but ... was fitted without"
        labels = res.best_.predict(df)
    with pytest.warns(UserWarning, match="does not have valid feature names"):  # as scikit-learn
        np.testing.assert_array_equal(labels, res.best_.predict(df.to_numpy()))
    # and as scikit-learn after fit(DataFrame): wrong names are an error
    sk = skm.GaussianMixture(2, random_state=0).fit(df)
    bad = df.rename(columns={"weight": "mass"})
    sk_msg = _sk_message(lambda: sk.predict(bad))
    with pytest.raises(ValueError, match="feature names should match") as info:
        res.best_.predict(bad)
    assert "feature names should match" in sk_msg
    assert str(info.value).split("\n")[0] == sk_msg.split("\n")[0]


def test_select_ndarray_sets_no_feature_names(selected):
    df, _ = selected
    res = emix.select(df.to_numpy(), n_components=[1, 2], covariance_types=["full"], random_state=0)
    assert not hasattr(res.best_, "feature_names_in_")
