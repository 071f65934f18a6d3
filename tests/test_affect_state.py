"""AffectState (issue 18): the pattern's rules as properties, the ledger's replay, JSON and its schema."""

import json
import math

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emostats.affect import AffectState, schema
from emostats.errors import ArgumentError, EmostatsError

#: values are sums of two products: one decay step against two agrees to a few ulps of the clock
DECAY_RTOL = 1e-12
#: a cap is compared with a sum of applied deltas (float additions): slack of a few ulps
CAP_SLACK = 1e-12

STATE = jsonschema.Draft202012Validator(schema("state"))
ENTRY = jsonschema.Draft202012Validator({"$defs": schema("state")["$defs"], "$ref": "#/$defs/ledger_entry"})

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

half_life = st.floats(1.0, 1e5, allow_nan=False)
axes_st = st.lists(st.tuples(half_life, half_life, st.floats(0.0, 1.0)), min_size=1, max_size=3).map(
    lambda ps: {f"axis{i}": {"half_life_fast_s": min(a, b), "half_life_slow_s": max(a, b), "share_fast": q}
                for i, (a, b, q) in enumerate(ps)})
caps_st = st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(1.0, 1e4))
event_st = st.one_of(
    st.tuples(st.just("decay"), st.floats(0.0, 2e4), st.just(0)),
    st.tuples(st.just("bump"), st.floats(-2.0, 2.0), st.integers(0, 2)),
    st.tuples(st.just("reflect"), st.floats(0.0, 1.0), st.integers(0, 2)),
)
events_st = st.lists(event_st, max_size=40)


def _make(axes, caps):
    event_cap, window_cap, window = caps
    return AffectState(axes, event_cap=event_cap, window_cap=window_cap, window_seconds=window)


def _apply(state, event, reflect=True):
    kind, x, i = event
    names = state.axes
    name = names[i % len(names)]
    if kind == "decay":
        state.decay(x)
    elif kind == "bump":
        state.bump(name, x, source="agent")
    elif reflect:
        state.reflect({name: x})


def _axes_one_half_life(h=600.0):
    return {"a": {"half_life_fast_s": h, "half_life_slow_s": h, "share_fast": 0.3}}


@SETTINGS
@given(axes_st, caps_st, events_st)
def test_scalars_stay_in_the_unit_interval(axes, caps, events):
    s = _make(axes, caps)
    for e in events:
        _apply(s, e)
        for name, (fast, slow) in s.components().items():
            assert fast >= 0 and slow >= 0 and fast + slow <= 1.0
            assert 0.0 <= s.values[name] <= 1.0


@SETTINGS
@given(axes_st, caps_st, events_st, st.floats(0.0, 1e5), st.floats(0.0, 1e5))
def test_two_decay_steps_equal_one(axes, caps, events, a, b):
    s = _make(axes, caps)
    for e in events:
        _apply(s, e)
    one = AffectState.replay(s.ledger)
    s.decay(a)
    s.decay(b)
    one.decay(a + b)
    for name in s.axes:
        assert s.values[name] == pytest.approx(one.values[name], rel=DECAY_RTOL, abs=1e-300)


@SETTINGS
@given(axes_st, events_st, st.integers(0, 10**6), st.integers(0, 10**6))
def test_two_decay_steps_equal_one_bitwise_on_whole_seconds(axes, events, a, b):
    # whole-second clocks add exactly, and values are evaluated in closed form from the last event
    s = _make(axes, (0.2, 0.4, 3600.0))
    for kind, x, i in events:
        _apply(s, (kind, float(round(x)), i))
    one = AffectState.replay(s.ledger)
    s.decay(a)
    s.decay(b)
    one.decay(a + b)
    assert s.values == one.values and s.components() == one.components()


@SETTINGS
@given(axes_st, caps_st, events_st, st.floats(0.0, 1e6))
def test_without_events_each_component_decays_with_its_half_life(axes, caps, events, dt):
    s = _make(axes, caps)
    for e in events:
        _apply(s, e)
    before = s.components()
    s.decay(dt)
    for name, p in s.parameters.items():
        fast, slow = before[name]
        want = (fast * 2.0 ** (-dt / p["half_life_fast_s"]), slow * 2.0 ** (-dt / p["half_life_slow_s"]))
        assert s.components()[name] == pytest.approx(want, rel=DECAY_RTOL, abs=1e-300)
        assert s.values[name] == pytest.approx(sum(want), rel=DECAY_RTOL, abs=1e-300)


@given(st.floats(0.01, 1.0), st.floats(1.0, 1e5), st.integers(1, 20))
def test_one_half_life_halves_the_scalar(v, h, k):
    s = AffectState(_axes_one_half_life(h), initial={"a": v})
    for _ in range(k):
        s.decay(h)
    assert s.values["a"] == pytest.approx(v * 2.0 ** -k, rel=1e-13)


@SETTINGS
@given(axes_st, caps_st, st.lists(st.tuples(st.sampled_from(["decay", "bump"]), st.floats(-1e6, 1e6),
                                            st.floats(0.0, 3e3), st.integers(0, 2)), max_size=60))
def test_agent_bumps_within_a_window_move_a_scalar_by_at_most_the_cap(axes, caps, events):
    event_cap, window_cap, window = caps
    s = _make(axes, caps)
    assert (s.event_cap, s.window_cap, s.window_seconds) == caps
    snaps = [(s.time, s.values)]
    for kind, delta, dt, i in events:
        name = s.axes[i % len(s.axes)]
        if kind == "decay":
            s.decay(dt)
        else:
            entry = s.bump(name, delta)
            assert abs(entry["applied"]) <= event_cap
            assert abs(entry["after"][name] - entry["before"][name]) <= event_cap + CAP_SLACK
        snaps.append((s.time, s.values))
    for i, (t0, v0) in enumerate(snaps):
        for t1, v1 in snaps[i + 1:]:
            if t1 - t0 > window:
                break
            for name in s.axes:
                # decay only lowers a scalar, so every rise comes from bumps in [t0, t1]; drops are capped too
                # but decay adds to them, so only the rise is bounded by the cap
                assert v1[name] - v0[name] <= window_cap + CAP_SLACK


def test_the_drop_cap_holds_and_reflect_alone_resets():
    s = AffectState(_axes_one_half_life(1e9), event_cap=0.2, window_cap=0.3, window_seconds=3600)
    s.reflect({"a": 0.9}, source="consolidation")
    assert s.values["a"] == pytest.approx(0.9, abs=1e-15)
    for _ in range(1000):  # the agent tries to zero its own distress
        s.bump("a", -1e9)
    assert s.values["a"] == pytest.approx(0.6, abs=1e-12)
    s.decay(3600.5)  # a new window
    assert s.bump("a", -1.0)["applied"] == pytest.approx(-0.2)
    s.reflect({"a": 0.0})
    assert s.values["a"] == 0.0 and s.components()["a"] == (0.0, 0.0)


def test_nothing_but_reflect_writes_a_scalar():
    s = AffectState(_axes_one_half_life(), initial={"a": 0.5})
    v = s.values
    v["a"] = 1.0
    led = s.ledger
    led.append({"event": "reflect"})
    led[0]["after"]["a"] = 1.0
    assert s.values["a"] == 0.5 and len(s.ledger) == 1 and s.ledger[0]["after"]["a"] == 0.5
    with pytest.raises(AttributeError):
        s.values = {"a": 1.0}
    public = {n for n in dir(s) if not n.startswith("_")}
    assert public == {"axes", "badge", "bump", "calibration", "components", "decay", "event_cap", "from_json",
                      "from_profile", "ledger", "ledger_jsonl", "parameters", "reflect", "replay", "time", "to_json",
                      "values", "window_cap", "window_seconds"}
    for name in ("event_cap", "window_cap", "window_seconds", "time", "axes"):
        with pytest.raises(AttributeError):
            setattr(s, name, 1.0)


@pytest.mark.parametrize("bad, match", [
    (lambda s: s.bump("nope", 0.1), "unknown affect axis 'nope'"),
    (lambda s: s.bump("a", float("nan")), "delta must be a finite number"),
    (lambda s: s.decay(-1), "dt_seconds must be a finite number"),
    (lambda s: s.decay(float("inf")), "dt_seconds must be a finite number"),
    (lambda s: s.reflect({"a": 1.2}), r"value of 'a' must be a finite number in \[0.0, 1.0\]"),
    (lambda s: s.reflect({}), "resets must be a non-empty mapping"),
    (lambda s: s.bump("a", True), "delta must be a number"),
])
def test_bad_events_are_one_line_argument_errors(bad, match):
    s = AffectState(_axes_one_half_life())
    with pytest.raises(ArgumentError, match=match) as err:
        bad(s)
    assert "\n" not in str(err.value)
    assert len(s.ledger) == 1  # nothing was logged


def test_bad_configuration_is_an_argument_error():
    with pytest.raises(ArgumentError, match="half_life_fast_s must be a finite number in"):
        AffectState({"a": {"half_life_fast_s": 0, "half_life_slow_s": 1, "share_fast": 0.5}})
    with pytest.raises(ArgumentError, match="needs half_life_fast_s"):
        AffectState({"a": {"half_life_fast_s": 1}})
    with pytest.raises(ArgumentError, match="event_cap"):
        AffectState(_axes_one_half_life(), event_cap=2)


@SETTINGS
@given(axes_st, caps_st, events_st)
def test_the_ledger_replays_bit_for_bit(axes, caps, events):
    s = _make(axes, caps)
    for e in events:
        _apply(s, e)
    for ledger in (s.ledger, s.ledger_jsonl(), [json.loads(line) for line in s.ledger_jsonl().splitlines()]):
        r = AffectState.replay(ledger)
        assert r == s
        assert r.values == s.values and r.components() == s.components()  # bitwise (==, not approx)
        assert r.ledger_jsonl() == s.ledger_jsonl()


def test_a_tampered_ledger_does_not_replay():
    s = AffectState(_axes_one_half_life())
    s.bump("a", 0.9, source="agent")
    s.decay(60)
    led = s.ledger
    led[1]["applied"] = 0.9  # claims the cap did not apply
    with pytest.raises(EmostatsError, match="entry 1 .bump at t=0.0. does not replay"):
        AffectState.replay(led)
    led = s.ledger
    led[2]["after"]["a"] += 1e-9
    with pytest.raises(EmostatsError, match="entry 2"):
        AffectState.replay(led)
    with pytest.raises(EmostatsError, match="must start with its 'init' entry"):
        AffectState.replay(s.ledger[1:])


@SETTINGS
@given(axes_st, caps_st, events_st)
def test_json_round_trip_and_schema(axes, caps, events):
    s = _make(axes, caps)
    for e in events:
        _apply(s, e)
    text = s.to_json()
    assert AffectState.from_json(text) == s
    t = AffectState.from_json(text)
    t.decay(10.0)
    s.decay(10.0)
    assert t == s  # the loaded state carries on as the original would
    doc = json.loads(text)
    STATE.validate(doc)
    for line in s.ledger_jsonl().splitlines():
        ENTRY.validate(json.loads(line))


def test_schema_rejects_out_of_range_state():
    s = AffectState(_axes_one_half_life(), initial={"a": 0.4})
    doc = json.loads(s.to_json())
    doc["axes"]["a"]["fast"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        STATE.validate(doc)
    jsonschema.Draft202012Validator.check_schema(schema("state"))
    with pytest.raises(jsonschema.ValidationError):
        ENTRY.validate({"time": 0.0, "event": "bump", "before": {"a": 0.0}, "after": {"a": 0.1}, "source": "agent"})


def test_from_json_refuses_an_edited_state():
    s = AffectState(_axes_one_half_life())
    s.bump("a", 0.2)
    doc = json.loads(s.to_json())
    doc["axes"]["a"]["slow"] = 0.5  # pumped by hand
    with pytest.raises(EmostatsError, match="does not replay to the saved state"):
        AffectState.from_json(json.dumps(doc))
    assert AffectState.from_json(json.dumps(doc), verify=False).components()["a"][1] == 0.5
    with pytest.raises(EmostatsError, match="expected a saved affect state"):
        AffectState.from_json('{"schema": "something else"}')
    with pytest.raises(EmostatsError, match="not a JSON document"):
        AffectState.from_json("{")


def test_bumps_combine_in_fixed_proportions_and_the_window_slides():
    s = AffectState({"a": {"half_life_fast_s": 60.0, "half_life_slow_s": 3600.0, "share_fast": 0.25}},
                    event_cap=0.2, window_cap=0.3, window_seconds=100.0)
    assert s.bump("a", 0.2)["capped_by"] == []
    assert s.components()["a"] == pytest.approx((0.05, 0.15), abs=1e-16)
    e = s.bump("a", 0.2)
    assert e["capped_by"] == ["window"] and e["applied"] == pytest.approx(0.1)
    s.decay(100.0)  # the first two bumps are still in the window (both ends count)
    assert s.bump("a", 0.2)["applied"] == 0.0
    s.decay(1e-6)
    assert s.bump("a", 0.5)["applied"] == pytest.approx(0.2)
    assert s.bump("a", 0.2, source="x")["capped_by"] == ["window"]


def test_range_cap_at_one():
    s = AffectState(_axes_one_half_life(1e9), event_cap=1.0, window_cap=1.0, initial={"a": 0.9})
    e = s.bump("a", 0.5)
    assert e["capped_by"] == ["range"] and s.values["a"] == 1.0


def test_badge_is_one_line():
    s = AffectState({n: _axes_one_half_life()["a"] for n in ("fear", "joy")})
    s.bump("fear", 0.123)
    s.decay(2 * 86400 + 3 * 3600 + 7 * 60)
    b = s.badge()
    assert "\n" not in b and b.startswith("affect t+2d03h07m: fear ") and b.endswith("joy 0.00")
    assert math.isclose(float(b.split("fear ")[1].split(",")[0]), s.values["fear"], abs_tol=0.005)
