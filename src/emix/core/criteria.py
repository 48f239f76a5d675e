"""Information criteria.

Convention: **lower is better**, as scikit-learn's ``bic``/``aic``:

- ``BIC = -2 log L + p log n`` (Schwarz 1978)
- ``AIC = -2 log L + 2 p`` (Akaike 1974)
- ``ICL = BIC - 2 sum_n log max_k r_nk`` (Biernacki, Celeux & Govaert 2000,
  with the MAP classification as in mclust's ``icl``).

mclust reports ``2 log L - p log n`` (higher is better): its BIC is minus ours.
With sample weights, ``log L`` is the weighted sum and ``n`` the sum of weights,
so integer weights give the same values as repeated rows.
"""

from __future__ import annotations

import math


def n_parameters(structure, n_components, n_features, *, equal_proportions=False, noise=False) -> int:
    """Free parameters: covariances + means + (K - 1) mixing weights.

    ``equal_proportions`` drops the K - 1 weights; a uniform ``noise``
    component adds one, its weight ``pi_0`` (its volume is fixed before the
    fit, from the data or by the user, and is not counted).
    """
    K, D = n_components, n_features
    n_weights = 0 if equal_proportions else K - 1
    return int(structure.n_cov_parameters(K, D) + K * D + n_weights + (1 if noise else 0))


def bic(loglik, n_params, n_eff):
    return -2.0 * loglik + n_params * math.log(n_eff)


def aic(loglik, n_params):
    return -2.0 * loglik + 2.0 * n_params


def icl(loglik, n_params, n_eff, sum_log_max_resp):
    return bic(loglik, n_params, n_eff) - 2.0 * sum_log_max_resp
