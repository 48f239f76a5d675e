"""Registry of component families.

Adding a family is one module, one :func:`register_family` line at the end of
:mod:`emix.families` and one row in ``tests/test_family_contract.py``. The
name is resolved once, at the API edge; nothing downstream switches on it.
"""

from __future__ import annotations

_FAMILIES: dict = {}


def register_family(name, factory):
    """Register ``factory(**options) -> ComponentFamily`` under ``name``."""
    _FAMILIES[name] = factory


def family_names() -> tuple:
    """Registered family names. ``MixtureModel(family='gaussian')`` uses
    :class:`emix.GaussianMixture`'s kernels; the registered 'gaussian' family
    (the same model behind the protocol) serves mixed data; 'mixed' is what a
    mapping or 'auto' resolves to."""
    return tuple(_FAMILIES)


def get_family(name, **options):
    """The family registered under ``name``, built with ``options``.

    Raises
    ------
    ValueError
        If ``name`` is not registered.
    """
    try:
        factory = _FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"family must be one of {sorted(_FAMILIES)} or a mapping of columns to them. "
                         f"Got {name!r}.") from None
    return factory(**options)
