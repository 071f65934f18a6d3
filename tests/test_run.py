"""Tests of emostats.run and `emostats run`: orchestration, provenance, skipping, determinism, CLI errors."""

import numpy as np
import pytest
import xarray as xr

import emostats as es
from emostats._results import RESULTS_MARKER, is_results
from emostats.cli import main
from emostats.pipeline import registry
from emostats.pipeline.context import Context
from emostats.pipeline.params import LAG, MAX_LAG
from emostats.pipeline.registry import Step
from tests.studies import tiny_study


@pytest.fixture
def tiny_path(tmp_path):
    path = tmp_path / "tiny.nc"
    es.save(tiny_study(), path)
    return path


def _tiny_without(*groups):
    tree = tiny_study()
    keep = {n.path: n.to_dataset(inherit=False) for n in tree.subtree
            if n.path != "/" and n.path.strip("/") not in groups}
    out = xr.DataTree.from_dict(keep)
    out.attrs = dict(tree.attrs)
    return out


# --------------------------------------------------------------------------- machinery (stand-in steps)


def _mean_step(ctx):
    """A stand-in analysis: the mean of probe_act per probe, with awkward attrs."""
    act = ctx.study["tokens"]["probe_act"]
    ds = xr.Dataset({"m": act.mean("token").astype(float)})
    ds["m"].attrs["long_name"] = "mean"
    ds.attrs.update(flag=True, nothing=None, bins=((1, 2), (4, np.inf)), lag=ctx.params["lag"])
    return ds


def _random_step(ctx):
    rng = np.random.default_rng(ctx.step_seed("noise"))
    return xr.Dataset({"x": ("i", rng.normal(size=5))})


def _steering_step(ctx):
    return xr.Dataset({"s": ctx.study["steering"]["steered_act"].mean()})


def _after_step(ctx):
    return xr.Dataset({"t": ctx.results["steer"]["s"] * 2})


def _registry(steps):
    """Replace the registry's steps for one test (the engine, select and the params read it)."""
    saved = dict(registry.STEPS)
    registry.STEPS.clear()
    registry.STEPS.update(steps)
    try:
        yield steps
    finally:
        registry.STEPS.clear()
        registry.STEPS.update(saved)


@pytest.fixture
def fake_steps():
    steps = {
        "mean": Step("mean", "mean activation", _mean_step, 1, needs=("tokens/probe_act",), params=(LAG, MAX_LAG)),
        "noise": Step("noise", "noise", _random_step, 2, seed="noise"),
        "steer": Step("steer", "steering mean", _steering_step, 3, needs=("steering",)),
        "after": Step("after", "needs steer", _after_step, 4, after=("steer",)),
        "choice": Step("choice", "random or moments", _random_step, 5, needs=(("random", "moments"),)),
    }
    yield from _registry(steps)


def test_provenance_and_groups(fake_steps, tiny_path):
    res = es.run(tiny_path, lag=3, max_lag=7, seed=11, progress=False)
    assert set(res.children) == {"mean", "noise", "steer", "after", "choice"}
    a = res.attrs
    assert a[RESULTS_MARKER] == 1 and is_results(res) and a["preset"] == "run"
    assert a["emostats_version"] == es.__version__
    assert a["input_sha256"] == es.sha256(tiny_path)
    assert a["input_files"] == "tiny.nc"
    assert a["param_lag"] == 3 and a["param_max_lag"] == 7 and a["seed"] == 11
    assert all(f"time_{s}" in a for s in fake_steps)
    assert "seed_noise" in a and "seed_mean" not in a
    assert a["study_model"] == "hand-built"
    assert a["steps_run"].split() == list(fake_steps) and a["steps_skipped"] == ""
    assert res["mean"]["m"].attrs["long_name"] == "mean"
    assert res["mean"].attrs["step"] == "mean" and res["mean"].attrs["title"] == "mean activation"


def test_missing_group_skips_with_one_line(fake_steps, capsys):
    res = es.run(_tiny_without("steering", "moments"), progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    # steer and its dependant are skipped, each with one line; choice still runs from /random? no: neither
    assert len(err) == 3, err
    assert err[0] == "emostats run: skipped steer: needs /steering, which this study does not have"
    assert err[1].startswith("emostats run: skipped after: needs the steer step, which was skipped (needs /steering")
    assert err[2] == "emostats run: skipped choice: needs /random or /moments; this study has neither"
    assert res.attrs["skipped_steer"] == "needs /steering, which this study does not have"
    assert res.attrs["steps_skipped"].split() == ["steer", "after", "choice"]
    assert "steer" not in res.children and "mean" in res.children


def test_quiet_prints_nothing(fake_steps, capsys):
    es.run(_tiny_without("steering"), progress=False, quiet=True)
    assert capsys.readouterr().err == ""


def test_results_round_trip_and_same_bits(fake_steps, tiny_path, tmp_path):
    a = es.run(tiny_path, seed=5, progress=False)
    b = es.run(tiny_path, seed=5, progress=False)
    c = es.run(tiny_path, seed=6, progress=False)
    es.save(a, tmp_path / "a.nc")
    back = xr.load_datatree(tmp_path / "a.nc")  # loaded and closed: tests leave no HDF5 handle open
    assert back.attrs["emostats_results"] == 1
    assert back["mean"].attrs["flag"] == 1 and back["mean"].attrs["nothing"] == "none"
    for name in a.children:
        xr.testing.assert_equal(a[name].to_dataset(), b[name].to_dataset())
        xr.testing.assert_equal(a[name].to_dataset(), back[name].to_dataset())
    assert not np.array_equal(a["noise"]["x"], c["noise"]["x"])


def test_steps_subset_and_bad_parameters(fake_steps, tiny_path):
    res = es.run(tiny_path, steps=["mean"], progress=False)
    assert set(res.children) == {"mean"}
    with pytest.raises(es.EmostatsError, match="unknown step 'nope'; choose from"):
        es.run(tiny_path, steps=["nope"], progress=False)
    with pytest.raises(es.EmostatsError, match=r"max_lag \(5\) must be >= lag \(10\)"):
        es.run(tiny_path, lag=10, max_lag=5, progress=False)
    with pytest.raises(es.EmostatsError, match="match_stat must be 'median' or 'mean'"):
        es.run(tiny_path, match_stat="mode", progress=False)


def test_analysis_error_becomes_a_skip(tiny_path, capsys):
    def broken(ctx):
        raise es.MissingGroupError("/features: variable self_rating missing; rate features first")

    for _ in _registry({"r": Step("r", "ratings", broken, 1)}):
        res = es.run(tiny_path, progress=False)
    assert res.attrs["skipped_r"] == "/features: variable self_rating missing; rate features first"
    assert "skipped r: /features" in capsys.readouterr().err


def test_step_seeds_differ_and_repeat():
    ctx = Context(None, {}, seed=0)
    assert ctx.step_seed("a") == Context(None, {}, seed=0).step_seed("a")
    assert ctx.step_seed("a") != ctx.step_seed("b")
    assert ctx.step_seed("a") != Context(None, {}, seed=1).step_seed("a")


# --------------------------------------------------------------------------- CLI


def test_cli_run_writes_and_refuses_to_overwrite(fake_steps, tiny_path, tmp_path, capsys):
    out = tmp_path / "res.nc"
    assert main(["run", str(tiny_path), "-o", str(out), "--no-progress", "--seed", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert xr.load_datatree(out).attrs["seed"] == 3
    assert main(["run", str(tiny_path), "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists; pass --force" in err[0]
    assert main(["run", str(tiny_path), "-o", str(out), "--no-progress", "--force", "-q"]) == 0


@pytest.mark.parametrize("case", ["missing", "not_netcdf"])
def test_cli_run_bad_inputs(case, tmp_path, capsys):
    path = tmp_path / "study.nc"
    if case == "not_netcdf":
        path.write_text("just text\n")
    code = main(["run", str(path), "-o", str(tmp_path / "out.nc"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("emostats: error:")
    assert ("no such file" if case == "missing" else "not a NetCDF file") in err[0]
    assert "Traceback" not in err[0]
    assert not (tmp_path / "out.nc").exists()


def test_default_output_name():
    from emostats.cli.run import default_output

    assert default_output("a/b/study.nc").as_posix() == "a/b/study.results.nc"


# --------------------------------------------------------------------------- the real analyses

FAST = dict(n_boot=20, n_random=200, n_candidates=400, n_perm=500)


def _assert_same_data(a, b):
    assert set(a.children) == set(b.children)
    for name in a.children:
        da, db = a[name].to_dataset(inherit=False), b[name].to_dataset(inherit=False)
        xr.testing.assert_identical(da.drop_attrs(deep=True), db.drop_attrs(deep=True))
        for var in da.variables:  # bit for bit, NaN in the same places
            va, vb = np.asarray(da[var].values), np.asarray(db[var].values)
            if va.dtype.kind == "f":
                assert np.array_equal(np.atleast_1d(va).view(np.uint8), np.atleast_1d(vb).view(np.uint8)), (name, var)


@pytest.fixture(scope="module")
def real_results(small_study):
    """Every analysis on the small synthetic study (seed 2)."""
    return es.run(small_study, seed=2, progress=False, quiet=True, **FAST)


def test_same_seed_same_results_files(small_study, real_results, tmp_path):
    a = real_results
    b = es.run(small_study, seed=2, progress=False, quiet=True, threads=1, **FAST)
    # every step runs on a synthetic study but looping, which needs /tokens repeat_share (synth has none yet),
    # and bootstrap, which needs at least 2 conversations (this small study has one); synth's /evaluations has no
    # judge calibration check (judge_calibration)
    assert set(a.attrs["steps_skipped"].split()) <= {"looping", "bootstrap", "judge_calibration"}, a.attrs["steps_skipped"]
    es.save(a, tmp_path / "a.nc")
    es.save(b, tmp_path / "b.nc")
    _assert_same_data(xr.load_datatree(tmp_path / "a.nc"), xr.load_datatree(tmp_path / "b.nc"))
    c = es.run(small_study, seed=3, progress=False, quiet=True, steps=["random_directions"], **FAST)
    assert not np.array_equal(a["random_directions"]["r"].values, c["random_directions"]["r"].values)


def test_every_result_variable_has_a_long_name(real_results):
    res = real_results
    missing = [f"{node.path}/{name}" for node in res.subtree for name, var in node.data_vars.items()
               if not var.attrs.get("long_name")]
    assert missing == []
    assert res["summary"].attrs["lag"] == 100
    assert {"persistence", "profile", "trajectories", "decay", "random_directions", "variance_matched",
            "emotion_pcs", "sae_persistence", "sae_matched", "ratings", "mentions", "steering",
            "summary"} <= set(res.children)


def test_summary_rows_match_the_analyses(small_study, real_results):
    res = real_results
    s = res["summary"]
    val = lambda row: float(s["value"].sel(row=row))  # noqa: E731
    assert val("probe_persistence") == pytest.approx(float(res["persistence"]["r"].mean()), rel=1e-12)
    assert val("random_persistence") == pytest.approx(float(res["random_directions"]["r"].mean()), rel=1e-12)
    vm = res["variance_matched"]
    assert val("residual_mean") == pytest.approx(float(vm["residual"].mean()), rel=1e-12)
    assert val("residual_positive") == int((vm["residual"] > 0).sum())
    st = res["steering"].sel(offset=5)
    assert val("steering_5") == int(st["significant"].sum())
    assert val("steering_5_persistent") == int((st["significant"] & (st["z"] > 0)).sum())
    assert val("sae_spearman") == float(res["sae_matched"]["rho"])
    ratings = res["ratings"]
    assert val("self_text_rating") == float(ratings["rho"].sel(pair="self_rating:text_rating"))
    assert val("mentions_significant") == int(res["mentions"]["significant"].sum())
    conversations = xr.load_datatree(small_study)["tokens"]["conversation"].values
    assert s.attrs["n_conversations"] == len(np.unique(conversations))


def test_moments_without_the_run_lag_skip_in_one_line(small_study, capsys):
    res = es.run(small_study, lag=50, progress=False, steps=["random_directions", "candidates",
                                                            "variance_matched", "persistence"], **FAST)
    err = capsys.readouterr().err.strip().splitlines()
    assert "persistence" in res.children
    assert err[0].startswith("emostats run: skipped random_directions: /moments: lag 50 not among the stored")
    assert len(err) == 3


def test_dask_backed_study_gives_the_same_numbers(small_study, real_results):
    from tests.conftest import ATOL_DASK, RTOL_REFERENCE

    lazy = es.run(small_study, seed=2, progress=False, quiet=True, chunks={"token": 700}, **FAST)
    assert set(lazy.children) == set(real_results.children)
    for name in real_results.children:
        a, b = real_results[name].to_dataset(), lazy[name].to_dataset()
        #: nonlinear least squares stops within its own tolerance: a 1e-15 change in the curve moves
        #: a fitted half-life by up to ~1e-7 relative
        rtol = 1e-5 if name.startswith("decay") else RTOL_REFERENCE
        for var in a.data_vars:
            x, y = np.asarray(a[var].values), np.asarray(b[var].values)
            if x.dtype.kind == "f":
                np.testing.assert_allclose(y, x, rtol=rtol, atol=ATOL_DASK, err_msg=f"{name}/{var}")
            else:
                np.testing.assert_array_equal(y, x, err_msg=f"{name}/{var}")


def test_summary_names_the_step_behind_an_empty_row(small_study):
    res = es.run(small_study, lag=50, progress=False, quiet=True,
                 steps=["random_directions", "persistence", "summary"], **FAST)
    detail = dict(zip(res["summary"]["row"].values, res["summary"]["detail"].values))
    assert detail["random_persistence"] == "not available: step random_directions was skipped (see its section)"
    assert detail["steering_5"] == "not available: step steering did not run"
    assert detail["self_text_rating"] == "not available: step ratings did not run"
    assert detail["probe_persistence"] == "r at lag 50"


def test_ratings_survive_a_lag_without_residuals(small_study):
    # a lag longer than every turn: no residuals can be matched, but the rating correlations that do not
    # involve them were lost with the whole step
    res = es.run(small_study, lag=5000, max_lag=5000, progress=False, quiet=True,
                 steps=["sae_persistence", "ratings"], **FAST)
    ra = res["ratings"]
    assert "residual_skipped" in ra.attrs
    assert int(ra["n"].sel(pair="self_rating:text_rating")) > 0
    assert int(ra["n"].sel(pair="residual:self_rating")) == 0
