"""What a fitted mixture of any component family has to show, as plain
tables: the one source for the command line's summary, the HTML report and
the family plots (:func:`emix.plotting.plot_class_probabilities`,
:func:`emix.plotting.plot_rates`).

A model is described by a list of *blocks*, one per group of columns with
one family (one block for a single-family model, one per member family for
mixed data):

- ``kind='probabilities'`` (bernoulli, categorical): ``rows`` is a list of
  ``(column, label)`` and ``values[r, k]`` the class-conditional probability
  that the row's column takes the row's label in component ``k`` (a
  categorical column has one row per category, a bernoulli column one row,
  for its second label);
- ``kind='rates'`` (poisson): ``values[k, j]`` the mean count of column ``j``
  in component ``k``;
- ``kind='locations'`` (gaussian members, student_t): ``means[k, j]``,
  ``scales[k, j]`` (standard deviations; for Student-t the square roots of
  the scale matrix's diagonal) and ``dof`` (K,) for Student-t, else None.

Every block has ``family`` and ``columns`` (the names of its columns).
"""

from __future__ import annotations

import numpy as np

__all__ = ["blocks", "family_name", "feature_names"]


def family_name(model):
    """The component family of a fitted model: None for a Gaussian mixture
    (:class:`emix.GaussianMixture`, or a MixtureModel with
    ``family='gaussian'``), else the family's name ('student_t', 'poisson',
    'bernoulli', 'categorical', 'mixed')."""
    fam = getattr(model, "family_", None)
    if fam is None:
        return None
    name = getattr(fam, "name", None)
    return None if name == "gaussian" else name


def feature_names(model):
    """The model's column names (``feature_names_in_``), else x0, x1, ..."""
    if hasattr(model, "feature_names_in_"):
        return [str(n) for n in model.feature_names_in_]
    return [f"x{j}" for j in range(int(model.n_features_in_))]


def _label_text(v):
    return "missing" if v is None else str(v)


def _member_block(fam_name, member, comp, columns, meta):
    """The block of one family's parameters ``comp`` over ``columns``."""
    if fam_name == "poisson":
        return {"kind": "rates", "family": "poisson", "columns": columns,
                "values": np.asarray(comp["rates"], dtype=np.float64)}
    if fam_name in ("gaussian", "student_t"):
        from .families.gaussian import get_structure

        means = np.asarray(comp["means"], dtype=np.float64)
        K, D = means.shape
        cov = np.asarray(get_structure(member.covariance_type).full_covariances(
            np.asarray(comp["covariances"]), K, D), dtype=np.float64)
        if cov.shape == (D, D):
            cov = np.broadcast_to(cov, (K, D, D))
        scales = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))
        dof = np.asarray(comp["dof"], dtype=np.float64) if "dof" in comp else None
        return {"kind": "locations", "family": fam_name, "columns": columns, "means": means, "scales": scales,
                "dof": dof, "covariance_type": member.covariance_type}
    if fam_name == "bernoulli":
        P = np.asarray(comp["probabilities"], dtype=np.float64)  # (K, D)
        rows = []
        for d, col in enumerate(columns):
            lab = list(meta[d]) if meta is not None else [0, 1]
            rows.append((col, _label_text(lab[1]) if len(lab) > 1 else f"not {_label_text(lab[0])}"))
        return {"kind": "probabilities", "family": "bernoulli", "columns": columns, "rows": rows, "values": P.T.copy()}
    if fam_name == "categorical":
        P = np.asarray(comp["probabilities"], dtype=np.float64)  # (K, D, C_max)
        rows, values = [], []
        for d, col in enumerate(columns):
            labels = list(meta[d]) if meta is not None else list(range(P.shape[2]))
            for c, lab in enumerate(labels):
                rows.append((col, _label_text(lab)))
                values.append(P[:, d, c])
        return {"kind": "probabilities", "family": "categorical", "columns": columns, "rows": rows,
                "values": np.asarray(values, dtype=np.float64).reshape(len(rows), P.shape[0])}
    return {"kind": "other", "family": fam_name, "columns": columns,
            "params": {k: np.asarray(v) for k, v in comp.items()}}


def blocks(model, names=None):
    """The parameter blocks of a fitted non-Gaussian model (module docstring).

    Parameters
    ----------
    model : fitted emix.MixtureModel (or a subclass)
    names : list of str, optional
        Column names; default :func:`feature_names`.

    Returns
    -------
    list of dict
    """
    fam = model.family_
    names = list(names) if names is not None else feature_names(model)
    if fam.name != "mixed":
        comp = {p: getattr(model, p + "_") for p in fam.param_names}
        return [_member_block(fam.name, fam, comp, names, getattr(model, "encoding_", None))]
    out = []
    for g in model.encoding_["groups"]:
        f = g["family"]
        member = fam._member(f)
        comp = {p: getattr(model, f"{f}_{p}_") for p in member.param_names}
        out.append(_member_block(f, member, comp, [names[j] for j in g["columns"]], g["meta"]))
    return out
