"""The study file: round trips, atomic saves, validation of every rule, the CLI's exit codes."""

import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import emostats as es
from emostats.cli import main
from tests.studies import malformed, tiny_study

CASES = malformed()


def _assert_trees_equal(a, b):
    assert set(a.groups) == set(b.groups)
    for group in a.groups:
        xr.testing.assert_identical(a[group].to_dataset(inherit=False), b[group].to_dataset(inherit=False))


def test_tiny_study_is_valid():
    assert es.validate(tiny_study()) == []


def test_round_trip_is_exact(tmp_path):
    tree = tiny_study()
    es.save(tree, tmp_path / "s.nc")
    back = es.open_study(tmp_path / "s.nc")
    for group in tree.groups[1:]:
        xr.testing.assert_equal(tree[group].to_dataset(inherit=False).load(),
                                back[group].to_dataset(inherit=False).load())
    assert back["tokens"]["probe_act"].dtype == np.float32
    assert back["tokens"]["sae_index"].dtype == np.int32
    assert back.attrs["emostats_format"] == 1


def test_chunked_open_gives_dask_arrays_with_equal_values(tmp_path):
    es.save(tiny_study(), tmp_path / "s.nc")
    eager = es.open_study(tmp_path / "s.nc")
    lazy = es.open_study(tmp_path / "s.nc", chunks={"token": 4})
    assert lazy["tokens"]["probe_act"].chunks is not None
    np.testing.assert_array_equal(eager["tokens"]["probe_act"].values, lazy["tokens"]["probe_act"].values)


def test_split_files_concatenate_along_token(tmp_path):
    tree = tiny_study()
    tokens = tree["tokens"].to_dataset(inherit=False)
    first, second = tokens.isel(token=slice(0, 8)), tokens.isel(token=slice(8, None))
    part1 = tree.copy()
    part1["tokens"] = xr.DataTree(first)
    part2 = tree.copy()
    part2["tokens"] = xr.DataTree(second)
    es.save(part1, tmp_path / "a.nc")
    es.save(part2, tmp_path / "b.nc")
    whole = es.open_study([tmp_path / "a.nc", tmp_path / "b.nc"])
    xr.testing.assert_equal(whole["tokens"].to_dataset(inherit=False).load(), tokens)


def test_save_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "s.nc"
    es.save(tiny_study(0), path)
    before = path.read_bytes()
    with pytest.raises(es.OutputExistsError, match="exists; pass --force"):
        es.save(tiny_study(1), path)
    assert path.read_bytes() == before
    es.save(tiny_study(1), path, force=True)
    assert path.read_bytes() != before


def test_interrupted_save_leaves_previous_file_and_no_partial(tmp_path, monkeypatch):
    path = tmp_path / "s.nc"
    es.save(tiny_study(0), path)
    before = path.read_bytes()

    def boom(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as fh:
            fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.DataTree, "to_netcdf", boom)
    with pytest.raises(KeyboardInterrupt):
        es.save(tiny_study(1), path, force=True)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["s.nc"]


def test_save_never_replaces_the_file_a_lazy_tree_reads(tmp_path):
    path = tmp_path / "s.nc"
    es.save(tiny_study(), path)
    with es.open_study(path, chunks={"token": 4}) as lazy:
        with pytest.raises(es.EmostatsError, match="is also an input"):
            es.save(lazy, path, force=True)


def test_save_of_an_opened_study_records_no_source_and_may_replace_it(tmp_path):
    # issue 12: source_files of a.nc was written into b.nc, and replacing a.nc from memory was refused
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    es.save(tiny_study(), a)
    es.save(es.open_study(a), b)
    reopened = es.open_study(b)
    assert reopened.attrs["source_files"] == str(b)
    with es.open_study(b, validate=False) as raw:
        assert "source_files" in raw.attrs  # set on opening only
    es.save(es.open_study(a), a, force=True)
    assert es.validate(es.open_study(a)) == []


@pytest.mark.parametrize("name, tree, expected", CASES, ids=[c[0] for c in CASES])
def test_validator_names_the_problem(name, tree, expected):
    problems = es.validate(tree)
    assert any(expected in p for p in problems), problems
    assert all("\n" not in p for p in problems)


def test_validator_reports_every_problem_not_just_the_first():
    tree = tiny_study()
    tree.attrs["emostats_format"] = 3
    ds = tree["tokens"].to_dataset(inherit=False)
    pos = ds["position"].values.copy()
    pos[2] = 9
    tree["tokens"] = xr.DataTree(ds.assign_coords(position=("token", pos), probe=["a", "a", "b", "c"]))
    problems = es.validate(tree)
    assert len(problems) >= 3


@pytest.mark.parametrize("name, tree, expected", CASES, ids=[c[0] for c in CASES])
def test_cli_validate_exits_2_and_names_the_problem(name, tree, expected, tmp_path, capsys):
    path = tmp_path / f"{name}.nc"
    tree.to_netcdf(path, engine="netcdf4")
    code = main(["validate", str(path)])
    out = capsys.readouterr()
    assert code == 2
    assert expected in out.out
    assert "Traceback" not in out.out + out.err


def test_cli_validate_accepts_a_valid_study(tmp_path, capsys):
    es.save(tiny_study(), tmp_path / "ok.nc")
    assert main(["validate", str(tmp_path / "ok.nc")]) == 0
    assert "valid" in capsys.readouterr().out


def test_nan_activations_warn_on_open_but_fail_validate(tmp_path):
    name, tree, _ = next(c for c in CASES if c[0] == "probe_act_nan")
    tree.to_netcdf(tmp_path / "nan.nc", engine="netcdf4")
    with pytest.warns(UserWarning, match="2 NaN/inf values"):
        es.open_study(tmp_path / "nan.nc")


@pytest.mark.parametrize("content, expected", [
    (b"hello, this is text\n", "not a NetCDF file"),
    (b"\x89HDF\r\n\x1a\n" + b"\x00" * 64, "cannot be read as NetCDF-4"),
])
def test_not_netcdf_is_a_one_line_error(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.nc"
    path.write_bytes(content)
    with pytest.raises(es.StudyError, match=expected):
        es.open_study(path)
    for command in ("validate", "info"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err


def test_missing_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.nc")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and err.count("\n") == 1


def test_invalid_study_open_names_first_problem(tmp_path):
    _, tree, expected = next(c for c in CASES if c[0] == "segment_split")
    tree.to_netcdf(tmp_path / "split.nc", engine="netcdf4")
    with pytest.raises(es.StudyError, match="is not contiguous"):
        es.open_study(tmp_path / "split.nc")


def test_info_summarises(tmp_path, capsys):
    es.save(tiny_study(), tmp_path / "ok.nc")
    assert main(["info", str(tmp_path / "ok.nc")]) == 0
    out = capsys.readouterr().out
    assert "group /tokens: token=21, probe=4, slot=3" in out
    assert "segments: 6 turns in 3 conversations" in out


def test_cli_subprocess_has_no_traceback_on_bad_option():
    proc = subprocess.run([sys.executable, "-m", "emostats", "validate"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_outputs_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        es.save(tiny_study(), tmp_path / "s.nc")
    finally:
        os.umask(mask)
    assert (tmp_path / "s.nc").stat().st_mode & 0o777 == 0o644
