"""EVE: ellipsoidal, equal volume and orientation, varying shape,
``Sigma_k = lambda D A_k D^T``.

No closed form. Cyclic conditional maximization of Q (Browne & McNicholas
2014), :func:`~emix.families.gaussian.mclust._eigen.common_orientation`:

- given ``D``: ``B_k = diag(D^T W_k D)``, ``A_k = B_k / |B_k|^(1/d)``,
  ``lambda = sum_k |B_k|^(1/d) / n`` (so ``lambda A_k = C_k``);
- given the ``A_k``: one sweep of exact plane rotations of ``D`` (see
  :func:`~emix.families.gaussian.mclust._eigen.orientation_sweep`), which
  never increases ``sum_k tr(W_k D A_k^{-1} D^T)`` (Browne & McNicholas use a
  majorize-minimize step here).

Q never decreases. Inside EM the cycles start at the previous orientation
and one cycle runs per M-step (a generalized EM step); alone, from the
eigenvectors of ``sum_k W_k``, they run to convergence.
"""

from __future__ import annotations

import numpy as np

from ._eigen import MclustFull, common_orientation


class EVE(MclustFull):
    name = "EVE"
    warm_m_step = True

    @staticmethod
    def n_cov_parameters(K, D):
        return 1 + K * (D - 1) + D * (D - 1) // 2

    @staticmethod
    def solve(W, nk, previous=None):
        n = float(np.sum(nk))

        def conditional(B):
            # |B_k|^(1/d) in log space; the caller holds numpy's warnings off
            g = np.exp(np.log(B).mean(axis=1))
            return B * (g.sum() / n / g)[:, None]

        return common_orientation(W, nk, conditional, previous)
