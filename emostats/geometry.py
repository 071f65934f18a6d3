"""Geometry of directions against the emotion subspace (SPEC.md section 2, analysis 8).

- :func:`subspace_fraction`: ``||P d|| / ||d||`` with ``P`` the orthogonal
  projector onto the span of the basis vectors (the probe vectors): the
  fraction of a vector's norm that lies in the emotion subspace (1 = inside, 0
  = orthogonal).
- :func:`cosine`: the cosine of every vector with every basis vector.

The orthonormal basis of the span comes from the SVD ``B = U S V'`` of the
basis matrix (basis vectors as rows): the rows of ``V'`` whose singular value
exceeds the rank tolerance. The default tolerance is NumPy's
``matrix_rank`` default, ``S.max() * max(B.shape) * eps`` (float64 eps), so
exactly collinear probe vectors do not add spurious dimensions; pass ``rtol``
for ``S.max() * rtol`` instead.

Both accept NumPy arrays or DataArrays (dask-backed ones stay lazy: the work
runs per chunk through ``xarray.apply_ufunc``). A zero vector gets NaN, with a
``RuntimeWarning`` (for dask-backed vectors the count is not known in advance,
so no warning).
"""

import warnings

import numpy as np
import xarray as xr

from .errors import DegenerateWarning, EmostatsError

__all__ = ["subspace_fraction", "cosine", "orthonormal_basis"]


def orthonormal_basis(basis_vectors, rtol=None):
    """Orthonormal rows spanning the rows of ``basis_vectors`` (SVD with a rank tolerance).

    Parameters
    ----------
    basis_vectors : array_like (m, hidden)
    rtol : float, optional
        Relative tolerance: singular values ``<= rtol * S.max()`` are dropped.
        Default: NumPy ``matrix_rank``'s ``max(m, hidden) * eps``.

    Returns
    -------
    numpy.ndarray (rank, hidden)

    Examples
    --------
    >>> orthonormal_basis([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0]]).shape
    (2, 3)
    """
    b = np.asarray(basis_vectors, dtype=np.float64)
    if b.ndim != 2 or b.shape[0] == 0:
        raise EmostatsError(f"basis vectors must be a non-empty 2-D array (basis, hidden), got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        raise EmostatsError("basis vectors contain NaN/inf; expected finite probe vectors")
    _, s, vt = np.linalg.svd(b, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        raise EmostatsError("basis vectors are all zero; expected probe vectors that span a subspace")
    tol = s[0] * (max(b.shape) * np.finfo(np.float64).eps if rtol is None else float(rtol))
    return vt[s > tol]


def _as_dataarray(x, default_dims, dim):
    if isinstance(x, xr.DataArray):
        if x.ndim != 2 or dim not in x.dims:
            raise EmostatsError(f"expected a 2-D DataArray with a '{dim}' dim, got dims {x.dims}")
        return x.transpose(..., dim)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise EmostatsError(f"expected a 2-D array ({default_dims[0]}, {dim}), got shape {arr.shape}")
    return xr.DataArray(arr, dims=(default_dims[0], dim))


def _warn_zero(x, what, func):
    """Warn about zero rows of an eager (non-dask) DataArray (their results are NaN)."""
    if getattr(x.data, "dask", None) is not None:
        return
    values = np.asarray(x.values, dtype=np.float64)
    zero = int((~np.any(values != 0, axis=-1)).sum())
    if zero:
        warnings.warn(f"{func}: {zero} of {values.shape[0]} {what} are zero vectors; their result is NaN",
                      DegenerateWarning, stacklevel=3)


def _fraction(v, basis):
    v = np.asarray(v, dtype=np.float64)
    norm = np.sqrt(np.einsum("...h,...h->...", v, v))
    proj = v @ basis.T
    inside = np.sqrt(np.einsum("...r,...r->...", proj, proj))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, inside / norm, np.nan)


def subspace_fraction(vectors, basis_vectors, rtol=None, dim="hidden"):
    """Fraction of each vector's norm inside the span of the basis vectors, ``||P d|| / ||d||``.

    Parameters
    ----------
    vectors : xarray.DataArray or array_like (vector, hidden)
        E.g. SAE decoder vectors ``/features`` ``decoder(feature, hidden)``.
    basis_vectors : xarray.DataArray or array_like (basis, hidden)
        E.g. ``/probes`` ``vector(probe, hidden)``.
    rtol : float, optional
        Rank tolerance relative to the largest singular value (module docstring).
    dim : str
        The hidden dim.

    Returns
    -------
    xarray.DataArray ``fraction`` over the vectors' other dim; attrs ``rank``, ``rtol``.

    Examples
    --------
    >>> subspace_fraction([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]], [[1.0, 0.0, 0.0]]).values.tolist()
    [0.6, 0.0]
    """
    v = _as_dataarray(vectors, ("vector",), dim)
    b = _as_dataarray(basis_vectors, ("basis",), dim)
    if v.sizes[dim] != b.sizes[dim]:
        raise EmostatsError(f"subspace_fraction: vectors have {dim}={v.sizes[dim]} but basis vectors have "
                            f"{dim}={b.sizes[dim]}; both must live in one hidden space")
    basis = orthonormal_basis(b.values, rtol=rtol)
    _warn_zero(v, "vectors", "subspace_fraction")
    out = xr.apply_ufunc(_fraction, v, kwargs={"basis": basis}, input_core_dims=[[dim]],
                         dask="parallelized", output_dtypes=[np.float64])
    out.name = "fraction"
    out.attrs.update(long_name="fraction of the vector's norm in the span of the basis vectors (||Pd||/||d||)",
                     rank=int(basis.shape[0]), n_basis=int(b.shape[0]),
                     rtol="numpy matrix_rank default" if rtol is None else float(rtol))
    return out


def _cosine(v, basis_unit):
    v = np.asarray(v, dtype=np.float64)
    norm = np.sqrt(np.einsum("...h,...h->...", v, v))[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (v @ basis_unit.T) / norm, np.nan)


def cosine(vectors, basis_vectors, dim="hidden"):
    """Cosine of every vector with every basis vector.

    Parameters
    ----------
    vectors : xarray.DataArray or array_like (vector, hidden)
    basis_vectors : xarray.DataArray or array_like (basis, hidden)
    dim : str
        The hidden dim.

    Returns
    -------
    xarray.DataArray ``cosine`` (vector dim, basis dim): the input dims' names
    (``vector``/``basis`` for arrays; the basis dim is renamed ``basis`` if
    both inputs use one name).

    Examples
    --------
    >>> cosine([[1.0, 1.0], [0.0, 2.0]], [[1.0, 0.0], [0.0, 1.0]]).values.round(4).tolist()
    [[0.7071, 0.7071], [0.0, 1.0]]
    """
    v = _as_dataarray(vectors, ("vector",), dim)
    b = _as_dataarray(basis_vectors, ("basis",), dim)
    if v.sizes[dim] != b.sizes[dim]:
        raise EmostatsError(f"cosine: vectors have {dim}={v.sizes[dim]} but basis vectors have "
                            f"{dim}={b.sizes[dim]}; both must live in one hidden space")
    bdim = b.dims[0]
    if bdim == v.dims[0]:
        b = b.rename({bdim: "basis"})
        bdim = "basis"
    _warn_zero(v, "vectors", "cosine")
    _warn_zero(b, "basis vectors", "cosine")
    bv = np.asarray(b.values, dtype=np.float64)
    bnorm = np.sqrt((bv * bv).sum(axis=1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(bnorm > 0, bv / bnorm, np.nan)
    out = xr.apply_ufunc(_cosine, v, kwargs={"basis_unit": unit}, input_core_dims=[[dim]],
                         output_core_dims=[[bdim]], dask="parallelized", output_dtypes=[np.float64],
                         dask_gufunc_kwargs={"output_sizes": {bdim: bv.shape[0]}})
    coords = {k: c for k, c in b.coords.items() if c.dims == (bdim,)}
    out = out.assign_coords(coords)
    out.name = "cosine"
    out.attrs.update(long_name="cosine of the vector with the basis vector")
    return out
