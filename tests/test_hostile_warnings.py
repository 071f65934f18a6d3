"""No raw NumPy warning reaches the user (issue 12): NaN, constant and empty inputs end in NaN results and
the package's own one-line warnings (:class:`emostats.errors.DegenerateWarning`, and the NaN count of
the input), never in "invalid value encountered in matmul", "Mean of empty slice" or a crash.

Every run here turns any other ``RuntimeWarning`` into an error, so a raw warning from NumPy, SciPy or
pandas anywhere in the pipeline, the report or the command line fails the test that caused it.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import emostats as es
from emostats._nan import nanmean, nanmedian
from emostats.errors import DegenerateWarning

ROOT = Path(__file__).resolve().parent.parent
#: small but complete: every step runs (bootstrap, placebo and the null models included)
PARAMS = dict(lag=5, max_lag=20, n_perm=99, n_random=20, n_candidates=60, n_boot=20, n_boot_ci=50, n_placebo=10)


@pytest.fixture(scope="module")
def base():
    from emostats import synth

    tree, _ = synth.make_study(n_tokens=600, n_probes=4, n_features=30, k=3, hidden=24, n_offsets=11,
                               n_steer_samples=4, n_baseline=4, lags=(5,), turn_length=(20, 80), seed=1,
                               random_directions=3)
    return tree


def _set(tree, group, name, change):
    ds = tree[group].to_dataset(inherit=False)
    values = ds[name].values.astype(np.float64)
    change(values)
    out = tree.copy()
    out[group] = xr.DataTree(ds.assign({name: (ds[name].dims, values)}))
    return out


def _scatter(a):
    a[3, 1], a[50, 0], a[51, 2] = np.nan, np.inf, -np.inf


def _column(value, col):
    def change(a):
        a[:, col] = value
    return change


def _mostly_nan(a):
    keep = a[::7].copy()
    a[:] = np.nan
    a[::7] = keep


def _first_half_nan(a):
    a[: a.shape[0] // 2] = np.nan


def _steered(a):
    a[0, 0, 3, 1] = np.nan
    a[1] = np.nan  # one emotion NaN everywhere


def _all(value):
    def change(a):
        a[...] = value
    return change


#: name -> (group, variable, change, NaN/inf values the input warning must count or None)
CASES = {
    "probe_act_scattered_nan_inf": ("tokens", "probe_act", _scatter, 3),
    "probe_act_all_nan_probe": ("tokens", "probe_act", _column(np.nan, 1), 600),
    "probe_act_constant_probe": ("tokens", "probe_act", _column(3.25, 0), None),
    "probe_act_mostly_nan": ("tokens", "probe_act", _mostly_nan, 600 * 4 - 86 * 4),
    "probe_act_first_half_nan": ("tokens", "probe_act", _first_half_nan, 300 * 4),
    "random_act_nan_direction": ("random", "random_act", _column(np.nan, 2), 600),
    "random_act_constant_direction": ("random", "random_act", _column(2.0, 1), None),
    "steered_act_nan_emotion": ("steering", "steered_act", _steered, None),
    "steered_act_all_nan": ("steering", "steered_act", _all(np.nan), None),
    "baseline_act_nan_offset": ("steering", "baseline_act", lambda a: a.__setitem__((slice(None), slice(None), 0),
                                                                                    np.nan), None),
    "steering_constant": ("steering", "steered_act", _all(1.0), None),
}


@pytest.fixture
def strict():
    """Any RuntimeWarning is an error, except the package's own DegenerateWarning (recorded)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("always", DegenerateWarning)
        warnings.simplefilter("always", UserWarning)
        yield seen


def _run(tree, folder=None):
    """Run every step; through a saved file when ``folder`` is given (as a user does: the input is checked)."""
    if folder is not None:
        es.save(tree, folder / "study.nc")
        tree = folder / "study.nc"
    return es.run(tree, progress=False, quiet=True, **PARAMS)


def _own(seen):
    return [str(w.message) for w in seen if issubclass(w.category, (DegenerateWarning, UserWarning))]


@pytest.fixture(scope="module")
def skipped_when_clean(base):
    """Steps the study skips without any defect (groups it does not have): a defect must not add to them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return set(_run(base).attrs["steps_skipped"].split())


@pytest.mark.parametrize("name", list(CASES))
def test_pipeline_emits_no_raw_numpy_warning(base, skipped_when_clean, strict, tmp_path, name):
    group, var, change, count = CASES[name]
    res = _run(_set(base, group, var, change), tmp_path)
    assert res.attrs["steps_run"], "nothing ran"
    assert not set(res.attrs["steps_skipped"].split()) - skipped_when_clean, res.attrs["steps_skipped"]
    messages = _own(strict)
    assert all("\n" not in m for m in messages), messages
    if count is not None:  # the input's NaN are counted once, naming the group and the variable
        assert f"/{group}: {var} has {count} NaN/inf values" in " ".join(messages), messages
    for node in res.subtree:
        for key, v in node.to_dataset(inherit=False).data_vars.items():
            if v.dtype.kind == "f":
                assert not np.isinf(v.values).any(), f"{node.path}/{key} has inf"


def test_degenerate_results_are_named(base, strict):
    res = _run(_set(base, "tokens", "probe_act", _column(np.nan, 1)))
    probe = str(base["tokens"]["probe"].values[1])
    assert np.isnan(res["persistence"]["r"].sel(probe=probe))
    own = _own(strict)
    assert any(m.startswith("lag correlation undefined") and probe in m for m in own), own
    assert any("emotion_pcs" in m and probe in m for m in own), own


def _nan_and_constant(a):
    a[:, 1] = np.nan
    a[:, 0] = 3.25
    a[10, 2] = np.nan


def test_report_emits_no_raw_numpy_warning(base, strict, tmp_path):
    from emostats.report import build_report

    res = _run(_set(base, "tokens", "probe_act", _nan_and_constant))
    written = build_report(res, tmp_path / "report", format="qmd", progress=False, quiet=True)
    assert written["qmd"].exists()
    assert not written["failed_figures"], written["failed_figures"]


#: the command line under the same rule: a raw RuntimeWarning becomes a traceback and exit 1
STRICT_CLI = ("import sys, warnings\n"
              "from emostats.errors import DegenerateWarning\n"
              "warnings.simplefilter('error', RuntimeWarning)\n"
              "warnings.simplefilter('always', DegenerateWarning)\n"
              "from emostats.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")


def test_command_line_prints_only_its_own_warnings(base, tmp_path):
    study = tmp_path / "nan.nc"
    es.save(_set(base, "tokens", "probe_act", _nan_and_constant), study)
    options = [f"--{k.replace('_', '-')}={v}" for k, v in PARAMS.items()]
    proc = subprocess.run([sys.executable, "-c", STRICT_CLI, "run", str(study), "--no-progress", *options],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith(("emostats: warning: ", "emostats run: skipped ")) for ln in lines), lines
    assert any("/tokens: probe_act has 601 NaN/inf values" in ln for ln in lines), lines
    names = [str(p) for p in base["tokens"]["probe"].values[:2]]
    assert any("lag correlation undefined" in ln and all(n in ln for n in names) for ln in lines), lines
    for raw in ("invalid value encountered", "Mean of empty slice", "divide by zero", "RuntimeWarning"):
        assert raw not in proc.stderr


@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 6), (1, 0), (4,)])
def test_nan_reductions_equal_numpy_and_stay_silent(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    x[x > 0.8] = np.nan
    if x.size:
        x[0] = np.nan  # an all-NaN slice along every axis but the first
    for axis in [None, *range(x.ndim)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want_mean, want_median = np.nanmean(x, axis=axis), np.nanmedian(x, axis=axis)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got_mean, got_median = nanmean(x, axis=axis), nanmedian(x, axis=axis)
        np.testing.assert_array_equal(got_mean, want_mean)
        np.testing.assert_array_equal(got_median, want_median)
