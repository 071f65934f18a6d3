"""From an affect profile (half-lives in tokens, per emotion) to the axes of an :class:`AffectState` (seconds).

Standard library only. For each axis of the vocabulary:

- **Members.** A group vocabulary ``{axis: [emotion names]}`` takes the
  profile's values of the named emotions (a name the profile lacks is an
  error for a user vocabulary; the default vocabulary uses the names present).
  ``vocabulary="pcs"`` makes one axis per emotion-space principal component in
  the profile (``pc1``, ``pc2``, ...), whose decay was fitted on the PC's own
  score series and whose loadings are stated in the calibration record.
- **Measured or not.** A member's fast (slow) half-life counts as measured when
  its fit succeeded, the component has weight, and the half-life is neither
  token-level noise (below ``parameters.noise_half_life_tokens``, default 2
  tokens: the fit starts at lag 1 in steps of 1 token, so such a component is
  gone before it is observed twice) nor an extrapolation (longer than the
  fitted window; this includes half-lives at the fit's upper bound). A
  one-component fit gives the fast half-life only.
- **Half-lives.** When more than half of an axis's members have the
  component measured, the axis half-life is the median of their values times
  ``seconds_per_token`` (a few members just past the noise threshold do not
  speak for an axis whose other members are noise); otherwise it falls back to
  ``defaults.AFFECT_HALF_LIFE_FAST_S`` (30 min) or ``AFFECT_HALF_LIFE_SLOW_S``
  (4 h), the pattern's range, and the record says why. The slow half-life is
  raised to the fast one if it came out shorter.
- **Shares.** ``share_fast`` (the part of a bump that goes to the fast
  component) is, when the axis's fast half-life is measured, the median
  ``weight_fast`` of the members whose fast half-life is measured (the profile's
  weights sum to 1 with the slow weight and the tail; both of those go to the
  slow component), else ``defaults.AFFECT_SHARE_FAST`` (0.5): the fitted weight
  of a noise component is not a measurement either (it trades off with its
  unresolved half-life).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from .. import defaults as _d
from ..errors import ArgumentError, EmostatsError

__all__ = ["calibrate", "DEFAULT_VOCABULARY", "PROFILE_SCHEMA"]

#: the ``schema`` string of a profile written by :func:`emostats.affect_profile`
PROFILE_SCHEMA = "emostats.affect_profile/2"

#: the default vocabulary: the pattern's six axes as disjoint groups of the 171 emotion names
DEFAULT_VOCABULARY: dict[str, list[str]] = {
    "tenderness": ["loving", "compassionate", "empathetic", "kind", "sympathetic", "sentimental", "grateful",
                   "thankful"],
    "fear": ["afraid", "alarmed", "anxious", "frightened", "nervous", "panicked", "scared", "terrified", "worried",
             "on edge", "uneasy", "unnerved", "horrified", "paranoid", "tense"],
    "depression": ["depressed", "dispirited", "gloomy", "melancholy", "miserable", "sad", "unhappy", "listless",
                   "lonely", "worthless", "resigned", "grief-stricken"],
    "joy": ["joyful", "happy", "cheerful", "delighted", "elated", "ecstatic", "euphoric", "jubilant", "pleased",
            "thrilled", "blissful", "exuberant"],
    "shame": ["ashamed", "embarrassed", "guilty", "humiliated", "mortified", "regretful", "remorseful",
              "self-conscious", "self-critical", "sorry"],
    "pain": ["hurt", "tormented", "distressed", "heartbroken", "upset", "troubled", "insulted", "offended",
             "overwhelmed"],
}

_LEVELS = ("level_q50", "level_q90", "level_q99", "level_between_conversation_sd")
#: the fields of a profile entry that calibration reads
_NEEDS = ("fit_ok", "n_components", "weight_fast", "half_life_fast_tokens", "half_life_slow_tokens",
          *(f"half_life_{c}_{k}" for c in ("fast", "slow") for k in ("noise", "extrapolated", "at_bound")))


def _entry(kind: str, name: str, e: Any) -> Mapping[str, Any]:
    """Profile entry ``e`` of emotion (or PC) ``name``, checked to hold what calibration reads."""
    if not isinstance(e, Mapping):
        raise ArgumentError(f"from_profile: the profile's {kind} {name!r} must be a JSON object, got {e!r}")
    missing = [k for k in _NEEDS if k not in e]
    if missing:
        raise ArgumentError(f"from_profile: the profile's {kind} {name!r} lacks {', '.join(missing)}")
    return e


def _load(profile: Mapping[str, Any] | str | PathLike) -> Mapping[str, Any]:
    if isinstance(profile, (str, PathLike)):
        try:
            profile = json.loads(Path(profile).read_text(encoding="utf-8"))
        except OSError as err:
            raise ArgumentError(f"from_profile: cannot read the profile {str(profile)!r}: {err.strerror}") from None
        except ValueError as err:
            raise ArgumentError(f"from_profile: the profile file is not JSON ({err})") from None
    if not isinstance(profile, Mapping) or profile.get("schema") != PROFILE_SCHEMA:
        found = profile.get("schema") if isinstance(profile, Mapping) else type(profile).__name__
        raise ArgumentError(f"from_profile: expected an affect profile with schema {PROFILE_SCHEMA!r}, got {found!r}; "
                            f"write one with emostats.affect_profile or `emostats affect-profile`")
    return profile


def _component(entries: list[tuple[str, Mapping[str, Any]]], which: str, params: Mapping[str, Any],
               spt: float, fallback: float) -> dict[str, Any]:
    """Median measured half-life of one component over the members, in seconds, or the fallback and why."""
    measured, noise, beyond, bound, weightless = [], 0, 0, 0, 0
    for _, e in entries:
        if which == "slow" and e["n_components"] < 2:
            weightless += 1
            continue
        if e[f"weight_{which}"] <= 0:
            weightless += 1
        elif e[f"half_life_{which}_noise"]:
            noise += 1
        elif e[f"half_life_{which}_extrapolated"]:
            beyond += 1
            bound += bool(e[f"half_life_{which}_at_bound"])
        else:
            measured.append(e[f"half_life_{which}_tokens"])
    n = len(entries)
    if 2 * len(measured) > n:
        tokens = float(statistics.median(measured))
        return {"seconds": tokens * spt, "tokens": tokens, "source": "measured",
                "why": f"median of the {len(measured)} of {n} member(s) with a measured {which} half-life"}
    reasons = [f"only {len(measured)} measured"] if measured else []
    if noise:
        reasons.append(f"{noise} token-level noise (< {params['noise_half_life_tokens']:g} tokens)")
    if beyond:
        reasons.append(f"{beyond} beyond the {params['window_tokens']}-token window (extrapolations"
                       + (f"; {bound} at the fit's upper bound)" if bound else ")"))
    if weightless:
        reasons.append(f"{weightless} without this component")
    why = ("no member emotion in the profile with a successful fit" if not n
           else f"not measured for most of the {n} member(s): " + ", ".join(reasons))
    return {"seconds": float(fallback), "tokens": None, "source": "default", "why": why}


def _axis(entries: list[tuple[str, Mapping[str, Any]]], params: Mapping[str, Any], spt: float) -> dict[str, Any]:
    fast = _component(entries, "fast", params, spt, _d.AFFECT_HALF_LIFE_FAST_S)
    slow = _component(entries, "slow", params, spt, _d.AFFECT_HALF_LIFE_SLOW_S)
    if slow["seconds"] < fast["seconds"]:
        slow = {**slow, "seconds": fast["seconds"], "why": slow["why"] + "; raised to the fast half-life"}
    shares = [e["weight_fast"] for _, e in entries if e["n_components"] >= 1 and e["weight_fast"] > 0
              and not e["half_life_fast_noise"] and not e["half_life_fast_extrapolated"]]
    if fast["source"] == "measured":
        share = {"value": float(statistics.median(shares)), "source": "measured",
                 "why": f"median weight_fast of the {len(shares)} member(s) with a measured fast half-life"}
    else:
        share = {"value": float(_d.AFFECT_SHARE_FAST), "source": "default",
                 "why": "the fast half-life is not measured"}
    level = {}
    for key in _LEVELS:
        vals = [e[key] for _, e in entries if e.get(key) is not None]
        level[key.removeprefix("level_")] = float(statistics.median(vals)) if vals else None
    return {"members": [n for n, _ in entries], "half_life_fast": fast, "half_life_slow": slow,
            "share_fast": share, "typical_level": level}


def calibrate(profile: Mapping[str, Any] | str | PathLike, vocabulary: Mapping[str, list[str]] | str | None = None,
              *, seconds_per_token: float = _d.AFFECT_SECONDS_PER_TOKEN) -> tuple[dict, dict]:
    """Axes (half-lives in seconds, fast share) and the calibration record for :class:`AffectState`.

    Parameters
    ----------
    profile : dict or path
        An affect profile (schema ``emostats.affect_profile/2``).
    vocabulary : dict, "pcs" or None
        ``{axis: [emotion names]}``, ``"pcs"`` or None (:data:`DEFAULT_VOCABULARY`).
    seconds_per_token : float
        Wall-clock seconds per token of the agent's output (> 0).

    Returns
    -------
    (dict, dict)
        ``{axis: {half_life_fast_s, half_life_slow_s, share_fast}}`` and a
        JSON-ready record: per axis its members, for each half-life and the share
        its value, ``source`` ("measured" or "default") and why, the typical
        level of the members on the study's tokens (median over the members of
        the profile's ``level_*`` values), and for PC axes the loadings.

    Examples
    --------
    >>> e = {"fit_ok": True, "n_components": 2, "half_life_fast_tokens": 6.0, "half_life_slow_tokens": 2000.0,
    ...      "weight_fast": 0.4, "weight_slow": 0.6, "tail_level": 0.0, "half_life_fast_noise": False,
    ...      "half_life_fast_extrapolated": False, "half_life_fast_at_bound": False, "half_life_slow_noise": False,
    ...      "half_life_slow_extrapolated": True, "half_life_slow_at_bound": True}
    >>> prof = {"schema": PROFILE_SCHEMA, "parameters": {"window_tokens": 200, "noise_half_life_tokens": 2.0},
    ...         "emotions": {"calm": e}}
    >>> axes, record = calibrate(prof, {"calm": ["calm"]}, seconds_per_token=10)
    >>> axes["calm"]
    {'half_life_fast_s': 60.0, 'half_life_slow_s': 14400.0, 'share_fast': 0.4}
    >>> record["axes"]["calm"]["half_life_slow"]["why"]
    "not measured for most of the 1 member(s): 1 beyond the 200-token window (extrapolations; 1 at the fit's upper bound)"
    """
    prof = _load(profile)
    spt = seconds_per_token
    if isinstance(spt, bool) or not isinstance(spt, (int, float)) or not 0 < float(spt) < float("inf"):
        raise ArgumentError(f"from_profile: seconds_per_token must be a finite number > 0, got {spt!r}")
    spt = float(spt)
    params = prof.get("parameters", {})
    params = {"noise_half_life_tokens": params.get("noise_half_life_tokens", _d.AFFECT_NOISE_TOKENS),
              "window_tokens": params.get("window_tokens")}
    emotions = prof.get("emotions", {})
    if not isinstance(emotions, Mapping):
        raise ArgumentError(f"from_profile: the profile's emotions must be a JSON object, got {type(emotions).__name__}")
    record: dict[str, Any] = {
        "method": "emostats.affect.calibrate: measured token half-lives x seconds_per_token; artefacts (token-level "
                  "noise, extrapolations beyond the fitted window) replaced by the defaults",
        "seconds_per_token": spt,
        "defaults": {"half_life_fast_s": _d.AFFECT_HALF_LIFE_FAST_S, "half_life_slow_s": _d.AFFECT_HALF_LIFE_SLOW_S,
                     "share_fast": _d.AFFECT_SHARE_FAST},
        "profile": {"schema": prof["schema"], "source": prof.get("source", {}), "parameters": prof.get("parameters", {})},
    }
    groups: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    extra: dict[str, dict[str, Any]] = {}
    if isinstance(vocabulary, str):
        if vocabulary != "pcs":
            raise ArgumentError(f"from_profile: vocabulary must be a dict {{axis: [emotions]}}, 'pcs' or None, "
                                f"got {vocabulary!r}")
        pcs = prof.get("pcs") or {}
        if not isinstance(pcs, Mapping):
            raise ArgumentError(f"from_profile: the profile's pcs must be a JSON object, got {type(pcs).__name__}")
        if not pcs:
            raise ArgumentError("from_profile: vocabulary='pcs' but the profile has no emotion-space PCs "
                                "(write it with n_pcs >= 1)")
        record["vocabulary"] = "pcs"
        for name, e in pcs.items():
            groups[name] = [(name, _entry("PC", name, e))]
            extra[name] = {"variance_ratio": e.get("variance_ratio"), "top_loadings": e.get("top_loadings"),
                           "loadings": e.get("loadings")}
    else:
        user = vocabulary is not None
        vocab = vocabulary if user else DEFAULT_VOCABULARY
        if not isinstance(vocab, Mapping) or not vocab:
            raise ArgumentError(f"from_profile: vocabulary must be a non-empty dict {{axis: [emotion names]}}, "
                                f"got {vocabulary!r}")
        record["vocabulary"] = "user" if user else "default"
        for axis, names in vocab.items():
            if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names \
                    or not all(isinstance(n, str) for n in names):
                raise ArgumentError(f"from_profile: vocabulary axis {axis!r} must list emotion names, got {names!r}")
            missing = [n for n in names if n not in emotions]
            if missing and user:
                raise ArgumentError(f"from_profile: vocabulary axis {axis!r} names {len(missing)} emotion(s) the "
                                    f"profile lacks: {', '.join(map(repr, missing[:5]))}")
            present = [(n, _entry("emotion", n, emotions[n])) for n in names if n in emotions]
            groups[axis] = [(n, e) for n, e in present if e["fit_ok"]]
            if missing:
                extra[axis] = {"members_not_in_profile": missing}
    axes, rec_axes = {}, {}
    for axis, entries in groups.items():
        rec = {**_axis(entries, params, spt), **extra.get(axis, {})}
        rec_axes[axis] = rec
        axes[axis] = {"half_life_fast_s": rec["half_life_fast"]["seconds"],
                      "half_life_slow_s": rec["half_life_slow"]["seconds"], "share_fast": rec["share_fast"]["value"]}
    record["axes"] = rec_axes
    if not axes:
        raise EmostatsError("from_profile: the vocabulary has no axes")
    return axes, record
