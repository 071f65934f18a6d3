"""Affect profile v2 and its calibration into an AffectState (issue 18): flags, levels, PCs, schema, CLI, docs."""

import importlib.util
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import emostats as es
from emostats import defaults as D
from emostats.affect import DEFAULT_VOCABULARY, AffectState, affect_profile, calibrate, schema
from emostats.cli import main
from emostats.errors import ArgumentError

PROFILE = jsonschema.Draft202012Validator(schema("profile"))
STATE = jsonschema.Draft202012Validator(schema("state"))
#: the level quantiles come from a histogram of s with bins of 1/LEVEL_BINS (linear within a bin): they lie in
#: the bin of the empirical (inverted-CDF) quantile, plus the 6-digit rounding of the profile
LEVEL_ATOL = 1e-3 + 1e-6
#: profile values are rounded to 6 significant digits
ROUND_RTOL = 1e-5


@pytest.fixture(scope="module")
def example_profile():
    with es.open_study(es.example_study()) as study:
        return affect_profile(study["tokens"]["probe_act"], max_lag=60, n_boot=4, n_pcs=3)


def _act(values, conv, names=None):
    names = names or [f"p{i}" for i in range(values.shape[1])]
    return xr.DataArray(values, dims=("token", "probe"), coords={
        "conversation": ("token", conv), "turn": ("token", np.zeros_like(conv)), "probe": names})


def test_example_profile_validates_and_flags_agree_with_the_values(example_profile):
    prof = example_profile
    PROFILE.validate(prof)
    json.dumps(prof, allow_nan=False)
    window, noise, bound = 60, prof["parameters"]["noise_half_life_tokens"], prof["parameters"][
        "half_life_bounds_tokens"][1]
    assert len(prof["emotions"]) == 171 and list(prof["pcs"]) == ["pc1", "pc2", "pc3"]
    for e in [*prof["emotions"].values(), *prof["pcs"].values()]:
        for c in ("fast", "slow"):
            h, w = e[f"half_life_{c}_tokens"], e[f"weight_{c}"] if c == "fast" or e["n_components"] == 2 else 0.0
            real = e["fit_ok"] and w > 0
            assert e[f"half_life_{c}_noise"] == (real and h < noise)
            assert e[f"half_life_{c}_extrapolated"] == (real and h > window)
            assert e[f"half_life_{c}_at_bound"] == (real and h >= bound * (1 - 1e-5))
        assert "baseline" not in e
    s = prof["summary"]
    assert s["n_fast_noise"] == sum(e["half_life_fast_noise"] for e in prof["emotions"].values())
    assert s["n_fast_noise"] > 100  # the finding on the example: the fast half-life is ~1 token


def test_profile_schema_rejects_a_v1_profile_and_out_of_range_values(example_profile):
    bad = json.loads(json.dumps(example_profile))
    bad["emotions"]["afraid"]["weight_fast"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        PROFILE.validate(bad)
    bad = json.loads(json.dumps(example_profile))
    bad["schema"] = "emostats.affect_profile/1"
    with pytest.raises(jsonschema.ValidationError):
        PROFILE.validate(bad)
    with pytest.raises(ArgumentError, match="expected an affect profile with schema 'emostats.affect_profile/2'"):
        AffectState.from_profile(bad)


def test_calibration_never_passes_an_artefact_on(example_profile):
    spt = 7.0
    for vocabulary in (None, "pcs", {"one": ["afraid"], "two": ["happy", "sad", "calm"]}):
        state = AffectState.from_profile(example_profile, vocabulary, seconds_per_token=spt)
        STATE.validate(json.loads(state.to_json()))
        members = example_profile["pcs"] if vocabulary == "pcs" else example_profile["emotions"]
        for axis, rec in state.calibration["axes"].items():
            p = state.parameters[axis]
            entries = [members[m] for m in rec["members"]]
            for c, default in (("fast", D.AFFECT_HALF_LIFE_FAST_S), ("slow", D.AFFECT_HALF_LIFE_SLOW_S)):
                r = rec[f"half_life_{c}"]
                ok = [e[f"half_life_{c}_tokens"] for e in entries if e["fit_ok"] and e[f"weight_{c}"] > 0
                      and (c == "fast" or e["n_components"] == 2)
                      and not e[f"half_life_{c}_noise"] and not e[f"half_life_{c}_extrapolated"]]
                if r["source"] == "measured":
                    assert 2 * len(ok) > len(entries)
                    assert r["tokens"] == pytest.approx(float(np.median(ok)))
                    want = r["tokens"] * spt
                else:
                    assert 2 * len(ok) <= len(entries) and r["tokens"] is None and r["why"]
                    want = default
                if c == "slow":
                    want = max(want, p["half_life_fast_s"])
                assert p[f"half_life_{c}_s"] == pytest.approx(want)
            if rec["share_fast"]["source"] == "default":
                assert p["share_fast"] == D.AFFECT_SHARE_FAST
    pcs = AffectState.from_profile(example_profile, "pcs").calibration["axes"]
    assert pcs["pc1"]["top_loadings"] == example_profile["pcs"]["pc1"]["top_loadings"]
    assert len(pcs["pc1"]["loadings"]) == 171


def test_default_vocabulary_uses_the_171_names():
    names = Path(es.__file__).with_name("data").joinpath("emotions_171.txt").read_text().splitlines()
    members = [m for group in DEFAULT_VOCABULARY.values() for m in group]
    assert set(members) <= set(names) and len(members) == len(set(members))  # disjoint groups
    assert list(DEFAULT_VOCABULARY) == ["tenderness", "fear", "depression", "joy", "shame", "pain"]


def test_planted_half_lives_are_measured_and_converted_to_seconds():
    from emostats import synth

    tree, truth = synth.make_study(n_tokens=40_000, n_probes=4, n_features=0, k=4, hidden=16,
                                   groups=("tokens",), seed=11, n_conversations=25, turn_length=(200, 900))
    act = tree["tokens"]["probe_act"]
    prof = affect_profile(act, max_lag=200, n_boot=0, n_pcs=1)
    PROFILE.validate(prof)
    names = [str(n) for n in act.probe.values[:3]]
    state = AffectState.from_profile(prof, {"planted": names}, seconds_per_token=2.0)
    rec = state.calibration["axes"]["planted"]
    fast = math.log(2) / -math.log(truth.attrs["phi_fast"])  # 3.1 tokens: above the noise threshold
    assert rec["half_life_fast"]["source"] == "measured"
    assert state.parameters["planted"]["half_life_fast_s"] == pytest.approx(2.0 * fast, rel=0.4)
    assert rec["share_fast"]["source"] == "measured"


def test_levels_match_numpy_and_pandas():
    rng = np.random.default_rng(3)
    conv = np.repeat(np.arange(12), rng.integers(50, 120, size=12))
    n = conv.size
    x = np.stack([rng.gamma(2.0, size=n), rng.normal(size=n) + 0.3 * conv, rng.standard_t(3, size=n)], axis=1)
    x[5, 2] = np.nan
    prof = affect_profile(_act(x, conv), max_lag=20, n_boot=0, n_pcs=0, saturation_z=3.0)
    for i, name in enumerate(["p0", "p1", "p2"]):
        col = x[:, i]
        ok = np.isfinite(col)
        z = (col - col[ok].mean()) / col[ok].std()
        s = np.clip(z / 3.0, 0.0, 1.0)
        e = prof["emotions"][name]
        for q in (50, 90, 99):
            want = np.quantile(s[ok], q / 100, method="inverted_cdf")
            assert e[f"level_q{q}"] == pytest.approx(want, abs=LEVEL_ATOL)
        between = pd.Series(s[ok]).groupby(conv[ok]).mean().std(ddof=1)
        assert e["level_between_conversation_sd"] == pytest.approx(between, rel=ROUND_RTOL)
    assert prof["pcs"] == {}


def test_pcs_are_those_of_the_correlation_matrix_and_fitted_on_their_scores():
    rng = np.random.default_rng(4)
    conv = np.repeat(np.arange(20), 150)
    latent = np.zeros((conv.size, 2))
    for t in range(1, conv.size):  # two AR(1) latents, restarted per conversation
        latent[t] = (0.0 if conv[t] != conv[t - 1] else 1.0) * latent[t - 1] * [0.97, 0.6] + rng.normal(size=2)
    x = latent @ rng.normal(size=(2, 5)) + 0.5 * rng.normal(size=(conv.size, 5))
    x *= [1.0, 3.0, 0.5, 2.0, 1.0]  # scales differ: the correlation matrix ignores them
    act = _act(x, conv)
    prof = affect_profile(act, max_lag=30, n_boot=0, n_pcs=2)
    w, v = np.linalg.eigh(np.corrcoef(x.T))
    v = v[:, ::-1][:, :2]
    v *= np.sign(v[np.abs(v).argmax(axis=0), [0, 1]])
    for j in range(2):
        got = [prof["pcs"][f"pc{j + 1}"]["loadings"][f"p{i}"] for i in range(5)]
        np.testing.assert_allclose(got, v[:, j], atol=1e-6)
        assert prof["pcs"][f"pc{j + 1}"]["variance_ratio"] == pytest.approx(w[::-1][j] / w.sum(), rel=ROUND_RTOL)
    z = (x - x.mean(0)) / x.std(0)
    scores = _act(z @ v, conv, ["pc1", "pc2"])
    twin = affect_profile(scores, max_lag=30, n_boot=0, n_pcs=0)["emotions"]
    for name in ("pc1", "pc2"):
        for key in ("half_life_fast_tokens", "half_life_slow_tokens", "weight_fast", "persistence_at_lag"):
            assert prof["pcs"][name][key] == pytest.approx(twin[name][key], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"vocabulary": {"fear": ["afraid", "afriad"]}}, "names 1 emotion.s. the profile lacks: 'afriad'"),
    ({"vocabulary": {"fear": "afraid"}}, "must list emotion names"),
    ({"vocabulary": "axes"}, "vocabulary must be a dict"),
    ({"seconds_per_token": 0}, "seconds_per_token must be a finite number > 0"),
    ({"seconds_per_token": float("nan")}, "seconds_per_token must be a finite number > 0"),
])
def test_bad_calibration_arguments_are_one_line_errors(example_profile, kwargs, match):
    with pytest.raises(ArgumentError, match=match) as err:
        AffectState.from_profile(example_profile, **kwargs)
    assert "\n" not in str(err.value)


def test_pcs_vocabulary_needs_pcs_in_the_profile(example_profile):
    prof = {**example_profile, "pcs": {}}
    with pytest.raises(ArgumentError, match="no emotion-space PCs"):
        calibrate(prof, "pcs")


def test_affect_profile_command_writes_a_valid_profile_that_loads(small_study, tmp_path, capsys):
    out = tmp_path / "profile.json"
    assert main(["affect-profile", str(small_study), "-o", str(out), "--max-lag", "40", "--n-boot", "0",
                 "--n-pcs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "token-level noise for" in printed and "beyond the 40-token window" in printed
    prof = json.loads(out.read_text())
    PROFILE.validate(prof)
    assert list(prof["pcs"]) == ["pc1", "pc2"] and prof["parameters"]["window_tokens"] == 40
    state = AffectState.from_profile(out, {"fear": ["afraid", "alarmed", "anxious"]}, seconds_per_token=3.0)
    assert state.calibration["seconds_per_token"] == 3.0
    assert main(["affect-profile", str(small_study), "-o", str(out), "--n-pcs", "-1"]) == 2
    assert "--n-pcs must be >= 0" in capsys.readouterr().err


def test_affect_profile_help_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        main(["affect-profile", "--help"])
    text = capsys.readouterr().out
    assert "``" not in text and ":func:" not in text and ":meth:" not in text
    assert "token-level noise" in text and "--n-pcs" in text


def test_worked_example_script_runs_small(tmp_path, capsys):
    path = Path(__file__).parents[1] / "docs" / "examples" / "affect_day.py"
    spec = importlib.util.spec_from_file_location("affect_day", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "day.png"
    state = mod.main(["--quick", "-o", str(out)])
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = json.loads(capsys.readouterr().out)
    assert printed["badge"] == state.badge() and AffectState.replay(state.ledger) == state
    bumps = [e for e in state.ledger if e["event"] == "bump"]
    assert any("window" in e["capped_by"] for e in bumps) and all(abs(e["applied"]) <= D.AFFECT_EVENT_CAP
                                                                   for e in bumps)
    reflect = [e for e in state.ledger if e["event"] == "reflect"]
    assert len(reflect) == 1 and reflect[0]["after"]["fear"] == 0.0
    # the badge docs/affect.md quotes at the reflection (its six axes run on the defaults in both fits but shame's
    # slow half-life, which the reflection resets)
    at_reflection = AffectState.replay(state.ledger[:state.ledger.index(reflect[0]) + 1]).badge()
    assert f"# '{at_reflection}'" in (path.parents[1] / "affect.md").read_text()
    assert (path.parents[1] / "_static" / "affect_day.png").stat().st_size < 150_000


@pytest.mark.parametrize("edit, match", [
    (lambda p: p.update(emotions=[]), "the profile's emotions must be a JSON object"),
    (lambda p: p["emotions"].update(afraid={"fit_ok": True}), "emotion 'afraid' lacks n_components, weight_fast"),
    (lambda p: p["emotions"].update(afraid=3), "emotion 'afraid' must be a JSON object"),
    (lambda p: p.update(pcs={"pc1": {}}), "PC 'pc1' lacks fit_ok"),
    (lambda p: p.update(pcs=[1]), "the profile's pcs must be a JSON object"),
])
def test_a_malformed_profile_is_a_one_line_error(example_profile, edit, match):
    prof = json.loads(json.dumps(example_profile))
    edit(prof)
    with pytest.raises(ArgumentError, match=match) as err:
        AffectState.from_profile(prof, "pcs" if "pc" in match else {"fear": ["afraid"]})
    assert "\n" not in str(err.value)


def test_bad_vocabulary_and_profile_files_are_one_line_errors(example_profile, tmp_path):
    for vocabulary, match in [({"fear": ["afraid", 3]}, "must list emotion names"), ({}, "non-empty dict"),
                              ({"fear": []}, "must list emotion names"), ({"": ["afraid"]}, "non-empty printable strings"),
                              (["afraid"], "non-empty dict")]:
        with pytest.raises(ArgumentError, match=match) as err:
            AffectState.from_profile(example_profile, vocabulary)
        assert "\n" not in str(err.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ArgumentError, match="the profile file is not JSON"):
        AffectState.from_profile(bad)
    with pytest.raises(ArgumentError, match="cannot read the profile .*missing.json"):
        AffectState.from_profile(tmp_path / "missing.json")


def test_schemas_ship_in_the_wheel():
    import fnmatch
    import tomllib

    root = Path(__file__).parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["emostats"]
    files = sorted((root / "emostats" / "affect" / "schemas").glob("*.json"))
    assert [f.name for f in files] == ["affect_profile.schema.json", "affect_state.schema.json"]
    for f in files:
        rel = f.relative_to(root / "emostats").as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel
        jsonschema.Draft202012Validator.check_schema(json.loads(f.read_text()))


def _cli_error(capsys, argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("emostats: error:"), err
    return err[0]


def test_affect_profile_command_refuses_to_overwrite_and_writes_atomically(small_study, tmp_path, capsys,
                                                                          monkeypatch):
    out = tmp_path / "profile.json"
    out.write_text("precious\n")
    args = ["affect-profile", small_study, "-o", out, "--max-lag", "20", "--n-boot", "0", "--n-pcs", "1", "-q"]
    assert "exists" in _cli_error(capsys, args) and "--force" in _cli_error(capsys, args)
    assert out.read_text() == "precious\n"

    real = Path.write_text

    def half_then_fail(self, text, *a, **k):  # the disk goes away halfway through the write
        real(self, text[:len(text) // 2], *a, **k)
        raise RuntimeError("write failed")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    with pytest.raises(RuntimeError, match="write failed"):
        main([str(a) for a in args + ["--force"]])
    monkeypatch.undo()
    assert out.read_text() == "precious\n" and sorted(p.name for p in tmp_path.iterdir()) == ["profile.json"]
    assert main([str(a) for a in args + ["--force"]]) == 0
    PROFILE.validate(json.loads(out.read_text()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.json"]


def test_affect_profile_command_bad_input_is_one_line(small_study, tmp_path, capsys):
    out = tmp_path / "p.json"
    assert "max_lag" in _cli_error(capsys, ["affect-profile", small_study, "-o", out, "--max-lag", "2"])
    assert "--lag" in _cli_error(capsys, ["affect-profile", small_study, "-o", out, "--lag", "-3"])
    _cli_error(capsys, ["affect-profile", tmp_path / "missing.nc", "-o", out])
    not_a_study = tmp_path / "x.nc"
    not_a_study.write_text("hello")
    _cli_error(capsys, ["affect-profile", not_a_study, "-o", out])
    assert "does not exist" in _cli_error(capsys, ["affect-profile", small_study, "-o", tmp_path / "no" / "p.json"])
    assert "is a folder" in _cli_error(capsys, ["affect-profile", small_study, "-o", tmp_path, "--force"])
    assert "also an input" in _cli_error(capsys, ["affect-profile", small_study, "-o", small_study, "--force"])
    assert not out.exists()


def _ar_study(phis, lengths, seed):
    """Probes that are AR(1) series with coefficients ``phis``, restarted per conversation."""
    rng = np.random.default_rng(seed)
    conv = np.repeat(np.arange(len(lengths)), lengths)
    x = np.zeros((conv.size, len(phis)))
    for t in range(conv.size):
        prev = x[t - 1] if t and conv[t] == conv[t - 1] else 0.0
        x[t] = np.asarray(phis) * prev + rng.normal(size=len(phis))
    return _act(x, conv)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.floats(0.0, 0.99), min_size=2, max_size=4), st.lists(st.integers(30, 200), min_size=3, max_size=6),
       st.integers(0, 2**32 - 1), st.integers(4, 30), st.floats(0.5, 6.0), st.floats(0.0, 5.0), st.integers(0, 3),
       st.floats(0.5, 100.0))
def test_any_profile_and_its_states_validate_against_the_schemas(phis, lengths, seed, max_lag, saturation_z,
                                                                 noise_tokens, n_pcs, seconds_per_token):
    act = _ar_study(phis, lengths, seed)
    prof = affect_profile(act, max_lag=max_lag, lag=min(5, max_lag), n_boot=0, n_pcs=n_pcs,
                          saturation_z=saturation_z, noise_tokens=noise_tokens)
    PROFILE.validate(json.loads(json.dumps(prof, allow_nan=False)))
    names = list(prof["emotions"])
    vocabularies = [{"all": names}, {"first": names[:1], "rest": names[1:]}] + (["pcs"] if prof["pcs"] else [])
    for vocabulary in vocabularies:
        state = AffectState.from_profile(prof, vocabulary, seconds_per_token)
        for rec in state.calibration["axes"].values():
            for c in ("fast", "slow"):
                if rec[f"half_life_{c}"]["source"] == "measured":  # never an artefact
                    assert noise_tokens <= rec[f"half_life_{c}"]["tokens"] <= max_lag
        state.bump(state.axes[0], 0.3)
        state.decay(1234.5)
        STATE.validate(json.loads(state.to_json()))
