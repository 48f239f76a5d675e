"""EVV: ellipsoidal, equal volume, varying shape and orientation,
``Sigma_k = lambda C_k`` with ``|C_k| = 1``.

M-step in closed form (Celeux & Govaert 1995, model [lambda C_k]):
``C_k = W_k / |W_k|^(1/d)`` and ``lambda = sum_k |W_k|^(1/d) / n``.
"""

from __future__ import annotations

import numpy as np

from ._eigen import MclustFull


class EVV(MclustFull):
    name = "EVV"

    @staticmethod
    def n_cov_parameters(K, D):
        return 1 + K * (D - 1) + K * D * (D - 1) // 2

    @staticmethod
    def solve(W, nk):
        d = W.shape[1]
        _, logdet = np.linalg.slogdet(W)
        root = np.exp(logdet / d)
        lam = root.sum() / nk.sum()
        return (lam / root)[:, None, None] * W
