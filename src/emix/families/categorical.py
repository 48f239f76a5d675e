"""Categorical family: latent class analysis (independent categorical columns).

Within component ``k`` the columns are independent and column ``d`` takes
category ``c`` with probability ``theta_kdc`` (``sum_c theta_kdc = 1``)::

    log p(x | k) = sum_{d observed} log theta_{k, d, x_d}

This is the *latent class model* of Lazarsfeld and Henry (1968) and Goodman
(1974), for polytomous items as in R's poLCA (Linzer and Lewis, 2011); the
binary special case is :class:`emix.families.bernoulli.Bernoulli`.

Missing answers
    A missing entry (``None``, ``NaN``, ``pd.NA``) is marginalized: it adds
    nothing to ``log p(x | k)`` nor to the statistics, so the likelihood is
    that of the observed entries of each row (poLCA's ``na.rm=FALSE``,
    which assumes the answers are missing at random).

Statistics and M-step
    ``n_kdc = sum_n w_n r_nk [x_nd = c]`` (missing entries count in no
    category) and ``theta_kdc = (n_kdc + a) / (sum_c' n_kdc' + C_d a)``: the
    maximum-likelihood estimate for ``a = 0`` (the default, which reproduces
    poLCA), the MAP estimate under a symmetric Dirichlet(``a + 1``) prior
    otherwise (``pseudo_count = a``). A component with no observed entry in
    column ``d`` gets the uniform ``1 / C_d`` there (no information). A
    column with no observed value at all in the training data has no
    categories (``C_d = 0``): it adds nothing to the likelihood nor to the
    parameter count, and any value in it at predict time is unseen. (This
    keeps the coding of a block-wise fit, whose blocks may miss a column
    entirely, equal to the in-memory one.)
    Both products are one sparse matrix product of the rows' one-hot design
    (``n x sum_d C_d``, one stored 1 per observed entry) with the
    log-probabilities or the responsibilities.

Coding of the data (``encode``)
    Each column's categories are learned at fit time: the sorted distinct
    non-missing values, or the declared categories (in order, unused ones
    included) of a pandas ``Categorical`` column; the option ``categories``
    gives them explicitly. Labels may be strings, integers, floats or
    booleans; they are kept in ``encoding_`` (a list of label lists, one per
    column) and the data become codes ``0 .. C_d - 1`` (float, NaN for
    missing). At predict time a value that is not one of the column's
    categories raises ``ValueError`` naming the column and the value (a float
    array's distinct values are categories too: 1.0 and 1 match, "1" and 1 do
    not, nor do True and 1).

Parameters
    ``probabilities`` has shape ``(K, D, C_max)`` with ``C_max = max_d C_d``;
    ``probabilities[k, d, c]`` is the probability that column ``d`` takes its
    ``c``-th category (``encoding_[d][c]``) in component ``k``; entries
    ``c >= C_d`` (padding of columns with fewer categories) are 0. The number
    of free parameters is ``K sum_d (C_d - 1)`` (the driver adds ``K - 1``
    mixing weights), as poLCA counts them.

Zero probabilities
    With maximum likelihood a category never seen by a component has
    probability 0 there; a row holding it is carried by the other
    components. An empty component raises
    :class:`~emix.exceptions.DegenerateComponentError` (the restart is
    dropped); ``pseudo_count > 0`` avoids both.

References
----------
Goodman, L. A. (1974). Exploratory latent structure analysis using both
identifiable and unidentifiable models. *Biometrika* 61(2), 215-231.

Linzer, D. A. and Lewis, J. B. (2011). poLCA: an R package for polytomous
variable latent class analysis. *Journal of Statistical Software* 42(10).

Lazarsfeld, P. F. and Henry, N. W. (1968). *Latent Structure Analysis*.
Houghton Mifflin.
"""

from __future__ import annotations

import copy
import functools
import math
import threading

import numpy as np

import scipy.sparse as sp

from ..core.numerics import eps_nk
from .base import ComponentFamily, empty_component_check


class _Pandas:
    """pandas, imported on first use: ``import emix`` must not pay for it (the
    command line's --help/--version) nor need it (it is the 'io' extra);
    the categorical families use it for labels, categoricals and missing values."""

    def __getattr__(self, name):
        try:
            import pandas
        except ImportError:  # pragma: no cover - pandas is in emix[io]
            raise ImportError("The categorical and bernoulli families need pandas: pip install 'emix[io]' "
                              "(or pip install pandas).") from None
        return getattr(pandas, name)


pd = _Pandas()

# ----------------------------------------------------------------- coding


def _py_label(v, column):
    """``v`` as a JSON-able Python scalar (bool, int, float, str)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            raise ValueError(f"Column {column!r} holds {float(v)!r}: categories must be finite "
                             "(missing answers are None or NaN).")
        return float(v)
    if isinstance(v, str):
        return str(v)
    raise TypeError(f"Column {column!r} holds {v!r} of type {type(v).__name__}: a category argument must be a "
                    "string, a number or a boolean. Convert the column (e.g. with .astype(str)).")


def _sorted_labels(values):
    """Numbers (and booleans) in increasing order, then strings."""
    return sorted(values, key=lambda v: (1, v) if isinstance(v, str) else (0, v))


def table_columns(X):
    """The columns of a 2-D table (DataFrame, array, nested lists) as pandas
    Series, and their names for messages."""
    if isinstance(X, pd.DataFrame):
        return [X.iloc[:, j] for j in range(X.shape[1])], list(X.columns)
    if isinstance(X, np.ndarray):
        arr = X
    elif sp.issparse(X):
        raise TypeError("The categorical families take a dense table (DataFrame or array) of categories; "
                        f"got a sparse {type(X).__name__}. Use X.toarray().")
    else:
        arr = np.empty((0, 0), dtype=object) if _is_empty(X) else None
        if arr is None:
            try:
                arr = np.array(X, dtype=object)
            except ValueError as e:
                raise ValueError(f"Expected a 2-D table (n_samples, n_features); could not read it: {e}") from None
    if arr.ndim != 2:
        raise ValueError(f"Expected a 2-D table (n_samples, n_features). Got an array of shape {arr.shape}; "
                         "reshape a single column with X.reshape(-1, 1).")
    if arr.dtype.kind == "c":
        raise ValueError("Complex data not supported as categories; convert the values to strings or reals.")
    return [pd.Series(arr[:, j]) for j in range(arr.shape[1])], list(range(arr.shape[1]))


def _is_empty(X):
    try:
        return len(X) == 0
    except TypeError:
        return False


def _shape(X):
    shape = getattr(X, "shape", None)
    return tuple(shape) if shape is not None else np.shape(np.array(X, dtype=object))


def learn_labels(s, name):
    """Categories of one column (a pandas Series) as Python scalars."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        raw = list(s.cat.categories)
    else:
        try:
            u = pd.unique(s[s.notna()].to_numpy(dtype=object) if s.dtype == object else s.dropna())
        except TypeError as e:  # unhashable values (lists, dicts)
            bad = next((v for v in s if not isinstance(v, (str, bool, int, float, np.generic)) and v is not None),
                       None)
            raise TypeError(f"Column {name!r} holds {bad!r}: a category argument must be a string, a number or "
                            f"a boolean ({e}).") from None
        raw = _sorted_labels([_py_label(v, name) for v in u])
    labels = [_py_label(v, name) for v in raw]
    # 1 and 1.0 (and True) are the same dictionary key: the labels must stay distinct
    if len({(type(v) is str, v) for v in labels}) != len(labels):
        raise ValueError(f"Column {name!r} has categories that compare equal ({labels}); use one type per column.")
    return labels


def column_codes(s, labels, name):
    """Codes ``0 .. len(labels) - 1`` of one column (float, NaN where
    missing); a non-missing value outside ``labels`` raises ValueError."""
    missing = s.isna().to_numpy()
    idx = pd.Index(labels, dtype=object if any(isinstance(v, str) for v in labels) or not labels else None)
    codes = idx.get_indexer(s)
    unseen = (codes < 0) & ~missing
    if unseen.any():
        i = int(np.flatnonzero(unseen)[0])
        v = s.iloc[i]
        v = v.item() if isinstance(v, np.generic) else v
        shown = labels if len(labels) <= 20 else labels[:20] + ["..."]
        raise ValueError(f"Column {name!r} holds {v!r} (row {i}), a category not seen when the model was fitted "
                         f"(its categories: {shown}). Map it to a known category or to missing (None/NaN), "
                         "or refit with it.")
    out = codes.astype(np.float64)
    out[missing] = np.nan
    return out


def encode_table(X, meta, family_name, categories=None, adjust=None):
    """``(codes, labels)``: the table ``X`` as float codes (NaN for missing)
    and each column's labels; with ``meta`` (or ``categories``), the labels
    are given and ``X`` is checked against them. ``adjust(labels, name)``
    checks or completes the labels learned from a column."""
    cols, names = table_columns(X)
    if len(cols) == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={_shape(X)}) while a minimum of 1 is required "
                         f"by the {family_name} family.")
    given = meta if meta is not None else categories
    if given is not None:
        if not isinstance(given, (list, tuple)) or len(given) != len(cols):
            raise ValueError(f"X has {len(cols)} columns but the {family_name} family has categories for "
                             f"{len(given) if isinstance(given, (list, tuple)) else given!r} columns.")
        labels = [[_py_label(v, name) for v in lab] for lab, name in zip(given, names)]
    else:
        labels = [learn_labels(s, name) for s, name in zip(cols, names)]
        if adjust is not None:
            labels = [adjust(lab, name) for lab, name in zip(labels, names)]
    n = len(cols[0])
    codes = np.empty((n, len(cols)), dtype=np.float64)
    for j, (s, lab, name) in enumerate(zip(cols, labels, names)):
        codes[:, j] = column_codes(s, lab, name)
    return codes, labels


def merge_labels(metas, family_name, adjust=None):
    """Per column, the blocks' labels if they all agree, else their sorted
    union (what ``encode_table`` learns from the blocks concatenated)."""
    metas = [m for m in metas if m is not None]
    if not metas:
        return None
    D = len(metas[0])
    if any(len(m) != D for m in metas):
        raise ValueError(f"Blocks of the data have different numbers of columns ({sorted({len(m) for m in metas})}).")
    out = []
    for d in range(D):
        lists = [list(m[d]) for m in metas]
        if all(lab == lists[0] and [type(v) for v in lab] == [type(v) for v in lists[0]] for lab in lists):
            lab = lists[0]
        else:
            seen = {}
            for lab in lists:
                for v in lab:
                    seen.setdefault((type(v) is str, v), v)
            lab = _sorted_labels(list(seen.values()))
        out.append(adjust(lab, d) if adjust is not None else lab)
    return out


def decode_codes(X, labels):
    """Codes back to labels: an array of the labels' common type (bool, int,
    float) or an object array (strings, mixed types); a code without a label
    (or NaN) becomes None (NaN in a float array)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.empty(X.shape, dtype=object)
    for d, lab in enumerate(labels):
        lab_arr = np.array(list(lab) + [None], dtype=object)
        c = np.where(np.isnan(X[:, d]), len(lab), X[:, d])
        c = np.where((c < 0) | (c > len(lab)), len(lab), c).astype(np.intp)
        out[:, d] = lab_arr[c]
    kinds = {type(v) for lab in labels for v in lab}
    has_none = any(v is None for v in out.ravel())
    for t, dtype in ((bool, bool), (int, np.int64), (float, np.float64)):
        if kinds == {t} and not has_none:
            return out.astype(dtype)
    if kinds <= {int, float} and kinds:
        return np.where(pd.isna(out), np.nan, out).astype(np.float64)
    return out


# --------------------------------------------------------------- numerics


class Layout:
    """Where each column's categories sit in the flat one-hot design."""

    def __init__(self, n_categories):
        self.C = np.asarray(n_categories, dtype=np.intp)
        self.D = len(self.C)
        self.C_max = max(int(self.C.max()), 1)
        self.offsets = np.concatenate([[0], np.cumsum(self.C)[:-1]]).astype(np.intp)
        self.offsets_f = self.offsets.astype(np.float64)
        self.C_f = self.C.astype(np.float64)
        self.total = int(self.C.sum())
        self.col = np.repeat(np.arange(self.D), self.C)  # column of each flat category
        self.pos = np.arange(self.total) - self.offsets[self.col]  # its code within the column
        self.indicator = np.zeros((self.total, self.D))  # flat category -> its column
        self.indicator[np.arange(self.total), self.col] = 1.0

    def design(self, X):
        """CSR one-hot design ``(n, total + 1)``: row ``n`` has a 1 in the
        flat category of each observed entry and in the extra last column for
        each missing one (whose log-probability and statistics are 0)."""
        n, D = X.shape
        if D != self.D:
            raise ValueError(f"X has {D} columns; the parameters describe {self.D}.")
        with np.errstate(invalid="ignore"):
            bad = (X < 0) | (X >= self.C_f)  # NaN (missing) is neither
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"Row {r}, column {c} holds code {X[r, c]!r}; column {c} has {self.C[c]} categories "
                             f"(codes 0..{self.C[c] - 1}).")
        flat = X + self.offsets_f
        flat[np.isnan(flat)] = self.total
        itype = np.int32 if n * D < 2**31 - 1 else np.int64
        return sp.csr_matrix((np.ones(n * D), flat.astype(itype).ravel(), np.arange(0, n * D + 1, D, dtype=itype)),
                             shape=(n, self.total + 1))

    def flat(self, probabilities):
        """``(K, total)`` probabilities of the flat categories."""
        return probabilities[:, self.col, self.pos]

    def padded(self, flat):
        out = np.zeros((flat.shape[0], self.D, self.C_max))
        out[:, self.col, self.pos] = flat
        return out

    def log_table(self, probabilities):
        """``(total + 1, K)`` log-probabilities, the missing row 0."""
        P = self.flat(np.asarray(probabilities, dtype=np.float64))
        with np.errstate(divide="ignore"):
            L = np.log(P.T)
        return np.vstack([L, np.zeros((1, P.shape[0]))])

    def normalize(self, counts, a):
        """``(counts + a) / (column totals + C_d a)`` per component and column;
        uniform where a column has no weight."""
        tot = counts @ self.indicator + self.C[None, :] * a  # (K, D)
        num = counts + a
        den = tot[:, self.col]
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0 / self.C[self.col][None, :])
        return p


@functools.lru_cache(maxsize=64)
def layout_for(n_categories):
    """The (cached) :class:`Layout` of a tuple of category counts."""
    return Layout(n_categories)


class _DesignCache(threading.local):
    """The design of the block that ``log_prob`` just coded, for the
    ``suff_stats`` call on the same array that follows it in an E-step (one
    per thread: blocks run in threads). ``take`` hands it over once."""

    def __init__(self):
        self.X = self.layout = self.design = None

    def put(self, X, layout, design):
        self.X, self.layout, self.design = X, layout, design

    def take(self, X, layout):
        hit = self.X is X and self.layout is layout
        design = self.design if hit else None
        self.X = self.layout = self.design = None
        return design


_designs = _DesignCache()


def design_for(X, layout, keep=False):
    """``layout.design(X)``, reusing the one ``log_prob`` built for this very
    array (``keep=True`` stores it for the next ``suff_stats``)."""
    d = _designs.take(X, layout)
    if d is None:
        d = layout.design(X)
    if keep:
        _designs.put(X, layout, d)
    return d


def one_hot(X, layout):
    """Dense one-hot ``(n, total)`` of the codes, missing entries all zero."""
    return layout.design(X)[:, :layout.total].toarray()


#: scale of the extra tie-breaking coordinate added by :func:`init_view`
INIT_JITTER = 1e-3


def init_view(F):
    """``F`` with one extra column of fixed small noise (``INIT_JITTER``
    times uniform draws, the same for every fit). Discrete data repeat rows,
    and a start drawn from the rows ('random_from_data', 'k-means++') may
    pick two identical rows, whose exact distance ties would put every row in
    the first and leave the other component empty; the extra coordinate
    splits such ties. It changes squared distances by at most ``1e-6``, far
    below the squared distance between distinct one-hot rows (at least 1),
    so k-means is otherwise unchanged."""
    u = np.random.default_rng(0).random((F.shape[0], 1))
    return np.hstack([F, INIT_JITTER * u])


def check_pseudo_count(pseudo_count):
    """``pseudo_count`` as a float, checked finite and >= 0 (TypeError when not a
    number, ValueError when negative, infinite or NaN)."""
    try:
        value = float(pseudo_count)
    except (TypeError, ValueError):
        raise TypeError(f"pseudo_count must be a number >= 0. Got {pseudo_count!r}.") from None
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"pseudo_count must be a finite number >= 0. Got {pseudo_count!r}.")
    return value


class Categorical(ComponentFamily):
    """Independent categorical columns (latent class analysis; see the
    module docstring for the model, the coding and the parameters).

    Parameters
    ----------
    pseudo_count : float >= 0, default=0
        ``a`` of a symmetric Dirichlet(``a + 1``) prior on each component's
        column probabilities (MAP estimate ``(n_kdc + a) / (n_kd + C_d a)``);
        0 is maximum likelihood (poLCA's estimates).
    categories : list of lists, or None, default=None
        The categories (labels) of each column, in code order. None: learned
        from the data at fit time (:meth:`encode` returns them; the estimator
        fits with :meth:`with_meta`, a new instance that records them, so that
        its :meth:`config` rebuilds it).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import emix
    >>> X = pd.DataFrame({"a": ["yes", "no", "yes", None], "b": [1, 2, 3, 3]})
    >>> fam = emix.families.get_family("categorical")
    >>> codes, labels = fam.encode(X)
    >>> labels
    [['no', 'yes'], [1, 2, 3]]
    >>> codes
    array([[ 1.,  0.],
           [ 0.,  1.],
           [ 1.,  2.],
           [nan,  2.]])
    """

    name = "categorical"
    param_names = ("probabilities",)
    allows_missing = True
    raw_input = True

    def __init__(self, pseudo_count=0.0, categories=None):
        self.pseudo_count = check_pseudo_count(pseudo_count)
        if categories is not None:
            if not isinstance(categories, (list, tuple)) or not all(
                    isinstance(c, (list, tuple)) and len(c) > 0 for c in categories):
                raise ValueError("categories must be None or a list with one non-empty list of labels per "
                                 f"column. Got {categories!r}.")
            categories = [[_py_label(v, j) for v in c] for j, c in enumerate(categories)]
        self.categories = categories
        self._given = categories is not None

    def config(self):
        return {"name": self.name, "options": {"pseudo_count": self.pseudo_count, "categories": self.categories}}

    def _n_categories(self, comp=None, X=None):
        if self.categories is not None:
            return [len(c) for c in self.categories]
        if comp is not None:
            _K, D, C = np.shape(comp["probabilities"])
            return [C] * D
        with np.errstate(all="ignore"):
            top = np.where(np.isnan(X), -1.0, X).max(axis=0) if X.shape[0] else np.zeros(X.shape[1])
        return [max(int(t) + 1, 0) for t in top]

    def _layout(self, comp=None, X=None):
        return layout_for(tuple(int(c) for c in self._n_categories(comp, X)))

    # -------------------------------------------------------------- coding
    def encode(self, X, meta=None):
        """``(codes, labels)``; see the module docstring. At fit time
        (``meta`` None) the labels are learned (or taken from
        ``categories``); this instance is not changed (see :meth:`with_meta`)."""
        return encode_table(X, meta, self.name, self.categories if self._given else None)

    def with_meta(self, meta):
        """A new instance with ``categories`` set to the labels ``meta`` that
        :meth:`encode` (or :meth:`merge_meta`) learned; ``self`` when ``meta``
        is None."""
        if meta is None:
            return self
        new = copy.copy(self)
        new.categories = [list(c) for c in meta]
        return new

    def merge_meta(self, metas):
        """The labels that :meth:`encode` learns from blocks concatenated
        (out of core, :mod:`emix._family_blocks`): per column, the blocks'
        common list if they all agree (e.g. a pandas ``Categorical``'s
        declared categories), else the sorted union."""
        return merge_labels(metas, self.name)

    def decode_sample(self, X, meta):
        labels = meta if meta is not None else self.categories
        return X if labels is None else decode_codes(X, labels)

    def init_features(self, X):
        """One-hot codes (missing entries all zero), for k-means starts."""
        return init_view(one_hot(X, self._layout(X=X)))

    # ------------------------------------------------------------ numerics
    def log_prob(self, X, comp):
        lay = self._layout(comp)
        return np.asarray(design_for(X, lay, keep=True) @ lay.log_table(comp["probabilities"]))

    def suff_stats(self, X, rw, comp):
        lay = self._layout(comp, X)
        counts = np.asarray(design_for(X, lay).T @ np.asarray(rw, dtype=np.float64))
        return {"counts": counts[:lay.total].T.copy()}

    def m_step(self, sums, nk, comp_prev):
        empty_component_check(nk, self.name, min_size=2 * eps_nk(np.float64))
        counts = sums["counts"]
        if self.categories is None and comp_prev is None:
            raise ValueError(f"The {self.name} family does not know its columns' categories yet: call encode "
                             "first or pass categories=.")
        lay = self._layout(comp_prev)
        return {"probabilities": lay.padded(lay.normalize(counts, self.pseudo_count))}

    def n_parameters(self, comp):
        K = np.shape(comp["probabilities"])[0]
        return int(K * sum(max(c - 1, 0) for c in self._n_categories(comp)))

    def sample(self, comp, counts, rng):
        P = np.asarray(comp["probabilities"], dtype=np.float64)
        lay = self._layout(comp)
        parts = []
        for p, n in zip(P, counts):
            cum = np.cumsum(p, axis=1)  # (D, C_max)
            u = rng.random((int(n), lay.D))
            code = (u[:, :, None] * cum[None, :, -1:] >= cum[None, :, :]).sum(axis=2)
            parts.append(np.minimum(code, lay.C[None, :] - 1))
        return np.vstack(parts).astype(np.float64) if parts else np.empty((0, lay.D))

    def check_params(self, comp, K, D):
        P = np.asarray(comp["probabilities"], dtype=np.float64)
        C = self._n_categories(comp)
        if P.ndim != 3 or P.shape[:2] != (K, D) or len(C) != D or P.shape[2] != max(C):
            raise ValueError(f"probabilities must have shape ({K}, {D}, {max(C) if len(C) else '?'}). "
                             f"Got {P.shape}.")
        if not np.all(np.isfinite(P)) or np.any(P < 0) or np.any(P > 1):
            raise ValueError("probabilities must be finite and in [0, 1].")
        lay = Layout(C)
        if not np.allclose(lay.padded(lay.flat(P)), P, rtol=0, atol=0):
            raise ValueError("probabilities of categories a column does not have (padding) must be 0.")
        sums = np.where(lay.C[None, :] > 0, lay.flat(P) @ lay.indicator, 1.0)
        if not np.allclose(sums, 1.0, rtol=0, atol=1e-6):
            raise ValueError("probabilities must sum to 1 over each column's categories in each component; "
                             f"the sums range over [{sums.min()}, {sums.max()}].")
        flat = lay.flat(P) / sums[:, lay.col]
        return {"probabilities": lay.padded(flat)}
