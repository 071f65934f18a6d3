"""SAE files: the SAELens layout and the EleutherAI sparsify layout, read strictly, written for SAELens.

:func:`load_sae` and :func:`sae_layers` tell the layouts apart by the files in a
folder: SAELens (``cfg.json`` + ``sae_weights.safetensors``, read by
:mod:`extract.sae_saelens`), a sparsify hookpoint folder (``cfg.json`` +
``sae.safetensors``, read by :mod:`extract.sae_sparsify`), or a sparsify run
folder holding one such folder per hookpoint (``layers.N``), from which
``layer`` chooses. What both share (the error, the file names, hook names) is in
:mod:`extract.sae_common`.

:func:`save_sae` writes the SAELens 6 layout, except for ``groupmax`` SAEs,
which SAELens has no architecture for: those are written in sparsify's layout
with the provenance under ``metadata`` in ``cfg.json`` (sparsify drops it).

Every config key is either honoured or known to have no effect on encoding
(training settings, provenance); any other key, or a value the encoder cannot
honour, refuses the file with one line naming the key.
"""

from pathlib import Path

from .sae_common import CFG, SPARSIFY_WEIGHTS, WEIGHTS, SAEFormatError, hook_block, read_cfg, sae_folder
from .sae_saelens import load_saelens, saelens_metadata, saelens_settings, save_saelens
from .sae_sparsify import load_sparsify, save_sparsify, sparsify_hookpoint, sparsify_layers

__all__ = ["load_sae", "sae_layers", "save_sae"]


def sae_layers(path):
    """Check that ``path`` is an SAE folder :func:`load_sae` reads (configs parsed, weights not loaded);
    returns the decoder blocks it has SAEs for (None = not known from the layout)."""
    path = sae_folder(path)
    if (path / CFG).exists() and (path / WEIGHTS).exists():
        settings = saelens_settings(read_cfg(path / CFG), path / CFG)
        hook = settings["metadata"].get("hook_name") or settings["metadata"].get("hf_hook_name")
        return None if hook is None else [hook_block(hook)]
    if (path / CFG).exists() and (path / SPARSIFY_WEIGHTS).exists():
        return [hook_block(sparsify_hookpoint(path))]
    layers = [hook_block(p.name) for p in sparsify_layers(path)]
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
    path = sae_folder(path)
    if (path / CFG).exists() and (path / WEIGHTS).exists():
        return load_saelens(path)
    if (path / CFG).exists() and (path / SPARSIFY_WEIGHTS).exists():
        hookpoint = sparsify_hookpoint(path)
        if hook_block(hookpoint) is None:
            raise SAEFormatError(f"{path}: sparsify hookpoint {hookpoint!r} is not a decoder block output "
                                 f"(layers.N); emostats reads the residual stream after a block")
        return load_sparsify(path)
    layers = sparsify_layers(path)
    if layers:
        blocks = {hook_block(p.name): p for p in layers if hook_block(p.name) is not None}
        names = ", ".join(p.name for p in layers)
        if layer is None and len(blocks) == 1:
            return load_sparsify(next(iter(blocks.values())))
        if layer is None:
            raise SAEFormatError(f"{path}: a sparsify run with SAEs for {names}; choose one with layer=N")
        if int(layer) not in blocks:
            raise SAEFormatError(f"{path}: this sparsify run has no SAE for block {layer} (has {names})")
        return load_sparsify(blocks[int(layer)])
    found = ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "nothing"
    raise SAEFormatError(f"{path}: not an SAE folder: expected SAELens cfg.json + {WEIGHTS}, sparsify cfg.json + "
                         f"{SPARSIFY_WEIGHTS}, or sparsify folders layers.N; found {found}")


def save_sae(sae, folder, metadata=None):
    """Save in the SAELens 6 layout (``cfg.json``, ``sae_weights.safetensors``, ``sparsity.safetensors``),
    which ``sae_lens.SAE.load_from_disk`` reads as the same class with the same codes.

    ``metadata`` (merged over ``sae.metadata``) should name the hook in
    TransformerLens naming (``hook_name = "blocks.L.hook_resid_post"``); when
    only ``hf_hook_name`` names a block output (``layers.L``), ``hook_name`` is
    derived from it. A ``sae_lens_version`` below 6 (an SAE read from a pre-6.0
    config) or none becomes :data:`extract.sae_saelens.SAELENS_FORMAT_VERSION` (the old one is kept
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
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = saelens_metadata(sae, metadata)
    if sae.architecture == "groupmax":
        return save_sparsify(sae, folder, meta)
    return save_saelens(sae, folder, meta)
