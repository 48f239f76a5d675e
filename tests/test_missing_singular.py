"""Singular fits with missing values and labels (issue 12; emix._singular).

A fit with NaN (``missing='em'``) or with ``labels`` runs the same restart
policy as a complete-data fit: a restart that ends singular is dropped with a
DegenerateRestartWarning, restarts keep the best regular one, and a fit with
no regular restart warns SingularFitWarning. The oracle is the complete-data
path on the same planted data, and :func:`emix._singular.model_reason` (the
rule applied afresh to the returned parameters).
"""

import re
import warnings

import numpy as np
import pytest

from emix import GaussianMixture
from emix._singular import model_reason
from emix.exceptions import DegenerateRestartWarning, SingularFitWarning


def planted(seed=1):
    """Two unit-variance clusters of 100 rows at (0, 0) and (6, 6) and one
    row repeated 8 times at (3, 3) between them: with K = 3 some starts put a
    component on the repeated row (a spurious optimum at the reg_covar
    floor: the 8 rows, or them and one more on a line), others split a cluster (regular). ``X_holes``: 15% of the
    cluster rows lose one coordinate (the repeated rows keep theirs)."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0, 1, (100, 2)), rng.normal(6, 1, (100, 2)), np.tile([3.0, 3.0], (8, 1))])
    X_holes = X.copy()
    holes = np.flatnonzero(rng.random(200) < 0.15)
    X_holes[holes, rng.integers(0, 2, holes.size)] = np.nan
    return X, X_holes


def fit(X, **kw):
    """Fit, returning (model, warnings raised, lower bound of each restart)."""
    finals = {}
    options = dict(n_components=3, init_params="random_from_data", missing="em")
    options.update(kw)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        gm = GaussianMixture(**options, callback=lambda s: finals.__setitem__(s["init"], s["lower_bound"])).fit(X)
    return gm, rec, finals


def singular_warnings(rec):
    return [w for w in rec if issubclass(w.category, SingularFitWarning)]


def test_single_restart_singular_warns_as_complete_data():
    """With one restart each, some seeds end singular (a component on the
    repeated row, alone or with a few rows on a line through it), some not:
    exactly those warn SingularFitWarning, the rule applied afresh to the
    returned model agrees, and the fits with holes are singular for the same
    seeds as the complete-data fits of the same rows."""
    X, X_holes = planted()
    verdicts = {}
    for holes, data in [(False, X), (True, X_holes)]:
        verdicts[holes] = []
        for seed in range(12):
            gm, rec, _ = fit(data, random_state=seed)
            warned = singular_warnings(rec)
            fresh = model_reason(gm, X.shape[0])
            assert (gm._fit_singular is not None) == bool(warned) == (fresh is not None), (holes, seed)
            if warned:
                assert gm._fit_singular in str(warned[0].message)
                assert "reg_covar floor" in gm._fit_singular or "effective points" in gm._fit_singular
            verdicts[holes].append(bool(warned))
    assert any(verdicts[False]) and not all(verdicts[False]), verdicts
    assert verdicts[True] == verdicts[False]


@pytest.mark.parametrize("holes", [False, True])
def test_restarts_keep_a_regular_fit(holes):
    """With 12 restarts some end singular and are dropped (a
    DegenerateRestartWarning each); the kept fit is the best regular restart,
    although a dropped singular restart had the higher likelihood."""
    X, X_holes = planted()
    gm, rec, finals = fit(X_holes if holes else X, n_init=12, random_state=0)
    dropped = [int(re.search(r"Restart (\d+) of", str(w.message)).group(1)) - 1
               for w in rec if issubclass(w.category, DegenerateRestartWarning)]
    assert dropped and all("singular fit" in str(w.message) for w in rec
                           if issubclass(w.category, DegenerateRestartWarning))
    assert not singular_warnings(rec)
    assert gm._fit_singular is None and model_reason(gm, X.shape[0]) is None
    regular = [lb for i, lb in finals.items() if i not in dropped]
    assert gm.lower_bound_ == pytest.approx(max(regular), rel=1e-12)
    assert max(finals[i] for i in dropped) > gm.lower_bound_


def test_rows_with_nothing_observed_do_not_count():
    """Rule 3 (too few points: 3 rows for a full covariance in 3-D, which
    needs 4) counts the rows that carry data: appending 200 rows with every
    value missing changes neither the fit nor the verdict, which is the
    complete-data path's on the same rows. reg_covar=0.1 keeps rules 1-2
    quiet, so only the count decides."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (40, 3)), rng.normal(8, 1, (3, 3))])
    reasons, weights = [], []
    for data, missing in [(X, "error"), (np.vstack([X, np.full((200, 3), np.nan)]), "em")]:
        gm, rec, _ = fit(data, n_components=2, init_params="kmeans", missing=missing, reg_covar=0.1,
                         random_state=0)
        assert len(singular_warnings(rec)) == 1
        reasons.append(gm._fit_singular)
        weights.append(gm.weights_)
    assert "3 effective points" in reasons[0] and reasons[1] == reasons[0]
    np.testing.assert_allclose(weights[1], weights[0], rtol=1e-10)


def test_labels_path_warns():
    """A fit with labels (no NaN) runs the same rule: the 3-row component
    labelled as such is too small for its own covariance."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (40, 3)), rng.normal(8, 1, (3, 3))])
    labels = np.full(43, -1)
    labels[0], labels[40] = 0, 1
    gm, rec, _ = fit(X, n_components=2, init_params="kmeans", missing="error", reg_covar=0.1, random_state=0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        gm_l = GaussianMixture(2, reg_covar=0.1, random_state=0).fit(X, labels=labels)
    assert len(singular_warnings(rec)) == 1
    assert gm_l._fit_singular == gm._fit_singular and "3 effective points" in gm_l._fit_singular


def test_report_counts_rows_with_something_observed():
    """The report's 'singular fit' line applies the rule to a fitted model
    (no recorded verdict, as for a loaded model file): rows with nothing
    observed are not counted there either."""
    from emix import report

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (40, 3)), rng.normal(8, 1, (3, 3))])
    Xn = np.vstack([X, np.full((200, 3), np.nan)])
    gm, _, _ = fit(Xn, n_components=2, init_params="kmeans", missing="em", reg_covar=0.1, random_state=0)
    del gm._fit_singular  # as after loading a model file
    stats = []
    report._singular_stat(stats, gm, Xn)
    assert stats and stats[0][0] == "singular fit" and "3 effective points" in stats[0][1]
