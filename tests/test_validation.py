"""Bad input gets an error of a documented type whose message says what was
received. One row per case: (id, callable, exception type, message regex)."""

import numpy as np
import pytest

import emix
from emix import GaussianMixture as GM

rng = np.random.default_rng(0)
X = rng.normal(size=(20, 2))
X_nan = X.copy()
X_nan[3, 1] = np.nan
X_inf = X.copy()
X_inf[5, 0] = np.inf
X_ninf = X.copy()
X_ninf[5, 0] = -np.inf

FULL_NPD = np.stack([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])
FULL_NONSYM = np.stack([np.eye(2), [[1.0, 0.5], [0.0, 1.0]]])


def fitted(**kw):
    return GM(2, random_state=0, **kw).fit(X)


CASES = [
    # ---- X
    ("X NaN", lambda: GM(2).fit(X_nan), ValueError, r"Input X contains NaN"),
    ("X inf", lambda: GM(2).fit(X_inf), ValueError, r"Input X contains infinity"),
    ("X -inf", lambda: GM(2).fit(X_ninf), ValueError, r"Input X contains infinity"),
    ("X empty", lambda: GM(2).fit(np.empty((0, 2))), ValueError, r"0 sample\(s\) \(shape=\(0, 2\)\)"),
    ("X no features", lambda: GM(2).fit(np.empty((5, 0))), ValueError, r"0 feature\(s\) \(shape=\(5, 0\)\)"),
    ("X one row", lambda: GM(1).fit(X[:1]), ValueError, r"1 sample\(s\) \(shape=\(1, 2\)\).*minimum of 2"),
    ("X 1-D", lambda: GM(2).fit(X[:, 0]), ValueError, r"Expected 2D array, got 1D array"),
    ("X 3-D", lambda: GM(2).fit(X.reshape(5, 4, 2)), ValueError, r"Found array with dim 3"),
    ("X object strings", lambda: GM(2).fit(np.array([["a", "b"]] * 5, dtype=object)), ValueError,
     r"could not convert string to float: 'a'"),
    ("X str dtype", lambda: GM(2).fit(np.array([["a", "b"]] * 5)), ValueError, r"could not convert string to float"),
    ("X ragged", lambda: GM(2).fit([[1.0, 2.0], [3.0]]), ValueError, r"inhomogeneous"),
    ("X complex", lambda: GM(2).fit(X + 1j), ValueError, r"Complex data not supported"),
    ("K > n", lambda: GM(30).fit(X), ValueError, r"n_components = 30, n_samples = 20"),
    # ---- sample_weight
    ("sw negative", lambda: GM(2).fit(X, sample_weight=np.r_[-1.0, np.ones(19)]), ValueError,
     r"sample_weight must be >= 0\. Got minimum -1\.0"),
    ("sw NaN", lambda: GM(2).fit(X, sample_weight=np.r_[np.nan, np.ones(19)]), ValueError,
     r"sample_weight must be finite\. Got 1 NaN"),
    ("sw inf", lambda: GM(2).fit(X, sample_weight=np.r_[np.inf, np.ones(19)]), ValueError,
     r"sample_weight must be finite"),
    ("sw all zero", lambda: GM(2).fit(X, sample_weight=np.zeros(20)), ValueError, r"Got all zeros"),
    ("sw length", lambda: GM(2).fit(X, sample_weight=np.ones(19)), ValueError,
     r"sample_weight must have shape \(20,\).*Got shape \(19,\)"),
    ("sw 2-D", lambda: GM(2).fit(X, sample_weight=np.ones((20, 1))), ValueError, r"Got shape \(20, 1\)"),
    ("sw strings", lambda: GM(2).fit(X, sample_weight=["a"] * 20), ValueError, r"sample_weight must be an array of numbers"),
    ("sw fewer positive rows than K", lambda: GM(3).fit(X, sample_weight=np.r_[1.0, 1.0, np.zeros(18)]),
     ValueError, r"n_components = 3, n_samples = 2 \(rows with positive sample_weight\)"),
    ("score sw length", lambda: fitted().score(X, sample_weight=np.ones(3)), ValueError, r"Got shape \(3,\)"),
    ("bic sw negative", lambda: fitted().bic(X, sample_weight=-np.ones(20)), ValueError, r"must be >= 0"),
    # ---- initial parameters
    ("weights_init shape", lambda: GM(2, weights_init=[1.0]).fit(X), ValueError,
     r"weights_init must have shape \(2,\)\. Got shape \(1,\)"),
    ("weights_init sum", lambda: GM(2, weights_init=[0.3, 0.3]).fit(X), ValueError,
     r"weights_init must sum to 1\. Got sum 0\.6"),
    ("weights_init negative", lambda: GM(2, weights_init=[1.5, -0.5]).fit(X), ValueError,
     r"weights_init must be in \[0, 1\]\. Got min -0\.5, max 1\.5"),
    ("weights_init NaN", lambda: GM(2, weights_init=[np.nan, 0.5]).fit(X), ValueError, r"weights_init contains NaN"),
    ("means_init shape", lambda: GM(2, means_init=np.zeros((3, 2))).fit(X), ValueError,
     r"means_init must have shape \(2, 2\).*Got shape \(3, 2\)"),
    ("means_init n_features", lambda: GM(2, means_init=np.zeros((2, 3))).fit(X), ValueError, r"Got shape \(2, 3\)"),
    ("means_init NaN", lambda: GM(2, means_init=[[0.0, np.nan], [1.0, 1.0]]).fit(X), ValueError,
     r"means_init contains NaN"),
    ("precisions_init shape full", lambda: GM(2, precisions_init=np.ones((2, 2))).fit(X), ValueError,
     r"'full' must have shape \(2, 2, 2\)\. Got shape \(2, 2\)"),
    ("precisions_init shape tied", lambda: GM(2, covariance_type="tied", precisions_init=np.ones((2, 2, 2))).fit(X),
     ValueError, r"'tied' must have shape \(2, 2\)\. Got shape \(2, 2, 2\)"),
    ("precisions_init shape diag", lambda: GM(2, covariance_type="diag", precisions_init=np.ones(2)).fit(X),
     ValueError, r"'diag' must have shape \(2, 2\)\. Got shape \(2,\)"),
    ("precisions_init shape spherical",
     lambda: GM(2, covariance_type="spherical", precisions_init=np.ones((2, 2))).fit(X),
     ValueError, r"'spherical' must have shape \(2,\)\. Got shape \(2, 2\)"),
    ("precisions_init not PD full", lambda: GM(2, precisions_init=FULL_NPD).fit(X), ValueError,
     r"precisions_init\[1\].*not positive definite"),
    ("precisions_init not symmetric", lambda: GM(2, precisions_init=FULL_NONSYM).fit(X), ValueError,
     r"precisions_init\[1\].*not symmetric"),
    ("precisions_init not PD tied",
     lambda: GM(2, covariance_type="tied", precisions_init=np.array([[1.0, 2.0], [2.0, 1.0]])).fit(X),
     ValueError, r"'tied' is not positive definite"),
    ("precisions_init negative diag",
     lambda: GM(2, covariance_type="diag", precisions_init=np.array([[1.0, -1.0], [1.0, 1.0]])).fit(X),
     ValueError, r"'diag' must be finite and strictly positive"),
    ("precisions_init zero spherical",
     lambda: GM(2, covariance_type="spherical", precisions_init=np.array([1.0, 0.0])).fit(X),
     ValueError, r"'spherical' must be finite and strictly positive"),
    ("precisions_init NaN", lambda: GM(2, precisions_init=np.full((2, 2, 2), np.nan)).fit(X), ValueError,
     r"precisions_init contains NaN"),
    # ---- constructor parameters (checked at fit, as scikit-learn does)
    ("reg_covar negative", lambda: GM(2, reg_covar=-1).fit(X), ValueError, r"reg_covar must be .*>= 0.* Got -1"),
    ("reg_covar NaN", lambda: GM(2, reg_covar=float("nan")).fit(X), ValueError, r"reg_covar .* Got nan"),
    ("reg_covar str", lambda: GM(2, reg_covar="1e-6").fit(X), TypeError, r"reg_covar must be a real number\. Got '1e-6'"),
    ("n_components 0", lambda: GM(0).fit(X), ValueError, r"n_components must be >= 1\. Got 0"),
    ("n_components negative", lambda: GM(-2).fit(X), ValueError, r"n_components must be >= 1\. Got -2"),
    ("n_components float", lambda: GM(2.0).fit(X), TypeError, r"n_components must be an integer\. Got 2\.0"),
    ("n_components bool", lambda: GM(True).fit(X), TypeError, r"n_components must be an integer\. Got True"),
    ("covariance_type unknown", lambda: GM(2, covariance_type="banana").fit(X), ValueError,
     r"covariance_type must be one of .*'full'.*Got 'banana'"),
    ("covariance_type None", lambda: GM(2, covariance_type=None).fit(X), ValueError, r"Got None"),
    ("init_params unknown", lambda: GM(2, init_params="banana").fit(X), ValueError,
     r"init_params must be one of .*'kmeans'.*Got 'banana'"),
    ("tol negative", lambda: GM(2, tol=-1.0).fit(X), ValueError, r"tol must be .*>= 0.* Got -1\.0"),
    ("max_iter negative", lambda: GM(2, max_iter=-1).fit(X), ValueError, r"max_iter must be >= 0\. Got -1"),
    ("n_init 0", lambda: GM(2, n_init=0).fit(X), ValueError, r"n_init must be >= 1\. Got 0"),
    ("warm_start str", lambda: GM(2, warm_start="yes").fit(X), TypeError, r"warm_start must be a bool\. Got 'yes'"),
    ("verbose negative", lambda: GM(2, verbose=-1).fit(X), ValueError, r"verbose must be >= 0\. Got -1"),
    ("verbose_interval 0", lambda: GM(2, verbose_interval=0).fit(X), ValueError, r"verbose_interval must be >= 1\. Got 0"),
    ("random_state str", lambda: GM(2, random_state="abc").fit(X), ValueError, r"'abc' cannot be used to seed"),
    # ---- use before fit, and predict-time input
    ("predict before fit", lambda: GM(2).predict(X), emix.NotFittedError, r"not fitted yet"),
    ("predict_proba before fit", lambda: GM(2).predict_proba(X), emix.NotFittedError, r"not fitted yet"),
    ("score_samples before fit", lambda: GM(2).score_samples(X), emix.NotFittedError, r"not fitted yet"),
    ("score before fit", lambda: GM(2).score(X), emix.NotFittedError, r"not fitted yet"),
    ("sample before fit", lambda: GM(2).sample(3), emix.NotFittedError, r"not fitted yet"),
    ("bic before fit", lambda: GM(2).bic(X), emix.NotFittedError, r"not fitted yet"),
    ("aic before fit", lambda: GM(2).aic(X), emix.NotFittedError, r"not fitted yet"),
    ("predict n_features", lambda: fitted().predict(np.ones((3, 3))), ValueError,
     r"X has 3 features, but GaussianMixture is expecting 2 features"),
    ("score_samples n_features", lambda: fitted().score_samples(np.ones((3, 1))), ValueError,
     r"X has 1 features, but GaussianMixture is expecting 2 features"),
    ("predict_proba n_features", lambda: fitted().predict_proba(np.ones((3, 3))), ValueError, r"X has 3 features"),
    ("bic n_features", lambda: fitted().bic(np.ones((3, 3))), ValueError, r"X has 3 features"),
    ("predict NaN", lambda: fitted().predict(np.array([[np.nan, 0.0]])), ValueError, r"Input X contains NaN"),
    ("predict 1-D", lambda: fitted().predict(np.ones(2)), ValueError, r"Expected 2D array, got 1D array"),
    ("sample 0", lambda: fitted().sample(0), ValueError, r"n_samples must be an integer >= 1\. Got 0"),
    ("sample float", lambda: fitted().sample(2.5), ValueError, r"Got 2\.5"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_documented_error_types():
    assert issubclass(emix.NotFittedError, ValueError)
    assert issubclass(emix.ModelFileError, ValueError)
    assert issubclass(emix.DegenerateComponentError, ValueError)


def test_errors_leave_the_estimator_unfitted_and_params_untouched():
    gm = GM(2, reg_covar=-1.0)
    with pytest.raises(ValueError):
        gm.fit(X)
    assert gm.reg_covar == -1.0
    assert not hasattr(gm, "weights_")


def test_failed_refit_keeps_the_previous_fit_usable():
    gm = fitted()
    means = gm.means_.copy()
    with pytest.raises(ValueError):
        gm.fit(X_nan)
    np.testing.assert_array_equal(gm.means_, means)
    assert gm.predict(X).shape == (20,)


def test_valid_unusual_inputs_are_accepted():
    # lists, integer data, numpy integer / float scalars as parameters, read-only arrays
    Xi = np.round(X * 10).astype(int)
    GM(2, random_state=0).fit(Xi.tolist())
    GM(np.int64(2), reg_covar=np.float32(1e-6), tol=np.float64(1e-3), max_iter=np.int32(20),
       random_state=0).fit(X)
    Xro = X.copy()
    Xro.flags.writeable = False
    gm = GM(2, random_state=0).fit(Xro, sample_weight=np.ones(20))
    assert gm.predict(Xro).shape == (20,)
    # a scalar sample_weight broadcasts like scikit-learn's
    GM(2, random_state=0).fit(X, sample_weight=2.0)


def test_feature_names_are_checked():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=["a", "b"])
    gm = GM(2, random_state=0).fit(df)
    np.testing.assert_array_equal(gm.feature_names_in_, ["a", "b"])
    with pytest.raises(ValueError, match="Feature names"):
        gm.predict(pd.DataFrame(X, columns=["b", "c"]))


# working_memory=1e308 once overflowed to int(nan) in default_block_rows
def test_huge_working_memory():
    gm = GM(2, working_memory=1e308, random_state=0).fit(X)
    assert gm.predict(X).shape == (20,)
