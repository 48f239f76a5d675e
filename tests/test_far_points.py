"""Rows far from every component: defined responsibilities, labels and scores.

A row at ``|x| = 1e300`` overflows every squared distance; one at ``1e20``
has log densities near ``-1e40``, whose differences (of order ``1e20`` for
components sharing a covariance) are lost when computed as the difference of
two such numbers. The oracle is exact rational arithmetic (``fractions``) on
the fitted parameters: ``maha_k = |U_k^T (x - mu_k)|^2`` with the precision
Cholesky factors ``U_k`` as stored, so ``lp_j - lp_k`` is exact up to the
logarithms of the weights and determinants. Expected: responsibilities that
sum to one and match the oracle (in the limit, all the mass on one component),
``predict`` the oracle's largest term, ``score_samples`` the oracle's
``log p(x)`` or ``-inf`` where it is below the dtype's range; never NaN.
"""

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emix import GaussianMixture
from emix.core import em
from emix.families.gaussian import get_structure, structure_names
from emix.testing import make_mixture

UNIVARIATE = {"E", "V"}
TYPES = sorted({get_structure(n).name for n in structure_names()} | {"VVV"})
LOG_2PI = math.log(2.0 * math.pi)


def _far_rows(D, dtype):
    """Far rows (sign patterns cycle over the features) and two ordinary ones."""
    big = [1e150, 1e300] if dtype == np.float64 else [1e20, 3e38]
    rows = []
    for b in big:
        rows += [[b] * D, [-b] * D, [b * (-1) ** i for i in range(D)], [-b * (-1) ** i for i in range(D)]]
    rows += [[1e4] * D, [0.5] * D, [1e10 * (-1) ** i for i in range(D)]]
    return np.array(rows, dtype=dtype)


_FITS = {}


def _fitted(ct, dtype, **kw):
    key = (ct, np.dtype(dtype).name, tuple(sorted(kw.items())))
    if key not in _FITS:
        D = 1 if ct in UNIVARIATE else 3
        X, _, _ = make_mixture(300, 3, D, separation=4.0, random_state=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = GaussianMixture(3, covariance_type=ct, random_state=0, **kw).fit(X.astype(dtype))
    return _FITS[key]


def _upper_factors(gm):
    """(K, D, D) upper-triangular U_k with U_k U_k^T = P_k, from the stored factors."""
    pc = np.asarray(gm.precisions_cholesky_, dtype=np.float64)
    K, D = gm.means_.shape
    if gm.covariance_type == "tied":
        return np.broadcast_to(pc, (K, D, D))
    if gm.covariance_type == "diag":
        return np.stack([np.diag(p) for p in pc])
    if gm.covariance_type == "spherical":
        return pc[:, None, None] * np.eye(D)
    return pc


def _oracle(gm, x):
    """Exact ``lp_k`` as (Fraction part, float part): ``-maha_k/2`` and the log constants."""
    U = _upper_factors(gm)
    K, D = gm.means_.shape
    out = []
    for k in range(K):
        d = [Fraction(float(x[i])) - Fraction(float(gm.means_[k, i])) for i in range(D)]
        z = [sum(Fraction(float(U[k, i, j])) * d[i] for i in range(D)) for j in range(D)]
        maha = sum(v * v for v in z)
        const = (math.log(float(gm.weights_[k])) + sum(math.log(float(U[k, i, i])) for i in range(D))
                 - 0.5 * D * LOG_2PI)
        out.append((-maha / 2, const))
    return out


def _diff(a, b):
    """float(lp_a - lp_b), saturated at +-1e4 (beyond that exp() is 0 or inf)."""
    q = a[0] - b[0]
    if abs(q) > 10**4:
        return 1e4 if q > 0 else -1e4
    return max(-1e4, min(1e4, float(q) + (a[1] - b[1])))


def _oracle_resp(terms):
    return np.array([1.0 / sum(math.exp(min(_diff(t, s), 700.0)) for t in terms) for s in terms])


def _oracle_score(terms):
    """log p(x): the largest term plus log sum exp of the exact differences; -inf below float range."""
    r = max(range(len(terms)), key=lambda k: (terms[k][0] + Fraction(terms[k][1])))
    lse = math.log(sum(math.exp(_diff(t, terms[r])) for t in terms))
    try:
        return float(terms[r][0]) + terms[r][1] + lse
    except OverflowError:
        return -math.inf


def _check_row(gm, x, proba, label, score, dtype):
    terms = _oracle(gm, x)
    want = _oracle_resp(terms)
    assert np.all(np.isfinite(proba)), (x, proba)
    np.testing.assert_allclose(proba.sum(), 1.0, rtol=1e-5 if dtype == np.float32 else 1e-12)
    tol = 2e-5 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(proba, want, atol=tol, err_msg=str(x))
    if want.max() > 0.5 + tol:  # a clear winner (ties may go either way)
        assert label == int(np.argmax(want)), (x, want, label)
    expected = _oracle_score(terms)
    if abs(expected) > float(np.finfo(dtype).max):  # below the dtype's range
        expected = -np.inf
    assert not np.isnan(score)
    if np.isinf(expected):
        assert score == expected, (x, score)
    else:
        np.testing.assert_allclose(score, expected, rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("ct", TYPES)
def test_far_rows_match_the_exact_oracle(ct, dtype):
    gm = _fitted(ct, dtype)
    X = _far_rows(gm.means_.shape[1], dtype)
    proba, labels, scores = gm.predict_proba(X), gm.predict(X), gm.score_samples(X)
    assert proba.dtype == dtype and scores.dtype == dtype
    for x, p, lab, s in zip(X, proba, labels, scores):
        _check_row(gm, x, p, lab, s, dtype)
    # every other inference method: defined (no NaN), consistent with the above
    u = gm.uncertainty(X)
    np.testing.assert_allclose(u, 1.0 - proba.max(axis=1), atol=1e-6)
    assert not np.isnan(gm.score(X)) and gm.score(X) == -np.inf
    for crit in (gm.bic, gm.aic, gm.icl):
        assert crit(X) == np.inf
    ll_ok = gm.score_samples(X[-3:-1])  # ordinary rows only: finite criteria
    assert np.all(np.isfinite(ll_ok)) and np.isfinite(gm.bic(X[-3:-1])) and np.isfinite(gm.icl(X[-3:-1]))


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical", "EEV", "VVI"])
def test_limit_takes_all_and_matches_the_labels(ct):
    """At 1e300 every term underflows; the responsibilities are one-hot on the
    component of the largest term (for 'tied' the linear term decides: the
    component whose mean lies furthest along the direction of x)."""
    gm = _fitted(ct, np.float64)
    X = _far_rows(3, np.float64)[4:8]
    proba = gm.predict_proba(X)
    assert set(np.unique(proba)) <= {0.0, 1.0}
    np.testing.assert_array_equal(proba.argmax(axis=1), gm.predict(X))
    assert np.all(gm.score_samples(X) == -np.inf)
    if ct == "tied":
        P = gm.precisions_
        want = [int(np.argmax(gm.means_ @ P @ np.sign(x))) for x in X]
        np.testing.assert_array_equal(gm.predict(X), want)


def test_tied_rows_at_1e20_no_longer_sum_to_two():
    """Finite but huge log densities: the normal path gave [1, 1] (equal
    terms after rounding), the difference being ``x^T P (mu_j - mu_k)``."""
    gm = _fitted("tied", np.float64)
    X = np.array([[1e20, 1e20, 1e20], [-1e20, 2e19, 0.0]])
    p = gm.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    for x, row in zip(X, p):
        np.testing.assert_allclose(row, _oracle_resp(_oracle(gm, x)), atol=1e-12)


def test_ordinary_rows_unaffected_by_far_rows_in_their_block():
    """Ordinary rows never take the far path: in a block with far rows they get
    the values they get alone (up to the kernels' block-dependent rounding:
    the far rows switch the block to the direct formula), and ``predict`` is
    the argmax of the weighted log densities exactly."""
    for ct in ("full", "tied", "diag", "spherical", "VEV"):
        gm = _fitted(ct, np.float64)
        X, _, _ = make_mixture(50, 3, 3, separation=4.0, random_state=5)
        mixed = np.vstack([X, _far_rows(3, np.float64)[:8]])
        np.testing.assert_allclose(gm.score_samples(mixed)[:50], gm.score_samples(X), rtol=1e-13)
        np.testing.assert_allclose(gm.predict_proba(mixed)[:50], gm.predict_proba(X), rtol=1e-12, atol=1e-300)
        np.testing.assert_array_equal(gm.predict(mixed)[:50], gm.predict(X))
        params, s = gm._params(), gm._structure()
        np.testing.assert_array_equal(em.argmax_column(X, params, s), np.argmax(em.weighted_log_prob(X, params, s), axis=1))


def test_threshold_continuity():
    """Just inside and just outside the far threshold the two paths agree."""
    gm = _fitted("full", np.float64)
    params, s = gm._params(), gm._structure()
    d = np.array([1.0, -0.3, 0.7])
    for t in np.geomspace(100, 3000, 25):
        x = (gm.means_[0] + t * d)[None]
        lp = em.weighted_log_prob(x, params, s)
        ref, rel = em.far_log_prob(x, params, s)
        np.testing.assert_allclose(lp[0], ref[0] + rel[0], rtol=1e-10)


def test_noise_component_takes_far_rows():
    X, _, _ = make_mixture(300, 2, 2, separation=4.0, random_state=2)
    gm = GaussianMixture(2, random_state=0, noise="box").fit(X)
    far = np.array([[1e300, -1e300], [1e150, 1e150], [-1e20, 3.0]])
    np.testing.assert_array_equal(gm.predict(far), [-1, -1, -1])
    p = gm.predict_proba(far)
    np.testing.assert_array_equal(p, np.tile([0.0, 0.0, 1.0], (3, 1)))
    assert np.all(np.isfinite(gm.score_samples(far)))


def test_zero_weight_component_never_takes_a_far_row():
    gm = _fitted("spherical", np.float64)
    params = gm._params()
    w = np.array(params.weights, dtype=np.float64)
    k = int(np.argmax(gm.predict_proba(_far_rows(3, np.float64)[:1])))
    w[k] = 0.0
    params = params.replace(weights=w / w.sum())
    lr = em.log_resp(_far_rows(3, np.float64)[:1], params, gm._structure())[1]
    assert np.exp(lr[0, k]) == 0.0 and np.isclose(np.exp(lr[0]).sum(), 1.0)


@settings(max_examples=40, deadline=None)
@given(
    ct=st.sampled_from(["full", "tied", "diag", "spherical", "EVE"]),
    exponent=st.floats(2.0, 307.0),
    direction=st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
)
def test_property_far_rows(ct, exponent, direction):
    gm = _fitted(ct, np.float64)
    x = np.asarray(direction) * 10.0**exponent
    x[np.argmax(np.abs(x))] = math.copysign(10.0**exponent, x[np.argmax(np.abs(x))] or 1.0)
    X = x[None]
    _check_row(gm, x, gm.predict_proba(X)[0], gm.predict(X)[0], gm.score_samples(X)[0], np.float64)


def test_out_of_core_paths():
    gm = _fitted("full", np.float64)
    X = _far_rows(3, np.float64)
    want = gm.predict(X), gm.predict_proba(X), gm.score_samples(X)
    def source():
        return iter([X[:5], X[5:]])

    np.testing.assert_array_equal(gm.predict(source), want[0])
    np.testing.assert_array_equal(gm.predict_proba(source), want[1])
    np.testing.assert_array_equal(gm.score_samples(source), want[2])
    da = pytest.importorskip("dask.array")
    import dask

    with dask.config.set(scheduler="synchronous"):
        Xd = da.from_array(X, chunks=(4, 3))
        np.testing.assert_array_equal(gm.predict(Xd).compute(), want[0])
        np.testing.assert_array_equal(gm.predict_proba(Xd).compute(), want[1])


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical", "EEV", "VVI"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_array_api_path(ct, dtype):
    torch = pytest.importorskip("torch")
    pytest.importorskip("array_api_compat")
    gm = _fitted(ct, dtype)
    X = _far_rows(3, dtype)
    Xt = torch.asarray(X)
    p, lab, s = gm.predict_proba(Xt), gm.predict(Xt), gm.score_samples(Xt)
    assert torch.is_tensor(p) and torch.is_tensor(lab)
    p, lab, s = p.numpy(), lab.numpy(), s.numpy()
    assert not np.isnan(p).any() and not np.isnan(s).any()
    np.testing.assert_array_equal(lab, gm.predict(X))
    np.testing.assert_allclose(p, gm.predict_proba(X), atol=1e-5 if dtype == np.float32 else 1e-12)
    for x, pr, lb, sc in zip(X, p, lab, s):
        _check_row(gm, x, pr, lb, sc, dtype)
    for crit in ("bic", "aic", "icl"):
        assert getattr(gm, crit)(Xt) == np.inf


def test_family_driver_fallback_rows():
    """The generic families' driver (emix.families.base.Mixture): rows with no
    finite normalizer get defined responsibilities. All -inf: equal shares
    (no component can produce the row, there is no limit to take); a +inf
    term takes all; a NaN term gets nothing and the others are normalized
    (oracle: scipy's softmax of the finite terms)."""
    from scipy.special import softmax

    from emix.families.base import Mixture
    from emix.families.poisson import Poisson

    lp = np.array([[-np.inf, -np.inf, -np.inf],
                   [np.inf, 0.0, np.inf],
                   [np.nan, -1.0, -3.0],
                   [np.nan, np.nan, np.nan],
                   [-1.0, -2.0, -5.0]])
    norm, lr = Mixture(Poisson())._log_resp(lp)
    r = np.exp(lr)
    np.testing.assert_allclose(r[0], [1 / 3] * 3)
    np.testing.assert_allclose(r[1], [0.5, 0.0, 0.5])
    np.testing.assert_allclose(r[2], np.r_[0.0, softmax([-1.0, -3.0])], rtol=1e-14)
    np.testing.assert_allclose(r[3], [1 / 3] * 3)
    np.testing.assert_allclose(r[4], softmax(lp[4]), rtol=1e-14)
    assert np.isfinite(norm[4]) and norm[0] == -np.inf
