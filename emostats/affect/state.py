"""The affect state: bounded, decaying emotion scalars for an agent (the Emotional State Persistence pattern).

Standard library only, so an agent can carry it without the analysis stack.

Model
-----
Each axis (e.g. ``fear``) holds two non-negative components, fast and slow,
and its value is their sum, in [0, 1]. Between events every component decays
as ``c(t) = c(t0) 2^(-(t - t0) / h)`` with its own half-life ``h`` (seconds).
The state keeps its own clock, advanced only by :meth:`AffectState.decay`
(there is no wall clock inside), and stores the components at the last event
time ``t0``: values are evaluated in closed form from ``t0`` and the clock.
The clock is kept exactly (a :class:`fractions.Fraction`, the exact sum of the
``dt`` given to :meth:`~AffectState.decay`; every float is a dyadic rational),
and the age ``t - t0`` is rounded to a float once, when a value is evaluated.
So ``decay(dt)`` is exact for any ``dt``: the components after it are
``c 2^(-dt / h)`` evaluated once, and any steps that add up to ``dt`` exactly
(two steps of ``dt / 2``, or whole seconds) give the same state bit for bit.
Steps whose float sum ``a + b`` is rounded decay by their exact total, which
differs from ``decay(a + b)`` by that rounding (relative 1e-16 of the time).

Events
------
- :meth:`~AffectState.bump` (the agent's entry point) adds ``delta`` to an axis.
  A positive delta is split between the components in the axis's fixed
  proportions (``share_fast``, ``1 - share_fast``); a negative one scales both
  components down by the same factor. The delta applied is the request capped,
  in this order, by: the per-event cap ``|delta| <= event_cap``; the window
  cap (the applied raises of the axis in the last ``window_seconds`` of the
  state clock, both ends included, sum to at most ``window_cap``, and so do its
  drops); and the range (the value stays in [0, 1]). Within any span of
  ``window_seconds`` agent bumps therefore raise (or lower) an axis by at most
  ``window_cap``: the agent cannot pump itself into a state.
- :meth:`~AffectState.reflect` (the reflection/consolidation entry point) sets
  axes to given values; it is the only way to set a scalar directly, and it is
  not capped.
- :meth:`~AffectState.decay` advances the clock.

Every change is appended to the provenance ledger (one JSON object per line:
``seq`` (0, 1, ...), ``time``, ``event``, ``before``, ``after``, ``source`` and
the event's arguments); the first entry (``init``) holds the whole configuration, so
:meth:`AffectState.replay` rebuilds the state from the ledger alone, bit for
bit (on one platform: ``2 ** x`` comes from the C library), and refuses a
ledger whose recorded values it does not reproduce.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from .. import defaults as _d
from . import _ledger
from ._ledger import _AXIS_KEYS, LEDGER_EVENTS, STATE_SCHEMA, _dumps, _number
from ..errors import ArgumentError

__all__ = ["AffectState", "STATE_SCHEMA", "LEDGER_EVENTS"]

class AffectState(_ledger.LedgerMixin):
    """Bounded [0, 1] emotion scalars with two-exponential decay, capped bumps and a replayable ledger.

    Usually made by :meth:`from_profile` (half-lives measured on a model) or
    :meth:`from_json` (a saved state); the constructor takes the axes directly.

    Parameters
    ----------
    axes : mapping
        ``{axis name: {"half_life_fast_s": float, "half_life_slow_s": float,
        "share_fast": float}}``: half-lives in seconds (> 0) and the share of a
        positive bump that goes to the fast component (in [0, 1]).
    event_cap : float
        Largest ``|delta|`` of one bump (default ``defaults.AFFECT_EVENT_CAP``, 0.2).
    window_cap : float
        Largest total raise, and total drop, of one axis by bumps within any
        ``window_seconds`` (default 0.4).
    window_seconds : float
        Length of the sliding window on the state clock (default 3600).
    calibration : mapping, optional
        JSON-ready record of where the half-lives came from (kept, saved and
        ledgered as it is).
    initial : mapping, optional
        ``{axis: value in [0, 1]}`` at time 0, split in the axis's proportions (default 0).
    source : str
        Source recorded in the ledger's ``init`` entry.

    Examples
    --------
    >>> s = AffectState({"fear": {"half_life_fast_s": 1800, "half_life_slow_s": 14400, "share_fast": 0.5}})
    >>> s.bump("fear", 0.9, source="tool loop stuck")["applied"]  # capped per event
    0.2
    >>> s.decay(1800)
    >>> round(s.values["fear"], 4)  # 0.1 * 2**-1 + 0.1 * 2**-0.125
    0.1417
    >>> s.badge()
    'affect t+30m: fear 0.14'
    >>> AffectState.replay(s.ledger) == s
    True
    """

    def __init__(self, axes: Mapping[str, Mapping[str, float]], *, event_cap: float = _d.AFFECT_EVENT_CAP,
                 window_cap: float = _d.AFFECT_WINDOW_CAP, window_seconds: float = _d.AFFECT_WINDOW_S,
                 calibration: Mapping[str, Any] | None = None, initial: Mapping[str, float] | None = None,
                 source: str = "init") -> None:
        if not isinstance(axes, Mapping) or not axes:
            raise ArgumentError(f"axes must be a non-empty mapping {{name: {{{', '.join(_AXIS_KEYS)}}}}}, "
                                f"got {axes!r}")
        self._axes: dict[str, dict[str, float]] = {}
        for name, p in axes.items():
            if not isinstance(name, str) or not name or not name.isprintable():
                raise ArgumentError(f"axis names must be non-empty printable strings (the badge is one line), "
                                    f"got {name!r}")
            if not isinstance(p, Mapping) or any(k not in p for k in _AXIS_KEYS):
                raise ArgumentError(f"axis {name!r} needs {', '.join(_AXIS_KEYS)}, got {p!r}")
            fast = _number(p["half_life_fast_s"], f"axis {name!r} half_life_fast_s", 0.0, None, open_lo=True)
            slow = _number(p["half_life_slow_s"], f"axis {name!r} half_life_slow_s", 0.0, None, open_lo=True)
            share = _number(p["share_fast"], f"axis {name!r} share_fast", 0.0, 1.0)
            self._axes[name] = {"half_life_fast_s": fast, "half_life_slow_s": slow, "share_fast": share}
        self._event_cap = _number(event_cap, "event_cap", 0.0, 1.0)
        self._window_cap = _number(window_cap, "window_cap", 0.0, 1.0)
        self._window_s = _number(window_seconds, "window_seconds", 0.0)
        self._calibration = json.loads(_dumps(dict(calibration or {})))
        self._clock = self._t0 = Fraction(0)  # exact (see the module docstring)
        self._age = 0.0  # float(clock - t0), the age of the stored components
        self._comp: dict[str, list[float]] = {n: [0.0, 0.0] for n in self._axes}
        self._recent: dict[str, list[list]] = {n: [] for n in self._axes}  # [[exact time, applied delta]]
        self._lines: list[str] = []
        for name, value in (initial or {}).items():
            self._check_axis(name)
            self._set(name, _number(value, f"initial value of {name!r}", 0.0, 1.0))
        self._log({"time": self.time, "event": "init", "before": None, "after": self.values,
                   "source": str(source), "config": self._config()})

    # ------------------------------------------------------------------ construction helpers

    @classmethod
    def from_profile(cls, profile: Mapping[str, Any] | str, vocabulary: Mapping[str, list[str]] | str | None = None,
                     seconds_per_token: float = _d.AFFECT_SECONDS_PER_TOKEN, *, event_cap: float = _d.AFFECT_EVENT_CAP,
                     window_cap: float = _d.AFFECT_WINDOW_CAP, window_seconds: float = _d.AFFECT_WINDOW_S,
                     source: str = "from_profile") -> AffectState:
        """A state whose half-lives are calibrated from an affect profile (:func:`emostats.affect_profile`).

        Parameters
        ----------
        profile : dict or str
            The profile, or the path of its JSON file (``emostats affect-profile``).
        vocabulary : dict, "pcs" or None
            ``{axis: [emotion names]}``; None: :data:`emostats.affect.DEFAULT_VOCABULARY`
            (six axes of the pattern); "pcs": the profile's leading emotion-space PCs.
        seconds_per_token : float
            Wall-clock seconds per token of the agent's output (default 10): a
            measured half-life of ``n`` tokens becomes ``n * seconds_per_token`` s.
        event_cap, window_cap, window_seconds : float
            As for the constructor.
        source : str
            Recorded in the ledger's ``init`` entry.

        Returns
        -------
        AffectState
            At time 0, every axis 0; ``calibration`` says, per axis, which
            half-lives were measured and which fell back to the defaults and why
            (see :func:`emostats.affect.calibrate`).

        Examples
        --------
        >>> import emostats as es
        >>> from emostats.affect import affect_profile
        >>> with es.open_study(es.example_study()) as study:
        ...     prof = affect_profile(study["tokens"]["probe_act"], max_lag=50, n_boot=0, n_pcs=2)
        >>> s = AffectState.from_profile(prof)
        >>> list(s.values)
        ['tenderness', 'fear', 'depression', 'joy', 'shame', 'pain']
        >>> s.calibration["axes"]["fear"]["half_life_fast"]["source"]
        'default'
        """
        from .calibration import calibrate

        axes, record = calibrate(profile, vocabulary, seconds_per_token=seconds_per_token)
        return cls(axes, event_cap=event_cap, window_cap=window_cap, window_seconds=window_seconds,
                   calibration=record, source=source)

    def _config(self) -> dict[str, Any]:
        return {"axes": {n: dict(p) for n, p in self._axes.items()}, "event_cap": self._event_cap,
                "window_cap": self._window_cap, "window_seconds": self._window_s,
                "components": {n: list(c) for n, c in self._comp.items()}, "calibration": self._calibration}

    # ------------------------------------------------------------------ reading

    @property
    def event_cap(self) -> float:
        """Largest ``|delta|`` applied by one bump."""
        return self._event_cap

    @property
    def window_cap(self) -> float:
        """Largest total raise (and total drop) of one axis by bumps within ``window_seconds``."""
        return self._window_cap

    @property
    def window_seconds(self) -> float:
        """Length of the cap's sliding window on the state clock (both ends included)."""
        return self._window_s

    @property
    def time(self) -> float:
        """The state clock (seconds since the state was made; advanced only by :meth:`decay`)."""
        return float(self._clock)

    @property
    def axes(self) -> tuple[str, ...]:
        """The axis names, in order."""
        return tuple(self._axes)

    @property
    def parameters(self) -> dict[str, dict[str, float]]:
        """``{axis: {half_life_fast_s, half_life_slow_s, share_fast}}``."""
        return {n: dict(p) for n, p in self._axes.items()}

    @property
    def calibration(self) -> dict[str, Any]:
        """Where the half-lives came from (a copy)."""
        return json.loads(_dumps(self._calibration))

    def components(self) -> dict[str, tuple[float, float]]:
        """``{axis: (fast, slow)}`` at the current clock; ``values`` is their sum (at most 1).

        Examples
        --------
        >>> s = AffectState({"joy": {"half_life_fast_s": 60, "half_life_slow_s": 600, "share_fast": 0.5}})
        >>> _ = s.bump("joy", 0.2); s.decay(600)
        >>> s.components()["joy"]  # 0.1 * 2**-10, 0.1 * 2**-1
        (9.765625e-05, 0.05)
        """
        return {n: self._at(n) for n in self._axes}

    def _at(self, name: str) -> tuple[float, float]:
        c, p = self._comp[name], self._axes[name]
        age = self._age
        if age == 0:
            return c[0], c[1]
        return c[0] * 2.0 ** (-age / p["half_life_fast_s"]), c[1] * 2.0 ** (-age / p["half_life_slow_s"])

    @property
    def values(self) -> dict[str, float]:
        """``{axis: value in [0, 1]}`` at the current clock."""
        return {n: min(1.0, max(0.0, f + s)) for n, (f, s) in self.components().items()}

    def badge(self, digits: int = 2) -> str:
        """One-line snapshot for a prompt, e.g. ``'affect t+2h05m: fear 0.31, joy 0.12'``.

        Examples
        --------
        >>> AffectState({"joy": {"half_life_fast_s": 60, "half_life_slow_s": 600, "share_fast": 0.3}},
        ...             initial={"joy": 0.5}).badge()
        'affect t+0m: joy 0.50'
        """
        if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 17:
            raise ArgumentError(f"badge: digits must be an integer in 0..17, got {digits!r}")
        minutes = int(self._clock // 60)  # exact floor
        clock = f"{minutes // 1440}d{minutes // 60 % 24:02d}h{minutes % 60:02d}m" if minutes >= 1440 else \
            f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"
        return f"affect t+{clock}: " + ", ".join(f"{n} {v:.{digits}f}" for n, v in self.values.items())

    # ------------------------------------------------------------------ events

    def _check_axis(self, name: Any) -> None:
        if name not in self._axes:
            raise ArgumentError(f"unknown affect axis {name!r}; the axes are {', '.join(self._axes)}")

    def _materialise(self) -> None:
        """Store the components at the clock (so that an event changes them at the right time)."""
        if self._clock != self._t0:
            for n in self._axes:
                self._comp[n] = list(self._at(n))
            self._t0, self._age = self._clock, 0.0

    def _set(self, name: str, value: float) -> None:
        q = self._axes[name]["share_fast"]
        fast = q * value
        self._comp[name] = [fast, min(max(value - fast, 0.0), 1.0 - fast)]

    def _log(self, entry: dict[str, Any]) -> dict[str, Any]:
        line = _dumps({"seq": len(self._lines), **entry})  # seq: a removed or reordered entry does not replay
        self._lines.append(line)
        return json.loads(line)

    def decay(self, dt_seconds: float, *, source: str = "clock") -> None:
        """Advance the state clock by ``dt_seconds`` (>= 0): every component decays with its half-life.

        Examples
        --------
        >>> s = AffectState({"pain": {"half_life_fast_s": 600, "half_life_slow_s": 600, "share_fast": 1}},
        ...                 initial={"pain": 0.8})
        >>> s.decay(600); s.values["pain"]
        0.4
        """
        dt = _number(dt_seconds, "decay: dt_seconds", 0.0)
        before = self.values
        clock = self._clock + Fraction(dt)
        if clock > 2 ** 1000:  # 1.07e301: the clock must stay a finite float
            raise ArgumentError(f"decay: dt_seconds {dt!r} takes the clock past 2**1000 s (1e301 s)")
        self._clock = clock
        self._age = float(self._clock - self._t0)  # rounded once: the same for any steps adding up exactly
        self._log({"time": self.time, "event": "decay", "before": before, "after": self.values,
                   "source": str(source), "dt": dt})

    def bump(self, name: str, delta: float, *, source: str = "agent") -> dict[str, Any]:
        """Add a bounded ``delta`` to axis ``name`` (the agent's entry point); returns the ledger entry.

        The entry's ``applied`` is the delta after the caps and ``capped_by``
        lists the caps that bound it (``event``, ``window``, ``range``).

        Examples
        --------
        >>> s = AffectState({"joy": {"half_life_fast_s": 60, "half_life_slow_s": 600, "share_fast": 0.3}},
        ...                 event_cap=0.25, window_cap=0.375)
        >>> [s.bump("joy", 0.3)["applied"], s.bump("joy", 0.3)["applied"], s.bump("joy", 0.3)["applied"]]
        [0.25, 0.125, 0.0]
        >>> s.ledger[-2]["capped_by"]
        ['event', 'window']
        """
        self._check_axis(name)
        requested = _number(delta, f"bump of {name!r}: delta")
        self._materialise()
        before = self.values
        value = before[name]
        capped_by = []
        size = abs(requested)
        if size > self._event_cap:
            size, capped_by = self._event_cap, ["event"]
        start = self._clock - Fraction(self._window_s)  # exact: both ends of the window included
        recent = [e for e in self._recent[name] if e[0] >= start]
        used = sum(a for _, a in recent if (a > 0) == (requested > 0))
        used = abs(used)
        room = max(self._window_cap - used, 0.0)
        if size > room:
            size, capped_by = room, capped_by + ["window"]
        edge = 1.0 - value if requested > 0 else value
        if size > edge:
            size, capped_by = max(edge, 0.0), capped_by + ["range"]
        applied = 0.0 if size == 0 else size if requested > 0 else -size
        if applied > 0:
            q = self._axes[name]["share_fast"]
            fast, slow = self._comp[name]
            fast += q * applied
            slow = min(slow + (applied - q * applied), 1.0 - min(fast, 1.0))
            self._comp[name] = [min(fast, 1.0), max(slow, 0.0)]
        elif applied < 0:
            keep = (value + applied) / value if value + applied > 0 else 0.0
            self._comp[name] = [c * keep for c in self._comp[name]]
        if applied != 0:
            recent.append([self._clock, applied])
        self._recent[name] = recent
        return self._log({"time": self.time, "event": "bump", "before": before, "after": self.values,
                          "source": str(source), "axis": name, "requested": requested, "applied": applied,
                          "capped_by": capped_by})

    def reflect(self, resets: Mapping[str, float], *, source: str = "reflection") -> dict[str, Any]:
        """Set axes to values in [0, 1] (the reflection/consolidation entry point; not capped).

        The only way to set a scalar directly; each value is split between the
        components in the axis's proportions. Returns the ledger entry.

        Examples
        --------
        >>> s = AffectState({"shame": {"half_life_fast_s": 60, "half_life_slow_s": 600, "share_fast": 0.5}})
        >>> s.reflect({"shame": 0.7}, source="dream consolidation")["after"]
        {'shame': 0.7}
        """
        if not isinstance(resets, Mapping) or not resets:
            raise ArgumentError(f"reflect: resets must be a non-empty mapping {{axis: value in [0, 1]}}, got {resets!r}")
        checked = {}
        for name, value in resets.items():
            self._check_axis(name)
            checked[name] = _number(value, f"reflect: value of {name!r}", 0.0, 1.0)
        self._materialise()
        before = self.values
        for name, value in checked.items():
            self._set(name, value)
        return self._log({"time": self.time, "event": "reflect", "before": before, "after": self.values,
                          "source": str(source), "resets": checked})

    def __repr__(self) -> str:
        return f"AffectState({self.badge()!r}, ledger={len(self._lines)} entries)"
