"""Bernoulli family: latent class analysis of binary columns.

Within component ``k`` the columns are independent and ``P(x_d = 1 | k) =
p_kd``::

    log p(x | k) = sum_{d observed} [x_d log p_kd + (1 - x_d) log(1 - p_kd)]

the binary latent class model (Lazarsfeld and Henry, 1968; Goodman, 1974),
i.e. :mod:`emix.families.categorical` with two categories per column and one
probability per column. Missing answers (``None``, ``NaN``, ``pd.NA``) are
marginalized as there (poLCA's ``na.rm=FALSE``).

Statistics ``s1_kd = sum_n w_n r_nk [x_nd = 1]`` and ``s_kd = sum_n w_n r_nk
[x_nd observed]``; M-step ``p_kd = (s1_kd + a) / (s_kd + 2a)``: maximum
likelihood for ``a = pseudo_count = 0`` (the default), the MAP estimate under
a Beta(``a + 1``, ``a + 1``) prior otherwise; 1/2 where a component has no
observed entry in the column. ``K D`` free parameters (plus ``K - 1``
weights, added by the driver).

Coding of the data
    Each column has two categories, learned at fit time: 0/1, False/True, or
    any two labels (strings, numbers), sorted (or a pandas ``Categorical``'s
    declared order); ``probabilities[k, d]`` is the probability of the
    *second* label ``encoding_[d][1]`` (``1``, ``True``, or e.g. ``'yes'``
    of ``['no', 'yes']``). A column with more than two distinct values raises
    ``ValueError`` (use the 'categorical' family). A column with a single
    observed value is allowed: if that value is 0, 1, False or True the other
    one is implied (labels ``[0, 1]`` or ``[False, True]``); any other value
    ``v`` gets labels ``[v]`` and its probability of "the other category" is
    estimated as 0 (with ``pseudo_count = 0``), a value other than ``v`` at
    predict time raises ``ValueError``, and a sampled "other category" is
    decoded as None. A column with no observed value at fit time has no
    labels: its probabilities stay 1/2 (still counted as parameters) and any
    value in it at predict time is unseen. An unseen value at predict time
    raises ``ValueError`` naming the column and the value.

Zero probabilities and empty components follow
:mod:`emix.families.categorical`.
"""

from __future__ import annotations

import numpy as np

from ..core.numerics import eps_nk
from .base import ComponentFamily, empty_component_check
from .categorical import (
    check_pseudo_count,
    decode_codes,
    design_for,
    encode_table,
    init_view,
    layout_for,
    merge_labels,
    one_hot,
)


def _binary_labels(lab, name):
    if len(lab) > 2:
        shown = lab if len(lab) <= 10 else lab[:10] + ["..."]
        raise ValueError(f"Column {name!r} has {len(lab)} distinct values {shown}; the bernoulli family takes two "
                         "categories per column. Use family='categorical' for more.")
    if len(lab) == 1:
        v = lab[0]
        if isinstance(v, bool):
            return [False, True]
        if v in (0, 1):
            return [type(v)(0), type(v)(1)]
    return list(lab)


class Bernoulli(ComponentFamily):
    """Independent binary columns (see the module docstring).

    Parameters
    ----------
    pseudo_count : float >= 0, default=0
        ``a`` of a Beta(``a + 1``, ``a + 1``) prior on every probability (MAP
        estimate); 0 is maximum likelihood (poLCA's estimates).

    Examples
    --------
    >>> import numpy as np
    >>> import emix
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.random((300, 5)) < 0.9, rng.random((300, 5)) < 0.1])
    >>> m = emix.MixtureModel(2, family="bernoulli", random_state=0).fit(X)
    >>> np.round(np.sort(m.probabilities_[:, 0]), 1)
    array([0.1, 0.9])
    """

    name = "bernoulli"
    param_names = ("probabilities",)
    allows_missing = True
    raw_input = True

    def __init__(self, pseudo_count=0.0):
        self.pseudo_count = check_pseudo_count(pseudo_count)

    def config(self):
        return {"name": self.name, "options": {"pseudo_count": self.pseudo_count}}

    def encode(self, X, meta=None):
        """``(codes, labels)``: 0 for a column's first label, 1 for its second,
        NaN for missing; ``labels`` (learned at fit, given at predict) is one
        list per column."""
        return encode_table(X, meta, self.name, adjust=_binary_labels)

    def merge_meta(self, metas):
        """The labels :meth:`encode` learns from blocks concatenated (see
        :func:`emix.families.categorical.merge_labels`)."""
        return merge_labels(metas, self.name, adjust=_binary_labels)

    def decode_sample(self, X, meta):
        return X if meta is None else decode_codes(X, meta)

    def init_features(self, X):
        """One-hot codes (two columns per column, missing entries all zero)
        with the fixed tie-breaking jitter of
        :func:`emix.families.categorical.init_view`, for k-means starts."""
        return init_view(one_hot(X, self._layout(X.shape[1])))

    @staticmethod
    def _layout(D):
        return layout_for((2,) * D)

    @staticmethod
    def _two(p):
        p = np.asarray(p, dtype=np.float64)
        return np.stack([1.0 - p, p], axis=2)  # (K, D, 2)

    @staticmethod
    def _all_binary(X):
        """Whether every entry is 0 or 1 (no missing answer, no stray code):
        then both products below are dense GEMMs on ``X`` itself."""
        return bool(np.all((X == 0.0) | (X == 1.0)))

    def log_prob(self, X, comp):
        P = np.asarray(comp["probabilities"], dtype=np.float64)
        dense = self._all_binary(X)
        if dense and np.all((P > 0.0) & (P < 1.0)):
            # sum_d [x_d log p_kd + (1 - x_d) log(1 - p_kd)]
            #   = x . (log p_k - log(1 - p_k)) + sum_d log(1 - p_kd): one GEMM
            log1m = np.log1p(-P)
            return X @ (np.log(P) - log1m).T + log1m.sum(axis=1)[None, :]
        # missing answers, or a probability of exactly 0 or 1 (whose log is
        # -inf and must not meet a 0 count): the sparse one-hot product
        lay = self._layout(X.shape[1])
        return np.asarray(design_for(X, lay, keep=not dense) @ lay.log_table(self._two(P)))

    def suff_stats(self, X, rw, comp):
        if self._all_binary(X):
            rwT = np.asarray(rw, dtype=np.float64).T
            return {"zeros": rwT @ (1.0 - X), "ones": rwT @ X}
        lay = self._layout(X.shape[1])
        counts = np.asarray(design_for(X, lay).T @ np.asarray(rw, dtype=np.float64))[:lay.total].T
        return {"zeros": counts[:, 0::2].copy(), "ones": counts[:, 1::2].copy()}

    def m_step(self, sums, nk, comp_prev):
        empty_component_check(nk, self.name, min_size=2 * eps_nk(np.float64))
        a = self.pseudo_count
        ones, obs = sums["ones"] + a, sums["zeros"] + sums["ones"] + 2 * a
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(obs > 0, ones / np.where(obs > 0, obs, 1.0), 0.5)
        return {"probabilities": np.clip(p, 0.0, 1.0)}

    def n_parameters(self, comp):
        return int(np.size(comp["probabilities"]))

    def sample(self, comp, counts, rng):
        P = np.asarray(comp["probabilities"], dtype=np.float64)
        parts = [(rng.random((int(n), P.shape[1])) < p[None, :]).astype(np.float64) for p, n in zip(P, counts)]
        return np.vstack(parts) if parts else np.empty((0, P.shape[1]))

    def check_params(self, comp, K, D):
        P = np.asarray(comp["probabilities"], dtype=np.float64)
        if P.shape != (K, D):
            raise ValueError(f"probabilities must have shape ({K}, {D}). Got {P.shape}.")
        if not np.all(np.isfinite(P)) or np.any(P < 0) or np.any(P > 1):
            raise ValueError("probabilities must be finite and in [0, 1].")
        return {"probabilities": P}

