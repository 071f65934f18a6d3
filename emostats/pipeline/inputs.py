"""Opening a study for a run and hashing its files (the provenance of the results)."""

import time
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from ..io import open_study, sha256

__all__ = ["open_inputs", "is_dask"]


def is_dask(tree: xr.DataTree) -> bool:
    """Whether any variable of the tree is dask-backed."""
    return any(var.chunks for node in tree.subtree for var in node.variables.values())


def open_inputs(study: "str | Path | Sequence[str | Path] | xr.DataTree", chunks: "dict | None",
                times: "dict[str, float]") -> "tuple[xr.DataTree, str, list[str]]":
    """(tree, sha256 or '', file names) of a path, several paths, or a DataTree.

    A study that is not dask-backed is read into memory once (every analysis
    would otherwise read the file again); a dask-backed one stays lazy. The
    seconds spent go to ``times["time_open"]`` and ``times["time_sha256"]``.
    """
    t0 = time.perf_counter()
    if isinstance(study, xr.DataTree):
        files = [p for p in str(study.attrs.get("source_files", "")).split(";") if p]
        tree = study
        if not is_dask(tree):
            tree = tree.copy().load()  # the caller's tree stays as it was
    else:
        files = [str(p) for p in ([study] if isinstance(study, (str, Path)) else list(study))]
        tree = open_study(files if len(files) > 1 else files[0], chunks=chunks)
        if chunks is None:
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
