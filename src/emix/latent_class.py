"""``LatentClassModel``: latent class analysis under its own name.

A thin estimator over :class:`emix.MixtureModel` with
``family='categorical'`` (see :mod:`emix.families.categorical` for the model,
the coding of the data, missing answers and the references), for users of
R's poLCA or StepMix's categorical measurement model.
"""

from __future__ import annotations

from sklearn.utils.validation import check_is_fitted

from .mixture import MixtureModel


class LatentClassModel(MixtureModel):
    """Latent class model (polytomous latent class analysis), fitted by EM.

    Each latent class ``k`` has its own probability ``probabilities_[k, d, c]``
    of category ``c`` in column ``d``; columns are independent within a class
    (Lazarsfeld & Henry 1968; Goodman 1974; poLCA: Linzer & Lewis 2011).
    Columns may hold strings, integers, floats, booleans or pandas
    categoricals, any number of categories each; missing answers (None, NaN,
    ``pd.NA``) are marginalized (poLCA's ``na.rm=FALSE``). A category not
    seen at fit time raises ``ValueError`` at predict time.

    Parameters
    ----------
    n_components : int, default=1
        Number of latent classes.
    pseudo_count : float >= 0, default=0
        Dirichlet pseudo-count ``a`` added to every category count (MAP
        estimate); 0 is maximum likelihood, as poLCA.
    tol, max_iter, n_init, init_params, random_state, warm_start, verbose,
    verbose_interval, callback, working_memory, n_threads, n_jobs,
    online_mode, learning_decay, learning_offset, batches_per_pass
        As in :class:`emix.MixtureModel`. Latent class likelihoods have many
        local maxima: use several restarts (``n_init``), as poLCA's ``nrep``.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Class sizes (poLCA's ``P``).
    probabilities_ : ndarray of shape (n_components, n_features, max categories)
        ``probabilities_[k, d, c]``: probability of ``categories_[d][c]`` in
        column ``d`` for class ``k`` (poLCA's ``probs``); 0 beyond a column's
        own number of categories.
    categories_ : list of lists
        Each column's category labels, in code order (the fitted
        ``encoding_``).
    converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_, feature_names_in_
        As in :class:`emix.MixtureModel`; the log-likelihood is
        ``lower_bound_ * n_samples`` (for ``tol`` small).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import emix
    >>> rng = np.random.default_rng(0)
    >>> z = rng.integers(0, 2, 2000)
    >>> X = pd.DataFrame({q: np.where(rng.random(2000) < np.where(z, 0.9, 0.2), "yes", "no") for q in "ABCDEF"})
    >>> lca = emix.LatentClassModel(2, n_init=5, random_state=0).fit(X)
    >>> lca.categories_[0]
    ['no', 'yes']
    >>> np.round(np.sort(lca.probabilities_[:, 0, 1]), 1)  # P(A = 'yes') in each class
    array([0.2, 0.9])
    """

    def __init__(self, n_components=1, *, pseudo_count=0.0, tol=1e-3, max_iter=100, n_init=1,
                 init_params="kmeans", random_state=None, warm_start=False, verbose=0, verbose_interval=10,
                 callback=None, working_memory=None, n_threads=None, n_jobs=None, online_mode="stepwise",
                 learning_decay=0.7, learning_offset=2.0, batches_per_pass=None):
        self.n_components = n_components
        self.pseudo_count = pseudo_count
        self.tol = tol
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

    # MixtureModel reads these; here they follow from the constructor.
    covariance_type = "full"
    reg_covar = 0.0

    @property
    def family(self):
        return "categorical"

    @property
    def family_options(self):
        return {"pseudo_count": self.pseudo_count}

    @property
    def categories_(self):
        """Each column's category labels, in code order."""
        check_is_fitted(self)
        return self.encoding_
