"""Exceptions raised by emix.

Every error emix raises on bad input is a subclass of a built-in exception
(``ValueError`` or ``TypeError``), so code written for scikit-learn that catches
``ValueError`` keeps working.
"""


def __getattr__(name):
    # scikit-learn's own classes (so code catching sklearn's warnings and errors
    # keeps working), imported on first use: importing scikit-learn takes about a
    # second, which the command line must not pay to print --help (PEP 562)
    if name in ("ConvergenceWarning", "NotFittedError"):
        from sklearn import exceptions

        return getattr(exceptions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConvergenceWarning",
    "DegenerateComponentError",
    "DegenerateRestartWarning",
    "ModelFileError",
    "NotFittedError",
    "SingularFitWarning",
]


#: What scikit-learn's GaussianMixture raises (a ValueError) when a covariance
#: is not positive definite after an M-step.
SKLEARN_COLLAPSE_MESSAGE = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data."
)


class DegenerateComponentError(ValueError):
    """A mixture component collapsed: its covariance is not positive definite.

    Attributes
    ----------
    component : int or None
        Index of the component that collapsed.
    effective_size : float or None
        The component's effective number of points, ``sum_n w_n r_nk``.
    """

    def __init__(self, message, *, component=None, effective_size=None):
        super().__init__(message)
        self.component = component
        self.effective_size = effective_size

    @classmethod
    def for_component(cls, component, effective_size, covariance_type, reg_covar):
        size = "unknown" if effective_size is None else f"{effective_size:.4g}"
        msg = (
            # scikit-learn's message first, for code that matches it; emix's detail follows
            f"{SKLEARN_COLLAPSE_MESSAGE} "
            f"Component {component} collapsed: its estimated covariance "
            f"({covariance_type!r}) is not positive definite; its effective "
            f"number of points is {size}. Try a larger reg_covar (got "
            f"{reg_covar:g}), fewer components, another covariance_type "
            f"(e.g. 'diag' or 'spherical'), or standardize the features."
        )
        return cls(msg, component=component, effective_size=effective_size)


class DegenerateRestartWarning(UserWarning):
    """One restart (of ``n_init``) was dropped because a component collapsed
    or the restart ended singular (see :mod:`emix._singular`)."""


class SingularFitWarning(UserWarning):
    """Every restart of a fit ended singular (see :mod:`emix._singular`): a
    component sits at the ``reg_covar`` floor or has too few points, so its
    likelihood is not a real estimate. The best of them is kept; ``select``
    does not rank such a cell."""


class ModelFileError(ValueError):
    """A model file is missing, corrupt, truncated, of an unknown format or
    inconsistent (shapes, dtypes, non-finite values, invalid parameters)."""
