"""VEI: diagonal, varying volume, equal shape, ``Sigma_k = lambda_k A``.

No closed form. Iterative M-step (Celeux & Govaert 1995, model
[lambda_k B]), alternating the two conditional maximizers of Q:

- ``A = diag(sum_k W_k / lambda_k) / |diag(sum_k W_k / lambda_k)|^(1/d)``
- ``lambda_k = tr(W_k A^{-1}) / (n_k d)``

Each update maximizes Q in one block with the other fixed, so Q never
decreases; at the ``lambda`` update ``Q = -d/2 sum_k n_k log lambda_k + const``,
which is the quantity monitored (relative change below ``INNER_TOL``).
"""

from __future__ import annotations

import numpy as np

from ._eigen import INNER_MAX_ITER, INNER_TOL, MclustDiagonal, relative_change


class VEI(MclustDiagonal):
    name = "VEI"

    @staticmethod
    def n_cov_parameters(K, D):
        return K + (D - 1)

    @staticmethod
    def solve(w, nk):
        d = w.shape[1]
        nkd = nk * d
        lam = w.sum(axis=1) / nkd
        obj = np.inf
        # the loop's arithmetic is unit_det's, inlined under one errstate
        # (entered once per M-step, not once per inner iteration)
        with np.errstate(divide="ignore", invalid="ignore"):
            for _ in range(INNER_MAX_ITER):
                a = (w / lam[:, None]).sum(axis=0)
                A = a / np.exp(np.log(a).mean(axis=-1))
                lam = (w / A).sum(axis=1) / nkd
                new = d * float((nk * np.log(lam)).sum())
                if relative_change(obj, new) < INNER_TOL:
                    break
                obj = new
        return lam[:, None] * A[None, :]
