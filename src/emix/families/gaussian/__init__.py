"""Registry of Gaussian covariance structures.

Each structure lives in one module and provides the same functions (see
:class:`emix.families.gaussian._common.CovarianceStructure`). The covariance
type is resolved once, at the API edge, with :func:`get_structure`; nothing
downstream switches on its name.

Adding a structure is one new module, one :func:`register_structure` line
below, and one row in the contract test table (``tests/test_contract.py``).
"""

from __future__ import annotations

from ._common import CovarianceStructure
from .diag import Diag
from .full import Full
from .spherical import Spherical
from .tied import Tied

_REGISTRY: dict[str, CovarianceStructure] = {}


def register_structure(structure: CovarianceStructure, *aliases: str) -> None:
    """Register a covariance structure under its ``name`` and optional aliases."""
    for key in (structure.name, *aliases):
        _REGISTRY[key] = structure


def structure_names() -> tuple[str, ...]:
    """Names accepted as ``covariance_type``."""
    return tuple(_REGISTRY)


def get_structure(name) -> CovarianceStructure:
    """The covariance structure registered under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a registered covariance type.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"covariance_type must be one of {sorted(_REGISTRY)}. Got {name!r}."
        ) from None


register_structure(Full)
register_structure(Tied)
register_structure(Diag)
register_structure(Spherical)

__all__ = ["CovarianceStructure", "get_structure", "register_structure", "structure_names"]

# mclust's eigen-decomposed models (emix.families.gaussian.mclust); VVV is
# 'full' itself, the other three scikit-learn equivalents (EEE, VVI, VII) give
# the same estimates as 'tied', 'diag', 'spherical' in (K, D, D) storage.
from . import mclust as _mclust  # noqa: E402

register_structure(Full, "VVV")
for _s in _mclust.STRUCTURES:
    register_structure(_s)
