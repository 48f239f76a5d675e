"""Helpers for testing code that uses emix (and emix itself)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp as _logsumexp
from scipy.stats import multivariate_normal


def make_mixture(n_samples=500, n_components=3, n_features=2, *, separation=6.0,
                 offset=0.0, dtype=np.float64, random_state=0):
    """Draw rows from a random, well separated Gaussian mixture.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
    truth : dict with 'weights', 'means', 'covariances' (full, (K, D, D))
    """
    rng = np.random.default_rng(random_state)
    K, D = n_components, n_features
    weights = rng.dirichlet(np.full(K, 5.0))
    means = rng.normal(scale=separation, size=(K, D)) + offset
    covs = []
    for _ in range(K):
        A = rng.normal(size=(D, D)) / np.sqrt(D)
        covs.append(A @ A.T + 0.5 * np.eye(D))
    covs = np.array(covs)
    labels = rng.choice(K, size=n_samples, p=weights)
    X = np.empty((n_samples, D))
    for k in range(K):
        idx = labels == k
        X[idx] = rng.multivariate_normal(means[k], covs[k], size=int(idx.sum()))
    return X.astype(dtype), labels, {"weights": weights, "means": means, "covariances": covs}


def match_components(means_a, means_b):
    """Permutation ``p`` minimizing ``sum |means_a[p[k]] - means_b[k]|``."""
    cost = np.linalg.norm(np.asarray(means_a)[:, None] - np.asarray(means_b)[None], axis=2)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty_like(rows)
    perm[cols] = rows
    return perm


def assert_mixture_allclose(a, b, *, rtol=1e-7, atol=0.0, match=True):
    """Assert two fitted mixtures have the same weights, means and covariances,
    up to a permutation of components when ``match`` is true."""
    K = a.means_.shape[0]
    perm = match_components(a.means_, b.means_) if match else np.arange(K)
    np.testing.assert_allclose(a.weights_[perm], b.weights_, rtol=rtol, atol=atol, err_msg="weights_")
    np.testing.assert_allclose(a.means_[perm], b.means_, rtol=rtol, atol=atol, err_msg="means_")
    ca, cb = np.asarray(a.covariances_), np.asarray(b.covariances_)
    if getattr(a, "covariance_type", "full") != "tied":
        ca = ca[perm]
    np.testing.assert_allclose(ca, cb, rtol=rtol, atol=atol, err_msg="covariances_")


def random_params(covariance_type, n_components, n_features, *, offset=0.0,
                  dtype=np.float64, random_state=0):
    """Random valid parameters of any registered covariance structure.

    They are obtained the way every structure defines its parameters: one
    M-step (``reg_covar=1e-3``) on random rows with random soft
    responsibilities, so the result is valid for structures added later too.

    Returns
    -------
    params : emix.core.types.GaussianParams
    structure : the registered covariance structure
    """
    from .core import em
    from .families.gaussian import get_structure

    structure = get_structure(covariance_type)
    rng = np.random.default_rng(random_state)
    K, D = n_components, n_features
    n = 20 * K * (D + 1)
    centers = rng.normal(scale=3.0, size=(K, D))
    labels = rng.integers(K, size=n)
    X = centers[labels] + rng.normal(size=(n, D)) * rng.uniform(0.3, 2.0, size=D)
    resp = 0.3 * rng.dirichlet(np.full(K, 0.5), size=n)
    resp[np.arange(n), labels] += 0.7
    X = (X + offset).astype(dtype)
    shift = np.broadcast_to(X.mean(axis=0), (K, D)).copy()
    stats = em.stats_from_resp(X, None, resp.astype(dtype), shift, structure)
    params = em.m_step(stats, structure, 1e-3, np.dtype(dtype))
    return params, structure


def oracle_log_prob(X, means, full_covariances):
    """(n, K) log N(x_n | mu_k, Sigma_k) by :mod:`scipy.stats` (an oracle
    independent of emix's kernels); ``full_covariances`` is (K, D, D)."""
    X = np.asarray(X, dtype=np.float64)
    return np.stack(
        [multivariate_normal(mean=np.asarray(m, dtype=np.float64), cov=np.asarray(c, dtype=np.float64)).logpdf(X).reshape(-1)
         for m, c in zip(means, full_covariances)],
        axis=1,
    )


def oracle_score_samples(X, weights, means, full_covariances):
    """``log sum_k w_k N(x | mu_k, Sigma_k)`` per row, by scipy."""
    lp = oracle_log_prob(X, means, full_covariances)
    return _logsumexp(lp + np.log(np.asarray(weights, dtype=np.float64)), axis=1)


def model_file_members(path):
    """``{name: bytes}`` of the members of a model file (a zip), for tests
    that tamper with model files."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_model_file_members(path, members):
    """Write ``{name: bytes}`` as a zip at ``path`` (no validation: the point
    is to write broken or hostile model files)."""
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)


def edit_model_file(src, dst, edit):
    """Copy the model file ``src`` to ``dst`` after ``edit(members, header)``
    changed its members (``{name: bytes}``) and/or its parsed header in place;
    returns ``dst``. For tests of broken or hostile model files."""
    import json

    members = model_file_members(src)
    header = json.loads(members["header.json"])
    edit(members, header)
    members["header.json"] = json.dumps(header).encode()
    write_model_file_members(dst, members)
    return dst


def npy_bytes(a, allow_pickle=False):
    """The ``.npy`` serialization of ``a`` as bytes."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=allow_pickle)
    return buf.getvalue()


__all__ = [
    "assert_mixture_allclose",
    "edit_model_file",
    "model_file_members",
    "npy_bytes",
    "write_model_file_members",
    "make_mixture",
    "match_components",
    "oracle_log_prob",
    "oracle_score_samples",
    "random_params",
    "estimator_checks_params",
    "run_cli",
    "read_csv_rows",
]


def estimator_checks_params(estimators, expected_failed_checks=None):
    """scikit-learn's estimator checks for ``estimators``, less ``check_array_api_input``.

    ``check_array_api_input`` runs only when ``SCIPY_ARRAY_API=1`` is set before scipy is
    imported, and reports itself skipped otherwise. The non-Gaussian families and
    ``BayesianGaussianMixture`` run on numpy only, and ``GaussianMixture``'s array-API path is
    checked in a subprocess with that variable by ``tests/test_estimator_checks.py``; so the
    check is left out here rather than listed as skipped.

    Parameters
    ----------
    estimators : list of estimator
        Passed to :func:`sklearn.utils.estimator_checks.parametrize_with_checks`.
    expected_failed_checks : callable, optional
        Passed on as is: estimator -> ``{check name: reason}``.

    Returns
    -------
    argnames, params, kwargs
        For ``pytest.mark.parametrize(argnames, params, **kwargs)``.
    """
    from sklearn.utils.estimator_checks import parametrize_with_checks

    mark = parametrize_with_checks(estimators, expected_failed_checks=expected_failed_checks).mark
    argnames, params = mark.args

    def check_name(param):
        check = (param.values if hasattr(param, "values") else param)[1]
        return getattr(check, "func", check).__name__

    return argnames, [p for p in params if check_name(p) != "check_array_api_input"], mark.kwargs


def run_cli(argv, capsys):
    """Run ``emix`` with ``argv`` (items turned to str) and return ``(exit code, stdout, stderr)``;
    ``capsys`` is pytest's fixture."""
    from .cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def read_csv_rows(path_or_text, text=False):
    """The header and the rows of a CSV file (or of CSV text with ``text=True``), as strings."""
    import csv
    import io

    if text:
        rows = list(csv.reader(io.StringIO(path_or_text)))
    else:
        with open(path_or_text, newline="") as fh:
            rows = list(csv.reader(fh))
    return rows[0], rows[1:]
