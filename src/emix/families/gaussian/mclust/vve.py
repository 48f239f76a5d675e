"""VVE: ellipsoidal, equal orientation, varying volume and shape,
``Sigma_k = lambda_k D A_k D^T``.

No closed form. Cyclic conditional maximization of Q (Browne & McNicholas
2014), :func:`~emix.families.gaussian.mclust._eigen.common_orientation`:

- given ``D``: ``lambda_k A_k = diag(D^T W_k D) / n_k`` (a VVI fit in the
  rotated coordinates);
- given the ``lambda_k A_k``: one sweep of exact plane rotations of ``D``
  (see :func:`~emix.families.gaussian.mclust._eigen.orientation_sweep`;
  Browne & McNicholas use a majorize-minimize step here).

Q never decreases. Inside EM the cycles start at the previous orientation
and one cycle runs per M-step (a generalized EM step); alone, from the
eigenvectors of ``sum_k W_k``, they run to convergence.
"""

from __future__ import annotations

from ._eigen import MclustFull, common_orientation


class VVE(MclustFull):
    name = "VVE"
    warm_m_step = True

    @staticmethod
    def n_cov_parameters(K, D):
        return K * D + D * (D - 1) // 2

    @staticmethod
    def solve(W, nk, previous=None):
        def conditional(B):
            return B / nk[:, None]

        return common_orientation(W, nk, conditional, previous)
