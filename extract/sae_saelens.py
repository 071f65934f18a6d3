"""The SAELens SAE layout: its config keys, the conversion of pre-6.0 configs, reading and writing.

SAELens (``SAE.save_model`` / ``SAE.load_from_disk``): a folder with
``cfg.json``, ``sae_weights.safetensors`` and optionally
``sparsity.safetensors`` (tensor ``sparsity``: log10 firing frequency per
latent). Configs from SAELens >= 6 name the architecture and keep provenance
under ``metadata`` (``sae_lens_version``, ``hook_name`` in TransformerLens
naming such as ``blocks.20.hook_resid_post``); older configs keep everything at
the top level (``hook_point``, ``activation_fn_str``, ``activation_fn_kwargs.k``,
a boolean ``normalize_activations``), and SAELens converts them as
``handle_pre_6_0_config`` does; so does :func:`load_saelens`.

Every config key is either honoured (:data:`ENCODING_KEYS`) or known to have no
effect on encoding (:data:`NO_EFFECT_KEYS`: training settings, provenance); any
other key, or a value the encoder cannot honour, refuses the file with one line
naming the key.
"""

import re

import numpy as np

from .sae_common import CFG, SPARSIFY_WEIGHTS, SPARSITY, WEIGHTS, SAEFormatError, hook_block, read_cfg, \
    read_safetensors, write_json

__all__ = ["SAELENS_FORMAT_VERSION", "ENCODING_KEYS", "NO_EFFECT_KEYS", "LLM_METADATA_KEYS", "saelens_settings",
           "load_saelens", "saelens_metadata", "save_saelens"]

#: the SAELens config format :func:`extract.sae_files.save_sae` writes (``metadata.sae_lens_version``)
SAELENS_FORMAT_VERSION = "6.0.0"

#: SAELens config keys that change what encode computes; each is honoured by :func:`extract.sae_files.load_sae`
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


def _version_major(cfg):
    v = cfg.get("sae_lens_version") or (cfg.get("metadata") or {}).get("sae_lens_version")
    if not v:
        return None
    m = re.match(r"\s*(\d+)", str(v))
    return int(m.group(1)) if m else None


def saelens_settings(cfg, where):
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


def load_saelens(folder):
    """The :class:`extract.sae.SAE` of a SAELens folder (``format = "SAELens"``)."""
    from .sae import SAE
    settings = saelens_settings(read_cfg(folder / CFG), folder / CFG)
    w = read_safetensors(folder / WEIGHTS)
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
        s = read_safetensors(folder / SPARSITY)
        if "sparsity" not in s:
            raise SAEFormatError(f"{folder / SPARSITY}: no tensor 'sparsity' (found {', '.join(sorted(s))})")
        sparsity = s["sparsity"]
    sae = SAE(w, log_sparsity=sparsity, source=str(folder / CFG), **settings)
    cfg = read_cfg(folder / CFG)
    for key in ("d_in", "d_sae"):
        if key in cfg and int(cfg[key]) != getattr(sae, key):
            raise SAEFormatError(f"{folder / CFG}: {key} = {cfg[key]} but the weights have {key} = "
                                 f"{getattr(sae, key)}")
    sae.format = "SAELens"
    return sae


def saelens_metadata(sae, metadata):
    """The ``metadata`` :func:`extract.sae_files.save_sae` writes: ``sae.metadata`` updated by ``metadata``, with a
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


def save_saelens(sae, folder, meta):
    """``sae`` in the SAELens 6 layout in ``folder`` with ``meta`` (:func:`saelens_metadata`) as its
    ``metadata``; the weights of a sparsify SAE saved there before are removed."""
    from safetensors.torch import save_file
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
    write_json(folder / CFG, cfg)
    return folder
