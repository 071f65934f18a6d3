"""The hostile corpus (issue 12): every study ends in correct numbers or one line and exit code 2.

Each case of ``tests/hostile/generator.py`` is written at test time and run
through ``emostats validate``, ``emostats info`` and ``emostats run``. The
commands run in long-lived processes (``tests/hostile/driver.py``; the cases
are shared out between two of them), as a user's notebook calls the API again
and again: a failed open that left a
handle behind, a hang or a segfault shows up as a failure of the case that
caused it. A few cases also go through the real ``python -m emostats``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.hostile.generator import CASES, write_corpus

ROOT = Path(__file__).resolve().parent.parent
#: a cheap subset of steps that touches every group (the full run is kept for a few cases)
STEPS = "persistence,profile,steering,sae_persistence,mentions,summary"
RUN_OPTIONS = ["--lag", "5", "--max-lag", "20", "--n-perm", "99", "--n-random", "20", "--n-candidates", "60",
               "--n-boot", "20", "--n-boot-ci", "50", "--n-placebo", "10", "--no-progress"]
DRIVER_TIMEOUT = 900
NAMES = [c[0] for c in CASES]


def _jobs(cases, folder):
    options = RUN_OPTIONS
    jobs = []
    for case in cases:
        files = [str(f) for f in case.files]
        out = str(folder / f"{case.name}.results.nc")
        steps = [] if case.full_run else ["--steps", STEPS]
        jobs += [(case.name, "validate", ["validate", *files]), (case.name, "info", ["info", *files]),
                 (case.name, "run", ["run", *files, "-o", out, *options, *steps])]
    return jobs


#: driver processes run side by side (each a long-lived process, as before; cases split between them)
DRIVERS = 2


def _drive_all(jobs, folder):
    """Results of every job, the cases shared out between DRIVERS processes (each case in one of them)."""
    from concurrent.futures import ThreadPoolExecutor

    names = list(dict.fromkeys(name for name, _, _ in jobs))
    shards = [[j for j in jobs if names.index(j[0]) % DRIVERS == k] for k in range(DRIVERS)]
    with ThreadPoolExecutor(DRIVERS) as pool:
        parts = list(pool.map(lambda k: _drive(shards[k], folder, tag=f"d{k}-"), range(DRIVERS)))
    return [r for part in parts for r in part]


def _drive(jobs, folder, tag=""):
    """Results of every job; a job that killed the driver is recorded as such and the rest go on."""
    results, remaining, round_ = [], list(jobs), 0
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    while remaining:
        round_ += 1
        spec, out = folder / f"{tag}jobs{round_}.json", folder / f"{tag}results{round_}.jsonl"
        spec.write_text(json.dumps(remaining))
        proc = subprocess.run([sys.executable, "-m", "tests.hostile.driver", str(spec), str(out)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=DRIVER_TIMEOUT)
        done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        results += done
        remaining = remaining[len(done):]
        if remaining:
            name, command, _ = remaining.pop(0)
            results.append({"name": name, "command": command, "code": proc.returncode, "stdout": "",
                            "stderr": proc.stderr[-2000:], "traceback": None, "hang": False, "died": True})
    return results


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    only = [n for n in os.environ.get("HOSTILE_CASES", "").split(",") if n]  # to rerun a few while debugging
    cases = write_corpus(folder / "studies", only=only)
    results = _drive_all(_jobs(cases, folder), folder)
    by_case = {}
    for r in results:
        by_case.setdefault(r["name"], {})[r["command"]] = r
    _read_all_results(cases, folder)
    return {c.name: c for c in cases}, by_case, folder


def test_corpus_is_large_enough(corpus):
    cases, _, _ = corpus
    if os.environ.get("HOSTILE_CASES"):
        pytest.skip("a subset was selected")
    assert len(cases) >= 40
    kinds = {c.expect for c in cases.values()}
    assert {"valid", "warn", "invalid", "either"} <= kinds


def _no_crash(result):
    assert not result.get("died"), f"the process died (code {result['code']}): {result['stderr']}"
    assert not result["hang"], "hung"
    assert result["traceback"] is None, result["traceback"]
    assert "Traceback" not in result["stderr"], result["stderr"]
    assert result["code"] in (0, 2), result


def _error_line(result, mentions):
    lines = [ln for ln in result["stderr"].splitlines() if ln.strip()]
    assert result["code"] == 2, result
    assert len(lines) == 1, lines
    assert lines[0].startswith("emostats: error:"), lines
    for word in mentions:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def _validate_failed(result, mentions):
    assert result["code"] == 2, result
    err = [ln for ln in result["stderr"].splitlines() if ln.strip()]
    assert len(err) == 1, err
    first = [ln for ln in result["stdout"].splitlines() if ln.strip()][:1] or err
    text = first[0]
    for word in mentions:
        assert word in text, (word, text)


_READ = ("import pickle, sys, xarray as xr\n"
         "trees = {}\n"
         "for path in sys.argv[1:]:\n"
         "    with xr.open_datatree(path) as tree:\n"
         "        trees[path] = tree.load()\n"
         "sys.stdout.buffer.write(pickle.dumps(trees))\n")
#: results files read by _read_all_results: path -> DataTree
_RESULTS = {}


def _read_all_results(cases, folder):
    """Every results file, read in ONE fresh process: this process has just opened dozens of hostile files
    through netCDF-C, and HDF5's global state must not decide whether the check of a good file passes."""
    import pickle

    paths = [str(folder / f"{c.name}.results.nc") for c in cases if (folder / f"{c.name}.results.nc").exists()]
    if paths:
        out = subprocess.run([sys.executable, "-c", _READ, *paths], capture_output=True, check=True, timeout=600)
        _RESULTS.update(pickle.loads(out.stdout))


def _results(case, folder):
    """The results file of ``case`` (read by :func:`_read_all_results`)."""
    return _RESULTS[str(folder / f"{case.name}.results.nc")]


def _base_r(corpus):
    cases, by_case, folder = corpus
    return _results(cases["base"], folder)["persistence"]["r"].values


def _check_numbers(case, result, folder):
    tree = _results(case, folder)
    for node in tree.subtree:
        for name, var in node.to_dataset(inherit=False).data_vars.items():
            if var.dtype.kind == "f":
                assert not np.isinf(var.values).any(), f"{node.path}/{name} has inf"
    if "persistence" in tree.children:
        r = tree["persistence"]["r"].values
        if np.isnan(r).any():
            assert "undefined" in result["stderr"] or "NaN" in result["stderr"], result["stderr"]
    return tree


@pytest.mark.parametrize("name", NAMES)
def test_case(corpus, name):
    cases, by_case, folder = corpus
    if name not in cases:
        pytest.skip("this case cannot be made on this machine (h5netcdf missing) or was not selected")
    case, results = cases[name], by_case[name]
    for command in ("validate", "info", "run"):
        _no_crash(results[command])
    if case.expect == "valid":
        for command in ("validate", "info", "run"):
            assert results[command]["code"] == 0, results[command]
        tree = _check_numbers(case, results["run"], folder)
        if case.same_numbers_as_base:
            np.testing.assert_allclose(tree["persistence"]["r"].values, _base_r(corpus), rtol=1e-9, atol=0)
    elif case.expect == "warn":
        _validate_failed(results["validate"], ("warning: /tokens", "probe_act"))
        assert results["info"]["code"] == 0 and results["run"]["code"] == 0, results
        _check_numbers(case, results["run"], folder)
    elif case.expect == "invalid":
        _validate_failed(results["validate"], case.mentions)
        for command in ("info", "run"):
            _error_line(results[command], case.mentions)
        assert not (folder / f"{case.name}.results.nc").exists()
    else:  # damaged: noticed or not, never a crash
        for command in ("info", "run"):
            if results[command]["code"] == 2:
                _error_line(results[command], ())


@pytest.mark.parametrize("name", ["fifo", "float16_invalid_netcdf", "gzip_file", "uint64_ids_colliding_in_float64"])
def test_real_command_line(corpus, name):
    cases, _, folder = corpus
    if name not in cases:
        pytest.skip("this case cannot be made on this machine (h5netcdf missing)")
    case = cases[name]
    proc = subprocess.run([sys.executable, "-m", "emostats", "info", *map(str, case.files)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert "Traceback" not in proc.stderr
    if case.expect == "invalid":
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
