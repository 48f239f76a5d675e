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

A model fitted with ``missing='em'`` or holding parameters (``fixed``) has
them in the header's ``params`` (``"missing": "em"``, ``"fixed": [names]``)
and is written as format version 2, so that an emix that predates them
refuses the file instead of dropping them; labels of a semi-supervised fit
are fit-time data and are not stored.

The optional ``online`` entry of the header and the ``online_*`` arrays hold
the running state of ``partial_fit`` (step counter, pass count, statistics),
so that ``partial_fit`` after ``load`` continues exactly as without the save.

A :class:`~emix.MixtureModel` of any family (or an emix subclass such as
:class:`~emix.StudentTMixture`) is written as format version 2 with the class
name in ``model`` (an emix that reads only GaussianMixture files refuses it by
that name); its layout is described above :func:`_mixture_parts` and in
docs/design.md ("Model files and model selection for every family").

A :class:`~emix.BayesianGaussianMixture` is written as format version 2
with ``"model": "BayesianGaussianMixture"``; its layout is described above
:func:`_bayesian_parts`.

A scikit-learn ``Pipeline`` of scalers (StandardScaler, MinMaxScaler,
RobustScaler, MaxAbsScaler or ``"passthrough"``) ending in any of these
estimators is written as format version 2 with ``"model": "Pipeline"``: the
scalers' fitted arrays (``mean_``, ``scale_``, ...) as ``.npy`` members, their
parameters as JSON, the mixture as in its own file; ``load`` returns the
Pipeline. Its layout is described above :func:`_pipeline_parts`.

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
    """Save a fitted :class:`~emix.GaussianMixture`,
    :class:`~emix.BayesianGaussianMixture` or :class:`~emix.MixtureModel`
    (any family), or a fitted scikit-learn ``Pipeline`` of scalers ending in
    one of them, to ``path`` atomically.

    The file is a zip of ``.npy`` arrays and a JSON header; it holds no pickle.
    A :class:`~emix.MixtureModel` file records the estimator's class (one of
    emix's own), its JSON-able constructor parameters, the family's
    ``config()``, the fitted ``encoding_``, the fitted scalars, ``weights_``
    and one array per ``family_.param_names`` (see the module notes).

    Raises
    ------
    ValueError
        If a parameter or the family's configuration cannot be stored as JSON
        (e.g. a ``family_options`` value that is an arbitrary object), or a
        Pipeline has a step other than StandardScaler, MinMaxScaler,
        RobustScaler, MaxAbsScaler or ``"passthrough"`` before its last, or a
        last step that is not an emix mixture (nothing is ever pickled).
    """
    from sklearn.utils.validation import check_is_fitted

    if _is_pipeline(model):
        header, arrays = _pipeline_parts(model)
    else:
        check_is_fitted(model)
        header, arrays = _estimator_parts(model)
    _write_file(path, header, arrays)


def _estimator_parts(model):
    """``(header, arrays)`` of a fitted emix estimator (not a Pipeline)."""
    from .bayesian import BayesianGaussianMixture
    from .mixture import MixtureModel

    if isinstance(model, MixtureModel):
        return _mixture_parts(model)
    if type(model) is BayesianGaussianMixture:
        return _bayesian_parts(model)
    header, arrays = _gaussian_parts(model)
    header = {"format": FORMAT, "format_version": header.pop("format_version"),
              "emix_version": __version__, **header}
    return header, arrays


def _write_file(path, header, arrays):
    header["arrays"] = {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()}

    def write(fh):
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("header.json", json.dumps(header, indent=1))
            for name, a in arrays.items():
                buf = _io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
                zf.writestr(name + ".npy", buf.getvalue())

    _write_atomic(path, write)


def _gaussian_parts(model):
    """``(header entries, arrays)`` of a fitted GaussianMixture: the header's
    ``format_version`` (the lowest that holds the model), ``model``,
    ``params``, ``random_state``, ``fitted`` and the optional ``online`` and
    ``prior`` entries; ``arrays`` by member name (without ``.npy``)."""
    params = model.get_params()
    prior_info, prior_arrays = _prior_for_file(params.get("prior"))
    rs = params.get("random_state")
    header = {
        # the lowest version that holds the model: files without a prior stay
        # readable by an emix that predates version 2
        "format_version": 1 if prior_info is None else FORMAT_VERSION,
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
        "arrays": {},  # filled by _write_file (here for the key order of the files written before)
    }
    _incomplete_for_file(params, header)
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
    return header, arrays


def _incomplete_for_file(params, header):
    """Store ``missing`` and ``fixed`` (a list of names) in the header's
    ``params`` when they differ from their defaults, and then raise the file
    to format version 2, so that an emix that predates them refuses the file
    instead of dropping them (a model that fits with NaN or holds parameters
    would silently become one that does not). Labels are fit-time data and
    are not stored."""
    from .core.missing import check_fixed, check_missing_option

    missing = check_missing_option(params.get("missing", "error"))
    fixed = check_fixed(params.get("fixed", ()))
    if missing != "error":
        header["params"]["missing"] = missing
    if fixed:
        header["params"]["fixed"] = list(fixed)
    if missing != "error" or fixed:
        header["format_version"] = FORMAT_VERSION


def _read_incomplete(path, params, version):
    """``{'missing': ..., 'fixed': (...)}`` from a GaussianMixture file's
    ``params`` (defaults when absent), checked."""
    from .core.missing import check_fixed, check_missing_option

    out = {}
    if "missing" in params or "fixed" in params:
        if version < 2:
            _fail(path, "format_version 1 files cannot hold 'missing' or 'fixed'.")
    try:
        if "missing" in params:
            out["missing"] = check_missing_option(params["missing"])
        if "fixed" in params:
            if not isinstance(params["fixed"], list):
                raise ValueError(f"fixed must be a list of names, got {params['fixed']!r:.80}")
            out["fixed"] = check_fixed(params["fixed"])
    except (TypeError, ValueError) as exc:
        _fail(path, f"invalid estimator parameters ({exc}).")
    return out


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


def _read_npy(data, name, path, kinds="f"):
    """A float32/float64 array (``kinds="f"``), or one of the numpy dtype
    kinds ``kinds`` among float32/64, bool ("b") and 8- to 64-bit integers
    ("iu"), from the bytes of a ``.npy`` member.

    The header is read first: its dtype must be one of those (so an
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
    allowed = [np.dtype(np.float32), np.dtype(np.float64)] if "f" in kinds else []
    allowed += [np.dtype(t) for k, ts in (("b", "?"), ("i", "i1 i2 i4 i8"), ("u", "u1 u2 u4 u8"))
                if k in kinds for t in ts.split()]
    if dtype.newbyteorder("=") not in allowed:
        expected = "float32 or float64" if kinds == "f" else f"one of {sorted({str(t) for t in allowed})}"
        _fail(path, f"array {name!r} has dtype {dtype}; expected {expected}.")
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

    Returns
    -------
    model : GaussianMixture, BayesianGaussianMixture or MixtureModel (or the
        emix subclass of MixtureModel the file names), or a scikit-learn
        ``Pipeline`` of scalers ending in one of them

    Raises
    ------
    ModelFileError
        If the file is missing, not an emix model file, from a newer format
        version, truncated, corrupt, names a class or family this emix does
        not have, or holds invalid or inconsistent parameters.
    """
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
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            # ValueError: json.JSONDecodeError, and integers over Python's digit limit
            _fail(path, f"header.json is not valid JSON ({type(exc).__name__}: {str(exc):.200}).")
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            _fail(path, "header.json does not describe an emix model.")
        version = header.get("format_version")
        if isinstance(version, bool) or version not in _READABLE_VERSIONS:
            _fail(path, f"format_version {version!r} is not supported (this emix reads "
                        f"{' and '.join(map(str, _READABLE_VERSIONS))}).")
        if header.get("model") == "Pipeline":
            return _load_pipeline(zf, path, header, version)
        return _load_estimator(zf, path, header, version)


def _load_estimator(zf, path, header, version):
    """The emix estimator (not a Pipeline) that ``header`` describes."""
    kind = header.get("model")
    if kind == "GaussianMixture":
        params, fitted, arrays = _read_gaussian_arrays(zf, path, header)
        return _build_gaussian(path, header, version, params, fitted, arrays)
    if kind == "BayesianGaussianMixture":
        return _load_bayesian(zf, path, header, version)
    classes = _mixture_classes()
    if isinstance(kind, str) and kind in classes:
        return _load_mixture(zf, path, header, version, classes[kind])
    _fail(path, f"unknown model type {kind!r:.80} (this emix reads "
                f"{', '.join(['GaussianMixture', 'BayesianGaussianMixture', *classes, 'Pipeline'])}).")


def _read_gaussian_arrays(zf, path, header):
    """``(params, fitted, arrays)`` of a GaussianMixture's header entries."""
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
        arrays[name] = _read_declared(zf, path, declared, name)
    return params, fitted, arrays


def _read_declared(zf, path, declared, name, kinds="f"):
    """The finite array ``name`` of the file, checked against the header's
    declared shape; ``kinds``: the numpy dtype kinds allowed."""
    spec = declared[name]
    if not isinstance(spec, dict) or not isinstance(spec.get("shape"), list):
        _fail(path, f"the header's entry for array {name!r} is malformed: {spec!r:.80}.")
    data = _read_member(zf, name + ".npy", _MAX_ARRAY_BYTES, path)
    a = _read_npy(data, name, path, kinds)
    if list(a.shape) != list(spec.get("shape", [])):
        _fail(path, f"array {name!r} has shape {a.shape}, the header says {spec.get('shape')!r:.80}.")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        _fail(path, f"array {name!r} contains NaN or infinite values.")
    return a


def _build_gaussian(path, header, version, params, fitted, arrays):
    """The GaussianMixture described by its header entries and arrays."""
    from .estimator import GaussianMixture

    try:
        structure = get_structure(params.get("covariance_type"))
    except ValueError as exc:
        _fail(path, str(exc))
    noise = _read_noise(path, params, fitted)
    _check_parameters(path, arrays, structure, 0.0 if noise is None else noise[0])
    prior = _read_prior(path, header, version, arrays, arrays["means"].shape[1])

    init_kwargs = {k: params[k] for k in _SCALAR_PARAMS if k in params}
    init_kwargs.update(_read_incomplete(path, params, version))
    init_kwargs["random_state"] = _read_random_state(path, header.get("random_state"))
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
        if noise is not None:
            model.noise_weight_, model.noise_log_volume_ = noise
    except (TypeError, ValueError, ArithmeticError) as exc:
        _fail(path, f"fitted attributes are missing or invalid ({exc}).")
    _set_fitted_scalars(path, model, fitted, D)
    if "online" in header:
        from .online import state_from_file

        try:
            model._online = state_from_file(header["online"], arrays, model, structure)
        except (TypeError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            _fail(path, f"invalid partial_fit state ({exc}).")
    return model


def _read_random_state(path, rs):
    if rs is not None and not (isinstance(rs, int) and not isinstance(rs, bool) and 0 <= rs < 2**32):
        _fail(path, f"random_state must be null or an integer in [0, 2**32). Got {rs!r:.80}.")
    return rs


def _set_fitted_scalars(path, model, fitted, D=None):
    """converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_ (which
    must be ``D`` unless None) and feature_names_in_ from the header's
    ``fitted`` entry."""
    try:
        model.converged_ = bool(fitted["converged_"])
        model.n_iter_ = int(fitted["n_iter_"])
        model.lower_bound_ = float(fitted["lower_bound_"])
        model.lower_bounds_ = [float(v) for v in fitted["lower_bounds_"]]
        model.n_features_in_ = int(fitted["n_features_in_"])
        if model.n_features_in_ < 1:
            _fail(path, f"n_features_in_ must be >= 1. Got {model.n_features_in_}.")
        names = fitted.get("feature_names_in_")
        if names is not None:
            n = model.n_features_in_ if D is None else D
            if not isinstance(names, list) or not all(isinstance(v, str) for v in names):
                _fail(path, f"feature_names_in_ must be a list of strings. Got {names!r:.80}.")
            if len(names) != n:
                _fail(path, f"feature_names_in_ has {len(names)} names for {n} features.")
            model.feature_names_in_ = np.asarray([str(n) for n in names], dtype=object)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        _fail(path, f"fitted attributes are missing or invalid ({exc}).")
    if D is not None and model.n_features_in_ != D:
        _fail(path, f"n_features_in_ is {model.n_features_in_} but means has {D} columns.")


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


# ------------------------------------------------------------------ MixtureModel files
#
# A MixtureModel file (any family) is format_version 2 with ``"model"`` the
# estimator's class name (``"MixtureModel"`` or an emix subclass exported in
# ``emix.__all__``): an emix that reads only GaussianMixture files refuses it
# by that name ("unknown model type 'MixtureModel'"). Header entries:
#
#   params      the constructor parameters (``callback`` is not stored and loads
#               as None; ``random_state`` as for GaussianMixture), in the tagged
#               JSON of ``_to_json``
#   family      ``family_.config()``: ``{"name": ..., "options": {...}}``, rebuilt
#               with ``emix.families.get_family(name, **options)``
#   encoding    ``encoding_`` (tagged JSON)
#   components  ``family_.param_names``; one array ``<name>.npy`` each, and
#               ``weights.npy``
#   fitted      converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_,
#               feature_names_in_
#
# family='gaussian' delegates to GaussianMixture: its file has family
# ``{"name": "gaussian", "options": {}}`` and, under ``gaussian``, the inner
# GaussianMixture's own header entries (params, random_state, fitted, online,
# prior) with its arrays as the file's arrays, read exactly as a
# GaussianMixture file's.

_JSON_MAX_DEPTH = 32
_JSON_MAX_ARRAY_BYTES = 64 << 20


def _mixture_classes():
    """``{name: class}`` of the MixtureModel classes a file may name: emix's
    exported names only (a whitelist; nothing else is ever imported)."""
    import emix

    from .mixture import MixtureModel

    out = {}
    for name in emix.__all__:
        obj = getattr(emix, name, None)
        if isinstance(obj, type) and issubclass(obj, MixtureModel) and obj.__name__ == name:
            out[name] = obj
    return out


def _to_json(value, what, depth=0):
    """``value`` as JSON that :func:`_from_json` turns back into an equal
    value of the same types: JSON scalars and lists as themselves, a dict
    with string keys (none starting with ``$``) as an object, and tagged
    one-key objects for the rest: ``{"$tuple": [...]}``, ``{"$dict": [[k, v],
    ...]}`` (other keys), ``{"$float": "nan"|"inf"|"-inf"}``, ``{"$numpy":
    [dtype, value]}`` (a numpy scalar) and ``{"$ndarray": {"dtype", "shape",
    "data"}}`` (bool, integer, float, str, or object arrays of JSON scalars).

    Raises
    ------
    ValueError
        For anything else (``what`` names the value in the message).
    """
    if depth > _JSON_MAX_DEPTH:
        raise ValueError(f"Cannot save {what}: it is nested deeper than {_JSON_MAX_DEPTH} levels.")
    if value is None or isinstance(value, (bool, str)) and not isinstance(value, np.generic):
        return value if not isinstance(value, str) else str(value)
    if isinstance(value, np.generic):
        if value.dtype.kind in "biuf":
            return {"$numpy": [value.dtype.str, _to_json(value.item(), what, depth + 1)]}
        if value.dtype.kind == "U":
            return str(value)
    elif isinstance(value, int):
        return int(value)
    elif isinstance(value, float):
        return float(value) if math.isfinite(value) else {"$float": repr(float(value))}
    elif isinstance(value, list):
        return [_to_json(v, what, depth + 1) for v in value]
    elif isinstance(value, tuple):
        return {"$tuple": [_to_json(v, what, depth + 1) for v in value]}
    elif isinstance(value, dict):
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: _to_json(v, what, depth + 1) for k, v in value.items()}
        return {"$dict": [[_to_json(k, what, depth + 1), _to_json(v, what, depth + 1)] for k, v in value.items()]}
    elif isinstance(value, np.ndarray) and value.dtype.kind in "biufUO":
        if value.dtype.kind == "O" and not all(
                x is None or isinstance(x, (bool, int, float, str)) for x in value.ravel().tolist()):
            raise ValueError(f"Cannot save {what}: an object array may hold only None, bools, numbers "
                             "and strings in a model file.")
        return {"$ndarray": {"dtype": value.dtype.str, "shape": list(value.shape),
                             "data": [_to_json(x, what, depth + 1) for x in value.ravel().tolist()]}}
    raise ValueError(f"Cannot save {what}: a model file stores JSON values, tuples, dicts and numeric "
                     f"or string numpy arrays, not {type(value).__name__} ({value!r:.80}).")


def _from_json(value, depth=0):
    """The value :func:`_to_json` wrote; raises ValueError for anything it
    cannot have written (unknown tags, dtypes other than bool, integer, float,
    str and object, mismatched shapes, too deep)."""
    if depth > _JSON_MAX_DEPTH:
        raise ValueError(f"a value is nested deeper than {_JSON_MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_from_json(v, depth + 1) for v in value]
    if not isinstance(value, dict):
        raise ValueError(f"unexpected JSON value {value!r:.80}")
    if len(value) == 1 and next(iter(value)).startswith("$"):
        tag, x = next(iter(value.items()))
        if tag == "$tuple" and isinstance(x, list):
            return tuple(_from_json(v, depth + 1) for v in x)
        if tag == "$dict" and isinstance(x, list) and all(isinstance(p, list) and len(p) == 2 for p in x):
            out = {}
            for k, v in x:
                k = _from_json(k, depth + 1)
                try:
                    out[k] = _from_json(v, depth + 1)
                except TypeError:
                    raise ValueError(f"unhashable dict key {k!r:.80}") from None
            return out
        if tag == "$float" and x in ("nan", "inf", "-inf"):
            return float(x)
        if tag == "$numpy" and isinstance(x, list) and len(x) == 2 and isinstance(x[0], str):
            dtype = _json_dtype(x[0], "biuf")
            v = _from_json(x[1], depth + 1)
            if isinstance(v, (list, dict)) or v is None or isinstance(v, str):
                raise ValueError(f"a numpy scalar holds {v!r:.80}")
            return dtype.type(v)
        if tag == "$ndarray" and isinstance(x, dict) and set(x) == {"dtype", "shape", "data"}:
            return _json_ndarray(x, depth)
        raise ValueError(f"unknown or malformed tagged value {value!r:.80}")
    return {k: _from_json(v, depth + 1) for k, v in value.items()}


def _json_dtype(spec, kinds):
    try:
        dtype = np.dtype(spec) if isinstance(spec, str) and len(spec) <= 16 else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"dtype {spec!r:.40} is not one of a model file's (kinds {kinds!r})")
    return dtype


def _json_ndarray(x, depth):
    dtype = _json_dtype(x["dtype"], "biufUO")
    shape, data = x["shape"], x["data"]
    if not (isinstance(shape, list) and len(shape) <= 32
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise ValueError(f"an array's shape must be a list of integers >= 0. Got {shape!r:.80}")
    count = math.prod(shape)
    if not isinstance(data, list) or len(data) != count:
        raise ValueError(f"an array of shape {tuple(shape)} holds {len(data) if isinstance(data, list) else data!r:.40} "
                         "values")
    if count * max(dtype.itemsize, 8) > _JSON_MAX_ARRAY_BYTES:
        raise ValueError(f"an array of shape {tuple(shape)} and dtype {dtype} is over the size limit")
    items = [_from_json(v, depth + 2) for v in data]
    if not all(v is None or isinstance(v, (bool, int, float, str)) for v in items):
        raise ValueError("an array may hold only None, bools, numbers and strings")
    if dtype.kind == "O":
        a = np.empty(count, dtype=object)
        a[:] = items
    else:
        a = np.array(items, dtype=dtype) if items else np.empty(0, dtype=dtype)
    return a.reshape(shape)


def _mixture_parts(model):
    """``(header, arrays)`` of a fitted MixtureModel (see the notes above)."""
    cls = type(model)
    classes = _mixture_classes()
    if classes.get(cls.__name__) is not cls:
        raise ValueError(
            f"Cannot save a {cls.__name__}: model files hold emix's own estimators "
            f"({', '.join(['GaussianMixture', *classes])}), found by name when loading. "
            "Save a model of one of those classes.")
    stored = {}
    for key, value in model.get_params(deep=False).items():
        if key == "callback":  # a runtime hook: not stored, loads as None
            continue
        if key == "random_state":
            stored[key] = (int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                           else None)
            continue
        stored[key] = _to_json(value, f"parameter {key!r}")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "emix_version": __version__,
              "model": cls.__name__, "params": stored}
    if model._is_gaussian():
        if not hasattr(model, "_gm"):
            raise ValueError("Cannot save this model: its family is 'gaussian' but it was fitted with "
                             "another family; refit it first.")
        gm_header, arrays = _gaussian_parts(model._gm)
        for key in ("format_version", "model", "arrays"):
            gm_header.pop(key)
        header.update(family={"name": "gaussian", "options": {}}, gaussian=gm_header, arrays={})
        return header, arrays
    family = getattr(model, "family_", None)
    if family is None:
        raise ValueError(f"Cannot save this model: it was fitted as family='gaussian' but its family is now "
                         f"{model.family!r}; refit it first.")
    config = family.config()
    if not (isinstance(config, dict) and set(config) == {"name", "options"} and isinstance(config["name"], str)
            and isinstance(config["options"], dict)):
        raise ValueError(f"Cannot save this model: family_.config() must be {{'name': str, 'options': dict}}. "
                         f"Got {config!r:.120}.")
    header["family"] = _to_json(config, "the family's config()")
    header["encoding"] = _to_json(model.encoding_, "encoding_")
    header["components"] = list(family.param_names)
    header["fitted"] = {
        "converged_": bool(model.converged_),
        "n_iter_": int(model.n_iter_),
        "lower_bound_": float(model.lower_bound_),
        "lower_bounds_": [float(v) for v in model.lower_bounds_],
        "n_features_in_": int(model.n_features_in_),
        "feature_names_in_": (
            [str(v) for v in model.feature_names_in_] if hasattr(model, "feature_names_in_") else None),
    }
    header["arrays"] = {}
    arrays = {"weights": np.asarray(model.weights_)}
    for name in family.param_names:
        if not (isinstance(name, str) and name.isidentifier() and name != "weights"):
            raise ValueError(f"Cannot save this model: the family's parameter name {name!r} is not a "
                             "Python identifier other than 'weights'.")
        a = np.asarray(getattr(model, name + "_"))
        if a.dtype.kind not in "biuf":
            raise ValueError(f"Cannot save this model: {name}_ has dtype {a.dtype}; model files hold "
                             "bool, integer and float arrays.")
        arrays[name] = a
    return header, arrays


def _encode_empty(model, family, encoding):
    """``(X_float, D)``: ``family.encode`` of a table of zero rows with the
    model's columns (a DataFrame of object columns named ``feature_names_in_``
    when the model has them, else an array) under ``encoding``."""
    n = model.n_features_in_
    names = getattr(model, "feature_names_in_", None)
    if getattr(family, "raw_input", False):
        if names is not None:
            import pandas as pd

            empty = pd.DataFrame({str(c): pd.Series([], dtype=object) for c in names})
        else:
            empty = np.empty((0, n), dtype=object)
    else:
        empty = np.empty((0, n), dtype=np.float64)
    Xf, _ = family.encode(empty, encoding)
    Xf = np.asarray(Xf)
    if Xf.ndim != 2 or Xf.shape[0] != 0:
        raise ValueError(f"the family encoded a table of 0 rows and {n} columns as shape {Xf.shape}")
    return Xf, int(Xf.shape[1])


def _load_mixture(zf, path, header, version, cls):
    """The MixtureModel (or emix subclass ``cls``) a file describes, every
    entry checked (see the notes above)."""
    from .families import get_family
    from .families.base import ComponentFamily

    if version < 2:
        _fail(path, f"format_version {version} files hold GaussianMixture models only, not a {cls.__name__}.")
    for key in ("params", "family", "arrays"):
        if not isinstance(header.get(key), dict):
            _fail(path, f"header.json's {key!r} must be an object. Got {header.get(key)!r:.80}.")
    try:
        params = {k: _from_json(v) for k, v in header["params"].items()}
    except (ValueError, TypeError, OverflowError) as exc:
        _fail(path, f"invalid estimator parameters ({exc}).")
    names = cls._get_param_names()
    unknown = sorted(set(params) - set(names))
    if unknown:
        _fail(path, f"{cls.__name__} has no parameter(s) {unknown!r:.120}.")
    if "callback" in params:
        _fail(path, "the callback parameter is never stored in a model file.")
    params["random_state"] = _read_random_state(path, params.get("random_state"))
    try:
        model = cls(**params)
        model._check_params()
        model._resolve()
    except (TypeError, ValueError, OverflowError, KeyError) as exc:
        _fail(path, f"invalid estimator parameters ({exc}).")
    config = header["family"]
    if set(config) != {"name", "options"} or not isinstance(config["name"], str) \
            or not isinstance(config["options"], dict):
        _fail(path, f"the header's family must be {{\"name\": str, \"options\": object}}. Got {config!r:.120}.")
    name = config["name"]
    if name == "gaussian" or model._is_gaussian():
        if not (name == "gaussian" and model._is_gaussian()):
            _fail(path, f"the family parameter is {model.family!r:.80} but the file holds a {name!r:.40} family.")
        if config["options"] or not isinstance(header.get("gaussian"), dict):
            _fail(path, "a 'gaussian' family file needs an empty family options object and a 'gaussian' entry.")
        sub = {**header["gaussian"], "arrays": header["arrays"]}
        g_params, g_fitted, arrays = _read_gaussian_arrays(zf, path, sub)
        gm = _build_gaussian(path, sub, FORMAT_VERSION, g_params, g_fitted, arrays)
        if model.n_components != gm.n_components:
            _fail(path, f"n_components is {model.n_components} but the Gaussian model has {gm.n_components}.")
        model._adopt_gaussian(gm)
        return model
    try:
        options = _from_json(config["options"])
        family = get_family(name, **options)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        _fail(path, f"cannot rebuild the family {name!r:.80} ({exc}).")
    if not isinstance(family, ComponentFamily):
        _fail(path, f"the family {name!r:.80} is not a component family.")
    expected = model._resolve()
    if expected is not None and expected.name != family.name:
        _fail(path, f"the family parameter {model.family!r:.80} is a {expected.name!r} family but the file "
                    f"holds a {family.name!r} family.")
    if not isinstance(header.get("fitted"), dict):
        _fail(path, "header.json lacks the 'fitted' object.")
    _set_fitted_scalars(path, model, header["fitted"])
    if "encoding" not in header:
        _fail(path, "header.json lacks the 'encoding' entry.")
    # The family checks the encoding itself, as at predict time: it encodes a
    # table of zero rows with the fitted columns under the stored encoding,
    # which gives the width D of its float view; with_meta then gives the
    # family configured with the encoding (e.g. a mixed family's layout).
    try:
        encoding = _from_json(header["encoding"])
        _, D = _encode_empty(model, family, encoding)
        family = family.with_meta(encoding)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        _fail(path, f"invalid encoding_ for the {family.name} family ({type(exc).__name__}: {str(exc):.300}).")
    try:
        rebuilt = _to_json(family.config(), "the family's config()")
    except ValueError as exc:
        _fail(path, str(exc))
    # options the family gained after the file was written take their defaults
    stored_options, rebuilt_options = config["options"], rebuilt.get("options", {})
    if rebuilt.get("name") != name or any(k not in rebuilt_options or rebuilt_options[k] != v
                                          for k, v in stored_options.items()):
        _fail(path, f"the family's options do not rebuild the stored family: stored {config!r:.120}, "
                    f"rebuilt {rebuilt!r:.120}.")
    components = list(family.param_names)
    if header.get("components") != components:
        _fail(path, f"the header's components {header.get('components')!r:.120} are not the {family.name} "
                    f"family's parameters {components}.")
    declared = header["arrays"]
    expected_arrays = {"weights", *components}
    if set(declared) != expected_arrays:
        missing, extra = sorted(expected_arrays - set(declared)), sorted(set(declared) - expected_arrays)
        _fail(path, f"the header's arrays do not match the {family.name} family's: missing {missing}, "
                    f"unexpected {extra!r:.120}.")
    weights = _read_declared(zf, path, declared, "weights")
    comp = {c: _read_declared(zf, path, declared, c, kinds="fbiu") for c in components}
    if weights.ndim != 1 or weights.shape[0] < 1:
        _fail(path, f"weights must have shape (n_components,); got {weights.shape}.")
    K = weights.shape[0]
    if model.n_components != K:
        _fail(path, f"n_components is {model.n_components} but weights has {K} entries.")
    tol = 1e-4 if weights.dtype == np.float32 else 1e-8
    total = float(weights.sum(dtype=np.float64))
    if np.any(weights < 0) or abs(total - 1.0) > tol:
        _fail(path, f"weights must be >= 0 and sum to 1; they sum to {total:.10g}.")
    try:
        family.check_params(dict(comp), K, D)
    except (ValueError, TypeError, ArithmeticError, KeyError, IndexError, np.linalg.LinAlgError) as exc:
        _fail(path, f"invalid {family.name} parameters for {K} components and {D} features ({exc}).")
    structure = getattr(family, "structure", None)
    if structure is not None and {"means", "covariances", "precisions_cholesky"} <= set(comp):
        # a family with Gaussian covariance structures (Student-t): the same
        # checks as a GaussianMixture file's (positive definite, the canonical
        # factor, covariances and factors that agree)
        _check_parameters(path, {"weights": weights, **comp}, structure)
    from .core.types import FitResult
    from .families.base import MixtureParams

    # through the estimator's own setter, so that attributes derived from the
    # parameters (e.g. StudentTMixture's precisions_) are set as after fit
    result = FitResult(MixtureParams(weights=weights, components=comp), model.n_iter_, model.converged_,
                       model.lower_bound_, tuple(model.lower_bounds_))
    model.family_, model.encoding_ = family, encoding
    model._set_fitted(result, family)
    return model


# ---------------------------------------------------- BayesianGaussianMixture files
#
# format_version 2, ``"model": "BayesianGaussianMixture"`` (an emix that
# predates the class refuses the file by that name). Header entries:
#
#   params   the constructor parameters in the tagged JSON of ``_to_json``
#            (``callback`` not stored, loads as None; ``random_state`` an
#            integer or null)
#   prior    weight_concentration_prior_, mean_precision_prior_,
#            degrees_of_freedom_prior_ (numbers)
#   fitted   as a GaussianMixture file's (n_effective_components_ is
#            recomputed from weights_)
#
# Arrays: weights, means, covariances, precisions_cholesky (checked as a
# GaussianMixture's), mean_precision (K,), degrees_of_freedom (K,) or (1,) for
# 'tied', weight_concentration (K,) or (2, K) for 'dirichlet_process' (the
# two Beta parameters), mean_prior (D,), covariance_prior ((D, D), (D,) or
# (1,) by covariance type; scalars as one-element arrays).

_BAYES_ARRAYS = _PARAM_ARRAYS + ("mean_precision", "degrees_of_freedom", "weight_concentration", "mean_prior",
                                 "covariance_prior")
_BAYES_PRIOR_SCALARS = ("weight_concentration_prior_", "mean_precision_prior_", "degrees_of_freedom_prior_")


def _bayesian_parts(model):
    """``(header, arrays)`` of a fitted BayesianGaussianMixture."""
    stored = {}
    for key, value in model.get_params(deep=False).items():
        if key == "callback":
            continue
        if key == "random_state":
            stored[key] = (int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                           else None)
            continue
        stored[key] = _to_json(value, f"parameter {key!r}")
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "emix_version": __version__,
        "model": "BayesianGaussianMixture", "params": stored,
        "prior": {name: float(getattr(model, name)) for name in _BAYES_PRIOR_SCALARS},
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
    }
    arrays = {name: np.asarray(getattr(model, name + "_")) for name in _PARAM_ARRAYS}
    arrays["mean_precision"] = np.asarray(model.mean_precision_, dtype=np.float64)
    arrays["degrees_of_freedom"] = np.atleast_1d(np.asarray(model.degrees_of_freedom_, dtype=np.float64))
    arrays["weight_concentration"] = np.asarray(
        np.stack(model.weight_concentration_) if isinstance(model.weight_concentration_, tuple)
        else model.weight_concentration_, dtype=np.float64)
    arrays["mean_prior"] = np.asarray(model.mean_prior_, dtype=np.float64)
    arrays["covariance_prior"] = np.atleast_1d(np.asarray(model.covariance_prior_, dtype=np.float64))
    return header, arrays


def _load_bayesian(zf, path, header, version):
    """The BayesianGaussianMixture of a file written by :func:`_bayesian_parts`."""
    from .bayesian import EFFECTIVE_WEIGHT_THRESHOLD, BayesianGaussianMixture
    from .core import vb

    if version < 2:
        _fail(path, "format_version 1 files hold GaussianMixture models only.")
    try:
        stored = dict(header["params"])
        fitted = dict(header["fitted"])
        prior = dict(header["prior"])
        declared = dict(header["arrays"])
    except (KeyError, TypeError, ValueError):
        _fail(path, "header.json lacks 'params', 'prior', 'fitted' or 'arrays'.")
    names = set(inspect_params(BayesianGaussianMixture))
    unknown = sorted(set(stored) - names)
    if unknown:
        _fail(path, f"unknown BayesianGaussianMixture parameters {unknown!r:.120}.")
    try:
        params = {k: _from_json(v) for k, v in stored.items() if k != "random_state"}
    except (ValueError, TypeError) as exc:
        _fail(path, f"invalid parameters ({exc}).")
    params["random_state"] = _read_random_state(path, stored.get("random_state"))
    try:
        model = BayesianGaussianMixture(**params)
        model._check_params()
        structure = model._structure()
    except (TypeError, ValueError, OverflowError) as exc:
        _fail(path, f"invalid estimator parameters ({exc}).")
    arrays = {}
    for name in _BAYES_ARRAYS:
        if name not in declared:
            _fail(path, f"header declares no array {name!r}.")
        arrays[name] = _read_declared(zf, path, declared, name)
    _check_parameters(path, arrays, structure)
    K, D = arrays["means"].shape
    if model.n_components != K:
        _fail(path, f"n_components is {model.n_components} but means has {K} rows.")
    ct, dp = model.covariance_type, model.weight_concentration_prior_type == "dirichlet_process"
    shapes = {"mean_precision": (K,), "degrees_of_freedom": (1,) if ct == "tied" else (K,),
              "weight_concentration": (2, K) if dp else (K,), "mean_prior": (D,),
              "covariance_prior": {"full": (D, D), "tied": (D, D), "diag": (D,), "spherical": (1,)}[ct]}
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            _fail(path, f"{name} has shape {arrays[name].shape}; expected {shape}.")
    for name in _BAYES_PRIOR_SCALARS:
        v = prior.get(name)
        if not _finite_number(v) or v <= 0:
            _fail(path, f"prior {name} must be a finite number > 0. Got {v!r:.80}.")
    if not prior["degrees_of_freedom_prior_"] > D - 1:
        _fail(path, f"degrees_of_freedom_prior_ must be > {D - 1}. Got {prior['degrees_of_freedom_prior_']!r}.")
    if np.any(arrays["mean_precision"] <= 0) or np.any(arrays["weight_concentration"] <= 0):
        _fail(path, "mean_precision and weight_concentration must be > 0.")
    if np.any(arrays["degrees_of_freedom"] <= D - 1):
        _fail(path, f"degrees_of_freedom must be > {D - 1} (n_features - 1).")
    psi = arrays["covariance_prior"]
    psi_ok = (np.all(np.linalg.eigvalsh(psi) > 0) and np.allclose(psi, psi.T)) if psi.ndim == 2 else np.all(psi > 0)
    if not psi_ok:
        _fail(path, "covariance_prior must be positive definite (positive for 'diag' and 'spherical').")
    wc = arrays["weight_concentration"]
    wc = (wc[0], wc[1]) if dp else wc
    expected = vb.expected_weights(wc, model.weight_concentration_prior_type)
    if not np.allclose(expected, arrays["weights"].astype(np.float64), rtol=0,
                       atol=1e-5 if arrays["weights"].dtype == np.float32 else 1e-10):
        _fail(path, "weights are not the expected weights of weight_concentration.")
    model.weight_concentration_ = wc
    model.mean_precision_ = arrays["mean_precision"]
    model.degrees_of_freedom_ = float(arrays["degrees_of_freedom"][0]) if ct == "tied" else arrays["degrees_of_freedom"]
    model.weights_ = arrays["weights"]
    model.means_ = arrays["means"]
    model.covariances_ = arrays["covariances"]
    model.precisions_cholesky_ = arrays["precisions_cholesky"]
    model.precisions_ = structure.precisions(arrays["precisions_cholesky"])
    model.weight_concentration_prior_ = float(prior["weight_concentration_prior_"])
    model.mean_precision_prior_ = float(prior["mean_precision_prior_"])
    model.degrees_of_freedom_prior_ = float(prior["degrees_of_freedom_prior_"])
    model.mean_prior_ = arrays["mean_prior"]
    model.covariance_prior_ = float(psi[0]) if ct == "spherical" else psi
    _set_fitted_scalars(path, model, fitted, D)
    model.n_effective_components_ = int(np.sum(model.weights_ > EFFECTIVE_WEIGHT_THRESHOLD))
    return model


def inspect_params(cls):
    """The constructor parameter names of ``cls``."""
    return cls._get_param_names()


# ------------------------------------------------------------------ Pipelines
#
# A scikit-learn ``Pipeline`` of feature scalers ending in an emix mixture
# estimator is written as format_version 2 with ``"model": "Pipeline"`` (an
# emix that predates pipeline files refuses it by that name instead of
# loading the mixture without its scaling). Header entries:
#
#   steps    one object per step before the last: ``{"name", "kind"}`` with
#            kind ``"passthrough"``, or one of the scalers of ``_SCALERS``
#            with ``params`` (constructor parameters, tagged JSON),
#            ``n_features_in_``, ``feature_names_in_`` (null or strings),
#            ``n_samples_seen_`` (tagged JSON; absent for RobustScaler),
#            ``output`` (its set_output transform, or null) and ``arrays``
#            (``{attribute: member}``: its fitted arrays, e.g. ``mean_`` in
#            ``step0_mean.npy``; an attribute that the scaler's options
#            leave None is absent)
#   final    ``{"name", "format_version", "header"}``: the last step's own
#            header (as in its own file, without ``arrays``), its arrays
#            being the file's other members
#   verbose  the Pipeline's ``verbose``
#
# Loading checks every scaler array (shape (D,), finite, scales > 0 and
# consistent with the other attributes: scale_ = sqrt(var_) for
# StandardScaler, MinMaxScaler's scale_ and min_ from data_min_, data_max_
# and feature_range, ...), that each step's width is the next one's, and
# rebuilds the scalers through their constructors and scikit-learn's own
# parameter validation.

#: scaler class name -> (fitted arrays, attributes left None by which options, has n_samples_seen_)
_SCALERS = {
    "StandardScaler": (("mean_", "var_", "scale_"), True),
    "MinMaxScaler": (("min_", "scale_", "data_min_", "data_max_", "data_range_"), True),
    "RobustScaler": (("center_", "scale_"), False),
    "MaxAbsScaler": (("max_abs_", "scale_"), True),
}


def _is_pipeline(model):
    try:
        from sklearn.pipeline import Pipeline
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    return isinstance(model, Pipeline)


def _scaler_classes():
    from sklearn import preprocessing

    return {name: getattr(preprocessing, name) for name in _SCALERS}


def _expected_scaler_arrays(kind, params):
    """The fitted arrays a scaler of ``kind`` with ``params`` has (the others are None)."""
    if kind == "StandardScaler":
        std = bool(params.get("with_std", True))
        mean = bool(params.get("with_mean", True)) or std  # the mean is kept to compute var_
        return [a for a, on in (("mean_", mean), ("var_", std), ("scale_", std)) if on]
    if kind == "RobustScaler":
        return [a for a, on in (("center_", params.get("with_centering", True)),
                                ("scale_", params.get("with_scaling", True))) if on]
    return list(_SCALERS[kind][0])


def scaler_affine(scaler):
    """``(a, b)`` with ``scaler.transform(X) == a * X + b`` column by column,
    for the scalers a model file holds (StandardScaler, MinMaxScaler without
    ``clip``, RobustScaler, MaxAbsScaler), or None for ``"passthrough"``.

    A mixture density ``p_z`` fitted to ``z = a x + b`` is the density
    ``p_x(x) = p_z(a x + b) \\prod_j |a_j|`` of the data in its own units
    (change of variables), so ``log p_x = log p_z + sum_j log|a_j|``.
    """
    if scaler is None or (isinstance(scaler, str) and scaler == "passthrough"):
        return None
    kind = type(scaler).__name__
    D = int(scaler.n_features_in_)
    one, zero = np.ones(D), np.zeros(D)
    if kind == "StandardScaler":
        s = scaler.scale_ if scaler.with_std else one
        c = scaler.mean_ if scaler.with_mean else zero
        return 1.0 / s, -c / s
    if kind == "RobustScaler":
        s = scaler.scale_ if scaler.with_scaling else one
        c = scaler.center_ if scaler.with_centering else zero
        return 1.0 / s, -c / s
    if kind == "MaxAbsScaler":
        return 1.0 / scaler.scale_, zero
    if kind == "MinMaxScaler":
        if scaler.clip:
            raise ValueError("a MinMaxScaler with clip=True is not an affine map")
        return np.asarray(scaler.scale_, dtype=np.float64), np.asarray(scaler.min_, dtype=np.float64)
    raise ValueError(f"{kind} is not one of the scalers a model file holds ({', '.join(_SCALERS)})")


def _pipeline_parts(pipe):
    """``(header, arrays)`` of a fitted Pipeline of scalers ending in an emix
    mixture estimator; anything else is refused here, before writing."""
    from sklearn.utils.validation import check_is_fitted

    from .bayesian import BayesianGaussianMixture
    from .estimator import GaussianMixture
    from .mixture import MixtureModel

    steps = list(pipe.steps)
    supported = ", ".join(_SCALERS)
    if not steps:
        raise ValueError("Cannot save an empty Pipeline.")
    if getattr(pipe, "memory", None) is not None:
        raise ValueError("Cannot save a Pipeline with memory set: a model file holds no cache; "
                         "set memory=None first.")
    if getattr(pipe, "transform_input", None) is not None:
        raise ValueError("Cannot save a Pipeline with transform_input set; model files hold plain pipelines.")
    final_name, final = steps[-1]
    if not isinstance(final, (GaussianMixture, MixtureModel, BayesianGaussianMixture)):
        raise ValueError(
            f"Cannot save this Pipeline: its last step {final_name!r} is a {type(final).__name__}; a model file "
            "holds a Pipeline of scalers ending in an emix mixture (GaussianMixture, BayesianGaussianMixture, "
            "MixtureModel, StudentTMixture, ...).")
    check_is_fitted(final)
    header_steps, arrays = [], {}
    width = None
    for i, (name, step) in enumerate(steps[:-1]):
        if step is None or (isinstance(step, str) and step == "passthrough"):
            header_steps.append({"name": str(name), "kind": "passthrough"})
            continue
        kind = type(step).__name__
        if kind not in _SCALERS or _scaler_classes()[kind] is not type(step):
            raise ValueError(
                f"Cannot save this Pipeline: step {name!r} is a {type(step).__module__}.{kind}; model files hold "
                f"the scalers {supported} (or 'passthrough') before the mixture, stored as arrays and JSON "
                "(never pickle). Transform the data before fitting, or save the mixture alone.")
        check_is_fitted(step)
        params = step.get_params(deep=False)
        D = int(step.n_features_in_)
        if width is not None and D != width:
            raise ValueError(f"Cannot save this Pipeline: step {name!r} takes {D} features but the step "
                             f"before gives {width}.")
        width = D
        entry = {"name": str(name), "kind": kind, "params": _to_json(params, f"the parameters of step {name!r}"),
                 "n_features_in_": D,
                 "feature_names_in_": ([str(v) for v in step.feature_names_in_]
                                       if hasattr(step, "feature_names_in_") else None),
                 "output": (getattr(step, "_sklearn_output_config", None) or {}).get("transform"),
                 "arrays": {}}
        if _SCALERS[kind][1]:
            entry["n_samples_seen_"] = _to_json(step.n_samples_seen_, f"n_samples_seen_ of step {name!r}")
        for attr in _expected_scaler_arrays(kind, params):
            value = getattr(step, attr, None)
            if value is None:
                raise ValueError(f"Cannot save this Pipeline: step {name!r} ({kind}) has no {attr}.")
            member = f"step{i}_{attr.rstrip('_')}"
            arrays[member] = np.asarray(value, dtype=np.float64)
            entry["arrays"][attr] = member
        header_steps.append(entry)
    if width is not None and int(final.n_features_in_) != width:
        raise ValueError(f"Cannot save this Pipeline: the mixture takes {final.n_features_in_} features but "
                         f"the scalers give {width}.")
    inner, inner_arrays = _estimator_parts(final)
    clash = sorted(set(inner_arrays) & set(arrays))
    if clash:
        raise ValueError(f"Cannot save this Pipeline: the mixture's arrays {clash} clash with the scalers'.")
    arrays.update(inner_arrays)
    inner = dict(inner)
    inner_version = inner.pop("format_version")
    for key in ("format", "emix_version", "arrays"):
        inner.pop(key, None)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "emix_version": __version__,
              "model": "Pipeline", "steps": header_steps,
              "final": {"name": str(final_name), "format_version": inner_version, "header": inner},
              "verbose": bool(pipe.verbose)}
    return header, arrays


def _load_pipeline(zf, path, header, version):
    """The Pipeline of a file written by :func:`_pipeline_parts`."""
    from sklearn.pipeline import Pipeline

    if version < 2:
        _fail(path, "format_version 1 files hold GaussianMixture models only, not a Pipeline.")
    steps_info, final_info, declared = header.get("steps"), header.get("final"), header.get("arrays")
    if not isinstance(steps_info, list) or not isinstance(final_info, dict) or not isinstance(declared, dict):
        _fail(path, "a Pipeline file needs a 'steps' list and 'final' and 'arrays' objects.")
    if not isinstance(header.get("verbose", False), bool):
        _fail(path, f"the Pipeline's verbose must be true or false. Got {header.get('verbose')!r:.40}.")
    steps, used, width = [], set(), None
    for i, info in enumerate(steps_info):
        name, step, D = _load_step(zf, path, declared, i, info, used)
        if D is not None:
            if width is not None and D != width:
                _fail(path, f"step {name!r} takes {D} features but the step before gives {width}.")
            width = D
        steps.append((name, step))
    if set(final_info) != {"name", "format_version", "header"} or not isinstance(final_info["name"], str) \
            or not isinstance(final_info["header"], dict):
        _fail(path, "the Pipeline's 'final' entry must be {\"name\": str, \"format_version\", \"header\": object}.")
    inner_version = final_info["format_version"]
    if isinstance(inner_version, bool) or inner_version not in _READABLE_VERSIONS:
        _fail(path, f"the mixture's format_version {inner_version!r:.40} is not supported.")
    inner = dict(final_info["header"])
    if inner.get("model") == "Pipeline":
        _fail(path, "a Pipeline's last step cannot be another Pipeline.")
    inner.update(format=FORMAT, arrays={k: v for k, v in declared.items() if k not in used})
    final = _load_estimator(zf, path, inner, inner_version)
    if width is not None and int(final.n_features_in_) != width:
        _fail(path, f"the mixture takes {final.n_features_in_} features but the scalers give {width}.")
    names = [n for n, _ in steps] + [final_info["name"]]
    if len(set(names)) != len(names) or any("__" in n or not n for n in names):
        _fail(path, f"the Pipeline's step names must be distinct, non-empty and free of '__'. Got {names!r:.120}.")
    try:
        return Pipeline(steps + [(final_info["name"], final)], verbose=header.get("verbose", False))
    except (TypeError, ValueError) as exc:
        _fail(path, f"invalid Pipeline ({exc}).")


def _load_step(zf, path, declared, i, info, used):
    """``(name, scaler or 'passthrough', its width or None)`` of step ``i``,
    every entry checked; the members it reads are added to ``used``."""
    if not isinstance(info, dict) or not isinstance(info.get("name"), str) or not isinstance(info.get("kind"), str):
        _fail(path, f"step {i} must be an object with a 'name' and a 'kind'. Got {info!r:.120}.")
    name, kind = info["name"], info["kind"]
    if kind == "passthrough":
        if set(info) != {"name", "kind"}:
            _fail(path, f"the passthrough step {name!r} has unexpected entries {sorted(info)!r:.120}.")
        return name, "passthrough", None
    if kind not in _SCALERS:
        _fail(path, f"step {name!r} is a {kind!r:.80}; this emix reads the scalers {', '.join(_SCALERS)} "
                    "and 'passthrough'.")
    cls = _scaler_classes()[kind]
    seen_needed = _SCALERS[kind][1]
    keys = {"name", "kind", "params", "n_features_in_", "feature_names_in_", "output", "arrays"} | (
        {"n_samples_seen_"} if seen_needed else set())
    if set(info) != keys:
        _fail(path, f"step {name!r} ({kind}) must have exactly the entries {sorted(keys)}. "
                    f"Got {sorted(map(str, info))!r:.200}.")
    try:
        params = _from_json(info["params"])
        if not isinstance(params, dict):
            raise ValueError("its parameters are not an object")
        unknown = sorted(set(params) - set(cls._get_param_names()))
        if unknown:
            raise ValueError(f"{kind} has no parameter(s) {unknown}")
        scaler = cls(**params)
        scaler._validate_params()  # scikit-learn's own check of every parameter
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        _fail(path, f"invalid parameters for step {name!r} ({kind}: {str(exc):.200}).")
    if kind == "MinMaxScaler" and scaler.feature_range[0] >= scaler.feature_range[1]:
        _fail(path, f"step {name!r}: feature_range must be increasing. Got {scaler.feature_range!r}.")
    D = info["n_features_in_"]
    if isinstance(D, bool) or not isinstance(D, int) or D < 1:
        _fail(path, f"step {name!r}: n_features_in_ must be an integer >= 1. Got {D!r:.40}.")
    scaler.n_features_in_ = D
    names = info["feature_names_in_"]
    if names is not None:
        if not isinstance(names, list) or len(names) != D or not all(isinstance(v, str) for v in names):
            _fail(path, f"step {name!r}: feature_names_in_ must be null or {D} strings. Got {names!r:.80}.")
        scaler.feature_names_in_ = np.asarray(names, dtype=object)
    expected = _expected_scaler_arrays(kind, params)
    members = info["arrays"]
    if not isinstance(members, dict) or sorted(members) != sorted(expected):
        _fail(path, f"step {name!r} ({kind} with these options) holds the arrays {expected}. "
                    f"Got {members!r:.120}.")
    values = {}
    for attr in expected:
        member = members[attr]
        if not isinstance(member, str) or member not in declared or member in used:
            _fail(path, f"step {name!r}: array {member!r:.60} for {attr} is not declared, or declared twice.")
        used.add(member)
        a = _read_declared(zf, path, declared, member)
        if a.shape != (D,) or a.dtype != np.float64:
            _fail(path, f"step {name!r}: {attr} must be float64 of shape ({D},). Got {a.dtype} {a.shape}.")
        values[attr] = a
    _check_scaler(path, name, kind, scaler, values, D)
    for attr in _SCALERS[kind][0]:
        setattr(scaler, attr, values.get(attr))
    if seen_needed:
        try:
            seen = _from_json(info["n_samples_seen_"])
        except (ValueError, TypeError) as exc:
            _fail(path, f"step {name!r}: invalid n_samples_seen_ ({exc}).")
        arr = np.asarray(seen) if not isinstance(seen, (list, dict, str, type(None))) else None
        if arr is None or arr.dtype.kind not in "iuf" or arr.shape not in ((), (D,)) \
                or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            _fail(path, f"step {name!r}: n_samples_seen_ must be a count >= 0 or {D} of them. Got {seen!r:.80}.")
        scaler.n_samples_seen_ = seen
    output = info["output"]
    if output is not None:
        if output not in ("default", "pandas", "polars"):
            _fail(path, f"step {name!r}: output must be null, 'default', 'pandas' or 'polars'. Got {output!r:.40}.")
        if output != "default":
            try:
                scaler.set_output(transform=output)
            except (ValueError, ImportError) as exc:
                _fail(path, f"step {name!r}: cannot restore set_output(transform={output!r}) ({exc}).")
    return name, scaler, D


def _check_scaler(path, name, kind, scaler, v, D):
    """The fitted arrays of a scaler agree with each other and its options
    (scikit-learn replaces a zero scale by 1: ``_handle_zeros_in_scale``)."""
    def bad(msg):
        _fail(path, f"step {name!r} ({kind}): {msg}.")

    def close(a, b):
        return np.allclose(a, b, rtol=1e-10, atol=1e-12 * max(1.0, float(np.max(np.abs(b), initial=0.0))))

    if "scale_" in v and kind != "MinMaxScaler" and not np.all(v["scale_"] > 0):
        bad("scale_ must be > 0")
    if kind == "StandardScaler" and "var_" in v:
        if np.any(v["var_"] < 0):
            bad("var_ must be >= 0")
        root = np.sqrt(v["var_"])
        if not np.all((v["scale_"] == 1.0) | np.isclose(v["scale_"], root, rtol=1e-10, atol=0.0)):
            bad("scale_ is not the square root of var_ (or 1 for a constant feature)")
    elif kind == "MaxAbsScaler":
        if np.any(v["max_abs_"] < 0):
            bad("max_abs_ must be >= 0")
        if not np.all((v["scale_"] == 1.0) | (v["scale_"] == v["max_abs_"])):
            bad("scale_ is not max_abs_ (or 1 for a feature of zeros)")
    elif kind == "MinMaxScaler":
        lo, hi = (float(t) for t in scaler.feature_range)
        if np.any(v["data_max_"] < v["data_min_"]) or not close(v["data_range_"], v["data_max_"] - v["data_min_"]):
            bad("data_range_ is not data_max_ - data_min_ (>= 0)")
        # a (near-)constant feature's range counts as 1
        if not np.all((v["scale_"] == hi - lo) | np.isclose(v["scale_"] * v["data_range_"], hi - lo,
                                                             rtol=1e-10, atol=0.0)):
            bad("scale_ is not (feature_range[1] - feature_range[0]) / data_range_")
        if not close(v["min_"], lo - v["data_min_"] * v["scale_"]):
            bad("min_ is not feature_range[0] - data_min_ * scale_")
