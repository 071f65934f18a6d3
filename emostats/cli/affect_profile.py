"""``emostats affect-profile STUDY -o profile.json``: per-emotion half-lives for agents with decaying emotions."""

from pathlib import Path

from ._common import add_study_argument, study_paths


def register(sub):
    p = sub.add_parser("affect-profile", help="per-emotion half-lives, weights, tail and baseline as JSON for agents",
                       description=__doc__.strip().splitlines()[0].replace("``", "").rstrip(".") + ". The JSON states the "
                       "meaning and bounds of every value (fields) and a suggested update rule (description). "
                       "Nothing is overwritten without --force.")
    add_study_argument(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="JSON file to write")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--lag", type=int, default=100, help="lag of the reported persistence_at_lag (default 100)")
    p.add_argument("--max-lag", type=int, default=200, help="window of the decay fit, tokens (default 200)")
    p.add_argument("--n-boot", type=int, default=100,
                   help="bootstrap replicates over conversations for the intervals; 0 = none (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--saturation-z", type=float, default=4.0,
                   help="z at which an emotion scalar reaches 1 (default 4)")
    p.add_argument("--chunks", type=int, default=None, help="open the study lazily with this many tokens per chunk")
    p.add_argument("--threads", type=int, default=None, help="threads of the kernels (default: all)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_main)


def _main(args):
    import json
    import time

    from .._atomic import atomic_path, check_output
    from ..affect import affect_profile
    from ..errors import EmostatsError, MissingGroupError
    from ..io import open_study, sha256

    for name in ("lag", "max_lag", "n_boot"):
        if getattr(args, name) < 0:
            raise EmostatsError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    paths = study_paths(args)
    inputs = paths if isinstance(paths, list) else [paths]
    check_output(args.output, force=args.force, inputs=inputs)
    t0 = time.perf_counter()
    tree = open_study(paths, chunks={"token": args.chunks} if args.chunks else None)
    if "tokens" not in tree.children or "probe_act" not in tree["tokens"].data_vars:
        raise MissingGroupError(f"{inputs[0]}: group /tokens has no variable probe_act; affect-profile needs "
                                f"per-token probe activations")
    try:
        profile = affect_profile(tree["tokens"]["probe_act"], lag=args.lag, max_lag=args.max_lag,
                                 n_boot=args.n_boot, seed=args.seed, saturation_z=args.saturation_z,
                                 threads=args.threads,
                                 source={"study": ";".join(Path(p).name for p in inputs), "sha256": sha256(paths)})
    finally:
        tree.close()  # release the file now (see emostats.cli.persistence)
    text = json.dumps(profile, indent=2, allow_nan=False)
    with atomic_path(args.output, force=args.force, inputs=inputs) as tmp:
        Path(tmp).write_text(text + "\n", encoding="utf-8")
    if not args.quiet:
        s = profile["summary"]
        print(f"wrote {args.output}: {s['n_fit_ok']} of {s['n_emotions']} emotions fitted; median half-lives "
              f"{s['median_half_life_fast_tokens']} (fast) and {s['median_half_life_slow_tokens']} (slow) tokens, "
              f"median tail {s['median_tail_level']} ({time.perf_counter() - t0:.1f} s)")
    return 0
