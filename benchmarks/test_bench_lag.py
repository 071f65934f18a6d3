"""Lag persistence kernels against the obvious NumPy ways and the machine's copy bandwidth (issue 4).

Paper scale (``EMOSTATS_BENCH_FULL=1``): 1,000,000 tokens x 171 probes, float32,
in turns of 50-1,500 tokens. Figures reported with the ``report`` fixture:

- lag 100: speed-up over the masked NumPy way (one global shift with a
  same-segment mask, float64 two-pass Pearson) and over a per-turn loop, and the
  kernel's read rate (input bytes / time) as a fraction of ``np.copyto``'s;
- the whole profile L = 0..200 (goal: under 2 s on 2 cores);
- trajectories (Figure 2) for tau = 0..200.

Goals on 2 cores (issue 15): lag 100 >= 50x the masked NumPy way and >= 0.8 of
the two-thread read floor (reading the input once on two threads, measured in
the same run); profile <= 0.6 s. Tests never assert on time. Every report
carries the load average (``load``) at the time of the measurement.

Besides wall-clock times (``*_s``), the figures include process CPU seconds
(``*_cpu_s``, summed over threads): on a shared, loaded machine the wall clock
mostly measures waiting for a core, while CPU seconds show the work done.
"""

import os
import time

import numpy as np
import pytest

from benchmarks.conftest import FULL, best_time, copy_bandwidth, scale
from benchmarks.track import fma_rate, read_floor
from emostats import persistence as P
from tests.naive import lag as naive

N_TOKENS = scale(1_000_000, 20_000)
N_PROBES = scale(171, 17)
LAG = 100
MAX_LAG = scale(200, 50)


def cpu_time(fn, *args, repeat=3):
    """Least process CPU seconds (all threads) of ``repeat`` calls, after one warm-up call."""
    fn(*args)
    best = np.inf
    for _ in range(repeat):
        t0 = time.process_time()
        fn(*args)
        best = min(best, time.process_time() - t0)
    return best


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 1501, size=N_TOKENS // 50)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    offsets = np.append(offsets[offsets < N_TOKENS], N_TOKENS).astype(np.int64)
    x = rng.standard_normal((N_TOKENS, N_PROBES), dtype=np.float32)
    x += np.float32(1e4)  # as activations with a large mean: the kernel must not lose digits
    return x, offsets


def masked_numpy(x, offsets, lag):
    """The obvious NumPy way: shift the whole array, keep pairs within a segment, two-pass Pearson."""
    seg = naive.segment_ids(offsets)
    same = seg[:-lag] == seg[lag:]
    a = x[:-lag][same].astype(np.float64)
    b = x[lag:][same].astype(np.float64)
    a -= a.mean(0)
    b -= b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def test_lag100(benchmark, report, data):
    x, offsets = data
    r, _, _ = benchmark(P.lag_correlation, x, offsets, LAG)
    np.testing.assert_allclose(r, masked_numpy(x, offsets, LAG), atol=1e-6)
    t_kernel = best_time(P.lag_correlation, x, offsets, LAG, repeat=5)
    reps = 1 if FULL else 2
    t_numpy = best_time(masked_numpy, x, offsets, LAG, repeat=reps)
    t_turns = best_time(naive.lag_r_per_turn, x, offsets, LAG, repeat=reps)
    bandwidth = copy_bandwidth(x)
    c_kernel = cpu_time(P.lag_correlation, x, offsets, LAG, repeat=5)
    c_serial = cpu_time(lambda *a: P.lag_correlation(*a, threads=1), x, offsets, LAG, repeat=5)
    c_numpy = cpu_time(masked_numpy, x, offsets, LAG, repeat=reps)
    out = np.empty_like(x)
    c_copy = cpu_time(np.copyto, out, x, repeat=5)
    t_read2 = read_floor(x)[0]  # the input read once, two threads each reducing half of it
    report(load=os.getloadavg()[0], n_tokens=N_TOKENS, n_probes=N_PROBES, lag=LAG, kernel_s=t_kernel,
           masked_numpy_s=t_numpy, read_floor_2thread_s=t_read2, fraction_of_2thread_read_floor=t_read2 / t_kernel,
           per_turn_s=t_turns, speedup_vs_masked_numpy=t_numpy / t_kernel, speedup_vs_per_turn=t_turns / t_kernel,
           kernel_gb_s=x.nbytes / t_kernel / 1e9, copy_gb_s=bandwidth / 1e9,
           fraction_of_copy_bandwidth=x.nbytes / t_kernel / bandwidth,
           kernel_cpu_s=c_kernel, kernel_1thread_cpu_s=c_serial, masked_numpy_cpu_s=c_numpy, copy_cpu_s=c_copy,
           cpu_speedup_vs_masked_numpy=c_numpy / c_kernel, cpu_1thread_fraction_of_copy=c_copy / c_serial)


def test_profile(benchmark, report, data):
    x, offsets = data
    r, n_pairs, _ = benchmark(P.lag_correlation_profile, x, offsets, MAX_LAG)
    single, _, _ = P.lag_correlation(x, offsets, LAG if LAG <= MAX_LAG else MAX_LAG)
    np.testing.assert_allclose(r[min(LAG, MAX_LAG)], single, rtol=1e-9, atol=1e-12)
    t_profile = best_time(P.lag_correlation_profile, x, offsets, MAX_LAG, repeat=2)
    t_single = best_time(P.lag_correlation, x, offsets, LAG, repeat=3)
    c_profile = cpu_time(P.lag_correlation_profile, x, offsets, MAX_LAG, repeat=1)
    fmas = float(n_pairs.sum()) * x.shape[1]  # one multiply-add per pair and probe
    rate = fma_rate()[0]  # float64 multiply-adds per second of a BLAS matrix product, all threads
    report(load=os.getloadavg()[0], n_tokens=N_TOKENS, n_probes=N_PROBES, max_lag=MAX_LAG, profile_s=t_profile,
           profile_cpu_s=c_profile, one_lag_s=t_single, lags_per_single_lag_time=(MAX_LAG + 1) * t_single / t_profile,
           gfma_per_s=fmas / t_profile / 1e9, dgemm_gfma_per_s=rate / 1e9,
           fraction_of_dgemm_rate=fmas / t_profile / rate, under_0_6_s=bool(t_profile <= 0.6))


def test_trajectories(benchmark, report, data):
    x, offsets = data
    mean = x.mean(0, dtype=np.float64)
    sd = x.std(0, dtype=np.float64)
    sums, counts = benchmark(P.trajectory_sums, x, offsets, mean, sd, P.DEFAULT_BINS, MAX_LAG)
    assert counts[0, 0, 0].sum() > 0
    t = best_time(P.trajectory_sums, x, offsets, mean, sd, P.DEFAULT_BINS, MAX_LAG, repeat=2)
    c = cpu_time(P.trajectory_sums, x, offsets, mean, sd, P.DEFAULT_BINS, MAX_LAG, repeat=1)
    events = int(counts[0, :, 0].sum())
    report(n_tokens=N_TOKENS, n_probes=N_PROBES, max_lag=MAX_LAG, trajectories_s=t, trajectories_cpu_s=c,
           events=events,
           ns_per_event_tau=t / max(events * (MAX_LAG + 1), 1) * 1e9)
