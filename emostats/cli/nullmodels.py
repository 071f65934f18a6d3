"""``emostats nullmodels STUDY -o OUT.nc``: random and variance-matched directions, emotion PCs (Figures 3-5)."""

from pathlib import Path

from .. import defaults as D
from ._common import add_study_argument, study_paths


def register(sub):
    p = sub.add_parser("nullmodels", help="probes against random and variance-matched directions; emotion PCs",
                       description=__doc__.strip().replace("``", "") + " Results go to one NetCDF file with "
                       "one group per result; nothing is overwritten without --force.")
    add_study_argument(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="results file (NetCDF-4)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--lag", type=int, default=None,
                   help=f"lag L (default: the only lag of /moments, else {D.LAG})")
    p.add_argument("--seed", type=int, default=D.SEED, help=f"seed of the random directions (default {D.SEED})")
    p.add_argument("--n-random", type=int, default=D.N_RANDOM,
                   help=f"directions uniform on the hidden sphere, Figure 3 (default {D.N_RANDOM})")
    p.add_argument("--n-candidates", type=int, default=D.N_CANDIDATES,
                   help=f"variance-matching candidates from top-k eigenspaces (default {D.N_CANDIDATES}, the study's)")
    p.add_argument("--ks", default=None,
                   help="comma-separated k values of the sweep (default: 20 log-spaced from 1 to hidden)")
    p.add_argument("--n-match", type=int, default=D.N_MATCHED, help=f"matched directions per target (default {D.N_MATCHED})")
    p.add_argument("--stat", choices=D.STATS, default=D.MATCH_STAT,
                   help=f"statistic of the matched values (default {D.MATCH_STAT})")
    p.add_argument("--threads", type=int, default=None, help="threads of the parallel kernels (default all)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_main)


def _parse_ks(text):
    from ..errors import EmostatsError

    if text is None:
        return None
    try:
        ks = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise EmostatsError(f"--ks must be comma-separated integers, got {text!r}") from None
    if not ks:
        raise EmostatsError("--ks is empty; give comma-separated integers such as 1,10,100")
    return ks


def _main(args):
    import datetime
    import json
    import time

    import xarray as xr

    from .._atomic import check_output
    from .._version import __version__
    from ..io import open_study, save, sha256
    from ..nullmodels import nullmodel_analysis
    from .persistence import _storable

    paths = study_paths(args)
    inputs = paths if isinstance(paths, list) else [paths]
    check_output(args.output, force=args.force, inputs=inputs)  # refuse before the long part
    ks = _parse_ks(args.ks)
    t0 = time.perf_counter()
    tree = open_study(paths)
    results = nullmodel_analysis(tree, lag=args.lag, n_random=args.n_random, n_candidates=args.n_candidates,
                                 ks=ks, n_match=args.n_match, stat=args.stat, seed=args.seed,
                                 threads=args.threads)
    params = dict(lag=args.lag, seed=args.seed, n_random=args.n_random, n_candidates=args.n_candidates,
                  ks=ks, n_match=args.n_match, stat=args.stat)
    out = xr.DataTree.from_dict({f"/{name}": _storable(ds) for name, ds in results.items()})
    out.attrs.update(
        title="emostats null models (Figures 3-5)", emostats_version=__version__, input_sha256=sha256(paths),
        input_files=";".join(Path(p).name for p in inputs), seed=int(args.seed), parameters=json.dumps(params),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    save(out, args.output, force=args.force)
    if not args.quiet:
        line = f"wrote {args.output}: {', '.join(results)}"
        if "probe_matched" in results:
            m = results["probe_matched"]
            line += (f"; probe residual mean {float(m['mean']):+.4f}, {int(m['n_positive'])} of {int(m['n'])} "
                     f"positive, t-test p = {float(m['t_p']):.3g}")
        print(f"{line} ({time.perf_counter() - t0:.1f} s)")
    return 0
