"""Component families.

The Gaussian family (:mod:`emix.families.gaussian`: its covariance
structures, fused kernels and mclust's models) is fitted by
:class:`emix.GaussianMixture`; every other family implements the small
protocol of :mod:`emix.families.base` and is fitted by
:class:`emix.MixtureModel`. Families are registered below, one line each.
"""

from .base import ComponentFamily, Mixture, MixtureParams, Stats
from .gaussian import get_structure, register_structure, structure_names
from .registry import family_names, get_family, register_family
from .poisson import Poisson

register_family("poisson", Poisson)
from .student_t import StudentT  # noqa: E402
register_family("student_t", StudentT)
from .categorical import Categorical  # noqa: E402
register_family("categorical", Categorical)
from .bernoulli import Bernoulli  # noqa: E402
register_family("bernoulli", Bernoulli)
from .gaussian.family import GaussianFamily  # noqa: E402
register_family("gaussian", GaussianFamily)  # the protocol view; MixtureModel(family="gaussian") uses GaussianMixture
from .mixed import Mixed  # noqa: E402
register_family("mixed", Mixed)

__all__ = [
    "ComponentFamily", "Mixture", "MixtureParams", "Stats", "family_names", "get_family",
    "get_structure", "register_family", "register_structure", "structure_names",
]
