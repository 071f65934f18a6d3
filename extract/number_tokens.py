"""Which vocabulary tokens spell numbers, and every way the pure-digit tokens spell a given number.

A judge's rating (:class:`extract.judge.Judge`) is the probability that its answer is
exactly a number ``r``: a product over the digit tokens that spell ``r``, summed over
every way they can (tokenizers with multi-digit tokens spell ``"10"`` as ``"1", "0"`` or
as ``"10"``), times the probability that the next token ends the number. This module
sorts the vocabulary for that: :class:`NumberTokens`.
"""

import re

import numpy as np
import torch

__all__ = ["NumberTokens", "token_texts"]

_TEXTS = {}


def token_texts(tok):
    """The text each vocabulary id adds when it follows another token (so leading spaces survive)."""
    key = (id(tok), len(tok))
    if key not in _TEXTS:
        _TEXTS[key] = _decode_each(tok)
    return _TEXTS[key]


def _decode_each(tok):
    anchor = tok.encode("a", add_special_tokens=False)[:1]
    base = tok.decode(anchor)
    n = len(tok)
    texts = tok.batch_decode([anchor + [i] for i in range(n)], skip_special_tokens=False,
                             clean_up_tokenization_spaces=False)
    return [t[len(base):] if t.startswith(base) else t for t in texts]


def _lead_digits(text):
    m = re.match(r"[0-9]*", text)
    return m.group(0)


class NumberTokens:
    """Which tokens spell digits: ``pure`` (text all digits), ``mixed`` (digits then other text) and
    ``stop`` (text not starting with a digit: the number ends before it)."""

    def __init__(self, tok):
        texts = token_texts(tok)
        self.pure = {}   # digit string -> list of ids
        self.mixed = {}  # leading digit string -> list of ids (the number ends inside the token)
        stop = np.ones(len(texts), dtype=bool)
        for i, t in enumerate(texts):
            lead = _lead_digits(t)
            if not lead:
                continue
            stop[i] = False
            (self.pure if lead == t else self.mixed).setdefault(lead, []).append(i)
        self.stop = torch.as_tensor(stop)
        self.pure_ids = sorted(i for ids in self.pure.values() for i in ids)
        self.mixed_ids = sorted(i for ids in self.mixed.values() for i in ids)
        self.text = {i: texts[i] for i in self.pure_ids + self.mixed_ids}

    def segmentations(self, s):
        """Every sequence of pure-digit token ids whose texts concatenate to ``s``."""
        if not s:
            return [[]]
        out = []
        for k in range(1, len(s) + 1):
            for i in self.pure.get(s[:k], ()):
                out.extend([i] + rest for rest in self.segmentations(s[k:]))
        return out

