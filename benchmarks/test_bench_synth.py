"""Time and peak memory of ``emostats.synth.make_study``.

Paper scale (EMOSTATS_BENCH_FULL=1): 1,000,000 tokens x 171 probes x 100,000
SAE features with k = 64, hidden 7168, steering for all 171 emotions x 16
samples x 201 offsets; the goal is under a minute and a few GB. Smoke mode
runs a tiny study once. Numba compilation is kept out of the timing by a
warm-up call on a tiny study. Peak memory is traced with ``tracemalloc``
(NumPy reports its buffers to it).

    EMOSTATS_BENCH_FULL=1 python -m pytest benchmarks/test_bench_synth.py --benchmark-enable -s
"""

import time
import tracemalloc

from benchmarks.conftest import scale
from emostats import synth

PAPER = dict(n_tokens=1_000_000, n_probes=171, n_features=100_000, k=64, hidden=7168,
             n_steer_emotions=171, n_steer_samples=16, n_baseline=16, n_offsets=201)
SMOKE = dict(n_tokens=5_000, n_probes=10, n_features=200, k=8, hidden=32, n_steer_emotions=4,
             n_steer_samples=4, n_baseline=4, n_offsets=30)


def test_bench_make_study(benchmark, report):
    size = scale(PAPER, SMOKE)
    synth.make_study(**SMOKE, seed=1)  # compile / load the kernels
    figures = {}

    def run():
        tracemalloc.start()
        t0 = time.perf_counter()
        tree, truth = synth.make_study(**size, seed=0)
        figures["seconds"] = time.perf_counter() - t0
        figures["peak_gb"] = tracemalloc.get_traced_memory()[1] / 1e9
        tracemalloc.stop()
        return tree, truth

    tree, truth = benchmark.pedantic(run, rounds=1, iterations=1)
    assert tree["tokens"].sizes["token"] == size["n_tokens"]
    report(tokens=size["n_tokens"], features=size["n_features"], k=size["k"], hidden=size["hidden"],
           sae_dropped=int(truth.attrs["sae_dropped"]), **figures)
