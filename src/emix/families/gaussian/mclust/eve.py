"""EVE: ellipsoidal, equal volume and orientation, varying shape,
``Sigma_k = lambda D A_k D^T``.

No closed form. Iterative M-step of Browne & McNicholas (2014), cycling
through the conditional maximizers of Q:

- given ``D``: ``B_k = diag(D^T W_k D)``, ``A_k = B_k / |B_k|^(1/d)``,
  ``lambda = sum_k |B_k|^(1/d) / n``;
- given the ``A_k``: one sweep of exact plane rotations of ``D`` (see
  :func:`~emix.families.gaussian.mclust._eigen.orientation_sweep`), which
  never increases ``sum_k tr(W_k D A_k^{-1} D^T)`` (Browne & McNicholas use a
  majorize-minimize step here; the sweep converges in far fewer iterations).

Q never decreases; ``-n d/2 log lambda`` (Q up to a constant) is monitored
until its relative change is below ``INNER_TOL``. ``D`` starts at the
eigenvectors of ``sum_k W_k``.
"""

from __future__ import annotations

import numpy as np

from ._eigen import (
    INNER_MAX_ITER,
    INNER_TOL,
    MclustFull,
    compose,
    eigh_desc,
    geometric_mean,
    orientation_sweep,
    relative_change,
    unit_det,
)


class EVE(MclustFull):
    name = "EVE"

    @staticmethod
    def n_cov_parameters(K, D):
        return 1 + K * (D - 1) + D * (D - 1) // 2

    @staticmethod
    def solve(W, nk):
        d = W.shape[1]
        n = nk.sum()
        _, D = eigh_desc(W.sum(axis=0))
        obj = np.inf
        for _ in range(INNER_MAX_ITER):
            B = np.einsum("ji,kjl,li->ki", D, W, D)
            A = unit_det(B, axis=1)
            lam = geometric_mean(B, axis=1).sum() / n
            new = n * d * float(np.log(lam))
            if relative_change(obj, new) < INNER_TOL:
                break
            obj = new
            D = orientation_sweep(W, D, 1.0 / A)
        return lam * compose(D[None], A)
