"""Planted steering experiment: elevated, suppressed and null emotions with exponential decay."""

import numpy as np

from ._design import rng_for
from ._tokens import simulate_tokens

#: share of steered emotions planted as elevated, suppressed (the rest null), as in the paper at offset 5
KIND_SHARES = {"elevated": 0.62, "suppressed": 0.14}


def make_steering(hidden, probe_names, n_emotions, n_samples, n_baseline, n_offsets, seed, threads=None,
                  dtype=np.float32):
    """Steered and baseline probe activations plus the planted truth.

    Each sample is a fresh segment of ``n_offsets`` tokens of the same latent
    process as ``/tokens``. A steered sample of emotion ``e`` (probe ``i``) adds
    ``amplitude_e * sd_i * exp(-offset / tau_e)`` to probe ``i`` only, where
    ``sd_i`` is the population sd of probe ``i``; all other probes are untouched.
    """
    rng = rng_for(seed, "steer")
    p = hidden.n_probes
    n_emotions = int(n_emotions)
    chosen = np.sort(rng.choice(p, size=n_emotions, replace=False))
    n_el = int(round(KIND_SHARES["elevated"] * n_emotions))
    n_su = int(round(KIND_SHARES["suppressed"] * n_emotions))
    if n_emotions >= 3:
        n_el, n_su = max(1, n_el), max(1, n_su)
        n_el = min(n_el, n_emotions - n_su - 1)
    kinds = np.array(["elevated"] * n_el + ["suppressed"] * n_su + ["null"] * (n_emotions - n_el - n_su))
    kinds = kinds[rng.permutation(n_emotions)]
    size = rng.uniform(1.5, 4.0, size=n_emotions)
    amplitude = np.where(kinds == "elevated", size, np.where(kinds == "suppressed", -size, 0.0))
    tau = 10.0 ** rng.uniform(np.log10(3.0), np.log10(60.0), size=n_emotions)
    var, _, _ = hidden.latent_weights(hidden.vectors)
    sd = np.sqrt(var)
    offsets_axis = np.arange(n_offsets)
    shift = amplitude[:, None] * sd[chosen][:, None] * np.exp(-offsets_axis[None, :] / tau[:, None])

    # baseline samples first, then the steered samples of each emotion: one segment each
    n_seg = n_baseline + n_emotions * n_samples
    offsets = np.arange(n_seg + 1, dtype=np.int64) * n_offsets
    act, _, _ = simulate_tokens(hidden, offsets, seed, (), False, dtype=dtype, threads=threads, part="steer_latent")
    act = act.reshape(n_seg, n_offsets, p)
    baseline = act[:n_baseline]
    steered = act[n_baseline:].reshape(n_emotions, n_samples, n_offsets, p)
    for e in range(n_emotions):
        steered[e, :, :, chosen[e]] += shift[e][None, :].astype(dtype)
    names = np.asarray(probe_names)
    truth = {"emotion": names[chosen], "kind": kinds, "amplitude": amplitude, "tau": tau,
             "shift": shift, "probe_sd": sd[chosen]}
    return steered, baseline, truth
