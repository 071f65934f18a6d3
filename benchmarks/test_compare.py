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
    assert "FAIL lag100.speedup_vs_masked_numpy" in out


def test_tolerance_never_hides_a_halved_ratio():
    noisy = {"value": 1.0, "noise": 5.0}
    half = {"value": 0.5, "noise": 5.0}
    base = {"figures": {"lag100": {"speedup_vs_masked_numpy": noisy}}}
    cur = {"figures": {"lag100": {"speedup_vs_masked_numpy": half}}}
    (row,) = compare.verdicts(base, cur)
    assert row[-1] is False and row[-2] == compare.MAX_TOLERANCE


def test_no_history_is_exit_2(tmp_path):
    assert compare.main(["--size", "smoke", "--history", str(tmp_path)]) == 2
