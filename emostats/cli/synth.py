"""``emostats synth -o PATH``: write a synthetic study with planted truth (see ``emostats.synth``)."""


def _int_at_least(minimum):
    """An argparse type: an integer >= ``minimum``, else a one-line usage error."""
    import argparse

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


_positive, _count = _int_at_least(1), _int_at_least(0)


def register(sub):
    p = sub.add_parser("synth", help="write a synthetic study with planted, documented truth",
                       description="emostats synth -o PATH: write a synthetic study with planted truth (see the "
                                   "Python module emostats.synth). The truth summary is stored in the root "
                                   "attribute truth_json; --truth PATH saves the full planted truth.")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="output study file (.nc)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--truth", default=None, metavar="PATH", help="also save the full planted truth (NetCDF) here")
    p.add_argument("--seed", type=_count, default=0, help="random seed (default 0)")
    p.add_argument("--tokens", type=_positive, default=20_000, help="number of tokens (default 20000)")
    p.add_argument("--probes", type=_positive, default=171, help="number of emotion probes, at most 171 (default 171)")
    p.add_argument("--features", type=_count, default=2_000, help="number of SAE features, 0 = none (default 2000)")
    p.add_argument("--k", type=_positive, default=16, help="top-k slots per token (default 16)")
    p.add_argument("--hidden", type=_positive, default=256,
                   help="hidden dimension; must exceed the probes by about 15%% (default 256)")
    p.add_argument("--conversations", type=_positive, default=None, help="number of conversations (default: random)")
    p.add_argument("--rated", type=_count, default=None, help="rated features (default min(1000, 15%% of features))")
    p.add_argument("--steer-emotions", type=_positive, default=None, help="steered emotions (default min(24, probes))")
    p.add_argument("--steer-samples", type=_positive, default=16, help="steered samples per emotion (default 16)")
    p.add_argument("--baseline", type=_positive, default=16, help="baseline samples (default 16)")
    p.add_argument("--offsets", type=_positive, default=201, help="tokens after the steering pulse (default 201)")
    p.add_argument("--lag", type=_positive, action="append", default=None,
                   help="lag of /moments (repeat for several; default 100)")
    p.add_argument("--random-directions", type=_count, default=0, help="random directions in /random (default 0)")
    p.add_argument("--float64", action="store_true", help="store activations as float64 (default float32)")
    p.add_argument("--keep-bits", type=_positive, default=None,
                   help="round stored activations to this many mantissa bits so they compress (default: exact)")
    p.set_defaults(func=_main)


def _main(args):
    import sys

    from ..synth import write_study

    truth = write_study(
        args.output, force=args.force, truth_path=args.truth, seed=args.seed, n_tokens=args.tokens, n_probes=args.probes,
        n_features=args.features, k=args.k, hidden=args.hidden, n_conversations=args.conversations,
        n_rated=args.rated, n_steer_emotions=args.steer_emotions, n_steer_samples=args.steer_samples,
        n_baseline=args.baseline, n_offsets=args.offsets, lags=tuple(args.lag or (100,)),
        random_directions=args.random_directions, dtype="float64" if args.float64 else "float32",
        keep_bits=args.keep_bits)
    print(f"wrote {args.output}: synthetic study, seed {args.seed}, {args.tokens} tokens, {args.probes} probes, "
          f"{args.features} features (k={args.k}), hidden {args.hidden}; planted probe lag-r mean "
          f"{float(truth['expected_r'].mean()):.3f}, expected residual mean "
          f"{float(truth['residual_expected'].mean()):+.3f}", file=sys.stderr)
    return 0
