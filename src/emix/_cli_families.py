"""The command line for component families other than the Gaussian:
``--family``, its options, reading tables with text/boolean/categorical
columns, and the family summaries (used by :mod:`emix.cli`).

``--family gaussian`` (the default) never comes here: its path in
:mod:`emix.cli` is unchanged.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from . import _family_views as views
from .cli import _nonneg_float

#: --family choices; 'mixed' and 'auto' are one family (per-column families
#: from the columns' types, or from --family-map)
FAMILIES = ("gaussian", "student_t", "poisson", "bernoulli", "categorical", "mixed", "auto")
#: families that take the table as it is (strings, booleans, categories)
RAW = ("bernoulli", "categorical", "mixed", "auto")
_COUNTS = ("poisson", "bernoulli", "categorical")
_MEMBERS = ("gaussian", "student_t", "poisson", "bernoulli", "categorical")


def family_of(args):
    return getattr(args, "family", None) or "gaussian"


# ------------------------------------------------------------ option types
def dof_arg(s):
    """--dof: per_component, shared or a number > 0 (fixed)."""
    t = s.strip().lower().replace("-", "_")
    if t in ("per_component", "shared"):
        return t
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected per_component, shared or a number > 0, got {s!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"fixed degrees of freedom must be a finite number > 0, got {s!r}")
    return v


def family_map_arg(s):
    """--family-map: 'col=family,col=family' -> list of (col, family)."""
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        col, sep, fam = part.rpartition("=")
        col, fam = col.strip(), fam.strip()
        if not sep or not col:
            raise argparse.ArgumentTypeError(f"expected COLUMN=FAMILY pairs like 'age=gaussian,smoker=categorical', "
                                             f"got {part!r}")
        if fam not in _MEMBERS + ("auto",):
            raise argparse.ArgumentTypeError(f"unknown family {fam!r} for column {col!r}; choose from "
                                             f"{', '.join(_MEMBERS + ('auto',))}")
        out.append((col, fam))
    if not out:
        raise argparse.ArgumentTypeError("expected COLUMN=FAMILY pairs like 'age=gaussian,smoker=categorical'")
    return out


def add_options(parser, fit=False):
    """The 'component family' option group of fit/select/report."""
    g = parser.add_argument_group("component family")
    g.add_argument("--family", choices=FAMILIES, default=None,
                   help="gaussian (default), student_t (heavy tails, outliers down-weighted), poisson (counts), "
                        "bernoulli (binary columns), categorical (latent classes), mixed or auto (a family per "
                        "column from its type: numbers gaussian, text/boolean categorical)")
    g.add_argument("--family-map", type=family_map_arg, action="append", default=None, metavar="COL=FAM[,...]",
                   help="mixed data: the family of these columns (gaussian, student_t, poisson, bernoulli, "
                        "categorical, auto); the others from their type (implies --family mixed)")
    g.add_argument("--dof", type=dof_arg, default=None, metavar="per_component|shared|NU",
                   help="student_t degrees of freedom: estimated per component (default), one shared value, "
                        "or fixed at NU")
    g.add_argument("--pseudo-count", type=_nonneg_float, default=None, metavar="A",
                   help="poisson/bernoulli/categorical: add A to every count (MAP estimate; default 0, "
                        "maximum likelihood); keeps probabilities and rates away from 0")
    return g


def check_args(args, parser):
    """Option combinations argparse cannot check (usage errors, exit 2)."""
    if getattr(args, "family", None) == "auto" or (getattr(args, "family_map", None) and args.family is None):
        args.family = "mixed"  # one family: per-column families from the types (and --family-map)
    fam = family_of(args)
    cmd = getattr(args, "command", None)
    if cmd == "report" and getattr(args, "model", None) and getattr(args, "family", None):
        parser.error("--family cannot be combined with --model (the model file has its family)")
    if fam == "gaussian":
        given = [o for o, v in (("--dof", args.dof), ("--pseudo-count", args.pseudo_count),
                                ("--family-map", args.family_map)) if v is not None]
        if given:
            parser.error(f"{' and '.join(given)} apply to other families than gaussian; add --family "
                         f"({'student_t' if given[0] == '--dof' else 'poisson, bernoulli, categorical or mixed'})")
        return
    if args.family_map and fam != "mixed":
        parser.error(f"--family-map is for --family mixed (or auto), not {fam}")
    gaussian_only = [o for o, on in (
        ("--noise", getattr(args, "noise", None) is not None),
        ("--prior", getattr(args, "prior", None) not in (None, "none")),
        ("--equal-proportions", getattr(args, "equal_proportions", False)),
        ("--init hierarchical", getattr(args, "init", None) == "hierarchical"),
        ("--scale", getattr(args, "scale", False)),
        ("--missing em", getattr(args, "missing", None) == "em"),
        ("--chunk-rows", getattr(args, "chunk_rows", None) is not None),
        ("--scheduler", getattr(args, "scheduler", None) is not None)) if on]
    if gaussian_only:
        parser.error(f"{' and '.join(gaussian_only)} {'is' if len(gaussian_only) == 1 else 'are'} for "
                     f"--family gaussian only, not {fam}")
    if args.dof is not None and fam not in ("student_t", "mixed"):
        parser.error(f"--dof is for --family student_t, not {fam}")
    if args.pseudo_count is not None and fam not in _COUNTS + ("mixed",):
        parser.error(f"--pseudo-count is for --family poisson, bernoulli, categorical or mixed, not {fam}")
    if getattr(args, "covariance", None) is not None and (
            fam not in ("student_t", "mixed") or (fam == "mixed" and cmd != "fit")):
        where = "student_t (and for fit, the Gaussian columns of mixed)"
        parser.error(f"--covariance is for --family gaussian or {where}, not {fam}")
    if getattr(args, "reg_covar", None) is not None and fam not in ("student_t", "mixed"):
        parser.error(f"--reg-covar is for --family gaussian, student_t or mixed, not {fam}")


# ------------------------------------------------------------------ data
def _split(values):
    from .cli import _split_names

    return _split_names(values)


def read(args, family, expected=None, weights=True, raw=None):
    """``(table, X, names, w)``: the feature columns as floats (gaussian,
    student_t, poisson) or as a DataFrame of their own types (raw-input
    families, or ``raw=True``)."""
    from ._files import raw_frame, read_table, select_features

    table = read_table(args.data, delimiter=args.delimiter, header=args.header)
    cols, excl = _split(args.columns), _split(args.exclude) or ()
    w_col = args.weights if weights else None
    if (family in RAW) if raw is None else raw:
        X, names, w = raw_frame(table, cols, excl, w_col, expected=expected)
    else:
        X, names, w = select_features(table, cols, excl, w_col, expected=expected)
    return table, X, names, w


def read_for_model(args, model, weights=True):
    from .cli import _expected

    fam = model.family_
    return read(args, fam.name, expected=_expected(model), weights=weights,
                raw=bool(getattr(fam, "raw_input", False)))


def _family_spec(args, names):
    """MixtureModel's ``family`` and ``family_options`` from the options."""
    fam = family_of(args)
    options = {}
    if fam == "student_t":
        if args.dof is not None:
            options["dof"] = args.dof
        return "student_t", options
    if fam in _COUNTS:
        if args.pseudo_count is not None:
            options["pseudo_count"] = args.pseudo_count
        return fam, options
    # mixed: the map (others 'auto'), member options by family
    spec = "auto"
    if args.family_map:
        given = {}
        for pairs in args.family_map:
            for col, f in pairs:
                if col not in names:
                    from ._files import DataError

                    raise DataError(f"--family-map names column {col!r}, which is not among the features "
                                    f"({', '.join(names)}).")
                given[col] = f
        spec = {n: given.get(n, "auto") for n in names}
    if args.pseudo_count is not None:
        for f in _COUNTS:
            options[f] = {"pseudo_count": args.pseudo_count}
    if args.dof is not None:
        options["student_t"] = {"dof": args.dof}
    gauss = {}
    if getattr(args, "covariance", None) is not None:
        gauss["covariance_type"] = args.covariance
    if getattr(args, "reg_covar", None) is not None:
        gauss["reg_covar"] = args.reg_covar
        options.setdefault("student_t", {})["reg_covar"] = args.reg_covar
    if gauss:
        options["gaussian"] = gauss
    return spec, options


def _em_kwargs(args):
    kw = {"max_iter": args.max_iter, "tol": args.tol, "init_params": args.init, "n_init": args.n_init}
    if family_of(args) == "student_t":
        kw["reg_covar"] = args.reg_covar
    return {k: v for k, v in kw.items() if v is not None}


# -------------------------------------------------------------- commands
def fit(args):
    from . import cli
    from ._files import check_writable
    from .mixture import MixtureModel

    fam = family_of(args)
    table, X, names, w = read(args, fam)
    family, options = _family_spec(args, names)
    kw = _em_kwargs(args)
    if fam == "student_t":
        kw["covariance_type"] = args.covariance or "full"
    with cli._Progress(args) as progress:
        model = MixtureModel(args.n_components, family=family, family_options=options or None,
                             random_state=args.seed, callback=progress, n_jobs=args.jobs, **kw)
        model.fit(X, sample_weight=w)
    model.set_params(callback=None)
    if fam not in RAW:
        cli._set_names(model, table, names)
    check_writable(args.output, args.force)
    cli._save_model(model, args.output)
    if not args.quiet:
        print(summary(model, cli._fit_stats(model, X, w), names))
    cli._note(args, f"wrote {args.output}")
    return 0


def run_select(args, X, w, names):
    """:func:`emix.select` over K (and covariance types for student_t);
    returns (best model, rows, best params)."""
    from . import cli
    from .selection import select

    fam = family_of(args)
    family, options = _family_spec(args, names)
    kw = _em_kwargs(args)
    types = args.covariance if fam == "student_t" else None
    n_types = len(types) if types else (4 if fam == "student_t" else 1)
    progress = cli._Progress(args, desc="select", total_fits=len(args.n_components) * n_types)
    serial = args.jobs in (None, 1)
    extra = {"callback": progress} if serial else {"cell_callback": progress.cell}
    with progress:
        res = select(X, n_components=args.n_components, covariance_types=types, criterion=args.criterion,
                     sample_weight=w, random_state=args.seed, n_jobs=args.jobs, family=family,
                     family_options=options or None, **extra, **kw)
    best = res.best_
    best.set_params(callback=None)
    rows = [dict(r) for r in res.rows]
    for r in rows:  # the table's column: the covariance type, or the family for a family without one
        if r.get("covariance_type") is None:
            r["covariance_type"] = fam
    params = dict(res.best_params_)
    params.setdefault("covariance_type", fam)
    params["family"] = fam  # the name (best_params_ holds a --family-map's mapping)
    return best, rows, params


def select_cmd(args):
    from . import cli
    from ._files import check_writable, write_table

    for out in (args.output, args.plot, args.table):
        check_writable(out, args.force)
    fam = family_of(args)
    table, X, names, w = read(args, fam)
    model, rows, best = run_select(args, X, w, names)
    if fam not in RAW:
        cli._set_names(model, table, names)
    if not args.quiet:
        print(cli._selection_table(rows, args.criterion, best))
        print()
        what = f", covariance '{best['covariance_type']}'" if fam == "student_t" else ""
        print(f"chosen: K={best['n_components']}{what} ({fam})")
        print(summary(model, cli._fit_stats(model, X, w), names))
    if args.output:
        check_writable(args.output, args.force)
        cli._save_model(model, args.output)
        cli._note(args, f"wrote {args.output}")
    if args.table:
        keys = ["n_components", "covariance_type", "log_likelihood", "n_parameters", "bic", "icl", "aic",
                "converged", "n_iter", "error", "singular"]
        cols = {k: np.asarray([("" if r.get(k) is None else r.get(k)) for r in rows],
                              dtype=object if k in ("covariance_type", "error", "converged", "singular") else None)
                for k in keys}
        cols = {k: (v.astype(str).astype(object) if v.dtype == object else v) for k, v in cols.items()}
        cols["family"] = np.asarray([fam] * len(rows), dtype=object)
        write_table(args.table, cols, force=args.force)
        cli._note(args, f"wrote {args.table}")
    if args.plot:
        from . import plotting as P

        fig = P.new_figure(figsize=(7.2, 4.8))
        P.plot_criterion(rows, args.criterion, ax=fig.add_subplot(1, 1, 1), best=best)
        fig.tight_layout()
        P.save_figure(fig, args.plot, force=args.force)
        cli._note(args, f"wrote {args.plot}")
    return 0


# --------------------------------------------------------------- summary
def _title(model):
    fam = model.family_
    extra = ""
    if fam.name == "student_t":
        dof = fam.dof if isinstance(fam.dof, str) else f"fixed {fam.dof:g}"
        extra = f", scale '{fam.covariance_type}', dof {dof}"
    elif fam.name == "mixed":
        extra = " (" + "; ".join(f"{f}: {len(g)} column{'s' if len(g) != 1 else ''}" for f, g in fam.groups) + ")"
    elif hasattr(fam, "pseudo_count") and fam.pseudo_count:
        extra = f", pseudo-count {fam.pseudo_count:g}"
    return f"family '{fam.name}'{extra}"


def _block_lines(b, K):
    col_w = 9
    lines = []
    if b["kind"] == "rates":
        shown = b["columns"][:8]
        w = max(10, *(len(str(n)) + 7 for n in shown))
        lines.append("rates (mean count per component)")
        lines.append("component".rjust(col_w) + "".join(("rate " + str(n)).rjust(w) for n in shown))
        for k in range(K):
            lines.append(str(k).rjust(col_w) + "".join(f"{v:.5g}".rjust(w) for v in b["values"][k, :8]))
    elif b["kind"] == "locations":
        shown = b["columns"][:8]
        w = max(10, *(len(str(n)) + 7 for n in shown))
        sd = "scale" if b["family"] == "student_t" else "sd"
        head = "component".rjust(col_w) + "".join(("mean " + str(n)).rjust(w) for n in shown) + \
            "".join((f"{sd} " + str(n)).rjust(w) for n in shown)
        if b["dof"] is not None:
            head += "dof".rjust(10)
        lines.append(f"{b['family']} columns" + (f" (covariance '{b['covariance_type']}')" if b["family"] == "gaussian"
                                                 else ""))
        lines.append(head)
        for k in range(K):
            row = str(k).rjust(col_w) + "".join(f"{v:.5g}".rjust(w) for v in b["means"][k, :8]) + \
                "".join(f"{v:.4g}".rjust(w) for v in b["scales"][k, :8])
            if b["dof"] is not None:
                row += f"{b['dof'][k]:.4g}".rjust(10)
            lines.append(row)
    elif b["kind"] == "probabilities":
        what = "P(column = label)" if b["family"] == "categorical" else "P(column = its second label)"
        lines.append(f"class-conditional probabilities, {b['family']}: {what} in each component")
        width = max(16, *(len(f"{c} = {lab}") + 2 for c, lab in b["rows"][:200]))
        lines.append("column = label".ljust(width) + "".join(str(k).rjust(8) for k in range(K)))
        last, shown_in_col = None, 0
        for (col, lab), vals in zip(b["rows"], b["values"]):
            if col != last:
                last, shown_in_col = col, 0
            shown_in_col += 1
            if shown_in_col > 12:
                if shown_in_col == 13:
                    n_more = sum(1 for c, _ in b["rows"] if c == col) - 12
                    lines.append(f"  ... {n_more} more categories of {col}")
                continue
            lines.append(f"{col} = {lab}".ljust(width) + "".join(f"{v:.3f}".rjust(8) for v in vals))
    else:
        lines.append(f"{b['family']} parameters: " + ", ".join(b["params"]))
    return lines


def summary(model, stats=None, names=None):
    """Text summary of a fitted non-Gaussian model (the family's tables)."""
    names = names or views.feature_names(model)
    K, D = int(model.n_components), len(names)
    lines = [f"{type(model).__name__}: K={K} components, {_title(model)}, {D} feature{'s' if D != 1 else ''} "
             f"({', '.join(map(str, names[:8]))}{', ...' if D > 8 else ''})"]
    state = "converged" if model.converged_ else "did NOT converge (raise --max-iter or --tol)"
    lines.append(f"EM: {model.n_iter_} iterations, {state}; tol {model.tol:g}, n_init {model.n_init}")
    if stats:
        lines.append(f"rows {stats['n_rows']:,}   log-likelihood {stats['log_likelihood']:.6f} "
                     f"(mean {stats['mean_log_likelihood']:.6f})")
        lines.append(f"BIC {stats['bic']:.4f}   ICL {stats['icl']:.4f}   AIC {stats['aic']:.4f}   (lower is better)")
    lines.append("")
    lines.append("component".rjust(9) + "weight".rjust(9))
    for k in range(K):
        lines.append(str(k).rjust(9) + f"{model.weights_[k]:.4f}".rjust(9))
    for b in views.blocks(model, names):
        lines.append("")
        lines.extend(_block_lines(b, K))
    return "\n".join(lines)


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def info_json(model):
    fam = model.family_
    info = {
        "estimator": type(model).__name__, "family": fam.name, "family_config": _jsonable(fam.config()),
        "n_components": int(model.n_components), "n_features": int(model.n_features_in_),
        "feature_names": views.feature_names(model), "weights": model.weights_.tolist(),
        "parameters": {p: np.asarray(getattr(model, p + "_")).tolist() for p in fam.param_names},
        "encoding": _jsonable(getattr(model, "encoding_", None)),
        "converged": bool(model.converged_), "n_iter": int(model.n_iter_), "lower_bound": float(model.lower_bound_),
        "params": {k: v for k, v in model.get_params().items() if isinstance(v, (int, float, str, bool, type(None)))},
    }
    return info


def sample_columns(model, X, names):
    """Sampled rows as ``{name: column}`` for write_table (labels as text,
    a missing label as an empty field)."""
    if hasattr(X, "columns"):
        arrays = [X.iloc[:, j].to_numpy() for j in range(X.shape[1])]
    else:
        X = np.asarray(X)
        arrays = [X[:, j] for j in range(X.shape[1])]
    cols = {}
    for n, a in zip(names, arrays):
        if a.dtype.kind in "fiu":
            cols[n] = a
        else:
            cols[n] = np.asarray(["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                                  for v in a], dtype=object)
    return cols


# ------------------------------------------------------------------ plots
def plot_kinds(model):
    """The --kind values a model's family can draw; the first is the default."""
    from ._family_views import blocks

    kinds = {b["kind"] for b in blocks(model)}
    out = []
    if model.family_.name == "student_t":
        out.append("outliers")
    if "probabilities" in kinds:
        out.append("probabilities")
    if "rates" in kinds:
        out.append("rates")
    out.append("convergence")
    return out


def plot(args, model):
    """``emix plot`` for a non-Gaussian model."""
    from . import cli
    from . import plotting as P

    kinds = plot_kinds(model)
    kind = args.kind or kinds[0]
    if kind not in kinds:
        raise cli._Err(f"--kind {kind} does not apply to a {model.family_.name} model; its plots are "
                       f"{', '.join(kinds)}")
    if kind == "outliers" and args.data is None:
        raise cli._Err("--kind outliers needs the DATA file")
    names = views.feature_names(model)
    if kind == "convergence":
        fig = P.new_figure(figsize=(7.2, 4.2))
        P.plot_convergence(model, ax=fig.add_subplot(1, 1, 1))
    elif kind == "probabilities":
        n_rows = sum(len(b["rows"]) for b in views.blocks(model) if b["kind"] == "probabilities")
        fig = P.new_figure(figsize=(2.2 + 0.9 * model.n_components + 1.5, max(3.0, 1.2 + 0.28 * n_rows)))
        P.plot_class_probabilities(model, ax=fig.add_subplot(1, 1, 1))
    elif kind == "rates":
        fig = P.new_figure(figsize=(7.2, 4.8))
        P.plot_rates(model, ax=fig.add_subplot(1, 1, 1))
    else:
        _, X, names, _ = read_for_model(args, model, weights=False)
        D = model.n_features_in_
        dims = tuple(args.dims) if args.dims else None
        if dims and any(not 0 <= d < D for d in dims):
            raise cli._Err(f"--dims must be two feature indices in 0..{D - 1}; got {args.dims}")
        fig = P.new_figure(figsize=(7.2, 5.4))
        P.plot_outliers(model, X, ax=fig.add_subplot(1, 1, 1), dims=dims, feature_names=names,
                        max_points=args.max_points)
    fig.tight_layout()
    P.save_figure(fig, args.output, force=args.force, dpi=args.dpi)
    cli._note(args, f"wrote {args.output}")
    return 0
