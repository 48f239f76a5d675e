"""VVI: diagonal, varying volume and shape, ``Sigma_k = lambda_k A_k``.

M-step (Celeux & Govaert 1995, model [lambda_k B_k]): ``diag(W_k) / n_k``.
Same estimate as ``covariance_type='diag'``.
"""

from __future__ import annotations

from ._eigen import MclustDiagonal


class VVI(MclustDiagonal):
    name = "VVI"

    @staticmethod
    def n_cov_parameters(K, D):
        return K * D

    @staticmethod
    def solve(w, nk):
        return w / nk[:, None]
