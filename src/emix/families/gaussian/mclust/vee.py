"""VEE: ellipsoidal, varying volume, equal shape and orientation,
``Sigma_k = lambda_k C`` with ``|C| = 1``.

No closed form. Iterative M-step (Celeux & Govaert 1995, model
[lambda_k C]), alternating the two conditional maximizers of Q:

- ``C = M / |M|^(1/d)`` with ``M = sum_k W_k / lambda_k``
- ``lambda_k = tr(W_k C^{-1}) / (n_k d)``

Q never decreases; ``-d/2 sum_k n_k log lambda_k`` (Q up to a constant after
the ``lambda`` update) is monitored until its relative change is below
``INNER_TOL``.
"""

from __future__ import annotations

import numpy as np

from ._eigen import INNER_MAX_ITER, INNER_TOL, MclustFull, relative_change


class VEE(MclustFull):
    name = "VEE"

    @staticmethod
    def n_cov_parameters(K, D):
        return K + D * (D + 1) // 2 - 1

    @staticmethod
    def solve(W, nk):
        d = W.shape[1]
        nkd = nk * d
        lam = np.trace(W, axis1=1, axis2=2) / nkd
        obj = np.inf
        for _ in range(INNER_MAX_ITER):
            M = (W / lam[:, None, None]).sum(axis=0)
            sign, logdet = np.linalg.slogdet(M)
            C = M / np.exp(logdet / d)
            Cinv = np.linalg.inv(C)
            lam = np.einsum("kij,ji->k", W, Cinv) / nkd
            new = d * float((nk * np.log(lam)).sum())
            if relative_change(obj, new) < INNER_TOL:
                break
            obj = new
        return lam[:, None, None] * C[None]
