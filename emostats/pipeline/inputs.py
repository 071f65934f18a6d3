"""Opening a study for a run and hashing its files (the provenance of the results)."""

import time
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from ..io import load_study, sha256

__all__ = ["open_inputs", "is_dask"]


def is_dask(tree: xr.DataTree) -> bool:
    """Whether any variable of the tree is dask-backed."""
    return any(var.chunks for node in tree.subtree for var in node.variables.values())


def open_inputs(study: "str | Path | Sequence[str | Path] | xr.DataTree", chunks: "dict | None",
                times: "dict[str, float]") -> "tuple[xr.DataTree, str, list[str]]":
    """(tree, sha256 or '', file names) of a path, a glob, several paths, or a DataTree
    (normalised by :func:`emostats.io.load_study`).

    A study that is not dask-backed is read into memory once (every analysis
    would otherwise read the file again); a dask-backed one stays lazy. The
    seconds spent go to ``times["time_open"]`` and ``times["time_sha256"]``.
    """
    t0 = time.perf_counter()
    given = isinstance(study, (xr.DataTree, xr.Dataset))
    # a path, glob or list is opened and validated; an opened tree is taken as it is (as before)
    tree, paths = load_study(study, chunks=chunks, validate=not given)
    files = [str(p) for p in paths]
    if given:
        if not is_dask(tree):
            tree = tree.copy().load()  # the caller's tree stays as it was
    elif chunks is None:
        try:
            tree.load()
        except BaseException:
            tree.close()
            raise
    times["time_open"] = round(time.perf_counter() - t0, 4)
    t0 = time.perf_counter()
    digest = ""
    if files and all(Path(f).is_file() for f in files):
        digest = sha256(files if len(files) > 1 else files[0])
    times["time_sha256"] = round(time.perf_counter() - t0, 4)
    return tree, digest, files
