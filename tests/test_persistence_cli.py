"""`emostats persistence` and `emostats affect-profile` on a small study; affect_profile bounds (issue 4)."""

import json
import math

import numpy as np
import pytest
import xarray as xr

import emostats as es
from emostats.affect import affect_profile
from emostats.cli import main


def test_persistence_prints_a_table_without_output(small_study, capsys):
    assert main(["persistence", str(small_study), "--lag", "10", "--max-lag", "30", "--n-boot", "0"]) == 0
    out = capsys.readouterr().out
    assert "Lag persistence at L = 10" in out and "lag profile" in out and "[4,inf)" in out


def test_persistence_writes_results_and_refuses_to_overwrite(small_study, tmp_path, capsys):
    out = tmp_path / "p.nc"
    args = ["persistence", str(small_study), "--lag", "5", "--max-lag", "20", "--n-boot", "5", "-o", str(out), "-q"]
    assert main(args) == 0
    with xr.open_datatree(out, engine="netcdf4") as tree, es.open_study(small_study) as study:
        assert {"persistence", "profile", "trajectories", "decay", "decay_profile"} <= set(tree.children)
        assert len(tree.attrs["input_sha256"]) == 64 and tree.attrs["param_lag"] == 5
        assert tree.attrs["preset"] == "persistence" and tree.attrs["emostats_results"] == 1
        act = study["tokens"]["probe_act"]
        np.testing.assert_allclose(tree["persistence"]["r"].values, es.lag_persistence(act, lag=5).r.values,
                                   rtol=1e-12)
        assert tree["decay"].attrs["n_boot"] == 5
    capsys.readouterr()
    assert main(args) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


def test_persistence_bad_options_are_one_line_errors(small_study, tmp_path, capsys):
    assert main(["persistence", str(small_study), "--lag", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--lag must be >= 1 token" in err
    assert main(["persistence", str(tmp_path / "missing.nc")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_persistence_chunked_study_gives_the_same_table(small_study, capsys):
    main(["persistence", str(small_study), "--lag", "7", "--max-lag", "10", "--n-boot", "0"])
    eager = capsys.readouterr().out
    main(["persistence", str(small_study), "--lag", "7", "--max-lag", "10", "--n-boot", "0", "--chunks", "333"])
    assert capsys.readouterr().out == eager


def _check_bounds(profile):
    fields = profile["fields"]
    for name, values in profile["emotions"].items():
        assert set(values) == set(fields), name
        for key, value in values.items():
            bounds = fields[key]
            items = value if isinstance(value, list) else [value]
            for v in items:
                if v is None or isinstance(v, bool):
                    continue
                assert bounds["min"] <= v <= bounds["max"], (name, key, v)
        w = values["weight_fast"] + values["weight_slow"] + values["tail_level"]
        assert w == pytest.approx(1.0, abs=1e-5)
        assert values["half_life_fast_tokens"] <= values["half_life_slow_tokens"]


def test_affect_profile_json_is_bounded_and_documented(small_study, tmp_path, capsys):
    out = tmp_path / "profile.json"
    assert main(["affect-profile", str(small_study), "-o", str(out), "--max-lag", "60", "--n-boot", "10"]) == 0
    assert "emotions fitted" in capsys.readouterr().out
    profile = json.loads(out.read_text())
    assert profile["schema"] == "emostats.affect_profile/2"
    assert "half-life" in profile["description"] and "[0, 1]" in profile["description"]
    assert all("description" in f for f in profile["fields"].values())
    assert len(profile["emotions"]) == 12 and profile["source"]["sha256"]
    _check_bounds(profile)
    assert main(["affect-profile", str(small_study), "-o", str(out)]) == 2  # no --force


def test_affect_profile_recovers_planted_half_lives_and_handles_a_constant_probe():
    from emostats import synth

    tree, truth = synth.make_study(n_tokens=40_000, n_probes=4, n_features=0, k=4, hidden=16,
                                   groups=("tokens",), seed=11, n_conversations=25, turn_length=(200, 900))
    act = tree["tokens"]["probe_act"].copy()
    act[:, 3] = 2.5  # a dead probe
    profile = affect_profile(act, max_lag=200, n_boot=0)
    _check_bounds(profile)
    emotions = list(profile["emotions"].values())
    assert [e["fit_ok"] for e in emotions] == [True, True, True, False]
    slow = math.log(2) / -math.log(truth.attrs["phi_slow"])  # 138 tokens
    fast = math.log(2) / -math.log(truth.attrs["phi_fast"])  # 3.1 tokens
    for e in emotions[:3]:
        assert e["n_components"] == 2
        assert e["half_life_fast_tokens"] == pytest.approx(fast, rel=0.4)
    # the slow half-life is longer than the 200-token window can pin down (it trades off with the
    # tail): only its median over the probes is checked, within a factor of two
    median_slow = np.median([e["half_life_slow_tokens"] for e in emotions[:3]])
    assert slow / 2 < median_slow < slow * 2
    assert emotions[3]["weight_fast"] == 1.0 and emotions[3]["level_q50"] is None
    json.dumps(profile, allow_nan=False)  # every value is a plain JSON number or null


def test_affect_profile_flat_profile_is_all_tail():
    # a probe constant within each segment has r(L) = 1 at every lag: no decay, so the whole state is
    # tail, and the (weightless) half-lives stay numbers within their bounds rather than null
    rng = np.random.default_rng(5)
    lengths = rng.integers(80, 160, size=30)
    conv = np.repeat(np.arange(lengths.size), lengths)
    flat = np.repeat(rng.normal(size=lengths.size), lengths)
    vals = np.stack([flat, rng.normal(size=flat.size)], axis=1)
    act = xr.DataArray(vals, dims=("token", "probe"), coords={
        "conversation": ("token", conv), "turn": ("token", np.zeros_like(conv)), "probe": ["flat", "noise"]})
    profile = affect_profile(act, max_lag=60, n_boot=0)
    _check_bounds(profile)
    e = profile["emotions"]["flat"]
    assert e["fit_ok"] and e["tail_level"] == pytest.approx(1.0) and e["weight_fast"] == 0.0
    assert e["half_life_fast_tokens"] is not None and e["half_life_slow_tokens"] is not None
