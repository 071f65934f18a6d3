"""``emostats affect-profile STUDY -o profile.json``: per-emotion half-lives for agents with decaying emotions.

The profile (schema emostats.affect_profile/2, ``emostats.affect.schema("profile")``) is what
:meth:`emostats.affect.AffectState.from_profile` calibrates an agent's affect state from.
"""

from pathlib import Path

from .. import defaults as D
from ._common import add_study_argument, study_paths


def register(sub):
    p = sub.add_parser("affect-profile", help="per-emotion half-lives, weights and levels as JSON for agents",
                       description=__doc__.strip().splitlines()[0].replace("``", "").rstrip(".") + ". The JSON states the "
                       "meaning and bounds of every value (fields), flags the half-lives that are token-level noise "
                       "or extrapolations beyond the fitted window, profiles the leading emotion-space principal "
                       "components too (pcs), and validates against the schema shipped in emostats/affect/schemas. "
                       "Load it in an agent with emostats.affect.AffectState.from_profile. "
                       "Nothing is overwritten without --force.")
    add_study_argument(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="JSON file to write")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--lag", type=int, default=D.LAG, help=f"lag of the reported persistence_at_lag (default {D.LAG})")
    p.add_argument("--max-lag", type=int, default=D.MAX_LAG,
                   help=f"window of the decay fit, tokens (default {D.MAX_LAG})")
    p.add_argument("--n-boot", type=int, default=D.AFFECT_N_BOOT,
                   help=f"bootstrap replicates over conversations for the intervals; 0 = none (default {D.AFFECT_N_BOOT})")
    p.add_argument("--seed", type=int, default=D.SEED, help=f"seed of the bootstrap (default {D.SEED})")
    p.add_argument("--saturation-z", type=float, default=D.SATURATION_Z,
                   help=f"z at which an emotion scalar reaches 1 (default {D.SATURATION_Z:g})")
    p.add_argument("--noise-tokens", type=float, default=D.AFFECT_NOISE_TOKENS,
                   help=f"half-lives below this many tokens are flagged as token-level noise "
                        f"(default {D.AFFECT_NOISE_TOKENS:g})")
    p.add_argument("--n-pcs", type=int, default=D.AFFECT_N_PCS,
                   help=f"leading emotion-space principal components to profile too; 0 = none (default {D.AFFECT_N_PCS})")
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

    for name in ("lag", "max_lag", "n_boot", "n_pcs"):
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
                                 noise_tokens=args.noise_tokens, n_pcs=args.n_pcs, threads=args.threads,
                                 source={"study": ";".join(Path(p).name for p in inputs), "sha256": sha256(paths)})
    finally:
        tree.close()  # release the file now (see emostats.cli.persistence)
    text = json.dumps(profile, indent=2, allow_nan=False)
    with atomic_path(args.output, force=args.force, inputs=inputs) as tmp:
        Path(tmp).write_text(text + "\n", encoding="utf-8")
    if not args.quiet:
        s = profile["summary"]
        print(f"wrote {args.output}: {s['n_fit_ok']} of {s['n_emotions']} emotions fitted; fast half-life token-level "
              f"noise for {s['n_fast_noise']}, slow one beyond the {args.max_lag}-token window for "
              f"{s['n_slow_extrapolated']} ({s['n_slow_at_bound']} at the fit's bound); median measured half-lives "
              f"{s['median_measured_half_life_fast_tokens']} (fast) and {s['median_measured_half_life_slow_tokens']} "
              f"(slow) tokens ({time.perf_counter() - t0:.1f} s)")
    return 0
