"""The study's evaluation protocols of SAE features: text evaluation and self-steering, gated by calibration.

:func:`evaluate` rates SAE features of a study with the study's model as its own
judge (as the study had Kimi judge Kimi) and returns the ``/evaluations`` Dataset
(docs/evaluations.md); :func:`place` puts it into the study (``/evaluations`` and
the ratings as ``/features`` ``text_rating`` / ``self_rating``, which
:func:`emostats.rating_analyses` reads).

1. **Calibration** (:func:`extract.judge.calibrate`): the judge rates the labelled
   texts of ``extract/judge_calibration.json``; if the Mann-Whitney AUC is below the
   threshold (0.75), nothing else runs and the Dataset holds the calibration numbers,
   no ratings and the reason (attribute ``no_ratings_reason``).
2. **Text evaluation**: for each feature, the model answers the evaluation prompts once
   unsteered (one baseline sample per prompt, shared by the features) and once steered:
   ``alpha * d`` is added to the hooked block's output at every generated token (not
   the prompt), ``d`` the unit decoder row of the feature, ``alpha = text_strength / 100
   * norm_factor * median token norm`` of the hooked layer (measured on the baseline
   samples). The judge sees the pairs with the study's instruction and its
   log-probability rating (:class:`extract.judge.Judge`) is the feature's ``text_rating``.
3. **Self-steering**: the model is told it has the tool ``steer_sae("ID", STRENGTH)``
   (strength -100..100, 100 = ``norm_factor`` median token norms) that steers the
   feature in itself. Its output is parsed strictly (:func:`extract.tool_calls.parse_tool_call`);
   a call ends the turn, the tool answers, and every later token (the tool's answer
   included) is generated with ``strength / 100 * norm_factor * median norm * d`` added
   at the hooked block: the transcript is re-read with the same per-token steering, so
   its keys and values are those of a session kept in memory. After at most
   ``max_calls`` calls (or a turn without a call) the steering is switched off and the
   model is asked for its rating, scored from log-probabilities while it reads its
   (steered) transcript. A feature whose session has no valid call has no
   ``self_rating`` (NaN, ``self_status = "no tool call"``).

``python -m extract.evaluations --study in.nc [--sae DIR] -o out.nc`` runs it on a
study file and writes the study with the group placed.
"""

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from emostats.io import sha256

from .judge import CALIBRATION_FILE, CALIBRATION_THRESHOLD, Judge, calibrate, load_calibration
from .protocols import EVAL_PROMPTS, count_mentions, generate_steered, self_steering, text_evaluation
from .tool_calls import MAX_STRENGTH, TOOL_NAME

__all__ = ["evaluate", "place", "text_evaluation", "self_steering", "generate_steered", "count_mentions",
           "EVAL_PROMPTS", "main"]

# --------------------------------------------------------------------------- the entry point
def _layer(study, sae, layer):
    if layer is not None:
        return int(layer)
    if "layer" in study.attrs:
        return int(np.asarray(study.attrs["layer"]).item())
    hook_name = str(getattr(sae, "metadata", {}).get("hook_name", "")) if sae is not None else ""
    m = re.search(r"blocks\.(\d+)\.", hook_name) or re.search(r"layers\.(\d+)", hook_name)
    if m:
        return int(m.group(1))
    raise ValueError("study: root attribute layer missing and the SAE names no hook; pass layer=")


def _decoders(study, sae):
    if sae is not None:
        return sae.W_dec.detach().float().numpy(), "SAE W_dec"
    if "features" in study.children and "decoder" in study["features"].data_vars:
        return np.asarray(study["features"]["decoder"].values, dtype=np.float32), "/features decoder"
    raise ValueError("/features: variable decoder missing and no SAE given; pass the SAE (--sae DIR)")


def _top_features(study, n):
    if "tokens" not in study.children or "sae_index" not in study["tokens"].data_vars:
        raise ValueError("/tokens: variable sae_index missing; pass the features to rate (features=)")
    idx = np.asarray(study["tokens"]["sae_index"].values).ravel()
    idx = idx[idx >= 0]
    counts = np.bincount(idx, minlength=int(study["features"].sizes["feature"]) if "features" in study.children else 0)
    order = np.lexsort((np.arange(len(counts)), -counts))
    order = order[counts[order] > 0]
    return order[:n].astype(np.int64), counts


def evaluate(study, sae=None, *, model=None, loaded=None, layer=None, features=None, n_features=16,
             prompts=EVAL_PROMPTS, n_new_tokens=64, text_strength=50.0, norm_factor=2.0, max_calls=3,
             self_tokens=96, scale=10, threshold=CALIBRATION_THRESHOLD, calibration=None, rater=None, seed=0,
             batch_size=16, temperature=0.8, top_p=0.95, opening=None, progress=None):
    """Rate SAE features of a study by the text-evaluation and self-steering protocols, gated by calibration.

    Parameters
    ----------
    study : xarray.DataTree
        A study (``/tokens`` ``sae_index`` chooses the most frequently firing features;
        ``/probes`` ``vector`` gives the cosines; the root attribute ``layer`` the hooked block).
    sae : extract.sae.SAE, str or Path, optional
        The SAE whose decoder rows are steered (default: ``/features`` ``decoder``).
    model : str or Path, optional
        The study's model, also the judge (default: SmolLM2-135M-Instruct).
    loaded : (model, tokenizer, description), optional
        An already loaded model (instead of ``model``).
    features : sequence of int, optional
        Features to rate (default: the ``n_features`` most frequently firing).
    text_strength : float
        Steering strength of the text evaluation, 0-100 (100 = ``norm_factor`` median token norms).
    scale : int
        The judge answers 0..scale (mapped to 0-100).
    threshold : float
        Calibration AUC needed before any rating is written.
    calibration : (texts, labels), optional
        Labelled set (default: ``extract/judge_calibration.json``).
    rater : callable, optional
        ``rater(texts) -> {"rating": ...}`` used for the calibration instead of the judge (tests).
    opening : str, optional
        Pre-fill of the first self-steering turn (``{feature}`` is filled in).
    progress : callable(str), optional

    Returns
    -------
    xarray.Dataset
        The ``/evaluations`` group (docs/evaluations.md).

    Examples
    --------
    >>> import emostats as es                                         # doctest: +SKIP
    >>> study = es.open_study("study.nc")                              # doctest: +SKIP
    >>> ev = evaluate(study, n_features=8)                             # doctest: +SKIP
    >>> int(ev["calibration_passed"]), float(ev["calibration_auc"])   # doctest: +SKIP
    (0, 0.6...)
    """
    from .model import LayerHook, load_model

    if isinstance(sae, (str, Path)):
        from .sae import load_sae
        sae = load_sae(sae)
    layer = _layer(study, sae, layer)
    decoders, decoder_source = _decoders(study, sae)
    chosen = "given" if features is not None else "most frequently firing in /tokens sae_index"
    if features is None:
        features, _ = _top_features(study, int(n_features))
    features = np.asarray(features, dtype=np.int64)
    if features.size and (features.min() < 0 or features.max() >= decoders.shape[0]):
        bad = features[(features < 0) | (features >= decoders.shape[0])][0]
        raise ValueError(f"feature {bad} out of range: the SAE has {decoders.shape[0]} features")
    if "features" in study.children:
        ids = np.asarray(study["features"]["feature"].values)
        missing = features[~np.isin(features, ids)]
        if missing.size:
            raise ValueError(f"/features: feature {missing[0]} is not a feature id of the study")
    norms = np.linalg.norm(decoders[features], axis=1) if features.size else np.zeros(0)
    if (norms == 0).any():
        raise ValueError(f"feature {features[np.argmax(norms == 0)]}: decoder row is zero, nothing to steer")
    directions = decoders[features] / norms[:, None] if features.size else decoders[:0]
    model_obj, tok, desc = loaded if loaded is not None else load_model(model)
    hidden = int(model_obj.config.hidden_size)
    if decoders.shape[1] != hidden:
        raise ValueError(f"SAE decoder has {decoders.shape[1]} dims but the model's hidden size is {hidden}; "
                         "the SAE must belong to the model (the study's model is its own judge)")
    judge = Judge(model_obj, tok, scale=scale, batch_size=batch_size)
    texts, labels = calibration if calibration is not None else load_calibration()
    cal = calibrate(rater if rater is not None else judge, texts, labels, threshold=threshold)
    if progress:
        progress(f"calibration: AUC {cal['auc']:.3f}, Spearman {cal['spearman']:+.3f}: "
                 f"{'passed' if cal['passed'] else 'failed'}")
    emotions = (np.asarray(study["tokens"]["probe"].values).astype(str)
                if "tokens" in study.children and "probe" in study["tokens"].coords else np.array([], dtype=str))
    attrs = {
        "judge_model": desc, "rating_method": (
            f"expected value of the judge's answer 0..{scale} under its next-token log-probabilities over the "
            f"digit tokens after the pre-fill {judge.prefill!r}, times {100 / scale:g} (extract.judge.Judge)"),
        "rating_scale": int(scale), "calibration_file": CALIBRATION_FILE.name if calibration is None else "given",
        "calibration_sha256": sha256(CALIBRATION_FILE) if calibration is None else "",
        "calibration_threshold": float(threshold), "calibration_rater": "judge" if rater is None else "given rater",
        "layer": int(layer), "decoder_source": decoder_source, "seed": int(seed),
        "mentions_source": "the model's own turns of the self-steering transcripts (whole words, any case)",
    }
    cal_vars = {
        "calibration_label": (("calibration_text",), np.asarray(cal["labels"], dtype=np.int8),
                              {"long_name": "label of the calibration text (1 = emotional, 0 = neutral)"}),
        "calibration_rating": (("calibration_text",), cal["ratings"],
                               {"long_name": "judge rating 0-100 of the calibration text"}),
        "calibration_mass": (("calibration_text",), cal["mass"],
                             {"long_name": "judge probability of answering with an allowed number"}),
        "calibration_auc": ((), float(cal["auc"]), {"long_name": "Mann-Whitney AUC of calibration rating vs label"}),
        "calibration_spearman": ((), float(cal["spearman"]),
                                 {"long_name": "Spearman correlation of calibration rating and label"}),
        "calibration_spearman_p": ((), float(cal["spearman_p"]), {"long_name": "p of the Spearman correlation"}),
        "calibration_passed": ((), np.int8(cal["passed"]),
                               {"long_name": f"1 if calibration_auc >= {threshold}, else 0 (no ratings)"}),
    }
    coords = {"calibration_text": np.arange(len(cal["labels"]), dtype=np.int64), "emotion": emotions}
    has_probes = "probes" in study.children and "vector" in study["probes"].data_vars and len(emotions) > 0
    if not cal["passed"]:
        attrs["no_ratings_reason"] = cal["reason"]
        attrs["protocols_run"] = "none (calibration failed)"
        empty = {"mentions": (("rated_feature", "emotion"), np.zeros((0, len(emotions)), dtype=np.int8))}
        if has_probes:
            empty["cosine"] = (("rated_feature", "emotion"), np.zeros((0, len(emotions))),
                               {"long_name": "cosine of the feature's decoder row and the emotion probe"})
        return xr.Dataset({**cal_vars, **empty}, coords={**coords, "rated_feature": np.zeros(0, dtype=np.int64)},
                          attrs=attrs)
    with LayerHook(model_obj, layer, record=False) as hook:
        txt = text_evaluation(judge, hook, directions, features, prompts=prompts, n_new_tokens=n_new_tokens,
                              strength=text_strength, norm_factor=norm_factor, seed=seed, batch_size=batch_size,
                              temperature=temperature, top_p=top_p, progress=progress)
        slf = self_steering(judge, hook, directions, features, median_norm=txt["median_norm"],
                            norm_factor=norm_factor, max_calls=max_calls, n_new_tokens=self_tokens, seed=seed,
                            batch_size=batch_size, temperature=temperature, top_p=top_p, opening=opening,
                            progress=progress)
    mentions = count_mentions(slf["assistant_text"], emotions)
    rf, ep = ("rated_feature",), ("eval_prompt",)
    data = {
        **cal_vars,
        "mentions": (("rated_feature", "emotion"), mentions),
        "text_rating": (rf, txt["text_rating"], {"long_name": "text-evaluation rating 0-100 of the feature"}),
        "text_mass": (rf, txt["text_mass"], {"long_name": "judge probability of an allowed number (text)"}),
        "self_rating": (rf, slf["self_rating"],
                        {"long_name": "self-steering rating 0-100 of the feature (NaN = no valid tool call)"}),
        "self_mass": (rf, slf["self_mass"], {"long_name": "judge probability of an allowed number (self)"}),
        "self_calls": (rf, slf["self_calls"], {"long_name": "valid tool calls of the self-steering session"}),
        "self_bad_calls": (rf, slf["self_bad_calls"], {"long_name": "refused tool calls (malformed, other feature, "
                                                                    "out of range, over the limit)"}),
        "self_status": (rf, slf["self_status"].astype(str), {"long_name": "called or no tool call"}),
        "self_call_log": (rf, slf["self_call_log"].astype(str), {"long_name": "the session's tool calls"}),
        "self_transcript": (rf, slf["self_transcript"].astype(str),
                            {"long_name": "transcript of the self-steering session (chat template text)"}),
        "steered_text": (("rated_feature", "eval_prompt"), txt["steered_text"].astype(str),
                         {"long_name": "steered answer to the evaluation prompt"}),
        "baseline_text": (ep, txt["baseline_text"].astype(str), {"long_name": "unsteered answer to the prompt"}),
        "eval_prompt_text": (ep, np.array(prompts, dtype=str), {"long_name": "evaluation prompt"}),
    }
    if has_probes:
        vec = np.asarray(study["probes"]["vector"].transpose("probe", ...).values, dtype=np.float64)
        vec = vec / np.linalg.norm(vec, axis=1, keepdims=True)
        data["cosine"] = (("rated_feature", "emotion"), (directions.astype(np.float64) @ vec.T),
                          {"long_name": "cosine of the feature's decoder row and the emotion probe"})
    attrs.update({
        "protocols_run": "text evaluation, self-steering",
        "text_method": (f"{len(prompts)} prompts, one unsteered baseline sample each; per feature one sample "
                        f"per prompt with alpha * unit decoder row added at block {layer} on every generated "
                        f"token; up to {n_new_tokens} new tokens; the judge compares the pairs (study's wording)"),
        "text_strength": float(text_strength), "norm_factor": float(norm_factor),
        "median_token_norm": float(txt["median_norm"]), "alpha": float(txt["alpha"]),
        "self_method": (f"tool {TOOL_NAME}(\"ID\", STRENGTH), |STRENGTH| <= {MAX_STRENGTH:g}, strength 100 = "
                        f"{norm_factor:g} median token norms at block {layer}; strict one-line call format; at most "
                        f"{max_calls} calls, {self_tokens} new tokens per turn; every token after a call steered; "
                        "rating asked with steering off, scored while the steered transcript is read"),
        "max_calls": int(max_calls), "self_opening": opening or "",
        "temperature": float(temperature), "top_p": float(top_p),
        "features_chosen": chosen,
        "n_no_tool_call": int((slf["self_calls"] == 0).sum()),
    })
    return xr.Dataset(data, coords={**coords, "rated_feature": features,
                                    "eval_prompt": np.arange(len(prompts), dtype=np.int64)}, attrs=attrs)


def place(study, evaluations):
    """The study with ``/evaluations`` set and the ratings copied into ``/features`` (NaN = unrated).

    Ratings are copied only when the calibration passed (``calibration_passed == 1``).

    Examples
    --------
    >>> tree = place(study, evaluate(study))   # doctest: +SKIP
    """
    tree = study.copy()
    tree["evaluations"] = xr.DataTree(evaluations)
    if int(evaluations["calibration_passed"]) == 1 and "features" in tree.children:
        feats = tree["features"].to_dataset()
        ids = np.asarray(feats["feature"].values)
        rated = np.asarray(evaluations["rated_feature"].values)
        where = np.searchsorted(ids, rated) if np.all(np.diff(ids) > 0) else np.array(
            [int(np.flatnonzero(ids == r)[0]) for r in rated], dtype=np.int64)
        for name in ("self_rating", "text_rating"):
            if name in evaluations.data_vars:
                col = np.full(len(ids), np.nan)
                col[where] = np.asarray(evaluations[name].values, dtype=np.float64)
                feats[name] = (("feature",), col, {"long_name": evaluations[name].attrs.get("long_name", name)})
        tree["features"] = xr.DataTree(feats)
    return tree


# --------------------------------------------------------------------------- command line
def main(argv=None):
    """``python -m extract.evaluations``: evaluate SAE features of a study and write it with /evaluations."""
    p = argparse.ArgumentParser(prog="python -m extract.evaluations", description=main.__doc__)
    p.add_argument("--study", required=True, help="the study file (NetCDF)")
    p.add_argument("--sae", default=None, help="SAE folder (SAELens or sparsify); default /features decoder")
    p.add_argument("-o", "--output", required=True, help="output study file")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--model", default=None, help="the study's model (and judge): folder or .gguf "
                                                  "(default: SmolLM2-135M-Instruct)")
    p.add_argument("--layer", type=int, default=None, help="hooked block (default: the study's layer attribute)")
    p.add_argument("--features", default=None, help="comma-separated feature ids (default: most frequent)")
    p.add_argument("--n-features", type=int, default=16, help="features to rate (default 16)")
    p.add_argument("--n-prompts", type=int, default=len(EVAL_PROMPTS), help="evaluation prompts (default 5)")
    p.add_argument("--new-tokens", type=int, default=64, help="tokens per text sample (default 64)")
    p.add_argument("--self-tokens", type=int, default=96, help="tokens per self-steering turn (default 96)")
    p.add_argument("--strength", type=float, default=50.0, help="text-evaluation strength 0-100 (default 50)")
    p.add_argument("--norm-factor", type=float, default=2.0,
                   help="median token norms added at strength 100 (default 2)")
    p.add_argument("--max-calls", type=int, default=3, help="tool calls per session (default 3)")
    p.add_argument("--scale", type=int, default=10, help="judge answers 0..SCALE (default 10)")
    p.add_argument("--threshold", type=float, default=CALIBRATION_THRESHOLD,
                   help=f"calibration AUC needed (default {CALIBRATION_THRESHOLD})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=16, help="rows per forward pass (default 16)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    import emostats as es
    from emostats.errors import EmostatsError

    from .sae import SAEFormatError

    def fail(msg):
        print(f"python -m extract.evaluations: error: {msg}", file=sys.stderr)
        return 2

    out = Path(args.output)
    if out.exists() and not args.force:
        return fail(f"output {out} exists; pass --force to replace it")
    if not Path(args.study).is_file():
        return fail(f"--study {args.study}: no such file")
    for name in ("n_features", "n_prompts", "new_tokens", "self_tokens", "batch"):
        if getattr(args, name) < 1:
            return fail(f"--{name.replace('_', '-')} must be at least 1")
    if not 1 <= args.n_prompts <= len(EVAL_PROMPTS):
        return fail(f"--n-prompts must be 1..{len(EVAL_PROMPTS)}")
    try:
        features = None if args.features is None else [int(x) for x in args.features.split(",") if x.strip()]
    except ValueError:
        return fail(f"--features {args.features!r}: expected comma-separated integers")
    torch.set_num_threads(max(1, args.threads))
    try:
        study = es.open_study(args.study)
        study.load()
        ev = evaluate(study, args.sae, model=args.model, layer=args.layer, features=features,
                      n_features=args.n_features, prompts=EVAL_PROMPTS[:args.n_prompts],
                      n_new_tokens=args.new_tokens, text_strength=args.strength, norm_factor=args.norm_factor,
                      max_calls=args.max_calls, self_tokens=args.self_tokens, scale=args.scale,
                      threshold=args.threshold, seed=args.seed, batch_size=args.batch,
                      progress=lambda m: print(m, file=sys.stderr, flush=True))
        tree = place(study, ev)
        problems = es.validate(tree)
        if problems:
            return fail(problems[0])
        es.save(tree, out, force=args.force)
    except (EmostatsError, SAEFormatError, OSError, ValueError, KeyError) as exc:
        return fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    print(f"wrote {out}: calibration AUC {float(ev['calibration_auc']):.3f}, "
          f"{'ratings of ' + str(ev.sizes['rated_feature']) + ' features' if int(ev['calibration_passed']) else 'no ratings: ' + ev.attrs['no_ratings_reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
