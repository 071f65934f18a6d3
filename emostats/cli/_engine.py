"""What the commands of the one engine share (``run``, ``persistence``, ``nullmodels``): their options,
built from the step registry's parameter metadata, and the call of the engine."""

from pathlib import Path

from ..pipeline.params import ENGINE_PARAMS
from ..pipeline.registry import PRESETS, params_of, preset_steps

__all__ = ["add_preset_options", "values_from", "run_preset", "flag_of"]


def _add(parser, param):
    kwargs = dict(dest=param.name, default=param.default, metavar=param.metavar or param.name.upper(),
                  help=param.help if param.default is None else f"{param.help} (default {param.describe_default()})")
    if param.kind in ("int", "seed", "threads"):
        kwargs["type"] = int
    elif param.kind == "float":
        kwargs["type"] = float
    elif param.kind == "ints":
        kwargs["type"] = str  # parsed by values_from: a one-line ArgumentError naming the flag
    elif param.kind == "choice":
        kwargs.update(choices=param.choices)
        kwargs.pop("metavar")
    parser.add_argument(param.flag, *param.aliases, **kwargs)


def add_preset_options(parser, preset):
    """The options of a preset command: every parameter its steps read, then the engine's."""
    params = params_of(preset_steps(preset))
    for param in params.values():
        if param.cli and param not in ENGINE_PARAMS:
            _add(parser, param)
    for param in ENGINE_PARAMS:
        _add(parser, param)
    parser.add_argument("--chunks", type=int, default=None, metavar="TOKENS",
                        help="open the study lazily with this many tokens per dask chunk (for studies larger than "
                             "memory)")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.set_defaults(preset=preset)


def flag_of(name):
    """The command-line flag of a parameter (the name in error messages)."""
    return "--" + name.replace("_", "-")


def values_from(args):
    """The parameter values of parsed arguments (only those the preset's command has)."""
    params = params_of(preset_steps(args.preset))
    values = {name: getattr(args, name) for name in params if hasattr(args, name)}
    for name, value in values.items():
        if isinstance(value, str) and params[name].kind == "ints":
            values[name] = params[name].parse(value)
    return values


def check_args(args, steps=None):
    """Every option checked (one-line errors naming the flag) before any file is touched; the steps selected."""
    from ..errors import ArgumentError
    from ..pipeline.engine import check_params
    from ..pipeline.registry import select

    if args.chunks is not None and args.chunks < 1:
        raise ArgumentError(f"--chunks must be >= 1 tokens, got {args.chunks}")
    selected = select(steps, args.preset)
    check_params(values_from(args), selected, label=flag_of)
    return selected


def run_preset(args, paths, steps=None):
    """Run the preset of ``args`` on ``paths``; the results tree (its required steps ran, or an error)."""
    from .._kernels import warm
    from ..pipeline.engine import execute
    from ..pipeline.registry import select

    warm.start(warm.topics_of(select(steps, args.preset)))  # cold Numba cache: later steps' kernels compile meanwhile
    chunks = {"token": args.chunks} if args.chunks else None
    return execute(paths, values_from(args), steps=steps, preset=args.preset, progress=not args.no_progress,
                   quiet=args.quiet, chunks=chunks, required=PRESETS[args.preset].required, label=flag_of)


def inputs_of(paths):
    return [Path(p) for p in (paths if isinstance(paths, list) else [paths])]
