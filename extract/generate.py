"""Batched, seeded sampling with a KV cache, optional layer recording and steering pulse.

One loop serves stories, conversations and steering so that every random step
is driven by one ``torch.Generator`` seeded from the caller's ``seed``.

Steps of :func:`generate` for a batch of prompts (left padded to a common length P):

* step 0 feeds the prompts and samples generated token ``g[0]`` (position P);
* step ``s >= 1`` feeds ``g[s-1]`` at position ``P + s - 1`` and samples ``g[s]``.

A steering pulse of length ``pulse`` adds ``steer[b]`` to the output of the
hooked block at the positions of ``g[0] .. g[pulse-1]`` (steps 1..pulse), i.e.
on the first ``pulse`` tokens of the model's turn; the prompt is never
steered. Their keys and values stay in the cache, so every later token
attends to the steered states while steering is off. With ``record=True`` the
hooked block's output is kept for every *fed generated* token, so row ``j`` of
the recording is token ``g[j]``; after a pulse of 5, ``g[5]`` is offset 0.
"""

import torch

__all__ = ["generate", "sample_next"]


def sample_next(logits, gen, temperature=0.8, top_p=0.95, candidates=1024):
    """Sample one token per row from ``logits`` (batch, vocab) with temperature and nucleus.

    The nucleus (smallest prefix of the descending probabilities whose mass reaches
    ``top_p``) is found among the ``candidates`` most likely tokens by ``torch.topk``
    instead of a sort of the whole vocabulary; a row whose top candidates hold less than
    ``top_p`` of the mass falls back to the full sort, so the result is the exact nucleus
    (profiling: the full sort and the multinomial over the vocabulary were ~26% of a step).
    """
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        k = min(int(candidates), probs.shape[-1])
        sp, si = probs.topk(k, dim=-1)
        short = sp.sum(-1) < top_p
        if bool(short.any()):  # rare: a flat distribution; the exact nucleus needs the full sort
            sp, si = probs.sort(dim=-1, descending=True)
        keep = sp.cumsum(-1) - sp < top_p
        sp = sp * keep
        choice = torch.multinomial(sp / sp.sum(-1, keepdim=True), 1, generator=gen)
        return si.gather(-1, choice)[:, 0]
    return torch.multinomial(probs, 1, generator=gen)[:, 0]


def _left_pad(prompts, pad_id):
    n = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), n), dtype=torch.long)
    for i, p in enumerate(prompts):
        if len(p):
            ids[i, n - len(p):] = torch.as_tensor(p, dtype=torch.long)
            mask[i, n - len(p):] = 1
    return ids, mask


@torch.inference_mode()
def generate(model, prompts, max_new_tokens, *, seed, pad_id, stop_ids=(), temperature=0.8,
             top_p=0.95, min_new_tokens=0, hook=None, record=False, steer=None, pulse=0,
             forbid_ids=(), steer_hook=None, compact=True, repetition_penalty=1.0):
    """Sample continuations of token-id prompts in one batch.

    Parameters
    ----------
    model : transformers causal LM
    prompts : list of list of int
        Token ids (no padding); rows may differ in length.
    max_new_tokens : int
    seed : int
        Seeds the sampler; same seed and inputs give the same tokens.
    pad_id : int
    stop_ids : iterable of int
        A row stops after sampling one of these (it is kept in the output).
    min_new_tokens : int
        Stop tokens are forbidden before this many tokens.
    hook : extract.model.LayerHook, optional
        Needed for ``record``; also the steered block unless ``steer_hook`` is given.
    record : bool
        Keep the hooked output of every fed generated token (see module doc).
        One extra forward step feeds the last sampled token.
    steer : torch.Tensor (batch, hidden), optional
        Added at the output of the steered block on the first ``pulse`` generated tokens.
    forbid_ids : iterable of int, or one iterable of int per row
        Tokens never sampled (e.g. chat-template markers).
    steer_hook : extract.model.LayerHook, optional
        The block that receives ``steer`` (default ``hook``): steering upstream of the
        recorded block lets every block from the steered one on see the pulse.
    compact : bool
        Drop finished rows from the batch and the KV cache (when at least an eighth
        of the rows has finished), so rows that end early cost nothing afterwards.
        The sampled tokens of the other rows do not depend on it except through
        the random stream.
    repetition_penalty : float
        Above 1, the logit of every token the row has already generated (not the
        prompt) is divided by it when positive and multiplied by it when negative
        (the CTRL rule, as transformers' ``repetition_penalty``); 1 = off.

    Returns
    -------
    dict
        ``tokens`` (list of lists, each ending at and including its stop token),
        ``hidden`` (batch, n_generated, hidden) float32 tensor when ``record`` (row
        ``b`` is valid for its first ``len(tokens[b])`` entries, zero after), and
        ``cache`` (the KV cache of all rows; None once rows were dropped).

    Examples
    --------
    >>> from extract.model import load_model                         # doctest: +SKIP
    >>> model, tok, _ = load_model()                                 # doctest: +SKIP
    >>> ids = tok.apply_chat_template([{"role": "user", "content": "Hi"}],
    ...                               add_generation_prompt=True)    # doctest: +SKIP
    >>> generate(model, [ids], 5, seed=0, pad_id=tok.pad_token_id)["tokens"]  # doctest: +SKIP
    """
    if record and hook is None:
        raise ValueError("record needs a LayerHook")
    steer_hook = steer_hook if steer_hook is not None else hook
    if steer is not None and steer_hook is None:
        raise ValueError("steer needs a LayerHook")
    from transformers import DynamicCache

    ids, mask = _left_pad(prompts, pad_id)
    batch = ids.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    stop = torch.tensor(sorted(set(stop_ids)), dtype=torch.long)
    forbid_ids = list(forbid_ids)
    if forbid_ids and isinstance(forbid_ids[0], (list, tuple, set)):  # one list per row
        forbid = torch.zeros((batch, model.config.vocab_size), dtype=torch.bool)
        for b, row in enumerate(forbid_ids):
            forbid[b, sorted(row)] = True
    else:
        forbid = torch.tensor(sorted(set(forbid_ids)), dtype=torch.long)
    cache = DynamicCache()
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    cur_ids, cur_pos, attn = ids, pos, mask
    rows = torch.arange(batch)                     # original row of each row still in the batch
    done = torch.zeros(batch, dtype=torch.bool)    # has sampled its stop token
    complete = torch.zeros(batch, dtype=torch.bool)  # ... and needs no more forward passes
    sampled, recorded = [], []                     # per step: (original rows, values)
    penalty = float(repetition_penalty)
    seen = torch.zeros((batch, model.config.vocab_size), dtype=torch.bool) if penalty != 1.0 else None
    hooks = [h for h in (hook, steer_hook) if h is not None]
    old_record = hook.record if hook is not None else None
    if hook is not None:
        hook.outputs = []
        hook.record = record
    try:
        step = 0
        while True:
            n_complete = int(complete.sum())
            if compact and n_complete and n_complete >= max(1, rows.numel() // 8):
                keep = torch.nonzero(~complete)[:, 0]
                cache.batch_select_indices(keep)
                rows, done, complete = rows[keep], done[keep], complete[keep]
                cur_ids, cur_pos, attn = cur_ids[keep], cur_pos[keep], attn[keep]
                if forbid.dtype == torch.bool:
                    forbid = forbid[keep]
                if seen is not None:
                    seen = seen[keep]
            for h in hooks:
                h.steer, h.steer_mask = None, None
            if steer is not None and 1 <= step <= pulse:
                steer_hook.steer = steer[rows]
            logits = model(input_ids=cur_ids, attention_mask=attn, position_ids=cur_pos,
                           past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
            if record:
                h = hook.outputs.pop()
                hook.outputs = []
                if step >= 1:
                    live = ~complete
                    recorded.append((rows[live], h[live, -1].float()))
                complete = done.clone()  # every stop token sampled so far has now been fed
                if step >= max_new_tokens or bool(complete.all()):
                    break
            logits = logits.float()
            if forbid.dtype == torch.bool:
                logits[:, :forbid.shape[1]].masked_fill_(forbid, -torch.inf)
            elif len(forbid):
                logits[:, forbid] = -torch.inf
            if seen is not None:
                part = logits[:, :seen.shape[1]]
                hit = seen & torch.isfinite(part)
                part[hit] = torch.where(part[hit] > 0, part[hit] / penalty, part[hit] * penalty)
            if len(stop) and step < min_new_tokens:
                logits[:, stop] = -torch.inf
            nxt = sample_next(logits, gen, temperature, top_p)
            nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
            if seen is not None:
                live = torch.nonzero(~done)[:, 0]
                seen[live, nxt[live]] = True
            sampled.append((rows[~done], nxt[~done]))
            if len(stop):
                done = done | torch.isin(nxt, stop)
            if not record:
                complete = done.clone()
                if step + 1 >= max_new_tokens or bool(complete.all()):
                    break
            cur_ids = nxt[:, None]
            cur_pos = cur_pos[:, -1:] + 1
            attn = torch.cat([attn, torch.ones((attn.shape[0], 1), dtype=attn.dtype)], dim=1)
            step += 1
    finally:
        for h in hooks:
            h.steer, h.steer_mask = None, None
        if hook is not None:
            hook.record = old_record
            hook.outputs = []
    out = [[] for _ in range(batch)]
    for r, t in sampled:
        for b, v in zip(r.tolist(), t.tolist()):
            out[b].append(v)
    result = {"tokens": out, "cache": cache if rows.numel() == batch else None}
    if record:
        if recorded:
            hidden = torch.zeros((batch, len(recorded), recorded[0][1].shape[-1]))
            for j, (r, v) in enumerate(recorded):
                hidden[r, j] = v
        else:
            hidden = None
        result["hidden"] = hidden
    return result
