"""Random unit directions in the hidden space (SPEC.md section 2, analysis 4).

Two null populations:

- uniform on the unit sphere of the whole hidden space (``k=None``): a
  standard normal vector divided by its norm;
- uniform on the unit sphere of the top-k eigenspace of the activation
  covariance: ``v = Q_k g / ||g||`` with ``Q_k`` the eigenvectors of the k
  largest eigenvalues and ``g`` standard normal in k dims. Sweeping k from 1
  to the hidden size gives directions whose variance explained spans the whole
  range from ``lambda_1 / tr`` down to ``1 / hidden``, which is what variance
  matching needs (the study drew 5,420 such directions).

Eigenvectors come from :func:`emostats.nullmodels.leading_eigenspace`:
stored in ``/moments`` when the study has them, else one decomposition per
covariance, cached. The top-``hidden`` eigenspace is the whole space, so
``k = hidden`` draws in the standard basis without an eigendecomposition.

Same seed, same bits: the normal draws come from ``numpy.random.default_rng(seed)``
in the order of the sweep; the eigendecomposition is deterministic for one
LAPACK build (threaded BLAS may change its last bits across thread counts).
"""

import numpy as np
import xarray as xr

from ..defaults import N_PER_K
from ..errors import EmostatsError
from .eigenspace import covariance_array, default_ks, leading_eigenspace

__all__ = ["random_directions", "random_direction_sweep", "split_evenly"]


def _seed_attr(seed):
    """The seed as an attribute value (an int, or a list of ints for a seed sequence)."""
    arr = np.atleast_1d(np.asarray(seed, dtype=np.int64))
    return int(arr[0]) if np.ndim(seed) == 0 else arr.tolist()


def split_evenly(total, parts):
    """``total`` items over ``parts`` groups, the first ones one larger when it does not divide.

    How a candidate count is spread over the k of a sweep.

    Examples
    --------
    >>> split_evenly(10, 4)
    [3, 3, 2, 2]
    """
    base, extra = divmod(int(total), int(parts))
    return [base + (i < extra) for i in range(int(parts))]


def random_direction_sweep(cov, ks=None, n_per_k=N_PER_K, seed=0):
    """Random unit directions uniform on the top-k eigenspace of ``cov`` for each k of a sweep.

    Parameters
    ----------
    cov : xarray.DataArray, xarray.Dataset or array_like (hidden, hidden)
        The activation covariance (or the ``/moments`` group, whose ``cov`` is used).
    ks : sequence of int, optional
        The k values (1 <= k <= hidden); ``None`` gives :func:`default_ks` (20
        log-spaced values from 1 to hidden). ``k = hidden`` is the whole space.
    n_per_k : int or sequence of int
        Directions per k (the default 271 x 20 values = 5,420 directions, the study's count).
    seed : int or sequence of int
        Seed of ``numpy.random.default_rng``; same seed, same directions.

    Returns
    -------
    xarray.DataArray (direction, hidden)
        Unit vectors, with coordinate ``k(direction)``.

    Examples
    --------
    >>> d = random_direction_sweep(np.diag([4.0, 3.0, 2.0, 1.0]), ks=[1, 4], n_per_k=[2, 3], seed=0)
    >>> d.sizes["direction"], d["k"].values.tolist()
    (5, [1, 1, 4, 4, 4])
    >>> bool(np.allclose((d ** 2).sum("hidden"), 1))
    True
    """
    source = cov  # the /moments Dataset may hold the eigenvectors (emostats.nullmodels.eigenspace)
    cov, hidden_coord = covariance_array(cov)
    h = cov.shape[0]
    ks = default_ks(h) if ks is None else np.atleast_1d(np.asarray(ks, dtype=np.int64))
    if ks.ndim != 1 or ks.size == 0 or ks.min() < 1 or ks.max() > h:
        raise EmostatsError(f"ks must be integers in [1, {h}] (the hidden size), got {np.asarray(ks).tolist()}")
    counts = np.broadcast_to(np.asarray(n_per_k, dtype=np.int64), ks.shape)
    if counts.min() < 0:
        raise EmostatsError(f"n_per_k must be >= 0, got {np.asarray(n_per_k).tolist()}")
    below = ks[ks < h]
    q = leading_eigenspace(source, int(below.max()))[1] if below.size else None
    rng = np.random.default_rng(seed)
    blocks = []
    for k, count in zip(ks.tolist(), counts.tolist()):
        g = rng.standard_normal((count, k))
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        blocks.append(g if k == h else g @ q[:, :k].T)
    data = np.concatenate(blocks) if blocks else np.empty((0, h))
    da = xr.DataArray(
        data, dims=("direction", "hidden"),
        coords={"direction": np.arange(data.shape[0]), "k": ("direction", np.repeat(ks, counts))},
        name="direction_vector",
        attrs={"long_name": "random unit direction, uniform on the sphere of the top-k eigenspace of cov",
               "seed": _seed_attr(seed), "ks": ks.tolist(), "n_per_k": counts.tolist()},
    )
    if hidden_coord is not None:
        da = da.assign_coords(hidden=hidden_coord[1])
    return da


def random_directions(cov, n, k=None, seed=0):
    """``n`` random unit directions: uniform on the sphere of the hidden space, or of the top-k eigenspace.

    Parameters
    ----------
    cov : xarray.DataArray, xarray.Dataset or array_like (hidden, hidden)
        The activation covariance (only its size is used when ``k`` is None).
    n : int
        Number of directions.
    k : int, optional
        Draw in the span of the eigenvectors of the ``k`` largest eigenvalues.
    seed : int

    Returns
    -------
    xarray.DataArray (direction, hidden), with coordinate ``k(direction)``
    (the hidden size when ``k`` is None).

    Examples
    --------
    >>> d = random_directions(np.eye(5), 3, seed=1)
    >>> d.shape, bool(np.allclose(np.linalg.norm(d, axis=1), 1))
    ((3, 5), True)
    """
    source = cov
    cov, hidden_coord = covariance_array(cov)
    h = cov.shape[0]
    if int(n) < 0:
        raise EmostatsError(f"n must be >= 0, got {n}")
    space = h if k is None else int(k)
    da = random_direction_sweep(source, ks=[space], n_per_k=int(n), seed=seed)
    if hidden_coord is not None:
        da = da.assign_coords(hidden=hidden_coord[1])
    da.attrs["long_name"] = ("random unit direction, uniform on the sphere of the hidden space" if k is None
                             else da.attrs["long_name"])
    return da
