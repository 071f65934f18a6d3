"""Reading and writing study files (NetCDF-4 with groups, format version 1).

This is the only module that touches NetCDF. See SPEC.md section 1 for the
format; :func:`emostats.validate` for the rules a valid file obeys.
"""

import hashlib
import importlib.resources
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ._atomic import atomic_path
from .errors import StudyError

__all__ = ["open_study", "save", "example_study", "sha256", "TOKEN_GROUPS"]

#: groups whose variables run along the ``token`` dim and concatenate across files
TOKEN_GROUPS = ("tokens", "random")
_NETCDF_MAGIC = (b"\x89HDF\r\n\x1a\n", b"CDF\x01", b"CDF\x02", b"CDF\x05")
#: default on-disk chunk length along ``token``
TOKEN_CHUNK = 65_536


def _open_one(path, chunks):
    path = Path(path)
    if not path.exists():
        raise StudyError(f"{path}: no such file; give the path of a NetCDF study file")
    if path.is_dir():
        raise StudyError(f"{path}: is a folder, not a NetCDF study file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not any(head.startswith(m) for m in _NETCDF_MAGIC):
        raise StudyError(f"{path}: not a NetCDF file (starts with {head[:4]!r}); "
                         f"emostats studies are NetCDF-4 files with groups")
    try:
        with warnings.catch_warnings():
            # chunks that cut the stored chunks are the user's choice, not a problem
            warnings.filterwarnings("ignore", message="The specified chunks separate")
            tree = xr.open_datatree(path, engine="netcdf4", chunks=chunks)
            if chunks is None:
                # In memory and closed: an open handle finalised by the garbage collector
                # while the same file is opened again can crash HDF5 (seen in tests).
                tree.load()
                tree.close()
            return tree
    except Exception as exc:  # netCDF4 raises OSError/RuntimeError/ValueError variously
        raise StudyError(f"{path}: cannot be read as NetCDF-4 ({type(exc).__name__}: {exc})") from exc


def _concat_along_token(trees, paths):
    """Concatenate the token-dim groups of several study files; other groups must agree."""
    first = trees[0]
    groups = {}
    for node in first.subtree:
        name = node.path
        if node.path.strip("/") in TOKEN_GROUPS:
            parts = []
            for tree, path in zip(trees, paths):
                if name.strip("/") not in tree.children:
                    raise StudyError(f"{path}: group {name} missing; every file of a split study "
                                     f"must have the token groups of the first file ({paths[0]})")
                parts.append(tree[name].to_dataset(inherit=False))
            try:
                groups[name] = xr.concat(parts, dim="token", data_vars="minimal", coords="minimal",
                                         compat="override", join="override")
            except ValueError as exc:
                raise StudyError(f"{name}: files of a split study do not concatenate along token: {exc}") from exc
        else:
            groups[name] = node.to_dataset(inherit=False)
    tree = xr.DataTree.from_dict(groups)
    tree.attrs = dict(first.attrs)
    tree.attrs["split_files"] = len(paths)
    return tree


def open_study(path_or_paths, chunks=None, validate=True):
    """Open a study file (or several that concatenate along ``token``) as a DataTree.

    Parameters
    ----------
    path_or_paths : str, Path or sequence of them
        One NetCDF-4 study file, or the parts of a study split along ``token``
        (the token groups are concatenated in the order given).
    chunks : dict or None
        ``None`` (default) reads the study into memory and closes the file;
        a dict such as ``{"token": 100_000}`` gives lazy dask-backed arrays
        (the file stays open while the tree is in use).
    validate : bool
        Check the study with :func:`emostats.validate` and raise on the first
        problem. NaN/inf activations only warn: analyses mask them pairwise.

    Returns
    -------
    xarray.DataTree

    Examples
    --------
    >>> import emostats as es
    >>> tree = es.open_study(es.example_study())
    >>> int(tree.attrs["emostats_format"])
    1
    """
    paths = [path_or_paths] if isinstance(path_or_paths, (str, Path)) else list(path_or_paths)
    if not paths:
        raise StudyError("no study file given")
    trees = [_open_one(p, chunks) for p in paths]
    tree = trees[0] if len(trees) == 1 else _concat_along_token(trees, paths)
    tree.attrs.setdefault("source_files", ";".join(str(Path(p)) for p in paths))
    if validate:
        from .validation import problems_with_severity

        errors, warns = problems_with_severity(tree)
        if errors:
            tree.close()  # never leave a handle for the garbage collector to finalise
            from .runner import RESULTS_MARKER

            if RESULTS_MARKER in tree.attrs:
                raise StudyError(f"{paths[0]} is a results file of 'emostats run', not a study; give the study "
                                 f"it was computed from, or pass the results to 'emostats report'")
            more = f" (and {len(errors) - 1} more problems; run 'emostats validate')" if len(errors) > 1 else ""
            raise StudyError(f"{paths[0]}: {errors[0]}{more}")
        for message in warns:
            warnings.warn(message, stacklevel=2)
    return tree


def _encoding(tree, compress):
    encoding = {}
    for node in tree.subtree:
        ds = node.to_dataset(inherit=False)
        group = {}
        for name, var in ds.variables.items():
            if var.dtype.kind in "OUS" or var.ndim == 0:
                continue
            enc = {}
            if compress:
                enc.update(zlib=True, complevel=4, shuffle=True)
            if "token" in var.dims:
                enc["chunksizes"] = tuple(min(TOKEN_CHUNK, s) if d == "token" else s
                                          for d, s in zip(var.dims, var.shape))
            if enc:
                group[name] = enc
        if group:
            encoding[node.path] = group
    return encoding


def save(tree, path, force=False, compress=True):
    """Write a study or results tree atomically to NetCDF-4.

    The tree is written to a temporary file in the target's folder, fsynced
    and renamed, so an interrupted save leaves no partial file and any earlier
    file intact. Variables are zlib-compressed and chunked along ``token``.

    Parameters
    ----------
    tree : xarray.DataTree
    path : str or Path
    force : bool
        Replace an existing file.
    compress : bool
        zlib level 4 with shuffle (default True).

    Examples
    --------
    >>> import tempfile, pathlib, emostats as es
    >>> tree = es.open_study(es.example_study())
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "copy.nc"
    >>> es.save(tree, out)
    >>> es.save(tree, out)
    Traceback (most recent call last):
    ...
    emostats.errors.OutputExistsError: output ... exists; pass --force (force=True) to replace it
    """
    if isinstance(tree, xr.Dataset):
        tree = xr.DataTree(tree)
    inputs = [p for p in str(tree.attrs.get("source_files", "")).split(";") if p]
    with atomic_path(path, force=force, inputs=inputs) as tmp:
        tree.to_netcdf(tmp, engine="netcdf4", encoding=_encoding(tree, compress))


def example_study():
    """Path of the example study shipped inside the package.

    Examples
    --------
    >>> example_study().name
    'example_study.nc'
    """
    path = Path(str(importlib.resources.files("emostats") / "data" / "example_study.nc"))
    if not path.exists():
        raise StudyError(f"the example study {path} is missing from this installation; reinstall emostats")
    return path


def sha256(path_or_paths):
    """Hex SHA-256 of a file; for several files, of their hashes joined in order.

    Examples
    --------
    >>> len(sha256(example_study()))
    64
    """
    paths = [path_or_paths] if isinstance(path_or_paths, (str, Path)) else list(path_or_paths)
    digests = []
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digests.append(h.hexdigest())
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def as_numpy(array):
    """Materialise an xarray/dask array as a NumPy array (no copy when already NumPy)."""
    values = getattr(array, "data", array)
    if hasattr(values, "compute"):
        values = values.compute()
    return np.asarray(values)
