"""``StudentTMixture``: the Student-t family under its own name.

A thin estimator over :class:`emix.MixtureModel` with ``family='student_t'``
(see :mod:`emix.families.student_t` for the model, the EM updates and the
references); its constructor takes the family's options (``dof``,
``dof_init``, ``dof_bounds``) as plain parameters, as scikit-learn users
expect of a ``GaussianMixture`` look-alike.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .mixture import MixtureModel


class StudentTMixture(MixtureModel):
    """Mixture of multivariate Student-t distributions, fitted by EM.

    Heavy-tailed components: each row's weight in its component's M-step
    is ``u_nk = (nu_k + D) / (nu_k + m_nk)`` (``m_nk`` its squared
    Mahalanobis distance), so outlying rows are down-weighted instead of
    pulling means and inflating covariances (Peel & McLachlan 2000;
    McLachlan & Peel 2000, chapter 7). :meth:`scale_weights` returns each
    row's expected weight, a per-row outlier score.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : str, default='full'
        'full', 'tied', 'diag', 'spherical' (scikit-learn's shapes) or one of
        mclust's models ('EII', ..., 'VVV'; 'E', 'V' for one feature).
        ``covariances_`` holds the scale matrices ``Sigma_k`` (the component
        covariance is ``Sigma_k nu_k / (nu_k - 2)`` for ``nu_k > 2``).
    dof : {'per_component', 'shared'} or float > 0, default='per_component'
        Degrees of freedom: estimated per component, one value estimated for
        all components, or fixed at the given value.
    dof_init : float > 0, default=10.0
        Starting degrees of freedom when they are estimated.
    dof_bounds : tuple (low, high), default=(0.5, 200.0)
        Estimated degrees of freedom are kept in this interval.
    tol, reg_covar, max_iter, n_init, init_params, random_state, warm_start,
    verbose, verbose_interval, callback, working_memory, n_threads, n_jobs,
    online_mode, learning_decay, learning_offset, batches_per_pass
        As in :class:`emix.MixtureModel` (and :class:`emix.GaussianMixture`).

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        Scale matrices in the shape of ``GaussianMixture.covariances_`` for
        ``covariance_type``.
    precisions_cholesky_ : ndarray
        Cholesky factors of their inverses (same convention as scikit-learn).
    precisions_ : ndarray
        Inverses of the scale matrices.
    dof_ : ndarray of shape (n_components,)
        Degrees of freedom (all equal when ``dof`` is 'shared' or fixed).
    converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_, feature_names_in_
        As in :class:`emix.MixtureModel`.

    Examples
    --------
    >>> import numpy as np
    >>> import emix
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.standard_t(3, (300, 2)), rng.standard_t(3, (300, 2)) + 8])
    >>> tm = emix.StudentTMixture(2, random_state=0).fit(X)
    >>> np.round(np.sort(tm.means_[:, 0]))
    array([0., 8.])
    >>> bool(tm.scale_weights([[30.0, 30.0]])[0] < 0.05)  # a far outlier is down-weighted
    True
    """

    def __init__(self, n_components=1, *, covariance_type="full", dof="per_component", dof_init=10.0,
                 dof_bounds=(0.5, 200.0), tol=1e-3, reg_covar=1e-6, max_iter=100, n_init=1, init_params="kmeans",
                 random_state=None, warm_start=False, verbose=0, verbose_interval=10, callback=None,
                 working_memory=None, n_threads=None, n_jobs=None, online_mode="stepwise", learning_decay=0.7,
                 learning_offset=2.0, batches_per_pass=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.dof = dof
        self.dof_init = dof_init
        self.dof_bounds = dof_bounds
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.callback = callback
        self.working_memory = working_memory
        self.n_threads = n_threads
        self.n_jobs = n_jobs
        self.online_mode = online_mode
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.batches_per_pass = batches_per_pass

    # MixtureModel reads these two; here they follow from the constructor.
    @property
    def family(self):
        return "student_t"

    @property
    def family_options(self):
        return {"dof": self.dof, "dof_init": self.dof_init, "dof_bounds": self.dof_bounds}

    def _set_fitted(self, result, family):
        super()._set_fitted(result, family)
        self.precisions_ = family.structure.precisions(self.precisions_cholesky_)

    def scale_weights(self, X):
        """Expected scale weight of each row: ``sum_k r_nk u_nk``.

        ``u_nk = (nu_k + D) / (nu_k + m_nk)`` is the posterior mean of the
        latent precision scale of row ``n`` in component ``k`` and the
        weight the row gets in that component's M-step (McLachlan & Peel
        2000, chapter 7); ``r_nk`` are the responsibilities. Rows typical of
        their component score near 1 (above 1 close to its centre); outliers
        score near 0. Use it to flag or down-weight outlying rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        mixture, Xf = self._prepare(X)
        params = self._params()
        fam = mixture.family

        def block(Xb):
            resp = np.exp(mixture.log_resp(Xb, params)[1])
            return np.sum(resp * fam.scale_weights(Xb, params.components), axis=1)

        return self._by_blocks(Xf, block)


__all__ = ["StudentTMixture"]
