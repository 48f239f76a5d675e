"""Missing values out of core: ``GaussianMixture(missing="em")`` on block
sources, Dask arrays and through ``partial_fit``.

The oracle is the in-memory fit on the same rows (itself checked against
scipy.stats and scipy.optimize in tests/test_missing.py): with fewer rows
than the initialization sample, the out-of-core start is the in-memory one,
and the E-step statistics of any split of the rows add up to those of the
whole (tests/test_missing_blocks.py), so the fits agree to rounding whatever
the block sizes. Marginal densities are also checked directly against
scipy.stats on each row's observed coordinates.
"""

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from emix import GaussianMixture
from emix.backends import chunked
from emix.core import missing as M

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

STRUCTURES = ["full", "diag", "tied", "spherical", "VEV"]


def _data(seed=0, n=240, d=4, k=3, frac=0.2):
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=3, size=(k, d))[rng.integers(k, size=n)] + rng.normal(size=(n, d))
    X[rng.random(X.shape) < frac] = np.nan
    X[5] = np.nan  # a row with nothing observed
    w = rng.uniform(0.5, 2.0, n)
    return X, w


def _source(X, block, w=None):
    """Blocks of ``block`` rows (with their weights when given)."""
    def source():
        for a in range(0, X.shape[0], block):
            yield X[a:a + block] if w is None else (X[a:a + block], w[a:a + block])
    return source


def _fit(model, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short runs do not converge
        return model.fit(X, **kw)


def _model(ct, **kw):
    kw = {"max_iter": 6, "tol": 0.0, **kw}
    return GaussianMixture(3, covariance_type=ct, missing="em", random_state=0, **kw)


def _assert_same_fit(got, ref, rtol=1e-10):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=rtol, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(got.lower_bounds_, ref.lower_bounds_, rtol=rtol)
    assert got.n_iter_ == ref.n_iter_


def _pattern_sorted(X, w):
    """Rows sorted by missingness pattern, so that a block size cuts runs of one pattern."""
    order = M.pattern_order(X)
    return X[order], w[order]


# ------------------------------------------------------------- block sources
@pytest.mark.parametrize("ct", STRUCTURES)
@pytest.mark.parametrize("block", [7, 1000])
def test_block_source_fit_equals_in_memory(ct, block):
    X, w = _data()
    ref = _fit(_model(ct), X, sample_weight=w)
    got = _fit(_model(ct), _source(X, block, w))
    _assert_same_fit(got, ref)
    assert np.all(np.diff(got.lower_bounds_) >= -1e-12)  # the observed-data likelihood never decreases
    assert got._n_fit == X.shape[0] - 1  # the singular-fit rule's N: the empty row does not count


@pytest.mark.parametrize("ct", STRUCTURES)
def test_blocks_of_one_row_and_cut_pattern_runs(ct):
    X, w = _pattern_sorted(*_data(1, n=120))
    ref = _fit(_model(ct, max_iter=3), X, sample_weight=w)
    for block in (1, 13):  # 13 rows cut the runs of one pattern anywhere
        _assert_same_fit(_fit(_model(ct, max_iter=3), _source(X, block, w)), ref)


@settings(max_examples=12, deadline=None)
@given(cuts=st.lists(st.integers(1, 119), max_size=6, unique=True), seed=st.integers(0, 3))
def test_any_split_of_the_rows_gives_the_in_memory_fit(cuts, seed):
    X, w = _data(seed, n=120, frac=0.3)
    edges = [0, *sorted(cuts), X.shape[0]]
    src = lambda: ((X[a:b], w[a:b]) for a, b in itertools.pairwise(edges))
    ref = _fit(_model("full", max_iter=3), X, sample_weight=w)
    _assert_same_fit(_fit(_model("full", max_iter=3), src), ref)


def test_without_nan_missing_em_is_the_default_out_of_core_fit():
    X, _ = _data(frac=0.0)
    X = X[np.arange(X.shape[0]) != 5]
    src = _source(X, 50)
    default = _fit(GaussianMixture(3, random_state=0, max_iter=5, tol=0.0), src)
    em_ = _fit(_model("full", max_iter=5), src)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(em_, name), getattr(default, name))


def test_subsampled_start_is_filled_and_the_fit_is_monotone(monkeypatch):
    """More rows than the initialization sample: the sample (with holes) is
    filled by column means before k-means, then EM runs on every row."""
    monkeypatch.setattr(chunked, "DEFAULT_INIT_SAMPLE", 50)
    X, _ = _data(2, n=400, frac=0.3)
    gm = _fit(_model("full", max_iter=15), _source(X, 64))
    assert np.all(np.isfinite(gm.means_)) and np.all(np.isfinite(gm.covariances_))
    assert np.all(np.diff(gm.lower_bounds_) >= -1e-12)
    # the recorded bound is the mean observed-data log-likelihood of the rows with something observed
    some = ~np.isnan(X).all(axis=1)
    prev = _fit(_model("full", max_iter=14), _source(X, 64))
    assert gm.lower_bounds_[-1] == pytest.approx(prev.score_samples(X)[some].mean(), rel=1e-10)


# ---------------------------------------------------------------------- Dask
@pytest.mark.parametrize("ct", STRUCTURES)
def test_dask_fit_equals_in_memory(ct):
    X, w = _data(3)
    ref = _fit(_model(ct), X, sample_weight=w)
    with dask.config.set(scheduler="synchronous"):
        got = _fit(_model(ct), da.from_array(X, chunks=(37, -1)), sample_weight=da.from_array(w, chunks=37))
    _assert_same_fit(got, ref)


def test_dask_dataframe_with_missing_cells():
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, _ = _data(4)
    frame = pd.DataFrame(X, columns=list("abcd"))
    ref = _fit(_model("full"), frame)
    with dask.config.set(scheduler="synchronous"):
        got = _fit(_model("full"), dd.from_pandas(frame, npartitions=5))
    _assert_same_fit(got, ref)
    assert list(got.feature_names_in_) == list("abcd")


# ----------------------------------------------------------------- inference
def _scipy_log_density(gm, X):
    out = []
    for x in X:
        o = ~np.isnan(x)
        if not o.any():
            out.append(0.0)  # density 1 over no coordinates
            continue
        cov = gm._structure().full_covariances(gm.covariances_, *gm.means_.shape)
        comp = [np.log(gm.weights_[k]) + multivariate_normal(gm.means_[k, o], cov[k][np.ix_(o, o)]).logpdf(x[o])
                for k in range(gm.n_components)]
        out.append(logsumexp(comp))
    return np.array(out)


@pytest.mark.parametrize("ct", ["full", "diag", "VEV"])
def test_inference_on_sources_and_dask_is_marginal(ct):
    X, w = _data(5)
    gm = _fit(_model(ct), _source(X, 40, w))
    ref = {"predict": gm.predict(X), "predict_proba": gm.predict_proba(X), "score_samples": gm.score_samples(X)}
    np.testing.assert_allclose(ref["score_samples"], _scipy_log_density(gm, X), rtol=1e-10, atol=1e-12)
    assert ref["score_samples"][5] == pytest.approx(0.0, abs=1e-12)  # log of the sum of the weights
    np.testing.assert_allclose(ref["predict_proba"][5], gm.weights_, rtol=1e-12)  # nothing observed
    with dask.config.set(scheduler="synchronous"):
        Xd = da.from_array(X, chunks=(33, -1))
        for kind, expected in ref.items():
            for got in (getattr(gm, kind)(_source(X, 17)), getattr(gm, kind)(Xd).compute()):
                if kind == "predict":
                    np.testing.assert_array_equal(got, expected)
                else:
                    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
        assert gm.score(Xd) == pytest.approx(ref["score_samples"].mean(), rel=1e-12)
        assert gm.score(_source(X, 17)) == pytest.approx(ref["score_samples"].mean(), rel=1e-12)


def test_fit_predict_out_of_core_with_holes():
    X, _ = _data(6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = _model("full").fit_predict(_source(X, 50))
        ref = _model("full").fit(X).predict(X)
    np.testing.assert_array_equal(labels, ref)


def test_missing_error_models_refuse_nan_out_of_core():
    X, _ = _data(7)
    full = ~np.isnan(X).any(axis=1)
    gm = _fit(GaussianMixture(2, random_state=0), X[full])
    with pytest.raises(ValueError, match="contains NaN.*missing='em'"):
        gm.predict(_source(X, 50))
    with pytest.raises(ValueError, match="contains NaN.*missing='em'"):
        gm.score_samples(da.from_array(X, chunks=(50, -1))).compute(scheduler="synchronous")
    # fitting keeps its message
    with pytest.raises(ValueError, match="NaN or infinity"):
        GaussianMixture(2).fit(_source(X, 50))
    with pytest.raises(ValueError, match="NaN or infinity"):
        GaussianMixture(2).fit(da.from_array(X, chunks=(50, -1)))


# -------------------------------------------------------------------- errors
def test_column_never_observed_is_the_in_memory_error():
    X, _ = _data(8)
    X[:, 2] = np.nan
    with pytest.raises(ValueError) as mem:
        _model("full").fit(X)
    assert "column 2" in str(mem.value)
    with pytest.raises(ValueError) as src:
        _model("full").fit(_source(X, 30))
    with pytest.raises(ValueError) as dsk, dask.config.set(scheduler="synchronous"):
        _model("full").fit(da.from_array(X, chunks=(30, -1)))
    assert str(src.value) == str(mem.value) == str(dsk.value)


def test_infinite_values_and_unsupported_options():
    X, _ = _data(9)
    bad = X.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        _model("full").fit(_source(bad, 50))
    with pytest.raises(ValueError, match="infinity"), dask.config.set(scheduler="synchronous"):
        _model("full").fit(da.from_array(bad, chunks=(50, -1)))
    with pytest.raises(NotImplementedError, match="noise='box' cannot be combined with missing values"):
        _model("full", noise="box").fit(_source(X, 50))
    with pytest.raises(NotImplementedError, match="prior='default' cannot be combined with missing values"):
        _model("full", prior="default").fit(_source(X, 50))


# ---------------------------------------------------------------- partial_fit
def _start(ct, X):
    g = _fit(_model(ct, max_iter=4), X)
    return {"weights_init": g.weights_, "means_init": g.means_, "precisions_init": g.precisions_}


@pytest.mark.parametrize("ct", ["full", "diag", "tied", "spherical", "VEV"])
def test_exact_partial_fit_pass_is_one_em_iteration(ct):
    X, w = _data(10)
    inits = _start(ct, X)
    ref = _fit(GaussianMixture(3, covariance_type=ct, missing="em", max_iter=1, tol=0.0, **inits), X,
               sample_weight=w)
    g = GaussianMixture(3, covariance_type=ct, missing="em", online_mode="exact", batches_per_pass=4, **inits)
    for part in np.array_split(np.arange(X.shape[0]), 4):
        g.partial_fit(X[part], sample_weight=w[part])
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(g, name), getattr(ref, name), rtol=1e-10, atol=1e-12)
    assert g.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-12)


def test_stepwise_first_batch_is_one_em_iteration_on_it():
    X, _ = _data(11)
    inits = _start("full", X)
    batch = X[:80]
    ref = _fit(GaussianMixture(3, missing="em", max_iter=1, tol=0.0, **inits), batch)
    g = GaussianMixture(3, missing="em", **inits).partial_fit(batch)
    np.testing.assert_allclose(g.means_, ref.means_, rtol=1e-10)
    np.testing.assert_allclose(g.covariances_, ref.covariances_, rtol=1e-10)
    for part in np.array_split(np.arange(80, X.shape[0]), 4):  # later batches with holes keep it finite
        g.partial_fit(X[part])
    assert np.all(np.isfinite(g.covariances_))


def test_partial_fit_first_batch_initializes_on_the_filled_batch():
    X, _ = _data(12)
    g = GaussianMixture(3, missing="em", random_state=0, online_mode="exact", batches_per_pass=1)
    g.partial_fit(X)
    ref = _fit(GaussianMixture(3, missing="em", random_state=0, max_iter=1, tol=0.0), X)
    np.testing.assert_allclose(g.means_, ref.means_, rtol=1e-10)


def test_partial_fit_errors_with_nan():
    X, _ = _data(13)
    with pytest.raises(ValueError, match="NaN.*missing='em'"):
        GaussianMixture(3, random_state=0).partial_fit(X)
    bad = X.copy()
    bad[:, 1] = np.nan
    with pytest.raises(ValueError, match="column 1 is missing"):
        GaussianMixture(3, missing="em", random_state=0).partial_fit(bad)


# -------------------------------------------------------------------- labels
def _labelled(seed, frac_missing):
    rng = np.random.default_rng(seed)
    z = rng.integers(3, size=240)
    X = rng.normal(scale=3, size=(3, 4))[z] + rng.normal(size=(240, 4))
    X[rng.random(X.shape) < frac_missing] = np.nan
    labels = np.where(rng.random(240) < 0.2, z, -1)
    return X, labels, rng.uniform(0.5, 2.0, 240)


@pytest.mark.parametrize("frac_missing", [0.0, 0.2])
@pytest.mark.parametrize("ct", ["full", "VEV"])
def test_labels_out_of_core_equal_the_in_memory_fit(ct, frac_missing):
    X, labels, w = _labelled(15, frac_missing)
    ref = _fit(_model(ct), X, labels=labels, sample_weight=w)
    _assert_same_fit(_fit(_model(ct), _source(X, 23, w), labels=labels), ref)
    with dask.config.set(scheduler="synchronous"):
        Xd = da.from_array(X, chunks=(50, -1))
        for lab in (labels, da.from_array(labels, chunks=37)):  # numpy or Dask labels, chunked otherwise
            _assert_same_fit(_fit(_model(ct), Xd, labels=lab, sample_weight=da.from_array(w, chunks=50)), ref)


def test_labels_with_a_component_never_labelled_out_of_core():
    X, labels, _ = _labelled(16, 0.1)
    labels[labels == 2] = -1  # component 2 starts from k-means, matched to the labelled classes
    ref = _fit(_model("full"), X, labels=labels)
    _assert_same_fit(_fit(_model("full"), _source(X, 64), labels=labels), ref)


def test_labels_out_of_core_errors():
    X, labels, _ = _labelled(17, 0.1)
    with pytest.raises(ValueError, match="more rows than labels"):
        _model("full").fit(_source(X, 50), labels=labels[:100])
    with pytest.raises(ValueError, match="labels has 241 values, but the block source yielded 240"):
        _model("full").fit(_source(X, 50), labels=np.append(labels, 0))
    bad = labels.copy()
    bad[7] = 3
    with pytest.raises(ValueError, match="component index in 0..2. Got 3"):
        _model("full").fit(_source(X, 50), labels=bad)
    with dask.config.set(scheduler="synchronous"):
        Xd = da.from_array(X, chunks=(50, -1))
        with pytest.raises(ValueError, match="component index in 0..2. Got 3"):  # checked where the blocks lie
            _model("full").fit(Xd, labels=da.from_array(bad, chunks=60))
        with pytest.raises(ValueError, match="labels must have shape \\(240,\\)"):
            _model("full").fit(Xd, labels=da.from_array(labels[:10]))
        with pytest.raises(NotImplementedError, match="noise='box' cannot be combined with labels"):
            _model("full", noise="box").fit(Xd, labels=labels)


# ----------------------------------------------------------------------- CLI
def test_cli_fit_chunk_rows_with_missing_em_equals_the_library(tmp_path, capsys):
    """``emix fit --missing em --chunk-rows``: the CSV read in blocks, its
    empty, NA and ? cells missing, as the in-memory reader takes them."""
    from emix import load
    from emix.cli import main

    X, _ = _data(18, n=150, d=3)
    spell = ["", "NA", "?"]
    lines, t = ["a,b,c"], 0
    for x in X:
        cells = []
        for v in x:
            if np.isnan(v):
                cells.append(spell[t % 3])
                t += 1
            else:
                cells.append(repr(float(v)))
        lines.append(",".join(cells))
    data = tmp_path / "d.csv"
    data.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["fit", str(data), "-k", "3", "--missing", "em", "--chunk-rows", "40", "--seed", "0",
                     "--max-iter", "8", "-o", str(tmp_path / "m.emix"), "-q"])
    assert code == 0, capsys.readouterr().err
    lib = _fit(GaussianMixture(3, missing="em", random_state=0, max_iter=8), X)
    gm = load(tmp_path / "m.emix")
    assert gm.missing == "em" and list(gm.feature_names_in_) == ["a", "b", "c"]
    np.testing.assert_allclose(gm.means_, lib.means_, rtol=1e-10)
    np.testing.assert_allclose(gm.covariances_, lib.covariances_, rtol=1e-10)
    # without --missing em the holes are the NaN error, as before
    code = main(["fit", str(data), "-k", "3", "--chunk-rows", "40", "-o", str(tmp_path / "n.emix"), "-q"])
    assert code != 0 and "NaN" in capsys.readouterr().err


# ------------------------------------------------------ distributed (keep last)
# The `client` fixture (tests/conftest.py) is module-scoped: once it exists,
# every Dask fit in this module would go to its cluster, so this test comes last.
def test_dask_on_a_distributed_cluster_with_holes_and_labels(client):
    """Worker processes: the wrapped structure and the label column travel
    to the workers (pickled), the sums come back in a fixed order."""
    X, w = _data(19)
    labels = np.where(np.arange(X.shape[0]) % 6 == 0, np.arange(X.shape[0]) % 3, -1)
    Xd = da.from_array(X, chunks=(60, -1))
    wd = da.from_array(w, chunks=60)
    _assert_same_fit(_fit(_model("full"), Xd, sample_weight=wd), _fit(_model("full"), X, sample_weight=w))
    got = _fit(_model("VEV"), Xd, labels=labels)
    _assert_same_fit(got, _fit(_model("VEV"), X, labels=labels))
    np.testing.assert_allclose(got.predict_proba(Xd).compute(), got.predict_proba(X), rtol=1e-12, atol=1e-15)
