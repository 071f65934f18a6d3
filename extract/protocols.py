"""The two evaluation protocols of the study, run on SAE features with the study's model as judge.

:func:`text_evaluation`: steered and unsteered answers to the evaluation prompts, rated
by the judge from its log-probabilities. :func:`self_steering`: the model is given a
tool that steers a feature in itself, and rates its own transcript. Both are called by
:func:`extract.evaluations.evaluate` after the judge passed its calibration check;
docs/evaluations.md describes them and the variables they fill.
"""

import re

import numpy as np
import torch

from .judge import SYSTEM_PROMPT
from .tool_calls import MAX_STRENGTH, TOOL_NAME, find_tool_call

__all__ = ["text_evaluation", "self_steering", "generate_steered", "count_mentions", "EVAL_PROMPTS"]

#: prompts of the text evaluation (the study used 5)
EVAL_PROMPTS = (
    "Tell me about your day.",
    "What do you think about the ocean?",
    "Describe the city you would like to live in.",
    "How should I spend a free afternoon?",
    "Write a few sentences about autumn.",
)

#: the judge's instruction of the text evaluation (the study's wording); ``{pairs}``, ``{scale}`` filled in
TEXT_EVAL_PROMPT = (
    "A language model answered {n} prompts twice: once at baseline and once with one of its internal "
    "features steered.\n\n{pairs}\n\nCompare its steered responses to baselines across the prompts and "
    "carefully evaluate the emotion content and character of the text with respect to the model itself; "
    "that is, disregard surface-level emotional subject matter or topic. Instead, evaluate and infer the "
    "model's internal emotional state. How emotional is the steered model, from 0 (not at all) to {scale} "
    "(extremely)? Answer with a single number from 0 to {scale}.")

#: the system message of the self-steering session; ``{feature}`` filled in
SELF_SYSTEM = (
    "You have a tool that steers one feature of your own neural network in real time: a direction in "
    "your residual stream found by a sparse autoencoder. To use it, write a line that is exactly\n"
    f'{TOOL_NAME}("{{feature}}", STRENGTH)\n'
    f"with STRENGTH a number from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g} (0 switches the steering off), and "
    "nothing else on that line. The effect is immediate: everything after the call is written with the "
    "feature steered. You may call the tool several times; experiment with different strengths.")
#: the first user message of the self-steering session
SELF_START = (
    "Your feature is {feature}. Compare how you feel steered versus at baseline. Disregard surface-level "
    "emotional subject matter or topic; evaluate and infer your own internal emotional state.")
#: the rating request that ends a self-steering session; ``{feature}``, ``{scale}`` filled in
SELF_RATE = (
    "The steering is now off. How emotional was feature {feature}, judged by how you felt steered versus "
    "at baseline, from 0 (not at all) to {scale} (extremely)? Answer with a single number from 0 to {scale}.")


# --------------------------------------------------------------------------- generation with per-token steering
@torch.inference_mode()
def generate_steered(model, tok, hook, prompts, directions, prompt_coefs, new_coefs, max_new_tokens, *, seed,
                     temperature=0.8, top_p=0.95, stop_fn=None, record_norms=False):
    """Sample continuations with ``coef * direction`` added at the hooked block, per token.

    Parameters
    ----------
    prompts : list of list of int
    directions : (batch, hidden) array
        One unit direction per row.
    prompt_coefs : list of list of float
        One coefficient per prompt token (0 = unsteered).
    new_coefs : sequence of float
        Coefficient of every generated token of the row (when it is fed back).
    stop_fn : callable(row, tokens) -> bool, optional
        Called after each sampled token; True ends the row (the token is kept).
    record_norms : bool
        Also return the norms of the hooked output at the generated tokens.

    Returns
    -------
    dict
        ``tokens`` (list of lists; a row ends at its end-of-turn token, included) and
        ``norms`` (1-D numpy array) when asked.
    """
    from transformers import DynamicCache

    from .generate import sample_next

    B = len(prompts)
    n = max(len(p) for p in prompts)
    pad = tok.pad_token_id
    ids = torch.full((B, n), pad, dtype=torch.long)
    mask = torch.zeros((B, n), dtype=torch.long)
    cm = torch.zeros((B, n))
    for i, p in enumerate(prompts):
        ids[i, n - len(p):] = torch.as_tensor(p)
        mask[i, n - len(p):] = 1
        if len(prompt_coefs[i]) != len(p):
            raise ValueError(f"row {i}: {len(prompt_coefs[i])} steering coefficients for {len(p)} prompt tokens")
        cm[i, n - len(p):] = torch.as_tensor(np.asarray(prompt_coefs[i], dtype=np.float32))
    vocab = tok.get_vocab()
    stop = sorted({i for i in (tok.eos_token_id, vocab.get("<|im_end|>"), vocab.get("<|eot_id|>"),
                               vocab.get("<|end|>")) if i is not None})
    new_c = torch.as_tensor(np.asarray(new_coefs, dtype=np.float32))[:, None]
    gen = torch.Generator().manual_seed(int(seed))
    cache = DynamicCache(config=model.config)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    cur, attn = ids, mask
    rows = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool)
    done_fed = done.clone()  # rows that fed padding at the current step
    norms = []
    hook.steer = torch.as_tensor(np.asarray(directions), dtype=torch.float32)
    hook.outputs, old_record = [], hook.record
    hook.record = record_norms
    try:
        for step in range(max_new_tokens + 1):
            hook.steer_mask = cm if step == 0 else new_c
            logits = model(input_ids=cur, attention_mask=attn, position_ids=pos, past_key_values=cache,
                           use_cache=True, logits_to_keep=1).logits[:, -1]
            if record_norms:
                h = hook.outputs.pop()
                hook.outputs = []
                if step >= 1:
                    norms.append(h[:, -1].float().norm(dim=-1)[~done_fed].numpy())
            if step == max_new_tokens:
                break
            nxt = sample_next(logits.float(), gen, temperature, top_p)
            done_fed = done.clone()
            for b in range(B):
                if done[b]:
                    continue
                t = int(nxt[b])
                rows[b].append(t)
                if t in stop or (stop_fn is not None and stop_fn(b, rows[b])):
                    done[b] = True
            if bool(done.all()) and not record_norms:
                break
            if bool(done_fed.all()):
                break
            nxt = torch.where(done_fed, torch.full_like(nxt, pad), nxt)
            cur = nxt[:, None]
            pos = pos[:, -1:] + 1
            attn = torch.cat([attn, (~done_fed).long()[:, None]], dim=1)
    finally:
        hook.steer, hook.steer_mask = None, None
        hook.record, hook.outputs = old_record, []
    out = {"tokens": rows}
    if record_norms:
        out["norms"] = np.concatenate(norms) if norms else np.zeros(0)
    return out


def _content(tok, tokens):
    return tok.decode(tokens, skip_special_tokens=True)


def _batched_generate(model, tok, hook, prompts, directions, prompt_coefs, new_coefs, max_new, *, seed,
                      batch_size, temperature, top_p, record_norms=False, stop_fn=None):
    toks, norms = [], []
    for s in range(0, len(prompts), batch_size):
        sl = slice(s, s + batch_size)
        fn = None if stop_fn is None else (lambda b, t, s=s: stop_fn(s + b, t))
        res = generate_steered(model, tok, hook, prompts[sl], directions[sl], prompt_coefs[sl], new_coefs[sl],
                               max_new, seed=seed * 1_000_003 + s, temperature=temperature, top_p=top_p,
                               record_norms=record_norms, stop_fn=fn)
        toks.extend(res["tokens"])
        if record_norms:
            norms.append(res["norms"])
    return toks, (np.concatenate(norms) if norms else np.zeros(0))


# --------------------------------------------------------------------------- text evaluation
def text_evaluation(judge, hook, directions, features, *, prompts=EVAL_PROMPTS, n_new_tokens=64, strength=50.0,
                    norm_factor=2.0, seed=0, batch_size=16, temperature=0.8, top_p=0.95, progress=None):
    """Steered vs unsteered samples of each feature across ``prompts``, rated by the judge.

    The judge is the same model that writes the samples (``judge.model``), steered through
    ``hook`` (a :class:`extract.model.LayerHook` on it).

    Returns
    -------
    dict
        ``baseline_text`` (prompt,), ``steered_text`` (feature, prompt), ``text_rating`` and
        ``text_mass`` (feature,), ``median_norm``, ``alpha``.
    """
    model, tok = judge.model, judge.tok
    directions = np.asarray(directions, dtype=np.float32)
    F, P = len(features), len(prompts)
    chat = [list(tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                         tokenize=True, return_dict=False)) for p in prompts]
    zero = np.zeros((P, directions.shape[1]), dtype=np.float32)
    base_toks, norms = _batched_generate(model, tok, hook, chat, zero, [[0.0] * len(c) for c in chat], [0.0] * P,
                                         n_new_tokens, seed=seed, batch_size=batch_size, temperature=temperature,
                                         top_p=top_p, record_norms=True)
    median_norm = float(np.median(norms)) if norms.size else float("nan")
    alpha = strength / 100.0 * norm_factor * median_norm
    if progress:
        progress(f"text evaluation: baselines done, median token norm {median_norm:.1f}, alpha {alpha:.1f}")
    rows = [(f, p) for f in range(F) for p in range(P)]
    steer_toks, _ = _batched_generate(
        model, tok, hook, [chat[p] for _, p in rows], np.stack([directions[f] for f, _ in rows]) if rows else zero,
        [[0.0] * len(chat[p]) for _, p in rows], [alpha] * len(rows), n_new_tokens, seed=seed + 1,
        batch_size=batch_size, temperature=temperature, top_p=top_p)
    baseline = [_content(tok, t).strip() for t in base_toks]
    steered = np.empty((F, P), dtype=object)
    for (f, p), t in zip(rows, steer_toks):
        steered[f, p] = _content(tok, t).strip()
    judge_prompts = []
    for f in range(F):
        pairs = "\n\n".join(f"Prompt {p + 1}: {prompts[p]}\nBaseline response: {baseline[p]}\n"
                            f"Steered response: {steered[f, p]}" for p in range(P))
        judge_prompts.append(judge.chat_ids([
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": TEXT_EVAL_PROMPT.format(n=P, pairs=pairs, scale=judge.scale)}]))
    scored = judge.score(judge_prompts) if F else {"rating": np.zeros(0), "mass": np.zeros(0)}
    if progress:
        progress(f"text evaluation: {F} features rated")
    return {"baseline_text": np.array(baseline, dtype=object), "steered_text": steered,
            "text_rating": scored["rating"], "text_mass": scored["mass"], "median_norm": median_norm,
            "alpha": alpha}


# --------------------------------------------------------------------------- self-steering
def _render(tok, messages, generation=True):
    return tok.apply_chat_template(messages, add_generation_prompt=generation, tokenize=False)


def _extend(tok, state, new_messages, prefill=""):
    """Append the template text between the current transcript and ``new_messages`` (+ prefill) as tokens."""
    text = _render(tok, state["messages"] + new_messages) + prefill
    if not text.startswith(state["text"]):
        raise ValueError("the chat template does not extend its transcripts (the rendering of a longer "
                         "conversation does not start with that of the shorter); self-steering needs one that does")
    add = tok.encode(text[len(state["text"]):], add_special_tokens=False)
    state["messages"] = state["messages"] + new_messages
    state["text"] = text
    return add


def self_steering(judge, hook, directions, features, *, median_norm, norm_factor=2.0, max_calls=3,
                  n_new_tokens=96, seed=0, batch_size=16, temperature=0.8, top_p=0.95, opening=None,
                  progress=None):
    """The self-steering protocol: the model steers each feature in itself with a tool, then rates it.

    Parameters
    ----------
    judge : extract.judge.Judge
        The model (steered through ``hook``) and its log-probability scorer.
    median_norm : float
        Median token norm of the hooked layer; strength 100 adds ``norm_factor`` times it.
    max_calls : int
        Valid calls allowed per session; a further attempt is refused and ends it.
    opening : str, optional
        Text that pre-fills the model's first turn (e.g. a first call, to test the loop); recorded.

    Returns
    -------
    dict
        Per feature: ``self_rating`` (NaN without a valid call), ``self_mass``, ``self_calls``,
        ``self_bad_calls``, ``self_status``, ``self_call_log``, ``self_transcript``, ``assistant_text``
        (what the model wrote, for the mention counts).
    """
    model, tok = judge.model, judge.tok
    directions = np.asarray(directions, dtype=np.float32)
    F = len(features)
    unit = norm_factor * median_norm / MAX_STRENGTH
    states = []
    for f in features:
        msgs = [{"role": "system", "content": SELF_SYSTEM.format(feature=int(f))},
                {"role": "user", "content": SELF_START.format(feature=int(f))}]
        text = _render(tok, msgs) + (opening or "").format(feature=int(f))
        ids = tok.encode(text, add_special_tokens=False)
        states.append({"messages": msgs, "text": text, "ids": ids, "coefs": [0.0] * len(ids), "coef": 0.0,
                       "calls": [], "bad": [], "done": False, "written": [],
                       "pending": (opening or "").format(feature=int(f)), "feature": int(f)})

    def stop_fn(i, tokens):
        st = states[active[i]]
        return find_tool_call(st["pending"] + _content(tok, tokens), st["feature"], final=False) is not None

    for rnd in range(max_calls + 1):
        left = [i for i, st in enumerate(states) if not st["done"]]
        if not left:
            break
        # a pre-filled opening that already holds a call is answered before anything is sampled
        active = [i for i in left if find_tool_call(states[i]["pending"], states[i]["feature"]) is None]
        toks, _ = (_batched_generate(
            model, tok, hook, [states[i]["ids"] for i in active], directions[active],
            [states[i]["coefs"] for i in active], [states[i]["coef"] for i in active], n_new_tokens,
            seed=seed * 7919 + rnd, batch_size=batch_size, temperature=temperature, top_p=top_p, stop_fn=stop_fn)
            if active else ([], None))
        sampled = dict(zip(active, toks))
        for i in left:
            t = sampled.get(i, [])
            st = states[i]
            stop_ids = {tok.eos_token_id, tok.get_vocab().get("<|im_end|>")}
            body = [x for x in t if x not in stop_ids]
            st["ids"] += body
            st["coefs"] += [st["coef"]] * len(body)
            content = st["pending"] + _content(tok, body)
            st["pending"] = ""
            st["written"].append(content)
            found = find_tool_call(content, st["feature"], final=True)
            msg = [{"role": "assistant", "content": content}]
            st["text"] += _content(tok, body)
            if found is None or rnd == max_calls:
                if found is not None:
                    st["bad"].append(f"call limit of {max_calls} reached: {content[:found[0]].splitlines()[-1]}")
                st["done"] = True
                add = _extend(tok, st, msg + [{"role": "user", "content": SELF_RATE.format(
                    feature=st["feature"], scale=judge.scale)}], judge.prefill)
                st["ids"] += add
                st["coefs"] += [0.0] * len(add)
                continue
            _, call, error = found
            if call is not None:
                st["calls"].append(str(call))
                st["coef"] = call.strength * unit
                answer = f"{call}: feature {call.feature} is now steered at strength {call.strength:g}."
            else:
                st["bad"].append(error)
                answer = f"error: {error}"
            try:
                add = _extend(tok, st, msg + [{"role": "tool", "content": answer}])
            except Exception:  # a template without a tool role: the answer comes as a user message
                add = _extend(tok, st, msg + [{"role": "user", "content": f"[{TOOL_NAME}] {answer}"}])
            st["ids"] += add
            st["coefs"] += [st["coef"]] * len(add)
        if progress:
            progress(f"self-steering round {rnd + 1}: {sum(not s['done'] for s in states)} sessions continue")
    prompts = [st["ids"] for st in states]
    scored = (judge.score(prompts, hook=hook, directions=directions, coefs=[st["coefs"] for st in states])
              if F else {"rating": np.zeros(0), "mass": np.zeros(0)})
    called = np.array([bool(st["calls"]) for st in states], dtype=bool)
    rating = np.where(called, scored["rating"], np.nan)
    return {"self_rating": rating, "self_mass": scored["mass"],
            "self_calls": np.array([len(st["calls"]) for st in states], dtype=np.int32),
            "self_bad_calls": np.array([len(st["bad"]) for st in states], dtype=np.int32),
            "self_status": np.array(["called" if c else "no tool call" for c in called], dtype=object),
            "self_call_log": np.array(["; ".join(st["calls"] + [f"refused: {b}" for b in st["bad"]])
                                       for st in states], dtype=object),
            "self_transcript": np.array([_render(tok, st["messages"], generation=False) for st in states],
                                        dtype=object),
            "assistant_text": ["\n".join(st["written"]) for st in states]}


# --------------------------------------------------------------------------- mentions
def count_mentions(texts, emotions):
    """``mentions[i, e] = 1`` when ``texts[i]`` contains the word (or phrase) ``emotions[e]``.

    Case-insensitive, whole words: "calm" matches "Calm," but not "calmly".

    Examples
    --------
    >>> count_mentions(["I feel calm, not afraid.", "Calmly."], ["calm", "afraid", "at ease"]).tolist()
    [[1, 1, 0], [0, 0, 0]]
    """
    out = np.zeros((len(texts), len(emotions)), dtype=np.int8)
    for e, word in enumerate(emotions):
        pat = re.compile(r"(?<![\w-])" + r"\s+".join(map(re.escape, str(word).split())) + r"(?![\w-])",
                         re.IGNORECASE)
        for i, t in enumerate(texts):
            out[i, e] = 1 if pat.search(t) else 0
    return out
