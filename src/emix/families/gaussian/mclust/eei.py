"""EEI: diagonal, equal volume and shape, ``Sigma_k = lambda A``.

M-step (Celeux & Govaert 1995, model [lambda B]): ``lambda A = diag(W) / n``.
"""

from __future__ import annotations

import numpy as np

from ._eigen import MclustDiagonal


class EEI(MclustDiagonal):
    name = "EEI"

    @staticmethod
    def n_cov_parameters(K, D):
        return D

    @staticmethod
    def solve(w, nk):
        return np.broadcast_to(w.sum(axis=0) / nk.sum(), w.shape).copy()
