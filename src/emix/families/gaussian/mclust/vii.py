"""VII: spherical, varying volume, ``Sigma_k = lambda_k I``.

M-step (Celeux & Govaert 1995, model [lambda_k I]):
``lambda_k = tr(W_k) / (n_k d)``. Same estimate as
``covariance_type='spherical'``.
"""

from __future__ import annotations

import numpy as np

from ._eigen import MclustDiagonal


class VII(MclustDiagonal):
    name = "VII"

    @staticmethod
    def n_cov_parameters(K, D):
        return K

    @staticmethod
    def solve(w, nk):
        lam = w.sum(axis=1) / (nk * w.shape[1])
        return np.broadcast_to(lam[:, None], w.shape).copy()
