"""Benchmark of the SAE firing-persistence kernel (issue 6).

Paper scale (``EMOSTATS_BENCH_FULL=1``): 1,000,000 tokens x k = 64 active ids
of 100,000 features with Zipf-like frequencies, lag 100, turns of 50-1500
tokens. Compared, in the same run, with

- the way a researcher would do it with ``scipy.sparse``: a CSR tokens x
  features matrix built from ``sae_index``, its rows t and t + L over the valid
  t, their elementwise product and the column sums (plus the column sums of
  the two row sets for ``n_t`` and ``n_tl``); timed with and without building
  the matrix;
- the bandwidth floor: the bytes of ``sae_index`` read once at the machine's
  copy bandwidth (``copy_bandwidth``, measured in the same run).

The machine may be shared: wall times then include time the process waited
for a core. CPU seconds (``time.process_time``) of the single-threaded calls
are reported beside them, and the ratios of CPU seconds are the ones that
load does not distort.

Goals: at least 50x faster than scipy.sparse; within 3x of the read floor (issue 15:
``sae_index`` read once on two threads, measured in the same run). A plain
``np.bincount`` of the ids (one random increment per id, no pairs) is timed
beside it: the cost of the kernel's access pattern alone.
The figures and the command are recorded in benchmarks/figures/firing.md.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.sparse

from benchmarks.conftest import FULL, best_time, copy_bandwidth, scale
from benchmarks.track import read_floor
from emostats._kernels._config import n_threads
from emostats.sae import firing_counts
from emostats.segments import offsets_from_lengths

N_TOKENS = scale(1_000_000, 20_000)
K = scale(64, 16)
N_FEATURES = scale(100_000, 2_000)
LAG = 100
ZIPF = 1.0


def zipf_index(n_tokens, k, n_features, seed=0, exponent=ZIPF):
    """Top-k ids per token drawn with P(id = f) roughly proportional to (f + 10)^-exponent,
    sorted, duplicates within a row replaced by -1 (empty slot)."""
    rng = np.random.default_rng(seed)
    # inverse CDF of the continuous density ~ (x + 10)^-exponent on [0, n_features)
    u = rng.random((n_tokens, k))
    if exponent == 1.0:
        x = 10.0 * np.exp(u * np.log((n_features + 10) / 10.0)) - 10.0
    else:
        a, b = 10.0 ** (1 - exponent), (n_features + 10.0) ** (1 - exponent)
        x = (a + u * (b - a)) ** (1 / (1 - exponent)) - 10.0
    index = np.minimum(x.astype(np.int32), n_features - 1)
    del x, u
    index.sort(axis=1)
    dup = np.zeros(index.shape, dtype=bool)
    dup[:, 1:] = index[:, 1:] == index[:, :-1]
    index[dup] = -1
    ids = rng.permutation(n_features).astype(np.int32)  # frequent ids scattered over the id range
    return np.where(index >= 0, ids[np.maximum(index, 0)], -1).astype(np.int32)


def turn_offsets(n_tokens, seed=0):
    rng = np.random.default_rng(seed + 1)
    lengths = rng.integers(50, 1501, size=n_tokens // 50 + 1)
    lengths = lengths[np.cumsum(lengths) < n_tokens]
    return offsets_from_lengths(np.append(lengths, n_tokens - lengths.sum()))


def scipy_counts(index, offsets, lag, n_features, matrix=None):
    """The researcher's way: CSR matrix, rows t and t+L, elementwise product, column sums."""
    if matrix is None:
        matrix = build_csr(index, n_features)
    t = np.concatenate([np.arange(s, e - lag) for s, e in zip(offsets[:-1], offsets[1:]) if e - s > lag])
    a, b = matrix[t], matrix[t + lag]
    n_both = np.asarray(a.multiply(b).sum(axis=0)).ravel()
    n_t = np.asarray(a.sum(axis=0)).ravel()
    n_tl = np.asarray(b.sum(axis=0)).ravel()
    return n_both, n_t, n_tl


@pytest.fixture(scope="module")
def data():
    t0 = time.perf_counter()
    index = zipf_index(N_TOKENS, K, N_FEATURES)
    offsets = turn_offsets(N_TOKENS)
    return index, offsets, time.perf_counter() - t0


def cpu_time(fn, *args, repeat=3, **kwargs):
    """Best CPU seconds of this process (``time.process_time``) over ``repeat`` calls after a
    warm-up: the time the work takes when it has a core, whatever else the machine runs.
    Only meaningful for single-threaded calls."""
    fn(*args, **kwargs)
    best = np.inf
    for _ in range(repeat):
        t0 = time.process_time()
        fn(*args, **kwargs)
        best = min(best, time.process_time() - t0)
    return best


def build_csr(index, n_features):
    valid = index >= 0
    rows = np.repeat(np.arange(index.shape[0]), index.shape[1])[valid.ravel()]
    return scipy.sparse.csr_matrix((np.ones(rows.size), (rows, index.ravel()[valid.ravel()])),
                                   shape=(index.shape[0], n_features))


def test_bench_firing(benchmark, report, data):
    index, offsets, gen_seconds = data
    threads = n_threads()
    ours = best_time(firing_counts, index, offsets, LAG, N_FEATURES, repeat=5)
    ours_1 = best_time(firing_counts, index, offsets, LAG, N_FEATURES, threads=1, repeat=3)
    ours_cpu = cpu_time(firing_counts, index, offsets, LAG, N_FEATURES, threads=1, repeat=3)
    result = benchmark.pedantic(firing_counts, args=(index, offsets, LAG, N_FEATURES), rounds=1, iterations=1)

    # scipy.sparse, timed once at paper scale (tens of seconds); wall and CPU seconds
    t0, c0 = time.perf_counter(), time.process_time()
    matrix = build_csr(index, N_FEATURES)
    build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    n_both, n_t, n_tl = scipy_counts(index, offsets, LAG, N_FEATURES, matrix)
    products, products_cpu = time.perf_counter() - t0, time.process_time() - c0
    del matrix
    np.testing.assert_array_equal(result["n_both"], n_both.astype(np.int64))
    np.testing.assert_array_equal(result["n_t"], n_t.astype(np.int64))
    np.testing.assert_array_equal(result["n_tl"], n_tl.astype(np.int64))

    bandwidth = copy_bandwidth(index)
    floor = index.nbytes / bandwidth
    out = np.empty_like(index)
    floor_cpu = cpu_time(np.copyto, out, index, repeat=5)
    del out
    scipy_total = build + products
    scipy_cpu = build_cpu + products_cpu
    floor2 = read_floor(index)[0]  # sae_index read once, two threads each reducing half of it
    ids = index.reshape(-1).astype(np.intp) + 1
    bincount = best_time(np.bincount, ids, minlength=N_FEATURES + 1, repeat=3)  # one random increment per id
    del ids
    report(load=os.getloadavg()[0], read_floor_2thread_s=floor2, times_2thread_read_floor=ours / floor2,
           bincount_seconds=bincount, times_bincount=ours / bincount, tokens=N_TOKENS, k=K, features=N_FEATURES, lag=LAG, threads=threads,
           nnz_fraction=float(valid_fraction(index)), index_mib=index.nbytes / 2**20, data_seconds=gen_seconds,
           seconds=ours, seconds_1_thread=ours_1, cpu_seconds_1_thread=ours_cpu,
           scipy_seconds=scipy_total, scipy_products_seconds=products, scipy_cpu_seconds=scipy_cpu,
           scipy_products_cpu_seconds=products_cpu,
           speedup_vs_scipy=scipy_total / ours, speedup_vs_scipy_products=products / ours,
           cpu_speedup_vs_scipy=scipy_cpu / ours_cpu, cpu_speedup_vs_scipy_products=products_cpu / ours_cpu,
           copy_gb_s=bandwidth / 1e9, floor_seconds=floor, times_floor=ours / floor,
           times_floor_1_thread=ours_1 / floor, floor_cpu_seconds=floor_cpu,
           cpu_times_floor_1_thread=ours_cpu / floor_cpu)


def valid_fraction(index):
    return (index >= 0).mean()


def test_bench_firing_cold_compile(benchmark, report, tmp_path):
    """Seconds from a fresh interpreter to the first result: with an empty Numba cache
    (JIT compile, under EMOSTATS_BENCH_FULL=1) and with the kernel cached."""
    code = ("import time; t0 = time.perf_counter(); import numpy as np; from emostats.sae import firing_counts; "
            "firing_counts(np.zeros((10, 2), dtype=np.int32), [0, 10], 3, 1); print(time.perf_counter() - t0)")
    env = dict(os.environ)
    figures = {}
    if FULL:
        env["NUMBA_CACHE_DIR"] = str(tmp_path)
        figures["cold_compile_seconds"] = float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                                               capture_output=True, text=True).stdout)
    figures["cached_first_call_seconds"] = float(benchmark.pedantic(
        lambda: subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                               text=True).stdout, rounds=1, iterations=1))
    report(**figures)
