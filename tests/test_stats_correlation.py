"""spearman / pearson: R-pinned values, scipy on random inputs with ties and NaN, the
naive twins, exact permutation p (R's cor.test), degenerate rows, xarray and dask."""

import json
import math
import pathlib
import warnings

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from emostats import EmostatsError, pearson, spearman
from emostats.stats import kendall
from emostats._kernels.ranks import average_ranks, radix_argsort
from emostats.stats import DegenerateWarning, to_table
from tests.conftest import RTOL_KERNEL, RTOL_REFERENCE
from tests.rlive import RTOL_EST, RTOL_P
from tests.naive import stats as naive

REF = json.loads((pathlib.Path(__file__).parent / "R" / "stats_reference.json").read_text())


def _ranks(a):
    n = a.size
    out = np.empty(n)
    average_ranks(np.ascontiguousarray(a, dtype=float), out, np.empty(n, np.int64), np.empty(n, np.uint64),
                  np.empty(n, np.int64), np.empty(n, np.uint64))
    return out


# -- against R (values computed by R: tests/R/stats_reference.R) ---------------------------

@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_pearson_against_r(alternative):
    ref = REF["correlation"]
    res = pearson(np.array(ref["x"]), np.array(ref["y"]), alternative=alternative)
    assert res.r.item() == pytest.approx(ref["pearson_r"], rel=RTOL_EST)
    assert res.p.item() == pytest.approx(ref["pearson_p"][alternative], rel=RTOL_P)
    assert res.n.item() == 30 and res.p_method.item() == "t"
    if alternative == "two-sided":
        np.testing.assert_allclose([res.ci_low.item(), res.ci_high.item()], ref["pearson_ci95"], rtol=RTOL_EST)
        np.testing.assert_allclose(to_table(res)["CI95"][0], ref["pearson_ci95"], rtol=RTOL_EST)
    one = pearson(np.array(ref["x"]), np.array(ref["y"]), alternative="greater", conf_level=0.9)
    np.testing.assert_allclose([one.ci_low.item(), one.ci_high.item()], ref["pearson_ci90_greater"], rtol=RTOL_EST)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_spearman_and_kendall_defaults_are_r_cor_test(alternative):
    ref = REF["correlation"]
    x, y = np.array(ref["x"]), np.array(ref["y"])
    res = spearman(x, y, alternative=alternative)  # n = 30, no ties: R uses AS 89
    assert res.rho.item() == pytest.approx(ref["spearman_rho"], rel=RTOL_EST)
    assert res.p.item() == pytest.approx(ref["spearman_p"][alternative], rel=RTOL_P)
    assert res.p_method.item() == "edgeworth"
    k = kendall(x, y, alternative=alternative)  # n < 50, no ties: exact
    assert k.tau.item() == pytest.approx(ref["kendall_tau"], rel=RTOL_EST)
    assert k.p.item() == pytest.approx(ref["kendall_p"][alternative], rel=RTOL_P)
    assert k.p_method.item() == "exact"
    if alternative == "two-sided":
        # the old behaviour stays available: the t approximation at every n (scipy's spearmanr)
        assert spearman(x, y, method="t").p.item() == pytest.approx(ref["spearman_p_t"], rel=RTOL_P)
        assert spearman(x, y, exact=False).p.item() == pytest.approx(ref["spearman_p_t"], rel=RTOL_P)
        assert kendall(x, y, exact=False).p.item() == pytest.approx(ref["kendall_p_normal"], rel=RTOL_P)
        assert kendall(x, y, exact=False, continuity=True).p.item() == pytest.approx(
            ref["kendall_p_normal_cc"], rel=RTOL_P)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_exact_spearman_against_r_cor_test(alternative):
    ref = REF["spearman_exact"]
    x, y = np.array(ref["x"]), np.array(ref["y"])
    res = spearman(x, y, alternative=alternative)  # R's default at n = 6: exact enumeration
    assert res.p_method.item() == "exact"
    assert res.p.item() == pytest.approx(ref["p"][alternative], rel=RTOL_P)
    perm = spearman(x, y, permutation=10_000, alternative=alternative)  # the same from our permutations
    assert perm.exact.item()
    assert perm.rho.item() == pytest.approx(ref["rho"], rel=RTOL_KERNEL)
    assert perm.p.item() == pytest.approx(ref["p"][alternative], abs=1e-12)
    res4 = spearman(np.array(ref["x4"], float), np.array(ref["y4"], float))
    assert res4.p.item() == pytest.approx(ref["p4_two_sided"], rel=RTOL_P)


def test_spearman_small_n_follows_r_not_the_t_approximation():
    ref = REF["spearman_exact"]
    # issue 13: a perfect rank correlation at n = 5 has p = 1/60 in R; the t approximation says 0
    perfect = spearman(np.arange(1.0, 6.0), np.array([5.0, 6, 7, 8, 9]))
    assert perfect.p.item() == pytest.approx(ref["p5_perfect"], rel=RTOL_P) == pytest.approx(1 / 60)
    assert spearman(np.arange(1.0, 6.0), np.array([5.0, 6, 7, 8, 9]), method="t").p.item() == 0.0
    # n = 15: R (Edgeworth) and the t approximation fall on opposite sides of 0.05
    x, y = np.arange(15.0), np.array(ref["y15"], float)
    r_default, t_approx = spearman(x, y).p.item(), spearman(x, y, method="t").p.item()
    assert r_default == pytest.approx(ref["p15"], rel=RTOL_P) and r_default > 0.05
    assert t_approx == pytest.approx(ref["p15_t"], rel=RTOL_P) and t_approx < 0.05
    ties = spearman(np.array(ref["x_ties"]), np.array(ref["y_ties"]))  # ties: R uses the t approximation
    assert ties.p_method.item() == "t" and ties.p.item() == pytest.approx(ref["p_ties"], rel=RTOL_P)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_kendall_against_r(alternative):
    ref = REF["kendall"]
    x, y, yt = (np.array(ref[k], float) for k in ("x", "y", "y_ties"))
    res = kendall(x, y, alternative=alternative)
    assert res.tau.item() == pytest.approx(ref["tau"], rel=RTOL_EST) and res.p_method.item() == "exact"
    assert res.p.item() == pytest.approx(ref["p"][alternative], rel=RTOL_P)
    tied = kendall(x, yt, alternative=alternative)
    assert tied.tau.item() == pytest.approx(ref["tau_ties"], rel=RTOL_EST) and tied.p_method.item() == "normal"
    assert tied.p.item() == pytest.approx(ref["p_ties"][alternative], rel=RTOL_P)
    if alternative == "two-sided":
        assert kendall(x, yt, continuity=True).p.item() == pytest.approx(ref["p_ties_cc"], rel=RTOL_P)


def test_kendall_matches_scipy_and_naive_twin(rng):
    x, y = _messy(rng, 30, 40)
    res = kendall(x, y)
    for i in range(x.shape[0]):
        ref = stats.kendalltau(x[i], y, nan_policy="omit")
        assert res.tau[i].item() == pytest.approx(ref.statistic, rel=RTOL_REFERENCE, abs=1e-14)
        tau, n = naive.kendall(x[i], y)
        assert res.tau[i].item() == pytest.approx(tau, rel=RTOL_KERNEL, abs=1e-14) and res.n[i].item() == n
    exact = kendall(x[:, :12][:, None, :], y[:12])  # small n: exact where there are no ties
    assert set(np.unique(exact.p_method.values)) <= {"exact", "normal", ""}


# -- against scipy on random inputs with ties and NaN --------------------------------------

def _messy(rng, rows, n):
    x = rng.integers(0, 6, (rows, n)).astype(float)  # many ties
    x[: rows // 2] += rng.normal(size=(rows // 2, n))  # half the rows without ties
    x[rng.random((rows, n)) < 0.05] = np.nan
    x[1] = rng.normal(size=n)  # a complete row (fast path)
    y = rng.integers(0, 4, n).astype(float)
    y[rng.random(n) < 0.03] = np.nan
    return x, y


def test_spearman_matches_scipy_omit(rng):
    x, y = _messy(rng, 40, 60)
    for yy in (y, np.where(np.isnan(y), 0.5, y)):
        res = spearman(x, yy, method="t")  # scipy's p is the t approximation
        for i in range(x.shape[0]):
            ref = stats.spearmanr(x[i], yy, nan_policy="omit")
            assert res.rho[i].item() == pytest.approx(ref.statistic, rel=RTOL_REFERENCE, abs=1e-14)
            assert res.p[i].item() == pytest.approx(ref.pvalue, rel=RTOL_REFERENCE)
            assert res.n[i].item() == int((~np.isnan(x[i]) & ~np.isnan(yy)).sum())


def test_row_pairs_and_broadcasting_match_scipy(rng):
    x = rng.normal(size=(3, 4, 25))
    y = rng.normal(size=(3, 4, 25)) + 0.5 * x
    y[0, 0, :3] = np.nan
    res = spearman(x, y)
    assert res.rho.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            ref = stats.spearmanr(x[i, j], y[i, j], nan_policy="omit")
            assert res.rho[i, j].item() == pytest.approx(ref.statistic, rel=RTOL_REFERENCE)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_pearson_matches_scipy(rng, alternative):
    x = rng.normal(size=(20, 30)) + 1e4  # large offset: two-pass sums keep the digits
    y = rng.normal(size=30) + 0.3 * (x[0] - 1e4)
    res = pearson(x, y, alternative=alternative)
    for i in range(20):
        ref = stats.pearsonr(x[i], y, alternative=alternative)
        assert res.r[i].item() == pytest.approx(ref.statistic, rel=RTOL_REFERENCE)
        assert res.p[i].item() == pytest.approx(ref.pvalue, rel=RTOL_REFERENCE)


def test_against_naive_twin(rng):
    x, y = _messy(rng, 10, 15)
    for method, fn, name in (("spearman", spearman, "rho"), ("pearson", pearson, "r")):
        res = fn(x, y)
        for i in range(10):
            r, n = getattr(naive, method)(x[i], y)
            assert res[name][i].item() == pytest.approx(r, rel=RTOL_KERNEL, abs=1e-14)
            assert res.n[i].item() == n


# -- ranking kernels ------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["normal", "ties", "signed_zero", "offset", "float32", "tiny", "one"])
def test_ranks_against_naive_and_scipy(rng, case):
    a = {
        "normal": rng.normal(size=200),
        "ties": rng.integers(-3, 3, 200).astype(float),
        "signed_zero": np.array([0.0, -0.0, 1.0, -1.0, -0.0, 0.0, 2.0]),
        "offset": rng.normal(size=100) + 1e9,
        "float32": rng.normal(size=100).astype(np.float32).astype(float),
        "tiny": np.array([5e-324, -5e-324, 0.0, 1e308, -1e308, np.finfo(float).tiny]),
        "one": np.array([3.0]),
    }[case]
    r = _ranks(a)
    np.testing.assert_array_equal(r, naive.average_ranks(a))
    np.testing.assert_array_equal(r, stats.rankdata(a))
    n = a.size
    order, keys = np.empty(n, np.int64), np.empty(n, np.uint64)
    radix_argsort(a, order, keys, np.empty(n, np.int64), np.empty(n, np.uint64))
    np.testing.assert_array_equal(a[order], np.sort(a))


# -- permutation p ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["spearman", "pearson"])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_exact_permutation_against_brute_force(rng, method, alternative):
    x = np.array([1.0, 2.0, 2.0, 5.0, 3.0])  # ties
    y = rng.normal(size=5)
    fn = spearman if method == "spearman" else pearson
    res = fn(x, y, permutation=200, alternative=alternative)
    assert res.exact.item()
    assert res.p.item() == pytest.approx(naive.correlation_exact(x, y, method, alternative), rel=RTOL_KERNEL)


def test_sampled_permutation_matches_scipy_within_monte_carlo_error(rng):
    x = rng.normal(size=(3, 25))
    y = rng.normal(size=25) + 0.4 * x[0]
    n_perm = 4000
    res = spearman(x, y, permutation=n_perm, seed=4)
    assert not res.exact.any()
    ry = stats.rankdata(y)
    for i in range(3):
        rx = stats.rankdata(x[i])
        ref = stats.permutation_test((rx,), lambda a: stats.pearsonr(a, ry).statistic,
                                     permutation_type="pairings", n_resamples=n_perm, rng=3).pvalue
        p = res.p[i].item()
        assert abs(p - ref) < 5 * math.sqrt(max(p * (1 - p), 1e-3) * 2 / n_perm)
    again = spearman(x, y, permutation=n_perm, seed=4, threads=1)
    np.testing.assert_array_equal(again.p.values, res.p.values)


# -- degenerate rows, inputs --------------------------------------------------------------

def test_constant_or_too_short_rows_are_nan_with_warning():
    x = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, np.nan, np.nan], [1.0, 2.0, 3.0, 5.0]])
    y = np.array([4.0, 3.0, 1.0, 2.0])
    for fn in (spearman, pearson):
        with pytest.warns(DegenerateWarning, match="2 result"):
            res = fn(x, y, permutation=100) if fn is spearman else fn(x, y)
        values = res[list(res.data_vars)[0]].values
        assert np.isnan(values[:2]).all() and np.isnan(res.p.values[:2]).all()
        assert np.isfinite(values[2]) and np.isfinite(res.p.values[2])
        np.testing.assert_array_equal(res.n.values, [4, 2, 4])


def test_perfect_correlation_has_p_zero_not_nan():
    x = np.arange(10.0)
    res = pearson(x, 2 * x + 1)
    assert res.r.item() == 1.0 and res.p.item() == 0.0


def test_dataarrays_pair_along_dim_and_dask_matches(rng):
    x = xr.DataArray(rng.normal(size=(5, 40)), dims=("feature", "obs"), coords={"feature": list("abcde")})
    y = xr.DataArray(rng.normal(size=40), dims="obs")
    res = spearman(x, y, dim="obs")
    assert res.rho.dims == ("feature",) and list(res.feature.values) == list("abcde")
    lazy = spearman(x.chunk({"feature": 2, "obs": 10}), y.chunk({"obs": 10}), dim="obs")
    xr.testing.assert_allclose(lazy.compute(), res, rtol=0, atol=0)
    with pytest.raises(EmostatsError, match="pass dim="):
        spearman(x, y)
    with pytest.raises(EmostatsError, match="coordinates of x and y differ"):
        spearman(x.assign_coords(obs=np.arange(40)), y.assign_coords(obs=np.arange(1, 41)), dim="obs")
    with pytest.raises(EmostatsError, match="inf"):
        pearson(np.array([1.0, np.inf, 2.0]), np.array([1.0, 2.0, 3.0]))
    assert res.attrs["test"] == "spearman" and res.rho.attrs["long_name"]


@pytest.mark.parametrize("permutation", [False, 300])
def test_threads_do_not_change_bits(rng, monkeypatch, permutation):
    import emostats.stats._correlation_core as corr

    x, y = _messy(rng, 30, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWarning)
        serial = [fn(x, y, threads=1, permutation=permutation) for fn in (spearman, pearson)]
        serial.append(kendall(x, y, threads=1))
        monkeypatch.setattr(corr, "PARALLEL_WORK", 0)  # force the parallel kernels on small input
        parallel = [fn(x, y, threads=2, permutation=permutation) for fn in (spearman, pearson)]
        parallel.append(kendall(x, y, threads=2))
    for a, b in zip(serial, parallel):
        xr.testing.assert_identical(a, b)


def test_permutation_p_independent_of_row_order_and_chunks(rng):
    x = xr.DataArray(rng.normal(size=(6, 20)), dims=("feature", "obs"))
    y = xr.DataArray(rng.normal(size=20), dims="obs")
    eager = spearman(x, y, dim="obs", permutation=500, seed=9)
    assert not eager.exact.any()
    order = rng.permutation(6)
    shuffled = spearman(x.isel(feature=order), y, dim="obs", permutation=500, seed=9)
    np.testing.assert_array_equal(shuffled.p.values, eager.p.values[order])
    lazy = spearman(x.chunk({"feature": 4}), y, dim="obs", permutation=500, seed=9).compute()
    xr.testing.assert_identical(lazy, eager)
