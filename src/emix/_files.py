"""Reading data tables and writing outputs for the command line.

Inputs: CSV / TSV (delimiter and header detected), Parquet (needs pyarrow),
``.npy`` and ``.npz``; ``-`` reads standard input (the format is recognized from
its first bytes). A table is kept as an ordered ``{name: 1-D array}`` so that
columns the fit does not use (an id, a text label) can be written back next to
the results.

A pandas index saved with the data is never a feature: Parquet files name
their index columns in pandas' metadata, and a CSV file written by
``DataFrame.to_csv()`` (or R's ``write.csv``) starts with a column whose header
is empty. Such columns are kept (``predict`` copies them to its output) but left
out of the features, with a note (:attr:`Table.notes`). Numbers written with a
decimal comma (``14,23``, ``1.234,5``) are read when ``decimal=","`` is given or
the file is ``;``-separated; thousands separators (``"1,065"``) are read too.

Outputs are written to a temporary file in the target folder and moved into
place with :func:`os.replace`, so a reader never sees half a file and Ctrl-C
leaves nothing behind; an existing file is only replaced with ``force=True``.

pandas and pyarrow are optional (``pip install "emix[io]"``) and imported
lazily: pandas only speeds up large CSV files, pyarrow is needed for Parquet.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import sys
import tempfile
import warnings
import zipfile

import numpy as np

__all__ = [
    "DataError",
    "Table",
    "atomic_output",
    "check_writable",
    "raw_frame",
    "read_table",
    "select_features",
    "write_table",
]

_NA = {"", "na", "nan", "n/a", "null", "none", "-nan", "?"}
_TEXT_EXT = {".csv", ".txt", ".dat", ".tsv", ".tab"}
_PARQUET_EXT = {".parquet", ".pq"}


class DataError(ValueError):
    """A data file cannot be used: unreadable, empty, non-numeric, missing values."""


def _display(path):
    return "<stdin>" if path == "-" else os.fspath(path)


def _suffix(path):
    return os.path.splitext(os.fspath(path))[1].lower()


class Table:
    """Columns of a data file, in file order.

    Attributes
    ----------
    columns : dict of str -> ndarray of shape (n_rows,)
        float64 for numeric columns, object (str) for text columns.
    source : str
        The file name, for messages.
    """

    def __init__(self, columns, source, named=True):
        self.columns = dict(columns)
        self.source = source
        self.named = named  # False when the names were made up (x0, x1, ...)
        # logical types the numeric arrays above hide, for the families that take
        # raw columns (raw_frame): name -> "bool", or ("category", [labels]) for a
        # Parquet dictionary column (its declared categories, in order)
        self.types = {}
        # columns that hold a pandas (or R) index: kept, but not features by default
        self.index_columns = []
        # what the reader decided for the user (printed by the CLI as notes)
        self.notes = []
        lengths = {len(v) for v in self.columns.values()}
        self.n_rows = lengths.pop() if lengths else 0

    @property
    def names(self):
        return list(self.columns)

    def is_numeric(self, name):
        return self.columns[name].dtype.kind in "fiub"

    def __repr__(self):
        return f"Table({self.source!r}, {self.n_rows} rows, columns={self.names})"


# ----------------------------------------------------------------- reading
def _is_number(s):
    try:
        float(s)
    except ValueError:
        return s.strip().lower() in _NA
    return True


def _sniff_delimiter(sample, path):
    if _suffix(path) in (".tsv", ".tab"):
        return "\t"
    lines = [ln for ln in sample.splitlines()[:20] if ln.strip()]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",\t;| ").delimiter
    except csv.Error:
        pass
    for d in (",", "\t", ";", "|"):
        if d in lines[0]:
            return d
    return ","


def _detect_header(first_row):
    """A first row with any field that is neither a number nor empty is a header."""
    return any(not _is_number(f) for f in first_row if f.strip() != "")


# A number with thousands separators and a decimal point ("1,065", "1,234,567.5"),
# and one with a decimal comma ("14,23", "-0,5", "1.234,5", "1 234,5", "2,5e-3").
_THOUSANDS_POINT = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?(?:[eE][+-]?\d+)?")
_DECIMAL_COMMA = re.compile(r"[+-]?(?:\d{1,3}(?:[.\s\u00a0\u202f']\d{3})+|\d*)(?:,\d+)?(?:[eE][+-]?\d+)?")


def _locale_float(v, decimal):
    """``v`` written with ``decimal`` ("." or ",") and optional thousands
    separators, as a float; None when it is not such a number."""
    t = v.strip()
    if decimal == ",":
        if not _DECIMAL_COMMA.fullmatch(t) or not any(c.isdigit() for c in t):
            return None
        t = re.sub(r"[.\s\u00a0\u202f']", "", t).replace(",", ".")
    elif _THOUSANDS_POINT.fullmatch(t):
        t = t.replace(",", "")
    return float(t)  # ValueError for anything else


def _column_from_strings(values, decimal=None):
    """int64 if every value is an integer (so ids and counts pass through
    ``predict`` as integers), else float64 if every non-missing value parses,
    else the strings (object).

    ``decimal``: "." reads ``1.5`` and ``"1,065"`` (thousands separators); ","
    reads ``1,5`` and ``1.065,5`` (a point is then a thousands separator);
    None tries plain numbers first, then the decimal point with thousands
    separators."""
    try:
        ints = [int(v) for v in values]
        if ints and all(-(2**63) <= i < 2**63 for i in ints):
            return np.array(ints, dtype=np.int64)
    except ValueError:
        pass
    tries = ["plain", "."] if decimal in (None, ".") else [","]
    for how in tries:
        out = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            if v.strip().lower() in _NA:
                out[i] = np.nan
                continue
            try:
                x = float(v) if how == "plain" else _locale_float(v, how)
            except ValueError:
                x = None
            if x is None:
                break
            out[i] = x
        else:
            return out
    return np.asarray(values, dtype=object)


def _looks_like_decimal_comma(values):
    """Every non-missing value is a number written with a decimal comma."""
    seen = False
    for v in values:
        v = str(v)
        if v.strip().lower() in _NA:
            continue
        try:
            if _locale_float(v, ",") is None:
                return False
        except ValueError:
            return False
        seen = True
    return seen


def _consecutive_integers(row):
    try:
        ints = [int(f) for f in row]
    except ValueError:
        return False
    return len(ints) >= 2 and all(b - a == 1 for a, b in zip(ints, ints[1:]))


def _numeric_header_warning(first_row, second_row, path):
    """Warn when a first line taken for data looks like a header of numbers
    (years 2019, 2020, ... or column numbers 1, 2, 3): consecutive integers
    above a line that is not (a table of 1, 2 / 3, 4 is data)."""
    if _consecutive_integers(first_row) and not (second_row and _consecutive_integers(second_row)):
        warnings.warn(
            f"the first line of {_display(path)} ({', '.join(f.strip() for f in first_row[:6])}"
            f"{', ...' if len(first_row) > 6 else ''}) is read as data, but it looks like a header "
            "of numbers; pass --header (header=True) if it is one, --no-header (header=False) to "
            "silence this warning.",
            UserWarning, stacklevel=4,
        )


def _mark_text_index(table, has_header):
    """A CSV written with its pandas (or R) index: the first column has an
    empty header ('Unnamed: 0' as pandas reads it); without a header, a first
    column 0, 1, ..., n-1 (to_csv(header=False)). Marked as an index, not a
    feature, with a note."""
    names = table.names
    if len(names) < 2:
        return table
    first = names[0]
    if has_header:
        if first != "Unnamed: 0":
            return table
        why = "its header is empty, as pandas' to_csv() and R's write.csv write the row index"
    else:
        col = table.columns[first]
        n = table.n_rows
        if n < 3 or col.dtype.kind not in "iuf" or not np.array_equal(col, np.arange(n)):
            return table
        # the features keep the names x0, x1, ... of their positions among the features
        table.columns = {"index": col, **{f"x{j}": table.columns[c] for j, c in enumerate(names[1:])}}
        first = "index"
        why = "it counts the rows 0, 1, 2, ..., as pandas' to_csv(header=False) writes the row index"
    table.index_columns.append(first)
    table.notes.append(
        f"{table.source}: column {first!r} is the row index ({why}); it is not used as a feature "
        "and predict copies it to its output (choose features with --columns to use it)."
    )
    return table


def _read_text(data, path, delimiter=None, header=None, decimal=None):
    """CSV / TSV text (already decoded) -> Table."""
    if not data.strip():
        raise DataError(f"{_display(path)} is empty.")
    if decimal not in (None, ".", ","):
        raise DataError(f"decimal must be '.' or ','; got {decimal!r}.")
    sample = data[: 1 << 16]
    delim = delimiter or _sniff_delimiter(sample, path)
    if delim == "\\t":
        delim = "\t"
    if decimal is None and delim == ";":
        decimal = ","  # the European spreadsheet convention: ';' between fields, ',' in numbers
    lines = csv.reader(io.StringIO(sample), delimiter=delim)
    first = next(lines)
    has_header = _detect_header(first) if header is None else header
    if header is None and not has_header:
        _numeric_header_warning(first, next(lines, None), path)
    table = _read_text_columns(data, path, delim, has_header, decimal)
    table.decimal = decimal or "."
    return _mark_text_index(table, has_header)


def _read_text_columns(data, path, delim, has_header, decimal):
    pd = _optional("pandas")
    if pd is not None:
        # a decimal comma makes the point a thousands separator (1.234,5);
        # otherwise text columns are parsed below (thousands separators, "1,065")
        locale = {"decimal": ",", "thousands": "."} if decimal == "," else {}
        try:
            frame = pd.read_csv(
                io.StringIO(data), sep=delim, header=0 if has_header else None,
                skipinitialspace=True, dtype=None, low_memory=False,
                skip_blank_lines=True, na_values=["?", "n/a", "null", "None"], **locale,
            )
        except pd.errors.EmptyDataError:
            raise DataError(f"{_display(path)} is empty.") from None
        except (pd.errors.ParserError, ValueError, UnicodeError) as exc:
            raise DataError(f"{_display(path)} is not a valid delimited file: {_first_line(exc)}") from None
        if not has_header:
            frame.columns = [f"x{i}" for i in range(frame.shape[1])]
        elif frame.shape[1] == 0:
            raise DataError(f"{_display(path)} is empty.")
        cols, bools = {}, []
        for name in frame.columns:
            s = frame[name]
            if s.dtype.kind == "b":
                bools.append(str(name))
            if s.dtype.kind == "i" and not s.isna().any():
                cols[str(name)] = s.to_numpy(dtype=np.int64)  # ids and counts stay integers
            elif s.dtype.kind in "fiub":
                cols[str(name)] = s.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                vals = s.astype(str).where(s.notna(), "").tolist()
                cols[str(name)] = _column_from_strings(vals, decimal)
        table = Table(cols, _display(path), named=has_header)
        table.types.update(dict.fromkeys(bools, "bool"))
        return table

    rows = [r for r in csv.reader(io.StringIO(data), delimiter=delim, skipinitialspace=True) if r]
    names = [h.strip() for h in rows[0]] if has_header else [f"x{i}" for i in range(len(rows[0]))]
    body = rows[1:] if has_header else rows
    width = len(names)
    for i, r in enumerate(body):
        if len(r) != width:
            line = i + (2 if has_header else 1)
            raise DataError(
                f"{_display(path)} line {line} has {len(r)} fields; expected {width} like the first line."
            )
    cols = {}
    if has_header and names and names[0] == "":
        names[0] = "Unnamed: 0"  # as pandas names an empty header field
    for j, name in enumerate(_unique(names)):
        cols[name] = _column_from_strings([r[j] for r in body], decimal)
    return Table(cols, _display(path), named=has_header)


def _unique(names):
    seen, out = {}, []
    for i, n in enumerate(names):
        n = n or f"x{i}"
        if n in seen:
            seen[n] += 1
            n = f"{n}.{seen[n]}"
        else:
            seen[n] = 0
        out.append(n)
    return out


def _first_line(exc):
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _optional(name):
    try:
        return __import__(name)
    except ImportError:
        return None


def _need(module, what):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise DataError(
            f"{what} needs the optional package {module.split('.')[0]!r}: "
            'pip install "emix[io]"'
        ) from None


def _table_from_array(a, path, key=None):
    where = _display(path) + (f"[{key!r}]" if key else "")
    if a.dtype.names:  # structured array: one field per column
        return Table({n: _as_column(a[n], where, n) for n in a.dtype.names}, where)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise DataError(f"{where} holds an array of shape {a.shape}; expected 2-D (rows, columns).")
    if a.dtype.kind not in "fiub":
        raise DataError(f"{where} holds an array of dtype {a.dtype}; expected numbers.")
    if a.shape[0] == 0:
        raise DataError(f"{where} has no rows.")
    return Table({f"x{j}": a[:, j].astype(np.float64) for j in range(a.shape[1])}, where, named=False)


def _as_column(v, where, name):
    v = np.asarray(v)
    if v.ndim != 1:
        raise DataError(f"{where}: column {name!r} has shape {v.shape}; expected 1-D.")
    return v.astype(np.float64) if v.dtype.kind in "fiub" else v.astype(str).astype(object)


def _read_npy(raw, path):
    try:
        a = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{_display(path)} is not a valid .npy file: {_first_line(exc)}") from None
    return _table_from_array(a, path)


def _read_npz(raw, path, key=None):
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            keys = list(z.files)
            if not keys:
                raise DataError(f"{_display(path)} holds no arrays.")
            if key is None:
                if "X" in keys:
                    key = "X"
                elif len(keys) == 1:
                    key = keys[0]
                else:
                    # one 1-D array per column, as write_table writes them
                    arrays = {k: z[k] for k in keys}
                    if all(a.ndim == 1 for a in arrays.values()) and len({len(a) for a in arrays.values()}) == 1:
                        return Table({k: _as_column(a, _display(path), k) for k, a in arrays.items()}, _display(path))
                    raise DataError(
                        f"{_display(path)} holds several arrays ({', '.join(keys)}); name one, "
                        f"e.g. {_display(path)}:{keys[0]}."
                    )
            if key not in keys:
                raise DataError(f"{_display(path)} has no array {key!r}; it holds {', '.join(keys)}.")
            a = z[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{_display(path)} is not a valid .npz file: {_first_line(exc)}") from None
    return _table_from_array(a, path, key)


def _arrow_source(raw):
    """Bytes (standard input) copied into memory that Arrow owns.

    Arrow must not be handed a Python object (``io.BytesIO``, ``bytes``): its
    Parquet reader pre-buffers column chunks on its I/O thread pool, and a
    worker can drop the last reference to such a buffer after ``read_table``
    has returned. Releasing a Python buffer takes the GIL; if the interpreter
    is finalizing by then (an error right after reading: exit code 1), the
    worker thread is unwound inside a ``noexcept`` destructor and the process
    aborts with "terminate called without an active exception" (exit 134).
    """
    import pyarrow as pa

    buf = pa.allocate_buffer(len(raw))
    np.frombuffer(buf, dtype=np.uint8)[:] = np.frombuffer(raw, dtype=np.uint8)
    return pa.BufferReader(buf)


def _read_parquet(raw_or_path, path):
    pq = _need("pyarrow.parquet", "Reading Parquet files")
    try:
        if isinstance(raw_or_path, bytes):
            t = pq.read_table(_arrow_source(raw_or_path), pre_buffer=False)
        else:  # Arrow reads the file itself: no Python buffers on its threads (see _arrow_source)
            t = pq.read_table(os.fspath(raw_or_path))
    except Exception as exc:  # pyarrow raises its own exception types
        raise DataError(f"{_display(path)} is not a valid Parquet file: {_first_line(exc)}") from None
    if t.num_columns == 0 or t.num_rows == 0:
        raise DataError(f"{_display(path)} has no rows." if t.num_columns else f"{_display(path)} is empty.")
    cols, types = {}, {}
    for name in t.column_names:
        c = t.column(name)
        import pyarrow.types as pat

        if pat.is_integer(c.type) or pat.is_floating(c.type) or pat.is_boolean(c.type) or pat.is_decimal(c.type):
            cols[name] = np.asarray(c.to_numpy(zero_copy_only=False), dtype=np.float64)
            if pat.is_boolean(c.type):
                types[name] = "bool"
        else:
            cols[name] = np.asarray([("" if v is None else str(v)) for v in c.to_pylist()], dtype=object)
            if pat.is_dictionary(c.type):
                labels = c.unify_dictionaries().chunk(0).dictionary.to_pylist() if c.num_chunks else []
                types[name] = ("category", [str(v) for v in labels])
    index = _pandas_index_columns(t)
    if index:  # the index first, as DataFrame.reset_index() puts it
        cols = {**{n: cols[n] for n in index}, **{n: v for n, v in cols.items() if n not in index}}
    table = Table(cols, _display(path))
    table.types.update(types)
    if index:
        table.index_columns.extend(index)
        shown = ", ".join(repr(n) for n in index)
        table.notes.append(
            f"{table.source}: {shown} {'is' if len(index) == 1 else 'are'} the pandas index saved with the "
            "data; not used as a feature, and predict copies it to its output (choose features with "
            "--columns to use it)."
        )
    return table


def _pandas_index_columns(t):
    """Names of the columns that hold the DataFrame index, from the pandas
    metadata of an Arrow table (a RangeIndex is stored as metadata only)."""
    try:
        meta = t.schema.pandas_metadata or {}
    except (ValueError, TypeError):  # unreadable metadata: no index information
        return []
    index = meta.get("index_columns") or []
    return [n for n in index if isinstance(n, str) and n in t.column_names]


def read_table(path, *, delimiter=None, header=None, decimal=None):
    """Read a data file into a :class:`Table`.

    Parameters
    ----------
    path : str or path-like
        ``.csv``/``.tsv``/``.txt``, ``.parquet``, ``.npy``, ``.npz`` (optionally
        ``file.npz:key``) or ``-`` for standard input.
    delimiter : str, optional
        Field separator for text files; detected when omitted.
    header : bool, optional
        Whether a text file starts with a header line; detected when omitted
        (a first line with a non-numeric field is a header; a first line of
        consecutive integers such as ``2019,2020,2021`` is read as data with a
        warning).
    decimal : {".", ","}, optional
        The decimal mark of numbers in a text file. Default: "," for a
        ``;``-separated file (``14,23``, ``1.234,5``), else "." (thousands
        separators as in ``"1,065"`` are read too).

    Raises
    ------
    DataError
        If the file is missing, empty or unreadable.
    """
    path = os.fspath(path)
    key = None
    if path != "-" and not os.path.exists(path) and ".npz:" in path:
        path, key = path.rsplit(":", 1)
    ext = _suffix(path)
    if path == "-":
        raw = sys.stdin.buffer.read()
    else:
        if os.path.isdir(path):
            raise DataError(f"{path} is a folder, not a data file.")
        try:
            with open(path, "rb") as fh:
                head = fh.read(4)
                if (head == b"PAR1" or ext in _PARQUET_EXT) and os.path.getsize(path) > 0:
                    return _read_parquet(path, path)  # Arrow reads the file itself
                raw = head + fh.read()
        except FileNotFoundError:
            raise DataError(f"{path}: no such file.") from None
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}.") from None
    if not raw.strip():
        raise DataError(f"{_display(path)} is empty.")
    if raw.startswith(b"\x93NUMPY") or ext == ".npy":
        return _read_npy(raw, path)
    if raw.startswith(b"PAR1") or ext in _PARQUET_EXT:
        return _read_parquet(raw, path)
    if raw.startswith(b"PK\x03\x04") or ext == ".npz":
        return _read_npz(raw, path, key)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(
            f"{_display(path)} is neither UTF-8 text (CSV/TSV) nor a .npy, .npz or Parquet file."
        ) from None
    if "\x00" in text[:4096]:
        raise DataError(f"{_display(path)} looks like a binary file, not CSV/TSV text.")
    return _read_text(text, path, delimiter=delimiter, header=header, decimal=decimal)


def _resolve(table, name):
    """A column by name, or by 0-based position when no column has that name."""
    if name in table.columns:
        return name
    if isinstance(name, str) and name.lstrip("-").isdigit():
        i = int(name)
        if -len(table.names) <= i < len(table.names):
            return table.names[i]
    raise DataError(
        f"{table.source} has no column {name!r}; its columns are {', '.join(table.names)}."
    )


def select_features(table, columns=None, exclude=(), weights=None, expected=None, missing=False):
    """The numeric matrix a model is fitted on (or applied to).

    Parameters
    ----------
    table : Table
    columns : list of str, optional
        Columns to use, by name or 0-based position. Default: every column not
        in ``exclude`` and not ``weights``.
    exclude : list of str
    weights : str, optional
        Column holding sample weights.
    expected : list of str or int, optional
        For applying a fitted model: its feature names (picked by name when the
        table has them all) or its number of features (checked).

    missing : bool, default=False
        Missing entries of the feature columns (empty fields, ``NA``...)
        are kept as NaN (``--missing em``: handled inside EM) instead of
        being an error; infinite values and missing weights stay errors.

    Returns
    -------
    X : ndarray of shape (n_rows, n_features), float64
    names : list of str
    w : ndarray of shape (n_rows,) or None

    Raises
    ------
    DataError
        Naming the offending column: not numeric, missing values, too few rows,
        or a column count that does not match the model.
    """
    if table.n_rows == 0:
        raise DataError(f"{table.source} has a header but no data rows.")
    drop = {_resolve(table, c) for c in (exclude or ())}
    wname = _resolve(table, weights) if weights is not None else None
    if columns:
        names = [_resolve(table, c) for c in columns]
    elif isinstance(expected, (list, tuple)) and all(n in table.columns for n in expected):
        names = list(expected)
    else:
        names = [n for n in table.names if n not in drop and n != wname and n not in table.index_columns]
        if isinstance(expected, (list, tuple)) and len(names) != len(expected):
            # the data's own (non-numeric) id columns are not features either
            numeric = [n for n in names if table.is_numeric(n)]
            if len(numeric) == len(expected):
                names = numeric
    if not names:
        raise DataError(f"{table.source}: no columns left to use.")
    n_expected = len(expected) if isinstance(expected, (list, tuple)) else expected
    if n_expected is not None and len(names) != n_expected:
        want = f" ({', '.join(expected)})" if isinstance(expected, (list, tuple)) else ""
        raise DataError(
            f"the model expects {n_expected} feature column(s){want}; {table.source} has "
            f"{len(names)} ({', '.join(names)}). Pick them with --columns."
        )
    for n in names + ([wname] if wname else []):
        _check_numeric(table, n, hint=n != wname, missing=missing and n != wname)
    X = np.column_stack([table.columns[n] for n in names]).astype(np.float64, copy=False)
    w = None
    if wname is not None:
        w = table.columns[wname]
        if np.any(w < 0):
            i = int(np.argmax(w < 0))
            raise DataError(f"weight column {wname!r} has a negative value at data row {i + 1}: {w[i]:g}.")
    return X, names, w


def raw_frame(table, columns=None, exclude=(), weights=None, expected=None):
    """The feature columns as a pandas DataFrame of their own types, for the
    families that take raw tables (categorical, bernoulli, mixed).

    Columns are chosen as by :func:`select_features`, but not required to be
    numeric: text columns stay strings, booleans stay booleans (a Parquet or
    pandas-read ``True``/``False`` column), a Parquet dictionary column becomes
    a pandas ``Categorical`` with its declared categories, integers stay
    integers. Empty fields and the missing-value spellings of the numeric
    reader (``NA``, ``null``, ``?`` ...) become missing (None / NaN), which
    these families marginalize (or reject, naming the column).

    Returns
    -------
    frame : pandas.DataFrame of shape (n_rows, n_features)
    names : list of str
    w : ndarray of shape (n_rows,) or None
    """
    pd = _need("pandas", "Fitting categorical or mixed columns")
    if table.n_rows == 0:
        raise DataError(f"{table.source} has a header but no data rows.")
    drop = {_resolve(table, c) for c in (exclude or ())}
    wname = _resolve(table, weights) if weights is not None else None
    if columns:
        names = [_resolve(table, c) for c in columns]
    elif isinstance(expected, (list, tuple)) and all(n in table.columns for n in expected):
        names = list(expected)
    else:
        names = [n for n in table.names if n not in drop and n != wname and n not in table.index_columns]
    if not names:
        raise DataError(f"{table.source}: no columns left to use.")
    if isinstance(expected, (list, tuple)) and len(names) != len(expected):
        raise DataError(
            f"the model expects {len(expected)} feature column(s) ({', '.join(map(str, expected))}); "
            f"{table.source} has {len(names)} ({', '.join(names)}). Pick them with --columns."
        )
    data = {}
    for n in names:
        col, kind = table.columns[n], table.types.get(n)
        if kind == "bool":
            miss = np.isnan(col)
            data[n] = col.astype(bool) if not miss.any() else np.where(miss, None, col.astype(bool)).astype(object)
        elif col.dtype == object:
            miss = np.array([str(v).strip().lower() in _NA for v in col], dtype=bool)
            vals = np.where(miss, None, col).astype(object)
            if isinstance(kind, tuple) and kind[0] == "category":
                vals = pd.Categorical(vals, categories=kind[1])
            data[n] = vals
        else:
            data[n] = col
    frame = pd.DataFrame(data, columns=names)
    w = None
    if wname is not None:
        _check_numeric(table, wname, hint=False)
        w = table.columns[wname]
        if np.any(w < 0):
            i = int(np.argmax(w < 0))
            raise DataError(f"weight column {wname!r} has a negative value at data row {i + 1}: {w[i]:g}.")
    return frame, names, w


def _check_numeric(table, name, hint=True, missing=False):
    col = table.columns[name]
    if not table.is_numeric(name):
        bad = next((i for i, v in enumerate(col) if not _is_number(str(v))), 0)
        if _looks_like_decimal_comma(col):
            extra = ("; its numbers are written with a decimal comma: read the file with --decimal , "
                     "(decimal=',')")
        elif _THOUSANDS_POINT.fullmatch(str(col[bad]).strip()) and getattr(table, "decimal", ".") == ",":
            extra = "; its numbers are written with a decimal point: read the file with --decimal ."
        else:
            extra = f"; leave it out with --exclude {name}" if hint else ""
        raise DataError(
            f"column {name!r} of {table.source} is not numeric (data row {bad + 1}: "
            f"{str(col[bad])!r}){extra}."
        )
    finite = np.isfinite(col) | (np.isnan(col) if missing else False)
    if not finite.all():
        n_bad = int((~finite).sum())
        i = int(np.argmin(finite))
        what = "missing (empty or NaN)" if np.isnan(col[i]) else "infinite"
        raise DataError(
            f"column {name!r} of {table.source} has {n_bad} missing or infinite value(s); "
            f"the first is {what}, at data row {i + 1}. Remove or impute those rows"
            + (", or fit with --missing em (Gaussian mixtures: missing values handled inside EM)."
               if hint and what != "infinite" else ".")
        )


# ----------------------------------------------------------------- writing
def check_writable(path, force=False):
    """Fail early (before a long fit) when ``path`` exists or its folder does not."""
    if path is None or path == "-":
        return
    path = os.fspath(path)
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder; give a file name.")
    if os.path.exists(path) and not force:
        raise DataError(f"{path} exists; use --force to replace it.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DataError(f"cannot write {path}: folder {folder} does not exist.")


@contextlib.contextmanager
def atomic_output(path, force=False, mode="wb"):
    """Open ``path`` for writing through a temporary file in the same folder.

    On success the temporary file is fsynced and renamed over ``path``; on any
    exception (including KeyboardInterrupt) it is deleted and ``path`` is left
    as it was. ``-`` writes to standard output.
    """
    if path == "-":
        stream = sys.stdout.buffer if "b" in mode else sys.stdout
        yield stream
        stream.flush()
        return
    path = os.fspath(path)
    check_writable(path, force)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part", dir=folder)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        # (or the mode of the file it replaces)
        try:
            bits = os.stat(path).st_mode & 0o7777
        except OSError:
            bits = 0o666 & ~_umask()
        with contextlib.suppress(OSError, AttributeError):
            os.fchmod(fd, bits)
        kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if not force and os.path.exists(path):
            raise DataError(f"{path} appeared while writing; use --force to replace it.")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fmt(v):
    if isinstance(v, str):
        return v
    f = float(v)
    if f.is_integer() and abs(f) < 1e15:
        return str(int(f))
    return repr(f)


def output_format(path, default="csv"):
    ext = _suffix(path) if path not in (None, "-") else ""
    return {
        ".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv",
        ".parquet": "parquet", ".pq": "parquet", ".npy": "npy", ".npz": "npz",
    }.get(ext, default)


def write_table(path, columns, force=False):
    """Write ``{name: 1-D array}`` to ``path`` (format from the extension;
    CSV for ``-`` and unknown extensions), atomically."""
    fmt = output_format(path)
    if fmt in ("csv", "tsv"):
        delim = "\t" if fmt == "tsv" else ","
        names = list(columns)
        cols = [columns[n] for n in names]
        n = len(cols[0]) if cols else 0
        with atomic_output(path, force, mode="w") as fh:
            w = csv.writer(fh, delimiter=delim, lineterminator="\n")
            w.writerow(names)
            text = [c.tolist() if hasattr(c, "tolist") else list(c) for c in cols]
            for i in range(n):
                w.writerow([_fmt(c[i]) for c in text])
    elif fmt == "npz":
        with atomic_output(path, force) as fh:
            np.savez(fh, **{k: (np.asarray(v) if np.asarray(v).dtype.kind in "fiub" else np.asarray(v, dtype=str))
                           for k, v in columns.items()})
    elif fmt == "npy":
        numeric = [np.asarray(v, dtype=np.float64) for v in columns.values() if np.asarray(v).dtype.kind in "fiub"]
        with atomic_output(path, force) as fh:
            np.save(fh, np.column_stack(numeric), allow_pickle=False)
    elif fmt == "parquet":
        pa = _need("pyarrow", "Writing Parquet files")
        pq = _need("pyarrow.parquet", "Writing Parquet files")
        t = pa.table({k: (np.asarray(v) if np.asarray(v).dtype.kind in "fiub" else [str(x) for x in v])
                      for k, v in columns.items()})
        with atomic_output(path, force) as fh:
            pq.write_table(t, fh)
    return path
