"""The EleutherAI sparsify SAE layout: its config keys, reading (bit for bit as sparsify encodes) and writing.

sparsify (``SparseCoder.save_to_disk``): a folder per hookpoint named after the
module, e.g. ``layers.20`` (the output of decoder block 20), holding
``cfg.json`` (``d_in``, ``k``, ``activation``, ``num_latents`` or
``expansion_factor``, ...) and ``sae.safetensors`` (``encoder.weight (d_sae,
d_in)``, ``encoder.bias``, ``W_dec (d_sae, d_in)``, ``b_dec``). The folder of a
whole run holds several such folders (:func:`sparsify_layers`). A sparsify SAE
computes in the dtype of its file (that of the first tensor in name order, as
``SparseCoder.load_from_disk`` builds it), with the bias added inside
``F.linear`` and ``relu`` before the top k, exactly as ``sparsify.fused_encoder``.

:func:`extract.sae_files.save_sae` writes ``groupmax`` SAEs, which SAELens has
no architecture for, in this layout (:func:`save_sparsify`), with the provenance
under ``metadata`` in ``cfg.json`` (sparsify drops it).
"""

import json

import numpy as np

from .sae_common import CFG, SPARSIFY_WEIGHTS, SPARSITY, WEIGHTS, SAEFormatError, hook_block, read_cfg, \
    read_safetensors, write_json

__all__ = ["SPARSIFY_ENCODING_KEYS", "SPARSIFY_NO_EFFECT_KEYS", "load_sparsify", "sparsify_hookpoint",
           "sparsify_layers", "save_sparsify"]

#: sparsify config keys honoured, and keys of training only
SPARSIFY_ENCODING_KEYS = frozenset({"d_in", "k", "activation", "num_latents", "expansion_factor", "transcode",
                                    "skip_connection"})
#: (``metadata``: SAELens-style provenance that :func:`extract.sae_files.save_sae` adds to the groupmax SAEs
#: it writes in this layout; sparsify drops it when loading)
SPARSIFY_NO_EFFECT_KEYS = frozenset({"normalize_decoder", "multi_topk", "metadata"})

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


def load_sparsify(folder):
    """The :class:`extract.sae.SAE` of a sparsify hookpoint folder (``format = "sparsify"``)."""
    from .sae import SAE
    where = folder / CFG
    cfg = read_cfg(where)
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
    w = read_safetensors(folder / SPARSIFY_WEIGHTS)
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


def sparsify_hookpoint(folder):
    """The module a sparsify hookpoint folder's SAE reads: its folder name, or for a folder written by
    :func:`extract.sae_files.save_sae`, ``metadata.hf_hook_name``."""
    meta = read_cfg(folder / CFG).get("metadata")
    return str(meta.get("hf_hook_name") or folder.name) if isinstance(meta, dict) else folder.name


def sparsify_layers(folder):
    """The hookpoint folders of a sparsify run folder, in block order (folders not naming a block last)."""
    return sorted((p for p in folder.iterdir() if p.is_dir() and (p / SPARSIFY_WEIGHTS).exists()),
                  key=lambda p: (hook_block(p.name) is None, hook_block(p.name) or 0, p.name))


def save_sparsify(sae, folder, meta):
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
    write_json(folder / CFG, {"activation": "groupmax", "k": sae.k, "num_latents": sae.d_sae, "d_in": sae.d_in,
                               "expansion_factor": 32, "normalize_decoder": True, "multi_topk": False,
                               "skip_connection": False, "transcode": False, "metadata": meta})
    return folder
