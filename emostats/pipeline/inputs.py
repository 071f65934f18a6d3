"""Opening a study for a run and hashing its files (the provenance of the results)."""

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from ..io import load_study, sha256, study_files

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
    files are hashed in a second thread while they are read (hashlib and
    netCDF-C both release the GIL), so the hash costs little wall time on
    two cores. ``times["time_open"]`` gets the seconds of opening and reading,
    ``times["time_sha256"]`` the seconds waited for the hash after that
    (``time_sha256_cpu`` the hashing thread's own seconds).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    given = isinstance(study, (xr.DataTree, xr.Dataset))
    hasher = None if given else _Hasher(study)  # the same files load_study opens (study_files)
    try:
        # a path, glob or list is opened and validated; an opened tree is taken as it is (as before)
        tree, paths = load_study(study, chunks=chunks, validate=not given)
    except BaseException:
        if hasher is not None:
            hasher.join()
        raise
    files = [str(p) for p in paths]
    if given:
        if not is_dask(tree):
            tree = tree.copy().load()  # the caller's tree stays as it was
    elif chunks is None:
        try:
            tree.load()
        except BaseException:
            tree.close()
            hasher.join()
            raise
    times["time_open"] = round(time.perf_counter() - t0, 4)
    times["cpu_open"] = round(time.process_time() - c0, 4)  # with the hashing thread's share
    t0 = time.perf_counter()
    digest = ""
    if hasher is not None:
        digest, seconds = hasher.join()
        times["time_sha256_cpu"] = round(seconds, 4)
    elif files and all(Path(f).is_file() for f in files):
        digest = sha256(files if len(files) > 1 else files[0])
    times["time_sha256"] = round(time.perf_counter() - t0, 4)
    return tree, digest, files


class _Hasher:
    """:func:`emostats.io.sha256` of a study's files in a daemon thread (``join()`` -> (hex or '', seconds))."""

    def __init__(self, study):
        self.digest, self.seconds, self.error = "", 0.0, None
        try:
            files = [str(p) for p in study_files(study)]
        except Exception:  # noqa: BLE001 - load_study raises the one-line error for a bad argument
            files = []
        self.thread = None
        if files and all(Path(f).is_file() for f in files):
            self.thread = threading.Thread(target=self._hash, args=(files,), name="emostats sha256", daemon=True)
            self.thread.start()

    def _hash(self, files):
        t0 = time.thread_time()
        try:
            self.digest = sha256(files if len(files) > 1 else files[0])
        except OSError as exc:  # the file went away or cannot be read: the open says why, or no digest
            self.error = exc
        self.seconds = time.thread_time() - t0

    def join(self):
        if self.thread is not None:
            self.thread.join()
        return ("" if self.error else self.digest), self.seconds
