"""Benchmarks of the statistical core (issue 3), each against the obvious reference in
the same run.

Paper scale (``EMOSTATS_BENCH_FULL=1``):

- permutation tests of 83 groupings x 1,000 values x 10,000 permutations (Figure 9's
  mention tests) against ``scipy.stats.permutation_test(vectorized=True)``, one call
  per grouping. scipy permutes all n values whatever the group size, so its cost does
  not depend on k: it is timed on ``SCIPY_SUBSET`` groupings and extrapolated to all
  (the figures say so);
- BH-FDR of 10 million p-values against ``statsmodels.multipletests(method="fdr_bh")``
  and ``scipy.stats.false_discovery_control``;
- Spearman of 1,000 features x 100,000 observations against a loop over
  ``scipy.stats.spearmanr``, timed on ``SPEARMAN_SUBSET`` features and extrapolated.

Smoke mode shrinks everything so the file runs in a few seconds.
"""

import time

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from benchmarks.conftest import FULL, best_time, scale
from emostats import bh_fdr, permutation_test, spearman

N_GROUPS = scale(83, 4)
N_ITEMS = scale(1000, 120)
N_PERM = scale(10_000, 300)
SCIPY_SUBSET = scale(6, 2)
SPEARMAN_SUBSET = scale(20, 4)


def _groupings(rng, n_groups, n, ks):
    groups = np.zeros((n_groups, n), dtype=bool)
    for g, k in enumerate(ks):
        groups[g, rng.choice(n, int(k), replace=False)] = True
    return groups


def _scipy_seconds(values, groups, subset, n_perm, alternative="greater"):
    """Seconds per grouping of scipy's vectorized permutation test, and its p-values."""

    def stat(a, b, axis):
        return a.mean(axis=axis) - b.mean(axis=axis)

    pick = np.linspace(0, groups.shape[0] - 1, subset).round().astype(int)
    t0 = time.perf_counter()
    ps = [stats.permutation_test((values[groups[g]], values[~groups[g]]), stat, vectorized=True,
                                 n_resamples=n_perm, alternative=alternative, rng=g).pvalue for g in pick]
    return (time.perf_counter() - t0) / subset, pick, np.array(ps)


@pytest.mark.parametrize("sizes", ["figure9", "half"])
def test_bench_permutation_vs_scipy(benchmark, report, sizes):
    """``figure9``: group sizes spread from 5 to 300 (mentions per emotion word);
    ``half``: every group holds half the items, our worst case (most draws per permutation)."""
    rng = np.random.default_rng(0)
    values = rng.standard_t(5, size=N_ITEMS)
    if sizes == "figure9":
        ks = np.geomspace(5, min(300, N_ITEMS // 2), N_GROUPS).round()
    else:
        ks = np.full(N_GROUPS, N_ITEMS // 2)
    groups = _groupings(rng, N_GROUPS, N_ITEMS, ks)
    permutation_test(values, groups[:1], n_perm=10)  # compile
    seconds = best_time(permutation_test, values, groups, n_perm=N_PERM, repeat=3 if FULL else 1)
    per_grouping, pick, ref_p = _scipy_seconds(values, groups, SCIPY_SUBSET, N_PERM)
    scipy_seconds = per_grouping * N_GROUPS
    res = benchmark.pedantic(permutation_test, args=(values, groups), kwargs={"n_perm": N_PERM},
                             rounds=1, iterations=1)
    p = res.p.values[pick]
    assert np.all(np.abs(p - ref_p) < 5 * np.sqrt(np.maximum(p * (1 - p), 1e-3) * 2 / N_PERM) + 1e-12)
    draws = float(np.minimum(ks, N_ITEMS - ks).sum() * N_PERM)
    report(groupings=N_GROUPS, items=N_ITEMS, n_perm=N_PERM, mean_k=float(ks.mean()), seconds=seconds,
           scipy_seconds_extrapolated=scipy_seconds, scipy_groupings_timed=SCIPY_SUBSET,
           speedup_vs_scipy=scipy_seconds / seconds, draws_per_second=draws / seconds)


def test_bench_bh_fdr(benchmark, report):
    n = scale(10_000_000, 20_000)
    p = np.random.default_rng(1).random(n) ** 2
    repeat = 3 if FULL else 1
    ours = best_time(bh_fdr, p, repeat=repeat)
    sm = best_time(multipletests, p, method="fdr_bh", repeat=repeat)
    sp = best_time(stats.false_discovery_control, p, repeat=repeat)
    argsort = best_time(np.argsort, p, repeat=repeat)
    res = benchmark.pedantic(bh_fdr, args=(p,), rounds=1, iterations=1)
    np.testing.assert_allclose(res.q.values, multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    report(p_values=n, seconds=ours, statsmodels_seconds=sm, scipy_seconds=sp, argsort_seconds=argsort,
           speedup_vs_statsmodels=sm / ours, speedup_vs_scipy=sp / ours)


def test_bench_spearman_batched(benchmark, report):
    n_features, n_obs = scale(1000, 8), scale(100_000, 500)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n_features, n_obs))
    x[:, ::7] = np.round(x[:, ::7], 1)  # some ties
    y = rng.normal(size=n_obs) + 0.1 * x[0]
    spearman(x[:2, :50], y[:50])  # compile
    seconds = best_time(spearman, x, y, repeat=2 if FULL else 1)
    sub = x[:SPEARMAN_SUBSET]
    t0 = time.perf_counter()
    ref = np.array([stats.spearmanr(row, y).statistic for row in sub])
    scipy_seconds = (time.perf_counter() - t0) / SPEARMAN_SUBSET * n_features
    res = benchmark.pedantic(spearman, args=(x, y), rounds=1, iterations=1)
    np.testing.assert_allclose(res.rho.values[:SPEARMAN_SUBSET], ref, rtol=1e-10)
    report(features=n_features, observations=n_obs, seconds=seconds,
           scipy_loop_seconds_extrapolated=scipy_seconds, scipy_features_timed=SPEARMAN_SUBSET,
           speedup_vs_scipy_loop=scipy_seconds / seconds)
