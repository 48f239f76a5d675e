"""mclust's 14 eigen-decomposed covariance models (plus the univariate E, V).

``Sigma_k = lambda_k D_k A_k D_k^T`` (Banfield & Raftery 1993; Celeux &
Govaert 1995; Browne & McNicholas 2014 for EVE/VVE), one module per model,
each implementing :class:`~emix.families.gaussian._common.CovarianceStructure`.
Shared pieces live in :mod:`._eigen`. ``VVV`` is ``covariance_type='full'``
itself (the same object, registered under both names).
"""

from __future__ import annotations

from ..full import Full
from .eee import EEE
from .eei import EEI
from .eev import EEV
from .eii import EII
from .eve import EVE
from .evi import EVI
from .evv import EVV
from .univariate import E, V
from .vee import VEE
from .vei import VEI
from .vev import VEV
from .vii import VII
from .vve import VVE
from .vvi import VVI

VVV = Full

#: mclust's model names in mclust's order.
MCLUST_MODELS = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI",
    "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)

STRUCTURES = (EII, VII, EEI, VEI, EVI, VVI, EEE, VEE, EVE, VVE, EEV, VEV, EVV, E, V)

__all__ = [
    "E", "EEE", "EEI", "EEV", "EII", "EVE", "EVI", "EVV", "MCLUST_MODELS",
    "STRUCTURES", "V", "VEE", "VEI", "VEV", "VII", "VVE", "VVI", "VVV",
]
