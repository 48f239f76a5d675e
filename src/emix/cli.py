"""The ``emix`` command line: a thin layer that parses, reads, calls the
library and writes atomically.

Exit codes: 0 success, 1 data or fit error (one line on stderr, a traceback
only with ``--debug``), 2 usage error, 130 interrupted (Ctrl-C; no partial
output is left behind). Results go to stdout, notes and warnings to stderr,
so ``emix predict model data.csv -o - | ...`` pipes clean CSV.

Run ``emix demo`` for a first look, ``emix COMMAND --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import warnings
import weakref

import numpy as np

__all__ = ["main"]

PROG = "emix"


# =================================================================== helpers
class _Err(ValueError):
    """A usage-level problem found after parsing (reported with exit code 1)."""


def _one_line(exc):
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _note(args, msg):
    if not getattr(args, "quiet", False):
        print(msg, file=sys.stderr)


def _positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _jobs(s):
    """Worker count: a positive integer, or -1 (all cores), -2 (all but one) ..."""
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of workers like 2 or -1, got {s!r}") from None
    if v == 0:
        raise argparse.ArgumentTypeError("expected a number of workers like 2 or -1 (all cores), got 0")
    return v


def _nonneg_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {s!r}")
    return v


def _noise(s):
    """--noise: 'box' (the data's bounding box) or a hyper-volume V > 0."""
    if s.strip().lower() == "box":
        return "box"
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'box' or a hyper-volume (a number > 0), got {s!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"the noise hyper-volume must be a finite number > 0, got {s!r}")
    return v


def _k_range(s):
    """'1..9', '1-9', '2,3,5', '4' or combinations like '1..3,6'."""
    import re

    out = []
    for part in s.replace(" ", "").split(","):
        m = re.fullmatch(r"(\d+)(?:(?:\.\.|-|:)(\d+))?", part)
        if not m:
            raise argparse.ArgumentTypeError(f"expected K like 3, 1..9 or 2,4,6; got {s!r}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if lo < 1 or hi < lo:
            raise argparse.ArgumentTypeError(f"bad K range {part!r}: need 1 <= first <= last")
        out.extend(range(lo, hi + 1))
    return sorted(set(out))


def _structures():
    """Registered covariance types, aliases folded to their canonical name."""
    from .families.gaussian import get_structure, structure_names

    return list(dict.fromkeys(get_structure(n).name for n in structure_names()))


def _covariance(s):
    from .families.gaussian import get_structure, structure_names

    if s not in structure_names():
        raise argparse.ArgumentTypeError(
            f"unknown covariance type {s!r}; choose from {', '.join(_structures())}")
    get_structure(s)
    return s  # the user's spelling, as GaussianMixture keeps it (VVV stays VVV, not full)


def _covariance_list(s):
    if s.strip().lower() == "all":
        return None  # select's default: mclust's models for the data's dimension
    if s.strip().lower() == "sklearn":
        return ["full", "tied", "diag", "spherical"]
    from .families.gaussian import get_structure

    out = [_covariance(t.strip()) for t in s.split(",") if t.strip()]
    if not out:
        raise argparse.ArgumentTypeError("expected 'all' or a comma-separated list of covariance types")
    # one fit per model: 'VVV,full' are the same model under two names (the first is kept)
    unique = {}
    for name in out:
        unique.setdefault(id(get_structure(name)), name)
    return list(unique.values())


def _split_names(values):
    if not values:
        return None
    out = []
    for v in values:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


class _Status:
    """One line on stderr for a phase that reports no iterations (reading a
    large file, the k-means or hierarchical start before the first EM
    iteration): shown, with the seconds elapsed, only on a TTY, without
    --quiet and once the phase has lasted ``delay`` seconds; erased when the
    phase ends. A context manager; its thread is joined on exit."""

    def __init__(self, args, text, delay=1.0):
        self.enabled = (not getattr(args, "quiet", False)) and _isatty(sys.stderr)
        self.text, self.delay = text, delay
        self.thread = self.stop = None
        self.width = 0

    def _run(self):
        import time

        start = time.monotonic()
        if self.stop.wait(self.delay):
            return
        while True:
            line = f"{self.text} ... {time.monotonic() - start:.0f}s"
            self.width = max(self.width, len(line))
            sys.stderr.write("\r" + line.ljust(self.width))
            sys.stderr.flush()
            if self.stop.wait(0.5):
                return

    def start(self):
        if self.enabled and self.thread is None:
            import threading

            self.stop = threading.Event()
            self.thread = threading.Thread(target=self._run, name="emix-status", daemon=True)
            self.thread.start()
        return self

    def end(self):
        if self.thread is not None:
            self.stop.set()
            self.thread.join()
            self.thread = None
            if self.width:
                sys.stderr.write("\r" + " " * self.width + "\r")
                sys.stderr.flush()
                self.width = 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.end()


class _Progress:
    """tqdm bar on stderr fed by the estimator's ``callback``; shown only on a
    TTY, without --quiet, and (``delay=1``) only for fits longer than ~1 s.
    Until the first EM iteration (or finished grid cell) reports, a status line
    names the phase (``start``: the initialization)."""

    def __init__(self, args, desc="EM", total_fits=None, start=None):
        self.enabled = (not getattr(args, "quiet", False)) and _isatty(sys.stderr)
        self.desc = desc
        self.total_fits = total_fits
        self.fits = 0
        self.bar = None
        self.init = None
        init = getattr(args, "init", None) or "kmeans"
        self.status = _Status(args, start or f"{desc}: initializing ({init})")

    def _open(self, total, unit, **kw):
        """Start the tqdm bar (imported lazily); False, and progress off, without tqdm."""
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self.enabled = False
            return False
        self.bar = tqdm(total=total, delay=1.0, file=sys.stderr, leave=False, dynamic_ncols=True, unit=unit, **kw)
        return True

    def __call__(self, info):
        if not self.enabled:
            return
        self.status.end()
        if self.bar is None and not self._open(info["max_iter"], "iter"):
            return
        if info["n_iter"] == 1 or info["init"] != self.init:
            if info["n_iter"] == 1 and info["init"] == 0:
                self.fits += 1
            self.init = info["init"]
            self.bar.reset(total=info["max_iter"])
            parts = [self.desc]
            if self.total_fits:
                parts.append(f"fit {self.fits}/{self.total_fits}")
            if info["n_init"] > 1:
                parts.append(f"restart {info['init'] + 1}/{info['n_init']}")
            self.bar.set_description(" ".join(parts), refresh=False)
        self.bar.set_postfix_str(f"loglik {info['lower_bound']:.6g}  change {info['change']:.2e}", refresh=False)
        self.bar.update(1)

    def cell(self, info):
        """``select(cell_callback=...)``: one step per finished grid cell (the
        bar of ``-j N``, whose fits run in worker processes)."""
        if not self.enabled:
            return
        self.status.end()
        if self.bar is None and not self._open(info["total"], "fit", desc=self.desc):
            return
        row = info["row"]
        self.bar.set_postfix_str(f"last K={row['n_components']} {row['covariance_type']}", refresh=False)
        self.bar.update(info["done"] - self.bar.n)

    def close(self):
        self.status.end()
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        self.status.start()
        return self

    def __exit__(self, *exc):
        self.close()


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _quiet_predict(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return fn(*a, **kw)


# ============================================================== data & model
def _read(args, expected=None, weights=True, missing=None):
    """``missing``: keep missing entries as NaN (default: ``--missing em``)."""
    from ._files import read_table, select_features

    if missing is None:
        missing = getattr(args, "missing", None) == "em"
    with _Status(args, f"reading {args.data if args.data != '-' else 'standard input'}"):
        table = read_table(args.data, delimiter=args.delimiter, header=args.header,
                           decimal=getattr(args, "decimal", None))
    for note in table.notes:
        _note(args, f"{PROG}: note: {note}")
    exclude = _split_names(args.exclude) or []
    label_col = _labels_column(args, table) if expected is None else None
    if label_col is not None:
        exclude = exclude + [label_col]
        from ._files import _resolve

        if label_col in [_resolve(table, c) for c in _split_names(args.columns) or ()]:
            raise _Err(f"--labels column {label_col!r} is also among the features (--columns); a column "
                       "cannot be both a feature and the labels")
    X, names, w = select_features(table, _split_names(args.columns), exclude,
                                  args.weights if weights else None, expected=expected, missing=missing)
    return table, X, names, w


# ------------------------------------------------------------------ --labels
# ``--labels COL`` (fit, select, report): a column of known component indices
# 0..K-1 for semi-supervised EM, ``fit(X, labels=...)`` (docs/missing.md);
# empty cells, NA and -1 are unlabelled rows. Like --weights, the column is
# never a feature.
def _labels_column(args, table):
    """The resolved name of the --labels column of ``table``, or None."""
    name = getattr(args, "labels", None)
    if name is None:
        return None
    from ._files import DataError, _resolve

    try:
        col = _resolve(table, name)
    except DataError as exc:
        raise _Err(f"--labels: {_one_line(exc)}") from None
    if args.weights is not None and _resolve(table, args.weights) == col:
        raise _Err(f"--labels and --weights name the same column {col!r}")
    return col


def _label_values(values, column, source, k_max, k_text):
    """Known labels from a column's values (float with NaN, integer, or text),
    as the library's convention: an intp array with -1 for unlabelled rows.

    Empty cells / NA (NaN) and -1 are unlabelled; every other value must be an
    integer in ``0..k_max-1``. Errors name the column, the first bad value and
    its data row (1-based, as the reader's messages)."""
    values = np.asarray(values)
    what = f"--labels column {column!r} of {source}"
    wanted = (f"labels are component indices 0..{k_max - 1} (an empty cell, NA or -1 for an unlabelled row)"
              if k_max > 1 else "labels are component index 0 (an empty cell, NA or -1 for an unlabelled row)")
    if values.dtype.kind not in "fiu":
        bad = next((i for i, v in enumerate(values) if not _integer_text(v)), 0)
        raise _Err(f"{what} holds text (data row {bad + 1}: {str(values[bad])!r}); give the known component "
                   f"as an integer: {wanted}")
    v = values.astype(np.float64)
    missing = np.isnan(v)
    bad = ~missing & ~(np.isfinite(v) & (v == np.round(v)))
    if bad.any():
        i = int(np.argmax(bad))
        raise _Err(f"{what} has a value that is not an integer at data row {i + 1}: {v[i]:g}; {wanted}")
    v = np.where(missing, -1.0, v)
    low = v < -1
    if low.any():
        i = int(np.argmax(low))
        raise _Err(f"{what} has label {v[i]:.0f} at data row {i + 1}; {wanted}")
    high = v >= k_max
    if high.any():
        i = int(np.argmax(high))
        have = f"components 0..{k_max - 1}" if k_max > 1 else "one component, 0"
        raise _Err(f"{what} has label {v[i]:.0f} at data row {i + 1}, but {k_text} has {have}: raise -k or "
                   "correct the label")
    return v.astype(np.intp)


def _integer_text(v):
    """A text cell that reads as an integer or as missing (the reader made
    the column text because of another cell)."""
    from ._files import _NA

    s = str(v).strip()
    if s.lower() in _NA:
        return True
    try:
        return float(s) == int(float(s))
    except (ValueError, OverflowError):
        return False


def _table_labels(args, table, k_max, k_text):
    """The --labels column of an in-memory ``table`` (None without --labels)."""
    col = _labels_column(args, table)
    if col is None:
        return None
    return _label_values(table.columns[col], col, table.source, k_max, k_text)


def _source_labels(args, k_max, k_text):
    """``fit --chunk-rows --labels COL``: ``(labels, column)``, the label
    column read in a first pass over the file(s) (one number per row, in the
    order the block source yields the rows), for ``fit(source,
    labels=...)``."""
    from .backends.chunked import table_source

    try:
        source, (col,) = table_source(args.data, args.chunk_rows, [args.labels])
    except ValueError as exc:
        raise _Err(f"--labels: {_one_line(exc)}") from None
    if args.weights is not None and col == table_source(args.data, args.chunk_rows, [args.weights])[1][0]:
        raise _Err(f"--labels and --weights name the same column {col!r}")
    try:
        parts = [np.asarray(b, dtype=np.float64).reshape(-1) for b in source()]
    except (ValueError, TypeError) as exc:  # pandas/pyarrow: a text cell cannot be a float
        raise _Err(f"--labels column {col!r} of {args.data} holds text ({_one_line(exc)}); give the known "
                   f"component as an integer 0..{k_max - 1} (an empty cell, NA or -1 for an unlabelled "
                   "row)") from None
    values = np.concatenate(parts) if parts else np.empty(0)
    return _label_values(values, col, args.data, k_max, k_text), col


# --------------------------------------------------------------- --init-from
# ``fit --init-from MODEL [--fixed NAMES]``: start EM from a saved Gaussian
# mixture (its weights, means and precisions become weights_init, means_init
# and precisions_init) and hold the parameters named by --fixed at those
# values (GaussianMixture(fixed=...); docs/missing.md).
def _init_model(args):
    """The --init-from model (None without it), checked against -k and
    --covariance; sets --covariance to the model's when it was not given."""
    path = getattr(args, "init_from", None)
    if path is None:
        return None
    from .families.gaussian import get_structure

    model = _load_model(path)
    if _model_family(model) is not None or _bayesian().is_bayesian(model) or not hasattr(model, "precisions_"):
        raise _Err(f"--init-from {path} is not a Gaussian mixture fitted by emix fit/select "
                   f"({type(model).__name__}); it needs weights, means and precisions to start from")
    if _scaling(model):
        raise _Err(f"--init-from {path} was fitted with --scale: its parameters are in standardized units, "
                   "not the data's; give a model fitted without --scale")
    if getattr(model, "noise_weight_", None) is not None:
        raise _Err(f"--init-from {path} has a noise component (--noise); give a model without one")
    K = int(model.n_components)
    if K != args.n_components:
        raise _Err(f"--init-from {path} has K={K} components but -k is {args.n_components}; "
                   f"use -k {K} (or a model with {args.n_components} components)")
    if args.covariance is None:
        args.covariance = model.covariance_type
    elif get_structure(args.covariance).name != get_structure(model.covariance_type).name:
        raise _Err(f"--covariance {args.covariance} differs from the covariance type "
                   f"{model.covariance_type!r} of --init-from {path} (its precisions have that structure); "
                   "leave --covariance out to use the model's")
    return model


def _init_kwargs(args, model, names, named):
    """GaussianMixture keywords of --init-from / --fixed, after checking that
    the model's features are the data's (by name when both have names)."""
    if model is None:
        return {}
    D = int(model.n_features_in_)
    own = _model_names(model)
    if len(names) != D:
        raise _Err(f"--init-from {args.init_from} has {D} feature(s) ({', '.join(own)}); the data has "
                   f"{len(names)} ({', '.join(names)}). Pick the model's features with --columns.")
    if named and hasattr(model, "feature_names_in_") and list(names) != own:
        raise _Err(f"--init-from {args.init_from} was fitted on the features {', '.join(own)}; the data's are "
                   f"{', '.join(names)}. Pick them, in that order, with --columns {','.join(own)}.")
    kw = {"weights_init": np.array(model.weights_, dtype=np.float64),
          "means_init": np.array(model.means_, dtype=np.float64),
          "precisions_init": np.array(model.precisions_, dtype=np.float64)}
    if args.fixed:
        kw["fixed"] = tuple(args.fixed)
    return kw


def _fixed_names(s):
    """--fixed: a comma list of weights, means, covariances."""
    allowed = ("weights", "means", "covariances")
    out = [t.strip().lower() for t in s.split(",") if t.strip()]
    bad = [t for t in out if t not in allowed]
    if bad or not out:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of {', '.join(allowed)}; got {s!r}")
    return list(dict.fromkeys(out))


def _dim_indices(dims, names):
    """--dims I J: feature names or 0-based positions -> positions."""
    out = []
    for d in dims:
        if d in names:
            out.append(names.index(d))
        elif d.lstrip("-").isdigit() and 0 <= int(d) < len(names):
            out.append(int(d))
        else:
            raise _Err(f"--dims takes two of the model's features, by name or 0-based position "
                       f"(0..{len(names) - 1}): {', '.join(names)}; got {d!r}")
    return out


def _model_names(model):
    scalers = _scaling(model)
    first = scalers[0] if scalers else model
    if hasattr(first, "feature_names_in_"):
        return [str(n) for n in first.feature_names_in_]
    return [f"x{j}" for j in range(model.n_features_in_)]


# ------------------------------------------------------------------ --scale
# A model fitted with --scale is saved as a scikit-learn Pipeline (scaler +
# mixture; emix.io stores it as arrays + JSON). The commands work on the
# mixture and find its scalers here: data are brought to the model's units
# (z = a x + b) before it is applied, samples back to the data's units, and
# likelihoods and criteria are of the data in its own units (the change of
# variables adds log|a| per feature and row), so that they compare with an
# unscaled fit of the same data.
_SCALING = weakref.WeakKeyDictionary()


def _scaling(model):
    """The scalers fitted before ``model`` (a list), or None."""
    try:
        return _SCALING.get(model)
    except TypeError:  # an unhashable object is never scaled
        return None


def _affine(model):
    """``(a, b)`` with model units ``z = a * x + b``, or None without scaling."""
    from .io import scaler_affine

    scalers = _scaling(model)
    if not scalers:
        return None
    a, b = np.ones(model.n_features_in_), np.zeros(model.n_features_in_)
    for sc in scalers:
        ab = scaler_affine(sc)
        if ab is not None:
            a, b = ab[0] * a, ab[0] * b + ab[1]
    return a, b


def _log_jacobian(model):
    """``sum_j log|a_j|``: added to each row's log density in model units
    gives its log density in the data's units (0 without scaling)."""
    ab = _affine(model)
    return 0.0 if ab is None else float(np.sum(np.log(np.abs(ab[0]))))


def _to_model_units(model, X):
    scalers = _scaling(model)
    if not scalers:
        return X
    X = np.asarray(X, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        for sc in scalers:
            X = np.asarray(sc.transform(X), dtype=np.float64)
    return X


def _to_data_units(model, Z):
    scalers = _scaling(model)
    if not scalers:
        return Z
    Z = np.asarray(Z, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        for sc in reversed(scalers):
            Z = np.asarray(sc.inverse_transform(Z), dtype=np.float64)
    return Z


def _scaling_word(model):
    """'standardized' for a StandardScaler that centres and scales, else 'scaled'."""
    scalers = _scaling(model) or []
    if len(scalers) == 1 and type(scalers[0]).__name__ == "StandardScaler" and scalers[0].with_mean \
            and scalers[0].with_std:
        return "standardized"
    return "scaled"


def _scaled_names(model, names):
    """Axis names in the model's units: 'waiting (standardized)'."""
    if not _scaling(model):
        return names
    return [f"{n} ({_scaling_word(model)})" for n in names]


def _dominance_note(args, X, names):
    """Without --scale: a note when one feature holds most of the variance
    (:func:`emix.plotting.dominance_hint`)."""
    if getattr(args, "scale", False) or getattr(args, "quiet", False) or X.shape[1] < 3:
        return  # two features are drawn as they are; from three, along principal axes
    from .plotting import dominance_hint

    hint = dominance_hint(X, names)
    if hint:
        _note(args, f"{PROG}: {hint.replace('; standardize (emix --scale)', '')}: add --scale to standardize "
                    "(k-means starts, spherical models and the plots' principal axes weigh features by their units)")


def _fit_scaling(args, X, w):
    """--scale: ``(StandardScaler fitted to X with the row weights, X in its
    units)``; ``(None, X)`` without --scale."""
    if not getattr(args, "scale", False):
        return None, X
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X, sample_weight=w)
    return scaler, scaler.transform(X)


def _shift_rows(rows, model, w, n):
    """Selection rows in the data's units (see the notes above ``_SCALING``)."""
    shift = _log_jacobian(model) * (n if w is None else float(np.sum(w)))
    if shift == 0.0:
        return rows
    for r in rows:
        if r.get("log_likelihood") is not None and np.isfinite(r["log_likelihood"]):
            r["log_likelihood"] += shift
            for key in ("bic", "icl", "aic"):
                if r.get(key) is not None:
                    r[key] -= 2.0 * shift
    return rows


def _expected(model):
    """The model's feature names; a model fitted without names (a headerless
    file, .npy) has the names emix gives such columns: x0, x1, ..."""
    return _model_names(model)


def _load_model(path):
    """The mixture of a model file; a Pipeline's scalers are registered for it
    (``_scaling``)."""
    from .io import _is_pipeline, load

    model = load(path)
    if _is_pipeline(model):
        scalers = [step for _, step in model.steps[:-1] if not (step is None or isinstance(step, str))]
        model = model.steps[-1][1]
        if scalers:
            _SCALING[model] = scalers
    return model


def _family_of(args):
    return getattr(args, "family", None) or "gaussian"


def _model_family(model):
    """None for a Gaussian mixture, else the model's family name."""
    from ._family_views import family_name

    return family_name(model)


def _read_for(args, model, weights=True, units="model"):
    """DATA's columns for applying ``model`` (a DataFrame of the columns'
    own types for the families that take text and categories), in the
    model's units (its --scale applied) or, ``units="data"``, as read."""
    if _model_family(model) is None:
        table, X, names, w = _read(args, expected=_expected(model), weights=weights,
                                   missing=getattr(model, "missing", "error") == "em")
    else:
        from ._cli_families import read_for_model

        table, X, names, w = read_for_model(args, model, weights=weights)
    if units == "model":
        X = _to_model_units(model, X)
    return table, X, names, w


def _save_model(model, path):
    """emix.save (atomic, with the file mode a plain open() would give); a
    model fitted with --scale is saved as the Pipeline scaler + mixture."""
    from .io import save

    scalers = _scaling(model)
    if scalers:
        from sklearn.pipeline import Pipeline

        names = ["scale"] if len(scalers) == 1 else [f"scale{i}" for i in range(len(scalers))]
        save(Pipeline(list(zip(names, scalers)) + [("mixture", model)]), path)
    else:
        save(model, path)


def _set_names(model, table, names, scaler=None):
    """Record the data's column names on the model (saved in the model file),
    as scikit-learn does for DataFrames, so `predict` can pick columns by name.
    With ``scaler`` (--scale), the names go on the scaler, the Pipeline's first
    step, and the scaler is registered for the model (``_scaling``)."""
    target = model if scaler is None else scaler
    if table is None or table.named:
        target.feature_names_in_ = np.asarray(names, dtype=object)
    elif hasattr(target, "feature_names_in_"):
        del target.feature_names_in_
    if scaler is not None:
        _SCALING[model] = [scaler]
        if hasattr(model, "feature_names_in_"):  # it sees the scaler's arrays, as in a Pipeline
            del model.feature_names_in_


def _gm_kwargs(args):
    """EM options the user gave (others keep the library's defaults, which
    differ between GaussianMixture and select)."""
    kw = {"max_iter": args.max_iter, "tol": args.tol, "reg_covar": args.reg_covar, "init_params": args.init}
    kw = {k: v for k, v in kw.items() if v is not None}
    if args.n_init is not None:
        kw["n_init"] = args.n_init
    kw.update(_mclust_kwargs(args))
    if getattr(args, "missing", None) == "em":
        kw["missing"] = "em"
    return kw


def _mclust_kwargs(args):
    """--noise, --prior, --equal-proportions, when given."""
    kw = {}
    if getattr(args, "noise", None) is not None:
        kw["noise"] = args.noise
    if getattr(args, "prior", None) is not None:
        kw["prior"] = None if args.prior == "none" else args.prior
    if getattr(args, "equal_proportions", False):
        kw["equal_proportions"] = True
    return kw


def _n_eff(X, w):
    return X.shape[0] if w is None else float(np.sum(w))


def _fit_stats(model, X, w):
    """Log-likelihood and criteria of ``X`` (in the model's units) under the
    model, of the data in its own units: a --scale model adds the change of
    variables' ``n * sum_j log|a_j|`` (``_log_jacobian``) to the
    log-likelihood, so BIC, ICL and AIC compare with an unscaled fit."""
    shift = _log_jacobian(model) * _n_eff(X, w)
    ll = float(_quiet_predict(model.score, X, sample_weight=w)) * _n_eff(X, w) + shift
    return {
        "n_rows": int(X.shape[0]),
        "log_likelihood": ll,
        "mean_log_likelihood": ll / _n_eff(X, w),
        "bic": float(_quiet_predict(model.bic, X, w)) - 2.0 * shift,
        "aic": float(_quiet_predict(model.aic, X, w)) - 2.0 * shift,
        "icl": float(_quiet_predict(model.icl, X, w)) - 2.0 * shift,
    }


def _fmt(v, width=10):
    s = f"{v:.6g}" if isinstance(v, float) else str(v)
    return s.rjust(width)


#: The summary's tables fit a terminal this wide (characters).
SUMMARY_WIDTH = 100


def _summary(model, stats=None, names=None):
    """Text summary of a fitted GaussianMixture: options, fit statistics and
    every component's weight, means and standard deviations in the data's
    units (a --scale model's parameters mapped back, ``(m - b) / a`` and
    ``sd / |a|``), for any number of features: components across, features
    down (in blocks of components) when a row per component would be wider
    than ``SUMMARY_WIDTH``."""
    K, D = model.means_.shape
    names = names or _model_names(model)
    first = (f"GaussianMixture: K={K} components, covariance '{model.covariance_type}', "
             f"{D} feature{'s' if D != 1 else ''}")
    listed = ", ".join(names)
    if len(first) + len(listed) + 3 > SUMMARY_WIDTH:  # every name is in the table below
        listed = ", ".join(names[:1]) + ", ..., " + names[-1] if D > 1 else names[0][:40]
        listed = listed if len(first) + len(listed) + 3 <= SUMMARY_WIDTH else "listed below"
    lines = [f"{first} ({listed})"]
    state = "converged" if model.converged_ else "did NOT converge (raise --max-iter or --tol)"
    lines.append(f"EM: {model.n_iter_} iterations, {state}; tol {model.tol:g}, n_init {model.n_init}")
    options = []
    if _scaling(model):
        options.append(f"{_scaling_word(model)} features (--scale, kept in the model file; "
                       "means and sds in the data's units)")
    if getattr(model, "noise_weight_", None) is not None:
        from .report import volume_text

        volume = volume_text(float(model.noise_log_volume_))
        options.append(f"noise component weight {model.noise_weight_:.4f} (hyper-volume {volume}, "
                       f"noise={model.noise!r}; label -1)")
    prior = getattr(model, "prior", None)
    if prior is not None:
        options.append(f"prior {prior!r}" if isinstance(prior, str) else "conjugate prior (custom)")
    if getattr(model, "equal_proportions", False):
        options.append("equal proportions")
    fixed = tuple(getattr(model, "fixed", ()) or ())
    if fixed:
        options.append(f"{', '.join(fixed)} held at their initial values (--fixed; not counted by BIC/AIC/ICL)")
    if options:
        lines.append("with " + "; ".join(options))
    if stats:
        lines.append(f"rows {stats['n_rows']:,}   log-likelihood {stats['log_likelihood']:.6f} "
                     f"(mean {stats['mean_log_likelihood']:.6f})")
        lines.append(f"BIC {stats['bic']:.4f}   ICL {stats['icl']:.4f}   AIC {stats['aic']:.4f}   (lower is better)")
    means, sds = _data_unit_params(model)
    lines.append("")
    lines.extend(_component_table(names, np.asarray(model.weights_, dtype=np.float64), means, sds))
    return "\n".join(lines)


def _data_unit_params(model):
    """``(means, sds)`` of shape (K, D) in the data's units."""
    from .plotting import full_covariances

    means = np.asarray(model.means_, dtype=np.float64)
    sds = np.sqrt(np.clip(np.diagonal(full_covariances(model), axis1=1, axis2=2), 0, None))
    ab = _affine(model)
    if ab is not None:
        a, b = ab
        means, sds = (means - b) / a, sds / np.abs(a)
    return means, sds


def _component_table(names, weights, means, sds, width=SUMMARY_WIDTH):
    """Lines of the component table: one row per component (weight, means,
    sds) when that fits ``width``; else features down and components across,
    the weights first, in blocks of as many components as fit."""
    K, D = means.shape
    w = max(10, *(len(n) + 2 for n in names))
    wide = 18 + (w + 5) * D + (w + 3) * D
    if wide <= width:
        out = ["component".rjust(9) + "weight".rjust(9) + "".join(("mean " + n).rjust(w + 5) for n in names)
               + "".join(("sd " + n).rjust(w + 3) for n in names)]
        for k in range(K):
            out.append(str(k).rjust(9) + f"{weights[k]:.4f}".rjust(9)
                       + "".join(f"{m:.5g}".rjust(w + 5) for m in means[k])
                       + "".join(f"{v:.4g}".rjust(w + 3) for v in sds[k]))
        return out
    name_w = min(max(len("feature"), *(len(n) for n in names)) + 2, 26)

    def label(n):
        return (n if len(n) <= name_w - 2 else n[:name_w - 5] + "...").ljust(name_w)

    col = 11
    per_block = max(1, (width - name_w) // col)
    out = []
    for title, values, fmt in (("means", means, "{:.5g}"), ("standard deviations", sds, "{:.4g}")):
        out.append(f"{title} by component (features down, components across)")
        for start in range(0, K, per_block):
            ks = range(start, min(K, start + per_block))
            out.append("component".ljust(name_w) + "".join(str(k).rjust(col) for k in ks))
            if title == "means":
                out.append("weight".ljust(name_w) + "".join(f"{weights[k]:.4f}".rjust(col) for k in ks))
            for j, n in enumerate(names):
                out.append(label(n) + "".join(fmt.format(values[k, j]).rjust(col) for k in ks))
        out.append("")
    return out[:-1]


# ================================================================ selection
def _select(X, w, ks, types, criterion, seed, gm_kwargs, args, n_jobs=None, labels=None):
    """Fit the grid with :func:`emix.selection.select`; return (best model,
    rows, best params). ``types=None`` means mclust's default models;
    ``labels``: known components (--labels), -1 for unlabelled rows."""
    from .selection import select

    serial = n_jobs in (None, 1)
    n_types = len(types) if types else (2 if X.shape[1] == 1 else 14)
    start = (f"select: initializing ({getattr(args, 'init', None) or 'hierarchical'})" if serial
             else f"select: {len(ks) * n_types} fits in parallel (-j {n_jobs}; small grids stay in this process)")
    progress = _Progress(args, desc="select", total_fits=len(ks) * n_types, start=start)
    # a tqdm bar cannot travel to worker processes: with -j N it counts
    # finished grid cells in this process instead of EM iterations
    extra = {"callback": progress} if serial else {"cell_callback": progress.cell}
    with progress:
        res = select(X, n_components=ks, covariance_types=types, criterion=criterion, sample_weight=w,
                     random_state=seed, n_jobs=n_jobs, labels=labels, **extra, **gm_kwargs)
    best = res.best_
    best.set_params(callback=None)
    return best, [dict(r) for r in res.rows], dict(res.best_params_)


def _selection_table(rows, criterion, best, per_block=7):
    """mclust-style table of the criterion: K down, covariance types across
    (in blocks of ``per_block`` columns to fit a terminal)."""
    key = criterion.lower()
    types = list(dict.fromkeys(r["covariance_type"] for r in rows))
    ks = sorted({r["n_components"] for r in rows})
    by = {(r["n_components"], r["covariance_type"]): r for r in rows}
    width = max(11, *(len(t) + 3 for t in types))
    lines = [f"{key.upper()} by K and covariance type (lower is better; * chosen, ! failed, "
             "s singular: not ranked, ~ not converged)"]
    for start in range(0, len(types), per_block):
        block = types[start:start + per_block]
        lines.append("K".rjust(4) + "".join(t.rjust(width) for t in block))
        for k in ks:
            cells = []
            for t in block:
                r = by.get((k, t))
                if r is None:
                    cells.append("".rjust(width))
                elif r.get("error"):
                    cells.append("!".rjust(width))
                elif r.get("singular"):
                    cells.append("s".rjust(width))
                else:
                    mark = "*" if (k, t) == (best["n_components"], best["covariance_type"]) else (
                        "~" if r.get("converged") is False else " ")
                    cells.append((f"{r[key]:.2f}" + mark).rjust(width))
            lines.append(str(k).rjust(4) + "".join(cells))
    failed = [r for r in rows if r.get("error")]
    for r in failed[:5]:
        lines.append(f"  ! K={r['n_components']} {r['covariance_type']}: {r['error']}")
    if len(failed) > 5:
        lines.append(f"  ! ... and {len(failed) - 5} more failures")
    singular = [r for r in rows if r.get("singular") and not r.get("error")]
    for r in singular[:5]:  # emix._singular: at the reg_covar floor or too few points
        lines.append(f"  s K={r['n_components']} {r['covariance_type']}: singular, {r['singular']}")
    if len(singular) > 5:
        lines.append(f"  s ... and {len(singular) - 5} more singular fits")
    return "\n".join(lines)


# ================================================================= commands
def cmd_fit(args):
    from . import GaussianMixture
    from ._files import check_writable

    check_writable(args.output, args.force)
    if getattr(args, "bayesian", False):
        return _bayesian().fit(args)
    if _family_of(args) != "gaussian":
        from ._cli_families import fit

        return fit(args)
    init = _init_model(args)
    if args.covariance is None:
        args.covariance = "full"
    if getattr(args, "chunk_rows", None) or getattr(args, "scheduler", None):
        return _cmd_fit_out_of_core(args, init)
    table, X, names, w = _read(args)
    labels = _table_labels(args, table, args.n_components, f"-k {args.n_components}")
    init_kw = _init_kwargs(args, init, names, table.named)
    _dominance_note(args, X, names)
    scaler, X = _fit_scaling(args, X, w)
    with _Progress(args) as progress:
        model = GaussianMixture(args.n_components, covariance_type=args.covariance, random_state=args.seed,
                                callback=progress, n_jobs=args.jobs, **_gm_kwargs(args), **init_kw)
        model.fit(X, sample_weight=w, labels=labels)
    model.set_params(callback=None)
    _set_names(model, table, names, scaler)
    check_writable(args.output, args.force)
    _save_model(model, args.output)
    if not args.quiet:
        print(_summary(model, _fit_stats(model, X, w), names))
    _note(args, f"wrote {args.output}")
    return 0


def _dask_table(path, address, columns, exclude, weights):
    """DATA read by the workers of the Dask cluster at ``address``."""
    import dask.dataframe as dd
    from distributed import Client

    client = Client(address)
    try:
        lower = path.lower()
        if os.path.isdir(path) or lower.endswith((".parquet", ".parq", ".pq")):
            df = dd.read_parquet(path)
        else:
            df = dd.read_csv(path)
        all_names = [str(c) for c in df.columns]

        def resolve(c):
            if c in all_names:
                return c
            if c.isdigit() and int(c) < len(all_names):
                return all_names[int(c)]
            raise ValueError(f"no column {c!r} in {path}; its columns are {all_names}")

        w_name = None if weights is None else resolve(weights)
        drop = {resolve(c) for c in exclude} | ({w_name} if w_name else set())
        names = [resolve(c) for c in columns] if columns else [c for c in all_names if c not in drop]
        if w_name is None:
            return df[names].astype("float64"), None, names, client.close
        # one array for features and weights, so both have the same row chunks
        both = df[names + [w_name]].astype("float64").to_dask_array(lengths=True)
        return both[:, :-1], both[:, -1], names, client.close
    except BaseException:
        client.close()
        raise


def _cmd_fit_out_of_core(args, init=None):
    """``emix fit --chunk-rows/--scheduler``: the data is never loaded whole;
    each EM iteration is one pass over the file(s) or the cluster's blocks
    (``--labels``: the label column is read in a first pass of its own)."""
    from . import GaussianMixture
    from ._files import check_writable
    from .io import save

    columns, exclude = _split_names(args.columns), list(_split_names(args.exclude) or ())
    labels = None
    if getattr(args, "labels", None) is not None:  # --chunk-rows (--scheduler is refused)
        labels, label_col = _source_labels(args, args.n_components, f"-k {args.n_components}")
        exclude.append(label_col)
    if args.scheduler:
        data, w, names, close = _dask_table(args.data, args.scheduler, columns, exclude, args.weights)
    else:
        from .backends.chunked import table_source

        data, names = table_source(args.data, args.chunk_rows, columns, exclude, args.weights)
        w, close = None, (lambda: None)
        if labels is not None and label_col in names:
            raise _Err(f"--labels column {label_col!r} is also among the features (--columns); a column "
                       "cannot be both a feature and the labels")
    try:
        init_kw = _init_kwargs(args, init, names, not str(args.data).lower().endswith(".npy"))
        with _Progress(args) as progress:
            model = GaussianMixture(args.n_components, covariance_type=args.covariance, random_state=args.seed,
                                    callback=progress, **_gm_kwargs(args), **init_kw)
            model.fit(data, sample_weight=w, labels=labels)
    finally:
        close()
    model.set_params(callback=None)
    model.feature_names_in_ = np.asarray(names, dtype=object)
    check_writable(args.output, args.force)
    save(model, args.output)
    if not args.quiet:
        print(_summary(model, None, names))
        print(f"mean log-likelihood {model.lower_bound_:.6f} (entering the last EM iteration)")
    _note(args, f"wrote {args.output}")
    return 0


def cmd_predict(args):
    from ._files import check_writable, write_table

    check_writable(args.output, args.force)
    model = _load_model(args.model)
    table, X, names, _ = _read_for(args, model, weights=False)
    resp = _quiet_predict(model.predict_proba, X)
    K = int(model.n_components)
    noise = resp.shape[1] > K  # a noise model's last column is the noise
    cols = dict(table.columns)

    def fresh(name):
        while name in cols:
            name = name + "_"
        return name

    best = np.argmax(resp, axis=1)
    labels = model._labels(resp) if hasattr(model, "_labels") else best  # GaussianMixture's: noise is -1
    cols[fresh(args.label_column)] = labels
    cols[fresh("probability")] = resp.max(axis=1)
    if args.all_probabilities:
        for k in range(K):
            cols[fresh(f"p{k}")] = resp[:, k]
        if noise:
            cols[fresh("p_noise")] = resp[:, K]
    if args.log_likelihood:
        cols[fresh("log_density")] = _quiet_predict(model.score_samples, X)
    write_table(args.output, cols, force=args.force)
    if args.output != "-":
        counts = np.bincount(best, minlength=resp.shape[1])
        parts = [f"{k}: {c:,}" for k, c in enumerate(counts[:K])]
        if noise:
            parts.append(f"noise (-1): {counts[K]:,}")
        _note(args, f"wrote {args.output}: {X.shape[0]:,} rows; rows per component: " + ", ".join(parts))
    return 0


def cmd_impute(args):
    """``emix impute MODEL DATA``: DATA with each missing entry of the
    model's features replaced by its conditional expectation under the model
    (:meth:`emix.GaussianMixture.impute`); observed entries are written as
    read."""
    from ._files import check_writable, write_table

    check_writable(args.output, args.force)
    model = _load_model(args.model)
    if _model_family(model) is not None or getattr(model, "missing", "error") != "em":
        raise _Err(f"{args.model} was not fitted with --missing em: impute needs a Gaussian mixture that "
                   "handles missing values (emix fit --missing em ...)")
    table, X, names, _ = _read_for(args, model, weights=False, units="data")
    filled = _to_data_units(model, _quiet_predict(model.impute, _to_model_units(model, X)))
    miss = np.isnan(X)
    out = np.where(miss, filled, X)
    cols = dict(table.columns)
    for j, n in enumerate(names):
        cols[n] = out[:, j]
    write_table(args.output, cols, force=args.force)
    if args.output != "-":
        _note(args, f"wrote {args.output}: {int(miss.sum()):,} missing entries filled in "
                    f"{int(miss.any(axis=1).sum()):,} rows")
    return 0


def _grid_labels(args, table):
    """select/report --labels: labels below the largest K of the grid (cells
    with K not above the largest label are 'not applicable' in the table)."""
    k_max = max(args.n_components)
    return _table_labels(args, table, k_max, f"K={k_max}, the largest K tried,")


def cmd_select(args):
    from ._files import check_writable, write_table

    if _family_of(args) != "gaussian":
        from ._cli_families import select_cmd

        return select_cmd(args)
    for out in (args.output, args.plot, args.table):
        check_writable(out, args.force)
    table, X, names, w = _read(args)
    labels = _grid_labels(args, table)
    _dominance_note(args, X, names)
    scaler, X = _fit_scaling(args, X, w)
    model, rows, best = _select(X, w, args.n_components, args.covariance, args.criterion, args.seed,
                                _gm_kwargs(args), args, n_jobs=args.jobs, labels=labels)
    _set_names(model, table, names, scaler)
    rows = _shift_rows(rows, model, w, X.shape[0])
    if not args.quiet:
        print(_selection_table(rows, args.criterion, best))
        print()
        print("chosen: K={n_components}, covariance '{covariance_type}'".format(**best))
        print(_summary(model, _fit_stats(model, X, w), names))
    if args.output:
        check_writable(args.output, args.force)
        _save_model(model, args.output)
        _note(args, f"wrote {args.output}")
    if args.table:
        keys = ["n_components", "covariance_type", "log_likelihood", "n_parameters", "bic", "icl", "aic",
                "converged", "n_iter", "error", "singular"]
        cols = {k: np.asarray([("" if r.get(k) is None else r.get(k)) for r in rows],
                              dtype=object if k in ("covariance_type", "error", "converged", "singular") else None)
                for k in keys}
        cols = {k: (v.astype(str).astype(object) if v.dtype == object else v) for k, v in cols.items()}
        write_table(args.table, cols, force=args.force)
        _note(args, f"wrote {args.table}")
    if args.plot:
        from . import plotting as P

        fig = P.new_figure(figsize=(7.2, 4.8))
        P.plot_criterion(rows, args.criterion, ax=fig.add_subplot(1, 1, 1), best=best)
        fig.tight_layout()
        P.save_figure(fig, args.plot, force=args.force)
        _note(args, f"wrote {args.plot}")
    return 0


def cmd_sample(args):
    from ._files import check_writable, write_table

    check_writable(args.output, args.force)
    model = _load_model(args.model)
    if args.seed is not None:
        model.set_params(random_state=args.seed)
    X, y = model.sample(args.n_samples)
    X = _to_data_units(model, X)
    names = _model_names(model)
    if _model_family(model) is None:
        cols = {n: X[:, j] for j, n in enumerate(names)}
    else:
        from ._cli_families import sample_columns

        cols = sample_columns(model, X, names)
    cols["component" if "component" not in cols else "component_"] = y
    write_table(args.output, cols, force=args.force)
    if args.output != "-":
        _note(args, f"wrote {args.output}: {args.n_samples:,} rows")
    return 0


def cmd_score(args):
    model = _load_model(args.model)
    if _bayesian().is_bayesian(model):
        return _bayesian().score(args, model)
    _, X, names, w = _read_for(args, model)
    stats = _fit_stats(model, X, w)
    if args.json:
        print(json.dumps(stats, indent=1))
    else:
        print(f"rows                 {stats['n_rows']:,}")
        print(f"log-likelihood       {stats['log_likelihood']:.6f}")
        print(f"mean log-likelihood  {stats['mean_log_likelihood']:.6f}")
        print(f"BIC                  {stats['bic']:.6f}")
        print(f"ICL                  {stats['icl']:.6f}")
        print(f"AIC                  {stats['aic']:.6f}")
    return 0


def cmd_info(args):
    model = _load_model(args.model)
    if _bayesian().is_bayesian(model):
        return _bayesian().info(args, model)
    if _model_family(model) is not None:
        from . import _cli_families as F

        if args.json:
            print(json.dumps(F.info_json(model), indent=1))
        else:
            print(f"model file: {args.model}")
            print(F.summary(model))
            print(f"mean log-likelihood {model.lower_bound_:.6f} (lower_bound_: entering the last EM iteration)")
        return 0
    if args.json:
        info = {
            "n_components": int(model.n_components), "covariance_type": model.covariance_type,
            "n_features": int(model.n_features_in_), "feature_names": _model_names(model),
            "weights": model.weights_.tolist(), "means": model.means_.tolist(),
            "covariances": model.covariances_.tolist(), "converged": bool(model.converged_),
            "n_iter": int(model.n_iter_), "lower_bound": float(model.lower_bound_),
            "params": {k: v for k, v in model.get_params().items()
                       if isinstance(v, (int, float, str, bool, type(None)))},
        }
        if getattr(model, "noise_weight_", None) is not None:
            info["noise_weight"] = float(model.noise_weight_)
            info["noise_log_volume"] = float(model.noise_log_volume_)
        ab = _affine(model)
        if ab is not None:
            info["scaling"] = {"steps": [type(sc).__name__ for sc in _scaling(model)],
                               "slope": ab[0].tolist(), "intercept": ab[1].tolist(),
                               "note": "means and covariances are of z = slope * x + intercept"}
        prior = model.prior
        if prior is not None and not isinstance(prior, str):
            info["params"]["prior"] = {"mean": np.asarray(prior.mean).tolist(), "shrinkage": float(prior.shrinkage),
                                       "dof": float(prior.dof), "scale": np.asarray(prior.scale).tolist()}
        print(json.dumps(info, indent=1))
    else:
        print(f"model file: {args.model}")
        print(_summary(model))
        print(f"mean log-likelihood {model.lower_bound_:.6f} (lower_bound_: entering the last EM iteration)")
    return 0


_PLOT_KINDS = ("clusters", "uncertainty", "convergence")
#: plots of other families: latent classes, Poisson rates, Student-t outliers
_FAMILY_PLOT_KINDS = ("probabilities", "rates", "outliers")


def cmd_plot(args):
    from . import plotting as P
    from ._files import check_writable

    check_writable(args.output, args.force)
    model = _load_model(args.model)
    if args.dims:
        args.dims = _dim_indices(args.dims, _model_names(model))
    if _model_family(model) is not None:
        from ._cli_families import plot

        return plot(args, model)
    if args.kind in _FAMILY_PLOT_KINDS:
        raise _Err(f"--kind {args.kind} is for other families than gaussian; a Gaussian mixture's plots are "
                   f"{', '.join(_PLOT_KINDS)}")
    args.kind = args.kind or "clusters"
    if args.kind == "convergence" and _bayesian().is_bayesian(model):
        return _bayesian().plot_convergence(args, model)
    if args.kind != "convergence" and args.data is None:
        raise _Err(f"--kind {args.kind} needs the DATA file")
    X = names = None
    if args.data is not None:
        _, X, names, _ = _read_for(args, model, weights=False)
        X, _ = _complete_rows(args, X, None, "plot")
        names = _scaled_names(model, names)
    D = model.n_features_in_
    dims = tuple(args.dims) if args.dims else None
    if dims and any(not 0 <= d < D for d in dims):
        raise _Err(f"--dims must be two feature indices in 0..{D - 1}; got {args.dims}")
    if args.kind == "convergence":
        fig = P.new_figure(figsize=(7.2, 4.2))
        P.plot_convergence(model, ax=fig.add_subplot(1, 1, 1))
        fig.tight_layout()
    elif args.kind == "uncertainty":
        if D < 2:
            raise _Err("the uncertainty plot needs at least 2 features")
        fig = P.new_figure(figsize=(7.2, 5.4))
        P.plot_uncertainty(model, X, ax=fig.add_subplot(1, 1, 1), dims=dims, feature_names=names,
                           max_points=args.max_points, projection="pca" if (D > 2 and not dims) else None)
        fig.tight_layout()
    elif dims is not None:
        K = model.n_components
        fig = P.new_figure(figsize=(8.6, 5.8) if K > 8 else (7.2, 5.6))
        P.plot_clusters(model, X, ax=fig.add_subplot(1, 1, 1), dims=dims, feature_names=names,
                        max_points=args.max_points)
        fig.tight_layout()
    else:
        fig = P.plot_model(model, X, feature_names=names, max_points=args.max_points)
    P.save_figure(fig, args.output, force=args.force, dpi=args.dpi)
    _note(args, f"wrote {args.output}")
    return 0


def _write_report(path, model, X, names, source, rows, criterion, best, w, command, force):
    from ._files import atomic_output
    from .report import build_report

    scalers = _scaling(model) if _model_family(model) is None else None
    text = build_report(model, X, feature_names=names, source=source, selection_rows=rows, criterion=criterion,
                        best=best, sample_weight=w, command=command, scaler=scalers)
    with atomic_output(path, force, mode="w") as fh:
        fh.write(text)


def _complete_rows(args, X, w, what):
    """``(X, w)`` restricted to the rows with every feature observed, for
    plots and reports, which draw points (a fit with --missing em used every
    row; the note says how many are not drawn)."""
    if X is None or not np.issubdtype(np.asarray(X).dtype, np.floating):
        return X, w
    keep = ~np.isnan(X).any(axis=1)
    if keep.all():
        return X, w
    if not keep.any():
        raise _Err(f"no row of {args.data} has every feature observed: nothing to draw in the {what}")
    _note(args, f"{PROG}: note: the {what} shows the {int(keep.sum()):,} rows with every feature observed "
                f"({int((~keep).sum()):,} rows with missing values are left out of it)")
    return X[keep], (None if w is None else w[keep])


def cmd_report(args):
    from ._files import check_writable

    check_writable(args.output, args.force)
    if args.model:
        model = _load_model(args.model)
        # a Gaussian mixture's report maps a --scale model back to the data's units itself
        table, X, names, w = _read_for(args, model, units="data" if _model_family(model) is None else "model")
        rows, best = None, None
    elif _family_of(args) != "gaussian":
        from . import _cli_families as F

        table, X, names, w = F.read(args, _family_of(args))
        model, rows, best = F.run_select(args, X, w, names)
        if _family_of(args) not in F.RAW:
            _set_names(model, table, names)
    else:
        table, X, names, w = _read(args)
        labels = _grid_labels(args, table)
        _dominance_note(args, X, names)
        scaler, Z = _fit_scaling(args, X, w)
        model, rows, best = _select(Z, w, args.n_components, args.covariance, args.criterion, args.seed,
                                    _gm_kwargs(args), args, n_jobs=args.jobs, labels=labels)
        _set_names(model, table, names, scaler)
        rows = _shift_rows(rows, model, w, X.shape[0])
    X, w = _complete_rows(args, X, w, "report")
    command = " ".join(shlex.quote(a) for a in [PROG] + list(args.argv))
    _write_report(args.output, model, X, names, args.data if args.data != "-" else "<stdin>", rows,
                  args.criterion, best, w, command, args.force)
    _note(args, f"wrote {args.output}")
    return 0


def cmd_demo(args):
    from . import plotting as P
    from ._files import DataError, check_writable
    from .datasets import load_faithful

    out = args.output
    files = {k: os.path.join(out, f) for k, f in (
        ("model", "faithful.emix"), ("clusters", "clusters.png"), ("uncertainty", "uncertainty.png"),
        ("criterion", "criterion.png"), ("convergence", "convergence.png"), ("report", "report.html"))}
    if os.path.exists(out) and not os.path.isdir(out):
        raise DataError(f"{out} exists and is not a folder")
    os.makedirs(out, exist_ok=True)
    for p in files.values():
        check_writable(p, args.force)
    X, names = load_faithful()
    model, rows, best = _select(X, None, args.n_components, args.covariance, args.criterion, args.seed,
                                {}, args, n_jobs=args.jobs)
    model.feature_names_in_ = np.asarray(names, dtype=object)
    _save_model(model, files["model"])

    fig = P.plot_model(model, X, feature_names=names)
    fig.axes[0].set_title(f"Old Faithful: {best['n_components']} components, covariance "
                          f"'{best['covariance_type']}' (chosen by {args.criterion.upper()})")
    P.save_figure(fig, files["clusters"], force=args.force)
    fig = P.new_figure(figsize=(7.2, 5.4))
    P.plot_uncertainty(model, X, ax=fig.add_subplot(1, 1, 1), feature_names=names)
    fig.tight_layout()
    P.save_figure(fig, files["uncertainty"], force=args.force)
    fig = P.new_figure(figsize=(7.2, 4.8))
    P.plot_criterion(rows, args.criterion, ax=fig.add_subplot(1, 1, 1), best=best)
    fig.tight_layout()
    P.save_figure(fig, files["criterion"], force=args.force)
    fig = P.new_figure(figsize=(7.2, 4.2))
    P.plot_convergence(model, ax=fig.add_subplot(1, 1, 1))
    fig.tight_layout()
    P.save_figure(fig, files["convergence"], force=args.force)
    _write_report(files["report"], model, X, names, "Old Faithful geyser (emix.datasets.load_faithful)",
                  rows, args.criterion, best, None, " ".join([PROG] + list(args.argv)), args.force)
    if not args.quiet:
        print("Old Faithful geyser: 272 eruptions, duration (min) and waiting time (min).")
        print(_selection_table(rows, args.criterion, best))
        print()
        print(_summary(model, _fit_stats(model, X, None), names))
        print()
        print(f"wrote into {os.path.abspath(out)}:")
        for p in files.values():
            print(f"  {p}")
        print(f"open {files['report']} in a browser; try: emix info {files['model']}")
    return 0


# =================================================================== parser
class _HelpFormatter(argparse.HelpFormatter):
    """Fills ``{structures}`` in a help text only when the help is printed, so
    that building the parser (``emix --version``, any command) imports no
    model code."""

    def _get_help_string(self, action):
        text = super()._get_help_string(action)
        if text and "{structures}" in text:
            text = text.replace("{structures}", ", ".join(_structures()))
        return text


class _Parser(argparse.ArgumentParser):
    """ArgumentParser with :class:`_HelpFormatter` (its subparsers too)."""

    def __init__(self, *args, formatter_class=_HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("general")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar, summary or notes")
    g.add_argument("--debug", action="store_true", help="show the full traceback on errors")

    force = argparse.ArgumentParser(add_help=False)
    force.add_argument("-f", "--force", action="store_true", help="replace existing output files")

    data = argparse.ArgumentParser(add_help=False)
    d = data.add_argument_group("data file")
    d.add_argument("--columns", action="append", metavar="COL[,COL...]",
                   help="feature columns, by name or 0-based index (default: all but --exclude/--weights)")
    d.add_argument("--exclude", action="append", metavar="COL[,COL...]",
                   help="columns to leave out (ids, text labels)")
    d.add_argument("--weights", metavar="COL", help="column of non-negative sample weights")
    d.add_argument("--delimiter", help="CSV field separator (default: detected; \\t for TSV)")
    d.add_argument("--decimal", choices=[".", ","], default=None,
                   help="decimal mark of the numbers in a CSV file: , for 14,23 and 1.234,5 (default: , "
                        "when fields are separated by ';', else .; thousands separators like \"1,065\" are read)")
    h = d.add_mutually_exclusive_group()
    h.add_argument("--header", dest="header", action="store_const", const=True, default=None,
                   help="the first line is a header (default: detected)")
    h.add_argument("--no-header", dest="header", action="store_const", const=False,
                   help="the first line is data")

    em = argparse.ArgumentParser(add_help=False)
    e = em.add_argument_group("EM")
    e.add_argument("--n-init", type=_positive_int, default=None, help="restarts; the best is kept (default 1)")
    e.add_argument("--max-iter", type=_positive_int, default=None, help="EM iterations per restart (default 100; select/report: 1000)")
    e.add_argument("--tol", type=_nonneg_float, default=None,
                   help="stop when the mean log-likelihood gains less (default 1e-3; select/report: 1e-5)")
    e.add_argument("--reg-covar", type=_nonneg_float, default=None,
                   help="added to covariance diagonals (default 1e-6)")
    e.add_argument("--init", default=None,
                   choices=["kmeans", "k-means++", "random", "random_from_data", "hierarchical"],
                   help="initialization (default kmeans; select/report: hierarchical, as mclust)")
    e.add_argument("--seed", type=int, default=None, help="random seed for reproducible fits")
    e.add_argument("--missing", choices=["error", "em"], default=None,
                   help="em: empty cells, NA, NaN... are missing values handled inside EM (Gaussian "
                        "mixtures; the model file keeps it, so predict/score/impute take such rows); "
                        "error: they are an error (the default)")
    e.add_argument("--labels", default=None, metavar="COL",
                   help="column of known components 0..K-1 for some rows (an empty cell, NA or -1: unlabelled): "
                        "semi-supervised EM, those rows' responsibilities fixed to their label; like --weights, "
                        "the column is not a feature (Gaussian mixtures)")
    e.add_argument("--scale", action="store_true",
                   help="standardize each feature, (x - mean) / sd (weighted by --weights), before fitting; "
                        "the standardization is saved in the model file (a scaler + mixture pipeline) and "
                        "predict, score, sample and plot apply it; likelihoods and criteria stay those of "
                        "the data in its own units")

    mc = argparse.ArgumentParser(add_help=False)
    m = mc.add_argument_group("mclust options")
    m.add_argument("--noise", type=_noise, default=None, metavar="box|V",
                   help="add a uniform noise component for outliers (predict labels its rows -1): box = "
                        "the bounding box of the data (mclust's default), or its hyper-volume V > 0")
    m.add_argument("--prior", choices=["default", "none"], default=None,
                   help="default: MAP fit under mclust's default conjugate prior; none: maximum "
                        "likelihood (the default)")
    m.add_argument("--equal-proportions", action="store_true",
                   help="constrain the components' mixing weights to be equal (mclust's equalPro)")

    sel = argparse.ArgumentParser(add_help=False)
    s = sel.add_argument_group("model selection")
    s.add_argument("-k", "--n-components", type=_k_range, default=list(range(1, 10)), metavar="K",
                   help="numbers of components to try: 3, 1..9, 2,4,6 (default 1..9; demo: 1..6)")
    s.add_argument("--covariance", type=_covariance_list, default=None, metavar="all|sklearn|LIST",
                   help="covariance types to try, comma-separated; all = mclust's 14 models (E, V for "
                        "one feature), the default; sklearn = full,tied,diag,spherical")
    s.add_argument("--criterion", choices=["bic", "icl", "aic"], default="bic", help="(default bic)")
    s.add_argument("-j", "--jobs", type=_jobs, default=None,
                   help="worker processes for the grid (-1: all cores; default 1; demo: -1); the progress bar counts "
                        "EM iterations with 1, finished fits otherwise")

    from . import __version__

    p = _Parser(
        prog=PROG, description="Gaussian mixtures fitted by EM: fit, predict, select, plot and report.",
        epilog="Start with: emix demo.  Help on a command: emix COMMAND --help.", parents=[common])
    p.add_argument("--version", action="version", version=f"emix {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = sub.add_parser("fit", parents=[common, force, data, em, mc], help="fit a mixture and save the model",
                       description="Fit a Gaussian mixture to DATA, print a summary and write the model file.")
    c.add_argument("data", metavar="DATA", help="CSV/TSV/Parquet/.npy/.npz file, or - for stdin")
    c.add_argument("-k", "--n-components", type=_positive_int, required=True, metavar="K",
                   help="number of components")
    c.add_argument("--covariance", type=_covariance, default=None, metavar="TYPE",
                   help="covariance structure: {structures} (default full)")
    c.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write")
    _family_options(c)
    _bayesian().add_options(c)
    c.add_argument("-j", "--jobs", type=_jobs, default=None,
                   help="run the --n-init restarts in this many worker processes (-1: all cores; "
                        "default 1); the fit is the same whatever the number")
    known = c.add_argument_group("known parameters")
    known.add_argument("--init-from", default=None, metavar="MODEL",
                       help="start EM from this model file's weights, means and precisions (a Gaussian "
                            "mixture with the same K and features; its covariance type is the default)")
    known.add_argument("--fixed", type=_fixed_names, default=None, metavar="NAMES",
                       help="hold these parameters at the --init-from values: a comma list of weights, "
                            "means, covariances (BIC/AIC/ICL count only the free parameters)")
    big = c.add_argument_group("larger than memory")
    big.add_argument("--chunk-rows", type=_positive_int, default=None, metavar="N",
                     help="fit out of core, reading N rows at a time; DATA: a Parquet file or folder, "
                          "a CSV file or glob ('part-*.csv'), or .npy file(s)")
    big.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="fit on a running Dask cluster (e.g. tcp://host:8786); the workers read DATA "
                          "(a Parquet folder or a CSV glob they can reach)")
    c.set_defaults(func=cmd_fit, _parser=c)

    c = sub.add_parser("predict", parents=[common, force, data], help="label the rows of a data file",
                       description="Write DATA's rows with the most probable component (label) and its "
                                   "probability; optionally every responsibility and the log density.")
    c.add_argument("model", metavar="MODEL")
    c.add_argument("data", metavar="DATA")
    c.add_argument("-o", "--output", default="-", metavar="OUT",
                   help="output file (.csv/.tsv/.parquet/.npy/.npz; - for stdout, the default)")
    c.add_argument("-a", "--all-probabilities", action="store_true", help="add p0..pK-1, every responsibility")
    c.add_argument("--log-likelihood", action="store_true",
                   help="add log_density, each row's log density (low = outlier)")
    c.add_argument("--label-column", default="label", help="name of the label column (default label)")
    c.set_defaults(func=cmd_predict)

    c = sub.add_parser("select", parents=[common, force, data, em, mc, sel],
                       help="choose K and the covariance type by BIC/ICL",
                       description="Fit every (K, covariance type) of the grid, print the criterion "
                                   "table and the chosen model; optionally save it, the table and a plot.")
    c.add_argument("data", metavar="DATA")
    c.add_argument("-o", "--output", metavar="MODEL", help="write the chosen model")
    c.add_argument("--plot", metavar="FIG", help="write the criterion curves (.png/.svg/.pdf)")
    c.add_argument("--table", metavar="OUT", help="write the grid as a table (.csv/...)")
    _family_options(c)
    c.set_defaults(func=cmd_select, _parser=c)

    c = sub.add_parser("impute", parents=[common, force, data], help="fill the missing values of a data file",
                       description="Write DATA with each missing entry (empty, NA, NaN...) of the model's "
                                   "features replaced by its conditional expectation under the model (a "
                                   "Gaussian mixture fitted with --missing em); observed entries stay as read.")
    c.add_argument("model", metavar="MODEL")
    c.add_argument("data", metavar="DATA")
    c.add_argument("-o", "--output", default="-", metavar="OUT",
                   help="output file (.csv/.tsv/.parquet/.npy/.npz; - for stdout, the default)")
    c.set_defaults(func=cmd_impute)

    c = sub.add_parser("sample", parents=[common, force], help="draw rows from a model")
    c.add_argument("model", metavar="MODEL")
    c.add_argument("-n", "--n-samples", type=_positive_int, required=True, metavar="N")
    c.add_argument("-o", "--output", default="-", metavar="OUT", help="output file (default: stdout, CSV)")
    c.add_argument("--seed", type=int, default=None)
    c.set_defaults(func=cmd_sample)

    c = sub.add_parser("score", parents=[common, data], help="log-likelihood, BIC, ICL, AIC of a model on data")
    c.add_argument("model", metavar="MODEL")
    c.add_argument("data", metavar="DATA")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=cmd_score)

    c = sub.add_parser("info", parents=[common], help="describe a model file")
    c.add_argument("model", metavar="MODEL")
    c.add_argument("--json", action="store_true", help="print JSON (all parameters)")
    c.set_defaults(func=cmd_info)

    c = sub.add_parser("plot", parents=[common, force, data], help="draw a model with its data",
                       description="clusters: points, 1σ/2σ ellipses and density contours (1 feature: "
                                   "histogram; 3-5: pair plot; more: first two principal axes); "
                                   "uncertainty; convergence (needs no DATA). Criterion curves: emix select --plot.")
    c.add_argument("model", metavar="MODEL")
    c.add_argument("data", metavar="DATA", nargs="?")
    c.add_argument("-o", "--output", required=True, metavar="FIG", help=".png, .svg or .pdf")
    c.add_argument("--kind", choices=_PLOT_KINDS + _FAMILY_PLOT_KINDS, default=None,
                   help="(default: clusters for a Gaussian mixture; outliers for student_t, probabilities for "
                        "categorical/bernoulli/mixed, rates for poisson: class-conditional probabilities as a "
                        "heat map, rates per component, points coloured by their Student-t scale weight)")
    c.add_argument("--dims", nargs=2, metavar=("I", "J"),
                   help="draw these two features, by name or 0-based position (as --columns)")
    c.add_argument("--max-points", type=_positive_int, default=20000,
                   help="draw at most this many points (default 20000)")
    c.add_argument("--dpi", type=_positive_int, default=None)
    c.set_defaults(func=cmd_plot)

    c = sub.add_parser("report", parents=[common, force, data, em, mc, sel], help="self-contained HTML report",
                       description="Select (or load with --model) a mixture for DATA and write one HTML "
                                   "file with the data summary, selection table, parameters and plots.")
    c.add_argument("data", metavar="DATA")
    c.add_argument("--model", metavar="MODEL", help="report on this model instead of selecting one")
    c.add_argument("-o", "--output", required=True, metavar="HTML")
    _family_options(c)
    c.set_defaults(func=cmd_report, _parser=c)

    c = sub.add_parser("demo", parents=[common, force, sel], help="fit Old Faithful; write plots and a report",
                       description="Select a mixture for the Old Faithful data shipped with emix and write "
                                   "the model, four plots and report.html into a folder.")
    c.add_argument("-o", "--output", default="emix-demo", metavar="DIR", help="folder (default ./emix-demo)")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=cmd_demo, n_components=list(range(1, 7)), jobs=-1)
    return p


def _family_options(parser):
    from ._cli_families import add_options

    add_options(parser)


def _bayesian():
    """:mod:`emix._cli_bayesian`: ``fit --bayesian`` and Bayesian model files."""
    from . import _cli_bayesian

    return _cli_bayesian


# ===================================================================== main
def _check_combinations(args):
    """Option combinations argparse cannot check: a usage error (exit 2)."""
    known = [o for o, on in (("--labels", getattr(args, "labels", None) is not None),
                             ("--init-from", getattr(args, "init_from", None) is not None),
                             ("--fixed", getattr(args, "fixed", None) is not None)) if on]
    if known:
        fam = getattr(args, "family", None)
        if fam not in (None, "gaussian") or (getattr(args, "family_map", None) and fam is None):
            args._parser.error(f"{' and '.join(known)} {'is' if len(known) == 1 else 'are'} for Gaussian "
                               f"mixtures, not --family {fam or 'mixed'}")
        if getattr(args, "bayesian", False):
            args._parser.error(f"{' and '.join(known)} cannot be combined with --bayesian")
    if hasattr(args, "bayesian"):
        _bayesian().check_args(args, args._parser)
    if hasattr(args, "family"):
        from ._cli_families import check_args

        check_args(args, args._parser)
        if _family_of(args) != "gaussian":
            return
    _check_known(args)
    if getattr(args, "missing", None) == "em":
        if getattr(args, "scheduler", None):  # --chunk-rows reads the holes as NaN (table_source)
            args._parser.error("--missing em cannot be combined with --scheduler yet")
        if getattr(args, "command", None) == "report" and getattr(args, "model", None):
            args._parser.error("--missing em cannot be combined with --model (the model file says whether it "
                               "takes missing values)")
    if getattr(args, "scale", False):
        big = [o for o, on in (("--chunk-rows", getattr(args, "chunk_rows", None)),
                               ("--scheduler", getattr(args, "scheduler", None))) if on]
        if big:
            args._parser.error(f"--scale cannot be combined with {big[0]} (the standardization needs the "
                               "whole data; standardize the files first)")
        if getattr(args, "command", None) == "report" and getattr(args, "model", None):
            args._parser.error("--scale cannot be combined with --model (the model file holds its own scaling)")
    given = [opt for opt, on in (("--noise", getattr(args, "noise", None) is not None),
                                 ("--prior", getattr(args, "prior", None) not in (None, "none")),
                                 ("--equal-proportions", getattr(args, "equal_proportions", False))) if on]
    if not given:
        return
    if getattr(args, "command", None) == "report" and getattr(args, "model", None):
        args._parser.error(f"{' and '.join(given)} cannot be combined with --model (they apply when "
                           "report selects a model; --model reports on the file as it is)")


def _check_known(args):
    """--labels, --init-from and --fixed: usage errors (exit 2)."""
    labels, init, fixed = (getattr(args, a, None) for a in ("labels", "init_from", "fixed"))
    if fixed and not init:
        args._parser.error("--fixed needs --init-from MODEL: the held parameters take that model's values")
    if labels is None and init is None:
        return
    given = " and ".join(o for o, on in (("--labels", labels is not None), ("--init-from", init is not None)) if on)
    if getattr(args, "scheduler", None):
        args._parser.error(f"{given} cannot be combined with --scheduler yet (--chunk-rows can)")
    if init is not None and getattr(args, "scale", False):
        args._parser.error("--init-from cannot be combined with --scale (the model's parameters are in the "
                           "data's units, a new standardization would change them)")
    if labels is not None and getattr(args, "command", None) == "report" and getattr(args, "model", None):
        args._parser.error("--labels cannot be combined with --model (report --model does not fit)")


def _stop_workers():
    """After Ctrl-C: end the joblib (loky) worker processes of -j N and remove
    their memory-mapped data folders now, while this process can still tell
    joblib's resource tracker, instead of leaving them to interpreter exit,
    where the tracker reports them as leaked."""
    if "joblib" not in sys.modules:
        return
    try:
        from joblib.externals.loky import reusable_executor
    except ImportError:  # pragma: no cover - a joblib without loky
        return
    executor = getattr(reusable_executor, "_executor", None)
    if executor is None:
        return
    try:
        if hasattr(executor, "terminate"):  # joblib's MemmappingExecutor: workers and temp folders
            executor.terminate(kill_workers=True)
        else:
            executor.shutdown(wait=True, kill_workers=True)
    except Exception:  # noqa: BLE001 - best effort on the way out; never mask the interruption
        pass


def main(argv=None) -> int:
    """Run the ``emix`` command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)  # may import model code (--covariance, --help)
        _check_combinations(args)
    except SystemExit as exc:  # usage errors (2), --help and --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    except KeyboardInterrupt:  # Ctrl-C while starting: the same one line as later
        if "--debug" in argv:
            raise
        print(f"{PROG}: interrupted; no partial output was written", file=sys.stderr)
        return 130
    args.argv = argv

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr)

    from ._files import DataError

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            _stop_workers()
            if args.debug:
                raise
            print(f"{PROG}: interrupted; no partial output was written", file=sys.stderr)
            return 130
        except (DataError, _Err, ValueError, OSError, ImportError, MemoryError,
                ArithmeticError, np.linalg.LinAlgError, NotImplementedError) as exc:
            if args.debug:
                raise
            if isinstance(exc, BrokenPipeError):
                return 1
            msg = _one_line(exc)
            if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in msg:
                msg = f"{exc.filename}: {msg}"
            print(f"{PROG}: error: {msg}", file=sys.stderr)
            return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
