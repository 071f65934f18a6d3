"""Top-k eigenspaces of the activation covariance (the candidates' sweep of SPEC.md analysis 4), computed once.

Eigenvectors come in order of decreasing eigenvalue, each with the sign that
makes its largest-magnitude component positive (the first such on ties). When
the k-th and (k+1)-th eigenvalues are equal the top-k eigenspace is not
unique, and LAPACK's choice is used.

Computed once, then reused (:func:`leading_eigenspace`), in this order:

1. stored with the study: optional ``/moments`` variables
   ``eigenvalues(eigen)`` (the leading ones, descending) and
   ``eigenvectors(hidden, eigen)``, written by ``emostats.moments(..., eigenvectors=...)``
   or added to an existing group with :func:`store_eigenspace`; used whenever
   they hold at least the k asked for, so an analysis does no
   eigendecomposition at all;
2. a cache in the process keyed by the sha256 of the covariance's float64
   bytes (one entry: the candidates, the emotion PCs' default null and repeated
   placebo draws of one study share one decomposition);
3. a cache on disk under the same key, for covariances of at least
   :data:`DISK_CACHE_MIN_HIDDEN` dims (a 7,168-dim decomposition takes 30-110 s
   on two cores, reading it back about 0.3 s): one ``.npz`` file per covariance
   in ``$EMOSTATS_CACHE_DIR/eigenspace`` (default ``~/.cache/emostats``, or
   ``$XDG_CACHE_HOME/emostats``; ``EMOSTATS_CACHE_DIR=off`` turns it off), with
   the eigenvalues and the leading eigenvectors the default sweep needs (hidden
   x 0.63 hidden x 8 bytes: 257 MB at 7,168). The bits are those the
   decomposition gave when it was first computed, so every later run of the
   same study gives the results of the first;
4. else computed (and kept in both caches).

The method, measured on this project's 2-core machine (OpenBLAS 0.3.31,
hidden 2,048, spread spectrum; CPU seconds, the machine shared): full
``scipy.linalg.eigh`` float64 divide and conquer (``driver="evd"``) 10.9 s;
MRRR (``"evr"``) full 14.1 s; ``subset_by_index`` top 1,371 (the default
sweep's largest k below hidden) with ``"evr"`` 12.0 s and ``"evx"`` 12.8 s;
top 256 or 1,024 with ``"evr"`` 11.4-11.6 s (the tridiagonal reduction, the
same for any subset, dominates); float32 ``"evd"`` 8.0 s but not exact (top-k
eigenspace off by a principal angle with sine 0.41, eigenvalues by 0.9%). So
the cheapest exact method for any sweep is the full float64 ``"evd"``, used
for every k.
"""

import hashlib
import os

import numpy as np
import xarray as xr

from .._fileguard import cache_root
from ..defaults import N_K
from ..errors import ArgumentError, EmostatsError

__all__ = ["covariance_array", "top_eigenvectors", "leading_eigenspace", "store_eigenspace", "clear_eigenspace_cache",
           "default_ks", "sweep_k", "eigenspace_cache_dir", "DISK_CACHE_MIN_HIDDEN"]

#: (sha256 of cov, eigenvalues (hidden,), leading eigenvectors (hidden, k)) of the last decomposition
_CACHE: dict = {}
#: covariances with at least this many dims keep their decomposition on disk (smaller ones are recomputed:
#: 1,024 dims decompose in about 1 s)
DISK_CACHE_MIN_HIDDEN = 1024


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


def _check_k(k, h):
    if isinstance(k, bool) or int(k) != k or not 1 <= int(k) <= h:
        raise ArgumentError(f"k must be an integer in [1, {h}] (the hidden size), got {k}")
    return int(k)


def _decompose(cov):
    """All eigenvalues (descending) and eigenvectors (columns, sign convention) of a finite covariance."""
    import scipy.linalg

    if not np.all(np.isfinite(cov)):
        raise EmostatsError("random directions: cov has NaN/inf values; expected a finite covariance")
    sym = (cov + cov.T) / 2
    w, q = scipy.linalg.eigh(sym, driver="evd", overwrite_a=True, check_finite=False)
    w, q = w[::-1].copy(), np.ascontiguousarray(q[:, ::-1])
    pivot = np.argmax(np.abs(q), axis=0)
    q *= np.where(q[pivot, np.arange(q.shape[1])] < 0, -1.0, 1.0)
    return w, q


def top_eigenvectors(cov, k):
    """Eigenvalues and eigenvectors of the ``k`` largest eigenvalues, largest first (always computed).

    Signs are fixed so that each eigenvector's largest-magnitude component is
    positive (the first such component on ties). :func:`leading_eigenspace` is the
    same with the stored or cached decomposition reused.

    Examples
    --------
    >>> w, q = top_eigenvectors(np.diag([1.0, 3.0, 2.0]), 2)
    >>> w.tolist(), q.T.tolist()
    ([3.0, 2.0], [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    """
    cov = np.asarray(cov, dtype=np.float64)
    k = _check_k(k, cov.shape[0])
    w, q = _decompose(cov)
    return w[:k], np.ascontiguousarray(q[:, :k])


def _stored(ds, k):
    if not isinstance(ds, xr.Dataset) or "eigenvectors" not in ds or "eigenvalues" not in ds:
        return None
    vec = ds["eigenvectors"]
    if vec.ndim != 2 or "hidden" not in vec.dims:
        raise EmostatsError(f"/moments: eigenvectors has dims {vec.dims}; expected (hidden, eigen)")
    vec = vec.transpose("hidden", ...)
    if vec.shape[1] < k:
        return None
    w = np.asarray(ds["eigenvalues"].values, dtype=np.float64)
    return w[:k], np.ascontiguousarray(vec.values[:, :k], dtype=np.float64)


def _key(cov):
    # the array's own buffer: .tobytes() would copy 411 MB at hidden 7,168 (1 s) for a 0.3 s hash
    return hashlib.sha256(memoryview(np.ascontiguousarray(cov, dtype=np.float64)).cast("B")).hexdigest()


def eigenspace_cache_dir():
    """The folder of the on-disk decompositions, or None when ``EMOSTATS_CACHE_DIR=off``.

    Examples
    --------
    >>> folder = eigenspace_cache_dir()
    >>> folder is None or folder.name == "eigenspace"
    True
    """
    root = cache_root()
    return None if root is None else root / "eigenspace"


def _disk_path(key, h):
    folder = eigenspace_cache_dir() if h >= DISK_CACHE_MIN_HIDDEN else None
    return None if folder is None else folder / f"{key}.npz"


def _disk_read(path, h, k):
    """(eigenvalues, eigenvectors (h, >= k)) from a cache file, or None (missing, too few columns, unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            w, q = f["eigenvalues"], f["eigenvectors"]
    except (OSError, ValueError, KeyError, EOFError):  # missing or damaged: computed again, and rewritten
        return None
    if w.shape != (h,) or q.ndim != 2 or q.shape[0] != h or q.shape[1] < k:
        return None
    return w, q


def _disk_write(path, w, q):
    """Write atomically (a temporary file renamed); a cache that cannot be written is skipped."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, eigenvalues=w, eigenvectors=q)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def leading_eigenspace(cov, k, *, cache=True):
    """The ``k`` largest eigenvalues and their eigenvectors, from ``/moments`` if stored, else cached or computed.

    Parameters
    ----------
    cov : xarray.Dataset, xarray.DataArray or array_like (hidden, hidden)
        The ``/moments`` group (its stored ``eigenvalues``/``eigenvectors``
        are used when they cover ``k``) or the covariance.
    k : int
        1 <= k <= hidden.
    cache : bool
        Reuse (and keep) the last decomposition of the same covariance (keyed by
        the sha256 of its float64 bytes).

    Returns
    -------
    (numpy.ndarray (k,), numpy.ndarray (hidden, k))
        Eigenvalues, descending, and eigenvectors as columns (sign convention
        of the module docstring).

    Examples
    --------
    >>> w, q = leading_eigenspace(np.diag([1.0, 3.0, 2.0]), 1)
    >>> w.tolist(), q[:, 0].tolist()
    ([3.0], [0.0, 1.0, 0.0])
    """
    arr, _ = covariance_array(cov)
    k = _check_k(k, arr.shape[0])
    stored = _stored(cov, k)
    if stored is not None:
        return stored
    if not cache:
        w, q = _decompose(arr)
        return w[:k], np.ascontiguousarray(q[:, :k])
    key = _key(arr)
    hit = _CACHE.get("entry")
    if hit is None or hit[0] != key or hit[2].shape[1] < k:
        h = arr.shape[0]
        keep = min(h, max(k, sweep_k(h)))  # what the default sweep needs, so that its later calls hit
        path = _disk_path(key, h)
        found = _disk_read(path, h, k) if path is not None else None
        if found is None:
            w, q = _decompose(arr)
            found = (w, np.ascontiguousarray(q[:, :keep]))
            del q
            if path is not None:
                _disk_write(path, *found)
        hit = _CACHE["entry"] = (key, *found)
    return hit[1][:k], np.ascontiguousarray(hit[2][:, :k])


def clear_eigenspace_cache():
    """Forget the cached decomposition (frees its memory)."""
    _CACHE.clear()


def default_ks(hidden, n_k=N_K):
    """A log-spaced sweep of distinct k from 1 to ``hidden`` (at most ``n_k`` values).

    Examples
    --------
    >>> default_ks(7168).tolist()[:6], default_ks(7168).tolist()[-1]
    ([1, 2, 3, 4, 6, 10], 7168)
    """
    return np.unique(np.round(np.geomspace(1, hidden, n_k)).astype(np.int64))


def sweep_k(hidden):
    """The eigenvectors the default candidate sweep needs: its largest k below ``hidden`` (k = hidden needs none).

    Examples
    --------
    >>> sweep_k(7168), sweep_k(1)
    (4492, 0)
    """
    ks = default_ks(hidden)
    below = ks[ks < hidden]
    return int(below.max()) if below.size else 0


def store_eigenspace(moments, k="sweep"):
    """``/moments`` with the ``k`` largest ``eigenvalues(eigen)`` and their ``eigenvectors(hidden, eigen)`` added.

    Parameters
    ----------
    moments : xarray.Dataset
        The ``/moments`` group (``cov``).
    k : int or "sweep"
        Eigenvectors to store; ``"sweep"``: as many as the default candidate
        sweep needs (its largest k below hidden, about 63% of hidden).

    Returns
    -------
    xarray.Dataset
        A copy of ``moments``; every later :func:`leading_eigenspace` call with at most
        ``k`` eigenvectors reads them instead of decomposing. Stored in float64
        (hidden x k x 8 bytes).

    Examples
    --------
    >>> import xarray as xr
    >>> m = xr.Dataset({"cov": (("hidden", "hidden_b"), np.diag([1.0, 3.0, 2.0]))})
    >>> out = store_eigenspace(m, k=2)
    >>> out["eigenvectors"].dims, out["eigenvalues"].values.tolist()
    (('hidden', 'eigen'), [3.0, 2.0])
    """
    if not isinstance(moments, xr.Dataset) or "cov" not in moments:
        raise EmostatsError("store_eigenspace: expected the /moments group (an xarray Dataset with cov)")
    arr, _ = covariance_array(moments)
    h = arr.shape[0]
    k = max(1, sweep_k(h)) if isinstance(k, str) and k == "sweep" else _check_k(k, h)
    _ = leading_eigenspace(arr, k)  # fills the cache with the full spectrum
    w = _CACHE["entry"][1][:k]
    q = _CACHE["entry"][2][:, :k]
    out = moments.copy()
    out["eigenvalues"] = (("eigen",), w, {"long_name": "eigenvalues of cov, descending"})
    out["eigenvectors"] = (("hidden", "eigen"), np.ascontiguousarray(q),
                           {"long_name": "eigenvectors of cov (columns, descending eigenvalue; largest-magnitude "
                                         "component positive)"})
    out.attrs["eigen_method"] = "scipy.linalg.eigh(driver='evd') of (cov + cov.T) / 2, float64"
    return out
