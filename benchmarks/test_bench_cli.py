"""Cold start of the command line in a fresh process (issue 4).

``emostats --help`` must stay fast (heavy imports are lazy), and ``emostats
persistence`` on a small study must not pay for compilation once the Numba
cache is warm (``cache=True`` on every kernel). Each round is a new Python
process; the first, untimed, run warms the cache.
"""

import subprocess
import sys

import pytest

from benchmarks.conftest import FULL, best_time

ROUNDS = 5 if FULL else 1


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    from emostats import save, synth

    path = tmp_path_factory.mktemp("cli") / "small.nc"
    tree, _ = synth.make_study(n_tokens=5000, n_probes=20, n_features=0, k=4, hidden=48, groups=("tokens",), seed=1)
    save(tree, path)
    return path


def _run(*args):
    done = subprocess.run([sys.executable, "-m", "emostats", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def test_help_cold_start(benchmark, report):
    out = benchmark.pedantic(_run, args=("--help",), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert "persistence" in out.stdout
    report(help_s=best_time(_run, "--help", repeat=ROUNDS))


def test_persistence_cold_start_with_warm_cache(benchmark, report, small_study):
    args = ("persistence", str(small_study), "--lag", "100", "--max-lag", "200", "--n-boot", "0", "-q")
    benchmark.pedantic(_run, args=args, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    python_only = best_time(subprocess.run, [sys.executable, "-c", "import emostats"], repeat=ROUNDS)
    report(persistence_s=best_time(_run, *args, repeat=ROUNDS), import_emostats_s=python_only)
