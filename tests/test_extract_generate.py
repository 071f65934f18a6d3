"""Batched generation (extract.generate) against one-sequence generation and a plain forward pass."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = pytest.mark.extract

#: float32 batched (left-padded) vs unpadded forward passes: different summation shapes in the matmuls
ATOL_PADDED = 1e-3


@pytest.fixture(scope="module")
def loaded():
    from extract.model import LayerHook, load_model
    torch.set_num_threads(1)
    try:
        model, tok, _ = load_model()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    with LayerHook(model, 20, record=False) as hook:
        yield model, tok, hook


def _prompt(tok, text):
    return list(tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                        tokenize=True, return_dict=False))


def test_batched_greedy_equals_one_sequence_and_plain_forward(loaded):
    from extract.generate import generate
    model, tok, hook = loaded
    prompts = [_prompt(tok, "Hi"), _prompt(tok, "Tell me about the longest river you know of."),
               _prompt(tok, "Why?")]
    assert len({len(p) for p in prompts}) == 3  # left padding is exercised
    batch = generate(model, prompts, 8, seed=0, pad_id=tok.pad_token_id, temperature=0, hook=hook, record=True)
    for i, p in enumerate(prompts):
        one = generate(model, [p], 8, seed=0, pad_id=tok.pad_token_id, temperature=0, hook=hook, record=True)
        assert batch["tokens"][i] == one["tokens"][0]  # token for token
        n = len(one["tokens"][0])
        torch.testing.assert_close(batch["hidden"][i, :n], one["hidden"][0, :n], rtol=0, atol=ATOL_PADDED)
        full = torch.tensor([p + one["tokens"][0]])
        hook.record = True
        with torch.inference_mode():
            model(full)
        plain = hook.pop()[0, len(p):len(p) + n]
        hook.record = False
        torch.testing.assert_close(one["hidden"][0, :n], plain, rtol=0, atol=ATOL_PADDED)


def test_nucleus_from_top_candidates_is_exact():
    from extract.generate import sample_next
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5000, generator=g) * 3
    logits[3] = 0.0  # flat row: the top candidates hold less than top_p, full sort used
    a = sample_next(logits, torch.Generator().manual_seed(1), 0.8, 0.95, candidates=50)
    b = sample_next(logits, torch.Generator().manual_seed(1), 0.8, 0.95, candidates=5000)
    assert a.shape == (4,) and ((a >= 0) & (a < 5000)).all()
    probs = torch.softmax(logits / 0.8, -1)
    sp, si = probs.sort(-1, descending=True)
    for r in range(4):
        nucleus = set(si[r][(sp[r].cumsum(0) - sp[r]) < 0.95].tolist())
        assert int(a[r]) in nucleus and int(b[r]) in nucleus


def test_finished_rows_leave_the_batch(loaded):
    """Rows that stop early are dropped from the batch and the KV cache; the other rows' greedy
    tokens and recorded activations equal the reference: the run without stops, cut at the
    first stop token of each row."""
    from extract.generate import generate
    model, tok, hook = loaded
    prompts = [_prompt(tok, t) for t in ("Hi", "Name three colours.", "What is two plus two?", "Why?",
                                         "Tell me a joke.", "Count to five.", "Say yes.", "A B C")]
    n = 10
    ref = generate(model, prompts, n, seed=0, pad_id=tok.pad_token_id, temperature=0, hook=hook, record=True)
    # stop tokens that end some rows early and at different steps, and leave others running
    stop = {ref["tokens"][0][1], ref["tokens"][2][4], ref["tokens"][5][6]}
    got = generate(model, prompts, n, seed=0, pad_id=tok.pad_token_id, temperature=0, hook=hook, record=True,
                   stop_ids=stop)
    plain = generate(model, prompts, n, seed=0, pad_id=tok.pad_token_id, temperature=0, hook=hook, record=True,
                     stop_ids=stop, compact=False)
    cut = []
    for row in ref["tokens"]:
        j = next((i for i, t in enumerate(row) if t in stop), len(row) - 1)
        cut.append(row[:j + 1])
    assert min(len(r) for r in cut) < n and max(len(r) for r in cut) == n  # some rows stop, some run to n
    assert got["tokens"] == cut and plain["tokens"] == cut
    assert got["cache"] is None and plain["cache"] is not None
    for b, row in enumerate(cut):
        k = len(row)
        torch.testing.assert_close(got["hidden"][b, :k], ref["hidden"][b, :k], rtol=0, atol=ATOL_PADDED)
        torch.testing.assert_close(plain["hidden"][b, :k], ref["hidden"][b, :k], rtol=0, atol=ATOL_PADDED)
        assert (got["hidden"][b, k:] == 0).all()


class _FixedLogits(torch.nn.Module):
    """A stand-in causal LM whose next-token logits are always ``row`` (no cache needed)."""

    def __init__(self, row):
        super().__init__()
        self.row = torch.as_tensor(row, dtype=torch.float32)
        self.config = type("C", (), {"vocab_size": self.row.numel()})()

    def forward(self, input_ids, **kw):
        logits = self.row.expand(input_ids.shape[0], input_ids.shape[1], -1).clone()
        return type("O", (), {"logits": logits})()


def test_repetition_penalty_follows_the_ctrl_rule():
    """Greedy on fixed logits [1.0, 0.8, -0.1, -3]: without a penalty token 0 forever; with 1.5,
    a generated token's positive logit is divided (1 -> 0.67 < 0.8, 0.8 -> 0.53) and a negative
    one multiplied (-0.1 -> -0.15), so the choices follow the reference loop below; the prompt's
    tokens are not penalised."""
    from extract.generate import generate
    row = [1.0, 0.8, -0.1, -3.0]
    model = _FixedLogits(row)
    plain = generate(model, [[1, 2]], 6, seed=0, pad_id=0, temperature=0)
    assert plain["tokens"] == [[0] * 6]
    got = generate(model, [[1, 2]], 6, seed=0, pad_id=0, temperature=0, repetition_penalty=1.5)
    seen, want = set(), []
    for _ in range(6):
        z = [(x / 1.5 if x > 0 else x * 1.5) if i in seen else x for i, x in enumerate(row)]
        t = max(range(4), key=lambda i: z[i])
        want.append(t)
        seen.add(t)
    assert got["tokens"] == [want] and want[:3] == [0, 1, 0]  # 1.0/1.5 = 0.67 > 0.8/1.5 after both are seen
