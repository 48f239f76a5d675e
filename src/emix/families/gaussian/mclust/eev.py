"""EEV: ellipsoidal, equal volume and shape, varying orientation,
``Sigma_k = lambda D_k A D_k^T``.

M-step in closed form (Celeux & Govaert 1995, model [lambda D_k A D_k^T]):
with ``W_k = L_k Omega_k L_k^T`` (eigenvalues in decreasing order),
``D_k = L_k``, ``A = Omega / |Omega|^(1/d)`` and ``lambda = |Omega|^(1/d) / n``
for ``Omega = sum_k Omega_k``; that is ``Sigma_k = L_k (Omega / n) L_k^T``.
"""

from __future__ import annotations

from ._eigen import MclustFull, compose, eigh_desc


class EEV(MclustFull):
    name = "EEV"

    @staticmethod
    def n_cov_parameters(K, D):
        return 1 + (D - 1) + K * D * (D - 1) // 2

    @staticmethod
    def solve(W, nk):
        omega, L = eigh_desc(W)
        return compose(L, omega.sum(axis=0)[None, :] / nk.sum())
