"""Checks a study path passes before the netCDF-C library touches it.

netCDF-C trusts the files it opens: a FIFO blocks it forever, and an HDF5 file
with features outside NetCDF-4 (float16 variables written by h5netcdf with
``invalid_netcdf=True``, for example) crashes the whole process with a
segmentation fault. :func:`check_study_file` therefore refuses, with one line,
everything that is not a readable regular file starting with the HDF5
signature, and then reads the file's header once in a child process: if the
child dies from a signal or hangs, the file is refused and this process never
opened it. The child's verdict is remembered per (device, inode, size, mtime),
so a file is probed once per process.

:func:`cache_root` is the one folder of emostats' caches on disk
(``$EMOSTATS_CACHE_DIR``, default ``~/.cache/emostats``; ``off`` turns them
off); :func:`remembered` / :func:`remember` keep the passing verdict of a
costly check of a file's content there, keyed by a hash of that content.

:func:`evict` removes every handle that xarray's file cache still holds for a
path after a failed open (a handle left there is finalised later, at a random
moment, and has crashed HDF5).
"""

import contextlib
import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from .errors import StudyError

__all__ = ["check_study_file", "start_probes", "evict", "PROBE_TIMEOUT", "cache_root", "remembered", "remember"]

_HDF5 = b"\x89HDF\r\n\x1a\n"
_NETCDF3 = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
#: signatures of files that are often given by mistake: (prefix, what it is, how to fix it)
_KNOWN = (
    (b"\x1f\x8b", "a gzip-compressed file", "decompress it first (gunzip)"),
    (b"PK\x03\x04", "a zip archive", "extract the study file from it"),
    (b"BZh", "a bzip2-compressed file", "decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file", "decompress it first (unxz)"),
    (b"(\xb5/\xfd", "a zstd-compressed file", "decompress it first (unzstd)"),
    (b"\x93NUMPY", "a NumPy .npy file", "save the arrays as a study with emostats.save"),
)
#: seconds the child process may take to read a header before the file is called unreadable
PROBE_TIMEOUT = 120
_PROBED = {}

# Run in a child process: walk every group and variable of the header through
# netCDF4 (what xarray does on opening) and print what was found.
_PROBE_CODE = r"""
import json, sys
import netCDF4
out = {"vars": 0}
with netCDF4.Dataset(sys.argv[1], "r") as root:
    if root.data_model != "NETCDF4":
        out["model"] = root.data_model
    stack = [root]
    while stack:
        g = stack.pop()
        for name, var in g.variables.items():
            out["vars"] += 1
            dt = var.datatype
            kind = getattr(dt, "kind", None) or getattr(getattr(dt, "dtype", None), "kind", "?")
            if isinstance(dt, netCDF4.VLType) and dt.dtype is not str:
                out.setdefault("odd", f"{g.path.rstrip('/')}/{name}: variable-length type {dt.dtype}")
            var.shape
            var.ncattrs()
        stack.extend(g.groups.values())
print(json.dumps(out))
"""


def _kind(mode):
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "not a regular file"


def _head(path):
    """First 8 bytes of a regular file (never blocks: O_NONBLOCK, checked to be regular first)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise StudyError(f"{path}: no such file; give the path of a NetCDF study file") from None
    except OSError as exc:
        raise StudyError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise StudyError(f"{path}: is a folder, not a NetCDF study file")
    if not stat.S_ISREG(st.st_mode):
        raise StudyError(f"{path}: is {_kind(st.st_mode)}, not a NetCDF study file; give a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except PermissionError:
        raise StudyError(f"{path}: cannot be read (permission denied); check the file's permissions") from None
    except OSError as exc:
        raise StudyError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        head = os.read(fd, 8)
    except OSError as exc:
        raise StudyError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    return st, head


def _key(st):
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _spawn(path):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop("PYTHONFAULTHANDLER", None)  # a crash is the verdict, not a report to print
    return subprocess.Popen([sys.executable, "-c", _PROBE_CODE, os.fspath(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)


def start_probes(paths):
    """Start the header probe of each regular file among ``paths`` now, in the background.

    The command line calls this right after parsing, so the child reads the
    header while this process imports xarray; :func:`check_study_file` then
    takes the child's verdict. Anything odd about a path is left for
    :func:`check_study_file` to report.
    """
    for path in paths:
        with contextlib.suppress(Exception):
            st = os.stat(path)
            if stat.S_ISREG(st.st_mode) and _key(st) not in _PROBED and _key(st) not in _STARTED:
                _STARTED[_key(st)] = _spawn(path)


#: probes started by :func:`start_probes`, by file key, not yet read
_STARTED = {}


def _probe(path, st):
    key = _key(st)
    if key in _PROBED:
        return _PROBED[key]
    try:
        proc = _STARTED.pop(key, None) or _spawn(path)
    except OSError as exc:  # cannot start a process (limits): fall back to opening in this process
        if exc.errno in (errno.EAGAIN, errno.ENOMEM, errno.EMFILE):
            return None
        raise
    try:
        stdout, stderr = proc.communicate(timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        verdict = f"reading its header took more than {PROBE_TIMEOUT} s; the file is damaged or not NetCDF-4"
    else:
        verdict = _verdict(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    _PROBED[key] = verdict
    return verdict


def _verdict(proc):
    if proc.returncode < 0:
        return (f"the netCDF-C library crashes reading it (signal {-proc.returncode}): it uses HDF5 "
                f"features outside NetCDF-4 (e.g. float16 variables written with invalid_netcdf=True); "
                f"rewrite it with the netcdf4 engine and float32")
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        return f"cannot be read as NetCDF-4 ({last.strip()})"
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    if out.get("model"):
        return f"is a {out['model']} file; emostats studies are NetCDF-4 files with groups"
    if out.get("odd"):
        return f"{out['odd']} cannot be read safely; store numbers as float32/float64 or integers"
    return None


def check_study_file(path):
    """Raise a one-line :class:`StudyError` unless ``path`` is a NetCDF-4 file netCDF-C reads safely.

    Parameters
    ----------
    path : str or Path

    Examples
    --------
    >>> import emostats as es
    >>> check_study_file(es.example_study())
    >>> check_study_file("/")
    Traceback (most recent call last):
    ...
    emostats.errors.StudyError: /: is a folder, not a NetCDF study file
    """
    path = Path(path)
    st, head = _head(path)
    if not head:
        raise StudyError(f"{path}: is empty (0 bytes), not a NetCDF study file")
    for prefix, what, fix in _KNOWN:
        if head.startswith(prefix):
            raise StudyError(f"{path}: is {what}, not a NetCDF file; {fix}")
    if any(head.startswith(m) for m in _NETCDF3):
        raise StudyError(f"{path}: is a NetCDF-3 (classic) file without groups; emostats studies are "
                         f"NetCDF-4 files with groups (convert with 'nccopy -k nc4')")
    if not head.startswith(_HDF5):
        raise StudyError(f"{path}: not a NetCDF file (starts with {head[:4]!r}); "
                         f"emostats studies are NetCDF-4 files with groups")
    verdict = _probe(path, st)
    if verdict:
        raise StudyError(f"{path}: {verdict}")


def evict(path):
    """Close and forget every handle xarray's file cache holds for ``path``."""
    with contextlib.suppress(Exception):
        from xarray.backends.file_manager import FILE_CACHE

        target = os.path.abspath(os.fspath(path))
        for key in list(FILE_CACHE.keys()):
            args = key[1] if isinstance(key, (tuple, list)) and len(key) > 1 else ()
            names = [a for a in (args if isinstance(args, tuple) else ()) if isinstance(a, (str, os.PathLike))]
            if any(os.path.abspath(os.fspath(a)) == target for a in names):
                handle = FILE_CACHE.pop(key, None)
                if handle is not None:
                    with contextlib.suppress(Exception):
                        handle.close()


def cache_root():
    """The folder of emostats' on-disk caches, or None when ``EMOSTATS_CACHE_DIR`` is ``off`` (or empty).

    Examples
    --------
    >>> root = cache_root()
    >>> root is None or root.name in ("emostats", Path(os.environ.get("EMOSTATS_CACHE_DIR", "emostats")).name)
    True
    """
    root = os.environ.get("EMOSTATS_CACHE_DIR")
    if root is not None and root.strip().lower() in ("off", "0", "no", "none", ""):
        return None
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "emostats")
    return Path(root)


def remembered(kind, key):
    """Whether the check ``kind`` passed before on the content hashed to ``key`` (see :func:`remember`)."""
    root = cache_root()
    return root is not None and (root / kind / key).is_file()


def remember(kind, key):
    """Record that the check ``kind`` passed on the content hashed to ``key`` (skipped if it cannot be written)."""
    root = cache_root()
    if root is None:
        return
    with contextlib.suppress(OSError):
        (root / kind).mkdir(parents=True, exist_ok=True)
        (root / kind / key).touch()
