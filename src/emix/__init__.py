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

# Public names are imported on first use (PEP 562), so that ``import emix`` and
# the command line (``emix --version``, ``--help``, reading a file) do not pay for
# scikit-learn and scipy.stats (about a second) before they need them. To export
# a new name, add it here as ``"Name": "module"`` (relative to emix) and to
# __all__; do not add an eager ``from .module import Name`` line.
_LAZY = {
    "BayesianGaussianMixture": "bayesian",
    "GaussianMixture": "estimator",
    "ConvergenceWarning": "exceptions",
    "DegenerateComponentError": "exceptions",
    "DegenerateRestartWarning": "exceptions",
    "ModelFileError": "exceptions",
    "NotFittedError": "exceptions",
    "SingularFitWarning": "exceptions",
    "load": "io",
    "save": "io",
    "LatentClassModel": "latent_class",
    "MixtureModel": "mixture",
    "select": "selection",
    "StudentTMixture": "student_t_estimator",
}


#: Submodules reachable as attributes (``emix.io.save``, ``emix.datasets``...), as when they
#: were imported eagerly.
_SUBMODULES = ("io", "datasets", "selection", "estimator", "mixture", "bayesian", "families", "core",
               "backends", "plotting", "report", "testing", "online", "exceptions", "cli", "latent_class",
               "student_t_estimator")


def __getattr__(name):
    from importlib import import_module

    module = _LAZY.get(name)
    if module is None:
        if name in _SUBMODULES:
            return import_module(f".{name}", __name__)  # sets the attribute itself
        raise AttributeError(f"module 'emix' has no attribute {name!r}")

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


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
    "SingularFitWarning",
    "StudentTMixture",
    "__version__",
    "load",
    "save",
    "select",
]
