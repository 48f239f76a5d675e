"""EVI: diagonal, equal volume, varying shape, ``Sigma_k = lambda A_k``.

M-step (Celeux & Govaert 1995, model [lambda B_k]):
``A_k = diag(W_k) / |diag(W_k)|^(1/d)`` and
``lambda = sum_k |diag(W_k)|^(1/d) / n``.
"""

from __future__ import annotations

from ._eigen import MclustDiagonal, geometric_mean, unit_det


class EVI(MclustDiagonal):
    name = "EVI"

    @staticmethod
    def n_cov_parameters(K, D):
        return 1 + K * (D - 1)

    @staticmethod
    def solve(w, nk):
        lam = geometric_mean(w, axis=1).sum() / nk.sum()
        return lam * unit_det(w, axis=1)
