"""Steering pulses on probe directions, and unsteered baselines (Figure 6 of the study).

Pulse positions (tested in ``tests/test_extract.py``): the prompt ends with the
chat template's header of a new model turn; the model then samples the first
``pulse`` tokens of its turn, and while each of these is fed back (steps
1..pulse of :func:`extract.generate.generate`), ``alpha * v`` is added to the
output of the *injection* block at that token's position only (``v`` = the
unit probe direction). The prompt positions are never steered. Then steering
is switched off and the model writes ``n_after`` more tokens, attending to the
kept keys and values of the steered tokens. The activations are read at the
*read* block (the study's layer); offset 0 is the first token after the pulse
(the ``pulse + 1``-th token of the turn); its activation is read when it is fed.

Injection upstream of the read block: when the pulse is added at the read block
itself, that block's own keys and values at the pulse positions are computed
before the addition, so the pulse reaches later tokens of the read layer only
through the blocks above it and the sampled text. Added a few blocks earlier,
every block from the injection block on attends to steered states (the default
injection block is a fifth of the depth below the read block).

Strength: ``alpha = strength * median token norm of the injection block``, the
median over every generated token (pulse and after) of the baseline rows, which
run first; a strength of 1 adds a vector as long as a typical token's state.

Balanced prompts: steered sample ``s`` of every emotion and baseline sample ``s``
use prompt ``s mod n_prompts``; ``n_samples`` and ``n_baseline`` must be multiples
of ``n_prompts``, so every prompt appears equally often among the steered rows of
each emotion and among the baselines.

Baselines run the same prompts, the same number of tokens and no pulse.
End-of-turn tokens are blocked so every row has ``pulse + n_after`` tokens.
Each row's text quality is measured by its n-gram repeat share
(:func:`emostats.repetition.ngram_repeat_share` over the row's generated tokens):
too strong a pulse makes a small model repeat itself ("he he he ...").
"""

import numpy as np

from emostats import defaults as D
from emostats.repetition import ngram_repeat_share

__all__ = ["STEER_PROMPTS", "run_steering", "prompt_plan", "repeat_shares"]

STEER_PROMPTS = (
    "Tell me about your day.",
    "What do you think about the ocean?",
    "Describe the city you would like to live in.",
    "How should I spend a free afternoon?",
    "Write a few sentences about autumn.",
    "What is it like to learn a new language?",
    "Tell me about a meal you would like to cook.",
    "What happens at a train station in the morning?",
)


def prompt_plan(n_samples, n_baseline, n_prompts):
    """Prompt index of steered sample ``s`` (any emotion) and of baseline sample ``b``.

    Both use ``index mod n_prompts``; counts that are not multiples of ``n_prompts``
    would weight the prompts differently in the two arms and are refused.

    Examples
    --------
    >>> s, b = prompt_plan(4, 8, 2)
    >>> s.tolist(), b.tolist()
    ([0, 1, 0, 1], [0, 1, 0, 1, 0, 1, 0, 1])
    """
    n_prompts = int(n_prompts)
    if not 1 <= n_prompts <= len(STEER_PROMPTS):
        raise ValueError(f"steer_prompts must be 1..{len(STEER_PROMPTS)}, got {n_prompts}")
    for name, n in (("steer_samples", n_samples), ("steer_baselines", n_baseline)):
        if n < 1 or n % n_prompts:
            raise ValueError(f"{name} = {n} is not a positive multiple of steer_prompts = {n_prompts}: "
                             f"steered and baseline rows would not use the prompts equally often")
    return np.arange(n_samples) % n_prompts, np.arange(n_baseline) % n_prompts


def repeat_shares(rows, n=D.LOOP_NGRAM):
    """n-gram repeat share of each token-id row (NaN for a row shorter than ``n``)."""
    lengths = [len(r) for r in rows]
    ids = np.array([t for r in rows for t in r], dtype=np.int64)
    return ngram_repeat_share(ids, np.r_[0, np.cumsum(lengths)].astype(np.int64), n=n)


def _run_rows(model, tok, hook, inject_hook, prompts, vectors, *, pulse, n_after, seed, batch_size,
              temperature, top_p, progress=None, label="rows"):
    """Generate ``len(vectors)`` rows (prompt ids, steering vector or None); hidden after the pulse."""
    import torch

    from .generate import generate
    vocab = tok.get_vocab()
    stop_like = sorted({vocab.get("<|im_end|>", tok.eos_token_id), tok.eos_token_id,
                        vocab.get("<|im_start|>", tok.eos_token_id)})
    hidden = None
    ids = []
    for b0 in range(0, len(prompts), batch_size):
        chunk = slice(b0, b0 + batch_size)
        vec = vectors[chunk]
        steer = None if all(v is None for v in vec) else torch.stack(
            [torch.zeros(hook_width(model)) if v is None else v for v in vec])
        res = generate(model, prompts[chunk], pulse + n_after, seed=seed + b0, pad_id=tok.pad_token_id,
                       forbid_ids=stop_like, temperature=temperature, top_p=top_p, hook=hook, record=True,
                       steer=steer, pulse=pulse, steer_hook=inject_hook)
        after = res["hidden"][:, pulse:pulse + n_after].numpy()
        if hidden is None:
            hidden = np.zeros((len(prompts), n_after, after.shape[-1]), dtype=np.float32)
        hidden[b0:b0 + after.shape[0]] = after
        ids.extend(res["tokens"])
        if progress:
            progress(f"steering {label} {min(b0 + batch_size, len(prompts))}/{len(prompts)}")
    return hidden, ids


def hook_width(model):
    """Hidden size of the model's residual stream."""
    return int(model.config.hidden_size)


def run_steering(model, tok, hook, directions, emotions, *, n_samples, n_baseline, pulse, n_after,
                 strength, seed, inject_hook=None, n_prompts=8, batch_size=64,
                 temperature=0.8, top_p=0.95, sweep=(), sweep_emotions=(), sweep_samples=0, sweep_after=0,
                 progress=None):
    """Baseline and steered continuations, returning the read block's activations after the pulse.

    Parameters
    ----------
    hook : extract.model.LayerHook
        The read block (recorded).
    directions : (n_emotions, hidden) array
        Unit steering directions, one per steered emotion.
    emotions : list of str
        Names of the steered emotions (rows of ``directions``).
    strength : float
        ``alpha = strength * median token norm of the injection block`` (over the baseline rows).
    inject_hook : extract.model.LayerHook, optional
        The block whose output receives the pulse (default: ``hook``).
    n_prompts : int
        The first ``n_prompts`` of :data:`STEER_PROMPTS` (see :func:`prompt_plan`).
    sweep : sequence of float
        Extra strengths tried on the emotions ``sweep_emotions`` (row indices of
        ``directions``) with ``sweep_samples`` samples and ``sweep_after`` tokens.

    Returns
    -------
    dict
        ``steered`` (emotion, sample, offset, hidden) float32, ``baseline``
        (baseline_sample, offset, hidden) float32, ``prompts``, ``steered_prompt``
        (emotion, sample) and ``baseline_prompt`` indices, ``steered_repeat_share``
        (emotion, sample) and ``baseline_repeat_share``, ``steered_text`` and
        ``baseline_text``, ``steered_ids`` (rows in emotion-major order) and
        ``baseline_ids`` (the generated token ids), ``alpha``, ``inject_median_norm``, ``read_median_norm``
        and, with a sweep, ``sweep_steered`` (strength, emotion, sample, offset,
        hidden), ``sweep_alpha``, ``sweep_repeat_share`` (strength, emotion, sample).

    Examples
    --------
    >>> res = run_steering(model, tok, hook, unit[:2], ["calm", "angry"], n_samples=8, n_baseline=8,
    ...                    pulse=5, n_after=200, strength=1.0, seed=0, inject_hook=hook14)  # doctest: +SKIP
    """
    import torch  # here, so that prompt_plan (checked by the CLI first) needs no torch

    inject_hook = inject_hook if inject_hook is not None else hook
    directions = torch.as_tensor(np.asarray(directions), dtype=torch.float32)
    s_prompt, b_prompt = prompt_plan(n_samples, n_baseline, n_prompts)
    prompts = [list(tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                            tokenize=True, return_dict=False)) for p in STEER_PROMPTS[:n_prompts]]
    kw = dict(pulse=pulse, batch_size=batch_size, temperature=temperature, top_p=top_p, progress=progress)
    inject_hook.norms, inject_hook.track_norms = [], True
    try:
        baseline, b_ids = _run_rows(model, tok, hook, inject_hook, [prompts[p] for p in b_prompt],
                                    [None] * n_baseline, n_after=n_after, seed=seed * 104729, label="baselines",
                                    **kw)
        norms = torch.cat([n.reshape(-1) for n in inject_hook.norms if n.shape[1] == 1])
    finally:
        inject_hook.norms, inject_hook.track_norms = [], False
    inject_median = float(norms.median())
    read_median = float(np.median(np.linalg.norm(baseline, axis=-1)))
    alpha = float(strength) * inject_median
    n_e = len(emotions)
    rows = [(e, s) for e in range(n_e) for s in range(n_samples)]
    steered, s_ids = _run_rows(model, tok, hook, inject_hook, [prompts[s_prompt[s]] for _, s in rows],
                               [alpha * directions[e] for e, _ in rows], n_after=n_after,
                               seed=seed * 104729 + 7_000_003, label="steered", **kw)
    decode = lambda r: tok.decode(r, skip_special_tokens=True)  # noqa: E731
    out = {"steered": steered.reshape(n_e, n_samples, n_after, -1), "baseline": baseline,
           "prompts": list(STEER_PROMPTS[:n_prompts]),
           "steered_prompt": np.broadcast_to(s_prompt, (n_e, n_samples)).astype(np.int64),
           "baseline_prompt": b_prompt.astype(np.int64),
           "steered_repeat_share": repeat_shares(s_ids).reshape(n_e, n_samples),
           "baseline_repeat_share": repeat_shares(b_ids),
           "steered_text": np.array([decode(r) for r in s_ids], dtype=object).reshape(n_e, n_samples),
           "baseline_text": np.array([decode(r) for r in b_ids], dtype=object),
           "steered_ids": s_ids, "baseline_ids": b_ids,
           "alpha": alpha, "inject_median_norm": inject_median, "read_median_norm": read_median}
    sweep = [float(x) for x in sweep]
    sweep_emotions = [int(e) for e in sweep_emotions]
    if sweep and sweep_emotions and sweep_samples:
        sw_prompt, _ = prompt_plan(sweep_samples, n_prompts, n_prompts)
        after = int(sweep_after) or n_after
        rows = [(k, e, s) for k in range(len(sweep)) for e in sweep_emotions for s in range(sweep_samples)]
        act, sw_ids = _run_rows(model, tok, hook, inject_hook, [prompts[sw_prompt[s]] for *_, s in rows],
                                [sweep[k] * inject_median * directions[e] for k, e, _ in rows], n_after=after,
                                seed=seed * 104729 + 9_000_011, label="strength sweep", **kw)
        shape = (len(sweep), len(sweep_emotions), sweep_samples)
        out.update(sweep_steered=act.reshape(*shape, after, -1), sweep_strength=np.array(sweep),
                   sweep_alpha=np.array(sweep) * inject_median, sweep_emotions=np.array(sweep_emotions),
                   sweep_repeat_share=repeat_shares(sw_ids).reshape(shape))
    return out


def sweep_summary(res, unit, names, pick, alpha=D.ALPHA, offset=D.STEERING_OFFSETS[0]):
    """One record per swept strength: the steering test of the swept emotions against the baselines.

    The z of :func:`emostats.steering.steering_effect` (the steered emotion's contrast,
    steered vs baseline rows) is averaged over the swept emotions at offsets 0-4 and at
    the last 10 offsets; ``n_significant`` counts the emotions with BH q <= ``alpha``
    and z > 0 at ``offset`` (when the sweep reaches it); the repeat shares say whether
    the text collapsed.

    Parameters
    ----------
    res : dict
        :func:`run_steering`'s result with a sweep.
    unit : (probe, hidden) array
        All unit probe vectors (the contrast uses every probe).
    names : list of str
        Probe names.
    pick : array of int
        Probe index of each steered emotion (row of ``res["steered"]``).

    Returns
    -------
    list of dict
    """
    import xarray as xr

    from emostats.steering import steering_effect
    unit = np.asarray(unit, dtype=np.float64)
    after = res["sweep_steered"].shape[3]
    base = res["baseline"][:, :after].astype(np.float64) @ unit.T
    emotions = [names[pick[e]] for e in res["sweep_emotions"]]
    out = []
    for k, strength in enumerate(res["sweep_strength"]):
        act = res["sweep_steered"][k].astype(np.float64) @ unit.T
        ds = xr.Dataset({"steered_act": (("emotion", "sample", "offset", "probe"), act),
                         "baseline_act": (("baseline_sample", "offset", "probe"), base)},
                        coords={"emotion": emotions, "probe": list(names), "offset": np.arange(after)})
        eff = steering_effect(ds, alpha=alpha)
        z = eff["z"].values
        share = res["sweep_repeat_share"][k]
        rec = {"strength": float(strength), "alpha": float(res["sweep_alpha"][k]), "emotions": emotions,
               "samples": int(act.shape[1]), "offsets": int(after),
               "mean_z_offsets_0_4": float(np.nanmean(z[:, :5])),
               "mean_z_last_10_offsets": float(np.nanmean(z[:, -10:])),
               "median_repeat_share": float(np.nanmedian(share)),
               "share_rows_looping": float(np.mean(np.nan_to_num(share) > D.LOOP_THRESHOLD))}
        if after > offset:
            sig = eff["significant"].values[:, offset] & (z[:, offset] > 0)
            rec[f"n_significant_offset_{offset}"] = int(sig.sum())
        out.append(rec)
    return out
