"""Top-k eigenspaces of the activation covariance (the candidates' sweep of SPEC.md analysis 4).

Eigenvectors come from LAPACK (``scipy.linalg.eigh``), in order of decreasing
eigenvalue, each with the sign that makes its largest-magnitude component
positive. When the k-th and (k+1)-th eigenvalues are equal the top-k
eigenspace is not unique, and LAPACK's choice is used.
"""

import numpy as np
import xarray as xr

from ..errors import EmostatsError

__all__ = ["covariance_array", "top_eigenvectors"]


def covariance_array(cov):
    """``cov`` (array, DataArray or the ``/moments`` Dataset) as float64 (hidden, hidden) and its hidden coord.

    Examples
    --------
    >>> covariance_array(np.eye(2))[0].shape
    (2, 2)
    """
    if isinstance(cov, xr.Dataset):
        if "cov" not in cov:
            raise EmostatsError("random directions: the Dataset has no 'cov' variable; pass the /moments group "
                                "or a (hidden, hidden_b) covariance")
        cov = cov["cov"]
    hidden_coord = None
    if isinstance(cov, xr.DataArray):
        if cov.dims and cov.dims[0] in cov.coords:
            hidden_coord = (cov.dims[0], cov[cov.dims[0]].values)
        cov = cov.values
    cov = np.asarray(cov, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise EmostatsError(f"random directions: cov must be a square (hidden, hidden_b) matrix, got shape {cov.shape}")
    return cov, hidden_coord


def top_eigenvectors(cov, k):
    """Eigenvalues and eigenvectors of the ``k`` largest eigenvalues, largest first.

    Signs are fixed so that each eigenvector's largest-magnitude component is
    positive (the first such component on ties).

    Examples
    --------
    >>> w, q = top_eigenvectors(np.diag([1.0, 3.0, 2.0]), 2)
    >>> w.tolist(), q.T.tolist()
    ([3.0, 2.0], [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    """
    import scipy.linalg

    cov = np.asarray(cov, dtype=np.float64)
    h = cov.shape[0]
    k = int(k)
    if not 1 <= k <= h:
        raise EmostatsError(f"k must be in [1, {h}] (the hidden size), got {k}")
    if not np.all(np.isfinite(cov)):
        raise EmostatsError("random directions: cov has NaN/inf values; expected a finite covariance")
    sym = (cov + cov.T) / 2
    if k < h // 2:
        w, q = scipy.linalg.eigh(sym, subset_by_index=[h - k, h - 1], driver="evr")
    else:
        w, q = scipy.linalg.eigh(sym, driver="evd")
        w, q = w[h - k:], q[:, h - k:]
    w, q = w[::-1].copy(), np.ascontiguousarray(q[:, ::-1])
    pivot = np.argmax(np.abs(q), axis=0)
    q *= np.where(q[pivot, np.arange(k)] < 0, -1.0, 1.0)
    return w, q
