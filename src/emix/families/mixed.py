"""Mixed data: a product of per-column families.

A table whose columns have different types (measurements, categories,
counts) is modeled with components that are products of one family per
group of columns, independent given the component (the "local independence"
of latent class / latent profile models: Lazarsfeld & Henry 1968; Hunt &
Jorgensen 2003; Vermunt & Magidson 2002)::

    log p(x | k) = sum_g log p_g(x_[g] | theta_gk)

so log densities add, the statistics of each group are those of its family
(kept as a nested dict ``{family name: statistics}``, which
:class:`emix.families.base.Stats` adds field by field), and the M-step of
each group is its family's own: the expected complete-data log-likelihood
splits into one term per group, each maximized on its own.

Columns and families
--------------------
``columns`` assigns a family to every column:

- a mapping ``{column: family name}``; keys are column names (for a pandas
  DataFrame) or integer positions (for a DataFrame a key is looked up among
  the column labels first, then taken as a position). Every column must be
  assigned; a value may also be ``'auto'`` (that column's type decides);
- a sequence of family names, one per column in order;
- ``'auto'``: every column from its type (pandas dtype, or numpy dtype):

  ======================================  ==============================================
  float                                   'gaussian'
  category, object, string, bool          'categorical'
  integer                                 'gaussian'; 'poisson' with ``integers='poisson'``
                                          for a column without negative values
  ======================================  ==============================================

  For a numpy object array, a column whose values are all real numbers (or
  missing) counts as float (integer if they are all whole numbers of type
  ``int``), any other as categorical. Datetimes and other types are an error:
  convert them or assign a family.

All the columns of one family form one group with one member family (groups
in the order of their first column). A
Gaussian group is ``covariance_type='diag'`` by default ("a Gaussian with its
own variance" per column, independent given the component); pass
``gaussian={'covariance_type': 'full'}`` for correlated Gaussian columns.
Options of a member family go under its name, e.g. ``Mixed('auto',
poisson={'pseudo_count': 1.0}, gaussian={'reg_covar': 1e-4})`` (through
:class:`emix.MixtureModel`: ``family_options={'poisson': {...}}``).

Parameters and encoding
-----------------------
Component parameters are a flat dict: member parameter ``p`` of family ``f``
is named ``f_p`` (``gaussian_means``, ``gaussian_covariances``,
``gaussian_precisions_cholesky``, ``poisson_rates``,
``categorical_<...>``), so the estimator's attributes are
``gaussian_means_`` and so on. Each member's parameters have one column per
column of its group, in the order of :attr:`Mixed.groups`.

The family is resolved against the training table by :meth:`Mixed.encode`
(column names to positions, 'auto' to families), which returns what it
learned as ``meta`` and leaves the family as it is; :meth:`Mixed.with_meta`
gives the resolved family (a new instance), which the estimators use. Its float view of the table
has, for members that keep one encoded column per column (Gaussian, Poisson,
a categorical family coding one column by one code), the columns in the
original order; a member whose encoding is wider puts its block where its
first column was. ``encode``'s ``meta`` (JSON-able) records each column's
name, position and family, and for each group its columns, positions in the
float view and member meta; at predict time the table is checked against it
and :meth:`config` rebuilds the resolved family.

Missing values are allowed only in the columns of a member family that
allows them (``allows_missing``); elsewhere they are an error naming the
column.
"""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np

from .base import ComponentFamily

#: options of member families applied unless the user overrides them
_MEMBER_DEFAULTS = {"gaussian": {"covariance_type": "diag"}}
_INTEGERS = ("gaussian", "poisson")


def _registry():
    from .registry import family_names

    return tuple(n for n in family_names() if n != "mixed")


def _is_frame(X):
    return hasattr(X, "iloc") and hasattr(X, "columns") and hasattr(X, "dtypes")


def _label(v):
    """A column label as stored in the JSON meta (str, int, float or None)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    return str(v)


def _is_int_key(k):
    return isinstance(k, numbers.Integral) and not isinstance(k, (bool, np.bool_))


class _Table:
    """Column access to a DataFrame or a 2-D array (no copy of the data)."""

    def __init__(self, X):
        import scipy.sparse as sp

        if sp.issparse(X):
            raise TypeError("Sparse data was passed, but the mixed family needs dense data: a pandas DataFrame or "
                            "a 2-D array (use X.toarray()).")
        if _is_frame(X):
            self.frame = X
            self.names = [_label(c) for c in X.columns]
            self.shape = X.shape
        else:
            arr = X if isinstance(X, np.ndarray) else np.asarray(X, dtype=object)
            if arr.dtype.kind in "OSU":  # uniform strings or objects: per-column cells
                arr = arr.astype(object, copy=False)
            if arr.ndim != 2:
                raise ValueError(f"Expected a 2-D table (n_samples, n_features). Got an array of shape {arr.shape}. "
                                 "Reshape your data with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for "
                                 "one sample.")
            if arr.dtype.kind == "c":
                raise ValueError("Complex data not supported by the mixed family; pass real numbers.")
            self.frame = None
            self.array = arr
            self.names = None
            self.shape = arr.shape
        if self.shape[1] == 0:
            raise ValueError(f"Found array with 0 feature(s) (shape={tuple(self.shape)}) while a minimum of 1 is "
                             "required by the mixed family.")

    def name(self, j):
        return self.names[j] if self.names is not None else j

    def take(self, cols):
        """The user's sub-table of columns ``cols`` (for raw-input members)."""
        return self.frame.iloc[:, list(cols)] if self.frame is not None else self.array[:, list(cols)]

    def column(self, j):
        return self.frame.iloc[:, j] if self.frame is not None else self.array[:, j]

    def floats(self, cols, family):
        """Columns ``cols`` as one float64 array, missing values as NaN.
        Numeric columns convert as they are; the cells of other columns must
        be numbers (or missing): a string is an error, not parsed."""
        out = np.empty((self.shape[0], len(cols)))
        for i, j in enumerate(cols):
            col = self.column(j)
            if self.frame is not None and _numeric_dtype(col.dtype):
                out[:, i] = col.to_numpy(dtype=np.float64, na_value=np.nan)
                continue
            if self.frame is None and col.dtype.kind in "fiub":
                out[:, i] = col
                continue
            values = col.tolist()
            bad = next((v for v in values if not _is_number_or_missing(v)), _NONE)
            if bad is not _NONE:
                raise ValueError(f"Column {self.name(j)!r} is assigned to the {family} family but holds "
                                 f"non-numeric values (e.g. {bad!r}). Assign it to 'categorical', or "
                                 "convert it to numbers.")
            out[:, i] = [np.nan if _is_missing(v) else float(v) for v in values]
        return out


_NONE = object()


def _numeric_dtype(dt):
    import pandas as pd

    return not isinstance(dt, pd.CategoricalDtype) and (
        pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt))


def _is_number_or_missing(v):
    """A cell a numeric family can take: a real number, a bool, None or NaN
    (pandas' NA too)."""
    return _is_missing(v) or isinstance(v, (bool, np.bool_, numbers.Real))


def _is_missing(v):
    """None, a float NaN or pandas' NA."""
    return v is None or type(v).__name__ == "NAType" or (isinstance(v, float) and math.isnan(v))


class Mixed(ComponentFamily):
    """Product of per-column families for tables with mixed types (see the
    module docstring).

    Parameters
    ----------
    columns : 'auto', dict or sequence of str
        The family of every column: ``{column name or position: family}``,
        one family name per column, or 'auto' (from the column types).
    integers : {'gaussian', 'poisson'}, default='gaussian'
        How 'auto' models integer columns: as Gaussian measurements, or as
        Poisson counts (columns without negative values only; others stay
        Gaussian).
    **member_options : dict
        Options of a member family under its name, e.g.
        ``gaussian={'covariance_type': 'full', 'reg_covar': 1e-4}``,
        ``poisson={'pseudo_count': 1.0}``. Gaussian members default to
        ``covariance_type='diag'``.

    Attributes
    ----------
    groups : tuple of (str, tuple of int)
        Once resolved (an instance from :meth:`with_meta`): each member family's name and
        the positions of its columns in the user's table, in parameter
        order.
    param_names : tuple of str
        ``<family>_<parameter>`` for every member parameter.
    """

    name = "mixed"
    raw_input = True

    def __init__(self, columns="auto", integers="gaussian", **member_options):
        known = _registry()
        if integers not in _INTEGERS:
            raise ValueError(f"integers must be one of {list(_INTEGERS)}. Got {integers!r}.")
        self.integers = integers
        for fam, opts in member_options.items():
            if fam not in known:
                raise ValueError(
                    f"Unknown option {fam!r} for the mixed family. Its options are 'columns', 'integers' and "
                    f"one dict of options per member family, under the family's name (one of {sorted(known)}), "
                    f"e.g. family_options={{'poisson': {{'pseudo_count': 1.0}}}}.")
            if not isinstance(opts, dict):
                raise TypeError(f"Options of the {fam} members must be a dict. Got {opts!r}.")
        self.member_options = {k: dict(v) for k, v in member_options.items()}
        self.columns = self._check_spec(columns, known)
        self._members = {}
        self._state = None
        # explicit families are built now, so that bad options fail at once
        values = [self.columns] if isinstance(self.columns, str) else (
            self.columns.values() if isinstance(self.columns, dict) else self.columns)
        for fam in set(values) - {"auto"}:
            self._member(fam)

    @staticmethod
    def _check_spec(columns, known):
        allowed = sorted(known) + ["auto"]
        if isinstance(columns, str):
            if columns != "auto":
                raise ValueError(f"columns must be 'auto', a mapping {{column: family}} or a list of family names "
                                 f"(one per column). Got {columns!r}.")
            return columns
        if isinstance(columns, dict):
            items = list(columns.items())
        elif isinstance(columns, (list, tuple)):
            items = list(enumerate(columns))
        else:
            raise TypeError(f"columns must be 'auto', a dict {{column: family}} or a list of family names. "
                            f"Got {type(columns).__name__}: {columns!r}.")
        if not items:
            raise ValueError("columns is empty: assign a family to every column (or use 'auto').")
        for key, fam in items:
            if not isinstance(fam, str) or fam not in allowed:
                hint = " (a mixed model cannot contain another one)" if fam == "mixed" else ""
                raise ValueError(f"Column {key!r} is assigned {fam!r}, which is not a family{hint}. "
                                 f"Use one of {allowed}.")
        return dict(columns) if isinstance(columns, dict) else list(columns)

    def _member(self, fam):
        m = self._members.get(fam)
        if m is None:
            from .registry import get_family

            if fam not in _registry():
                raise ValueError(f"The {fam!r} family is needed for mixed data but is not registered "
                                 f"(registered: {sorted(_registry())}).")
            opts = {**_MEMBER_DEFAULTS.get(fam, {}), **self.member_options.get(fam, {})}
            m = self._members[fam] = get_family(fam, **opts)
        return m

    # ------------------------------------------------------------- resolution
    def _assign(self, table):
        """The family name of every column of ``table`` (a list)."""
        n = table.shape[1]
        spec = self.columns
        if isinstance(spec, str):
            return [self._auto(table, j) for j in range(n)]
        if isinstance(spec, list):
            if len(spec) != n:
                raise ValueError(f"columns lists {len(spec)} families but the data have {n} columns: give one "
                                 "family per column.")
            return [self._auto(table, j) if f == "auto" else f for j, f in enumerate(spec)]
        out = [None] * n
        unknown = []
        for key, fam in spec.items():
            j = self._position(table, key)
            if j is None:
                unknown.append(key)
                continue
            if out[j] is not None:
                raise ValueError(f"Column {table.name(j)!r} (position {j}) is assigned twice in columns "
                                 f"(key {key!r}).")
            out[j] = fam
        if unknown:
            where = (f"the DataFrame's columns are {table.names}" if table.names is not None else
                     f"the data are an array with {n} columns: keys are positions 0..{n - 1} "
                     "(column names need a pandas DataFrame)")
            raise ValueError(f"columns names {unknown}, which are not columns of the data; {where}.")
        missing = [table.name(j) for j in range(n) if out[j] is None]
        if missing:
            raise ValueError(
                f"Every column needs a family, but columns {missing} are not assigned one. Add them to the "
                f"mapping (e.g. {{{missing[0]!r}: 'gaussian'}}, or 'auto' to choose from the column's type), "
                "drop them from the data, or use family='auto'.")
        return [self._auto(table, j) if f == "auto" else f for j, f in enumerate(out)]

    @staticmethod
    def _position(table, key):
        if table.names is not None:
            lab = _label(key) if isinstance(key, (str, numbers.Number)) else str(key)
            hits = [j for j, nm in enumerate(table.names) if nm == lab and type(nm) is type(lab)]
            if len(hits) > 1:
                raise ValueError(f"Column name {key!r} occurs {len(hits)} times in the DataFrame; rename the "
                                 "columns or use positions.")
            if hits:
                return hits[0]
        if _is_int_key(key) and 0 <= int(key) < table.shape[1]:
            return int(key)
        return None

    def _auto(self, table, j):
        """'auto': the family of column ``j`` from its type (module docstring)."""
        col = table.column(j)
        if table.frame is not None:
            import pandas as pd

            dt = col.dtype
            if isinstance(dt, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dt) or \
                    pd.api.types.is_string_dtype(dt) or pd.api.types.is_object_dtype(dt):
                if pd.api.types.is_object_dtype(dt) and not pd.api.types.is_bool_dtype(dt):
                    return self._auto_objects(col.tolist())
                return self._categorical()
            if pd.api.types.is_integer_dtype(dt):
                return self._auto_integers(col.to_numpy(dtype=np.float64, na_value=np.nan))
            if pd.api.types.is_float_dtype(dt):
                return "gaussian"
            raise ValueError(f"Column {table.name(j)!r} has dtype {dt}, which family='auto' does not model "
                             "(it knows float, integer, bool, category, string and object columns). Convert "
                             "it, or assign its family in a mapping.")
        kind = col.dtype.kind
        if kind == "f":
            return "gaussian"
        if kind in "iu":
            return self._auto_integers(col.astype(np.float64))
        if kind == "b":
            return self._categorical()
        if kind == "O":
            return self._auto_objects(col.tolist())
        raise ValueError(f"Column {j} has dtype {col.dtype}, which family='auto' does not model. Convert it, "
                         "or assign its family in a mapping.")

    def _auto_objects(self, values):
        present = [v for v in values if not _is_missing(v)]
        if present and all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in present):
            if all(isinstance(v, numbers.Integral) for v in present):
                return self._auto_integers(np.asarray(present, dtype=np.float64))
            return "gaussian"
        return self._categorical()

    def _auto_integers(self, values):
        if self.integers == "poisson" and not np.any(values[~np.isnan(values)] < 0):
            return "poisson"
        return "gaussian"

    @staticmethod
    def _categorical():
        if "categorical" not in _registry():
            raise ValueError("family='auto' assigns category, string, object and bool columns to the "
                             "'categorical' family, which is not registered. Assign these columns a family in "
                             "a mapping.")
        return "categorical"

    @staticmethod
    def _groups_of(families):
        """Groups (family, input columns) in the order of first appearance."""
        order = []
        for f in families:
            if f not in order:
                order.append(f)
        return [(f, tuple(j for j, g in enumerate(families) if g == f)) for f in order]

    # -------------------------------------------------------------- encoding
    def encode(self, X, meta=None):
        """Split the table into column groups, encode each with its member
        family, and return ``(float64 array, meta)``; see the module docstring.

        With ``meta`` (the fitted encoding) the columns' families and layout
        are those of the fit; ``X`` must have the same number of columns (and
        names, for a DataFrame fitted on a DataFrame).

        Raises
        ------
        ValueError
            On an unassigned, unknown or doubly assigned column, a column a
            member family cannot take (naming it), or a table that does not
            match ``meta``.
        """
        table = _Table(X)
        n_rows, n_cols = table.shape
        if meta is None:
            families = self._assign(table)
            groups = self._groups_of(families)
        else:
            families, groups = self._from_meta(meta, table)
        encoded, metas = [], []
        for gi, (fam, cols) in enumerate(groups):
            member = self._member(fam)
            names = [table.name(j) for j in cols]
            sub = table.take(cols) if getattr(member, "raw_input", False) else table.floats(cols, fam)
            if not getattr(member, "raw_input", False) and not getattr(member, "allows_missing", False):
                bad = ~np.isfinite(sub)
                if bad.any():
                    which = [table.name(j) for j, b in zip(cols, bad.any(axis=0)) if b]
                    raise ValueError(
                        f"Columns {which} ({fam} family) hold missing or infinite values (first at row "
                        f"{int(np.flatnonzero(bad.any(axis=1))[0])}); the {fam} family needs finite values. Drop "
                        "or impute those rows, or assign the columns to a family that allows missing values.")
            try:
                Xg, mg = member.encode(sub, None if meta is None else meta["groups"][gi]["meta"])
            except ValueError as exc:
                raise ValueError(f"Columns {names} ({fam} family): {exc}") from exc
            Xg = np.asarray(Xg, dtype=np.float64)
            if Xg.ndim != 2 or Xg.shape[0] != n_rows:
                raise ValueError(f"The {fam} family encoded {n_rows} rows as an array of shape {Xg.shape}.")
            encoded.append(Xg)
            metas.append(mg)
        widths = [e.shape[1] for e in encoded]
        if meta is None:
            positions = _layout([c for _, c in groups], widths)
        else:
            positions = [np.asarray(g["positions"], dtype=np.intp) for g in meta["groups"]]
            if [len(p) for p in positions] != widths:
                raise ValueError("The data encode to other widths than at fit time (the member families' "
                                 "encodings differ); refit the model.")
        Xf = np.empty((n_rows, sum(widths)))
        for e, pos in zip(encoded, positions):
            Xf[:, pos] = e
        if meta is None:
            new_meta = {
                "columns": [{"name": table.name(j) if table.names is not None else None, "index": j,
                             "family": families[j]} for j in range(n_cols)],
                "groups": [{"family": f, "columns": list(c), "positions": [int(p) for p in pos], "meta": mg}
                           for (f, c), pos, mg in zip(groups, positions, metas)],
            }
        else:
            new_meta = meta
        return Xf, new_meta

    def with_meta(self, meta):
        """A new instance resolved on ``meta`` (what :meth:`encode` or
        :meth:`merge_meta` learned): the columns' families and layout, and
        each member configured with its group's meta (e.g. learned
        categories). This instance is not changed.

        Raises
        ------
        ValueError
            If ``meta`` is not a mixed family's encoding.
        """
        if meta is None:
            return self
        try:
            state = [(g["family"], tuple(int(j) for j in g["columns"]), np.asarray(g["positions"], dtype=np.intp))
                     for g in meta["groups"]]
            names = [c["name"] for c in meta["columns"]]
            group_metas = [g["meta"] for g in meta["groups"]]
        except (KeyError, TypeError):
            raise ValueError("The encoding is not one of a mixed family (it has no 'columns'/'groups').") from None
        new = copy.copy(self)
        new._members = dict(self._members)
        for (f, _, _), mg in zip(state, group_metas):
            new._members[f] = new._member(f).with_meta(mg)
        new._state, new._names = state, names
        return new

    def _from_meta(self, meta, table):
        try:
            cols = meta["columns"]
            groups = [(g["family"], tuple(int(j) for j in g["columns"])) for g in meta["groups"]]
        except (KeyError, TypeError):
            raise ValueError("The encoding is not one of a mixed family (it has no 'columns'/'groups').") from None
        if len(cols) != table.shape[1]:
            raise ValueError(f"X has {table.shape[1]} columns, but the model was fitted on {len(cols)}.")
        fitted_names = [c["name"] for c in cols]
        if table.names is not None and all(n is not None for n in fitted_names) and table.names != fitted_names:
            raise ValueError(f"The DataFrame's columns {table.names} differ from those at fit time "
                             f"{fitted_names} (names and order must match).")
        if self._state is not None and [(f, c) for f, c, _ in self._state] != groups:
            raise ValueError("This mixed family was resolved on other columns than the encoding it is given.")
        return [c["family"] for c in cols], groups

    # ------------------------------------------------------- resolved layout
    def _layout_or_raise(self):
        if self._state is None:
            raise ValueError("The mixed family is not resolved yet: use family.with_meta(meta), with meta from "
                             "encode(X) on the training table (MixtureModel.fit does).")
        return self._state

    @property
    def groups(self):
        return tuple((f, c) for f, c, _ in self._layout_or_raise())

    @property
    def allows_missing(self):
        fams = [f for f, _, _ in self._state] if self._state is not None else (
            [] if isinstance(self.columns, str) else list(self._members))
        return any(getattr(self._member(f), "allows_missing", False) for f in fams)

    @property
    def param_names(self):
        if self._state is None:
            return ()
        return tuple(f"{f}_{p}" for f, _, _ in self._state for p in self._member(f).param_names)

    def config(self):
        """``{"name": "mixed", "options": {...}}`` with the resolved mapping
        (``{name: family}`` when the table had string column names, else one
        family per column), so ``get_family('mixed', **options)`` rebuilds it."""
        if self._state is None:
            columns = self.columns
            if isinstance(columns, dict) and all(_is_int_key(k) for k in columns) and \
                    sorted(columns) == list(range(len(columns))):
                columns = [columns[j] for j in range(len(columns))]
        else:
            fams = {}
            for f, cols, _ in self._state:
                for j in cols:
                    fams[j] = f
            ordered = [fams[j] for j in range(len(fams))]
            names = self._names
            if all(isinstance(n, str) for n in names) and len(set(names)) == len(names):
                columns = dict(zip(names, ordered))
            else:
                columns = ordered
        members = {k: dict(v) for k, v in self.member_options.items()}
        if self._state is not None:  # the members as resolved (e.g. learned categories)
            members.update({f: self._member(f).config()["options"] for f, _, _ in self._state})
        return {"name": self.name, "options": {"columns": columns, "integers": self.integers, **members}}

    def merge_meta(self, metas):
        """The ``meta`` that :meth:`encode` learns from blocks concatenated,
        from each block's own (out of core: :mod:`emix._family_blocks`):
        the columns' families must agree (an explicit mapping, or 'auto' on
        blocks of the same dtypes), and each group's member metas are merged
        by the member's ``merge_meta``.

        Raises
        ------
        ValueError
            If blocks resolve the columns differently.
        NotImplementedError
            If a member learns a coding and cannot merge it.
        """
        metas = list(metas)
        first = metas[0]
        for m in metas[1:]:
            for a, b in zip(first["columns"], m["columns"]):
                if a != b:
                    col = a["name"] if a["name"] is not None else a["index"]
                    raise ValueError(f"Blocks of the data resolve column {col!r} differently ({a['family']} and "
                                     f"{b['family']}); give the families in a mapping rather than 'auto', or the "
                                     "same dtypes in every block.")
            if len(m["columns"]) != len(first["columns"]):
                raise ValueError("Blocks of the data have different numbers of columns.")
        groups = []
        for gi, g in enumerate(first["groups"]):
            parts = [m["groups"][gi]["meta"] for m in metas]
            if all(p is None for p in parts):
                merged = None
            else:
                merge = getattr(self._member(g["family"]), "merge_meta", None)
                if merge is None:
                    raise NotImplementedError(f"The {g['family']} family learns a coding from the data and cannot "
                                              "merge the codings of several blocks.")
                merged = merge(parts)
            groups.append({**g, "meta": merged})
        return {"columns": first["columns"], "groups": groups}

    def _split(self, comp):
        """``[(member, positions, member comp or None)]`` per group."""
        out = []
        for f, _, pos in self._layout_or_raise():
            m = self._member(f)
            sub = None if comp is None else {p: comp[f"{f}_{p}"] for p in m.param_names}
            out.append((f, m, pos, sub))
        return out

    def singular_reason(self, comp, weights, n_samples):
        """The first member family's reason (:mod:`emix._singular`), named
        by the member, or None."""
        for f, m, _, sub in self._split(comp):
            reason = m.singular_reason(sub, weights, n_samples)
            if reason is not None:
                return f"{f} columns: {reason}"
        return None

    # ------------------------------------------------------------- protocol
    def log_prob(self, X, comp):
        """``sum_g log p_g(x_[g] | theta_gk)``, shape (n, K)."""
        total = None
        for _, m, pos, sub in self._split(comp):
            lp = np.asarray(m.log_prob(X[:, pos], sub), dtype=np.float64)
            total = lp if total is None else total + lp
        return total

    def suff_stats(self, X, rw, comp):
        return {f: m.suff_stats(X[:, pos], rw, sub) for f, m, pos, sub in self._split(comp)}

    def m_step(self, sums, nk, comp_prev):
        out = {}
        for f, m, _, sub in self._split(comp_prev):
            for p, v in m.m_step(sums[f], nk, sub).items():
                out[f"{f}_{p}"] = v
        return out

    def n_parameters(self, comp):
        return int(sum(m.n_parameters(sub) for _, m, _, sub in self._split(comp)))

    def sample(self, comp, counts, rng):
        parts = [(pos, m.sample(sub, counts, rng)) for _, m, pos, sub in self._split(comp)]
        n = int(np.sum(counts))
        X = np.empty((n, sum(len(p) for p, _ in parts)))
        for pos, Xg in parts:
            X[:, pos] = Xg
        return X

    def decode_sample(self, X, meta):
        """Sampled rows in the user's coding: a DataFrame with the training
        column names when the model was fitted on one, else an array (float,
        or object when a member decodes to labels)."""
        n = X.shape[0]
        cols = [None] * len(meta["columns"])
        for g in meta["groups"]:
            m = self._member(g["family"])
            dec = m.decode_sample(X[:, np.asarray(g["positions"], dtype=np.intp)], g["meta"])
            dec = dec.to_numpy() if _is_frame(dec) else np.asarray(dec)
            if dec.ndim != 2 or dec.shape[1] != len(g["columns"]):
                raise ValueError(f"The {g['family']} family decoded its {len(g['columns'])} columns as shape "
                                 f"{dec.shape}.")
            for i, j in enumerate(g["columns"]):
                cols[j] = dec[:, i]
        names = [c["name"] for c in meta["columns"]]
        if all(nm is not None for nm in names):
            import pandas as pd

            return pd.DataFrame({i: c for i, c in enumerate(cols)}).set_axis(names, axis=1)
        if all(c.dtype.kind in "fiub" for c in cols):
            return np.column_stack([c.astype(np.float64) for c in cols]) if cols else np.empty((n, 0))
        out = np.empty((n, len(cols)), dtype=object)
        for j, c in enumerate(cols):
            out[:, j] = c
        return out

    def init_features(self, X):
        """Each member's numeric view side by side; the columns of members
        that take floats (Gaussian, Poisson) are standardized (mean 0,
        variance 1), so that k-means initialization does not depend on their
        units; the views of raw-input members (e.g. one-hot codes) are kept."""
        parts = []
        for _, m, pos, _ in self._split(None):
            F = np.asarray(m.init_features(X[:, pos]), dtype=np.float64)
            if not getattr(m, "raw_input", False):
                mu = F.mean(axis=0)
                sd = F.std(axis=0)
                F = (F - mu) / np.where(sd > 0, sd, 1.0)
            parts.append(F)
        return np.hstack(parts)

    def check_params(self, comp, K, D):
        """Validated parameters: each group's by its member family (``D`` is
        the width of the float view).

        Raises
        ------
        ValueError
            On a missing or unknown parameter name, or a member's own check.
        """
        state = self._layout_or_raise()
        width = sum(len(pos) for _, _, pos in state)
        if D != width:
            raise ValueError(f"The mixed family's float view has {width} columns; got D={D}.")
        unknown = sorted(set(comp) - set(self.param_names))
        if unknown:
            raise ValueError(f"Unknown parameters {unknown} for this mixed family; expected {list(self.param_names)}.")
        out = {}
        for f, m, pos, _ in self._split(None):
            sub = {p: comp.get(f"{f}_{p}") for p in m.param_names}
            sub = {p: v for p, v in sub.items() if v is not None}
            try:
                checked = m.check_params(sub, K, len(pos))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{f} columns: {exc}") from exc
            out.update({f"{f}_{p}": v for p, v in checked.items()})
        return out


def _layout(group_columns, widths):
    """Positions of each group's encoded columns in the float view: a group
    with one encoded column per column keeps its columns' places; a wider one
    is put, as a block, where its first column was."""
    units = []
    for g, (cols, w) in enumerate(zip(group_columns, widths)):
        if w == len(cols):
            units += [(c, g, i, 1) for i, c in enumerate(cols)]
        else:
            units.append((min(cols), g, None, w))
    units.sort(key=lambda u: u[0])
    positions = [np.empty(w, dtype=np.intp) for w in widths]
    at = 0
    for _, g, i, w in units:
        if i is None:
            positions[g][:] = np.arange(at, at + w)
        else:
            positions[g][i] = at
        at += w
    return positions
