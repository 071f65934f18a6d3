"""Shared benchmark helpers: the machine's copy bandwidth measured in the same run,
and a way to report speed ratios against the obvious reference implementation.

Benchmarks run once as smoke tests in every test run (``--benchmark-disable``);
``pytest benchmarks --benchmark-enable`` times them. Sizes shrink in smoke mode
(``EMOSTATS_BENCH_FULL`` unset) so CI stays fast; set ``EMOSTATS_BENCH_FULL=1``
for the paper-scale sizes that the figures in benchmarks/README.md come from.
"""

import os
import time

import numpy as np
import pytest

FULL = os.environ.get("EMOSTATS_BENCH_FULL") == "1"


def scale(full, smoke):
    """Problem size: ``full`` when EMOSTATS_BENCH_FULL=1, else ``smoke``."""
    return full if FULL else smoke


def best_time(fn, *args, repeat=3, **kwargs):
    """Best wall time of ``repeat`` calls (after one warm-up call)."""
    fn(*args, **kwargs)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best


def copy_bandwidth(array, repeat=5):
    """Bytes per second of ``np.copyto`` of ``array`` (read once + written once),
    reported as the bytes of ``array`` read per second."""
    out = np.empty_like(array)
    t = best_time(np.copyto, out, array, repeat=repeat)
    return array.nbytes / t


@pytest.fixture
def report(benchmark):
    """Record extra figures (ratios, GB/s) in the benchmark's JSON and print them."""

    def _report(**figures):
        for key, value in figures.items():
            benchmark.extra_info[key] = value
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()))

    return _report

# a script run as `python -m benchmarks.compression`: it does its work at import, so pytest must not import it
collect_ignore = ["compression.py"]
