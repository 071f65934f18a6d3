"""Atomic output files: write to a temporary file beside the target, fsync, rename.

An interrupted write leaves no partial file and the previous file intact; an
existing file is never replaced unless ``force`` is true.
"""

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import EmostatsError, OutputExistsError

__all__ = ["atomic_path", "check_output"]


def check_output(path, force=False, inputs=()):
    """Raise a one-line error if ``path`` may not be written.

    Parameters
    ----------
    path : str or Path
        The output file.
    force : bool
        Allow replacing an existing file (never an input file).
    inputs : iterable of str or Path
        Files read by the same command; an output never replaces one of them.

    Examples
    --------
    >>> check_output("/nonexistent-dir-for-doctest/x.nc")
    Traceback (most recent call last):
    ...
    emostats.errors.EmostatsError: output folder /nonexistent-dir-for-doctest does not exist; create it first
    """
    path = Path(path)
    for inp in inputs:
        if Path(inp).exists() and path.exists() and path.resolve() == Path(inp).resolve():
            raise EmostatsError(f"output {path} is also an input; choose another output path")
    if path.is_dir():
        raise EmostatsError(f"output {path} is a folder; give a file path")
    if path.exists() and not force:
        raise OutputExistsError(f"output {path} exists; pass --force (force=True) to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise EmostatsError(f"output folder {parent} does not exist; create it first")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, force=False, inputs=()):
    """Yield a temporary path; on success it is fsynced and renamed onto ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = pathlib.Path(tmp).write_text("hello")
    >>> target.read_text()
    'hello'
    """
    path = Path(path)
    check_output(path, force=force, inputs=inputs)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if path.exists() and not force:  # appeared while we were writing
            raise OutputExistsError(f"output {path} exists; pass --force (force=True) to replace it")
        os.replace(tmp, path)
        with contextlib.suppress(OSError):
            dirfd = os.open(path.parent or ".", os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
