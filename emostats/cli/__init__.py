"""The ``emostats`` command line.

Each subcommand lives in its own module of this package and defines
``register(subparsers)``, which adds a parser whose ``func`` default takes the
parsed arguments and returns an exit code. Every user error is one line on
stderr and exit code 2, never a traceback.
"""

import argparse
import importlib
import sys
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    problem = _check_shared(args)
    if problem:
        print(f"emostats: error: {problem} (see 'emostats {args.command} --help')", file=sys.stderr)
        return 2
    with warnings.catch_warnings(), sigterm_as_interrupt():  # both restored after the command
        warnings.showwarning = _one_line_warning
        return _call(args)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """A warning is one line too: no source line of emostats' code under it."""
    print(f"emostats: warning: {message}", file=sys.stderr if file is None else file)


def _call(args):
    try:
        return int(args.func(args) or 0)
    except EmostatsError as exc:
        print(f"emostats: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C: 130; SIGTERM (Terminated): 143; temporary files are gone
        print("emostats: interrupted", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
