"""Ways of running the E-step over the data: the ``reduce`` seam.

A reducer is a callable ``reduce(step) -> SuffStats`` that calls
``step(X_block, w_block)`` over pieces of the data and sums the results.
"""

from .reduce import BlockReducer, default_block_rows

__all__ = ["BlockReducer", "default_block_rows"]
