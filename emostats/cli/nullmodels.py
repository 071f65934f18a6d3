"""``emostats nullmodels STUDY -o OUT.nc``: random and variance-matched directions, emotion PCs (Figures 3-5)."""

from pathlib import Path

from .. import defaults as D

from ._common import add_study_argument, study_paths
from ._engine import add_preset_options, check_args, inputs_of, run_preset


def register(sub):
    p = sub.add_parser("nullmodels", help="probes against random and variance-matched directions; emotion PCs",
                       description=__doc__.strip().replace("``", "") + " The steps persistence, "
                       "random_directions, candidates, variance_matched and emotion_pcs of 'emostats run', with "
                       "the same seeds and results format; nothing is overwritten without --force.")
    add_study_argument(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="results file (NetCDF-4)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    add_preset_options(p, "nullmodels")
    for action in p._actions:  # the lag the study's moments were computed at, when there is one
        if action.dest == "lag":
            action.default = None
            action.help = f"lag L of the persistence metrics, tokens (default: the only lag of /moments, else {D.LAG})"
    p.set_defaults(func=_main)


def moments_lag(paths):
    """The single lag of the study's ``/moments`` (its ``lag`` coordinate), or None (none, several, unreadable).

    Read from the file headers only (after the file guard); a file that cannot be read is left to the
    engine, which says what is wrong with it.
    """
    import netCDF4

    from .._fileguard import check_study_file
    from ..errors import EmostatsError
    from ..io import study_files

    try:
        files = study_files(paths)
        check_study_file(files[0])
        with netCDF4.Dataset(files[0]) as nc:
            group = nc.groups.get("moments")
            if group is None or "lag" not in group.variables:
                return None
            lags = {int(v) for v in group.variables["lag"][:].compressed()}
    except (EmostatsError, OSError, ValueError, TypeError, OverflowError):
        return None
    return lags.pop() if len(lags) == 1 else None


def _main(args):
    import time

    from .._atomic import check_output
    from ..io import save

    paths = study_paths(args)
    if args.lag is None:
        args.lag = D.LAG
        check_args(args)  # every option checked before any file is read
        args.lag = moments_lag(paths) or D.LAG
    check_args(args)
    check_output(args.output, force=args.force, inputs=inputs_of(paths))  # refuse before the long part
    t0 = time.perf_counter()
    results = run_preset(args, paths)
    save(results, args.output, force=args.force)
    if not args.quiet:
        line = f"wrote {args.output}: {', '.join(results.children)}"
        if "variance_matched" in results.children:
            m = results["variance_matched"].to_dataset()
            line += (f"; probe residual mean {float(m['mean']):+.4f}, {int(m['n_positive'])} of {int(m['n'])} "
                     f"positive, t-test p = {float(m['t_p']):.3g}")
        print(f"{line} ({time.perf_counter() - t0:.1f} s)")
    return 0
