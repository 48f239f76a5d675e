"""mclust's univariate names: ``E`` (equal variance) and ``V`` (variable
variance). For one feature they are EII and VII; they refuse data with more
than one feature, as mclust does."""

from __future__ import annotations

from .eii import EII
from .vii import VII


def _univariate_only(name, X):
    if X.shape[1] != 1:
        raise ValueError(
            f"covariance_type={name!r} is for univariate data (one feature). "
            f"Got {X.shape[1]} features; use {'EII' if name == 'E' else 'VII'} "
            "or another multivariate model."
        )


class E(EII):
    name = "E"

    @staticmethod
    def scatter(X, resp, shift):
        _univariate_only("E", X)
        return EII.scatter(X, resp, shift)


class V(VII):
    name = "V"

    @staticmethod
    def scatter(X, resp, shift):
        _univariate_only("V", X)
        return VII.scatter(X, resp, shift)
