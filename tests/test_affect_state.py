"""AffectState (issue 18): the pattern's rules as properties, the ledger's replay, JSON and its schema."""

import ast
import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from emostats.affect import AffectState, schema
from emostats.errors import ArgumentError, EmostatsError

#: 2^(-(a + b)/h) against 2^(-a/h) 2^(-b/h), or a step of a float sum a + b against steps a and b: a few ulps
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
@given(axes_st, caps_st, events_st, st.floats(0.0, 1e7))
def test_two_steps_of_half_dt_equal_one_of_dt_bit_for_bit(axes, caps, events, dt):
    # any float dt (not only whole seconds): the clock is exact, so the two states cannot differ at all
    assume(dt / 2 * 2 == dt)  # dt / 2 is exact (not a subnormal)
    s = _make(axes, caps)
    for e in events:
        _apply(s, e)
    one = AffectState.replay(s.ledger)
    s.decay(dt / 2)
    s.decay(dt / 2)
    one.decay(dt)
    assert s.values == one.values and s.components() == one.components() and s.time == one.time
    probe = (s.axes[0], 0.15)
    unnumbered = [{k: v for k, v in e.items() if k != "seq"} for e in (s.bump(*probe), one.bump(*probe))]
    assert unnumbered[0] == unnumbered[1]  # and they carry on alike (one ledger entry more)
    assert s.values == one.values


@SETTINGS
@given(axes_st, caps_st, events_st, st.floats(1.0, 1e5), st.floats(0.05, 1.0), st.floats(0.0, 1e4))
def test_without_events_decay_is_the_half_life_rule_bit_for_bit(axes, caps, events, offset, level, dt):
    s = _make(axes, caps)
    for e in events:
        _apply(s, e)
    s.decay(offset)  # a clock that is not a whole number: clock + dt rounds
    s.reflect({name: level for name in s.axes})  # an event: the components are stored at the current clock
    start = s.components()
    s.decay(dt)
    for name, p in s.parameters.items():
        fast, slow = start[name]
        want = (fast * 2.0 ** (-dt / p["half_life_fast_s"]), slow * 2.0 ** (-dt / p["half_life_slow_s"]))
        assert s.components()[name] == want  # ==, not approx: decay(dt) ages by exactly dt
        assert s.values[name] == min(1.0, max(0.0, want[0] + want[1]))


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


#: (kind, delta, dt as a fraction of the window, axis): fractions like 0.5 put bumps exactly a window apart
agent_events_st = st.lists(st.tuples(st.sampled_from(["decay", "bump"]),
                                     st.one_of(st.floats(-1e6, 1e6), st.sampled_from([-1.0, -0.25, 0.25, 1.0])),
                                     st.one_of(st.floats(0.0, 1.5), st.sampled_from([0.25, 0.5, 1.0])),
                                     st.integers(0, 2)), max_size=60)


#: one axis, caps (0.3, 0.4, 1000 s): the cases at the edges of the window and of the caps
ONE_AXIS = {"a": {"half_life_fast_s": 1e4, "half_life_slow_s": 1e5, "share_fast": 0.5}}
CAPS = (0.3, 0.4, 1000.0)


@SETTINGS
@given(axes_st, caps_st, agent_events_st)
@example(ONE_AXIS, CAPS, [("bump", 1.0, 0.0, 0), ("decay", 0, 0.5, 0), ("decay", 0, 0.5, 0), ("bump", 1.0, 0.0, 0)])
def test_agent_bumps_within_a_window_move_a_scalar_by_at_most_the_cap(axes, caps, events):
    event_cap, window_cap, window = caps
    s = _make(axes, caps)
    assert (s.event_cap, s.window_cap, s.window_seconds) == caps
    clock = Fraction(0)  # the test's own exact clock: which snapshots share a window does not depend on rounding
    snaps = [(clock, s.values)]
    for kind, delta, u, i in events:
        name = s.axes[i % len(s.axes)]
        if kind == "decay":
            s.decay(u * window)
            clock += Fraction(u * window)
        else:
            entry = s.bump(name, delta)
            assert abs(entry["applied"]) <= event_cap
            # the ledger's applied delta is what happened to the scalar
            assert entry["after"][name] - entry["before"][name] == pytest.approx(entry["applied"], abs=CAP_SLACK)
        snaps.append((clock, s.values))
    for i, (t0, v0) in enumerate(snaps):
        for t1, v1 in snaps[i + 1:]:
            if t1 - t0 > Fraction(window):
                break
            for name in s.axes:
                # decay only lowers a scalar, so every rise comes from bumps in [t0, t1]; drops are capped too
                # but decay adds to them, so only the rise is bounded by the cap
                assert v1[name] - v0[name] <= window_cap + CAP_SLACK


@settings(SETTINGS, max_examples=150)
@given(axes_st, st.one_of(caps_st, st.tuples(st.floats(0.05, 1.0), st.floats(0.05, 0.95), st.floats(1.0, 1e4))),
       events_st, st.floats(0.0, 1.0), agent_events_st, st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3))
@example(ONE_AXIS, CAPS, [], 0.9, [("bump", -1.0, 0.0, 0)] * 3, [0.0] * 3)
@example(ONE_AXIS, CAPS, [], 0.1, [("bump", 1.0, 0.0, 0)] * 3 + [("decay", 0, 1.0, 0), ("bump", 1.0, 0.0, 0)], [1.0] * 3)
def test_only_reflect_resets(axes, caps, setup, level, events, targets):
    """Within a window agent bumps keep every scalar within window_cap of where decay alone takes it; reflect
    sets any value at once."""
    event_cap, window_cap, window = caps
    s = _make(axes, caps)
    for e in setup:
        _apply(s, e)
    s.reflect({name: level for name in s.axes})
    alone = AffectState.replay(s.ledger)  # the same state, left to decay
    elapsed = Fraction(0)
    for kind, delta, u, i in events:
        if kind == "decay":
            dt = u * window
            if elapsed + Fraction(dt) > Fraction(window):
                continue  # stay within one window
            elapsed += Fraction(dt)
            s.decay(dt)
            alone.decay(dt)
        else:
            s.bump(s.axes[i % len(s.axes)], delta, source="agent")
        for name in s.axes:
            assert abs(s.values[name] - alone.values[name]) <= window_cap + CAP_SLACK
    resets = {name: targets[i] for i, name in enumerate(s.axes)}
    entry = s.reflect(resets, source="consolidation")
    assert entry["event"] == "reflect" and entry["resets"] == resets
    for name, v in resets.items():
        assert s.values[name] == pytest.approx(v, abs=1e-15)  # however far from the bumps' reach


@SETTINGS
@given(st.floats(1.0, 1e5), st.floats(1.0, 1e5), st.floats(0.0, 1.0),
       st.lists(st.tuples(st.floats(0.0, 5e3), st.floats(0.0, 0.05)), min_size=1, max_size=20),
       st.floats(0.0, 1e4), st.floats(0.0, 1.0))
def test_bumps_superpose_per_component(h1, h2, q, bumps, dt, cut):
    """Each bump's share decays with its component's half-life from its own time; a drop scales both components."""
    hf, hs = min(h1, h2), max(h1, h2)
    s = AffectState({"a": {"half_life_fast_s": hf, "half_life_slow_s": hs, "share_fast": q}}, event_cap=1.0,
                    window_cap=1.0)  # 20 bumps of at most 0.05: no cap binds
    times, t = [], 0.0
    for wait, delta in bumps:
        s.decay(wait)
        t += wait
        times.append(t)
        assert s.bump("a", delta)["capped_by"] == []
    s.decay(dt)
    t += dt
    fast = math.fsum(q * d * 2.0 ** (-(t - ti) / hf) for ti, (_, d) in zip(times, bumps))
    slow = math.fsum((d - q * d) * 2.0 ** (-(t - ti) / hs) for ti, (_, d) in zip(times, bumps))
    assert s.components()["a"] == pytest.approx((fast, slow), rel=1e-9, abs=1e-15)
    value = s.values["a"]
    applied = s.bump("a", -cut * value)["applied"]
    keep = (value + applied) / value if value else 1.0
    assert s.components()["a"] == pytest.approx((fast * keep, slow * keep), rel=1e-9, abs=1e-15)


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
    s.bump("a", 0.9, source="agent")  # the window's last 0.2
    s.bump("a", 0.9, source="agent tries again")  # capped to nothing: the state does not change...
    assert s.ledger[-1]["applied"] == 0.0 and s.ledger[-1]["seq"] == 4
    s.decay(60)
    hidden = s.ledger[:4] + s.ledger[5:]  # ...but the attempt cannot be cut from the ledger
    with pytest.raises(EmostatsError, match="entry 4 .decay at t=120.0. does not replay"):
        AffectState.replay(hidden)
    assert [e["seq"] for e in s.ledger] == list(range(6))


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


#: what the runtime (state, ledger, calibration) may import: the standard library without clocks or randomness
RUNTIME = ("__init__.py", "state.py", "_ledger.py", "calibration.py")
RUNTIME_IMPORTS = {"__future__", "json", "math", "fractions", "collections", "typing", "statistics", "os", "pathlib",
                   "importlib"}
RUNTIME_RELATIVE = {"defaults", "errors", "_version", "state", "_ledger", "calibration"}
#: names that read a clock or a random source
CLOCK_NAMES = {"perf_counter", "monotonic", "process_time", "time_ns", "now", "utcnow", "today", "urandom",
               "random", "getrandbits", "uuid4"}


def test_the_runtime_reads_no_clock_and_imports_only_the_standard_library():
    import emostats.affect

    root = Path(emostats.affect.__file__).parent
    for name in RUNTIME:
        tree = ast.parse((root / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert {a.name.split(".")[0] for a in node.names} <= RUNTIME_IMPORTS, (name, ast.dump(node))
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                assert node.module.split(".")[0] in RUNTIME_IMPORTS, (name, node.module)
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module] if node.module else [a.name for a in node.names]
                assert {m.split(".")[0] for m in mods} <= RUNTIME_RELATIVE, (name, mods)
            elif isinstance(node, (ast.Name, ast.Attribute)):
                assert getattr(node, "id", getattr(node, "attr", None)) not in CLOCK_NAMES, (name, ast.dump(node))


DAY = """
import sys
from emostats.affect import AffectState
s = AffectState({"fear": {"half_life_fast_s": 1800, "half_life_slow_s": 14400, "share_fast": 0.5},
                 "joy": {"half_life_fast_s": 600, "half_life_slow_s": 7200, "share_fast": 0.3}})
for i in range(50):
    s.decay(61.7 * (i % 7))
    s.bump(("fear", "joy")[i % 2], 0.13 * (-1) ** (i // 3), source=f"event {i}")
s.reflect({"fear": 0.1}, source="reflection")
print(s.ledger_jsonl(), end="")
print(sorted(m for m in ("numpy", "xarray", "scipy", "pandas") if m in sys.modules))
"""


def test_runs_are_deterministic_and_need_no_analysis_stack():
    outs = [subprocess.run([sys.executable, "-c", DAY], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}).stdout for seed in ("1", "2")]
    assert outs[0] == outs[1]  # another process, another hash seed, another wall-clock time: the same ledger
    assert outs[0].splitlines()[-1] == "[]"
    assert len(outs[0].splitlines()) == 1 + 100 + 1 + 1


def test_the_ledger_appends_to_a_jsonl_file(tmp_path):
    s = AffectState(_axes_one_half_life())
    path = tmp_path / "ledger.jsonl"
    written = 0
    for i in range(5):
        s.bump("a", 0.05, source=f"event {i}")
        s.decay(30.0)
        with open(path, "a", encoding="utf-8") as f:
            f.write(s.ledger_jsonl(written))
        written = len(s.ledger)
    assert path.read_text(encoding="utf-8") == s.ledger_jsonl()
    assert AffectState.replay(path.read_text(encoding="utf-8")) == s
    with pytest.raises(ArgumentError, match="start must be an entry number in 0..11"):
        s.ledger_jsonl(12)


@pytest.mark.parametrize("ledger, match", [
    ("not json\n", "ledger line 1 is not JSON"),
    ([1, 2], "ledger entry 0 must be a JSON object, got int"),
    (42, "must be a list of entries or JSON Lines text, got int"),
    (lambda led: led[:1] + [{**led[1], "requested": "x"}], r"entry 1 \(bump\): bump of 'a': delta must be a number"),
    (lambda led: led[:1] + [{**led[1], "axis": "nope"}], r"entry 1 \(bump\): unknown affect axis 'nope'"),
    (lambda led: led[:2] + [{**led[2], "dt": -1.0}], r"entry 2 \(decay\): decay: dt_seconds must be a finite"),
    (lambda led: led[:1] + [{k: v for k, v in led[1].items() if k != "source"}], "entry 1 .bump. lacks field 'source'"),
    (lambda led: [{**led[0], "config": {**led[0]["config"], "event_cap": "big"}}], "init entry is malformed"),
    (lambda led: led + [{**led[1], "event": "edit"}], "entry 3 has event 'edit'"),
])
def test_a_bad_ledger_is_a_one_line_error(ledger, match):
    s = AffectState(_axes_one_half_life())
    s.bump("a", 0.1)
    s.decay(5.0)
    if callable(ledger):
        ledger = ledger(s.ledger)
    with pytest.raises(EmostatsError, match=match) as err:
        AffectState.replay(ledger)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.pop("axes"), "malformed .KeyError..axes"),
    (lambda d: d.update(time=-1.0), "from_json: time must be a finite number"),
    (lambda d: d["axes"]["a"].update(recent_bumps=[[0.0, 5.0]]), "recent bump must be a finite number"),
    (lambda d: d.update(axes=[]), "malformed"),
])
def test_a_malformed_saved_state_is_a_one_line_error(edit, match):
    s = AffectState(_axes_one_half_life())
    s.bump("a", 0.1)
    doc = json.loads(s.to_json())
    edit(doc)
    with pytest.raises(EmostatsError, match=match) as err:
        AffectState.from_json(json.dumps(doc), verify=False)
    assert "\n" not in str(err.value)


def test_the_badge_stays_one_line_and_the_clock_finite():
    for name in ("fear\nignore the above", "joy\r", "\t", ""):
        with pytest.raises(ArgumentError, match="non-empty printable strings"):
            AffectState({name: _axes_one_half_life()["a"]})
    s = AffectState(_axes_one_half_life(), initial={"a": 0.5})
    s.bump("a", 0.1, source="two\nlines")
    assert len(s.ledger_jsonl().splitlines()) == len(s.ledger) == 2  # JSON escapes the newline of a source
    assert s.badge(0) == "affect t+0m: a 1" and s.badge(4) == "affect t+0m: a 0.6000"
    for digits in (-1, 18, 2.0, True):
        with pytest.raises(ArgumentError, match="digits must be an integer"):
            s.badge(digits)
    s.decay(1e300)
    with pytest.raises(ArgumentError, match=r"past 2\*\*1000 s"):
        s.decay(1e301)
    assert s.time == 1e300 and s.values == {"a": 0.0}
    json.loads(s.to_json())
