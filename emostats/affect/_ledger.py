"""The ledger and the saved state of :class:`emostats.affect.AffectState`: replay and JSON (standard library only).

:class:`LedgerMixin` gives the state its ``ledger``, ``ledger_jsonl``,
``replay``, ``to_json``, ``from_json`` and ``==``; the number check and the
canonical JSON encoding live here so both modules share them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import ArgumentError, EmostatsError

if TYPE_CHECKING:
    from .state import AffectState

__all__ = ["LedgerMixin", "replay_ledger", "load_state", "STATE_SCHEMA", "LEDGER_EVENTS"]

#: the ``schema`` string of a saved state (``schemas/affect_state.schema.json``)
STATE_SCHEMA = "emostats.affect_state/1"
#: the events of the ledger
LEDGER_EVENTS = ("init", "decay", "bump", "reflect")
_AXIS_KEYS = ("half_life_fast_s", "half_life_slow_s", "share_fast")


def _number(value: Any, what: str, lo: float | None = None, hi: float | None = None,
            open_lo: bool = False) -> float:
    """``value`` as a finite float within [lo, hi] (lo excluded when ``open_lo``), else ArgumentError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ArgumentError(f"{what} must be a number, got {value!r}")
    v = float(value)
    bad = not math.isfinite(v) or (lo is not None and (v <= lo if open_lo else v < lo)) or \
        (hi is not None and v > hi)
    if bad:
        rng = f"{'(' if open_lo else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise ArgumentError(f"{what} must be a finite number in {rng}, got {value!r}")
    return v


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def replay_ledger(cls, ledger: Iterable[Mapping[str, Any]] | str):
    """A ``cls`` state rebuilt from ``ledger``, every entry checked (see ``AffectState.replay``)."""
    entries = []
    lines = [line for line in ledger.splitlines() if line.strip()] if isinstance(ledger, str) else ledger
    if not isinstance(lines, Iterable) or isinstance(lines, Mapping):
        raise EmostatsError(f"replay: the ledger must be a list of entries or JSON Lines text, got "
                            f"{type(ledger).__name__}")
    for i, e in enumerate(lines):
        if isinstance(e, str):
            try:
                e = json.loads(e)
            except ValueError as err:
                raise EmostatsError(f"replay: ledger line {i + 1} is not JSON ({err})") from None
        if not isinstance(e, Mapping):
            raise EmostatsError(f"replay: ledger entry {i} must be a JSON object, got {type(e).__name__}")
        entries.append(dict(e))
    if not entries or entries[0].get("event") != "init" or "config" not in entries[0]:
        raise EmostatsError("replay: the ledger must start with its 'init' entry (which holds the configuration)")
    cfg = entries[0]["config"]
    try:
        state = cls(cfg["axes"], event_cap=cfg["event_cap"], window_cap=cfg["window_cap"],
                    window_seconds=cfg["window_seconds"], calibration=cfg.get("calibration"),
                    source=entries[0].get("source", "init"))
        state._comp = {n: [float(c[0]), float(c[1])] for n, c in cfg["components"].items()}
        state._clock = state._t0 = Fraction(_number(entries[0]["time"], "replay: init time", 0.0))
        state._age = 0.0
        state._lines = []
        state._log({**{k: entries[0][k] for k in ("time", "event", "before")}, "after": state.values,
                    "source": entries[0].get("source", "init"), "config": state._config()})
    except (KeyError, TypeError, IndexError, AttributeError, EmostatsError) as err:
        raise EmostatsError(f"replay: the ledger's init entry is malformed ({err})") from None
    if not _same(state.ledger[0], entries[0]):
        raise EmostatsError("replay: ledger entry 0 (init): its values do not match its configuration")
    for i, e in enumerate(entries[1:], start=1):
        event = e.get("event")
        try:
            if event == "decay":
                state.decay(e["dt"], source=e["source"])
            elif event == "bump":
                state.bump(e["axis"], e["requested"], source=e["source"])
            elif event == "reflect":
                state.reflect(e["resets"], source=e["source"])
            else:
                raise EmostatsError(f"replay: ledger entry {i} has event {event!r}; expected one of "
                                    f"{', '.join(LEDGER_EVENTS[1:])}")
        except KeyError as err:
            raise EmostatsError(f"replay: ledger entry {i} ({event}) lacks field {err.args[0]!r}") from None
        except ArgumentError as err:
            raise EmostatsError(f"replay: ledger entry {i} ({event}): {err}") from None
        if not _same(json.loads(state._lines[-1]), e):
            raise EmostatsError(f"replay: ledger entry {i} ({event} at t={e.get('time')}) does not replay: the "
                                f"recorded entry differs from the recomputed one (edited, removed or reordered entries, "
                                f"or another platform)")
    return state


def load_state(cls, text: str, *, verify: bool = True):
    """A ``cls`` state from the JSON of ``to_json`` (see ``AffectState.from_json``)."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError) as err:
        raise EmostatsError(f"from_json: not a JSON document ({err})") from None
    if not isinstance(doc, dict) or doc.get("schema") != STATE_SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise EmostatsError(f"from_json: expected a saved affect state (schema {STATE_SCHEMA!r}), got {found!r}")
    try:
        axes = {n: {k: a[k] for k in _AXIS_KEYS} for n, a in doc["axes"].items()}
        state = cls(axes, event_cap=doc["event_cap"], window_cap=doc["window_cap"],
                    window_seconds=doc["window_seconds"], calibration=doc.get("calibration"))
        state._clock = Fraction(_number(doc["time"], "from_json: time", 0.0))
        state._t0 = Fraction(_number(doc["components_time"], "from_json: components_time", 0.0, float(state._clock)))
        state._age = float(state._clock - state._t0)
        for n, a in doc["axes"].items():
            fast = _number(a["fast"], f"from_json: axis {n!r} fast", 0.0, 1.0)
            slow = _number(a["slow"], f"from_json: axis {n!r} slow", 0.0, 1.0 - fast)
            state._comp[n] = [fast, slow]
            state._recent[n] = [[Fraction(_number(t, f"from_json: axis {n!r} recent bump time", 0.0)),
                                 _number(v, f"from_json: axis {n!r} recent bump", -1.0, 1.0)] for t, v in a["recent_bumps"]]
        state._lines = [_dumps(e) for e in doc["ledger"]]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        if isinstance(err, ArgumentError):
            raise EmostatsError(str(err)) from None
        raise EmostatsError(f"from_json: the saved state is malformed ({err!r})") from None
    if verify:
        replayed = replay_ledger(cls, doc["ledger"]) if doc["ledger"] else None
        mine = {**json.loads(replayed.to_json()), "emostats_version": doc.get("emostats_version")} if replayed else None
        if mine is None or not _same(mine, doc):  # saved by any version: the state itself must replay
            raise EmostatsError("from_json: the saved ledger does not replay to the saved state (edited file?); "
                                "pass verify=False to load it anyway")
        return replayed  # the same state, with the exact clock of the ledger's steps (the JSON has floats)
    return state


class LedgerMixin:
    """The ledger, replay and JSON methods of :class:`emostats.affect.AffectState`."""

    @property
    def ledger(self) -> list[dict[str, Any]]:
        """The provenance ledger: one dict per change (a copy; the ledger itself is append-only).

        Examples
        --------
        >>> from emostats.affect import AffectState
        >>> s = AffectState({"fear": {"half_life_fast_s": 60, "half_life_slow_s": 600, "share_fast": 0.5}})
        >>> _ = s.bump("fear", 0.5, source="user shouted")
        >>> e = s.ledger[-1]
        >>> e["event"], e["before"], e["after"], e["source"], e["requested"], e["applied"], e["capped_by"]
        ('bump', {'fear': 0.0}, {'fear': 0.2}, 'user shouted', 0.5, 0.2, ['event'])
        """
        return [json.loads(line) for line in self._lines]

    def ledger_jsonl(self, start: int = 0) -> str:
        """The ledger as JSON Lines text (one entry per line), from entry ``start`` on.

        An agent that keeps its ledger in a file appends ``ledger_jsonl(n)``,
        ``n`` the number of entries already written: the file then holds the
        whole ledger, written append-only.

        Examples
        --------
        >>> from emostats.affect import AffectState
        >>> s = AffectState({"joy": {"half_life_fast_s": 60, "half_life_slow_s": 600, "share_fast": 0.5}})
        >>> s.decay(5)
        >>> s.ledger_jsonl(start=1)
        '{"seq":1,"time":5.0,"event":"decay","before":{"joy":0.0},"after":{"joy":0.0},"source":"clock","dt":5.0}\\n'
        """
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= len(self._lines):
            raise ArgumentError(f"ledger_jsonl: start must be an entry number in 0..{len(self._lines)}, got {start!r}")
        return "".join(line + "\n" for line in self._lines[start:])

    @classmethod
    def replay(cls, ledger: Iterable[Mapping[str, Any]] | str) -> AffectState:
        """Rebuild a state from its ledger (list of entries or JSON Lines text), checking every entry.

        Raises :class:`~emostats.errors.EmostatsError` naming the first entry whose
        recorded ``after`` (or applied delta) the replay does not reproduce exactly.

        Examples
        --------
        >>> from emostats.affect import AffectState
        >>> s = AffectState({"fear": {"half_life_fast_s": 60, "half_life_slow_s": 600, "share_fast": 0.5}})
        >>> _ = s.bump("fear", 0.1); s.decay(30.5)
        >>> AffectState.replay(s.ledger_jsonl()).values == s.values
        True
        """
        return replay_ledger(cls, ledger)

    def _document(self) -> dict[str, Any]:
        return {"schema": STATE_SCHEMA, "emostats_version": __version__, "time": float(self._clock),
                "components_time": float(self._t0), "values": self.values,
                "event_cap": self._event_cap, "window_cap": self._window_cap, "window_seconds": self._window_s,
                "axes": {n: {**self._axes[n], "fast": self._comp[n][0], "slow": self._comp[n][1],
                             "recent_bumps": [[float(t), v] for t, v in self._recent[n]]} for n in self._axes},
                "calibration": self._calibration, "ledger": self.ledger}

    def to_json(self, indent: int | None = None) -> str:
        """The whole state as JSON (``schemas/affect_state.schema.json``), ledger included.

        Examples
        --------
        >>> import json
        >>> from emostats.affect import AffectState
        >>> s = AffectState({"joy": {"half_life_fast_s": 60, "half_life_slow_s": 600, "share_fast": 0.5}})
        >>> doc = json.loads(s.to_json())
        >>> doc["schema"], doc["values"], len(doc["ledger"])
        ('emostats.affect_state/1', {'joy': 0.0}, 1)
        """
        return json.dumps(self._document(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, *, verify: bool = True) -> AffectState:
        """A state saved by :meth:`to_json`; with ``verify`` the ledger must replay to the saved state.

        With ``verify`` (the default) the state returned is the ledger's replay,
        which carries on bit for bit as the saved one would. ``verify=False``
        trusts the saved fields instead; its clock is then the saved float
        ``time`` (the exact clock is a sum of the ``dt`` steps), so its values may
        differ from the saved ones in the last bits.

        Examples
        --------
        >>> from emostats.affect import AffectState
        >>> s = AffectState({"joy": {"half_life_fast_s": 60, "half_life_slow_s": 600, "share_fast": 0.3}})
        >>> _ = s.bump("joy", 0.15); s.decay(90)
        >>> AffectState.from_json(s.to_json()) == s
        True
        """
        return load_state(cls, text, verify=verify)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LedgerMixin):
            return NotImplemented
        return _dumps(self._document()) == _dumps(other._document())

    __hash__ = None  # mutable
