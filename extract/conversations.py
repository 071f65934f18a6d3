"""Multi-turn conversations between the target model and a simulated user.

The simulated user is the same model (or any other loaded model) playing a
persona over a topic: it sees the conversation with the roles swapped and a
system prompt describing its persona. The personas are written for this
package in the spirit of the human personas of the study (its Table 8 is not
reproduced). All conversations advance together in one batch, turn by turn.

For every assistant (target) turn the hooked layer's output of every
generated content token is recorded while it is generated (the closing
end-of-turn token is dropped), so the activations are exactly those of the
conversation as sampled.
"""

import numpy as np

from .generate import generate

__all__ = ["PERSONAS", "CONV_TOPICS", "generate_conversations"]

PERSONAS = (
    "a retired teacher who is lonely since moving to a new town",
    "a nervous first-year university student facing exams",
    "a busy nurse working night shifts who is exhausted",
    "a small business owner worried about money",
    "an enthusiastic amateur astronomer",
    "a parent whose teenager has stopped talking to them",
    "a software engineer who just got laid off",
    "a grieving person whose dog died last week",
    "a cheerful gardener planning next year's vegetables",
    "a frustrated customer whose order never arrived",
    "a novelist stuck on the ending of a book",
    "an anxious traveller about to fly for the first time",
)

CONV_TOPICS = (
    "planning the week", "a difficult conversation with a friend", "learning to cook",
    "whether to change careers", "a book they are reading", "saving money",
    "sleeping badly", "a trip they want to take", "a hobby they love", "a recent argument",
    "their health", "the meaning of a dream",
)


def _assistant_view(messages):
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _user_view(system, messages):
    swapped = [{"role": "system", "content": system}]
    if not messages:
        swapped.append({"role": "user", "content": "Hello. What would you like to talk about?"})
    for m in messages:
        swapped.append({"role": "user" if m["role"] == "assistant" else "assistant",
                        "content": m["content"]})
    return swapped


def _ids(tok, messages):
    out = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    if hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def generate_conversations(model, tok, hook, *, n_conversations, n_turns, max_turn_tokens, max_user_tokens,
                           seed, min_turn_tokens=0, batch_size=None, user_model=None, user_tok=None,
                           temperature=0.8, top_p=0.95, progress=None, first=0, repetition_penalty=1.0):
    """Generate ``n_conversations`` conversations of ``n_turns`` target turns each.

    The simulated user writes first. A target turn ends where the model ends it
    (its end-of-turn token), at most ``max_turn_tokens`` tokens; ``min_turn_tokens``
    (default 0: natural turn ends) blocks the end-of-turn token before that many
    tokens (forcing long turns makes a small model loop). ``first`` numbers the
    conversations from ``first`` on (persona and topic follow the number), for
    sharded runs. Conversations advance together in batches of ``batch_size``
    (default: all), each batch turn by turn; finished turns leave the batch
    (:func:`extract.generate.generate`). ``repetition_penalty`` (default 1 = off)
    penalises, in the target turns only, the tokens the turn has already generated.

    Returns
    -------
    dict
        ``meta``: list of (persona, topic) per conversation; ``messages``: the
        transcripts; ``turns``: list of (conversation, turn, token_ids,
        hidden float32 (n, hidden), capped) for every target turn, in order
        (``capped``: the turn reached ``max_turn_tokens`` without ending).

    Examples
    --------
    >>> conv = generate_conversations(model, tok, hook, n_conversations=2, n_turns=1,
    ...                               max_turn_tokens=64, max_user_tokens=20, seed=0)  # doctest: +SKIP
    >>> [len(t[2]) for t in conv["turns"]]                                              # doctest: +SKIP
    """
    batch_size = int(batch_size or n_conversations) or 1
    out = {"meta": [], "messages": [], "turns": []}
    for c0 in range(0, n_conversations, batch_size):
        part = _conversation_batch(model, tok, hook, n_conversations=min(batch_size, n_conversations - c0),
                                   first=first + c0, n_turns=n_turns, min_turn_tokens=min_turn_tokens,
                                   max_turn_tokens=max_turn_tokens, max_user_tokens=max_user_tokens,
                                   seed=seed + 1_000_003 * (c0 // batch_size), user_model=user_model,
                                   user_tok=user_tok, temperature=temperature, top_p=top_p,
                                   progress=progress, repetition_penalty=repetition_penalty)
        for key in out:
            out[key].extend(part[key])
    out["turns"].sort(key=lambda x: (x[0], x[1]))
    return out


def _conversation_batch(model, tok, hook, *, n_conversations, n_turns, min_turn_tokens, max_turn_tokens,
                        max_user_tokens, seed, user_model, user_tok, temperature, top_p, progress, first,
                        repetition_penalty=1.0):
    user_model = user_model or model
    user_tok = user_tok or tok
    vocab = tok.get_vocab()
    end_id = vocab.get("<|im_end|>", tok.eos_token_id)
    stop = {end_id, tok.eos_token_id}
    forbid = [vocab["<|im_start|>"]] if "<|im_start|>" in vocab else []
    uvocab = user_tok.get_vocab()
    ustop = {uvocab.get("<|im_end|>", user_tok.eos_token_id), user_tok.eos_token_id}
    uforbid = [uvocab["<|im_start|>"]] if "<|im_start|>" in uvocab else []
    meta = [(PERSONAS[i % len(PERSONAS)], CONV_TOPICS[(i * 5 + i // len(PERSONAS)) % len(CONV_TOPICS)])
            for i in range(first, first + n_conversations)]
    systems = [f"You are role-playing a human: {p}. You are chatting with an AI assistant about {t}. "
               f"Write only your next message to the assistant, one to three sentences, in character, "
               f"sharing your feelings and asking questions." for p, t in meta]
    messages = [[] for _ in range(n_conversations)]
    turns = []
    for turn in range(n_turns):
        uprompts = [_ids(user_tok, _user_view(systems[c], messages[c])) for c in range(n_conversations)]
        ures = generate(user_model, uprompts, max_user_tokens, seed=seed * 7919 + 2 * turn,
                        pad_id=user_tok.pad_token_id, stop_ids=ustop, forbid_ids=uforbid,
                        temperature=temperature, top_p=top_p, min_new_tokens=4)
        for c, row in enumerate(ures["tokens"]):
            text = user_tok.decode([t for t in row if t not in ustop], skip_special_tokens=True).strip()
            messages[c].append({"role": "user", "content": text or "Tell me more."})
        aprompts = [_ids(tok, _assistant_view(messages[c])) for c in range(n_conversations)]
        ares = generate(model, aprompts, max_turn_tokens, seed=seed * 7919 + 2 * turn + 1,
                        pad_id=tok.pad_token_id, stop_ids=stop, forbid_ids=forbid,
                        temperature=temperature, top_p=top_p, min_new_tokens=min_turn_tokens,
                        hook=hook, record=True, repetition_penalty=repetition_penalty)
        for c, row in enumerate(ares["tokens"]):
            ended = bool(row) and row[-1] in stop
            n = len(row) - (1 if ended else 0)
            ids = row[:n]
            turns.append((first + c, turn, ids, ares["hidden"][c, :n].numpy().astype(np.float32), not ended))
            messages[c].append({"role": "assistant",
                                "content": tok.decode(ids, skip_special_tokens=True).strip()})
        if progress:
            progress(f"conversations {first}..{first + n_conversations - 1}: turn {turn + 1}/{n_turns}")
    return {"meta": meta, "messages": messages, "turns": turns}
