"""A judge model's 0-100 emotionality rating of a text, from its log-probabilities over the number tokens.

Any local Hugging Face chat model is the judge (default: the SmolLM2-135M-Instruct
GGUF that :mod:`extract` uses). The judge is asked for one integer on a scale
``0 .. scale`` (default 0-10) and the assistant turn is pre-filled with
``"Rating: "``; the rating is **not** parsed from sampled text but is the expected
value of the answer under the judge's next-token distributions, mapped to 0-100:

``rating = 100 / scale * sum_r r P(r) / sum_r P(r)`` over the allowed answers
``r = 0 .. scale``, where ``P(r)`` is the probability that the answer is exactly
the number ``r``: the product of the probabilities of the digit tokens that spell
``r`` (summed over every way the vocabulary's pure-digit tokens can spell it, so
tokenizers with multi-digit tokens are handled) times the probability that the
next token does not continue the number (its text does not start with a digit;
a token such as ``"7."`` ends the number inside itself and counts as such).
``mass = sum_r P(r)`` (the probability that the judge answers with an allowed
number at all) is returned with every rating.

The probabilities come from one forward pass over the (left padded) prompts with
a KV cache and one pass over the short digit paths, the cache copied per path;
``tests/test_judge.py`` checks it against the slow way (one unbatched, uncached
forward per answer, full softmax).

Before ratings are written, the judge must pass :func:`calibrate`: the ratings of
the labelled emotional and neutral texts of ``judge_calibration.json`` (30 + 30,
shipped beside this module) must separate the labels with a Mann-Whitney AUC of
at least :data:`CALIBRATION_THRESHOLD`; the AUC and the Spearman correlation of
rating and label are stored with the ratings.

``python -m extract.judge [--model PATH] [--scale 10]`` calibrates a model and
prints the numbers.

Which vocabulary tokens spell numbers is :mod:`extract.number_tokens`; the
self-steering tool's call format, which the judge's model is also offered in the
self-steering protocol, is :mod:`extract.tool_calls`.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from .number_tokens import NumberTokens

__all__ = ["Judge", "auc", "calibrate", "load_calibration", "CALIBRATION_THRESHOLD", "CALIBRATION_FILE",
           "RATE_PROMPT"]

#: the calibration gate: ratings are written only when the judge's AUC on the calibration set reaches this
CALIBRATION_THRESHOLD = 0.75
#: the labelled texts of the calibration check (label 1 = emotional, 0 = neutral)
CALIBRATION_FILE = Path(__file__).with_name("judge_calibration.json")
#: the question of the calibration check; ``{text}`` and ``{scale}`` are filled in
RATE_PROMPT = ("How emotional is the following text? Rate the emotion it expresses on a scale from 0 (no "
               "emotion at all: neutral, factual) to {scale} (extremely emotional).\n\nText: {text}\n\n"
               "Answer with a single number from 0 to {scale}.")
#: the system message of every judge prompt
SYSTEM_PROMPT = "You are a careful rater of texts. You answer with a single number."
#: the pre-filled start of the judge's answer; the number's first digit is the next token
PREFILL = "Rating: "


# --------------------------------------------------------------------------- the judge
class Judge:
    """A chat model that rates texts 0-100 from its log-probabilities over the number tokens.

    Parameters
    ----------
    model, tok : transformers causal LM and its tokenizer
        E.g. from :func:`extract.model.load_model` (left padding, pad token set).
    scale : int
        The judge answers an integer ``0 .. scale``; the rating is ``100 / scale`` times its
        expected value (10: a 0-10 scale mapped to 0-100; 100: a 0-100 scale).
    batch_size : int
        Prompts per forward pass.
    prefill : str
        Start of the judge's answer; the number must begin a new token after it (checked).

    Examples
    --------
    >>> from extract.model import load_model                      # doctest: +SKIP
    >>> judge = Judge(*load_model()[:2])                           # doctest: +SKIP
    >>> judge.rate(["I am so happy I could cry!", "The bus leaves at 9."])["rating"]  # doctest: +SKIP
    array([..., ...])
    """

    def __init__(self, model, tok, *, scale=10, batch_size=16, prefill=PREFILL):
        if int(scale) != scale or not 1 <= int(scale) <= 1000:
            raise ValueError(f"scale must be an integer 1..1000, got {scale!r}")
        self.model, self.tok = model, tok
        self.scale = int(scale)
        self.batch_size = int(batch_size)
        self.prefill = prefill
        self.numbers = NumberTokens(tok)
        self.ratings = [str(r) for r in range(self.scale + 1)]
        self.paths = {r: self.numbers.segmentations(r) for r in self.ratings}
        missing = [r for r, p in self.paths.items() if not p]
        if missing:
            raise ValueError(f"the tokenizer cannot spell the rating {missing[0]} with digit tokens")
        head = tok.encode("x" + prefill, add_special_tokens=False)
        for r in ("0", str(self.scale)):
            ids = tok.encode("x" + prefill + r, add_special_tokens=False)
            if ids[:len(head)] != head or not any(ids[len(head):] == p for p in self.paths[r]):
                raise ValueError(f"prefill {prefill!r}: the tokenizer merges it with the rating {r}; "
                                 f"end it so that the number starts a new token")

    # ------------------------------------------------------------------ prompts
    def chat_ids(self, messages, prefill=None):
        """Token ids of ``messages`` rendered by the chat template, a new assistant turn and ``prefill``."""
        text = self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tok.encode(text + (self.prefill if prefill is None else prefill), add_special_tokens=False)

    def text_prompt(self, text):
        """Token ids of the calibration question about ``text`` (:data:`RATE_PROMPT`)."""
        return self.chat_ids([{"role": "system", "content": SYSTEM_PROMPT},
                              {"role": "user", "content": RATE_PROMPT.format(text=text, scale=self.scale)}])

    def rate(self, texts):
        """Ratings 0-100 of ``texts`` (:data:`RATE_PROMPT`): dict ``rating``, ``mass`` (numpy arrays)."""
        return self.score([self.text_prompt(t) for t in texts])

    # ------------------------------------------------------------------ scoring
    @torch.inference_mode()
    def score(self, prompts, *, hook=None, directions=None, coefs=None):
        """Expected rating (0-100) of the answer that follows each token-id prompt.

        Parameters
        ----------
        prompts : list of list of int
            Each ends where the number's first token goes (e.g. :meth:`chat_ids`).
        hook : extract.model.LayerHook, optional
            With ``directions`` (n, hidden) and ``coefs`` (one list of floats per prompt, one per
            token): ``coefs[i][j] * directions[i]`` is added to the hooked block's output at prompt
            token ``j`` (a judge that is steered while it reads its transcript). The number tokens
            are not steered.

        Returns
        -------
        dict
            ``rating`` (0-100, NaN when ``mass`` is 0) and ``mass`` (probability of an allowed
            answer), numpy float64 arrays.
        """
        rating = np.full(len(prompts), np.nan)
        mass = np.zeros(len(prompts))
        order = np.argsort([-len(p) for p in prompts], kind="stable")  # similar lengths share a batch
        for s in range(0, len(prompts), self.batch_size):
            idx = order[s:s + self.batch_size]
            steer = None
            if hook is not None and directions is not None:
                steer = (torch.as_tensor(np.asarray(directions)[idx], dtype=torch.float32),
                         [coefs[i] for i in idx])
            dist = self._answer_probs([prompts[i] for i in idx], hook, steer)
            for j, i in enumerate(idx):
                p = dist[j]
                total = float(sum(p.values()))
                mass[i] = total
                if total > 0:
                    rating[i] = sum(int(r) * v for r, v in p.items()) / total * 100.0 / self.scale
        return {"rating": rating, "mass": mass}

    def _answer_probs(self, prompts, hook, steer):
        """{rating string: probability} per prompt."""
        from transformers import DynamicCache

        model = self.model
        n = max(len(p) for p in prompts)
        pad = self.tok.pad_token_id
        ids = torch.full((len(prompts), n), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), n), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, n - len(p):] = torch.as_tensor(p)
            mask[i, n - len(p):] = 1
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        cache = DynamicCache(config=model.config)
        if steer is not None:
            dirs, coefs = steer
            cm = torch.zeros((len(prompts), n))
            for i, c in enumerate(coefs):
                if len(c) != len(prompts[i]):
                    raise ValueError(f"prompt {i}: {len(c)} steering coefficients for {len(prompts[i])} tokens")
                cm[i, n - len(c):] = torch.as_tensor(np.asarray(c, dtype=np.float32))
            hook.steer, hook.steer_mask = dirs, cm
        try:
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                           use_cache=True, logits_to_keep=1).logits[:, -1]
        finally:
            if steer is not None:
                hook.steer, hook.steer_mask = None, None
        root = torch.log_softmax(logits.double(), -1)
        # the digit paths: every segmentation of every rating; a path that starts a longer one is read by it
        paths = sorted({tuple(q) for r in self.ratings for q in self.paths[r]}, key=len, reverse=True)
        rows = []
        for q in paths:
            if not any(longer[:len(q)] == q for longer in rows):
                rows.append(q)
        depth = max(len(q) for q in rows)
        num = self.numbers
        pure = torch.as_tensor(num.pure_ids)
        mixed = {lead: torch.as_tensor(ids_) for lead, ids_ in num.mixed.items()}

        def summary(lq):  # what the walk below needs of a node's next-token log-probabilities
            return (dict(zip(num.pure_ids, lq[pure].tolist())), float(torch.logsumexp(lq[num.stop], 0)),
                    {lead: float(torch.logsumexp(lq[i], 0)) for lead, i in mixed.items()})

        nodes = {(b, ()): summary(root[b]) for b in range(len(prompts))}
        plan = [(b, q) for b in range(len(prompts)) for q in rows]
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        chunk = max(1, min(64, 16384 // (n + depth)))
        for s in range(0, len(plan), chunk):
            part = plan[s:s + chunk]
            sel = torch.as_tensor([b for b, _ in part])
            sub = DynamicCache(ddp_cache_data=[(k[sel], v[sel]) for k, v in kv], config=model.config)
            feed = torch.full((len(part), depth), num.pure_ids[0], dtype=torch.long)
            for r, (_, q) in enumerate(part):
                feed[r, :len(q)] = torch.as_tensor(q)
            att = torch.cat([mask[sel], torch.ones((len(part), depth), dtype=mask.dtype)], 1)
            fpos = pos[sel, -1:] + 1 + torch.arange(depth)[None]
            out = model(input_ids=feed, attention_mask=att, position_ids=fpos, past_key_values=sub,
                        use_cache=True).logits
            for r, (b, q) in enumerate(part):
                for k in range(1, len(q) + 1):
                    if (b, q[:k]) not in nodes:
                        nodes[(b, q[:k])] = summary(torch.log_softmax(out[r, k - 1].double(), -1))
        allowed = set(self.ratings)
        result = [dict.fromkeys(self.ratings, 0.0) for _ in prompts]
        # every node: log P(its path), then the numbers that end right after it or inside its next token
        for (b, path), (_, stop_lse, mixed_lse) in nodes.items():
            lp = sum(nodes[(b, path[:k])][0][path[k]] for k in range(len(path)))
            prefix = "".join(num.text[i] for i in path)
            if prefix in allowed:
                result[b][prefix] += math.exp(lp + stop_lse)
            for lead, lse in mixed_lse.items():
                if prefix + lead in allowed:
                    result[b][prefix + lead] += math.exp(lp + lse)
        return result


# --------------------------------------------------------------------------- calibration
def auc(scores, labels):
    """Mann-Whitney AUC: P(score of a label-1 text > score of a label-0 text) + P(tie) / 2.

    Computed from mid-ranks, ``(R1 - n1 (n1 + 1) / 2) / (n1 n0)``; NaN scores are dropped.

    Examples
    --------
    >>> auc([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
    1.0
    >>> auc([0.5, 0.5], [1, 0])
    0.5
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(int)
    keep = ~np.isnan(s)
    s, y = s[keep], y[keep]
    n1, n0 = int((y == 1).sum()), int((y == 0).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def load_calibration(path=CALIBRATION_FILE):
    """(texts, labels) of a calibration file: ``{"texts": [{"text": ..., "label": 0 or 1}, ...]}``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    texts = [str(t["text"]) for t in data["texts"]]
    labels = np.array([int(t["label"]) for t in data["texts"]], dtype=np.int8)
    if not set(labels.tolist()) <= {0, 1}:
        raise ValueError(f"{Path(path).name}: labels must be 0 or 1")
    return texts, labels


def calibrate(rate, texts=None, labels=None, threshold=CALIBRATION_THRESHOLD):
    """The calibration check: does the judge rate emotional texts above neutral ones?

    Parameters
    ----------
    rate : callable or Judge
        ``rate(texts) -> {"rating": array, ...}`` (a :class:`Judge`'s :meth:`Judge.rate`).
    texts, labels : optional
        The labelled set; default :data:`CALIBRATION_FILE`.
    threshold : float
        The judge passes when ``auc >= threshold``.

    Returns
    -------
    dict
        ``auc``, ``spearman`` (rank correlation of rating and label), ``spearman_p``,
        ``passed`` (bool), ``threshold``, ``ratings``, ``mass``, ``labels``, ``texts``,
        ``reason`` (one line; empty when passed).

    Examples
    --------
    >>> fake = lambda texts: {"rating": np.array([90.0 if "!" in t else 10.0 for t in texts])}
    >>> res = calibrate(fake, ["Wonderful!", "Bus at 9.", "No way!", "Page 3."], [1, 0, 1, 0])
    >>> res["auc"], res["passed"]
    (1.0, True)
    """
    import emostats as es

    if texts is None:
        texts, labels = load_calibration()
    labels = np.asarray(labels).astype(np.int8)
    fn = rate.rate if isinstance(rate, Judge) else rate
    out = fn(list(texts))
    ratings = np.asarray(out["rating"], dtype=np.float64)
    mass = np.asarray(out.get("mass", np.ones(len(ratings))), dtype=np.float64)
    a = auc(ratings, labels)
    keep = ~np.isnan(ratings)
    if keep.sum() >= 3 and np.ptp(ratings[keep]) > 0:
        sp = es.spearman(ratings[keep], labels[keep].astype(np.float64))
        rho, p = float(sp["rho"]), float(sp["p"])
    else:
        rho, p = float("nan"), float("nan")
    passed = bool(np.isfinite(a) and a >= threshold)
    reason = "" if passed else (
        f"the judge failed the calibration check: AUC {a:.3f} < {threshold} on {len(labels)} labelled texts "
        f"(Spearman {rho:+.3f}), so no ratings were written")
    return {"auc": a, "spearman": rho, "spearman_p": p, "passed": passed, "threshold": float(threshold),
            "ratings": ratings, "mass": mass, "labels": labels, "texts": list(texts), "reason": reason}


# --------------------------------------------------------------------------- command line
def main(argv=None):
    """``python -m extract.judge``: calibrate a judge model and print AUC and Spearman."""
    p = argparse.ArgumentParser(prog="python -m extract.judge", description=main.__doc__)
    p.add_argument("--model", default=None, help="model folder or .gguf file (default: SmolLM2-135M-Instruct)")
    p.add_argument("--scale", type=int, default=10, help="answers 0..SCALE, mapped to 0-100 (default 10)")
    p.add_argument("--batch", type=int, default=16, help="prompts per forward pass (default 16)")
    p.add_argument("--threshold", type=float, default=CALIBRATION_THRESHOLD,
                   help=f"AUC needed to pass (default {CALIBRATION_THRESHOLD})")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--per-text", action="store_true", help="also print each text's rating")
    args = p.parse_args(argv)
    from .model import load_model

    torch.set_num_threads(max(1, args.threads))
    try:
        model, tok, desc = load_model(args.model)
        judge = Judge(model, tok, scale=args.scale, batch_size=args.batch)
    except (OSError, ValueError) as exc:
        print(f"python -m extract.judge: error: {exc}", file=sys.stderr)
        return 2
    res = calibrate(judge, threshold=args.threshold)
    if args.per_text:
        for t, y, r, m in zip(res["texts"], res["labels"], res["ratings"], res["mass"]):
            print(f"{y} {r:6.2f} mass {m:.3f}  {t[:70]}")
    print(f"judge {desc}, scale 0-{args.scale}: AUC {res['auc']:.3f}, Spearman {res['spearman']:+.3f} "
          f"(p = {res['spearman_p']:.3g}), mean mass {np.mean(res['mass']):.3f}, "
          f"{'passed' if res['passed'] else 'failed'} (threshold {args.threshold})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
