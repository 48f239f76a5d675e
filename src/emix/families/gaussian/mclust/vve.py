"""VVE: ellipsoidal, equal orientation, varying volume and shape,
``Sigma_k = lambda_k D A_k D^T``.

No closed form. Iterative M-step of Browne & McNicholas (2014):

- given ``D``: ``lambda_k A_k = diag(D^T W_k D) / n_k`` (a VVI fit in the
  rotated coordinates);
- given the ``lambda_k A_k``: one sweep of exact plane rotations of ``D``
  (see :func:`~emix.families.gaussian.mclust._eigen.orientation_sweep`;
  Browne & McNicholas use a majorize-minimize step here).

Q never decreases; ``-1/2 sum_k n_k log|Sigma_k|`` (Q up to a constant) is
monitored until its relative change is below ``INNER_TOL``. ``D`` starts at
the eigenvectors of ``sum_k W_k``.
"""

from __future__ import annotations

import numpy as np

from ._eigen import (
    INNER_MAX_ITER,
    INNER_TOL,
    MclustFull,
    compose,
    eigh_desc,
    orientation_sweep,
    relative_change,
)


class VVE(MclustFull):
    name = "VVE"

    @staticmethod
    def n_cov_parameters(K, D):
        return K * D + D * (D - 1) // 2

    @staticmethod
    def solve(W, nk):
        _, D = eigh_desc(W.sum(axis=0))
        obj = np.inf
        for _ in range(INNER_MAX_ITER):
            C = np.einsum("ji,kjl,li->ki", D, W, D) / nk[:, None]
            new = float(np.sum(nk * np.log(C).sum(axis=1)))
            if relative_change(obj, new) < INNER_TOL:
                break
            obj = new
            D = orientation_sweep(W, D, 1.0 / C)
        return compose(D[None], C)
