"""Component families. Today: the Gaussian family and its covariance structures."""

from .gaussian import get_structure, register_structure, structure_names

__all__ = ["get_structure", "register_structure", "structure_names"]
