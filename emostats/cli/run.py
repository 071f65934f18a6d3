"""``emostats run STUDY [-o RESULTS.nc]``: every analysis the study supports, into one results file."""

from pathlib import Path

from .. import defaults as D
from ._common import add_study_argument, study_paths


def register(sub):
    p = sub.add_parser("run", help="run every analysis the study supports; write a results file",
                       description=__doc__.strip().splitlines()[0].replace("``", "") + ". Steps whose group "
                       "is missing are skipped with one line each; nothing is overwritten without --force.")
    add_study_argument(p)
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="results file (default: STUDY with suffix .results.nc beside it)")
    p.add_argument("--force", action="store_true", help="replace an existing results file")
    p.add_argument("--lag", type=int, default=D.LAG, help=f"lag L of the persistence metrics (default {D.LAG})")
    p.add_argument("--max-lag", type=int, default=D.MAX_LAG,
                   help=f"largest lag of the profile and trajectories ({D.MAX_LAG})")
    p.add_argument("--seed", type=int, default=D.SEED, help=f"master seed of every random step (default {D.SEED})")
    p.add_argument("--n-perm", type=int, default=D.N_PERM, help=f"permutations of the mention tests ({D.N_PERM})")
    p.add_argument("--n-random", type=int, default=D.N_RANDOM,
                   help=f"random unit directions for Figure 3 ({D.N_RANDOM})")
    p.add_argument("--n-candidates", type=int, default=D.N_CANDIDATES,
                   help=f"variance-matching candidates from top-k eigenspaces ({D.N_CANDIDATES})")
    p.add_argument("--steps", default=None, help="comma-separated subset of steps (default: all)")
    p.add_argument("--threads", type=int, default=None, help="threads of the parallel kernels (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_main)


def default_output(paths):
    first = Path(paths if isinstance(paths, (str, Path)) else paths[0])
    return first.with_name(first.name.removesuffix(".nc") + ".results.nc")


def _main(args):
    import time

    from .._atomic import check_output
    from ..io import save
    from ..runner import run

    paths = study_paths(args)
    output = args.output or default_output(paths)
    inputs = paths if isinstance(paths, list) else [paths]
    check_output(output, force=args.force, inputs=inputs)  # refuse before the long part
    t0 = time.perf_counter()
    results = run(paths, lag=args.lag, max_lag=args.max_lag, seed=args.seed, n_perm=args.n_perm,
                  n_random=args.n_random, n_candidates=args.n_candidates,
                  steps=None if args.steps is None else [s.strip() for s in args.steps.split(",") if s.strip()],
                  progress=not args.no_progress, quiet=args.quiet, threads=args.threads)
    save(results, output, force=args.force)
    if not args.quiet:
        ran = results.attrs["steps_run"].split()
        skipped = results.attrs["steps_skipped"].split()
        print(f"wrote {output}: {len(ran)} steps ran, {len(skipped)} skipped, "
              f"{time.perf_counter() - t0:.1f} s")
    return 0
