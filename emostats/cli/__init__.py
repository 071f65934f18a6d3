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


#: options several subcommands share, checked here once: dest -> (smallest, largest, what it is);
#: a seed is stored as a NetCDF int64 attribute, so it stays below 2**63
_SHARED_RANGES = {"threads": (1, None, "threads of the kernels"), "seed": (0, 2**63 - 1, "random seed")}


def _check_shared(args):
    """One-line error for a shared option out of range (before any file is opened)."""
    for dest, (low, high, what) in _SHARED_RANGES.items():
        value = getattr(args, dest, None)
        if value is not None and (value < low or (high is not None and value > high)):
            flag = "--" + dest.replace("_", "-")
            expected = f">= {low}" if high is None else f"in {low}..{high}"
            return f"argument {flag}: expected an integer {expected} ({what}), got {value}"
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
