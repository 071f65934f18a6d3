"""SAE files: the SAELens layout and the EleutherAI sparsify layout, read strictly, written for SAELens.

SAELens (``SAE.save_model`` / ``SAE.load_from_disk``): a folder with
``cfg.json``, ``sae_weights.safetensors`` and optionally
``sparsity.safetensors`` (tensor ``sparsity``: log10 firing frequency per
latent). Configs from SAELens >= 6 name the architecture and keep provenance
under ``metadata`` (``sae_lens_version``, ``hook_name`` in TransformerLens
naming such as ``blocks.20.hook_resid_post``); older configs keep everything at
the top level (``hook_point``, ``activation_fn_str``, ``activation_fn_kwargs.k``,
a boolean ``normalize_activations``), and SAELens converts them as
``handle_pre_6_0_config`` does; so does :func:`load_sae`.

sparsify (``SparseCoder.save_to_disk``): a folder per hookpoint named after the
module, e.g. ``layers.20`` (the output of decoder block 20), holding
``cfg.json`` (``d_in``, ``k``, ``activation``, ``num_latents`` or
``expansion_factor``, ...) and ``sae.safetensors`` (``encoder.weight (d_sae,
d_in)``, ``encoder.bias``, ``W_dec (d_sae, d_in)``, ``b_dec``). The folder of a
whole run holds several such folders; :func:`load_sae` takes the run folder
and a ``layer``. A sparsify SAE computes in the dtype of its file (that of the
first tensor in name order, as ``SparseCoder.load_from_disk`` builds it), with
the bias added inside ``F.linear`` and ``relu`` before the top k, exactly as
``sparsify.fused_encoder``.

:func:`save_sae` writes the SAELens 6 layout, except for ``groupmax`` SAEs,
which SAELens has no architecture for: those are written in sparsify's layout
with the provenance under ``metadata`` in ``cfg.json`` (sparsify drops it).

Every config key is either honoured or known to have no effect on encoding
(training settings, provenance); any other key, or a value the encoder cannot
honour, refuses the file with one line naming the key.
"""

import json
import re
from pathlib import Path

import numpy as np

from emostats.errors import EmostatsError

__all__ = ["SAEFormatError", "load_sae", "sae_layers", "save_sae", "hook_block", "SAELENS_FORMAT_VERSION",
           "ENCODING_KEYS", "NO_EFFECT_KEYS", "SPARSIFY_ENCODING_KEYS", "SPARSIFY_NO_EFFECT_KEYS"]

#: the SAELens config format :func:`save_sae` writes (``metadata.sae_lens_version``)
SAELENS_FORMAT_VERSION = "6.0.0"

CFG, WEIGHTS, SPARSITY, SPARSIFY_WEIGHTS = "cfg.json", "sae_weights.safetensors", "sparsity.safetensors", "sae.safetensors"


class SAEFormatError(EmostatsError):
    """An SAE file that cannot be read faithfully (names the file and the key)."""


#: SAELens config keys that change what encode computes; each is honoured by :func:`load_sae`
ENCODING_KEYS = frozenset({
    "architecture", "d_in", "d_sae", "dtype", "apply_b_dec_to_input", "normalize_activations", "k",
    "rescale_acts_by_decoder_norm", "activation_fn", "activation_fn_str", "activation_fn_kwargs",
    "reshape_activations", "finetuning_scaling_factor", "hook_head_index", "hook_point_head_index",
    "d_out",
})

#: SAELens config keys with no effect on encoding: provenance and training settings
#: (SAELens' LanguageModelSAERunnerConfig and training-SAE configs, and their pre-6.0 names)
NO_EFFECT_KEYS = frozenset({
    # provenance
    "metadata", "device", "model_name", "model_class_name", "hook_name", "hook_point", "hook_layer",
    "hook_point_layer", "hook_name_out", "hook_head_index_out", "hf_hook_name", "hf_hook_name_out",
    "model_from_pretrained_kwargs", "prepend_bos", "exclude_special_tokens", "neuronpedia_id",
    "context_size", "seqpos_slice", "dataset_path", "dataset_trust_remote_code", "is_dataset_tokenized",
    "sae_lens_version", "sae_lens_training_version", "run_name", "sequence_separator_token",
    "disable_concat_sequences", "use_chat_formatting", "streaming", "model_kwargs",
    # training (runner)
    "act_store_device", "activations_mixing_fraction", "adam_beta1", "adam_beta2", "autocast", "autocast_lm",
    "cached_activations_path", "checkpoint_path", "compile_llm", "compile_sae", "dead_feature_threshold",
    "dead_feature_window", "eval_batch_size_prompts", "feature_sampling_window", "from_pretrained_path",
    "hook_eval", "llm_compilation_mode", "llm_device", "logger", "lr", "lr_decay_steps", "lr_end",
    "lr_scheduler_name", "lr_warm_up_steps", "n_batches_for_norm_estimate", "n_batches_in_buffer",
    "n_checkpoints", "n_eval_batches", "n_restart_cycles", "output_path", "prefetch_llm_batches",
    "resume_from_checkpoint", "sae", "sae_compilation_mode", "save_final_checkpoint", "seed",
    "store_batch_size_prompts", "train_batch_size_tokens", "training_tokens", "use_cached_activations",
    "verbose",
    # training (SAE)
    "aux_loss_coefficient", "decoder_init_norm", "jumprelu_bandwidth", "jumprelu_init_threshold",
    "jumprelu_sparsity_loss_mode", "jumprelu_ste_to_input", "jumprelu_tanh_scale", "l0_coefficient",
    "l0_warm_up_steps", "l1_coefficient", "l1_warm_up_steps", "lp_norm", "matryoshka_widths",
    "pre_act_loss_coefficient", "target_l0", "topk_threshold_lr", "use_matryoshka_aux_loss",
    "use_sparse_activations", "max_iterations", "residual_threshold", "stop_on_duplicate_support",
    # pre-6.0 training settings
    "b_dec_init_method", "expansion_factor", "use_ghost_grads", "feature_sampling_method", "resample_batches",
    "feature_reinit_scale", "dead_feature_estimation_method", "log_to_wandb", "wandb_project", "wandb_entity",
    "wandb_log_frequency", "eval_every_n_wandb_logs", "wandb_id", "tokens_per_buffer", "total_training_tokens",
    "total_training_steps", "store_batch_size", "train_batch_size", "mse_loss_normalization",
    "scale_sparsity_penalty_by_decoder_norm", "decoder_heuristic_init", "init_encoder_as_decoder_transpose",
    "decoder_orthogonal_init", "noise_scale", "normalize_sae_decoder",
})

#: sparsify config keys honoured, and keys of training only
SPARSIFY_ENCODING_KEYS = frozenset({"d_in", "k", "activation", "num_latents", "expansion_factor", "transcode",
                                    "skip_connection"})
#: (``metadata``: SAELens-style provenance that :func:`save_sae` adds to the groupmax SAEs it writes
#: in this layout; sparsify drops it when loading)
SPARSIFY_NO_EFFECT_KEYS = frozenset({"normalize_decoder", "multi_topk", "metadata"})

#: SAELens' LLM_METADATA_KEYS: the top-level keys of a pre-6.0 config it moves into ``metadata``
LLM_METADATA_KEYS = frozenset({
    "model_name", "hook_name", "model_class_name", "hook_head_index", "model_from_pretrained_kwargs",
    "prepend_bos", "exclude_special_tokens", "neuronpedia_id", "context_size", "seqpos_slice", "dataset_path",
    "sae_lens_version", "sae_lens_training_version", "hook_name_out", "hook_head_index_out", "hf_hook_name",
    "hf_hook_name_out",
})
_PRE6_RENAMES = {"hook_point": "hook_name", "hook_point_head_index": "hook_head_index",
                 "activation_fn_str": "activation_fn"}
_PRE6_DEFAULTS = {"prepend_bos": True, "sae_lens_training_version": None, "neuronpedia_id": None}

_TL_HOOK = re.compile(r"^blocks\.(\d+)\.hook_resid_(post|pre)$")
_HF_BLOCK = re.compile(r"^(?:model\.|transformer\.|gpt_neox\.|model\.decoder\.)?(?:layers|h)\.(\d+)$")


def hook_block(name):
    """Decoder block whose output a hook name denotes, or None when it is not a block output.

    TransformerLens ``blocks.L.hook_resid_post`` and Hugging Face module names
    ``layers.L`` / ``model.layers.L`` / ``h.L`` are the output of block ``L``;
    ``blocks.L.hook_resid_pre`` is the output of block ``L - 1`` (None for L = 0,
    the embeddings).
    """
    name = str(name)
    m = _TL_HOOK.match(name)
    if m:
        block = int(m.group(1))
        return block if m.group(2) == "post" else (block - 1 if block > 0 else None)
    m = _HF_BLOCK.match(name)
    return int(m.group(1)) if m else None


def _read_safetensors(path):
    try:
        from safetensors.numpy import load_file
        return load_file(str(path))
    except Exception:  # noqa: BLE001 - bfloat16 has no NumPy dtype: go through torch
        pass
    try:
        from safetensors.torch import load_file as load_torch
        return {k: v.float().numpy() if v.dtype.is_floating_point and v.dtype.itemsize < 4 else v.numpy()
                for k, v in load_torch(str(path)).items()}
    except Exception as exc:  # noqa: BLE001 - any parse failure is a format error for the user
        raise SAEFormatError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None


_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def _reference_dtype(path):
    """The dtype sparsify's ``SparseCoder.load_from_disk`` builds the coder in: that of the file's first
    tensor in name order (``safe_open(...).keys()``); None when it is not a floating dtype."""
    import struct
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    names = sorted(k for k in header if k != "__metadata__")
    return _SAFETENSORS_DTYPES.get(header[names[0]]["dtype"]) if names else None


def _read_cfg(path):
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SAEFormatError(f"{path}: cannot read the SAE config ({exc})") from None
    if not isinstance(cfg, dict):
        raise SAEFormatError(f"{path}: the SAE config is a JSON {type(cfg).__name__}, expected an object")
    return cfg


def _version_major(cfg):
    v = cfg.get("sae_lens_version") or (cfg.get("metadata") or {}).get("sae_lens_version")
    if not v:
        return None
    m = re.match(r"\s*(\d+)", str(v))
    return int(m.group(1)) if m else None


def _saelens_settings(cfg, where):
    """Encoding settings from a SAELens config (pre-6.0 configs converted as SAELens does)."""
    unknown = sorted(set(cfg) - ENCODING_KEYS - NO_EFFECT_KEYS)
    if unknown:
        raise SAEFormatError(f"{where}: config key {unknown[0]!r} is not a SAELens option emostats knows; "
                             f"refusing to guess its effect on encoding")
    major = _version_major(cfg)
    pre6 = major is None or major < 6
    act = cfg.get("activation_fn", cfg.get("activation_fn_str"))
    kwargs = cfg.get("activation_fn_kwargs") or {}
    arch = cfg.get("architecture")
    if pre6:
        arch = arch or "standard"
        if act == "topk" and kwargs.get("k") is not None:
            arch = "topk"
    elif arch is None:
        raise SAEFormatError(f"{where}: key 'architecture' missing (SAELens >= 6 configs name it)")
    if act not in (None, "relu", "topk") or (act == "topk" and arch != "topk"):
        raise SAEFormatError(f"{where}: activation_fn {act!r} with architecture {arch!r} is not an activation "
                             f"SAELens' standard/topk/jumprelu/gated SAEs compute")
    if arch not in ("standard", "topk", "jumprelu", "gated"):
        raise SAEFormatError(f"{where}: architecture {arch!r} not supported; expected standard, topk, jumprelu "
                             f"or gated")
    norm = cfg.get("normalize_activations", "none")
    if isinstance(norm, bool):
        if not pre6:
            raise SAEFormatError(f"{where}: normalize_activations is the boolean {norm}, which SAELens >= 6 "
                                 f"refuses; expected a string such as 'none'")
        norm = "expected_average_only_in" if norm else "none"
    norm = "none" if norm is None else norm
    if norm == "covariance_whitening":
        raise SAEFormatError(f"{where}: normalize_activations 'covariance_whitening' means the whitening was not "
                             f"folded into the weights; fold it (SAELens fold_activation_whitening) and save again")
    k = cfg.get("k", kwargs.get("k")) if arch == "topk" else None
    if arch == "topk" and k is None:
        raise SAEFormatError(f"{where}: topk SAE without 'k' (or activation_fn_kwargs.k)")
    if cfg.get("reshape_activations", "none") not in ("none", None):
        raise SAEFormatError(f"{where}: reshape_activations {cfg['reshape_activations']!r} reads attention "
                             f"heads (hook_z); emostats reads the residual stream")
    for key in ("hook_head_index", "hook_point_head_index"):
        if cfg.get(key) is not None:
            raise SAEFormatError(f"{where}: {key} = {cfg[key]!r}: an SAE of one attention head, not of the "
                                 f"residual stream")
    if cfg.get("d_out") is not None and cfg.get("d_out") != cfg.get("d_in"):
        raise SAEFormatError(f"{where}: d_out = {cfg['d_out']} != d_in: a transcoder, not an SAE")
    if cfg.get("finetuning_scaling_factor"):
        raise SAEFormatError(f"{where}: finetuning_scaling_factor = true (a per-feature decoder scale that "
                             f"SAELens >= 6 no longer applies) is not supported")
    rescale = cfg.get("rescale_acts_by_decoder_norm", False)
    if not isinstance(rescale, bool):
        raise SAEFormatError(f"{where}: rescale_acts_by_decoder_norm must be true or false, got {rescale!r}")
    dtype = str(cfg.get("dtype", "float32")).removeprefix("torch.")
    if pre6:  # SAELens' handle_pre_6_0_config: renamed keys, defaults, then the LLM metadata keys
        renamed = {_PRE6_RENAMES.get(key, key): value for key, value in cfg.items()}
        for key, value in _PRE6_DEFAULTS.items():
            renamed.setdefault(key, value)
        if "hook_z" in str(renamed.get("hook_name", "")):
            raise SAEFormatError(f"{where}: hook_point {renamed['hook_name']!r} reads attention heads (hook_z, "
                                 f"which SAELens reshapes); emostats reads the residual stream")
        metadata = {key: value for key, value in renamed.items() if key in LLM_METADATA_KEYS}
    else:
        metadata = dict(cfg.get("metadata") or {})
    return {"architecture": arch, "k": k, "apply_b_dec_to_input": cfg.get("apply_b_dec_to_input", True),
            "normalize_activations": norm, "rescale_acts_by_decoder_norm": rescale, "dtype": dtype,
            "metadata": metadata}


def _load_saelens(folder):
    from .sae import SAE
    settings = _saelens_settings(_read_cfg(folder / CFG), folder / CFG)
    w = _read_safetensors(folder / WEIGHTS)
    if "log_threshold" in w and "threshold" not in w:  # older JumpReLU files: exp in the SAE's dtype, as SAELens
        import torch
        from .sae import _DTYPES
        w["threshold"] = torch.as_tensor(w.pop("log_threshold")).to(_DTYPES.get(settings["dtype"],
                                                                                torch.float32)).exp()
    scaling = w.pop("scaling_factor", None)
    if scaling is not None and not np.allclose(scaling, 1.0):
        raise SAEFormatError(f"{folder / WEIGHTS}: tensor scaling_factor is not all ones (a finetuning scale "
                             f"SAELens >= 6 no longer applies); not supported")
    sparsity = None
    if (folder / SPARSITY).exists():
        s = _read_safetensors(folder / SPARSITY)
        if "sparsity" not in s:
            raise SAEFormatError(f"{folder / SPARSITY}: no tensor 'sparsity' (found {', '.join(sorted(s))})")
        sparsity = s["sparsity"]
    sae = SAE(w, log_sparsity=sparsity, source=str(folder / CFG), **settings)
    cfg = _read_cfg(folder / CFG)
    for key in ("d_in", "d_sae"):
        if key in cfg and int(cfg[key]) != getattr(sae, key):
            raise SAEFormatError(f"{folder / CFG}: {key} = {cfg[key]} but the weights have {key} = "
                                 f"{getattr(sae, key)}")
    sae.format = "SAELens"
    return sae


def _load_sparsify(folder):
    from .sae import SAE
    where = folder / CFG
    cfg = _read_cfg(where)
    unknown = sorted(set(cfg) - SPARSIFY_ENCODING_KEYS - SPARSIFY_NO_EFFECT_KEYS)
    if unknown:
        raise SAEFormatError(f"{where}: config key {unknown[0]!r} is not a sparsify option emostats knows; "
                             f"refusing to guess its effect on encoding")
    if cfg.get("transcode"):
        raise SAEFormatError(f"{where}: transcode = true: a transcoder (predicts a module's output), not an SAE")
    if cfg.get("skip_connection"):
        raise SAEFormatError(f"{where}: skip_connection = true (W_skip) is not supported")
    act = cfg.get("activation", "topk")
    if act not in ("topk", "groupmax"):
        raise SAEFormatError(f"{where}: activation {act!r} not supported; expected topk or groupmax")
    w = _read_safetensors(folder / SPARSIFY_WEIGHTS)
    need = ("encoder.weight", "encoder.bias", "W_dec", "b_dec")
    for name in need:
        if name not in w:
            raise SAEFormatError(f"{folder / SPARSIFY_WEIGHTS}: tensor {name} missing (expected {', '.join(need)})")
    extra = sorted(set(w) - set(need))
    if extra:
        raise SAEFormatError(f"{folder / SPARSIFY_WEIGHTS}: tensor {extra[0]!r} not supported")
    d_in = int(cfg.get("d_in", w["b_dec"].shape[0]))
    d_sae = int(cfg.get("num_latents") or d_in * int(cfg.get("expansion_factor", 32)))
    if w["encoder.weight"].shape != (d_sae, d_in):
        raise SAEFormatError(f"{folder / SPARSIFY_WEIGHTS}: encoder.weight has shape {w['encoder.weight'].shape}, "
                             f"the config says ({d_sae}, {d_in})")
    weights = {"W_enc": np.ascontiguousarray(w["encoder.weight"].T), "b_enc": w["encoder.bias"],
               "W_dec": w["W_dec"], "b_dec": w["b_dec"]}
    dtype = _reference_dtype(folder / SPARSIFY_WEIGHTS)  # sparsify computes in the file's dtype
    if dtype is None:
        raise SAEFormatError(f"{folder / SPARSIFY_WEIGHTS}: the tensors are not floating point")
    metadata = dict(cfg.get("metadata") or {"hf_hook_name": folder.name})
    metadata.setdefault("source_format", "sparsify")
    sae = SAE(weights, "topk" if act == "topk" else "groupmax", k=cfg.get("k", 32), apply_b_dec_to_input=True,
              dtype=dtype, metadata=metadata, source=str(where), fused_bias=True)
    sae.format = "sparsify"
    return sae


def _sparsify_hookpoint(folder):
    """The module a sparsify hookpoint folder's SAE reads: its folder name, or for a folder written by
    :func:`save_sae`, ``metadata.hf_hook_name``."""
    meta = _read_cfg(folder / CFG).get("metadata")
    return str(meta.get("hf_hook_name") or folder.name) if isinstance(meta, dict) else folder.name


def _sparsify_layers(folder):
    return sorted((p for p in folder.iterdir() if p.is_dir() and (p / SPARSIFY_WEIGHTS).exists()),
                  key=lambda p: (hook_block(p.name) is None, hook_block(p.name) or 0, p.name))


def _folder(path):
    """The SAE folder of ``path`` (a folder, or a file inside one); one-line error if there is none."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise SAEFormatError(f"{path}: no such SAE folder")
    return path


def sae_layers(path):
    """Check that ``path`` is an SAE folder :func:`load_sae` reads (configs parsed, weights not loaded);
    returns the decoder blocks it has SAEs for (None = not known from the layout)."""
    path = _folder(path)
    if (path / CFG).exists() and (path / WEIGHTS).exists():
        settings = _saelens_settings(_read_cfg(path / CFG), path / CFG)
        hook = settings["metadata"].get("hook_name") or settings["metadata"].get("hf_hook_name")
        return None if hook is None else [hook_block(hook)]
    if (path / CFG).exists() and (path / SPARSIFY_WEIGHTS).exists():
        return [hook_block(_sparsify_hookpoint(path))]
    layers = [hook_block(p.name) for p in _sparsify_layers(path)]
    if layers:
        return layers
    return [load_sae(path)]  # raises the one-line "not an SAE folder"


def load_sae(path, layer=None):
    """Load an SAE from a SAELens folder, a sparsify hookpoint folder, or a sparsify run folder.

    Parameters
    ----------
    path : str or Path
        A folder (or a file inside it): SAELens ``cfg.json`` +
        ``sae_weights.safetensors`` (+ ``sparsity.safetensors``); sparsify
        ``cfg.json`` + ``sae.safetensors``; or a sparsify run folder with one
        folder per hookpoint (``layers.N``).
    layer : int, optional
        With a sparsify run folder: the decoder block whose output the SAE reads
        (its folder ``layers.N``); needed when the run has several.

    Returns
    -------
    extract.sae.SAE
        With ``format`` ("SAELens" or "sparsify"), ``metadata`` and, when the
        folder has it, ``log_sparsity``.
    """
    path = _folder(path)
    if (path / CFG).exists() and (path / WEIGHTS).exists():
        return _load_saelens(path)
    if (path / CFG).exists() and (path / SPARSIFY_WEIGHTS).exists():
        hookpoint = _sparsify_hookpoint(path)
        if hook_block(hookpoint) is None:
            raise SAEFormatError(f"{path}: sparsify hookpoint {hookpoint!r} is not a decoder block output "
                                 f"(layers.N); emostats reads the residual stream after a block")
        return _load_sparsify(path)
    layers = _sparsify_layers(path)
    if layers:
        blocks = {hook_block(p.name): p for p in layers if hook_block(p.name) is not None}
        names = ", ".join(p.name for p in layers)
        if layer is None and len(blocks) == 1:
            return _load_sparsify(next(iter(blocks.values())))
        if layer is None:
            raise SAEFormatError(f"{path}: a sparsify run with SAEs for {names}; choose one with layer=N")
        if int(layer) not in blocks:
            raise SAEFormatError(f"{path}: this sparsify run has no SAE for block {layer} (has {names})")
        return _load_sparsify(blocks[int(layer)])
    found = ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "nothing"
    raise SAEFormatError(f"{path}: not an SAE folder: expected SAELens cfg.json + {WEIGHTS}, sparsify cfg.json + "
                         f"{SPARSIFY_WEIGHTS}, or sparsify folders layers.N; found {found}")


def _saelens_metadata(sae, metadata):
    """The ``metadata`` :func:`save_sae` writes: ``sae.metadata`` updated by ``metadata``, with a
    ``sae_lens_version`` SAELens reads as a 6.x config and the TransformerLens hook name of a block
    output when only the Hugging Face module name is known."""
    meta = {**sae.metadata, **(metadata or {})}
    major = _version_major({"sae_lens_version": meta.get("sae_lens_version")})
    if major is None or major < 6:  # SAELens would convert the file as a pre-6.0 config and drop the metadata
        if meta.get("sae_lens_version"):
            meta["source_sae_lens_version"] = meta["sae_lens_version"]
        meta["sae_lens_version"] = SAELENS_FORMAT_VERSION
    meta.setdefault("sae_lens_training_version", None)
    block = hook_block(meta.get("hf_hook_name", ""))
    if not meta.get("hook_name") and block is not None:
        meta["hook_name"] = f"blocks.{block}.hook_resid_post"
    meta.setdefault("written_by", "emostats extract")
    return meta


def _write_json(path, obj):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    tmp.replace(path)


def _save_sparsify(sae, folder, meta):
    """A groupmax SAE (SAELens has no such architecture) in sparsify's layout, which
    ``sparsify.SparseCoder.load_from_disk`` reads; the provenance goes in ``cfg.json``'s ``metadata``."""
    from safetensors.torch import save_file
    if not sae.apply_b_dec_to_input or sae.normalize_activations != "none":
        raise SAEFormatError(f"{sae.source}: a groupmax SAE with apply_b_dec_to_input = "
                             f"{sae.apply_b_dec_to_input} and normalize_activations = "
                             f"{sae.normalize_activations!r} has no file layout (sparsify subtracts b_dec and "
                             f"does not normalise)")
    w = sae.weights
    tensors = {"encoder.weight": w["W_enc"].T.contiguous(), "encoder.bias": w["b_enc"].contiguous(),
               "W_dec": w["W_dec"].contiguous(), "b_dec": w["b_dec"].contiguous()}
    tmp = folder / (SPARSIFY_WEIGHTS + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(folder / SPARSIFY_WEIGHTS)
    for stale in (WEIGHTS, SPARSITY):  # files of an SAELens SAE saved here before
        (folder / stale).unlink(missing_ok=True)
    meta = {k: v for k, v in meta.items() if k not in ("sae_lens_version", "sae_lens_training_version")}
    if not meta.get("hf_hook_name"):
        block = hook_block(meta.get("hook_name", ""))
        meta["hf_hook_name"] = folder.name if block is None else f"layers.{block}"
    _write_json(folder / CFG, {"activation": "groupmax", "k": sae.k, "num_latents": sae.d_sae, "d_in": sae.d_in,
                               "expansion_factor": 32, "normalize_decoder": True, "multi_topk": False,
                               "skip_connection": False, "transcode": False, "metadata": meta})
    return folder


def save_sae(sae, folder, metadata=None):
    """Save in the SAELens 6 layout (``cfg.json``, ``sae_weights.safetensors``, ``sparsity.safetensors``),
    which ``sae_lens.SAE.load_from_disk`` reads as the same class with the same codes.

    ``metadata`` (merged over ``sae.metadata``) should name the hook in
    TransformerLens naming (``hook_name = "blocks.L.hook_resid_post"``); when
    only ``hf_hook_name`` names a block output (``layers.L``), ``hook_name`` is
    derived from it. A ``sae_lens_version`` below 6 (an SAE read from a pre-6.0
    config) or none becomes :data:`SAELENS_FORMAT_VERSION` (the old one is kept
    as ``source_sae_lens_version``), so SAELens reads the config as a 6.x config
    and keeps the metadata. A ``groupmax`` SAE, which SAELens has no
    architecture for, is written in sparsify's layout (``cfg.json`` +
    ``sae.safetensors``, provenance under ``metadata``), which
    ``sparsify.SparseCoder.load_from_disk`` and :func:`load_sae` read. Files are
    written to temporary names and renamed; the other layout's weights left in
    ``folder`` by an earlier save are removed.

    Examples
    --------
    >>> import tempfile, torch
    >>> from extract.sae import SAE
    >>> sae = SAE({"W_enc": torch.eye(2), "b_enc": torch.zeros(2), "W_dec": torch.eye(2),
    ...            "b_dec": torch.zeros(2)}, "topk", k=1)
    >>> folder = save_sae(sae, tempfile.mkdtemp(), metadata={"hook_name": "blocks.3.hook_resid_post"})
    >>> load_sae(folder).metadata["hook_name"]
    'blocks.3.hook_resid_post'
    """
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = _saelens_metadata(sae, metadata)
    if sae.architecture == "groupmax":
        return _save_sparsify(sae, folder, meta)
    (folder / SPARSIFY_WEIGHTS).unlink(missing_ok=True)  # a sparsify SAE saved here before
    cfg = {**sae.settings(), "device": "cpu", "reshape_activations": "none", "metadata": meta}
    tensors = {k: v.contiguous() for k, v in sae.weights.items()}
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(folder / WEIGHTS)
    if sae.log_sparsity is not None:
        import torch
        tmp = folder / (SPARSITY + ".tmp")
        save_file({"sparsity": torch.as_tensor(sae.log_sparsity, dtype=torch.float32)}, str(tmp))
        tmp.replace(folder / SPARSITY)
    else:  # a sparsity file of an SAE saved here before would describe other features
        (folder / SPARSITY).unlink(missing_ok=True)
    _write_json(folder / CFG, cfg)
    return folder
