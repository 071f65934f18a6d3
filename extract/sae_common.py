"""What the SAE file layouts share: the error, the file names, reading safetensors and JSON configs, hook names.

:mod:`extract.sae_saelens` (the SAELens layout) and :mod:`extract.sae_sparsify`
(the EleutherAI sparsify layout) read and write with these;
:mod:`extract.sae_files` chooses between them.
"""

import json
import re
from pathlib import Path

from emostats.errors import EmostatsError

__all__ = ["SAEFormatError", "hook_block", "read_safetensors", "read_cfg", "write_json", "sae_folder",
           "CFG", "WEIGHTS", "SPARSITY", "SPARSIFY_WEIGHTS"]

CFG, WEIGHTS, SPARSITY, SPARSIFY_WEIGHTS = "cfg.json", "sae_weights.safetensors", "sparsity.safetensors", "sae.safetensors"


class SAEFormatError(EmostatsError):
    """An SAE file that cannot be read faithfully (names the file and the key)."""


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


def read_safetensors(path):
    """{name: numpy array} of a safetensors file (bfloat16 and float16 read through torch as float32)."""
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


def read_cfg(path):
    """The JSON object of an SAE's ``cfg.json``; one-line :class:`SAEFormatError` when it is none."""
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SAEFormatError(f"{path}: cannot read the SAE config ({exc})") from None
    if not isinstance(cfg, dict):
        raise SAEFormatError(f"{path}: the SAE config is a JSON {type(cfg).__name__}, expected an object")
    return cfg


def write_json(path, obj):
    """Write ``obj`` as JSON to ``path`` through a temporary file renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    tmp.replace(path)


def sae_folder(path):
    """The SAE folder of ``path`` (a folder, or a file inside one); one-line error if there is none."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise SAEFormatError(f"{path}: no such SAE folder")
    return path
