"""emix: mixture models fitted by Expectation-Maximization.

Design choices (see docs/design.md):

- The numerics are pure functions (``emix.core.em``): ``e_step`` turns a block
  of rows into additive sufficient statistics centered at the previous means,
  ``m_step`` turns their sum into parameters, ``fit`` is the only loop. Any way
  of splitting the rows (blocks, streams, clusters) reuses them.
- Covariance structures live one per module behind a registry
  (``emix.families.gaussian``); the name is resolved once at the API edge.
- :class:`GaussianMixture` is the only stateful object and a drop-in for
  scikit-learn's, plus sample weights, degenerate-restart survival and
  float32-stable statistics.
- Model files are ``.npz`` arrays plus a JSON header, never pickles.
"""

from ._version import __version__
from .bayesian import BayesianGaussianMixture
from .estimator import GaussianMixture
from .exceptions import (
    ConvergenceWarning,
    DegenerateComponentError,
    DegenerateRestartWarning,
    ModelFileError,
    NotFittedError,
)
from .io import load, save
from .latent_class import LatentClassModel
from .mixture import MixtureModel
from .selection import select
from .student_t_estimator import StudentTMixture

__all__ = [
    "BayesianGaussianMixture",
    "ConvergenceWarning",
    "DegenerateComponentError",
    "DegenerateRestartWarning",
    "GaussianMixture",
    "LatentClassModel",
    "MixtureModel",
    "ModelFileError",
    "NotFittedError",
    "StudentTMixture",
    "__version__",
    "load",
    "save",
    "select",
]
