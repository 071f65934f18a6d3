"""The ``emostats`` command line.

Each subcommand lives in its own module of this package and defines
``register(subparsers)``, which adds a parser whose ``func`` default takes the
parsed arguments and returns an exit code. Every user error is one line on
stderr and exit code 2, never a traceback.
"""

import argparse
import contextlib
import importlib
import os
import sys
import threading
import warnings

from .._version import __version__
from .._atomic import Terminated, sigterm_as_interrupt
from ..errors import EmostatsError

# module names in emostats.cli, in the order they appear in --help
COMMANDS = ("info", "validate", "synth", "persistence", "affect_profile",
            "nullmodels", "run", "report", "extract")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's default prints usage; keep it to one line
        self.exit(2, f"emostats: error: {message} (see '{self.prog} --help')\n")


def build_parser():
    parser = _Parser(prog="emostats", description="emostats: statistics for the persistence of features inside language models. "
                     "Every command has --help; user errors exit with code 2.")
    parser.add_argument("--version", action="version", version=f"emostats {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


#: options several subcommands share, checked here once with the one rule of emostats._checks
#: (a seed must fit the int64 attribute it is stored in: defaults.SEED_MAX): dest -> check
_SHARED_CHECKS = {"threads": "check_threads", "seed": "check_seed"}


def _check_shared(args):
    """One-line error for a shared option out of range (before any file is opened)."""
    from .. import _checks

    for dest, check in _SHARED_CHECKS.items():
        value = getattr(args, dest, None)
        if value is not None:
            try:
                getattr(_checks, check)(value, "--" + dest.replace("_", "-"))
            except EmostatsError as exc:
                return str(exc)
    return None


def main(argv=None):
    global _PROGRAM
    _PROGRAM = _PROGRAM or (argv is None and threading.current_thread() is threading.main_thread())
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    problem = _check_shared(args)
    if problem:
        print(f"emostats: error: {problem} (see 'emostats {args.command} --help')", file=sys.stderr)
        return 2
    if _PROGRAM and getattr(args, "chunks", None) is None:
        _keep_dask_out()
    if _PROGRAM and getattr(args, "study", None):
        from .._fileguard import start_probes

        start_probes(args.study if isinstance(args.study, list) else [args.study])  # header read meanwhile
    with warnings.catch_warnings(), sigterm_as_interrupt():  # both restored after the command
        warnings.showwarning = _one_line_warning
        return _call(args)


def _keep_dask_out():
    """Make dask unimportable in this process: a command that reads its study into memory never uses it.

    xarray imports ``dask.array`` (with ``scipy.sparse``: about 1 s of CPU, a third of a small command)
    at its first Variable whenever dask is installed, only to tell dask arrays apart. With
    ``sys.modules["dask"] = None`` its check (``importlib.util.find_spec``) says dask is not installed.
    Only the program does this (``main()`` called by other Python code changes nothing), and only for
    a call without ``--chunks``.
    """
    if "dask" not in sys.modules:
        sys.modules["dask"] = None


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """A warning is one line too: no source line of emostats' code under it."""
    print(f"emostats: warning: {message}", file=sys.stderr if file is None else file)


def _in_worker(func, args):
    """``func(args)`` in a worker thread while this (main) thread waits, so that a signal is handled
    at once: Python runs signal handlers in the main thread only, between bytecodes, and a Numba kernel
    (or netCDF-C) in the main thread would hold Ctrl-C back until it returns."""
    if threading.current_thread() is not threading.main_thread():
        return func(args)
    box = {}

    def target():
        try:
            box["value"] = func(args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"emostats {getattr(args, 'command', '')}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)  # a signal interrupts the wait
    except BaseException:
        _ABANDONED.append(worker)
        raise
    if "error" in box:
        raise box.pop("error")
    return box.get("value")


#: worker threads still running after a signal stopped the wait for them
_ABANDONED = []


def _interrupted(code):
    """Remove the temporary files of a command stopped by a signal; exit at once if its thread still runs."""
    from .. import _atomic, _progress

    _atomic.abandon()
    _progress.stop_all()  # a progress bar hides the cursor until it is stopped
    print("emostats: interrupted", file=sys.stderr)
    worker = _ABANDONED.pop() if _ABANDONED else None
    if worker is not None:
        worker.join(0.2)  # it may be between two steps and stop by itself
    # inside a kernel the worker cannot be stopped, and nothing it holds needs saving; the program itself
    # (not a caller of main() in its own process) skips the interpreter's shutdown too, which can take
    # seconds (file handles, thread pools) after an interrupted analysis
    if (worker is not None and worker.is_alive()) or _PROGRAM:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)
    return code


#: True when main() runs as the program (no argv given: the console script, python -m emostats)
_PROGRAM = False


def _call(args):
    try:
        return int(_in_worker(args.func, args) or 0)
    except EmostatsError as exc:
        print(f"emostats: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C: 130; SIGTERM (Terminated): 143; temporary files are gone
        return _interrupted(143 if isinstance(exc, Terminated) else 130)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
