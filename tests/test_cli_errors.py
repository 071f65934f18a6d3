"""Command-line user errors: one line on stderr, exit code 2, no traceback, no file written."""

import shutil

import pytest

import emostats as es
from emostats.cli import main


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    path = folder / "ex.nc"
    shutil.copyfile(es.example_study(), path)
    return path


def _user_error(capsys, argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors exit from inside parse_args
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emostats: error:"), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", ["persistence", "run", "nullmodels", "affect-profile"])
@pytest.mark.parametrize("threads", ["0", "-1"])
def test_threads_below_one(capsys, example, tmp_path, command, threads):
    out = tmp_path / "out"
    line = _user_error(capsys, [command, example, "-o", out, "--threads", threads])
    assert "--threads" in line
    assert not out.exists()


@pytest.mark.parametrize("seed", ["-1", str(2**63)])  # 2**63 crashed the NetCDF attribute write
@pytest.mark.parametrize("command", ["persistence", "run", "nullmodels", "synth", "report"])
def test_seed_out_of_range(capsys, example, tmp_path, command, seed):
    out = tmp_path / "out.nc"
    argv = [command, "-o", out, "--seed", seed] + ([] if command == "synth" else [example])
    assert "--seed" in _user_error(capsys, argv)
    assert not out.exists()


def test_run_negative_seed_api():
    with pytest.raises(es.EmostatsError, match="seed"):
        es.run(es.example_study(), seed=-1, steps=["mentions"], progress=False)
    with pytest.raises(es.EmostatsError, match="seed"):
        es.run(es.example_study(), seed=2**63, steps=["mentions"], progress=False)


def test_run_empty_steps(capsys, example, tmp_path):
    out = tmp_path / "r.nc"
    assert "steps" in _user_error(capsys, ["run", example, "-o", out, "--steps", ","])
    assert not out.exists()
    with pytest.raises(es.EmostatsError, match="steps is empty"):
        es.run(example, steps=[], progress=False)


def test_synth_truth_equal_to_output(capsys, tmp_path):
    out = tmp_path / "s.nc"
    line = _user_error(capsys, ["synth", "-o", out, "--truth", out, "--force", "--tokens", "500",
                                "--probes", "4", "--features", "20", "--hidden", "8"])
    assert "truth" in line
    assert not out.exists()


def test_report_refuses_to_replace_its_input(capsys, example, tmp_path):
    # a study named results.nc inside the report folder: --force must not replace it by the results
    study = tmp_path / "results.nc"
    shutil.copyfile(example, study)
    before = study.read_bytes()
    line = _user_error(capsys, ["report", study, "-o", tmp_path, "--force", "--format", "qmd", "-q"])
    assert "also an input" in line
    assert study.read_bytes() == before


def test_report_folder_in_missing_parent(capsys, example, tmp_path):
    target = tmp_path / "missing" / "rep"
    assert "does not exist" in _user_error(capsys, ["report", example, "-o", target, "-q"])
    assert not (tmp_path / "missing").exists()


def test_warnings_are_one_line(capsys, example, tmp_path):
    # a lag longer than every turn: NaN persistence, said in one warning line (no source line under it)
    out = tmp_path / "r.nc"
    code = main(["run", str(example), "-o", str(out), "-q", "--steps", "persistence",
                 "--lag", "5000", "--max-lag", "5000"])
    err = capsys.readouterr().err
    assert code == 0 and out.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emostats: warning: lag correlation undefined"), err


def test_report_of_results_refuses_other_run_options(capsys, example, tmp_path):
    # the options were silently ignored: '--lag 7' printed a report of lag-100 numbers
    results = tmp_path / "res.nc"
    es.save(es.run(example, steps=["persistence", "summary"], progress=False, quiet=True), results)
    out = tmp_path / "rep"
    line = _user_error(capsys, ["report", results, "-o", out, "--lag", "7", "-q"])
    assert "lag=100" in line and "lag=7" in line
    assert not out.exists()
    assert main(["report", str(results), "-o", str(out), "--lag", "100", "--format", "qmd", "-q"]) == 0


def test_synth_more_rated_than_features(capsys, tmp_path):
    # 500 rated of 40 features was quietly cut to 40
    out = tmp_path / "s.nc"
    line = _user_error(capsys, ["synth", "-o", out, "--tokens", "500", "--probes", "4", "--features", "40",
                                "--hidden", "8", "--rated", "500"])
    assert "n_rated=500" in line
    assert not out.exists()


def test_results_file_given_as_a_study(capsys, example, tmp_path):
    # it was reported as a study missing emostats_format and /tokens
    results = tmp_path / "res.nc"
    es.save(es.run(example, steps=["persistence"], progress=False, quiet=True), results)
    for command in (["info", results], ["run", results, "-o", tmp_path / "x.nc"]):
        assert "is a results file of 'emostats run', not a study" in _user_error(capsys, command)
    assert main(["validate", str(results)]) == 2
    assert "a results file of 'emostats run', not a study" in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize("command", ["info", "validate", "persistence", "run", "nullmodels", "report"])
@pytest.mark.parametrize("kind", ["missing", "text", "truncated"])
def test_unreadable_study(capsys, example, tmp_path, command, kind):
    path = tmp_path / "study.nc"
    if kind == "text":
        path.write_text("hello\n")
    elif kind == "truncated":
        path.write_bytes(example.read_bytes()[:5000])
    out = tmp_path / "out"
    argv = [command, path] + (["-o", out] if command in ("run", "nullmodels", "report") else [])
    line = _user_error(capsys, argv)
    assert str(path) in line or path.name in line
    assert not out.exists()


@pytest.mark.parametrize("options, expected", [
    (["--lag", "0"], "must be >= 1 token"),
    (["--lag", "50", "--max-lag", "20"], "must be >= --lag (50)"),
    (["--n-boot", "-1"], "--n-boot must be >= 0"),
])
def test_persistence_rejects_lags_that_run_rejects(options, expected, capsys):
    from emostats.io import example_study

    assert main(["persistence", str(example_study()), *options]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
