"""EII: spherical, equal volume, ``Sigma_k = lambda I``.

M-step (Celeux & Govaert 1995, model [lambda I]): ``lambda = tr(W) / (n d)``
with ``W = sum_k W_k``.
"""

from __future__ import annotations

import numpy as np

from ._eigen import MclustDiagonal


class EII(MclustDiagonal):
    name = "EII"

    @staticmethod
    def n_cov_parameters(K, D):
        return 1

    @staticmethod
    def solve(w, nk):
        lam = w.sum() / (nk.sum() * w.shape[1])
        return np.full_like(w, lam)
