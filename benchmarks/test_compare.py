"""benchmarks.compare catches an injected 2x slowdown of the lag kernel and passes an unchanged tree.

Both runs compare against a baseline recorded in a temporary history folder by the same
process (so the test does not depend on the machine that recorded benchmarks/history),
at smoke size (about 10-20 s each). The slowdown is injected through
``EMOSTATS_BENCH_SLOWDOWN=lag100=2``: the tracked call does the kernel's work twice.
"""

import pytest

from benchmarks import compare, track


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    folder = tmp_path_factory.mktemp("history")
    assert track.main(["--size", "smoke", "--only", "lag100", "--record", "--history", str(folder)]) == 0
    return folder


def test_unchanged_tree_passes(baseline, monkeypatch):
    monkeypatch.delenv(track.SLOWDOWN_ENV, raising=False)
    assert compare.main(["--size", "smoke", "--only", "lag100", "--history", str(baseline)]) == 0


def test_injected_2x_slowdown_of_the_lag_kernel_is_caught(baseline, monkeypatch, capsys):
    monkeypatch.setenv(track.SLOWDOWN_ENV, "lag100=2")
    assert compare.main(["--size", "smoke", "--only", "lag100", "--history", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "FAIL lag100." in out  # one of its ratios (under heavy load the 2x can show in either first)


def test_tolerance_never_hides_a_halved_ratio():
    noisy = {"value": 1.0, "noise": 5.0}
    half = {"value": 0.5, "noise": 5.0}
    base = {"figures": {"lag100": {"speedup_vs_masked_numpy": noisy}}}
    cur = {"figures": {"lag100": {"speedup_vs_masked_numpy": half}}}
    (row,) = compare.verdicts(base, cur)
    assert row[-1] is False and row[-2] == compare.MAX_TOLERANCE


def test_no_history_is_exit_2(tmp_path):
    assert compare.main(["--size", "smoke", "--history", str(tmp_path)]) == 2


# --ab: the base commit's kernels timed beside the working tree's in one process (what CI runs)


def test_ab_against_head_passes_an_unchanged_tree(monkeypatch, capsys):
    monkeypatch.delenv(track.SLOWDOWN_ENV, raising=False)
    assert compare.main(["--size", "smoke", "--ab", "--base", "HEAD", "--only", "lag100"]) == 0
    assert "ok   lag100.speed_vs_base" in capsys.readouterr().out


def test_ab_catches_an_injected_2x_slowdown_of_the_lag_kernel(monkeypatch, capsys):
    monkeypatch.setenv(track.SLOWDOWN_ENV, "lag100=2")
    assert compare.main(["--size", "smoke", "--ab", "--base", "HEAD", "--only", "lag100", "--retries", "1"]) == 1
    assert "FAIL lag100.speed_vs_base" in capsys.readouterr().out


def test_ab_ratio_sees_double_work():
    import numpy as np

    a = np.random.default_rng(0).standard_normal(200_000)
    value, noise = track.ab_ratio(lambda: a.sum(), lambda: (a.sum(), a.sum()), repeat=5, min_seconds=0.01)
    assert 0.3 < value < 0.75, (value, noise)  # old / new with new doing the work twice: about 0.5


def test_base_package_is_the_commit_not_the_working_tree():
    import emostats._lagstats

    pkg, sha = compare.base_package("HEAD")
    assert pkg.__name__ == f"emostats_base_{sha[:12]}"
    assert pkg._lagstats.__file__ != emostats._lagstats.__file__
    assert pkg._lagstats.lag_correlation is not emostats._lagstats.lag_correlation


def test_ab_with_a_commit_git_does_not_have_is_exit_2(capsys):
    assert compare.main(["--size", "smoke", "--ab", "--base", "0" * 40]) == 2
    assert "cannot export commit" in capsys.readouterr().err
