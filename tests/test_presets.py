"""The commands of the one engine (`emostats run`, `persistence`, `nullmodels`) are presets of it:
same results format, same group and parameter names, same numbers for the same seed; `emostats report`
renders any of them. Also the null-model chain's behaviour (planted truth, CLI, plots), tested through
its preset."""

import numpy as np
import pytest
import xarray as xr

import emostats as es
from emostats.cli import main
from emostats.pipeline import PRESETS, STEPS, preset_steps

#: synth stores activations as float32: r recomputed from them differs from the float64 moments by this much
ATOL_FLOAT32_STORAGE = 2e-5


def _same_values(a, b, groups):
    """Every variable of every group bit for bit (NaN in the same places), attrs aside (timings)."""
    for name in groups:
        da, db = a[name].to_dataset(inherit=False), b[name].to_dataset(inherit=False)
        xr.testing.assert_identical(da.drop_attrs(deep=True), db.drop_attrs(deep=True))
        for var in da.variables:
            x, y = np.asarray(da[var].values), np.asarray(db[var].values)
            if x.dtype.kind == "f":
                assert np.array_equal(np.atleast_1d(x).view(np.uint8), np.atleast_1d(y).view(np.uint8)), (name, var)


@pytest.fixture(scope="module")
def outputs(small_study, tmp_path_factory):
    """`emostats run`, `nullmodels` and `persistence` on the same study with --seed 3."""
    folder = tmp_path_factory.mktemp("presets")
    paths = {}
    for command in ("run", "nullmodels", "persistence"):
        out = folder / f"{command}.nc"
        extra = [] if command == "persistence" else ["--n-random", "100", "--n-candidates", "300"]
        extra += [] if command == "nullmodels" else ["--n-boot", "10"]
        extra += ["--n-perm", "200"] if command == "run" else []
        assert main([command, str(small_study), "-o", str(out), "--seed", "3", "-q", "--no-progress", *extra]) == 0
        paths[command] = out
    return {k: xr.load_datatree(v) for k, v in paths.items()}, paths


@pytest.mark.parametrize("preset", ["nullmodels", "persistence"])
def test_preset_gives_the_run_numbers_in_shared_groups(outputs, preset):
    trees, _ = outputs
    run, part = trees["run"], trees[preset]
    ran, skipped = part.attrs["steps_run"].split(), part.attrs["steps_skipped"].split()
    assert set(part.children) == set(ran) and set(ran) | set(skipped) == set(preset_steps(preset))
    assert set(skipped) == set(run.attrs["steps_skipped"].split()) & set(preset_steps(preset))
    shared = set(part.children) & set(run.children)
    assert shared == set(part.children)
    _same_values(run, part, sorted(shared))
    for step in shared:  # the same seed of every random step, whichever command ran it
        if STEPS[step].random:
            assert part.attrs[f"seed_{step}"] == run.attrs[f"seed_{step}"]
    assert part.attrs["preset"] == preset and run.attrs["preset"] == "run"
    # the same parameter names, recorded only for the parameters the steps read
    assert {k for k in part.attrs if k.startswith("param_")} <= {k for k in run.attrs if k.startswith("param_")}
    for key in (k for k in part.attrs if k.startswith("param_")):
        assert np.array_equal(part.attrs[key], run.attrs[key]), key


@pytest.mark.parametrize("preset", ["nullmodels", "persistence"])
def test_report_renders_a_preset(outputs, preset, tmp_path):
    _, paths = outputs
    out = tmp_path / "rep"
    assert main(["report", str(paths[preset]), "-o", str(out), "--format", "qmd", "-q"]) == 0
    text = (out / "report.qmd").read_text()
    assert f"`emostats {preset}`" in text
    # sections whose steps the preset does not run say so
    missing = "Steering results are missing: the steering step(s) are not part of"
    assert missing in " ".join(text.split())
    if preset == "persistence":
        assert "Random-direction results are missing" in " ".join(text.split())
    else:
        assert "Residual persistence over variance-matched directions" in text


def test_presets_are_subsets_with_their_required_steps():
    assert preset_steps("run") == list(STEPS)
    for name, preset in PRESETS.items():
        assert set(preset.required) <= set(preset_steps(name))
        assert [s for s in STEPS if s in preset_steps(name)] == preset_steps(name)


def test_preset_without_its_required_group_is_a_one_line_error(small_study, tmp_path, capsys):
    tree = es.open_study(small_study)
    keep = {n.path: n.to_dataset(inherit=False) for n in tree.subtree if n.path not in ("/", "/moments", "/random")}
    bare = xr.DataTree.from_dict(keep)
    bare.attrs = dict(tree.attrs)
    tree.close()
    path = tmp_path / "bare.nc"
    es.save(bare, path)
    assert main(["nullmodels", str(path), "-o", str(tmp_path / "x.nc"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "random_directions: needs /moments or /random; this study has neither" in err[0]
    assert not (tmp_path / "x.nc").exists()


def test_bad_preset_and_step_outside_it():
    with pytest.raises(es.EmostatsError, match="preset must be one of run, persistence, nullmodels"):
        es.run(es.example_study(), preset="nope", progress=False)
    with pytest.raises(es.EmostatsError, match="'steering' is not part of the persistence preset"):
        es.run(es.example_study(), preset="persistence", steps=["steering"], progress=False)
    with pytest.raises(es.EmostatsError, match="unknown parameter 'n_bot'"):
        es.run(es.example_study(), n_bot=3, progress=False)


# --------------------------------------------------------------------------- the null-model chain (Figures 3-5)


@pytest.fixture(scope="module")
def planted():
    from emostats.synth import make_study

    return make_study(n_tokens=60_000, n_probes=40, n_features=0, hidden=96, seed=11,
                      groups=["tokens", "probes", "moments"])


@pytest.fixture(scope="module")
def analysis(planted):
    return es.run(planted[0], preset="nullmodels", seed=0, progress=False, quiet=True)


def test_planted_truth_recovered(planted, analysis):
    from emostats.nullmodels import direction_persistence

    tree, truth = planted
    out = analysis
    probe_r = out["persistence"]["r"].values
    # exact moments in synth: the moment formula reproduces the probes' pooled r (float32 storage)
    vec = tree["probes"]["vector"]
    from_moments = direction_persistence(tree["moments"].to_dataset(), vec)["r"].values
    np.testing.assert_allclose(from_moments, probe_r, atol=ATOL_FLOAT32_STORAGE)
    m = out["variance_matched"]
    expected = truth["residual_expected"].values
    # planted: probes beat variance-matched directions by a known amount
    assert float(m["mean"]) > 0 and float(m["t_p"]) < 1e-3
    assert abs(float(m["mean"]) - expected.mean()) < 0.5 * expected.mean()
    assert np.corrcoef(m["residual"].values, expected)[0, 1] > 0.5
    assert int(m["n_positive"]) >= 0.75 * m.sizes["target"]
    # random directions persist less than the probes (Figure 3)
    assert out["random_directions"]["r"].mean() < probe_r.mean()
    assert out["candidates"].sizes["direction"] == 5420
    pcs = out["emotion_pcs"]
    np.testing.assert_allclose(pcs["r_direction"].values, pcs["r"].values, atol=ATOL_FLOAT32_STORAGE)
    # leading emotion PCs carry the larger planted bonus: negative rank correlation with residual
    assert float(pcs["rank_rho"]) < 0


def test_cli_nullmodels(tmp_path, planted, capsys):
    tree, _ = planted
    study = tmp_path / "study.nc"
    es.save(tree, study)
    out = tmp_path / "null.nc"
    code = main(["nullmodels", str(study), "-o", str(out), "--n-random", "50", "--n-candidates", "400",
                 "--ks", "1,4,16,96", "--n-match", "10", "--no-progress"])
    assert code == 0 and out.exists()
    assert "probe residual mean" in capsys.readouterr().out
    res = xr.load_datatree(out)
    assert {"random_directions", "candidates", "persistence", "variance_matched", "emotion_pcs"} <= set(res.children)
    assert res.attrs["input_sha256"] == es.sha256(study) and res["candidates"].sizes["direction"] == 400
    assert res.attrs["param_n_matched"] == 10 and list(res.attrs["param_k_sweep"]) == [1, 4, 16, 96]
    assert main(["nullmodels", str(study), "-o", str(out)]) == 2  # exists, no --force
    assert "exists" in capsys.readouterr().err
    assert main(["nullmodels", str(study), "-o", str(out), "--ks", "a,b", "--force"]) == 2
    assert "--k-sweep must be comma-separated integers" in capsys.readouterr().err


def test_nullmodels_preset_leaves_an_all_nan_probe_out_of_the_pcs():
    from emostats.synth import make_study

    tree, _ = make_study(n_tokens=3000, n_probes=4, n_features=0, hidden=8, seed=1, n_conversations=6,
                         turn_length=(50, 300), groups=["tokens", "probes", "moments"])
    tree["tokens"]["probe_act"].values[:, 1] = np.nan
    with pytest.warns(RuntimeWarning, match="left out 1 probe"):
        out = es.run(tree, preset="nullmodels", n_random=20, n_candidates=60, k_sweep=[1, 8], n_matched=5,
                     progress=False, quiet=True)
    assert out["emotion_pcs"].sizes["pc"] == 3 and np.isfinite(out["emotion_pcs"]["r"].values).all()
    assert np.isnan(out["persistence"]["r"].values[1])


def test_plots_of_the_preset(analysis):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emostats.plots.nullmodels import plot_pc_residuals, plot_random_vs_probes, plot_residuals

    out = {name: analysis[name].to_dataset(inherit=False) for name in analysis.children}
    fig, axes = plt.subplots(1, 3)
    assert plot_random_vs_probes(out["persistence"], out["random_directions"], ax=axes[0]) is axes[0]
    assert plot_residuals(out["variance_matched"], ax=axes[1]) is axes[1]
    assert plot_pc_residuals(out["emotion_pcs"], ax=axes[2]) is axes[2]
    assert "persistence" in axes[0].get_xlabel() and "positive" in axes[1].get_title()
    assert "Spearman" in axes[2].get_title()
    ax = plot_pc_residuals(out["emotion_pcs"].drop_vars(["residual", "rank_rho"]))
    assert "scores" in ax.get_ylabel()
    plt.close("all")
