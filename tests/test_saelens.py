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

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from extract.sae import SAE, SAEFormatError, load_sae, save_sae, train_topk_sae  # noqa: E402
from extract.sae_files import ENCODING_KEYS, NO_EFFECT_KEYS, hook_block  # noqa: E402

D_IN, D_SAE = 12, 40
ATOL = 1e-5  # float32 matmuls of the same operands in a different order


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


def _lens_sae(arch, apply_b_dec, norm, rescale=False, seed=0):
    sl = _saelens()
    classes = {"standard": (sl.StandardSAE, sl.StandardSAEConfig), "topk": (sl.TopKSAE, sl.TopKSAEConfig),
               "jumprelu": (sl.JumpReLUSAE, sl.JumpReLUSAEConfig), "gated": (sl.GatedSAE, sl.GatedSAEConfig)}
    cls, cfg_cls = classes[arch]
    kw = {"k": 5, "rescale_acts_by_decoder_norm": rescale} if arch == "topk" else {}
    sae = cls(cfg_cls(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=apply_b_dec, normalize_activations=norm, **kw))
    _randomise(sae, seed)
    sae.cfg.metadata.hook_name = "blocks.7.hook_resid_post"
    sae.cfg.metadata.model_name = "SmolLM2-135M-Instruct"
    return sae


CONFIGS = [(a, b, n, r) for a in ("standard", "topk", "jumprelu", "gated") for b in (True, False)
           for n in ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm")
           for r in ((False, True) if a == "topk" else (False,))]


@pytest.mark.parametrize("arch,apply_b_dec,norm,rescale", CONFIGS)
def test_saelens_files_encode_identically(tmp_path, arch, apply_b_dec, norm, rescale):
    """SAE.save_model of every architecture and option, read by load_sae: same codes, same reconstruction."""
    lens = _lens_sae(arch, apply_b_dec, norm, rescale, seed=len(tmp_path.name))
    lens.save_model(tmp_path)
    ours = load_sae(tmp_path)
    assert ours.format == "SAELens" and ours.architecture == arch
    assert ours.rescale_acts_by_decoder_norm == rescale
    assert ours.metadata["hook_name"] == "blocks.7.hook_resid_post"
    x = _inputs()
    with torch.no_grad():
        ref = lens.encode(x)
        ref_out = lens.decode(ref)
    got = ours.encode(x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=ATOL)
    assert torch.equal(got > 0, ref > 0) or (got - ref).abs().max() < ATOL
    torch.testing.assert_close(ours.decode(got, x), ref_out, rtol=1e-4, atol=1e-4)
    idx, val = ours.top_codes(x, 6)
    dense = np.zeros((x.shape[0], D_SAE), dtype=np.float32)
    rows = np.repeat(np.arange(x.shape[0]), 6)
    keep = idx.ravel() >= 0
    dense[rows[keep], idx.ravel()[keep]] = val.ravel()[keep]
    ref_np = ref.numpy()
    for i in range(x.shape[0]):  # top_codes keeps the 6 largest of SAELens' activations
        top = np.sort(ref_np[i][ref_np[i] > 0])[::-1][:6]
        np.testing.assert_allclose(np.sort(dense[i][dense[i] > 0])[::-1], top, rtol=1e-5, atol=ATOL)


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


@pytest.mark.parametrize("arch,apply_b_dec,norm,rescale", CONFIGS)
def test_saelens_reads_what_extract_writes(tmp_path, arch, apply_b_dec, norm, rescale):
    """save_sae -> SAE.load_from_disk, every architecture and option: the SAELens class, its options
    and the metadata survive, and SAELens encodes our file as it encoded its own."""
    sl = _saelens()
    lens = _lens_sae(arch, apply_b_dec, norm, rescale=rescale, seed=5)
    lens.save_model(tmp_path / "a")
    ours = load_sae(tmp_path / "a")
    meta = {"hook_name": "blocks.20.hook_resid_post", "hf_hook_name": "model.layers.20", "model_name": "m.gguf"}
    save_sae(ours, tmp_path / "b", metadata=meta)
    back = sl.SAE.load_from_disk(tmp_path / "b")
    assert type(back).__name__ == type(lens).__name__
    assert back.cfg.metadata.hook_name == "blocks.20.hook_resid_post"
    assert back.cfg.metadata.hf_hook_name == "model.layers.20"
    assert back.cfg.metadata.sae_lens_version == lens.cfg.metadata.sae_lens_version  # kept from the source
    assert back.cfg.normalize_activations == lens.cfg.normalize_activations
    assert back.cfg.apply_b_dec_to_input == lens.cfg.apply_b_dec_to_input
    if arch == "topk":
        assert back.cfg.k == 5 and back.cfg.rescale_acts_by_decoder_norm is rescale
    x = _inputs(5)
    with torch.no_grad():
        torch.testing.assert_close(back.encode(x), lens.encode(x), rtol=0, atol=0)
    # and our own reader reads our file the same way
    torch.testing.assert_close(load_sae(tmp_path / "b").encode(x), ours.encode(x), rtol=0, atol=0)


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
    return w


@pytest.mark.parametrize("old", [
    {"architecture": "standard", "normalize_activations": True},  # old boolean: expected_average_only_in
    {"architecture": "standard", "normalize_activations": False},
    {"activation_fn_str": "topk", "activation_fn_kwargs": {"k": 5}, "normalize_activations": "none"},
    {"activation_fn_str": "relu", "hook_point": "blocks.4.hook_resid_pre", "hook_point_layer": 4,
     "l1_coefficient": 5.0, "lr": 4e-4, "use_ghost_grads": False, "expansion_factor": 4},
    {"architecture": "jumprelu", "apply_b_dec_to_input": False, "sae_lens_training_version": "3.1.0"},
])
def test_pre_6_configs_as_saelens_reads_them(tmp_path, old):
    sl = _saelens()
    arch = old.get("architecture", "topk" if old.get("activation_fn_str") == "topk" else "standard")
    w = _np_weights(arch)
    _write(tmp_path, {"d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", **old}, w)
    lens = sl.SAE.load_from_disk(tmp_path)
    ours = load_sae(tmp_path)
    assert ours.architecture == lens.cfg.architecture() == arch
    assert ours.normalize_activations == lens.cfg.normalize_activations
    if "hook_point" in old:
        assert ours.metadata["hook_name"] == lens.cfg.metadata.hook_name == "blocks.4.hook_resid_pre"
        assert hook_block(ours.metadata["hook_name"]) == 3  # resid_pre of block 4 = output of block 3
    x = _inputs(1)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(x), lens.encode(x), rtol=1e-5, atol=ATOL)


@pytest.mark.parametrize("cfg,key", [
    ({"architecture": "standard", "sae_lens_version": "6.1.0", "frobnicate": 1}, "frobnicate"),
    ({"architecture": "standard", "sae_lens_version": "6.1.0", "normalize_activations": True}, "normalize_activations"),
    ({"architecture": "standard", "sae_lens_version": "6.1.0", "normalize_activations": "covariance_whitening"},
     "covariance_whitening"),
    ({"architecture": "standard", "normalize_activations": "sphere"}, "normalize_activations"),
    ({"architecture": "standard", "rescale_acts_by_decoder_norm": True}, "rescale_acts_by_decoder_norm"),
    ({"architecture": "standard", "reshape_activations": "hook_z"}, "reshape_activations"),
    ({"architecture": "standard", "hook_head_index": 3}, "hook_head_index"),
    ({"architecture": "standard", "finetuning_scaling_factor": True}, "finetuning_scaling_factor"),
    ({"architecture": "matching_pursuit"}, "architecture"),
    ({"architecture": "topk", "sae_lens_version": "6.0.0"}, "k"),
    ({"activation_fn_str": "tanh-relu"}, "activation_fn"),
    ({"architecture": "standard", "d_sae": D_SAE + 1}, "d_sae"),
])
def test_refuses_what_it_cannot_honour(tmp_path, cfg, key):
    _write(tmp_path, {"d_in": D_IN, "d_sae": D_SAE, **cfg}, _np_weights("standard"))
    with pytest.raises(SAEFormatError) as exc:
        load_sae(tmp_path)
    msg = str(exc.value)
    assert key in msg and "\n" not in msg and "cfg.json" in msg


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


def _coder(activation="topk", k=4, seed=0):
    sp = _sparsify()
    torch.manual_seed(seed)
    coder = sp.SparseCoder(D_IN, sp.SparseCoderConfig(activation=activation, k=k, num_latents=D_SAE))
    with torch.no_grad():
        coder.encoder.bias.normal_(0, 0.3)
        coder.b_dec.normal_()
        coder.W_dec.mul_(torch.rand(D_SAE, 1) * 3 + 0.1)
    return coder


@pytest.mark.parametrize("activation", ["topk", "groupmax"])
def test_sparsify_layout(tmp_path, activation):
    """A sparsify run folder (layers.N/cfg.json + sae.safetensors) reads as the SparseCoder encodes."""
    coders = {3: _coder(activation, seed=1), 5: _coder(activation, seed=2)}
    for layer, c in coders.items():
        c.save_to_disk(tmp_path / f"layers.{layer}")
    x = _inputs(2)
    for layer, c in coders.items():
        ours = load_sae(tmp_path, layer=layer)
        assert ours.format == "sparsify" and ours.metadata["hf_hook_name"] == f"layers.{layer}"
        with torch.no_grad():
            out = c.encode(x)
        ref = torch.zeros(x.shape[0], D_SAE).scatter(-1, out.top_indices, out.top_acts)
        torch.testing.assert_close(ours.encode(x), ref, rtol=1e-5, atol=ATOL)
        torch.testing.assert_close(ours.decode(ours.encode(x)), c.decode(out.top_acts, out.top_indices),
                                   rtol=1e-4, atol=1e-4)
        same = load_sae(tmp_path / f"layers.{layer}")  # the hookpoint folder itself
        torch.testing.assert_close(same.encode(x), ours.encode(x), rtol=0, atol=0)
    with pytest.raises(SAEFormatError, match="layers.3, layers.5; choose one"):
        load_sae(tmp_path)
    with pytest.raises(SAEFormatError, match="no SAE for block 4"):
        load_sae(tmp_path, layer=4)


def test_sparsify_to_saelens(tmp_path):
    """A sparsify SAE saved by save_sae is a SAELens TopKSAE with the same codes."""
    sl = _saelens()
    coder = _coder(seed=4)
    coder.save_to_disk(tmp_path / "run" / "layers.6")
    ours = load_sae(tmp_path / "run")
    save_sae(ours, tmp_path / "lens", metadata={"hook_name": "blocks.6.hook_resid_post"})
    back = sl.SAE.load_from_disk(tmp_path / "lens")
    x = _inputs(4)
    with torch.no_grad():
        out = coder.encode(x)
        ref = torch.zeros(x.shape[0], D_SAE).scatter(-1, out.top_indices, out.top_acts)
        torch.testing.assert_close(back.encode(x), ref, rtol=1e-5, atol=ATOL)


def test_sparsify_refusals(tmp_path):
    sp = _sparsify()
    coder = _coder()
    coder.save_to_disk(tmp_path / "layers.2.mlp")
    with pytest.raises(SAEFormatError, match="not a decoder block output"):
        load_sae(tmp_path / "layers.2.mlp")
    sk = sp.SparseCoder(D_IN, sp.SparseCoderConfig(k=4, num_latents=D_SAE, skip_connection=True))
    sk.save_to_disk(tmp_path / "skip" / "layers.1")
    with pytest.raises(SAEFormatError, match="skip_connection"):
        load_sae(tmp_path / "skip" / "layers.1")
    cfg = json.loads((tmp_path / "layers.2.mlp" / "cfg.json").read_text())
    (tmp_path / "odd" / "layers.0").mkdir(parents=True)
    (tmp_path / "odd" / "layers.0" / "cfg.json").write_text(json.dumps({**cfg, "new_option": 1}))
    (tmp_path / "odd" / "layers.0" / "sae.safetensors").write_bytes(
        (tmp_path / "layers.2.mlp" / "sae.safetensors").read_bytes())
    with pytest.raises(SAEFormatError, match="new_option"):
        load_sae(tmp_path / "odd")


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


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_saelens_dtypes(tmp_path, dtype):
    """The SAE computes in its config dtype, as SAELens does (inputs cast to it)."""
    lens = _lens_sae("topk", True, "none", rescale=True, seed=7).to(dtype=getattr(torch, dtype))
    lens.save_model(tmp_path)
    ours = load_sae(tmp_path)
    assert ours.dtype == dtype
    x = _inputs(7)
    with torch.no_grad():
        ref = lens.encode(x)
    got = ours.encode(x)
    assert got.dtype == ref.dtype
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
