"""Benchmarks of the null models (issue 5).

Paper scale (``EMOSTATS_BENCH_FULL=1``): 5,420 directions in a 7,168-dim hidden
space, their persistence and variance explained from ``/moments`` (four
7,168 x 7,168 matrices), and the variance matching of 171 probes against them;
the streaming ``moments`` pass; the eigendecomposition behind the top-k sweep.
Smoke mode shrinks everything so the file runs in a second or two.

Reported with each: wall time (best of ``repeat`` calls after a warm-up), the
peak of memory allocated *during* the call (tracemalloc, which sees NumPy's
buffers; the inputs are not counted), and a throughput figure (GFLOP/s of the
matrix products, or the speed ratio against the obvious reference). Direction
persistence uses triangular products (half the flops of four plain products);
its ``gemm_equiv_gflops`` divides the plain products' flops by the time.
"""

import time
import tracemalloc

import numpy as np
import pytest
import xarray as xr

from benchmarks.conftest import FULL, best_time, scale
from emostats.nullmodels import (direction_persistence, moment_arrays, nearest_by_variance, random_direction_sweep,
                                 random_directions, variance_matched)

HIDDEN = scale(7168, 64)
N_DIRECTIONS = scale(5420, 200)
N_PROBES = 171


def _peak_bytes(fn, *args, **kwargs):
    """Peak bytes allocated while ``fn`` runs (tracemalloc; inputs already allocated are not counted)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _moments_dataset(hidden, seed=0):
    """A /moments group with full-rank SPD matrices (content does not change the cost)."""
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((hidden, min(hidden, 256))) / np.sqrt(hidden)
    cov = b @ b.T
    cov[np.diag_indices(hidden)] += 0.1
    cxy = 0.4 * cov
    cxy[np.diag_indices(hidden)] += 0.01
    return xr.Dataset(
        {"cov": (("hidden", "hidden_b"), cov), "n": 10**6,
         "lag_n": ("lag", [9 * 10**5]),
         "lag_cxx": (("lag", "hidden", "hidden_b"), cov[None]),
         "lag_cyy": (("lag", "hidden", "hidden_b"), (cov * 1.01)[None]),
         "lag_cxy": (("lag", "hidden", "hidden_b"), cxy[None])},
        coords={"lag": [100]})


@pytest.fixture(scope="module")
def paper_scale():
    mom = _moments_dataset(HIDDEN)
    dirs = random_directions(mom, N_DIRECTIONS, seed=0)  # uniform on the sphere: no eigendecomposition
    return mom, dirs


def test_bench_direction_persistence(benchmark, report, paper_scale):
    mom, dirs = paper_scale
    repeat = 1 if FULL else 3
    seconds = best_time(direction_persistence, mom, dirs, repeat=repeat)
    peak = _peak_bytes(direction_persistence, mom, dirs)
    res = benchmark.pedantic(direction_persistence, args=(mom, dirs), rounds=1, iterations=1)
    assert res["r"].shape == (N_DIRECTIONS,) and np.isfinite(res["r"]).all()
    gemm_flops = 4 * 2.0 * N_DIRECTIONS * HIDDEN ** 2  # what four plain products would cost
    report(directions=N_DIRECTIONS, hidden=HIDDEN, seconds=seconds, gemm_equiv_gflops=gemm_flops / seconds / 1e9,
           peak_mib=peak / 2**20, moments_mib=4 * HIDDEN ** 2 * 8 / 2**20)


def test_bench_variance_matching(benchmark, report, paper_scale):
    mom, dirs = paper_scale
    cand = direction_persistence(mom, dirs) if not FULL else None
    rng = np.random.default_rng(1)
    if cand is None:  # at paper scale reuse a synthetic population of the same size (the products are timed above)
        cand_r, cand_v = rng.normal(0.1, 0.05, N_DIRECTIONS), rng.random(N_DIRECTIONS) * 1e-3
    else:
        cand_r, cand_v = cand["r"].values, cand["variance_explained"].values
    vals, var = rng.normal(0.2, 0.05, N_PROBES), rng.choice(cand_v, N_PROBES) * (1 + 0.01 * rng.random(N_PROBES))
    variance_matched(vals, var, cand_r, cand_v)  # compile
    seconds = best_time(variance_matched, vals, var, cand_r, cand_v, repeat=5)
    peak = _peak_bytes(variance_matched, vals, var, cand_r, cand_v)

    def argsort_reference():
        d = np.abs(cand_v[None, :] - var[:, None])
        idx = np.argsort(d, axis=1, kind="stable")[:, :20]
        return vals - np.median(cand_r[idx], axis=1)

    def argsort_indices():
        d = np.abs(cand_v[None, :] - var[:, None])
        return np.argsort(d, axis=1, kind="stable")[:, :20]

    ref_seconds = best_time(argsort_indices, repeat=5)
    core_seconds = best_time(nearest_by_variance, var, cand_v, 20, repeat=5)
    res = benchmark.pedantic(variance_matched, args=(vals, var, cand_r, cand_v), rounds=1, iterations=1)
    np.testing.assert_allclose(res["residual"].values, argsort_reference(), rtol=1e-12)
    report(targets=N_PROBES, candidates=N_DIRECTIONS, seconds=seconds, peak_mib=peak / 2**20,
           matching_core_seconds=core_seconds, core_speedup_vs_argsort=ref_seconds / core_seconds)


def test_bench_feature_self_matching(benchmark, report):
    """Helper D's use: every SAE feature matched against the others (self-population)."""
    n = scale(200_000, 2_000)
    rng = np.random.default_rng(2)
    vals, var = rng.normal(size=n), rng.lognormal(size=n)
    variance_matched(vals[:50], var[:50], n=20)  # compile
    t0 = time.perf_counter()
    res = benchmark.pedantic(variance_matched, args=(vals, var), rounds=1, iterations=1)
    seconds = time.perf_counter() - t0
    assert res.sizes["target"] == n
    report(features=n, seconds=seconds, per_feature_us=seconds / n * 1e6)


def test_bench_streaming_moments(benchmark, report):
    n_tokens, hidden = scale(50_000, 2_000), scale(1024, 32)
    rng = np.random.default_rng(3)
    acts = rng.standard_normal((n_tokens, hidden)).astype(np.float32)
    lengths = rng.integers(50, 1500, size=n_tokens // 50)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    offsets = np.append(offsets[offsets < n_tokens], n_tokens)
    seconds = best_time(moment_arrays, acts, [100], offsets, repeat=1)
    peak = _peak_bytes(moment_arrays, acts, [100], offsets)

    def numpy_reference():  # one float64 copy and a centred product per statistic, no streaming
        x = acts.astype(np.float64)
        xc = x - x.mean(0)
        return xc.T @ xc

    ref_seconds = best_time(numpy_reference, repeat=1)
    res = benchmark.pedantic(moment_arrays, args=(acts, [100], offsets), rounds=1, iterations=1)
    assert res["lag_cxy"].shape == (1, hidden, hidden)
    flops = 2.0 * n_tokens * hidden ** 2 * 4  # cov, cxx, cyy, cxy (syrk counted as a full product)
    report(tokens=n_tokens, hidden=hidden, seconds=seconds, gflops=flops / seconds / 1e9, peak_mib=peak / 2**20,
           input_mib=acts.nbytes / 2**20, ratio_to_cov_only=seconds / ref_seconds)


def test_bench_top_k_sweep(benchmark, report):
    """The eigendecomposition behind the top-k sweep (cubic in hidden: the slow part at paper scale)."""
    hidden = scale(2048, 48)
    mom = _moments_dataset(hidden, seed=4)
    ks = np.unique(np.round(np.geomspace(1, hidden, 20)).astype(np.int64))
    t0 = time.perf_counter()
    d = benchmark.pedantic(random_direction_sweep, args=(mom,), kwargs={"ks": ks, "n_per_k": 271},
                           rounds=1, iterations=1)
    seconds = time.perf_counter() - t0
    assert d.sizes["direction"] == 271 * ks.size
    report(hidden=hidden, directions=int(d.sizes["direction"]), seconds=seconds,
           seconds_extrapolated_7168=seconds * (7168 / hidden) ** 3)
