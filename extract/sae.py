"""Sparse autoencoders as SAELens and EleutherAI sparsify encode them, and a small TopK trainer.

:class:`SAE` holds the weights in SAELens' names and orientation
(``W_enc (d_in, d_sae)``, ``b_enc``, ``W_dec (d_sae, d_in)``, ``b_dec``;
``threshold`` for JumpReLU; ``b_gate``, ``r_mag``, ``b_mag`` for gated SAEs)
and the settings that change what ``encode`` computes. Reading and writing
the files is :mod:`extract.sae_files` (:func:`load_sae`, :func:`save_sae`
are re-exported here).

Encoding, as SAELens 6 computes it (``sae_lens.saes``):

* the input is cast to the SAE's ``dtype`` and normalised:
  ``none`` and ``expected_average_only_in`` leave it as is (SAELens folds the
  latter's scaling factor into the weights when it saves; ``load_from_disk``
  applies none); ``constant_norm_rescale``: ``x * sqrt(d_in) / ||x||``;
  ``layer_norm``: ``(x - mean(x)) / (std(x, ddof=1) + 1e-5)``;
* ``sae_in = x - b_dec * apply_b_dec_to_input``; ``pre = sae_in @ W_enc + b_enc``;
* ``standard``: ``relu(pre)``; ``jumprelu``: ``relu(pre) * (pre > threshold)``;
  ``topk``: with ``rescale_acts_by_decoder_norm`` first ``pre *= ||W_dec row||``,
  then the ``k`` largest entries pass through ``relu``, the rest are 0;
  ``gated``: ``(sae_in @ W_enc + b_gate > 0) * relu(sae_in @ (W_enc * exp(r_mag)) + b_mag)``;
  sparsify's ``groupmax``: the latents split into ``k`` equal groups, the
  ``relu``-ed maximum of each group is kept. SAEs read from sparsify files
  (``fused_bias``) compute ``pre = F.linear(sae_in, W_enc.T, b_enc)`` and take
  the top k of ``relu(pre)``, as ``sparsify.fused_encoder`` does (the same in
  float32; in float16/bfloat16 the rounding and the ties differ from SAELens').

``decode`` undoes the normalisation as SAELens does (``topk`` with
``rescale_acts_by_decoder_norm`` divides the activations by the decoder norms first).
"""

import math

import numpy as np
import torch

from .sae_common import SAEFormatError
from .sae_files import load_sae, save_sae

__all__ = ["SAE", "SAEFormatError", "load_sae", "save_sae", "train_topk_sae", "ARCHITECTURES",
           "NORMALISATIONS"]

#: architectures :class:`SAE` encodes (SAELens names; sparsify's top-k SAEs are ``topk``)
ARCHITECTURES = ("standard", "topk", "jumprelu", "gated", "groupmax")

#: SAELens ``normalize_activations`` values :class:`SAE` applies
NORMALISATIONS = ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm")

_WEIGHTS = {
    "standard": ("W_enc", "b_enc", "W_dec", "b_dec"),
    "topk": ("W_enc", "b_enc", "W_dec", "b_dec"),
    "groupmax": ("W_enc", "b_enc", "W_dec", "b_dec"),
    "jumprelu": ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"),
    "gated": ("W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec"),
}

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "bfloat16": torch.bfloat16}


def _shape_of(name, d_in, d_sae):
    return {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}.get(name, (d_sae,))


class SAE:
    """An SAE's weights and encoding settings; ``encode`` and ``decode`` follow SAELens.

    Parameters
    ----------
    weights : dict of str to array
        The tensors named in the module docstring for ``architecture``.
    architecture : str
        One of :data:`ARCHITECTURES`.
    k : int, optional
        Active latents per token (``topk``), or groups (``groupmax``).
    apply_b_dec_to_input : bool
    normalize_activations : str
        One of :data:`NORMALISATIONS`.
    rescale_acts_by_decoder_norm : bool
        ``topk`` only.
    fused_bias : bool
        Compute the pre-activation as sparsify does, ``F.linear(sae_in, W_enc.T, b_enc)``
        (the bias added before the one rounding), instead of SAELens'
        ``sae_in @ W_enc + b_enc``; the two differ in float16/bfloat16 only.
        ``topk`` and ``groupmax`` only.
    dtype : str
        Weights are held and inputs computed in this dtype (SAELens' ``dtype``).
    metadata : dict, optional
        Provenance (SAELens' ``metadata``: ``hook_name``, ``model_name``, ...).
    log_sparsity : array, optional
        ``log10`` firing frequency per latent (SAELens' ``sparsity.safetensors``).
    source : str
        What the SAE was read from (for messages and provenance).
    """

    def __init__(self, weights, architecture, *, k=None, apply_b_dec_to_input=True,
                 normalize_activations="none", rescale_acts_by_decoder_norm=False, dtype="float32",
                 metadata=None, log_sparsity=None, source="memory", fused_bias=False):
        if architecture not in ARCHITECTURES:
            raise SAEFormatError(f"{source}: architecture {architecture!r} not supported; "
                                 f"expected one of {', '.join(ARCHITECTURES)}")
        if normalize_activations not in NORMALISATIONS:
            raise SAEFormatError(f"{source}: normalize_activations {normalize_activations!r} not supported; "
                                 f"expected one of {', '.join(NORMALISATIONS)}")
        if dtype not in _DTYPES:
            raise SAEFormatError(f"{source}: dtype {dtype!r} not supported; expected one of {', '.join(_DTYPES)}")
        if rescale_acts_by_decoder_norm and architecture != "topk":
            raise SAEFormatError(f"{source}: rescale_acts_by_decoder_norm = true is defined for topk SAEs only, "
                                 f"this one is {architecture}")
        self.architecture = architecture
        self.apply_b_dec_to_input = bool(apply_b_dec_to_input)
        self.normalize_activations = normalize_activations
        self.rescale_acts_by_decoder_norm = bool(rescale_acts_by_decoder_norm)
        self.dtype = dtype
        self.metadata = dict(metadata or {})
        self.source = source
        tdtype = _DTYPES[dtype]
        names = _WEIGHTS[architecture]
        missing = [n for n in names if n not in weights]
        if missing:
            raise SAEFormatError(f"{source}: {architecture} SAE lacks the tensor {missing[0]} "
                                 f"(expected {', '.join(names)})")
        extra = sorted(set(weights) - set(names))
        if extra:
            raise SAEFormatError(f"{source}: tensor {extra[0]!r} has no meaning for a {architecture} SAE "
                                 f"(expected {', '.join(names)})")
        w = {n: torch.as_tensor(np.asarray(weights[n]) if not torch.is_tensor(weights[n]) else weights[n])
             .to(tdtype).contiguous() for n in names}
        if w["W_enc"].dim() != 2:
            raise SAEFormatError(f"{source}: W_enc must be 2-D (d_in, d_sae), got shape {tuple(w['W_enc'].shape)}")
        self.d_in, self.d_sae = (int(s) for s in w["W_enc"].shape)
        for n, t in w.items():
            want = _shape_of(n, self.d_in, self.d_sae)
            if tuple(t.shape) != want:
                raise SAEFormatError(f"{source}: tensor {n} has shape {tuple(t.shape)}, expected {want} "
                                     f"(d_in = {self.d_in}, d_sae = {self.d_sae} from W_enc)")
        self.weights = w
        if fused_bias and architecture not in ("topk", "groupmax"):
            raise SAEFormatError(f"{source}: fused_bias (sparsify's encoder) is defined for topk and groupmax "
                                 f"SAEs only, this one is {architecture}")
        self.fused_bias = bool(fused_bias)
        # sparsify's encoder.weight (d_sae, d_in), contiguous as F.linear reads it (bit-identical codes)
        self._encoder_weight = w["W_enc"].T.contiguous() if self.fused_bias else None
        if architecture in ("topk", "groupmax"):
            if k is None or int(k) != k or not 0 < int(k) <= self.d_sae:
                raise SAEFormatError(f"{source}: {architecture} SAE needs k in 1..{self.d_sae}, got {k!r}")
            if architecture == "groupmax" and self.d_sae % int(k):
                raise SAEFormatError(f"{source}: groupmax needs d_sae ({self.d_sae}) divisible by k ({k})")
            self.k = int(k)
        else:
            self.k = None
        self.log_sparsity = None if log_sparsity is None else np.asarray(log_sparsity, dtype=np.float64)
        if self.log_sparsity is not None and self.log_sparsity.shape != (self.d_sae,):
            raise SAEFormatError(f"{source}: sparsity has shape {self.log_sparsity.shape}, expected ({self.d_sae},)")

    def __getattr__(self, name):  # W_enc, b_enc, ... as attributes
        weights = self.__dict__.get("weights", {})
        if name in weights:
            return weights[name]
        raise AttributeError(name)

    @property
    def threshold(self):
        return self.weights.get("threshold")

    def settings(self):
        """The encoding settings as SAELens' config keys (for provenance attributes)."""
        out = {"architecture": self.architecture, "d_in": self.d_in, "d_sae": self.d_sae,
               "apply_b_dec_to_input": self.apply_b_dec_to_input,
               "normalize_activations": self.normalize_activations, "dtype": self.dtype}
        if self.k is not None:
            out["k"] = self.k
        if self.architecture == "topk":
            out["rescale_acts_by_decoder_norm"] = self.rescale_acts_by_decoder_norm
        return out

    # ------------------------------------------------------------------ SAELens' computation
    def _normalise(self, x):
        if self.normalize_activations == "constant_norm_rescale":
            coeff = (self.d_in ** 0.5) / x.norm(dim=-1, keepdim=True)
            return x * coeff, ("scale", coeff)
        if self.normalize_activations == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            x = x - mu
            std = x.std(dim=-1, keepdim=True)
            return x / (std + 1e-5), ("ln", mu, std)
        return x, None

    def _encode(self, x):
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(_DTYPES[self.dtype])
        x, undo = self._normalise(x)
        w = self.weights
        sae_in = x - w["b_dec"] * self.apply_b_dec_to_input
        if self.architecture == "gated":
            gate = (sae_in @ w["W_enc"] + w["b_gate"] > 0).to(sae_in.dtype)
            return gate * torch.relu(sae_in @ (w["W_enc"] * w["r_mag"].exp()) + w["b_mag"]), undo
        if self.fused_bias:
            pre = torch.nn.functional.linear(sae_in, self._encoder_weight, w["b_enc"])
        else:
            pre = sae_in @ w["W_enc"] + w["b_enc"]
        if self.architecture == "standard":
            return torch.relu(pre), undo
        if self.architecture == "jumprelu":
            return torch.relu(pre) * (pre > w["threshold"]).to(pre.dtype), undo
        if self.architecture == "groupmax":
            acts = torch.relu(pre)
            vals, idx = acts.unflatten(-1, (self.k, -1)).max(dim=-1)
            idx = idx + torch.arange(0, self.d_sae, self.d_sae // self.k)
            return torch.zeros_like(acts).scatter(-1, idx, vals), undo
        if self.rescale_acts_by_decoder_norm:
            pre = pre * w["W_dec"].norm(dim=-1)
        if self.fused_bias:  # sparsify: relu, then the top k (ties among equal half-precision values alike)
            top = torch.topk(torch.relu(pre), self.k, dim=-1, sorted=False)
            return torch.zeros_like(pre).scatter(-1, top.indices, top.values), undo
        top = torch.topk(pre, self.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values)), undo

    def encode(self, x):
        """Feature activations (..., d_sae) of inputs ``x`` (..., d_in), in the SAE's dtype."""
        return self._encode(x)[0]

    def decode(self, acts, x=None):
        """Reconstruction ``acts @ W_dec + b_dec``; the input normalisation is undone when
        ``x`` (the encoded input) is given (SAELens' ``forward``)."""
        acts = torch.as_tensor(acts).to(_DTYPES[self.dtype])
        w = self.weights
        if self.rescale_acts_by_decoder_norm:
            acts = acts * (1 / w["W_dec"].norm(dim=-1))  # SAELens' act_times_W_dec, same rounding
        out = acts @ w["W_dec"] + w["b_dec"]
        if x is not None:
            _, undo = self._normalise(torch.as_tensor(x).to(_DTYPES[self.dtype]))
            if undo and undo[0] == "scale":
                out = out / undo[1]
            elif undo:
                out = out * undo[2] + undo[1]
        return out

    def top_codes(self, x, k, batch=4096):
        """The ``k`` largest feature activations per row: (index int32, value float32), -1/0 = empty.

        Also sets ``self.truncated``: the number of rows with more than ``k``
        active features (only possible for non-top-k architectures).
        """
        x = torch.as_tensor(np.asarray(x))
        k = min(int(k), self.d_sae)
        idx = np.full((x.shape[0], k), -1, dtype=np.int32)
        val = np.zeros((x.shape[0], k), dtype=np.float32)
        truncated = 0
        for s in range(0, x.shape[0], batch):
            acts = self.encode(x[s:s + batch])
            truncated += int(((acts > 0).sum(-1) > k).sum())
            top = torch.topk(acts, k, dim=-1)
            active = top.values > 0
            idx[s:s + batch] = torch.where(active, top.indices, -1).numpy()
            val[s:s + batch] = torch.where(active, top.values, 0.0).float().numpy()
        self.truncated = truncated
        return idx, val


def train_topk_sae(acts, d_sae, k, *, steps, batch_size=256, lr=4e-4, seed=0, progress=None,
                   meta=None):
    """Train a TopK SAE on activations ``acts`` (n, d_in) with Adam on the MSE.

    Inputs are scaled by ``c = sqrt(d_in) / mean ||x||`` during training
    (SAELens' ``expected_average_only_in``) and ``c`` is folded into the
    weights afterwards (``W_enc * c``, ``W_dec / c``, ``b_dec / c``, as
    SAELens' ``fold_activation_norm_scaling_factor``), so the saved SAE takes
    raw activations with ``normalize_activations = "none"``. Decoder rows are
    kept at unit norm (in the scaled space); ``W_enc`` starts as ``W_dec.T``,
    ``b_dec`` as the data mean. Minibatches are drawn with ``seed``.

    Returns
    -------
    (SAE, dict)
        The SAE (its ``log_sparsity`` is the log10 firing frequency over the
        batches of the last 1000 steps, SAELens' ``sparsity.safetensors``) and
        training statistics (final fraction of variance unexplained, number of
        dead features in the last 1000 steps' batches, scale factor).
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
    fires = torch.zeros(d_sae, dtype=torch.float64)
    seen = 0
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
                fires += (acts_ > 0).sum(0).double()
                seen += batch_size
        fvu = float(loss.detach()) / var
        if progress and (step + 1) % 250 == 0:
            progress(f"SAE step {step + 1}/{steps}: fraction of variance unexplained {fvu:.3f}")
    freq = (fires / max(seen, 1)).numpy()
    with torch.no_grad():
        weights = {"W_enc": W_enc.detach() * scale, "b_enc": b_enc.detach(),
                   "W_dec": W_dec.detach() / scale, "b_dec": b_dec.detach() / scale}
    sae = SAE(weights, "topk", k=int(k), apply_b_dec_to_input=True, normalize_activations="none",
              metadata=dict(meta or {}), log_sparsity=np.log10(freq + 1e-10), source="trained")
    stats = {"fvu": fvu, "dead": int((freq == 0).sum()), "scale": scale}
    return sae, stats
