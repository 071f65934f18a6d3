"""Steering pulses on probe directions, and unsteered baselines (Figure 6 of the study).

Pulse positions (tested in ``tests/test_extract.py``): the prompt ends with the
chat template's header of a new model turn; the model then samples the first
``pulse`` tokens of its turn, and while each of these is fed back (steps
1..pulse of :func:`extract.generate.generate`), ``alpha * v`` is added to the
output of the hooked block at that token's position only (``v`` = the unit
probe direction, ``alpha = strength * median token norm`` of the hooked layer).
The prompt positions are never steered. Then steering is switched off and the
model writes ``n_after`` more tokens, attending to the kept keys and values of
the steered tokens. Offset 0 is the first token after the pulse (the
``pulse + 1``-th token of the turn); its activation is read when it is fed.
Baselines run the same prompts, the same number of tokens and no pulse.
End-of-turn tokens are blocked so every row has ``pulse + n_after`` tokens.
"""

import numpy as np
import torch

from .generate import generate

__all__ = ["STEER_PROMPTS", "run_steering"]

STEER_PROMPTS = (
    "Tell me about your day.",
    "What do you think about the ocean?",
    "Describe the city you would like to live in.",
    "How should I spend a free afternoon?",
    "Write a few sentences about autumn.",
    "What is it like to learn a new language?",
)


def run_steering(model, tok, hook, directions, emotions, *, n_samples, n_baseline, pulse, n_after,
                 alpha, seed, batch_size=64, temperature=0.8, top_p=0.95, progress=None):
    """Steered and baseline continuations, returning the hooked activations after the pulse.

    Parameters
    ----------
    directions : (n_emotions, hidden) array
        Unit steering directions, one per steered emotion.
    emotions : list of str
        Names of the steered emotions (rows of ``directions``).
    alpha : float
        Norm of the added vector.

    Returns
    -------
    dict
        ``steered`` (emotion, sample, offset, hidden) float32, ``baseline``
        (baseline_sample, offset, hidden) float32, ``prompts`` (text of each
        prompt), ``steered_prompt`` (emotion, sample) and ``baseline_prompt``
        indices, and ``texts`` of the steered rows.
    """
    directions = torch.as_tensor(np.asarray(directions), dtype=torch.float32)
    hidden = directions.shape[1]
    prompts = [list(tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                            tokenize=True, return_dict=False)) for p in STEER_PROMPTS]
    rows = []  # (kind, i, j, prompt index)
    for e in range(len(emotions)):
        for s in range(n_samples):
            rows.append(("steer", e, s, (e + s) % len(prompts)))
    for b in range(n_baseline):
        rows.append(("base", b, 0, b % len(prompts)))
    vocab = tok.get_vocab()
    stop_like = sorted({vocab.get("<|im_end|>", tok.eos_token_id), tok.eos_token_id,
                        vocab.get("<|im_start|>", tok.eos_token_id)})
    steered = np.zeros((len(emotions), n_samples, n_after, hidden), dtype=np.float32)
    baseline = np.zeros((n_baseline, n_after, hidden), dtype=np.float32)
    texts = {}
    for b0 in range(0, len(rows), batch_size):
        chunk = rows[b0:b0 + batch_size]
        vec = torch.zeros((len(chunk), hidden))
        for r, (kind, i, _, _) in enumerate(chunk):
            if kind == "steer":
                vec[r] = alpha * directions[i]
        res = generate(model, [prompts[c[3]] for c in chunk], pulse + n_after, seed=seed * 104729 + b0,
                       pad_id=tok.pad_token_id, forbid_ids=stop_like, temperature=temperature,
                       top_p=top_p, hook=hook, record=True, steer=vec, pulse=pulse)
        after = res["hidden"][:, pulse:pulse + n_after].numpy()
        for r, (kind, i, j, _) in enumerate(chunk):
            if kind == "steer":
                steered[i, j] = after[r]
                texts[(i, j)] = tok.decode(res["tokens"][r], skip_special_tokens=True)
            else:
                baseline[i] = after[r]
        if progress:
            progress(f"steering rows {min(b0 + batch_size, len(rows))}/{len(rows)}")
    return {"steered": steered, "baseline": baseline, "prompts": list(STEER_PROMPTS),
            "steered_prompt": np.array([[(e + s) % len(prompts) for s in range(n_samples)]
                                        for e in range(len(emotions))], dtype=np.int64),
            "baseline_prompt": np.arange(n_baseline, dtype=np.int64) % len(prompts),
            "texts": texts}
