"""Reading and writing study files (NetCDF-4 with groups, format version 1).

This is the only module that touches NetCDF. See SPEC.md section 1 for the
format; :func:`emostats.validate` for the rules a valid file obeys.
"""

import glob
import hashlib
import importlib.resources
import os
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ._atomic import write_atomically
from ._cf import cf_label
from ._fileguard import check_study_file, evict
from ._join import TOKEN_GROUPS, join_along_token
from ._results import is_results
from .errors import StudyError

__all__ = ["open_study", "load_study", "study_files", "save", "example_study", "sha256", "TOKEN_GROUPS"]

#: default on-disk chunk length along ``token``
TOKEN_CHUNK = 65_536
#: integer variables that hold ids or flags: read as stored, never masked into float64
#: (a ``_FillValue`` on them would turn ids into floats that collide above 2**53)
INTEGER_VARIABLES = ("sae_index", "conversation", "turn", "position", "feature", "rated_feature", "mentions",
                     "offset", "lag", "k")
#: attrs xarray or emostats set while a study is open; never written back to a file
RUNTIME_ATTRS = ("source_files", "split_files")


def _keep_integers(tree):
    """Integer variables read unmasked: their ``_FillValue`` moves to the encoding; on ``sae_index`` it means empty."""
    for node in tree.subtree:
        for name in INTEGER_VARIABLES:
            if name not in node.variables:
                continue
            var = node.variables[name]
            fill = var.attrs.pop("_FillValue", None)
            if fill is None:
                continue
            var.encoding["_FillValue"] = fill
            if name == "sae_index" and var.dtype.kind in "iu" and np.asarray(fill).item() != -1:
                node.dataset = node.to_dataset(inherit=False).assign(
                    sae_index=node[name].where(node[name] != fill, -1).astype(var.dtype))


def _open_one(path, chunks):
    """One study file as a DataTree; every failure closes what was opened and is one line."""
    path = Path(path)
    check_study_file(path)
    # A handle to this file that xarray still caches (a lazily opened tree of the caller's, say)
    # can crash netCDF-C/HDF5 when the file is opened again and that handle is finalised later;
    # closed here, xarray reopens it on the caller's next access.
    evict(path)
    tree = None
    try:
        with warnings.catch_warnings():
            # chunks that cut the stored chunks are the user's choice, not a problem
            warnings.filterwarnings("ignore", message="The specified chunks separate")
            tree = xr.open_datatree(path, engine="netcdf4", chunks=chunks,
                                    mask_and_scale={name: False for name in INTEGER_VARIABLES})
            if chunks is None:
                # In memory and closed: an open handle finalised by the garbage collector
                # while the same file is opened again can crash HDF5 (seen in tests).
                tree.load()
                tree.close()
        _keep_integers(tree)
        return tree
    except BaseException as exc:
        if tree is not None:
            tree.close()
        evict(path)  # a failed open leaves no handle in xarray's file cache
        if isinstance(exc, Exception) and not isinstance(exc, StudyError):
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StudyError(f"{path}: cannot be read as NetCDF-4 ({type(exc).__name__}: {message})") from None
        raise


def study_files(study):
    """The files of a study argument: a path, a glob pattern, or a sequence of them (in order).

    A string that names no file but contains ``*``, ``?`` or ``[`` is a glob
    pattern; its matches are taken in sorted order.

    Examples
    --------
    >>> import emostats as es
    >>> [p.name for p in study_files(str(es.example_study().parent / "example_*.nc"))]
    ['example_study.nc']
    """
    items = [study] if isinstance(study, (str, os.PathLike)) else list(study)
    if not items:
        raise StudyError("no study file given; give a path, a glob pattern or a list of paths")
    files = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise StudyError(f"study: expected a path, a glob pattern, a list of paths or an xarray.DataTree, "
                             f"got {type(item).__name__}")
        text = os.fspath(item)
        if not os.path.lexists(text) and glob.has_magic(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise StudyError(f"{text}: no file matches this pattern; give the path of a NetCDF study file")
            files.extend(Path(m) for m in matches)
        else:
            files.append(Path(text))
    return files


def _is_dask(tree):
    return any(var.chunks for node in tree.subtree for var in node.variables.values())


def load_study(study, chunks=None, validate=True):
    """``(tree, files)`` for any study argument: the one place a study argument is normalised.

    Parameters
    ----------
    study : str, Path, glob pattern, sequence of them, or xarray.DataTree
        See :func:`open_study`.
    chunks, validate
        As for :func:`open_study`.

    Returns
    -------
    tree : xarray.DataTree
    files : list of Path
        The files read (for a DataTree, those recorded in its ``source_files``
        attribute when it was opened, else empty).

    Examples
    --------
    >>> import emostats as es
    >>> tree, files = load_study(es.example_study())
    >>> [f.name for f in files]
    ['example_study.nc']
    """
    if isinstance(study, xr.Dataset):
        study = xr.DataTree(study)
    if isinstance(study, xr.DataTree):
        files = [Path(p) for p in str(study.attrs.get("source_files", "")).split(";") if p]
        tree = study.chunk(chunks) if chunks is not None else study
    else:
        files = study_files(study)
        trees = []
        try:
            for path in files:
                trees.append(_open_one(path, chunks))
            tree = trees[0] if len(trees) == 1 else join_along_token(trees, [str(p) for p in files])
        except BaseException:
            for t in trees:
                t.close()
            raise
        tree.attrs["source_files"] = ";".join(str(p) for p in files)
        if len(files) > 1:
            tree.attrs["split_files"] = len(files)
    if validate:
        _refuse_invalid(tree, files)
    return tree, files


def _refuse_invalid(tree, files):
    from .validation import problems_with_severity

    try:
        errors, warns = problems_with_severity(tree)
    except BaseException:
        tree.close()
        raise
    if errors:
        tree.close()  # never leave a handle for the garbage collector to finalise
        where = f"{files[0]}: " if files else ""
        if is_results(tree):
            raise StudyError(f"{files[0] if files else 'the tree'} is a results file of 'emostats run', not a study; give the study it was "
                             f"computed from, or pass the results to 'emostats report'")
        more = f" (and {len(errors) - 1} more problems; run 'emostats validate')" if len(errors) > 1 else ""
        raise StudyError(f"{where}{errors[0]}{more}")
    for message in warns:
        warnings.warn(message, stacklevel=3)


def open_study(path_or_paths, chunks=None, validate=True):
    """Open a study (a file, a glob, several files that concatenate along ``token``, or a DataTree).

    Parameters
    ----------
    path_or_paths : str, Path, glob pattern, sequence of them, or xarray.DataTree
        One NetCDF-4 study file; a glob pattern such as ``"parts/study-*.nc"``
        (matches in sorted order); the parts of a study split along ``token``
        (concatenated in the order given, every other dim aligned by label);
        or a study already in memory, which is validated and returned.
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
    >>> es.open_study(tree) is tree
    True
    """
    return load_study(path_or_paths, chunks=chunks, validate=validate)[0]


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
                enc["chunksizes"] = tuple(max(1, min(TOKEN_CHUNK, s) if d == "token" else s)
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
    # A tree read into memory may replace the file it came from (the rename is atomic);
    # one still reading that file lazily may not.
    inputs = [p for p in str(tree.attrs.get("source_files", "")).split(";") if p] if _is_dask(tree) else []
    out = tree.copy()
    out.attrs = {k: v for k, v in tree.attrs.items() if k not in RUNTIME_ATTRS}
    out = cf_label(out)  # long_name/units/Conventions, no machine paths (emostats._cf)
    encoding = _encoding(out, compress)
    write_atomically(path, lambda tmp: out.to_netcdf(tmp, engine="netcdf4", encoding=encoding),
                     force=force, inputs=inputs)


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
