"""Planted SAE features: firing chains, the /features table and /evaluations."""

from dataclasses import dataclass

import numpy as np

from .._kernels import synth as _k
from ._design import STREAM, rng_for

#: decoders are stored when n_features * hidden is at most this (200 MB as float32)
DECODER_MAX_ELEMENTS = 50_000_000
#: features per block of decoder random numbers
DECODER_BLOCK = 1024
#: planted coefficients (see the synth module docstring)
PERSIST = {"b0": -1.0, "b_ve": 0.8, "b_sf": 0.6, "b_emo": 0.5, "noise": 0.5, "p_max": 0.8}
SELF = {"emo": 0.3, "sf": 0.5, "ve": -0.5, "noise": 0.7}
TEXT = {"emo": -0.5, "sf": 0.3, "ve": 0.0, "noise": 0.8}
ZIPF = {"exponent": 1.0, "shift": 10.0, "cap": 0.5}


def _z(x):
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class SaeDesign:
    pi: np.ndarray            # stationary firing probability
    alpha: np.ndarray         # P(off -> on)
    beta: np.ndarray          # P(on -> off)
    value_scale: np.ndarray   # activation values are value_scale * U(0.5, 1.5)
    variance_explained: np.ndarray
    subspace_fraction: np.ndarray
    emotionality: np.ndarray  # latent e_f
    persistence: np.ndarray   # planted (1 - alpha - beta) ** lag
    lag: int
    rated: np.ndarray         # sorted ids of rated features
    self_rating: np.ndarray   # (n_features,) NaN = unrated
    text_rating: np.ndarray


def _rates(n_features, k, rng):
    """Zipf-like stationary firing probabilities summing to k / 2 (capped at ZIPF['cap'])."""
    rank = rng.permutation(n_features)
    raw = (rank + ZIPF["shift"]) ** -ZIPF["exponent"]
    target = min(k / 2.0, 0.9 * ZIPF["cap"] * n_features)
    lo, hi = 0.0, target / raw.min() + 1.0
    for _ in range(200):
        c = 0.5 * (lo + hi)
        if np.minimum(c * raw, ZIPF["cap"]).sum() < target:
            lo = c
        else:
            hi = c
    return np.minimum(0.5 * (lo + hi) * raw, ZIPF["cap"])


def make_sae_design(n_features, k, n_probes, hidden, n_rated, lag, seed):
    rng = rng_for(seed, "sae")
    F = int(n_features)
    pi = _rates(F, k, rng)
    value_scale = np.exp(0.5 * rng.standard_normal(F))
    log_ve = np.log(pi) + 2.0 * np.log(value_scale)
    ve = np.exp(log_ve - log_ve.max())
    ve *= 0.6 / ve.sum()
    base = n_probes / hidden
    sf = np.sqrt(_sigmoid(np.log(base / (1.0 - base)) + rng.standard_normal(F)))
    emo = rng.standard_normal(F)
    zv, zs = _z(np.log(ve)), _z(np.log(sf * sf / (1.0 - sf * sf)))
    logit = (PERSIST["b0"] + PERSIST["b_ve"] * zv + PERSIST["b_sf"] * zs + PERSIST["b_emo"] * emo
             + PERSIST["noise"] * rng.standard_normal(F))
    persistence = PERSIST["p_max"] * _sigmoid(logit)
    psi = persistence ** (1.0 / lag) if lag > 0 else np.zeros(F)
    alpha = pi * (1.0 - psi)
    beta = (1.0 - pi) * (1.0 - psi)
    rated = np.sort(np.argsort(-pi, kind="stable")[:int(n_rated)])
    ratings = {}
    for name, c in (("self", SELF), ("text", TEXT)):
        score = c["emo"] * emo + c["sf"] * zs + c["ve"] * zv + c["noise"] * rng.standard_normal(F)
        full = np.full(F, np.nan)
        full[rated] = np.round(100.0 * _sigmoid(score[rated]))
        ratings[name] = full
    return SaeDesign(pi=pi, alpha=alpha, beta=beta, value_scale=value_scale, variance_explained=ve,
                     subspace_fraction=sf, emotionality=emo, persistence=(1.0 - alpha - beta) ** lag,
                     lag=int(lag), rated=rated, self_rating=ratings["self"], text_rating=ratings["text"])


def fill_slots(design, offsets, k, seed):
    """sae_index (int32, -1 empty), sae_value (float32) and (n_fired, n_dropped)."""
    n = int(offsets[-1])
    index = np.full((n, k), -1, dtype=np.int32)
    value = np.zeros((n, k), dtype=np.float32)
    count = np.zeros(n, dtype=np.int32)
    order = rng_for(seed, "sae", 1).permutation(design.pi.size).astype(np.int64)
    key_seed = int(rng_for(seed, "sae", 2).integers(0, 2**62))
    fired, dropped = _k.markov_fill(offsets.astype(np.int64), order, design.pi, design.alpha, design.beta,
                                    design.value_scale, key_seed, index, value, count)
    return index, value, int(fired), int(dropped)


def decoder_directions(hidden, n_features, seed, ids=None):
    """Unit emotion-subspace directions of features in the probe coordinates (n, n_probes).

    a_f = gamma_f * e_{k_f} + N(0, I)/sqrt(p), gamma ~ U(0, 2), k_f uniform; normalised.
    Returns the directions of ``ids`` (all features when None) and their k_f.
    """
    p = hidden.n_probes
    ids = np.arange(n_features) if ids is None else np.asarray(ids)
    out = np.empty((ids.size, p))
    pref = np.empty(ids.size, dtype=np.int64)
    for b in np.unique(ids // DECODER_BLOCK):
        lo = b * DECODER_BLOCK
        nb = min(DECODER_BLOCK, n_features - lo)
        rng = rng_for(seed, "decoder_a", b)
        kf = rng.integers(0, p, size=nb)
        gamma = rng.uniform(0.0, 2.0, size=nb)
        a = rng.standard_normal((nb, p)) / np.sqrt(p)
        a[np.arange(nb), kf] += gamma
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        sel = np.flatnonzero(ids // DECODER_BLOCK == b)
        out[sel] = a[ids[sel] - lo]
        pref[sel] = kf[ids[sel] - lo]
    return out, pref


def decoders(hidden, design, seed):
    """Unit decoder vectors (n_features, hidden) float32 with the planted subspace fraction."""
    F = design.pi.size
    H = hidden.hidden
    p = hidden.n_probes
    Qe = hidden.basis[:, :p]
    a, _ = decoder_directions(hidden, F, seed)
    out = np.empty((F, H), dtype=np.float32)
    for b in range((F + DECODER_BLOCK - 1) // DECODER_BLOCK):
        lo = b * DECODER_BLOCK
        hi = min(F, lo + DECODER_BLOCK)
        g = rng_for(seed, "decoder_b", b).standard_normal((hi - lo, H))
        g -= (g @ Qe) @ Qe.T
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        sf = design.subspace_fraction[lo:hi, None]
        out[lo:hi] = sf * (a[lo:hi] @ Qe.T) + np.sqrt(1.0 - sf * sf) * g
    return out


def cosines(hidden, design, seed):
    """cosine(rated feature, probe) of the decoders with the probe vectors, exactly."""
    a, pref = decoder_directions(hidden, design.pi.size, seed, design.rated)
    unit = hidden.coef / np.linalg.norm(hidden.coef, axis=1, keepdims=True)
    return design.subspace_fraction[design.rated, None] * (a @ unit.T), pref


def mentions(cos, n_probes, seed):
    """Planted mentions: P(mention) = sigmoid(logit(base) + slope * z(cos)) per emotion.

    A random 35% of emotions (at least one) are *associated* (slope 1.5); the
    others have slope 0. Base rates are log-uniform in [0.5%, 12%].
    """
    rng = rng_for(seed, "evaluations")
    p = n_probes
    associated = np.zeros(p, dtype=bool)
    associated[rng.permutation(p)[:max(1, int(round(0.35 * p)))]] = True
    base = 10.0 ** rng.uniform(np.log10(0.005), np.log10(0.12), size=p)
    slope = np.where(associated, 1.5, 0.0)
    zc = np.apply_along_axis(_z, 0, cos)
    prob = _sigmoid(np.log(base / (1 - base))[None, :] + slope[None, :] * zc)
    hits = (rng.random(cos.shape) < prob).astype(np.int8)
    return hits, associated, base, slope


__all__ = ["SaeDesign", "make_sae_design", "fill_slots", "decoders", "cosines", "mentions",
           "DECODER_MAX_ELEMENTS", "STREAM"]
