"""Affect profiles: per emotion (and per emotion-space PC), decay parameters measured on a model's activations.

For each emotion probe :func:`affect_profile` fits one or two exponentials
plus a tail (:func:`emostats.fit_decay`) to the lag profile r(L), L = 1..max_lag,
with bootstrap intervals over conversations, and states every value with its
bounds. It says which half-lives are artefacts rather than measurements:
token-level noise (below ``noise_tokens``) and extrapolations (beyond the
fitted window, including those at the fit's upper bound), which
:func:`emostats.affect.calibrate` then replaces by the pattern's defaults. The
same fit is made on the scores of the leading principal components of the
standardised probes (``pcs``), the data-driven vocabulary. The typical level of
each scalar ``s = clip(z / saturation_z, 0, 1)`` on the study's tokens is
reported as quantiles and as the spread of its per-conversation mean.
"""

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from .. import defaults as _d
from .._version import __version__
from ..errors import ArgumentError, EmostatsError
from .calibration import PROFILE_SCHEMA

__all__ = ["affect_profile"]

#: bins of the per-token histogram of the scalar s in (0, 1] behind the level quantiles (resolution 1/LEVEL_BINS)
LEVEL_BINS = 1000
#: tokens per block when reading the activations (NumPy or dask)
BLOCK = 1 << 16

_DESCRIPTION = (
    "Per-emotion decay parameters for an agent that keeps each emotion as a bounded scalar s in [0, 1] "
    "(the Emotional State Persistence pattern), measured on the language model's own activations: for each "
    "emotion probe, the lag correlation r(L) between the probe's activation at token t and at t + L (same "
    "conversation turn), L = 1..window_tokens, was fitted with a + b*2^(-L/h_fast) + c*2^(-L/h_slow) (or one "
    "exponential, by AIC). For a linear Gaussian process E[z(t+L) | z(t)] = r(L) z(t), so r(L) is the fraction of "
    "an excursion still present L tokens later. The weights are the fit's amplitudes divided by its value at L = 0 "
    "(weight_fast + weight_slow + tail_level = 1; the tail did not decay within the window). Each half-life is "
    "flagged when it is not a measurement: *_noise when below noise_half_life_tokens (the fit starts at lag 1 in "
    "steps of one token), *_extrapolated when longer than the window, *_at_bound when at the fit's upper bound. "
    "emostats.affect.AffectState.from_profile turns the measured half-lives into seconds (seconds_per_token), "
    "replaces the flagged ones by the pattern's defaults (30 min fast, 4 h slow) and maps the emotions onto a small "
    "vocabulary (groups of emotions, or the principal components in 'pcs', fitted on their own scores). The scalar "
    "rests at 0; level_* describe s = clip(z / saturation_z, 0, 1) on the study's tokens, z the probe standardised "
    "over all tokens. Bound event deltas and leave major resets to reflection, as the pattern says."
)


def _fields(hl_lo, hl_hi):
    flag = "true when the half-life is {}; false when the component has no weight or the fit failed"
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
        **{f"half_life_{c}_{k}": {"description": flag.format(what)}
           for c in ("fast", "slow") for k, what in (
               ("noise", "below noise_half_life_tokens: token-level noise, not a decay an agent can use"),
               ("extrapolated", "longer than window_tokens: an extrapolation of the curve's shape"),
               ("at_bound", "at the fit's upper bound (the data do not limit it)"))},
        "level_q50": {"description": "median over the study's tokens of s = clip(z / saturation_z, 0, 1) "
                                     "(histogram resolution 0.001; null for a constant probe)", "min": 0.0, "max": 1.0},
        "level_q90": {"description": "90th percentile of s over the tokens", "min": 0.0, "max": 1.0},
        "level_q99": {"description": "99th percentile of s over the tokens", "min": 0.0, "max": 1.0},
        "level_between_conversation_sd": {"description": "sd (ddof=1) over conversations of each conversation's "
                                                         "mean s: how far the typical level moves between "
                                                         "conversations", "min": 0.0, "max": 1.0},
        "persistence_at_lag": {"description": "lag correlation r at lag_tokens (the paper's metric)", "min": -1.0,
                               "max": 1.0},
        "fit_ok": {"description": "false when no decay could be fitted (constant probe, too few pairs); the values "
                                  "are then the neutral fallback (weight_fast 1 at the shortest half-life) and "
                                  "calibration leaves the emotion out"},
    }


def _round(v, digits=6):
    if v is None or not math.isfinite(v):
        return None
    return float(f"{v:.{digits}g}")


def _token_pass(act, mean, sd, saturation_z, conv, want_cov):
    """One pass over blocks of tokens: histogram of s, per-conversation sums of s and (optionally) z'z."""
    P = mean.shape[0]
    B = LEVEL_BINS
    hist = np.zeros((P, B + 1), dtype=np.int64)
    _, conv_idx = np.unique(conv, return_inverse=True)
    G = int(conv_idx.max()) + 1 if conv_idx.size else 0
    csum, ccount = np.zeros((G, P)), np.zeros((G, P))
    zz, n = np.zeros((P, P)), 0
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(sd > 0, 1.0 / sd, np.nan)
    for a in range(0, act.sizes["token"], BLOCK):
        x = np.asarray(act.isel(token=slice(a, a + BLOCK)).values, dtype=np.float64)
        x = x if x.ndim == 2 else x[:, None]
        z = (x - mean) * inv
        ok = np.isfinite(z)
        s = np.clip(z / saturation_z, 0.0, 1.0)
        k = np.where(s > 0, np.clip(np.ceil(s * B), 1, B), 0).astype(np.int64)
        k = np.where(ok, k + np.arange(P) * (B + 1), P * (B + 1))
        hist += np.bincount(k.ravel(), minlength=P * (B + 1) + 1)[:-1].reshape(P, B + 1)
        g = conv_idx[a:a + BLOCK]
        np.add.at(csum, g, np.where(ok, s, 0.0))
        np.add.at(ccount, g, ok)
        if want_cov:
            z0 = np.where(ok, z, 0.0)
            zz += z0.T @ z0
            n += z0.shape[0]
    return hist, csum, ccount, (zz / n if n else zz)


def _quantile(hist, q):
    """Quantile q of s per row of the histogram (atom at 0 in column 0, (k-1)/B..k/B in column k)."""
    B = hist.shape[1] - 1
    out = np.full(hist.shape[0], np.nan)
    for i, h in enumerate(hist):
        total = h.sum()
        if total == 0:
            continue
        cum = np.cumsum(h)
        k = int(np.searchsorted(cum, q * total, side="left"))
        if k == 0:
            out[i] = 0.0
        else:
            below = cum[k - 1]
            out[i] = (k - 1 + (q * total - below) / h[k]) / B
    return out


def _levels(hist, csum, ccount):
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(ccount > 0, csum / ccount, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        between = np.nanstd(means, axis=0, ddof=1) if means.shape[0] > 1 else np.full(hist.shape[0], np.nan)
    return {"level_q50": _quantile(hist, 0.5), "level_q90": _quantile(hist, 0.9), "level_q99": _quantile(hist, 0.99),
            "level_between_conversation_sd": between}


def _entries(act, names, levels, *, lag, max_lag, n_boot, seed, ci, noise_tokens, threads, progress):
    """Per-series profile entries of a (token, series) DataArray (the emotions, or the PC scores)."""
    from .. import persistence
    from ..decay import fit_decay

    hl_lo, hl_hi = 0.1, 10.0 * max_lag
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant probes are reported as fit_ok = false
        prof = persistence.lag_profile(act, max_lag=max(max_lag, lag), threads=threads)
        fit_prof = prof.isel(lag=slice(0, max_lag + 1))
        fit_prof.attrs["max_lag"] = max_lag
        fit = fit_decay(fit_prof, min_tau=1, half_life_bounds=(hl_lo, hl_hi), probe_act=act if n_boot else None,
                        n_boot=n_boot, seed=seed, ci=ci, threads=threads, progress=progress)
    r_lag = prof.r.sel(lag=lag).values
    out = {}
    for i, name in enumerate(names):
        k = int(fit.n_components.values[i])
        amp, hl, tail = fit.amplitude.values[i], fit.half_life.values[i], float(fit.tail_level.values[i])
        # a component without a half-life (flat curve: fitted amplitude ~0) carries no weight
        b = float(amp[0]) if k >= 1 and math.isfinite(hl[0]) else 0.0
        c = float(amp[1]) if k == 2 and math.isfinite(hl[1]) else 0.0
        a = max(tail, 0.0) if k else 0.0
        total = a + b + c
        ok = k > 0 and total > 0 and math.isfinite(total)
        if ok:
            w_fast, w_slow, w_tail = b / total, c / total, a / total
            h_fast = float(hl[0]) if b > 0 else hl_hi  # weight 0: any half-life; the bound keeps it a number
            h_slow = float(hl[1]) if k == 2 and c > 0 else h_fast
        else:
            w_fast, w_slow, w_tail, h_fast, h_slow, k = 1.0, 0.0, 0.0, hl_lo, hl_lo, 1

        ci_rows = fit.half_life_ci.values[i] if "half_life_ci" in fit and ok else None
        intervals = [[None, None] if ci_rows is None else
                     [_round(float(np.clip(x, hl_lo, hl_hi))) if np.isfinite(x) else None
                      for x in ci_rows[0 if k == 1 else comp]] for comp in (0, 1)]
        flags = {}
        for which, h, w in (("fast", h_fast, w_fast), ("slow", h_slow, w_slow if k == 2 else 0.0)):
            real = ok and w > 0
            flags.update({f"half_life_{which}_noise": bool(real and h < noise_tokens),
                          f"half_life_{which}_extrapolated": bool(real and h > max_lag),
                          f"half_life_{which}_at_bound": bool(real and h >= hl_hi * (1 - 1e-6))})
        level = {key: (_round(float(np.clip(v[i], 0.0, 1.0))) if ok and np.isfinite(v[i]) else None)
                 for key, v in levels.items()}
        out[name] = {
            "fit_ok": bool(ok),
            "n_components": int(k),
            "half_life_fast_tokens": _round(float(np.clip(h_fast, hl_lo, hl_hi))),
            "half_life_fast_tokens_ci": intervals[0],
            "half_life_slow_tokens": _round(float(np.clip(h_slow, hl_lo, hl_hi))),
            "half_life_slow_tokens_ci": intervals[1],
            "weight_fast": _round(w_fast),
            "weight_slow": _round(w_slow),
            "tail_level": _round(w_tail),
            **flags,
            **level,
            "persistence_at_lag": _round(float(np.clip(r_lag[i], -1.0, 1.0))) if np.isfinite(r_lag[i]) else 0.0,
        }
    return out, (hl_lo, hl_hi)


def _pca(corr, n_pcs):
    """Leading eigenpairs of the probes' correlation matrix; each loading vector's largest entry positive."""
    w, v = np.linalg.eigh((corr + corr.T) / 2)
    order = np.argsort(-w, kind="stable")[:n_pcs]
    w_all = np.clip(w, 0.0, None)
    w, v = w[order], v[:, order]
    pivot = np.argmax(np.abs(v), axis=0)
    v = v * np.where(v[pivot, np.arange(v.shape[1])] < 0, -1.0, 1.0)
    return w, v, w_all.sum()


def affect_profile(probe_act: xr.DataArray, *, lag: int = _d.LAG, max_lag: int = _d.MAX_LAG,
                   n_boot: int = _d.AFFECT_N_BOOT, seed: int = _d.SEED, ci: float = _d.CI,
                   saturation_z: float = _d.SATURATION_Z, noise_tokens: float = _d.AFFECT_NOISE_TOKENS,
                   n_pcs: int = _d.AFFECT_N_PCS, threads: int | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-emotion (and per-PC) half-lives, weights, artefact flags and levels for an agent's affect state.

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
    noise_tokens : float
        Half-lives below this are flagged as token-level noise (default 2).
    n_pcs : int
        Leading principal components of the standardised probes (their
        correlation matrix; non-finite values count as the mean) to profile
        too, under ``pcs`` with their loadings (default 6; 0 = none).
    threads : int, optional
    progress : callable, optional
        ``progress(done, total)`` during the bootstrap.
    source : dict, optional
        Provenance to record (e.g. study path and sha256).

    Returns
    -------
    dict
        JSON-ready, schema ``emostats.affect_profile/2``
        (``emostats.affect.schema("profile")``): ``description``, ``fields``
        (meaning and bounds of every per-emotion value), ``units``,
        ``parameters``, ``source``, ``summary``, ``emotions`` (name -> values)
        and ``pcs`` (``pc1``.. -> the same values plus ``variance_ratio``,
        ``loadings`` and ``top_loadings``).

    Examples
    --------
    >>> import emostats as es
    >>> study = es.open_study(es.example_study())
    >>> prof = affect_profile(study["tokens"]["probe_act"], max_lag=50, n_boot=0, n_pcs=2)
    >>> e = prof["emotions"]["afraid"]
    >>> e["half_life_fast_noise"], 0 <= e["level_q90"] <= 1
    (True, True)
    >>> prof["pcs"]["pc1"]["top_loadings"][0][0]
    'sentimental'
    >>> study.close()  # release the file handle now rather than at garbage collection
    """
    from .. import persistence
    from .._checks import check_int

    if not (isinstance(saturation_z, (int, float)) and saturation_z > 0 and math.isfinite(saturation_z)):
        raise ArgumentError(f"affect_profile: saturation_z must be a finite number > 0, got {saturation_z}")
    if not (isinstance(noise_tokens, (int, float)) and noise_tokens >= 0 and math.isfinite(noise_tokens)):
        raise ArgumentError(f"affect_profile: noise_tokens must be a finite number >= 0, got {noise_tokens}")
    max_lag = check_int(max_lag, "max_lag", minimum=4)
    lag = check_int(lag, "lag", minimum=1)
    n_pcs = check_int(n_pcs, "n_pcs", minimum=0)
    n_boot = check_int(n_boot, "n_boot", minimum=0)
    act, series, offsets = persistence._series_input(probe_act, "affect_profile")
    if series is None:
        raise EmostatsError("affect_profile: expected a (token, probe) DataArray with one probe per emotion")
    names = [str(n) for n in (act[series].values if series in act.coords else range(act.sizes[series]))]
    conv = np.asarray(act["conversation"].values)
    opts = dict(lag=lag, max_lag=max_lag, n_boot=n_boot, seed=seed, ci=ci, noise_tokens=float(noise_tokens),
                threads=threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, sd = persistence._standardisation(act, offsets, threads=threads)
    n_pcs = min(n_pcs, int((sd > 0).sum()))
    hist, csum, ccount, corr = _token_pass(act, mean, sd, saturation_z, conv, want_cov=n_pcs > 0)
    emotions, (hl_lo, hl_hi) = _entries(act, names, _levels(hist, csum, ccount), progress=progress, **opts)

    pcs = {}
    if n_pcs:
        eig, load, total = _pca(corr, n_pcs)
        with np.errstate(invalid="ignore", divide="ignore"):
            inv = np.where(sd > 0, 1.0 / sd, 0.0)
        blocks = []
        for a in range(0, act.sizes["token"], BLOCK):
            x = np.asarray(act.isel(token=slice(a, a + BLOCK)).values, dtype=np.float64)
            z = (x - mean) * inv
            blocks.append(np.where(np.isfinite(z), z, 0.0) @ load)
        pc_names = [f"pc{j + 1}" for j in range(n_pcs)]
        keep = {k: c for k, c in act.coords.items() if c.dims == ("token",)}
        scores = xr.DataArray(np.concatenate(blocks), dims=("token", "pc"), coords={**keep, "pc": pc_names})
        s_mean, s_sd = persistence._standardisation(scores, offsets, threads=threads)
        pc_levels = _levels(*_token_pass(scores, s_mean, s_sd, saturation_z, conv, want_cov=False)[:3])
        entries, _ = _entries(scores, pc_names, pc_levels, progress=None, **opts)
        for j, name in enumerate(pc_names):
            order = np.argsort(-np.abs(load[:, j]), kind="stable")
            pcs[name] = {**entries[name], "variance_ratio": _round(float(eig[j] / total)) if total > 0 else None,
                         "loadings": {names[i]: _round(float(load[i, j])) for i in range(len(names))},
                         "top_loadings": [[names[i], _round(float(load[i, j]))] for i in order[:8]]}

    good = [e for e in emotions.values() if e["fit_ok"]]

    def median(key, measured=None):
        vals = [e[key] for e in good if e[key] is not None and not (
            measured and (e[f"{measured}_noise"] or e[f"{measured}_extrapolated"]))]
        return _round(float(np.median(vals))) if vals else None

    def count(flag):
        return sum(e[flag] for e in good)

    return {
        "schema": PROFILE_SCHEMA,
        "description": _DESCRIPTION,
        "fields": _fields(hl_lo, hl_hi),
        "units": {"half_life": "tokens", "time": "tokens of the model's own output", "level": "s in [0, 1]"},
        "parameters": {"lag_tokens": lag, "window_tokens": max_lag, "fit_from_lag": 1,
                       "half_life_bounds_tokens": [hl_lo, hl_hi], "noise_half_life_tokens": float(noise_tokens),
                       "n_boot": n_boot, "seed": int(seed), "ci": float(ci), "saturation_z": float(saturation_z),
                       "model_selection": "AIC", "n_pcs": n_pcs,
                       "pca": "eigendecomposition of the correlation matrix of the probes over all tokens; each "
                              "loading vector's largest-magnitude entry positive"},
        "source": {"emostats_version": __version__, "n_tokens": int(act.sizes["token"]),
                   "n_segments": int(offsets.shape[0] - 1), **(source or {})},
        "summary": {"n_emotions": len(emotions), "n_fit_ok": len(good),
                    "n_fast_noise": count("half_life_fast_noise"),
                    "n_fast_extrapolated": count("half_life_fast_extrapolated"),
                    "n_slow_extrapolated": count("half_life_slow_extrapolated"),
                    "n_slow_at_bound": count("half_life_slow_at_bound"),
                    "median_half_life_fast_tokens": median("half_life_fast_tokens"),
                    "median_half_life_slow_tokens": median("half_life_slow_tokens"),
                    "median_measured_half_life_fast_tokens": median("half_life_fast_tokens", "half_life_fast"),
                    "median_measured_half_life_slow_tokens": median("half_life_slow_tokens", "half_life_slow"),
                    "median_tail_level": median("tail_level")},
        "emotions": emotions,
        "pcs": pcs,
    }
