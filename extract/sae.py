"""Sparse autoencoders in the SAELens on-disk format, and a small TopK trainer.

On disk (SAELens): a folder with ``cfg.json`` and ``sae_weights.safetensors``
holding ``W_enc (d_in, d_sae)``, ``b_enc (d_sae)``, ``W_dec (d_sae, d_in)``,
``b_dec (d_in)`` and, for JumpReLU, ``threshold (d_sae)`` (older files:
``log_threshold``). ``cfg.json`` gives ``d_in``, ``d_sae``, ``architecture``
(``standard``, ``topk`` or ``jumprelu``; older files: ``activation_fn_str``
``relu``/``topk``), ``k`` (or ``activation_fn_kwargs.k``),
``apply_b_dec_to_input`` and ``normalize_activations``.

Encoding, as in SAELens:

* input normalisation: ``none`` and ``expected_average_only_in`` leave x as is
  (the latter's scaling factor is folded into the weights at save time);
  ``constant_norm_rescale``: ``x * sqrt(d_in) / ||x||``; ``layer_norm``:
  ``(x - mean(x)) / (std(x, ddof=1) + 1e-5)``;
* ``pre = (x - b_dec * apply_b_dec_to_input) @ W_enc + b_enc``;
* standard: ``relu(pre)``; topk: the ``k`` largest entries of ``pre`` pass
  through ``relu``, the rest are 0; jumprelu: ``relu(pre) * (pre > threshold)``.
"""

import json
import math
from pathlib import Path

import numpy as np
import torch

__all__ = ["SAE", "load_sae", "save_sae", "train_topk_sae"]


class SAE:
    """SAE weights and config; ``encode`` and ``decode`` follow SAELens."""

    def __init__(self, cfg, W_enc, b_enc, W_dec, b_dec, threshold=None):
        self.cfg = dict(cfg)
        self.W_enc = torch.as_tensor(W_enc, dtype=torch.float32)
        self.b_enc = torch.as_tensor(b_enc, dtype=torch.float32)
        self.W_dec = torch.as_tensor(W_dec, dtype=torch.float32)
        self.b_dec = torch.as_tensor(b_dec, dtype=torch.float32)
        self.threshold = None if threshold is None else torch.as_tensor(threshold, dtype=torch.float32)
        arch = self.architecture
        if arch not in ("standard", "topk", "jumprelu"):
            raise ValueError(f"SAE architecture {arch!r} not supported; expected standard, topk or jumprelu")
        if arch == "jumprelu" and self.threshold is None:
            raise ValueError("jumprelu SAE without threshold weights")
        norm = self.cfg.get("normalize_activations", "none") or "none"
        if norm not in ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm"):
            raise ValueError(f"normalize_activations {norm!r} not supported")

    @property
    def architecture(self):
        arch = self.cfg.get("architecture")
        if arch is None:
            arch = "topk" if self.cfg.get("activation_fn_str") == "topk" else "standard"
        return arch

    @property
    def k(self):
        if "k" in self.cfg:
            return int(self.cfg["k"])
        return int((self.cfg.get("activation_fn_kwargs") or {}).get("k", 0))

    def _normalise(self, x):
        norm = self.cfg.get("normalize_activations", "none") or "none"
        if norm == "constant_norm_rescale":
            return x * (self.W_enc.shape[0] ** 0.5) / x.norm(dim=-1, keepdim=True)
        if norm == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            x = x - mu
            return x / (x.std(dim=-1, keepdim=True) + 1e-5)
        return x

    def encode(self, x):
        """Feature activations (..., d_sae) of inputs ``x`` (..., d_in)."""
        x = torch.as_tensor(x, dtype=torch.float32)
        x = self._normalise(x)
        if self.cfg.get("apply_b_dec_to_input", True):
            x = x - self.b_dec
        pre = x @ self.W_enc + self.b_enc
        arch = self.architecture
        if arch == "standard":
            return torch.relu(pre)
        if arch == "jumprelu":
            return torch.relu(pre) * (pre > self.threshold).to(pre.dtype)
        top = torch.topk(pre, self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def decode(self, acts):
        """Reconstruction ``acts @ W_dec + b_dec`` (normalisation not undone)."""
        return torch.as_tensor(acts, dtype=torch.float32) @ self.W_dec + self.b_dec

    def top_codes(self, x, k, batch=4096):
        """The ``k`` largest feature activations per row: (index int32, value float32), -1/0 = empty."""
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        idx = np.full((x.shape[0], k), -1, dtype=np.int32)
        val = np.zeros((x.shape[0], k), dtype=np.float32)
        for s in range(0, x.shape[0], batch):
            acts = self.encode(x[s:s + batch])
            top = torch.topk(acts, k, dim=-1)
            active = top.values > 0
            idx[s:s + batch] = torch.where(active, top.indices, -1).numpy()
            val[s:s + batch] = torch.where(active, top.values, 0.0).numpy()
        return idx, val


def load_sae(folder):
    """Load an SAE saved in the SAELens format (``cfg.json`` + ``sae_weights.safetensors``)."""
    from safetensors.torch import load_file
    folder = Path(folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    w = load_file(str(folder / "sae_weights.safetensors"))
    threshold = w.get("threshold")
    if threshold is None and "log_threshold" in w:
        threshold = torch.exp(w["log_threshold"])
    return SAE(cfg, w["W_enc"], w["b_enc"], w["W_dec"], w["b_dec"], threshold)


def save_sae(sae, folder):
    """Save in the SAELens format; creates the folder."""
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"W_enc": sae.W_enc.contiguous(), "b_enc": sae.b_enc.contiguous(),
               "W_dec": sae.W_dec.contiguous(), "b_dec": sae.b_dec.contiguous()}
    if sae.threshold is not None:
        tensors["threshold"] = sae.threshold.contiguous()
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(sae.cfg, indent=2, sort_keys=True))


def train_topk_sae(acts, d_sae, k, *, steps, batch_size=256, lr=4e-4, seed=0, progress=None,
                   meta=None):
    """Train a TopK SAE on activations ``acts`` (n, d_in) with Adam on the MSE.

    Inputs are scaled by ``c = sqrt(d_in) / mean ||x||`` during training
    (SAELens' ``expected_average_only_in``) and ``c`` is folded into the
    weights afterwards (``W_enc * c``, ``W_dec / c``, ``b_dec / c``), so the
    saved SAE takes raw activations with ``normalize_activations = "none"``.
    Decoder rows are kept at unit norm (in the scaled space); ``W_enc`` starts
    as ``W_dec.T``, ``b_dec`` as the data mean. Minibatches are drawn with
    ``seed``.

    Returns
    -------
    (SAE, dict)
        The SAE and training statistics (final fraction of variance unexplained,
        number of dead features in the last 1000 steps' batches, scale factor).
    """
    gen = torch.Generator().manual_seed(int(seed))
    x_all = torch.as_tensor(np.asarray(acts), dtype=torch.float32)
    n, d_in = x_all.shape
    scale = float(math.sqrt(d_in) / x_all.norm(dim=1).mean())
    x_all = x_all * scale
    W_dec = torch.randn((d_sae, d_in), generator=gen)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
    W_dec.requires_grad_(True)
    W_enc = W_dec.detach().T.clone().requires_grad_(True)
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = x_all.mean(0).clone().requires_grad_(True)
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=lr)
    fired = torch.zeros(d_sae, dtype=torch.bool)
    var = float(((x_all - x_all.mean(0)) ** 2).sum(1).mean())
    fvu = float("nan")
    for step in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        x = x_all[idx]
        pre = (x - b_dec) @ W_enc + b_enc
        top = torch.topk(pre, k, dim=-1)
        acts_ = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
        recon = acts_ @ W_dec + b_dec
        loss = ((recon - x) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():  # remove the gradient component parallel to the unit decoder rows
            W_dec.grad -= (W_dec.grad * W_dec).sum(1, keepdim=True) * W_dec
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True)
            if step >= steps - 1000:
                fired |= (acts_ > 0).any(0)
        fvu = float(loss.detach()) / var
        if progress and (step + 1) % 250 == 0:
            progress(f"SAE step {step + 1}/{steps}: fraction of variance unexplained {fvu:.3f}")
    cfg = {"architecture": "topk", "d_in": int(d_in), "d_sae": int(d_sae), "k": int(k),
           "activation_fn_str": "topk", "activation_fn_kwargs": {"k": int(k)},
           "apply_b_dec_to_input": True, "normalize_activations": "none", "dtype": "float32",
           "device": "cpu", "metadata": dict(meta or {})}
    with torch.no_grad():
        sae = SAE(cfg, W_enc.detach() * scale, b_enc.detach(), W_dec.detach() / scale,
                  b_dec.detach() / scale)
    stats = {"fvu": fvu, "dead": int((~fired).sum()), "scale": scale}
    return sae, stats
