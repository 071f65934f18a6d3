"""Affect profiles for agents: per emotion, bounded decay parameters fitted from a study.

The *Emotional State Persistence* pattern keeps an agent's emotions as scalars
in [0, 1] that decay with fixed half-lives. :func:`affect_profile` measures
those half-lives on a model's own activations: for each emotion probe it fits
one or two exponentials plus a tail (:func:`emostats.fit_decay`) to the lag
profile r(L), L = 1..max_lag, with bootstrap intervals over conversations, and
states every value with its bounds in the returned (JSON-ready) dict.
"""

import math
import warnings

import numpy as np

from ._version import __version__
from .errors import EmostatsError

__all__ = ["affect_profile", "SCHEMA"]

SCHEMA = "emostats.affect_profile/1"

_DESCRIPTION = (
    "Per-emotion decay parameters for an agent that keeps each emotion as a bounded scalar s in [0, 1] "
    "(the Emotional State Persistence pattern). Measured on the language model's own activations: for each "
    "emotion probe, the lag correlation r(L) between the probe's activation at token t and at t + L (same "
    "conversation turn), L = 1..window_tokens, was fitted with a + b*2^(-L/h_fast) + c*2^(-L/h_slow) (or one "
    "exponential, by AIC). For a linear Gaussian process E[z(t+L) | z(t)] = r(L) z(t), so r(L) is the "
    "fraction of an excursion that is still present L tokens later. The weights are the fit's amplitudes "
    "divided by its value at L = 0, so weight_fast + weight_slow + tail_level = 1. "
    "Suggested update rule, with t in tokens since the event that set s to s0: "
    "s(t) = baseline + (s0 - baseline) * (weight_fast*2^(-t/half_life_fast_tokens) + "
    "weight_slow*2^(-t/half_life_slow_tokens) + tail_level*2^(-t/tail_half_life_tokens)), clipped to [0, 1]. "
    "The tail did not decay measurably within window_tokens; tail_half_life_tokens is the largest half-life "
    "the fit allowed (an assumption, not a measurement), so that every part of the state decays as the pattern "
    "requires. Convert tokens to wall-clock time with your agent's token rate. Bound event deltas and leave "
    "major resets to reflection passes, as the pattern says; these numbers only set how fast state fades."
)


def _fields(hl_lo, hl_hi):
    return {
        "n_components": {"description": "exponentials in the chosen fit (1 or 2; by AIC)", "min": 1, "max": 2},
        "half_life_fast_tokens": {"description": "half-life of the fast component (tokens)",
                                  "min": hl_lo, "max": hl_hi},
        "half_life_fast_tokens_ci": {"description": "bootstrap interval over conversations of half_life_fast_tokens "
                                                    "(null entries: no bootstrap)", "min": hl_lo, "max": hl_hi},
        "half_life_slow_tokens": {"description": "half-life of the slow component (tokens); equals the fast one "
                                                 "when n_components is 1", "min": hl_lo, "max": hl_hi},
        "half_life_slow_tokens_ci": {"description": "bootstrap interval of half_life_slow_tokens",
                                     "min": hl_lo, "max": hl_hi},
        "weight_fast": {"description": "share of an excursion that decays with the fast half-life", "min": 0.0,
                        "max": 1.0},
        "weight_slow": {"description": "share that decays with the slow half-life (0 for one component)",
                        "min": 0.0, "max": 1.0},
        "tail_level": {"description": "share still present at the end of the window (negative fitted tails are "
                                      "clipped to 0); weight_fast + weight_slow + tail_level = 1",
                       "min": 0.0, "max": 1.0},
        "tail_half_life_tokens": {"description": "half-life to use for the tail share (assumed: the fit's upper "
                                                 "bound)", "min": hl_lo, "max": hl_hi},
        "baseline": {"description": "resting value of s: the mean over all tokens of clip(z / saturation_z, 0, 1), "
                                    "z = the probe's activation standardised over all tokens", "min": 0.0,
                     "max": 1.0},
        "persistence_at_lag": {"description": "lag correlation r at lag_tokens (the paper's metric)", "min": -1.0,
                               "max": 1.0},
        "fit_ok": {"description": "false when no decay could be fitted (constant probe, too few pairs); the values "
                                  "are then the neutral fallback: weight_fast 1 at the shortest half-life, "
                                  "baseline 0"},
    }


def _round(v, digits=6):
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.{digits}g}")


def _baseline(act, mean, sd, saturation_z, block=1 << 16):
    """Mean over tokens of clip(z / saturation_z, 0, 1) per probe, in blocks of tokens (NumPy or dask)."""
    total = np.zeros(mean.shape)
    count = np.zeros(mean.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(sd > 0, 1.0 / (sd * saturation_z), np.nan)
    for a in range(0, act.sizes["token"], block):
        x = np.asarray(act.isel(token=slice(a, a + block)).values, dtype=np.float64)
        x = x if x.ndim == 2 else x[:, None]
        s = np.clip((x - mean) * scale, 0.0, 1.0)
        ok = np.isfinite(s)
        total += np.where(ok, s, 0.0).sum(axis=0)
        count += ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def affect_profile(probe_act, *, lag=100, max_lag=200, n_boot=100, seed=0, ci=0.95, saturation_z=4.0,
                   threads=None, progress=None, source=None):
    """Per-emotion half-lives, weights, tail and baseline for an agent's bounded decaying emotion scalars.

    Parameters
    ----------
    probe_act : xarray.DataArray (token, probe)
        ``study["tokens"]["probe_act"]`` (NumPy or dask backed).
    lag : int
        Lag of the reported ``persistence_at_lag`` (default 100).
    max_lag : int
        Window of the fit: r(L) for L = 1..max_lag (default 200).
    n_boot, seed, ci : int, int, float
        Bootstrap over conversations (0 = no intervals) and its seed.
    saturation_z : float
        z at which the scalar reaches 1 (default 4, the top bin of Figure 2).
    threads : int, optional
    progress : callable, optional
        ``progress(done, total)`` during the bootstrap.
    source : dict, optional
        Provenance to record (e.g. study path and sha256).

    Returns
    -------
    dict
        JSON-ready: ``schema``, ``description``, ``fields`` (meaning and bounds of
        every per-emotion value), ``parameters``, ``source``, ``emotions`` (name ->
        values). Every number lies within the bounds stated in ``fields``.

    Examples
    --------
    >>> import emostats as es
    >>> study = es.open_study(es.example_study())
    >>> act = study["tokens"]["probe_act"]
    >>> prof = affect_profile(act, max_lag=50, n_boot=0)
    >>> e = prof["emotions"][str(act.probe.values[0])]
    >>> 0 <= e["weight_fast"] <= 1 and 0 <= e["baseline"] <= 1
    True
    >>> study.close()  # release the file handle now rather than at garbage collection
    """
    from . import persistence
    from .decay import fit_decay

    if not saturation_z > 0:
        raise EmostatsError(f"affect_profile: saturation_z must be > 0, got {saturation_z}")
    if max_lag < 4:
        raise EmostatsError(f"affect_profile: max_lag must be >= 4 to fit a decay, got {max_lag}")
    act, series, offsets = persistence._series_input(probe_act, "affect_profile")
    if series is None:
        raise EmostatsError("affect_profile: expected a (token, probe) DataArray with one probe per emotion")
    names = [str(n) for n in (act[series].values if series in act.coords else range(act.sizes[series]))]
    hl_lo, hl_hi = 0.1, 10.0 * max_lag
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant probes are reported as fit_ok = false
        prof = persistence.lag_profile(act, max_lag=max(max_lag, lag), threads=threads)
        fit_prof = prof.isel(lag=slice(0, max_lag + 1))
        fit_prof.attrs["max_lag"] = max_lag
        fit = fit_decay(fit_prof, min_tau=1, half_life_bounds=(hl_lo, hl_hi), probe_act=act if n_boot else None,
                        n_boot=n_boot, seed=seed, ci=ci, threads=threads, progress=progress)
        mean, sd = persistence._standardisation(act, offsets, threads=threads)
    base = _baseline(act, mean, sd, saturation_z)
    r_lag = prof.r.sel(lag=lag).values
    emotions = {}
    for i, name in enumerate(names):
        k = int(fit.n_components.values[i])
        amp = fit.amplitude.values[i]
        hl = fit.half_life.values[i]
        tail = float(fit.tail_level.values[i])
        # a component without a half-life (flat curve: fitted amplitude ~0) carries no weight
        b = float(amp[0]) if k >= 1 and math.isfinite(hl[0]) else 0.0
        c = float(amp[1]) if k == 2 and math.isfinite(hl[1]) else 0.0
        a = max(tail, 0.0) if k else 0.0
        total = a + b + c
        ok = k > 0 and total > 0 and math.isfinite(total) and math.isfinite(base[i])
        if ok:
            w_fast, w_slow, w_tail = b / total, c / total, a / total
            h_fast = float(hl[0]) if b > 0 else hl_hi  # weight 0: any half-life; the bound keeps it a number
            h_slow = float(hl[1]) if k == 2 and c > 0 else h_fast
        else:
            w_fast, w_slow, w_tail, h_fast, h_slow, k = 1.0, 0.0, 0.0, hl_lo, hl_lo, 1

        def interval(comp):
            if "half_life_ci" not in fit or not ok:
                return [None, None]
            v = fit.half_life_ci.values[i, comp]
            if comp == 1 and k == 1:
                v = fit.half_life_ci.values[i, 0]
            return [_round(float(np.clip(x, hl_lo, hl_hi))) if np.isfinite(x) else None for x in v]

        emotions[name] = {
            "fit_ok": bool(ok),
            "n_components": int(k),
            "half_life_fast_tokens": _round(float(np.clip(h_fast, hl_lo, hl_hi))),
            "half_life_fast_tokens_ci": interval(0),
            "half_life_slow_tokens": _round(float(np.clip(h_slow, hl_lo, hl_hi))),
            "half_life_slow_tokens_ci": interval(1),
            "weight_fast": _round(w_fast),
            "weight_slow": _round(w_slow),
            "tail_level": _round(w_tail),
            "tail_half_life_tokens": _round(hl_hi),
            "baseline": _round(float(np.clip(base[i], 0.0, 1.0))) if ok else 0.0,
            "persistence_at_lag": _round(float(np.clip(r_lag[i], -1.0, 1.0))) if np.isfinite(r_lag[i]) else 0.0,
        }
    good = [e for e in emotions.values() if e["fit_ok"]]

    def median(key):
        vals = [e[key] for e in good if e[key] is not None]
        return _round(float(np.median(vals))) if vals else None

    return {
        "schema": SCHEMA,
        "description": _DESCRIPTION,
        "fields": _fields(hl_lo, hl_hi),
        "units": {"half_life": "tokens", "time": "tokens of the model's own output"},
        "parameters": {"lag_tokens": int(lag), "window_tokens": int(max_lag), "fit_from_lag": 1,
                       "half_life_bounds_tokens": [hl_lo, hl_hi], "n_boot": int(n_boot), "seed": int(seed),
                       "ci": float(ci), "saturation_z": float(saturation_z), "model_selection": "AIC"},
        "source": {"emostats_version": __version__, "n_tokens": int(act.sizes["token"]),
                   "n_segments": int(offsets.shape[0] - 1), **(source or {})},
        "summary": {"n_emotions": len(emotions), "n_fit_ok": len(good),
                    "median_half_life_fast_tokens": median("half_life_fast_tokens"),
                    "median_half_life_slow_tokens": median("half_life_slow_tokens"),
                    "median_tail_level": median("tail_level"), "median_baseline": median("baseline")},
        "emotions": emotions,
    }
