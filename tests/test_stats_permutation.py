"""permutation_test: exact enumeration against a brute-force twin, sampled p against
scipy within Monte Carlo error, R's exact Wilcoxon rank-sum via ranks, seeds and threads."""

import math
import warnings

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from emostats import EmostatsError, permutation_test
from emostats.stats import DegenerateWarning
from tests.conftest import RTOL_KERNEL
from tests.naive import stats as naive

ALTS = ["greater", "less", "two-sided"]


def _mask(rng, n, k):
    m = np.zeros(n, dtype=bool)
    m[rng.choice(n, k, replace=False)] = True
    return m


@pytest.mark.parametrize("alternative", ALTS)
def test_exact_matches_brute_force(rng, alternative):
    for n, k, ties in [(8, 3, False), (9, 4, True), (7, 1, True), (10, 8, False), (6, 3, True)]:
        values = rng.integers(0, 4, n).astype(float) if ties else rng.normal(size=n)
        groups = np.stack([_mask(rng, n, k) for _ in range(4)])
        res = permutation_test(values, groups, alternative=alternative, n_perm=10_000)
        assert res.exact.all()
        for g in range(4):
            p, t, total = naive.permutation_exact(values, groups[g], alternative)
            assert res.p[g].item() == pytest.approx(p, rel=RTOL_KERNEL)
            assert res.statistic[g].item() == pytest.approx(t, rel=RTOL_KERNEL, abs=1e-12)
            assert total == math.comb(n, k)


def test_exact_null_is_every_labelling(rng):
    values = rng.normal(size=7)
    mask = _mask(rng, 7, 3)
    res = permutation_test(values, mask[None], return_null=True, n_perm=100)
    null = res.null[0].values
    total = math.comb(7, 3)
    assert np.isnan(null[total:]).all()
    brute = sorted(naive.mean_difference(values, np.isin(np.arange(7), c))
                   for c in __import__("itertools").combinations(range(7), 3))
    np.testing.assert_allclose(np.sort(null[:total]), brute, rtol=RTOL_KERNEL, atol=1e-12)


def test_observed_labelling_counts_itself():
    values = np.ones(6)  # every labelling ties with the observed one
    res = permutation_test(values, np.array([[1, 1, 0, 0, 0, 0]], bool), alternative="greater")
    assert res.p.item() == 1.0
    # labellings equal up to rounding still count (0.1 + 0.2 != 0.3 in floating point)
    values = np.array([0.1, 0.2, 0.3, 0.0, 0.0, 0.0])
    groups = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 0, 1, 1, 0]], bool)
    for alt in ALTS:
        res = permutation_test(values, groups, alternative=alt)
        for g in range(2):
            assert res.p[g].item() == pytest.approx(naive.permutation_exact(values, groups[g], alt)[0],
                                                    rel=RTOL_KERNEL)


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_ranks_give_exact_wilcoxon_rank_sum(rng, alternative):
    # the mean difference of ranks is monotone in the rank sum, so the exact
    # permutation test on ranks is the exact Wilcoxon rank-sum / Mann-Whitney test
    x = rng.normal(size=14)
    mask = _mask(rng, 14, 5)
    ranks = stats.rankdata(x)
    res = permutation_test(ranks, mask[None], alternative=alternative, n_perm=5000)
    assert res.exact.item()
    ref = stats.mannwhitneyu(x[mask], x[~mask], alternative=alternative, method="exact").pvalue
    assert res.p.item() == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_sampled_matches_scipy_within_monte_carlo_error(rng, alternative):
    n, n_perm = 60, 20_000
    values = rng.standard_t(4, size=n)
    groups = np.stack([_mask(rng, n, k) for k in (5, 12, 30, 55)])
    values[groups[0]] += 0.8
    res = permutation_test(values, groups, alternative=alternative, n_perm=n_perm, seed=3)
    assert not res.exact.any()

    def stat(a, b, axis):
        return a.mean(axis=axis) - b.mean(axis=axis)

    for g in range(groups.shape[0]):
        ref = stats.permutation_test((values[groups[g]], values[~groups[g]]), stat, vectorized=True,
                                     n_resamples=n_perm, alternative=alternative, rng=11).pvalue
        p = res.p[g].item()
        se = math.sqrt(max(p * (1 - p), 1e-4) * 2 / n_perm)
        assert abs(p - ref) < 5 * se


def test_sampled_p_formula_and_never_zero(rng):
    values = np.r_[rng.normal(size=50), rng.normal(size=50) + 10]
    mask = np.r_[np.zeros(50, bool), np.ones(50, bool)]
    res = permutation_test(values, mask[None], n_perm=999, return_null=True)
    assert res.p.item() == 1 / 1000  # no permutation reaches the observed gap
    null = res.null[0].values
    t = res.statistic.item()
    # the p-value is recomputed from the returned null distribution
    assert res.p.item() == (1 + (null >= t).sum()) / 1000
    res2 = permutation_test(values, mask[None], n_perm=999, alternative="less", return_null=True)
    np.testing.assert_array_equal(res2.null.values, res.null.values)  # same draws for any alternative
    assert res2.p.item() == 1.0


def test_complement_side_is_drawn_when_smaller(rng):
    # k > n/2 draws the out-group: the null still matches the brute force (exact) and
    # the sampled p stays consistent with the mirrored grouping
    values = rng.normal(size=40)
    mask = _mask(rng, 40, 35)
    a = permutation_test(values, mask[None], n_perm=20_000, alternative="greater", seed=1)
    b = permutation_test(values, ~mask[None], n_perm=20_000, alternative="less", seed=1)
    assert a.statistic.item() == pytest.approx(-b.statistic.item(), rel=1e-12)
    assert abs(a.p.item() - b.p.item()) < 0.02


def test_nan_items_are_dropped_everywhere(rng):
    values = rng.normal(size=12)
    groups = np.stack([_mask(rng, 12, 4), _mask(rng, 12, 6)])
    values[[2, 7]] = np.nan
    res = permutation_test(values, groups)
    keep = ~np.isnan(values)
    ref = permutation_test(values[keep], groups[:, keep])
    for name in ("statistic", "p", "n_in", "n_out", "exact"):
        np.testing.assert_array_equal(res[name].values, ref[name].values)
    assert res.attrs["n_dropped_nan"] == 2
    np.testing.assert_array_equal(res.n_in + res.n_out, [10, 10])


def test_empty_or_full_group_is_nan_row(rng):
    values = rng.normal(size=10)
    groups = np.stack([np.zeros(10, bool), np.ones(10, bool), _mask(rng, 10, 3)])
    with pytest.warns(DegenerateWarning, match="2 result"):
        res = permutation_test(values, groups, return_null=True)
    assert np.isnan(res.p.values[:2]).all() and np.isnan(res.statistic.values[:2]).all()
    assert np.isnan(res.null.values[:2]).all()
    assert np.isfinite(res.p.values[2])
    np.testing.assert_array_equal(res.n_in.values, [0, 10, 3])


def test_same_seed_same_bits_any_thread_count(rng, monkeypatch):
    import emostats.stats.permutation as perm

    values = rng.normal(size=300)
    groups = np.stack([_mask(rng, 300, k) for k in (2, 5, 40, 150, 290, 3, 77)])
    runs = [permutation_test(values, groups, n_perm=3000, seed=5, threads=t, return_null=True)
            for t in (1, 2, 1)]
    monkeypatch.setattr(perm, "PARALLEL_WORK", 0)  # parallel kernel even on tiny input
    small = np.stack([_mask(rng, 40, k) for k in (2, 5, 20, 35)])
    runs.append(permutation_test(values[:40], small, n_perm=50, seed=5, threads=2))
    tiny = permutation_test(values[:40], small, n_perm=50, seed=5, threads=1)
    np.testing.assert_array_equal(runs.pop().p.values, tiny.p.values)
    for r in runs[1:]:
        np.testing.assert_array_equal(r.p.values, runs[0].p.values)
        np.testing.assert_array_equal(r.null.values, runs[0].null.values)
    other = permutation_test(values, groups, n_perm=3000, seed=6)
    assert not np.array_equal(other.p.values[~runs[0].exact.values], runs[0].p.values[~runs[0].exact.values])


@given(st.data())
def test_relabelling_groups_and_items_changes_nothing(data):
    n = data.draw(st.integers(6, 30))
    n_groups = data.draw(st.integers(1, 4))
    values = np.array(data.draw(st.lists(st.sampled_from([-1.5, 0.0, 0.25, 1.0, 2.0, 3.5]) | st.floats(-5, 5),
                                         min_size=n, max_size=n)))
    groups = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n),
                                         min_size=n_groups, max_size=n_groups)))
    item_perm = np.array(data.draw(st.permutations(range(n))))
    group_perm = np.array(data.draw(st.permutations(range(n_groups))))
    alt = data.draw(st.sampled_from(ALTS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWarning)
        a = permutation_test(values, groups, alternative=alt, n_perm=500, seed=2)
        b = permutation_test(values[item_perm], groups[group_perm][:, item_perm], alternative=alt,
                             n_perm=500, seed=2)
    for name in ("p", "statistic", "n_in", "n_out", "exact"):
        np.testing.assert_array_equal(a[name].values[group_perm], b[name].values)


def test_dataarray_inputs_keep_coordinates_and_align_items(rng):
    items = [f"f{i}" for i in range(9)]
    values = xr.DataArray(rng.normal(size=9), dims="item", coords={"item": items})
    masks = np.stack([_mask(rng, 9, 3), _mask(rng, 9, 4)])
    groups = xr.DataArray(masks, dims=("emotion", "item"),
                          coords={"emotion": ["joy", "fear"], "item": items})
    res = permutation_test(values, groups, group_dim="emotion")
    assert list(res.emotion.values) == ["joy", "fear"]
    shuffled = groups.isel(item=rng.permutation(9))
    res2 = permutation_test(values, shuffled, group_dim="emotion")
    np.testing.assert_array_equal(res.p.values, res2.p.values)
    ref = permutation_test(values.values, masks)
    np.testing.assert_array_equal(res.p.values, ref.p.values)
    assert res.attrs["alternative"] == "greater" and res.attrs["n_perm"] == 10_000
    assert res.p.attrs["long_name"]
    one = permutation_test(values, groups.isel(emotion=0))
    assert one.p.ndim == 0 and one.p.item() == res.p[0].item()


@pytest.mark.parametrize("kwargs, match", [
    (dict(values=[1.0, np.inf, 2.0], groups=[[1, 0, 0]]), "infinite"),
    (dict(values=[1.0, 2.0, 3.0], groups=[[1, 2, 0]]), "boolean"),
    (dict(values=[1.0, 2.0, 3.0], groups=[[True, False]]), "values must be 1-D"),
    (dict(values=[1.0, 2.0], groups=[[True, False]], alternative="bigger"), "alternative"),
    (dict(values=[1.0, 2.0], groups=[[True, False]], n_perm=0), "n_perm"),
    (dict(values=[1.0, 2.0], groups=[[True, False]], seed=-1), "seed"),
    (dict(values=[1.0, 2.0], groups=[[True, False]], statistic="median"), "statistic"),
])
def test_user_errors_are_one_line(kwargs, match):
    with pytest.raises(EmostatsError, match=match) as err:
        permutation_test(**kwargs)
    assert "\n" not in str(err.value)
