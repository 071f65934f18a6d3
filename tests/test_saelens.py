"""SAE files against the real libraries: SAELens (sae_lens) and EleutherAI sparsify.

Both directions: files the libraries write are read by ``extract.sae.load_sae``
and encode identically; files ``extract.sae.save_sae`` writes are read by
SAELens with their metadata intact. Skipped only where a library cannot be
imported (CI installs both: see .ci/run).
"""

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (the extract extra installs it)")
pytest.importorskip("safetensors", reason="safetensors is not installed (the extract extra installs it)")

from extract.sae import SAE, SAEFormatError, load_sae, save_sae, train_topk_sae  # noqa: E402
from extract.sae_common import hook_block  # noqa: E402
from extract.sae_saelens import ENCODING_KEYS, NO_EFFECT_KEYS  # noqa: E402

D_IN, D_SAE = 12, 40


def _saelens():
    return pytest.importorskip("sae_lens", reason="sae-lens is not installed (pip install sae-lens)")


def _randomise(module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if name.startswith("b_") else 1.0))
            if name == "threshold":
                p.abs_()
            if name == "W_dec":  # decoder norms that differ a lot: rescaling changes the top k
                p.mul_(torch.rand(p.shape[0], 1, generator=gen) * 3 + 0.1)


def _inputs(seed=0, n=64):
    gen = torch.Generator().manual_seed(seed + 100)
    return torch.randn(n, D_IN, generator=gen) * 3 + 1


def _lens_sae(arch, apply_b_dec, norm, rescale=False, seed=0, dtype="float32"):
    sl = _saelens()
    classes = {"standard": (sl.StandardSAE, sl.StandardSAEConfig), "topk": (sl.TopKSAE, sl.TopKSAEConfig),
               "jumprelu": (sl.JumpReLUSAE, sl.JumpReLUSAEConfig), "gated": (sl.GatedSAE, sl.GatedSAEConfig)}
    cls, cfg_cls = classes[arch]
    kw = {"k": 5, "rescale_acts_by_decoder_norm": rescale} if arch == "topk" else {}
    sae = cls(cfg_cls(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=apply_b_dec, normalize_activations=norm,
                      dtype=dtype, **kw))
    _randomise(sae, seed)
    sae.cfg.metadata.hook_name = "blocks.7.hook_resid_post"
    sae.cfg.metadata.model_name = "SmolLM2-135M-Instruct"
    return sae


#: every SAELens 6 inference architecture emostats reads x every option that changes encoding:
#: 16 standard + 32 topk + 16 jumprelu + 16 gated = 80 configurations, each checked both ways
CONFIGS = [(a, b, n, r, d) for a in ("standard", "topk", "jumprelu", "gated") for b in (True, False)
           for n in ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm")
           for r in ((False, True) if a == "topk" else (False,)) for d in ("float32", "bfloat16")]
assert len(CONFIGS) == 80


def _dense_top(ref, k):
    """The k largest positive activations per row of a dense (n, d_sae) array, descending."""
    return [np.sort(row[row > 0])[::-1][:k] for row in ref]


@pytest.mark.parametrize("arch,apply_b_dec,norm,rescale,dtype", CONFIGS)
def test_saelens_files_encode_identically(tmp_path, arch, apply_b_dec, norm, rescale, dtype):
    """SAE.save_model of every architecture and option, read by load_sae: codes and reconstruction bit for
    bit as SAELens computes them in the SAE's dtype, the same options and metadata."""
    lens = _lens_sae(arch, apply_b_dec, norm, rescale, seed=len(tmp_path.name), dtype=dtype)
    lens.save_model(tmp_path)
    ours = load_sae(tmp_path)
    assert ours.format == "SAELens" and ours.architecture == arch and ours.dtype == dtype
    assert ours.rescale_acts_by_decoder_norm == rescale and ours.normalize_activations == norm
    assert ours.apply_b_dec_to_input == apply_b_dec
    assert ours.metadata == lens.cfg.metadata.to_dict()
    x = _inputs()
    with torch.no_grad():
        ref = lens.encode(x)
        ref_out = lens.decode(ref)
    got = ours.encode(x)
    assert got.dtype == ref.dtype == getattr(torch, dtype)
    assert torch.equal(got, ref), float((got.float() - ref.float()).abs().max())
    out = ours.decode(got, x)
    assert torch.equal(out, ref_out), float((out.float() - ref_out.float()).abs().max())
    idx, val = ours.top_codes(x, 6)
    dense = np.zeros((x.shape[0], D_SAE), dtype=np.float32)
    rows = np.repeat(np.arange(x.shape[0]), 6)
    keep = idx.ravel() >= 0
    dense[rows[keep], idx.ravel()[keep]] = val.ravel()[keep]
    for got_row, top in zip(_dense_top(dense, 6), _dense_top(ref.float().numpy(), 6)):
        np.testing.assert_array_equal(got_row, top)  # top_codes keeps the 6 largest of SAELens' activations


def test_rescale_flag_changes_the_codes(tmp_path):
    """The issue's case: rescale_acts_by_decoder_norm = true must not be read as false."""
    lens = _lens_sae("topk", True, "none", rescale=True, seed=3)
    lens.save_model(tmp_path)
    ours = load_sae(tmp_path)
    x = _inputs(3)
    with torch.no_grad():
        ref = lens.encode(x)
    plain = SAE(ours.weights, "topk", k=5)
    assert not torch.equal(plain.encode(x) > 0, ref > 0)  # the flag matters for these weights
    assert torch.equal(ours.encode(x) > 0, ref > 0)


@pytest.mark.parametrize("arch,apply_b_dec,norm,rescale,dtype", CONFIGS)
def test_saelens_reads_what_extract_writes(tmp_path, arch, apply_b_dec, norm, rescale, dtype):
    """save_sae -> SAE.load_from_disk, every architecture and option: the SAELens class, its options,
    its dtype and the metadata survive, and SAELens encodes our file bit for bit as it encoded its own."""
    sl = _saelens()
    lens = _lens_sae(arch, apply_b_dec, norm, rescale=rescale, seed=5, dtype=dtype)
    lens.save_model(tmp_path / "a")
    ours = load_sae(tmp_path / "a")
    meta = {"hook_name": "blocks.20.hook_resid_post", "hf_hook_name": "model.layers.20", "model_name": "m.gguf"}
    save_sae(ours, tmp_path / "b", metadata=meta)
    back = sl.SAE.load_from_disk(tmp_path / "b")
    assert type(back) is type(lens)
    assert back.cfg.metadata.hook_name == "blocks.20.hook_resid_post"
    assert back.cfg.metadata.hf_hook_name == "model.layers.20"
    assert back.cfg.metadata.model_name == "m.gguf"
    assert back.cfg.metadata.sae_lens_version == lens.cfg.metadata.sae_lens_version  # kept from the source
    assert back.cfg.normalize_activations == lens.cfg.normalize_activations
    assert back.cfg.apply_b_dec_to_input == lens.cfg.apply_b_dec_to_input
    assert back.cfg.dtype == dtype and back.W_enc.dtype == getattr(torch, dtype)
    if arch == "topk":
        assert back.cfg.k == 5 and back.cfg.rescale_acts_by_decoder_norm is rescale
    for name, tensor in lens.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name
    x = _inputs(5)
    with torch.no_grad():
        assert torch.equal(back.encode(x), lens.encode(x))
    # and our own reader reads our file the same way
    assert torch.equal(load_sae(tmp_path / "b").encode(x), ours.encode(x))


@pytest.mark.parametrize("dtype", ["float16", "float64"])
@pytest.mark.parametrize("arch", ["standard", "topk"])
def test_saelens_other_dtypes(tmp_path, arch, dtype):
    """The SAE computes in its config dtype, as SAELens does (inputs cast to it), both ways."""
    sl = _saelens()
    lens = _lens_sae(arch, True, "layer_norm", rescale=arch == "topk", seed=7, dtype=dtype)
    lens.save_model(tmp_path / "a")
    ours = load_sae(tmp_path / "a")
    assert ours.dtype == dtype
    x = _inputs(7)
    with torch.no_grad():
        ref = lens.encode(x)
    got = ours.encode(x)
    assert got.dtype == ref.dtype and torch.equal(got, ref)
    save_sae(ours, tmp_path / "b")
    back = sl.SAE.load_from_disk(tmp_path / "b")
    assert back.cfg.dtype == dtype
    with torch.no_grad():
        assert torch.equal(back.encode(x), ref)


def test_trained_sae_and_sparsity_roundtrip(tmp_path):
    """The extractor's trained SAE: SAELens loads it as a TopKSAE; sparsity.safetensors is SAELens' log10 density."""
    sl = _saelens()
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(600, D_IN)) + 20).astype(np.float32)
    sae, stats = train_topk_sae(x, D_SAE, 4, steps=40, batch_size=64, lr=3e-3, seed=0,
                                meta={"hook_name": "blocks.3.hook_resid_post"})
    save_sae(sae, tmp_path)
    back = sl.SAE.load_from_disk(tmp_path)
    assert isinstance(back, sl.TopKSAE) and back.cfg.k == 4
    assert back.cfg.metadata.hook_name == "blocks.3.hook_resid_post"
    assert back.cfg.metadata.sae_lens_version == "6.0.0"  # SAELens reads it as a 6.x config
    with torch.no_grad():
        torch.testing.assert_close(back.encode(torch.as_tensor(x)), sae.encode(x), rtol=0, atol=0)
    from safetensors.torch import load_file
    sparsity = load_file(str(tmp_path / "sparsity.safetensors"))["sparsity"].numpy()
    assert sparsity.shape == (D_SAE,) and np.all(sparsity <= 0) and np.all(sparsity >= -10)
    np.testing.assert_allclose(load_sae(tmp_path).log_sparsity, sparsity)
    assert int((sparsity <= -10 + 1e-6).sum()) == stats["dead"]


def _write(folder, cfg, weights):
    from safetensors.numpy import save_file
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()},
              str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(cfg))


def _np_weights(arch, seed=0):
    rng = np.random.default_rng(seed)
    w = {"W_enc": rng.normal(size=(D_IN, D_SAE)), "b_enc": rng.normal(size=D_SAE) * 0.3,
         "W_dec": rng.normal(size=(D_SAE, D_IN)), "b_dec": rng.normal(size=D_IN)}
    if arch == "jumprelu":
        w["threshold"] = np.abs(rng.normal(size=D_SAE))
    if arch == "gated":
        b_enc = w.pop("b_enc")
        w.update(b_gate=b_enc, r_mag=rng.normal(size=D_SAE) * 0.3, b_mag=rng.normal(size=D_SAE) * 0.3)
    return w


PRE_6 = [
    {"architecture": "standard", "normalize_activations": True},  # old boolean: expected_average_only_in
    {"architecture": "standard", "normalize_activations": False},
    {"architecture": "standard", "normalize_activations": None, "apply_b_dec_to_input": False},
    {"activation_fn_str": "topk", "activation_fn_kwargs": {"k": 5}, "normalize_activations": "none"},
    {"activation_fn_str": "topk", "activation_fn_kwargs": {"k": 3}, "normalize_activations": "layer_norm",
     "hook_point": "blocks.2.hook_resid_post", "sae_lens_version": "5.4.0", "dtype": "bfloat16"},
    {"activation_fn_str": "relu", "hook_point": "blocks.4.hook_resid_pre", "hook_point_layer": 4,
     "l1_coefficient": 5.0, "lr": 4e-4, "use_ghost_grads": False, "expansion_factor": 4,
     "model_name": "gpt2-small", "sae_lens_version": "3.2.0", "context_size": 128, "hook_point_head_index": None},
    {"architecture": "jumprelu", "apply_b_dec_to_input": False, "sae_lens_training_version": "3.1.0"},
    {"architecture": "gated", "normalize_activations": "constant_norm_rescale", "prepend_bos": False},
]


@pytest.mark.parametrize("old", PRE_6)
def test_pre_6_configs_as_saelens_reads_them(tmp_path, old):
    """Pre-6.0 configs, both ways: load_sae reads them as SAELens converts them (architecture, options,
    metadata, codes bit for bit); save_sae writes a 6.x config SAELens reads with the metadata intact."""
    sl = _saelens()
    arch = old.get("architecture", "topk" if old.get("activation_fn_str") == "topk" else "standard")
    w = _np_weights(arch)
    _write(tmp_path / "old", {"d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", **old}, w)
    lens = sl.SAE.load_from_disk(tmp_path / "old")
    ours = load_sae(tmp_path / "old")
    assert ours.architecture == lens.cfg.architecture() == arch
    assert ours.normalize_activations == lens.cfg.normalize_activations
    assert ours.apply_b_dec_to_input == lens.cfg.apply_b_dec_to_input and ours.dtype == lens.cfg.dtype
    lens_meta = lens.cfg.metadata.to_dict()
    if "sae_lens_version" not in old:  # SAELens fills in its own version; emostats does not invent one
        assert "sae_lens_version" not in ours.metadata
        lens_meta.pop("sae_lens_version")
    assert ours.metadata == lens_meta
    if "hook_point" in old:
        assert ours.metadata["hook_name"] == lens.cfg.metadata.hook_name == old["hook_point"]
    x = _inputs(1)
    with torch.no_grad():
        ref = lens.encode(x)
    assert torch.equal(ours.encode(x), ref)
    save_sae(ours, tmp_path / "new")
    back = sl.SAE.load_from_disk(tmp_path / "new")
    assert type(back) is type(lens)
    assert back.cfg.metadata.sae_lens_version == "6.0.0"  # read as a 6.x config: the metadata is kept
    expect = {k: v for k, v in lens.cfg.metadata.to_dict().items() if k != "sae_lens_version"}
    assert {k: back.cfg.metadata[k] for k in expect} == expect
    if old.get("sae_lens_version"):
        assert back.cfg.metadata.source_sae_lens_version == old["sae_lens_version"]
    with torch.no_grad():
        assert torch.equal(back.encode(x), ref)


def test_hook_block_of_pre_6_resid_pre():
    assert hook_block("blocks.4.hook_resid_pre") == 3  # resid_pre of block 4 = output of block 3


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_log_threshold_as_saelens_converts_it(tmp_path, dtype):
    """Older JumpReLU files store log_threshold; the threshold is exp of it in the SAE's dtype, as SAELens'
    JumpReLUTrainingSAE.process_state_dict_for_loading computes it."""
    sl = _saelens()
    w = _np_weights("jumprelu")
    w["log_threshold"] = np.log(w.pop("threshold"))
    _write(tmp_path, {"d_in": D_IN, "d_sae": D_SAE, "dtype": dtype, "architecture": "jumprelu",
                      "sae_lens_version": "6.1.0"}, w)
    ours = load_sae(tmp_path)
    trainer = sl.JumpReLUTrainingSAE(sl.JumpReLUTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, dtype=dtype))
    state = {"log_threshold": torch.as_tensor(w["log_threshold"], dtype=torch.float32).to(getattr(torch, dtype))}
    trainer.process_state_dict_for_loading(state)
    assert ours.threshold.dtype == state["threshold"].dtype and torch.equal(ours.threshold, state["threshold"])


_V6 = {"architecture": "standard", "sae_lens_version": "6.1.0"}


@pytest.mark.parametrize("cfg,key", [
    ({**_V6, "frobnicate": 1}, "frobnicate"),
    ({**_V6, "use_error_term": True}, "use_error_term"),
    ({**_V6, "activation_fn_str_v2": "relu"}, "activation_fn_str_v2"),
    ({**_V6, "whitening_matrix": [1.0]}, "whitening_matrix"),
    ({**_V6, "zz_unknown": 1, "aa_unknown": 2}, "aa_unknown"),  # several: the first in name order
    ({"architecture": "standard", "frobnicate": 1}, "frobnicate"),  # pre-6.0 config
    ({"activation_fn_str": "relu", "hook_point": "blocks.1.hook_resid_post", "sae_type": "x"}, "sae_type"),
    ({**_V6, "normalize_activations": True}, "normalize_activations"),
    ({**_V6, "normalize_activations": "covariance_whitening"}, "covariance_whitening"),
    ({"architecture": "standard", "normalize_activations": "sphere"}, "normalize_activations"),
    ({"architecture": "standard", "rescale_acts_by_decoder_norm": True}, "rescale_acts_by_decoder_norm"),
    ({**_V6, "architecture": "topk", "k": 3, "rescale_acts_by_decoder_norm": "yes"}, "rescale_acts_by_decoder_norm"),
    ({"architecture": "standard", "reshape_activations": "hook_z"}, "reshape_activations"),
    ({"architecture": "standard", "hook_point": "blocks.0.attn.hook_z"}, "hook_z"),
    ({"architecture": "standard", "hook_head_index": 3}, "hook_head_index"),
    ({"architecture": "standard", "hook_point_head_index": 3}, "hook_point_head_index"),
    ({"architecture": "standard", "d_out": D_IN + 1}, "d_out"),
    ({"architecture": "standard", "finetuning_scaling_factor": True}, "finetuning_scaling_factor"),
    ({"architecture": "matching_pursuit"}, "architecture"),
    ({**_V6, "architecture": "abstopk", "k": 3}, "abstopk"),
    ({**_V6, "architecture": "transcoder"}, "transcoder"),
    ({"architecture": "topk", "sae_lens_version": "6.0.0"}, "k"),
    ({"sae_lens_version": "6.0.0"}, "architecture"),
    ({"activation_fn_str": "tanh-relu"}, "activation_fn"),
    ({"architecture": "standard", "d_sae": D_SAE + 1}, "d_sae"),
    ({"architecture": "standard", "dtype": "int8"}, "dtype"),
])
def test_refuses_what_it_cannot_honour(tmp_path, cfg, key):
    """Unknown keys and values that cannot be honoured: one line naming the file and the key."""
    _write(tmp_path, {"d_in": D_IN, "d_sae": D_SAE, **cfg}, _np_weights("standard"))
    with pytest.raises(SAEFormatError) as exc:
        load_sae(tmp_path)
    msg = str(exc.value)
    assert key in msg and "\n" not in msg and "cfg.json" in msg, msg
    if key.endswith("unknown") or key in ("frobnicate", "use_error_term", "sae_type", "whitening_matrix"):
        assert f"config key {key!r}" in msg


def test_unknown_tensor_refused(tmp_path):
    w = _np_weights("standard")
    w["W_skip"] = np.zeros((D_IN, D_IN))
    _write(tmp_path, {"d_in": D_IN, "d_sae": D_SAE, "architecture": "standard"}, w)
    with pytest.raises(SAEFormatError, match="W_skip"):
        load_sae(tmp_path)


def test_every_saelens_option_is_known():
    """Every config field of this SAELens version is honoured or known to have no effect on encoding."""
    _saelens()
    from sae_lens import LanguageModelSAERunnerConfig
    from sae_lens.registry import SAE_CLASS_REGISTRY, SAE_TRAINING_CLASS_REGISTRY
    for arch in ("standard", "topk", "jumprelu", "gated"):
        fields = {f.name for f in dataclasses.fields(SAE_CLASS_REGISTRY[arch][1])}
        assert fields - {"metadata", "device"} <= ENCODING_KEYS, arch
    known = ENCODING_KEYS | NO_EFFECT_KEYS
    for _, cfg in SAE_TRAINING_CLASS_REGISTRY.values():
        assert {f.name for f in dataclasses.fields(cfg)} <= known, cfg.__name__
    assert {f.name for f in dataclasses.fields(LanguageModelSAERunnerConfig)} <= known
    from sae_lens.loading.pretrained_sae_loaders import LLM_METADATA_KEYS
    assert set(LLM_METADATA_KEYS) <= known


# ----------------------------------------------------------------------------- sparsify

def _sparsify():
    return pytest.importorskip("sparsify", reason="eai-sparsify is not installed (pip install eai-sparsify)")


def _coder(activation="topk", k=4, seed=0, dtype=torch.float32, **cfg):
    sp = _sparsify()
    torch.manual_seed(seed)
    coder = sp.SparseCoder(D_IN, sp.SparseCoderConfig(activation=activation, k=k, num_latents=D_SAE, **cfg))
    with torch.no_grad():
        coder.encoder.bias.normal_(0, 0.3)
        coder.b_dec.normal_()
        coder.W_dec.mul_(torch.rand(D_SAE, 1) * 3 + 0.1)
    return coder.to(dtype)


def _sparsify_codes(coder, x):
    """sparsify's own codes as a dense (n, d_sae) tensor in the coder's dtype."""
    with torch.no_grad():
        out = coder.encode(x.to(coder.dtype))
    return torch.zeros(x.shape[0], D_SAE, dtype=coder.dtype).scatter(-1, out.top_indices, out.top_acts), out


SPARSIFY_DTYPES = [torch.float32, torch.bfloat16, torch.float16]


@pytest.mark.parametrize("dtype", SPARSIFY_DTYPES, ids=str)
@pytest.mark.parametrize("activation", ["topk", "groupmax"])
def test_sparsify_layout(tmp_path, activation, dtype):
    """A sparsify run folder (layers.N/cfg.json + sae.safetensors, beside the trainer's config.json and
    state files) reads as SparseCoder.load_from_disk encodes, bit for bit, in the file's dtype;
    layer= picks the hookpoint; the hookpoint folder itself reads the same."""
    sp = _sparsify()
    coders = {3: _coder(activation, seed=1, dtype=dtype), 5: _coder(activation, seed=2, dtype=dtype)}
    for layer, c in coders.items():
        c.save_to_disk(tmp_path / f"layers.{layer}")
    (tmp_path / "config.json").write_text(json.dumps({"sae": {"k": 4}, "batch_size": 8}))
    torch.save({"global_step": 10}, tmp_path / "state.pt")
    x = _inputs(2)
    for layer in coders:
        lib = sp.SparseCoder.load_from_disk(tmp_path / f"layers.{layer}")  # as the library reads its file
        ours = load_sae(tmp_path, layer=layer)
        assert ours.format == "sparsify" and ours.metadata["hf_hook_name"] == f"layers.{layer}"
        assert ours.architecture == activation and ours.dtype == str(dtype).removeprefix("torch.")
        ref, out = _sparsify_codes(lib, x)
        got = ours.encode(x)
        assert got.dtype == dtype and torch.equal(got, ref), float((got.float() - ref.float()).abs().max())
        tol = 1e-4 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(ours.decode(got).float(), lib.decode(out.top_acts, out.top_indices).float(),
                                   rtol=tol, atol=tol)
        same = load_sae(tmp_path / f"layers.{layer}")  # the hookpoint folder itself
        assert torch.equal(same.encode(x), got)
    with pytest.raises(SAEFormatError, match="layers.3, layers.5; choose one"):
        load_sae(tmp_path)
    with pytest.raises(SAEFormatError, match="no SAE for block 4"):
        load_sae(tmp_path, layer=4)
    single = tmp_path / "single"
    coders[5].save_to_disk(single / "layers.5")
    assert torch.equal(load_sae(single).encode(x), load_sae(tmp_path, layer=5).encode(x))  # one layer: no layer=


@pytest.mark.parametrize("dtype", SPARSIFY_DTYPES, ids=str)
def test_sparsify_topk_to_saelens(tmp_path, dtype):
    """A sparsify TopK SAE saved by save_sae is a SAELens TopKSAE with the hook named in TransformerLens
    form. Codes: bit for bit in float32; in float16/bfloat16 SAELens rounds ``x @ W_enc`` before adding
    b_enc where sparsify's F.linear rounds once, so they agree to that rounding."""
    sl = _saelens()
    coder = _coder(seed=4, dtype=dtype)
    coder.save_to_disk(tmp_path / "run" / "layers.6")
    ours = load_sae(tmp_path / "run")
    save_sae(ours, tmp_path / "lens")
    back = sl.SAE.load_from_disk(tmp_path / "lens")
    assert isinstance(back, sl.TopKSAE) and back.cfg.k == 4 and back.cfg.dtype == ours.dtype
    assert back.cfg.metadata.hook_name == "blocks.6.hook_resid_post"  # layers.6 = the output of block 6
    assert back.cfg.metadata.hf_hook_name == "layers.6" and back.cfg.metadata.source_format == "sparsify"
    x = _inputs(4)
    ref, _ = _sparsify_codes(coder, x)
    with torch.no_grad():
        got = back.encode(x)
    if dtype == torch.float32:
        assert torch.equal(got, ref)
    else:
        agree = (got > 0) == (ref > 0)
        assert agree.all(dim=1).float().mean() > 0.9  # the same latents for nearly every row
        both = (got > 0) & (ref > 0)
        torch.testing.assert_close(got[both].float(), ref[both].float(), rtol=2e-2, atol=2e-2)
    assert torch.equal(load_sae(tmp_path / "lens").encode(x), got)  # our reader reads it as SAELens does


@pytest.mark.parametrize("dtype", SPARSIFY_DTYPES, ids=str)
def test_sparsify_groupmax_written_for_sparsify(tmp_path, dtype):
    """SAELens has no groupmax architecture: save_sae writes sparsify's layout, which sparsify and load_sae
    read back with the same codes (bit for bit) and the provenance in cfg.json's metadata."""
    sp = _sparsify()
    coder = _coder("groupmax", seed=6, dtype=dtype)
    coder.save_to_disk(tmp_path / "run" / "layers.2")
    ours = load_sae(tmp_path / "run")
    (tmp_path / "sae").mkdir()
    (tmp_path / "sae" / "sae_weights.safetensors").write_bytes(b"stale")  # an earlier SAELens save here
    save_sae(ours, tmp_path / "sae", metadata={"model_name": "m.gguf"})
    assert not (tmp_path / "sae" / "sae_weights.safetensors").exists()
    lib = sp.SparseCoder.load_from_disk(tmp_path / "sae")
    x = _inputs(6)
    ref, _ = _sparsify_codes(coder, x)
    assert torch.equal(_sparsify_codes(lib, x)[0], ref)
    back = load_sae(tmp_path / "sae")
    assert back.architecture == "groupmax" and torch.equal(back.encode(x), ref)
    assert back.metadata["hf_hook_name"] == "layers.2" and back.metadata["hook_name"] == "blocks.2.hook_resid_post"
    assert back.metadata["model_name"] == "m.gguf"
    from extract.sae_files import sae_layers
    assert sae_layers(tmp_path / "sae") == [2]


def test_sparsify_refusals(tmp_path):
    coder = _coder()
    coder.save_to_disk(tmp_path / "layers.2.mlp")
    with pytest.raises(SAEFormatError, match="not a decoder block output"):
        load_sae(tmp_path / "layers.2.mlp")
    _coder(skip_connection=True).save_to_disk(tmp_path / "skip" / "layers.1")
    with pytest.raises(SAEFormatError, match="skip_connection") as exc:
        load_sae(tmp_path / "skip" / "layers.1")
    assert "\n" not in str(exc.value)
    with pytest.raises(SAEFormatError, match="skip_connection"):
        load_sae(tmp_path / "skip", layer=1)
    _coder(transcode=True).save_to_disk(tmp_path / "tc" / "layers.1")
    with pytest.raises(SAEFormatError, match="transcode"):
        load_sae(tmp_path / "tc")
    cfg = json.loads((tmp_path / "layers.2.mlp" / "cfg.json").read_text())
    weights = (tmp_path / "layers.2.mlp" / "sae.safetensors").read_bytes()
    for i, (extra, key) in enumerate([({"new_option": 1}, "new_option"), ({"signed": True}, "signed"),
                                      ({"jumprelu": True, "b_option": 0}, "b_option"),
                                      ({"activation": "relu"}, "activation")]):
        folder = tmp_path / f"odd{i}" / "layers.0"
        folder.mkdir(parents=True)
        (folder / "cfg.json").write_text(json.dumps({**cfg, **extra}))
        (folder / "sae.safetensors").write_bytes(weights)
        with pytest.raises(SAEFormatError) as exc:
            load_sae(folder.parent)
        assert key in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def test_not_an_sae_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for path in (tmp_path, tmp_path / "missing"):
        with pytest.raises(SAEFormatError) as exc:
            load_sae(path)
        assert not isinstance(exc.value, FileNotFoundError) and "\n" not in str(exc.value)
    assert "notes.txt" in str(pytest.raises(SAEFormatError, load_sae, tmp_path).value)


def test_hook_block_names():
    assert hook_block("blocks.20.hook_resid_post") == 20
    assert hook_block("blocks.20.hook_resid_pre") == 19
    assert hook_block("blocks.0.hook_resid_pre") is None
    assert hook_block("model.layers.29") == 29 and hook_block("layers.3") == 3 and hook_block("h.11") == 11
    for name in ("blocks.3.hook_mlp_out", "layers.3.mlp", "blocks.3.attn.hook_z", "embed_tokens"):
        assert hook_block(name) is None


# ----------------------------------------------------------------------------- names users look for

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_read_sparsity_as_saelens_writes_it(tmp_path, dtype):
    """emostats.read_sparsity (no torch needed) reads the file SAELens' trainer writes
    (save_file({"sparsity": log10 frequency}, .../sparsity.safetensors))."""
    import emostats as es
    from safetensors.torch import save_file
    values = torch.log10(torch.rand(D_SAE, generator=torch.Generator().manual_seed(0)) + 1e-10).to(dtype)
    save_file({"sparsity": values}, str(tmp_path / "sparsity.safetensors"))
    got = es.read_sparsity(tmp_path)
    assert got.dims == ("feature",) and got.name == "log_feature_sparsity"
    np.testing.assert_array_equal(got.values, values.double().numpy())
    with pytest.raises(es.StudyError, match="no such file"):
        es.read_sparsity(tmp_path / "missing")


def test_feature_density_names():
    import xarray as xr

    import emostats as es
    idx = xr.DataArray(np.array([[0, 1], [1, -1], [2, 1], [-1, -1]], dtype=np.int32), dims=("token", "slot"))
    ds = es.feature_density(idx, n_features=4)
    np.testing.assert_array_equal(ds["feature_density"].values, [0.25, 0.75, 0.25, 0.0])
    np.testing.assert_array_equal(ds["feature_density"].values, ds["frac_nonzero"].values)
    np.testing.assert_array_equal(ds["log_feature_sparsity"].values, np.log10(ds["feature_density"].values + 1e-10))
    assert ds["log_feature_sparsity"].values[3] == -10
