"""EEE: ellipsoidal, equal volume, shape and orientation, ``Sigma_k = Sigma``.

M-step (Celeux & Govaert 1995, model [lambda C]): ``Sigma = W / n``. Same
estimate as ``covariance_type='tied'``, stored as a (K, D, D) stack.
"""

from __future__ import annotations

import numpy as np

from ._eigen import MclustFull


class EEE(MclustFull):
    name = "EEE"

    @staticmethod
    def n_cov_parameters(K, D):
        return D * (D + 1) // 2

    @staticmethod
    def solve(W, nk):
        return np.broadcast_to(W.sum(axis=0) / nk.sum(), W.shape).copy()
