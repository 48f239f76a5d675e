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
        nkd = nk * d
        lam = omega.sum(axis=1) / nkd
        obj = np.inf
        # unit_det's arithmetic inlined under one errstate (see VEI.solve)
        with np.errstate(divide="ignore", invalid="ignore"):
            for _ in range(INNER_MAX_ITER):
                a = (omega / lam[:, None]).sum(axis=0)
                A = a / np.exp(np.log(a).mean(axis=-1))
                lam = (omega / A).sum(axis=1) / nkd
                new = d * float((nk * np.log(lam)).sum())
                if relative_change(obj, new) < INNER_TOL:
                    break
                obj = new
        return compose(L, lam[:, None] * A[None, :])
