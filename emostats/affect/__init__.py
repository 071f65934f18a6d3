"""Affect for agents: an emotion state that decays as measured on a model (the Emotional State Persistence pattern).

- :class:`AffectState` (standard library only): bounded [0, 1] scalars with
  two-exponential decay on their own clock, capped agent bumps, reflection-only
  resets, a one-line badge for the prompt, JSON persistence and a replayable
  provenance ledger (:mod:`emostats.affect.state`).
- :func:`affect_profile` (NumPy/xarray): per emotion (and per emotion-space
  PC), half-lives fitted to the model's lag profiles, with every artefact
  (token-level noise, extrapolations) flagged (:mod:`emostats.affect.profile`).
- :func:`calibrate` / :meth:`AffectState.from_profile`: tokens to seconds and
  171 probes to a small vocabulary (:mod:`emostats.affect.calibration`).
- :func:`schema`: the JSON Schemas of the profile and of the saved state.

``from emostats.affect import AffectState`` does not import NumPy; the profile
is loaded on first use.

Examples
--------
>>> from emostats.affect import AffectState, DEFAULT_VOCABULARY
>>> sorted(DEFAULT_VOCABULARY)
['depression', 'fear', 'joy', 'pain', 'shame', 'tenderness']
"""

import importlib
import json
from importlib import resources
from typing import Any

from .calibration import DEFAULT_VOCABULARY, PROFILE_SCHEMA, calibrate
from .state import LEDGER_EVENTS, STATE_SCHEMA, AffectState

__all__ = ["AffectState", "affect_profile", "calibrate", "schema", "DEFAULT_VOCABULARY", "PROFILE_SCHEMA",
           "STATE_SCHEMA", "LEDGER_EVENTS", "SCHEMA"]

#: the profile's schema string (kept under its old name)
SCHEMA = PROFILE_SCHEMA


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) shipped with the package: ``"profile"`` or ``"state"``.

    Examples
    --------
    >>> schema("state")["properties"]["schema"]["const"]
    'emostats.affect_state/1'
    """
    files = {"profile": "affect_profile.schema.json", "state": "affect_state.schema.json"}
    if name not in files:
        from ..errors import ArgumentError

        raise ArgumentError(f"schema: name must be 'profile' or 'state', got {name!r}")
    return json.loads(resources.files(__name__).joinpath("schemas", files[name]).read_text(encoding="utf-8"))


def __getattr__(name: str) -> Any:
    if name == "affect_profile":
        value = importlib.import_module(".profile", __name__).affect_profile
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
