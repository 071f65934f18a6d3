"""``emostats run STUDY [-o RESULTS.nc]``: every analysis the study supports, into one results file."""

from pathlib import Path

from ._common import add_study_argument, study_paths
from ._engine import add_preset_options, check_args, inputs_of, run_preset


def register(sub):
    p = sub.add_parser("run", help="run every analysis the study supports; write a results file",
                       description=__doc__.strip().splitlines()[0].replace("``", "").rstrip(".") + ". Steps whose group "
                       "is missing are skipped with one line each; nothing is overwritten without --force. "
                       "'emostats persistence' and 'emostats nullmodels' run subsets of the same steps and "
                       "write the same results format.")
    add_study_argument(p)
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="results file (default: STUDY with suffix .results.nc beside it)")
    p.add_argument("--force", action="store_true", help="replace an existing results file")
    p.add_argument("--steps", default=None, help="comma-separated subset of steps (default: all)")
    add_preset_options(p, "run")
    p.set_defaults(func=_main)


def default_output(paths):
    first = Path(paths if isinstance(paths, (str, Path)) else paths[0])
    return first.with_name(first.name.removesuffix(".nc") + ".results.nc")


def _main(args):
    import time

    from .._atomic import check_output
    from ..io import save

    steps = None if args.steps is None else [s.strip() for s in args.steps.split(",") if s.strip()]
    check_args(args, steps)
    paths = study_paths(args)
    output = args.output or default_output(paths)
    check_output(output, force=args.force, inputs=inputs_of(paths))  # refuse before the long part
    t0 = time.perf_counter()
    results = run_preset(args, paths, steps)
    save(results, output, force=args.force)
    if not args.quiet:
        ran = results.attrs["steps_run"].split()
        skipped = results.attrs["steps_skipped"].split()
        print(f"wrote {output}: {len(ran)} steps ran, {len(skipped)} skipped, "
              f"{time.perf_counter() - t0:.1f} s")
    return 0
