"""Model files: a zip of ``.npy`` arrays plus a JSON header. No pickle.

Layout (format version 1, or 2 for a model with a prior)::

    header.json          {"format": "emix-model", "format_version": 1, ...}
    weights.npy means.npy covariances.npy precisions_cholesky.npy
    [weights_init.npy means_init.npy precisions_init.npy]
    [online_nk.npy online_s1.npy online_s2.npy online_shift.npy]
    [prior_mean.npy prior_scale.npy]

The optional ``prior`` entry of the header is the estimator's ``prior``
parameter: absent for ``None``, ``{"kind": "default"}`` for ``"default"``
(mclust's ``defaultPrior``, computed from the training data at every fit, as
the estimator does), or ``{"kind": "conjugate", "shrinkage": kappa, "dof":
nu}`` with the mean and scale in ``prior_mean.npy`` and ``prior_scale.npy``
for an :class:`emix.core.prior.ConjugatePrior`, stored exactly (float64), so a
loaded model refits as the saved one would. A file with a prior is written as
format version 2, so that an emix that predates priors in files refuses it
instead of loading the model without its prior; a file without one is still
version 1, readable by every emix.

The optional ``online`` entry of the header and the ``online_*`` arrays hold
the running state of ``partial_fit`` (step counter, pass count, statistics),
so that ``partial_fit`` after ``load`` continues exactly as without the save.

Arrays are read with ``allow_pickle=False``; nothing in a file is executed.
Loading checks every array's shape, dtype and finiteness, that the weights sum
to 1 (with the noise weight, for a model with a noise component, whose
weight and log-volume are fitted scalars in the header) and that the
precisions are positive definite, and raises
:class:`~emix.exceptions.ModelFileError` otherwise.
"""

from __future__ import annotations

import io as _io
import json
import math
import os
import tempfile
import zipfile

import numpy as np

from ._version import __version__
from .exceptions import ModelFileError
from .families.gaussian import get_structure

FORMAT = "emix-model"
FORMAT_VERSION = 2  # the newest version read and written (2: a prior may be stored)
_READABLE_VERSIONS = tuple(range(1, FORMAT_VERSION + 1))
_MAX_HEADER_BYTES = 1 << 20
_MAX_ARRAY_BYTES = 1 << 32
_PARAM_ARRAYS = ("weights", "means", "covariances", "precisions_cholesky")
_INIT_ARRAYS = ("weights_init", "means_init", "precisions_init")
_ONLINE_ARRAYS = ("online_nk", "online_s1", "online_s2", "online_shift")  # = online.STATE_ARRAYS
_PRIOR_ARRAYS = ("prior_mean", "prior_scale")
_SCALAR_PARAMS = (
    "n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
    "init_params", "warm_start", "verbose", "verbose_interval", "working_memory",
    "online_mode", "learning_decay", "learning_offset", "batches_per_pass", "accelerate", "n_threads",
    "equal_proportions", "noise", "n_jobs",
)


def _target_mode(path):
    """The mode a plain ``open(path, "w")`` would give: the existing file's, or
    0o666 less the umask (``mkstemp`` alone would leave 0o600)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write_atomic(path, write):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    mode = _target_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=".emix-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save(model, path):
    """Save a fitted :class:`~emix.GaussianMixture` to ``path`` atomically.

    The file is a zip of ``.npy`` arrays and a JSON header; it holds no pickle.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model)
    params = model.get_params()
    prior_info, prior_arrays = _prior_for_file(params.get("prior"))
    rs = params.get("random_state")
    header = {
        "format": FORMAT,
        # the lowest version that holds the model: files without a prior stay
        # readable by an emix that predates version 2
        "format_version": 1 if prior_info is None else FORMAT_VERSION,
        "emix_version": __version__,
        "model": type(model).__name__,
        "params": {k: params[k] for k in _SCALAR_PARAMS if k in params},
        "random_state": int(rs) if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool) else None,
        "fitted": {
            "converged_": bool(model.converged_),
            "n_iter_": int(model.n_iter_),
            "lower_bound_": float(model.lower_bound_),
            "lower_bounds_": [float(v) for v in model.lower_bounds_],
            "n_features_in_": int(model.n_features_in_),
            "feature_names_in_": (
                [str(v) for v in model.feature_names_in_] if hasattr(model, "feature_names_in_") else None
            ),
        },
        "arrays": {},
    }
    if getattr(model, "noise_weight_", None) is not None:
        header["fitted"]["noise_weight_"] = float(model.noise_weight_)
        header["fitted"]["noise_log_volume_"] = float(model.noise_log_volume_)
    from .backends._xp import to_numpy  # a model fitted on a GPU is saved as numpy

    arrays = {name: np.asarray(to_numpy(getattr(model, name + "_"))) for name in _PARAM_ARRAYS}
    for name in _INIT_ARRAYS:
        if params.get(name) is not None:
            arrays[name] = np.asarray(to_numpy(params[name]))
    from .online import state_for_file

    online_info, online_arrays = state_for_file(model)
    if online_info is not None:
        header["online"] = online_info
        arrays.update(online_arrays)
    if prior_info is not None:
        header["prior"] = prior_info
        arrays.update(prior_arrays)
    for name, a in arrays.items():
        header["arrays"][name] = {"shape": list(a.shape), "dtype": a.dtype.str}

    def write(fh):
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("header.json", json.dumps(header, indent=1))
            for name, a in arrays.items():
                buf = _io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
                zf.writestr(name + ".npy", buf.getvalue())

    _write_atomic(path, write)


def _prior_for_file(prior):
    """``(header entry, arrays)`` for the estimator's ``prior`` parameter;
    ``(None, {})`` for no prior. Checked before anything is written."""
    from .core.prior import ConjugatePrior

    if prior is None:
        return None, {}
    if isinstance(prior, str) and prior == "default":
        return {"kind": "default"}, {}
    if isinstance(prior, ConjugatePrior):
        shrinkage, dof = float(prior.shrinkage), float(prior.dof)
        mean = np.asarray(prior.mean, dtype=np.float64)
        scale = np.asarray(prior.scale, dtype=np.float64)
        if not (np.isfinite(shrinkage) and np.isfinite(dof) and np.all(np.isfinite(mean))
                and np.all(np.isfinite(scale))):
            raise ValueError("Cannot save a model whose prior has NaN or infinite hyperparameters.")
        return ({"kind": "conjugate", "shrinkage": shrinkage, "dof": dof},
                {"prior_mean": mean, "prior_scale": scale})
    raise ValueError(
        f"Cannot save prior={prior!r}: model files hold None, 'default' or an "
        "emix.core.prior.ConjugatePrior."
    )


def _fail(path, msg):
    raise ModelFileError(f"Cannot load model file {os.fspath(path)!r}: {msg}")


def _read_member(zf, name, limit, path):
    try:
        info = zf.getinfo(name)
    except KeyError:
        _fail(path, f"it has no member {name!r} (a truncated or foreign file?).")
    if info.file_size > limit:
        _fail(path, f"member {name!r} declares {info.file_size} bytes, over the limit of {limit}.")
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        _fail(path, f"member {name!r} is corrupt ({exc}).")


def _read_npy(data, name, path):
    """A float32/float64 array from the bytes of a ``.npy`` member.

    The header is read first: its dtype must be float32 or float64 (so an
    object array is refused before anything could be unpickled) and its shape
    must match the bytes that follow (so a tiny member declaring a huge shape
    cannot make numpy allocate it).
    """
    fp = _io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        _fail(path, f"array {name!r} is corrupt or not a plain numeric array ({exc}).")
    if dtype not in (np.float32, np.float64):
        _fail(path, f"array {name!r} has dtype {dtype}; expected float32 or float64.")
    count = 1
    for n in shape:
        count *= int(n)
    if count * dtype.itemsize != len(data) - fp.tell():
        _fail(path, f"array {name!r} declares shape {tuple(shape)} ({count * dtype.itemsize} bytes) "
                    f"but holds {len(data) - fp.tell()} bytes (truncated or corrupt).")
    try:
        return np.lib.format.read_array(_io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        _fail(path, f"array {name!r} is corrupt or not a plain numeric array ({exc}).")


def load(path):
    """Load a model written by :func:`save`, validating everything in it.

    Raises
    ------
    ModelFileError
        If the file is missing, not an emix model file, from a newer format
        version, truncated, corrupt, or holds invalid parameters.
    """
    from .estimator import GaussianMixture

    try:
        zf = zipfile.ZipFile(os.fspath(path), "r")
    except FileNotFoundError:
        _fail(path, "no such file.")
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        _fail(path, f"not an emix model file (not a valid zip archive: {exc}).")
    with zf:
        raw = _read_member(zf, "header.json", _MAX_HEADER_BYTES, path)
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            _fail(path, f"header.json is not valid JSON ({exc}).")
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            _fail(path, "header.json does not describe an emix model.")
        version = header.get("format_version")
        if isinstance(version, bool) or version not in _READABLE_VERSIONS:
            _fail(path, f"format_version {version!r} is not supported (this emix reads "
                        f"{' and '.join(map(str, _READABLE_VERSIONS))}).")
        if header.get("model") != "GaussianMixture":
            _fail(path, f"unknown model type {header.get('model')!r}.")
        try:
            params = dict(header["params"])
            fitted = dict(header["fitted"])
            declared = dict(header["arrays"])
        except (KeyError, TypeError, ValueError):
            _fail(path, "header.json lacks 'params', 'fitted' or 'arrays'.")
        arrays = {}
        for name in _PARAM_ARRAYS + _INIT_ARRAYS + _ONLINE_ARRAYS + _PRIOR_ARRAYS:
            if name not in declared:
                if name in _PARAM_ARRAYS:
                    _fail(path, f"header declares no array {name!r}.")
                continue
            spec = declared[name]
            if not isinstance(spec, dict) or not isinstance(spec.get("shape"), list):
                _fail(path, f"the header's entry for array {name!r} is malformed: {spec!r:.80}.")
            data = _read_member(zf, name + ".npy", _MAX_ARRAY_BYTES, path)
            a = _read_npy(data, name, path)
            if list(a.shape) != list(declared[name].get("shape", [])):
                _fail(path, f"array {name!r} has shape {a.shape}, the header says {declared[name].get('shape')}.")
            if not np.all(np.isfinite(a)):
                _fail(path, f"array {name!r} contains NaN or infinite values.")
            arrays[name] = a

    try:
        structure = get_structure(params.get("covariance_type"))
    except ValueError as exc:
        _fail(path, str(exc))
    noise = _read_noise(path, params, fitted)
    _check_parameters(path, arrays, structure, 0.0 if noise is None else noise[0])
    prior = _read_prior(path, header, version, arrays, arrays["means"].shape[1])

    init_kwargs = {k: params[k] for k in _SCALAR_PARAMS if k in params}
    rs = header.get("random_state")
    if rs is not None and not (isinstance(rs, int) and not isinstance(rs, bool) and 0 <= rs < 2**32):
        _fail(path, f"random_state must be null or an integer in [0, 2**32). Got {rs!r:.80}.")
    init_kwargs["random_state"] = rs
    for name in _INIT_ARRAYS:
        if name in arrays:
            init_kwargs[name] = arrays[name]
    init_kwargs["prior"] = prior
    try:
        model = GaussianMixture(**init_kwargs)
        from ._validation import check_estimator_params

        check_estimator_params(model)
    except (TypeError, ValueError, OverflowError) as exc:
        _fail(path, f"invalid estimator parameters ({exc}).")
    K, D = arrays["means"].shape
    if model.n_components != K:
        _fail(path, f"n_components is {model.n_components} but means has {K} rows.")
    try:
        model.weights_ = arrays["weights"]
        model.means_ = arrays["means"]
        model.covariances_ = arrays["covariances"]
        model.precisions_cholesky_ = arrays["precisions_cholesky"]
        model.precisions_ = structure.precisions(arrays["precisions_cholesky"])
        model.converged_ = bool(fitted["converged_"])
        model.n_iter_ = int(fitted["n_iter_"])
        model.lower_bound_ = float(fitted["lower_bound_"])
        model.lower_bounds_ = [float(v) for v in fitted["lower_bounds_"]]
        model.n_features_in_ = int(fitted["n_features_in_"])
        if noise is not None:
            model.noise_weight_, model.noise_log_volume_ = noise
        names = fitted.get("feature_names_in_")
        if names is not None:
            if len(names) != D:
                _fail(path, f"feature_names_in_ has {len(names)} names for {D} features.")
            model.feature_names_in_ = np.asarray([str(n) for n in names], dtype=object)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        _fail(path, f"fitted attributes are missing or invalid ({exc}).")
    if model.n_features_in_ != D:
        _fail(path, f"n_features_in_ is {model.n_features_in_} but means has {D} columns.")
    if "online" in header:
        from .online import state_from_file

        try:
            model._online = state_from_file(header["online"], arrays, model, structure)
        except (TypeError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            _fail(path, f"invalid partial_fit state ({exc}).")
    return model


def _finite_number(v):
    """A JSON number (not a bool) that is a finite float: an integer too large
    for a float (JSON allows any) is not."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _read_prior(path, header, version, arrays, n_features):
    """The ``prior`` parameter stored in the header (and ``prior_*`` arrays):
    None, ``"default"`` or a checked :class:`~emix.core.prior.ConjugatePrior`.
    Anything malformed, inconsistent or out of the prior's domain is refused."""
    from .core.prior import ConjugatePrior

    present = [name for name in _PRIOR_ARRAYS if name in arrays]
    info = header.get("prior")
    if info is None:
        if "prior" in header:
            _fail(path, "the header's prior is null; a model without a prior has no prior entry.")
        if present:
            _fail(path, f"the file holds {present[0]!r} but the header has no prior.")
        return None
    if version < 2:
        _fail(path, "format_version 1 files hold no prior, but this header has one.")
    if not isinstance(info, dict):
        _fail(path, f"the header's prior must be an object. Got {info!r:.80}.")
    kind = info.get("kind")
    keys = {"default": {"kind"}, "conjugate": {"kind", "shrinkage", "dof"}}
    if not isinstance(kind, str) or kind not in keys:
        _fail(path, f"the header's prior kind must be 'default' or 'conjugate'. Got {kind!r:.80}.")
    if set(info) != keys[kind]:
        _fail(path, f"the header's {kind!r} prior must have exactly the keys {sorted(keys[kind])}. "
                    f"Got {sorted(map(str, info))!r:.120}.")
    if kind == "default":
        if present:
            _fail(path, f"the file holds {present[0]!r} but the header's prior is 'default'.")
        return "default"
    for name in _PRIOR_ARRAYS:
        if name not in arrays:
            _fail(path, f"the header has a conjugate prior but the file holds no array {name!r}.")
    for name in ("shrinkage", "dof"):
        v = info[name]
        if not _finite_number(v):
            _fail(path, f"prior {name} must be a finite number. Got {v!r:.80}.")
    mean, scale = arrays["prior_mean"], arrays["prior_scale"]
    if mean.dtype != np.float64 or scale.dtype != np.float64:
        _fail(path, f"prior_mean and prior_scale must be float64. Got {mean.dtype} and {scale.dtype}.")
    try:
        return ConjugatePrior(mean=mean, shrinkage=float(info["shrinkage"]), dof=float(info["dof"]),
                              scale=scale).check(n_features)
    except (ValueError, TypeError, ArithmeticError, np.linalg.LinAlgError) as exc:
        _fail(path, f"invalid prior ({exc}).")


def _read_noise(path, params, fitted):
    """``(noise_weight_, noise_log_volume_)`` for a model saved with a noise
    component, None for one without; anything inconsistent is refused."""
    has = "noise_weight_" in fitted or "noise_log_volume_" in fitted
    if params.get("noise") is None:
        if has:
            _fail(path, "the header has a noise weight but the model's noise parameter is null.")
        return None
    try:
        pi0 = fitted["noise_weight_"]
        logv = fitted["noise_log_volume_"]
    except KeyError:
        _fail(path, f"noise={params['noise']!r} but the header lacks noise_weight_ or noise_log_volume_.")
    for name, v in (("noise_weight_", pi0), ("noise_log_volume_", logv)):
        if not _finite_number(v):
            _fail(path, f"{name} must be a finite number. Got {v!r:.80}.")
    if not 0.0 <= pi0 < 1.0:
        _fail(path, f"noise_weight_ must be in [0, 1). Got {pi0!r}.")
    return float(pi0), float(logv)


def _check_parameters(path, arrays, structure, noise_weight=0.0):
    weights, means = arrays["weights"], arrays["means"]
    cov, pc = arrays["covariances"], arrays["precisions_cholesky"]
    if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
        _fail(path, f"means must have shape (n_components, n_features); got {means.shape}.")
    K, D = means.shape
    dtypes = {a.dtype for a in (weights, means, cov, pc)}
    if len(dtypes) != 1:
        _fail(path, f"parameter arrays have mixed dtypes {sorted(str(d) for d in dtypes)}.")
    if weights.shape != (K,):
        _fail(path, f"weights has shape {weights.shape}; expected ({K},).")
    tol = 1e-4 if weights.dtype == np.float32 else 1e-8
    total = float(weights.sum(dtype=np.float64)) + noise_weight
    if np.any(weights < 0) or abs(total - 1.0) > tol:
        what = "sum to 1" if noise_weight == 0.0 else "sum to 1 with noise_weight_"
        _fail(path, f"weights must be >= 0 and {what}; they sum to {total:.10g}.")
    shape = structure.cov_shape(K, D)
    for name, a in (("covariances", cov), ("precisions_cholesky", pc)):
        if a.shape != shape:
            _fail(path, f"{name} has shape {a.shape}; expected {shape} for covariance_type={structure.name!r}.")
    # Everything below goes through the structure's own functions: the array
    # shapes alone cannot tell a (K, D) diagonal from a (D, D) matrix when K == D.
    cov64, pc64 = cov.astype(np.float64), pc.astype(np.float64)
    try:
        full_cov = np.asarray(structure.full_covariances(cov64, K, D), dtype=np.float64)
        prec = structure.precisions(pc64)
        full_prec = np.asarray(structure.full_covariances(prec, K, D), dtype=np.float64)
    except (ValueError, TypeError, ArithmeticError, np.linalg.LinAlgError) as exc:
        _fail(path, f"covariances or precisions_cholesky are invalid ({exc}).")
    for what, stack in (("covariance", full_cov), ("precision", full_prec)):
        for k, c in enumerate(stack):
            try:
                np.linalg.cholesky(c)
            except np.linalg.LinAlgError:
                _fail(path, f"{what} {k} is not positive definite.")
    # precisions_cholesky must be the factor emix (and scikit-learn) store:
    # upper triangular with a positive diagonal, or positive square roots
    rtol = 1e-3 if pc.dtype == np.float32 else 1e-6
    try:
        canonical = np.asarray(structure.prec_chol_from_precisions(prec), dtype=np.float64)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        canonical = None
    if canonical is None or not _rel_close(canonical, pc64, rtol):
        _fail(path, "precisions_cholesky is not the stored factor of a precision (upper triangular "
                    "with a positive diagonal, or positive square roots of precisions).")
    # and the factor of the inverse of covariances, not of something else
    if not _rel_close(np.asarray(structure.cov_from_prec_chol(pc64), dtype=np.float64), cov64, rtol):
        _fail(path, "covariances and precisions_cholesky do not describe the same covariances.")


def _rel_close(a, b, rtol):
    """Equal up to ``rtol`` relative to each component's (or the array's) scale."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.ndim == 3:
        return all(_rel_close(x, y, rtol) for x, y in zip(a, b))
    scale = np.max(np.abs(b)) if b.size else 0.0
    return bool(np.all(np.abs(a - b) <= rtol * scale))
