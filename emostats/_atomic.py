"""Atomic output files: write to a temporary file beside the target, fsync, rename.

An interrupted write leaves no partial file and the previous file intact; an
existing file is never replaced unless ``force`` is true.

Writes that may be interrupted (Ctrl-C, SIGTERM) run in a child process
(:func:`write_atomically`): netCDF-C and HDF5 hold locks during a write, and
an exception raised in the middle of one leaves xarray's ``close()`` waiting
for a lock forever. The parent only waits for the child; on a signal it kills
the child at once, removes the temporary file and re-raises, so the program
stops within a second. A full disk is said in one line.
"""

import contextlib
import errno
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .errors import EmostatsError, OutputExistsError

__all__ = ["atomic_path", "check_output", "check_folder", "disk_full_error", "write_atomically", "Terminated",
           "sigterm_as_interrupt", "temporary", "abandon"]

#: a failed write with less free space than this in the output folder is reported as a full disk
FULL_DISK_BYTES = 4 * 2**20


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the command line exits with 143 instead of 130)."""


# What a signal must clean up when the command runs in a worker thread (the command line): the main
# thread only waits, so Ctrl-C reaches it at once even while a Numba kernel runs; it then removes every
# temporary path and kills every writer child registered here, and the process exits (abandon).
_LOCK = threading.Lock()
_TEMPORARY = {}  # path -> True (a folder) / False (a file)
_CHILDREN = set()
_ABANDONED = threading.Event()


@contextlib.contextmanager
def temporary(dir, prefix, suffix=".tmp", folder=False):
    """Create a temporary file (or folder) in ``dir`` and register it for removal on a signal.

    Creating and registering happen under one lock that :func:`abandon` takes too, so no
    temporary path escapes it. On leaving the block the path is only unregistered: removing or
    renaming it is the caller's.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with temporary(tempfile.mkdtemp(), ".x.", folder=True) as tmp:
    ...     pathlib.Path(tmp).is_dir()
    True
    """
    with _LOCK:
        if _ABANDONED.is_set():  # the main thread gave up on this command: create nothing more
            raise KeyboardInterrupt()
        if folder:
            path = tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=dir)
        else:
            fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
            os.close(fd)
        _TEMPORARY[path] = folder
    try:
        yield path
    finally:
        with _LOCK:
            _TEMPORARY.pop(path, None)


def abandon():
    """After a signal in the main thread: kill the registered writer children, remove the registered
    temporary files and folders, and refuse new ones. Returns the number of paths removed."""
    with _LOCK:
        _ABANDONED.set()
        children, paths = list(_CHILDREN), list(_TEMPORARY.items())
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
    removed = 0
    for path, folder in paths:
        with contextlib.suppress(OSError):
            if folder:
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed += 1
    return removed


def _writable(folder):
    """One-line error unless a file can be created in ``folder`` (os.access lies for root)."""
    registered = temporary(folder, ".emostats-write-test.", "")
    try:
        probe = registered.__enter__()
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise EmostatsError(f"output folder {folder}: the disk is full; free some space or choose "
                                f"another folder") from None
        why = {errno.EROFS: "it is on a read-only file system", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied"}.get(exc.errno, exc.strerror or str(exc))
        raise EmostatsError(f"output folder {folder} is not writable ({why}); choose another folder") from None
    with contextlib.suppress(OSError):
        os.unlink(probe)
    registered.__exit__(None, None, None)


def check_output(path, force=False, inputs=()):
    """Raise a one-line error if ``path`` may not be written (call it before the long part).

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
    _writable(parent)


def check_folder(folder):
    """Raise a one-line error unless files can be created in the existing ``folder`` (before the long part).

    Examples
    --------
    >>> import tempfile
    >>> check_folder(tempfile.mkdtemp())
    >>> check_folder("/nonexistent-dir-for-doctest")
    Traceback (most recent call last):
    ...
    emostats.errors.EmostatsError: output folder /nonexistent-dir-for-doctest does not exist; create it first
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EmostatsError(f"output folder {folder} does not exist; create it first")
    _writable(folder)


def disk_full_error(exc, path, folder):
    """The one-line full-disk error for ``exc`` raised while writing ``path`` in ``folder``, or None.

    Examples
    --------
    >>> import errno, tempfile
    >>> err = disk_full_error(OSError(errno.ENOSPC, "No space left on device"), "r/a.png", tempfile.gettempdir())
    >>> "the disk is full" in str(err)
    True
    >>> disk_full_error(ValueError("x"), "a.png", ".") is None
    True
    """
    return _full_disk_error(path, folder) if _disk_full(exc, folder) else None


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _disk_full(exc, folder):
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not isinstance(exc, (OSError, RuntimeError)):
        return False
    try:
        return shutil.disk_usage(folder).free < FULL_DISK_BYTES
    except OSError:
        return False


def _full_disk_error(path, folder):
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free"
    except OSError:
        free = "no space left"
    return EmostatsError(f"cannot write {path}: the disk is full ({free} in {folder}); free some space or "
                         f"write elsewhere")


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
    folder = path.parent if str(path.parent) else Path(".")
    registered = temporary(folder, prefix=f".{path.name}.")
    tmp = registered.__enter__()
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        with sigterm_as_interrupt():
            try:
                yield tmp
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
            except Exception as exc:
                if _disk_full(exc, folder):
                    raise _full_disk_error(path, folder) from None
                raise
            if path.exists() and not force:  # appeared while we were writing
                raise OutputExistsError(f"output {path} exists; pass --force (force=True) to replace it")
            os.replace(tmp, path)
        with contextlib.suppress(OSError):
            dirfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        registered.__exit__(None, None, None)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Inside the block SIGTERM raises :class:`Terminated` (when nobody else handles SIGTERM)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _child_write(writer, tmp, w):
    """In the child: write, report an exception through the pipe, never return."""
    code = 0
    try:
        if sys.modules.get("dask") is not None:  # a tree with dask arrays: no thread pool survives fork (None: the CLI hid dask)
            sys.modules["dask"].config.set(scheduler="synchronous")
        writer(tmp)
        payload = b""
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        code = 1
        try:
            payload = pickle.dumps(exc)
        except Exception:  # noqa: BLE001
            payload = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(w, view):]
    finally:
        os._exit(code)


@contextlib.contextmanager
def _signals_held():
    """Record SIGINT/SIGTERM inside the block and re-raise them after it (main thread only).

    A signal that arrives during ``os.fork`` would otherwise raise inside the
    at-fork hooks of other modules (logging's), where the exception is printed
    and dropped: the interrupt would be lost and the write would go on.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = []
    previous = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if os.getpid() == _PARENT[0]:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for signum in got:
                signal.raise_signal(signum)  # delivered with the caller's own handling, at the next bytecode


_PARENT = [None]


def _run_in_child(writer, tmp):
    r, w = os.pipe()
    _PARENT[0] = os.getpid()
    pid, fds = None, [r, w]
    try:
        with _signals_held(), _LOCK:  # registered under the lock abandon() takes: no child escapes it
            if _ABANDONED.is_set():
                raise KeyboardInterrupt()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it kills us on a signal
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                os.close(r)
                _child_write(writer, tmp, w)
            _CHILDREN.add(pid)
        os.close(w)
        fds.remove(w)
        chunks = []
        while True:
            block = os.read(r, 1 << 16)
            if not block:
                break
            chunks.append(block)
        _, status = os.waitpid(pid, 0)
        with _LOCK:
            _CHILDREN.discard(pid)
        pid = None
    except BaseException:
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
            with _LOCK:
                _CHILDREN.discard(pid)
        raise
    finally:
        for fd in fds:
            os.close(fd)
    if chunks:
        raise pickle.loads(b"".join(chunks))
    if status != 0:
        how = (f"was killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exited with code {os.WEXITSTATUS(status)}")
        raise EmostatsError(f"the writer process {how}; nothing was written")


def write_atomically(path, writer, force=False, inputs=(), in_child=True):
    """Call ``writer(tmp)`` and rename ``tmp`` onto ``path`` (see :func:`atomic_path`).

    With ``in_child`` (and where ``os.fork`` exists) the writer runs in a child
    process, so that a signal stops the program at once however deep inside
    netCDF-C the write is.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> write_atomically(target, lambda tmp: pathlib.Path(tmp).write_text("hi"))
    >>> target.read_text()
    'hi'
    """
    with atomic_path(path, force=force, inputs=inputs) as tmp:
        if in_child and hasattr(os, "fork"):
            _run_in_child(writer, tmp)
        else:
            writer(tmp)
