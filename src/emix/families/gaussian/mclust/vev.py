"""VEV: ellipsoidal, equal shape, varying volume and orientation,
``Sigma_k = lambda_k D_k A D_k^T``.

No closed form. Iterative M-step (Celeux & Govaert 1995, model
[lambda_k D_k A D_k^T]): with ``W_k = L_k Omega_k L_k^T`` (eigenvalues in
decreasing order) the orientation is ``D_k = L_k`` whatever ``A`` (sorted in
decreasing order too), then alternate

- ``A = M / |M|^(1/d)`` with ``M = sum_k Omega_k / lambda_k``
- ``lambda_k = tr(Omega_k A^{-1}) / (n_k d)``

Q never decreases; ``-d/2 sum_k n_k log lambda_k`` is monitored until its
relative change is below ``INNER_TOL``.
"""

from __future__ import annotations

import numpy as np

from ._eigen import (
    INNER_MAX_ITER,
    INNER_TOL,
    MclustFull,
    compose,
    eigh_desc,
    relative_change,
    unit_det,
)


class VEV(MclustFull):
    name = "VEV"

    @staticmethod
    def n_cov_parameters(K, D):
        return K + (D - 1) + K * D * (D - 1) // 2

    @staticmethod
    def solve(W, nk):
        d = W.shape[1]
        omega, L = eigh_desc(W)
        lam = omega.sum(axis=1) / (nk * d)
        obj = np.inf
        for _ in range(INNER_MAX_ITER):
            A = unit_det((omega / lam[:, None]).sum(axis=0))
            lam = (omega / A).sum(axis=1) / (nk * d)
            new = d * float(np.sum(nk * np.log(lam)))
            if relative_change(obj, new) < INNER_TOL:
                break
            obj = new
        return compose(L, lam[:, None] * A[None, :])
