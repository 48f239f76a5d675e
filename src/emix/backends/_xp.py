"""Array namespaces: which library an input belongs to, and the handful of
operations the kernels need that the array API standard lacks (or that numpy
does faster in place).

The kernels in ``emix.core`` and ``emix.families.gaussian`` take the namespace
``xp`` as an argument. For numpy input it is the ``numpy`` module itself (so the
numpy path needs neither array-api-compat nor any wrapper, and every helper
below runs exactly the numpy call the kernels made before they were generic).
For PyTorch or CuPy arrays it is the array-api-compat namespace of the input,
found once per public call by :func:`namespace`.

Beyond the standard, the generic path uses numpy-style integer-array indexing
and in-place operators (``a -= b``), which PyTorch and CuPy provide; JAX arrays
(immutable) are not supported.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

#: Top-level modules whose arrays take the array-API path.
_ARRAY_API_MODULES = ("torch", "cupy", "cupyx")


def is_array_api_input(X) -> bool:
    """True for an array of a non-numpy array library emix supports (PyTorch,
    CuPy). numpy arrays, lists, pandas objects... are False (numpy path)."""
    if X is None or isinstance(X, np.ndarray):
        return False
    return type(X).__module__.split(".", 1)[0] in _ARRAY_API_MODULES


def namespace(*arrays):
    """The namespace of ``arrays``: the ``numpy`` module unless one of them is
    a PyTorch/CuPy array, then the array-api-compat namespace.

    Raises
    ------
    ImportError
        If a PyTorch/CuPy array is given and array-api-compat is missing.
    """
    others = [a for a in arrays if is_array_api_input(a)]
    if not others:
        return np
    try:
        import array_api_compat
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"Fitting {type(others[0]).__module__}.{type(others[0]).__name__} inputs needs "
            "array-api-compat: pip install 'emix[gpu]' (or pip install array-api-compat)."
        ) from None
    return array_api_compat.array_namespace(*others)


def is_numpy(xp) -> bool:
    return xp is np


def device(x):
    """The device of ``x`` (``'cpu'`` for numpy)."""
    if isinstance(x, np.ndarray):
        return "cpu"
    import array_api_compat

    return array_api_compat.device(x)


def asarray(xp, a, dtype=None, device=None):
    """``a`` (numpy, list, scalar or an array of ``xp``) as an ``xp`` array on ``device``."""
    if xp is np:
        return np.asarray(a, dtype=dtype)
    if not is_array_api_input(a):
        a = np.asarray(a)
    return xp.asarray(a, dtype=dtype, device=device)


def to_numpy(x):
    """A numpy copy (or view) of ``x``, whatever its library and device."""
    if x is None or isinstance(x, np.ndarray):
        return x
    if not is_array_api_input(x):
        return np.asarray(x)
    import array_api_compat

    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if array_api_compat.is_cupy_array(x):
        return x.get()
    return np.asarray(array_api_compat.to_device(x, "cpu"))  # pragma: no cover


def accumulation_dtype(xp, x):
    """float64 (where statistics accumulate), or float32 on a device without
    float64 (Apple MPS), with a warning that says so."""
    if xp is np:
        return np.float64
    dev = device(x)
    if getattr(dev, "type", None) == "mps":  # pragma: no cover - no such device in CI
        warnings.warn(
            "The MPS device has no float64: emix accumulates statistics in float32 there.",
            RuntimeWarning,
            stacklevel=3,
        )
        return xp.float32
    return xp.float64


def errstate(xp, **kwargs):
    """``np.errstate`` for numpy; other libraries do not warn, nothing to do."""
    return np.errstate(**kwargs) if xp is np else contextlib.nullcontext()


def _is_torch(xp):
    return getattr(xp, "__name__", "").startswith("array_api_compat.torch")


def no_grad(xp):
    """No autograd graph for PyTorch (inputs with ``requires_grad``); a no-op otherwise."""
    if _is_torch(xp):
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


# ---------------------------------------------------------------- elementwise
def exp_(xp, a):
    """``exp(a)``, overwriting ``a`` where the library allows it."""
    if xp is np:
        return np.exp(a, out=a)
    if _is_torch(xp):
        return a.exp_()
    return xp.exp(a)


def clip_min_(xp, a, v):
    """``maximum(a, v)``, overwriting ``a`` where the library allows it."""
    if xp is np:
        return np.maximum(a, v, out=a)
    if _is_torch(xp):
        return a.clamp_min_(v)
    return xp.clip(a, min=v)


def nan_to_zero_(xp, a):
    """NaN -> 0 (and +-inf -> the largest finite values, as ``np.nan_to_num``)."""
    if xp is np:
        return np.nan_to_num(a, copy=False, nan=0.0)
    if _is_torch(xp):
        return a.nan_to_num_(nan=0.0)
    return xp.where(xp.isnan(a), xp.zeros_like(a), a)


# ----------------------------------------------------------------- reductions
def rowdot(xp, a, b):
    """``sum(a * b, axis=-1)`` for 2-D ``a``, ``b`` (``np.einsum`` on numpy)."""
    if xp is np:
        return np.einsum("nd,nd->n", a, b)
    return xp.sum(a * b, axis=-1)


def frobenius_norms(xp, P):
    """``||P_k||_F`` for a (K, D, D) stack."""
    if xp is np:
        return np.sqrt(np.einsum("kde,kde->k", P, P))
    return xp.sqrt(xp.sum(P * P, axis=(1, 2)))


def matvec_stack(xp, P, m):
    """``P_k @ m_k`` for a (K, D, D) stack and (K, D) vectors."""
    if xp is np:
        return np.einsum("kde,ke->kd", P, m)
    return (P @ m[..., None])[..., 0]


def max_or(xp, a, default=0.0):
    """``float(max(a))``, or ``default`` for an empty ``a``."""
    if xp is np:
        return float(np.max(a, initial=default))
    return float(xp.max(a)) if a.shape[0] else default


def flatnonzero(xp, mask):
    """Indices (Python ints, on the host) where the 1-D boolean ``mask`` holds."""
    if xp is np:
        return np.flatnonzero(mask)
    return [int(i) for i in np.flatnonzero(to_numpy(mask))]


def array_equal(xp, a, b):
    if xp is np:
        return np.array_equal(a, b)
    return a.shape == b.shape and bool(xp.all(a == b))


# --------------------------------------------------------------- shapes, linalg
def matrix_transpose(xp, a):
    if xp is np:
        return a.transpose(0, 2, 1) if a.ndim == 3 else a.T
    return xp.linalg.matrix_transpose(a)


def diagonal(xp, a):
    """Diagonal(s) over the last two axes."""
    if xp is np:
        return np.diagonal(a, axis1=-2, axis2=-1)
    return xp.linalg.diagonal(a)


def triu_indices(xp, D, device=None):
    """Row-major upper-triangle indices ``(i, j)`` with ``i <= j``."""
    i, j = np.triu_indices(D)
    if xp is np:
        return i, j
    return xp.asarray(i, device=device), xp.asarray(j, device=device)


def cholesky_lower_stack(xp, cov):
    """Lower Cholesky factors of a (K, D, D) stack and the index of the first
    matrix that is not positive definite (None when all are). numpy is not
    handled here (the numpy kernels keep their per-matrix LAPACK loop)."""
    if _is_torch(xp):
        import torch

        L, info = torch.linalg.cholesky_ex(cov)
        bad = torch.nonzero(info).flatten()
        if bad.numel():
            return L, int(bad[0])
        return L, None
    try:
        L = xp.linalg.cholesky(cov)
    except Exception:  # CuPy raises LinAlgError or returns NaN factors
        L = None
    if L is None:
        for k in range(cov.shape[0]):
            try:
                xp.linalg.cholesky(cov[k])
            except Exception:
                return None, k
        return None, 0
    ok = xp.all(xp.isfinite(L), axis=(1, 2)) & xp.all(xp.linalg.diagonal(L) > 0, axis=1)
    bad = flatnonzero(xp, ~ok)
    return L, (int(bad[0]) if len(bad) else None)


def solve_triangular(xp, A, B, *, lower):
    """Solve ``A X = B`` for triangular ``A`` (batched over leading axes)."""
    if xp is np:
        from scipy.linalg import solve_triangular as st

        return st(A, B, lower=lower)
    if _is_torch(xp):
        import torch

        return torch.linalg.solve_triangular(A, B, upper=not lower)
    name = getattr(xp, "__name__", "")
    if "cupy" in name:  # pragma: no cover - no CuPy in CI
        from cupyx.scipy.linalg import solve_triangular as st

        if A.ndim == 2:
            return st(A, B, lower=lower)
        return xp.stack([st(A[k], B[k] if B.ndim == 3 else B, lower=lower) for k in range(A.shape[0])])
    return xp.linalg.solve(A, B)  # pragma: no cover - any other library


def eye(xp, D, dtype, device=None):
    if xp is np:
        return np.eye(D, dtype=dtype)
    return xp.eye(D, dtype=dtype, device=device)
