"""one_sample_tests: R's wilcox.test and binom.test, scipy's ttest_1samp / wilcoxon /
binomtest on random inputs with ties, zeros and NaN, the exact sign-flip twin, and the
degenerate cases."""

import json
import pathlib
import warnings

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from emostats import EmostatsError, one_sample_tests
from emostats.stats import DegenerateWarning, t_test
from tests.conftest import RTOL_KERNEL, RTOL_REFERENCE
from tests.rlive import RTOL_EST, RTOL_P
from tests.naive import stats as naive

ALL = json.loads((pathlib.Path(__file__).parent / "R" / "stats_reference.json").read_text())
REF = ALL["wilcoxon"]
ALTS = ["two-sided", "greater", "less"]


def _one(x, **kw):
    return one_sample_tests(np.asarray(x, dtype=float), **kw)


# -- against R (values computed by R: tests/R/stats_reference.R) ---------------------------

def test_wilcoxon_normal_approximation_against_r():
    d = np.subtract(REF["approx_x"], REF["approx_y"])
    assert _one(d, wilcoxon_method="asymptotic", correct=False).wilcoxon_p.item() == pytest.approx(
        REF["approx_p"]["nocorrect"], rel=RTOL_P)
    assert _one(d, wilcoxon_method="asymptotic").wilcoxon_p.item() == pytest.approx(
        REF["approx_p"]["correct"], rel=RTOL_P)
    res = _one(d)  # R's default: exact = NULL -> exact here (12 values, no ties or zeros)
    assert res.wilcoxon_p.item() == pytest.approx(REF["approx_default_p"], rel=RTOL_P)
    assert res.wilcoxon_p_method.item() == "exact"
    np.testing.assert_allclose([res.hl_estimate.item(), res.hl_ci_low.item(), res.hl_ci_high.item(),
                                res.hl_ci_level.item()], REF["approx_hl"], rtol=RTOL_EST)
    tie = np.full(10, 0.1)  # zero spread: the t-test is undefined (warned), ranks are fine
    with pytest.warns(DegenerateWarning):
        assert _one(tie, wilcoxon_method="asymptotic", correction=False).wilcoxon_p.item() == pytest.approx(
            REF["tie_p"]["nocorrect"], rel=RTOL_P)
    with pytest.warns(DegenerateWarning):
        assert _one(tie).wilcoxon_p.item() == pytest.approx(REF["tie_p"]["correct"], rel=RTOL_P)
    d = np.subtract(REF["onesided_x"], REF["onesided_y"])  # ties and a zero
    for alt in ("less", "greater"):
        for cc, key in ((False, "nocorrect"), (True, "correct")):
            res = _one(d, alternative=alt, correct=cc, wilcoxon_method="asymptotic")
            assert res.wilcoxon_p.item() == pytest.approx(REF["onesided_p"][f"{alt}_{key}"], rel=RTOL_P)
            assert res.wilcoxon_W.item() == 27
    res = _one(d, alternative="greater", conf_level=0.9)
    np.testing.assert_allclose([res.hl_estimate.item(), res.hl_ci_low.item(), res.hl_ci_high.item(),
                                res.hl_ci_level.item()], REF["onesided_hl_greater90"], rtol=RTOL_EST)


@pytest.mark.parametrize("alternative", ALTS)
def test_wilcoxon_exact_against_r(alternative):
    d = np.subtract(REF["exact_x"], REF["exact_y"])
    res = _one(d, alternative=alternative)
    assert res.wilcoxon_exact.item() and res.wilcoxon_p_method.item() == "exact"
    assert res.wilcoxon_p.item() == pytest.approx(REF["exact_p"][alternative], rel=RTOL_P)
    d20 = (np.arange(20) + 0.5) - np.arange(20, 0, -1)
    assert _one(d20, alternative=alternative).wilcoxon_p.item() == pytest.approx(
        REF["exact20_p"][alternative], rel=RTOL_P)
    hl = _one(d)
    np.testing.assert_allclose([hl.hl_estimate.item(), hl.hl_ci_low.item(), hl.hl_ci_high.item(),
                                hl.hl_ci_level.item()], REF["exact_hl"], rtol=RTOL_EST)
    less = _one(d, alternative="less", conf_level=0.8)
    np.testing.assert_allclose([less.hl_estimate.item(), less.hl_ci_low.item(), less.hl_ci_high.item(),
                                less.hl_ci_level.item()], REF["exact_hl_less80"], rtol=RTOL_EST)
    case = _one(REF["issue_case"])
    np.testing.assert_allclose([case.hl_estimate.item(), case.hl_ci_low.item(), case.hl_ci_high.item(),
                                case.hl_ci_level.item()], REF["issue_case_hl"], rtol=RTOL_EST)


def test_sign_test_against_r_binom_test():
    cases = ALL["sign_test"]
    for k, n, p, lo, hi in cases["cases"]:
        k, n = int(k), int(n)
        x = np.r_[np.ones(k), -np.ones(n - k), np.zeros(3)]  # zeros are dropped
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateWarning)
            res = _one(x)
        assert res.sign_p.item() == pytest.approx(p, rel=RTOL_P)
        np.testing.assert_allclose([res.sign_ci_low.item(), res.sign_ci_high.item()], [lo, hi], rtol=RTOL_EST)
        assert res.n_positive.item() == k and res.n_negative.item() == n - k
    for key, alt, level in (("greater90", "greater", 0.9), ("less99", "less", 0.99)):
        k, n, p, lo, hi = cases[key]
        res = _one(np.r_[np.ones(int(k)), -np.ones(int(n - k))], alternative=alt, conf_level=level)
        np.testing.assert_allclose([res.sign_p.item(), res.sign_ci_low.item(), res.sign_ci_high.item()],
                                   [p, lo, hi], rtol=RTOL_P)


def test_t_tests_against_r():
    ref = ALL["t_test"]
    x, y = np.array(ref["x"]), np.array(ref["y"])

    def vals(res):
        return [res[k].item() for k in ("t", "df", "p", "ci_low", "ci_high")]

    np.testing.assert_allclose(vals(t_test(x, mu=5)), ref["one"], rtol=RTOL_P)
    np.testing.assert_allclose(vals(t_test(x, mu=5, alternative="greater", conf_level=0.9)),
                               ref["one_greater90"], rtol=RTOL_P)
    np.testing.assert_allclose(vals(t_test(x, y)), ref["welch"], rtol=RTOL_P)
    np.testing.assert_allclose(vals(t_test(x, y, alternative="less", mu=1)), ref["welch_less"], rtol=RTOL_P)
    np.testing.assert_allclose(vals(t_test(x, y, var_equal=True)), ref["student"], rtol=RTOL_P)
    np.testing.assert_allclose(vals(t_test(x, y, var_equal=True, conf_level=0.99)), ref["student99"], rtol=RTOL_P)
    one = _one(x, popmean=5, alternative="greater", conf_level=0.9)
    np.testing.assert_allclose([one.t.item(), one.t_df.item(), one.t_p.item(), one.ci_low.item(),
                                one.ci_high.item()], ref["one_greater90"], rtol=RTOL_P)


def test_essentially_constant_data_are_nan_with_warning_as_r_refuses_them():
    ref = ALL["t_test"]
    assert ref["constant_sum"] and ref["constant_offset"]  # R: "data are essentially constant"
    for x, mu in (([0.1 + 0.2, 0.3, 0.3], 0.0), (1e8 + np.array([0, 1e-7, 3e-7, 4e-7]), 1e8)):
        with pytest.warns(DegenerateWarning, match="essentially constant"):
            res = _one(x, popmean=mu)
        assert np.isnan(res.t.item()) and np.isnan(res.t_p.item()) and np.isnan(res.ci_low.item())
        with pytest.warns(DegenerateWarning, match="essentially constant"):
            assert np.isnan(t_test(np.asarray(x), mu=mu).p.item())
    # centred on popmean first: a large offset loses no digits (t of the exact doubles)
    x = 1e4 + np.array([0.0, 0.5, 1.5, 2.0, 3.0])
    exact_t = float(np.mean(x - 1e4) / (np.std(x - 1e4, ddof=1) / np.sqrt(5)))
    assert _one(x, popmean=1e4).t.item() == pytest.approx(exact_t, rel=1e-14)


# -- against scipy on random inputs -------------------------------------------------------

def _rows(rng):
    rows = [rng.normal(0.3, 1, 30), rng.normal(size=80), np.round(rng.normal(0.2, 1, 40), 1),
            rng.integers(-2, 3, 12).astype(float), rng.normal(size=9), np.round(rng.normal(size=60))]
    rows[1][[3, 10]] = np.nan
    return rows


@pytest.mark.parametrize("alternative", ALTS)
def test_matches_scipy(rng, alternative):
    for x in _rows(rng):
        # scipy's wilcoxon(method="auto") without continuity correction: emostats' rule before R's
        res = _one(x, alternative=alternative, popmean=0.1, wilcoxon_method="auto", correct=False)
        xs = x[~np.isnan(x)]
        d = xs - 0.1
        t = stats.ttest_1samp(xs, 0.1, alternative=alternative)
        assert res.t.item() == pytest.approx(t.statistic, rel=RTOL_REFERENCE)
        assert res.t_p.item() == pytest.approx(t.pvalue, rel=RTOL_REFERENCE)
        ci = stats.ttest_1samp(xs, 0.1, alternative=alternative).confidence_interval(0.95)
        assert (res.ci_low.item(), res.ci_high.item()) == pytest.approx((ci.low, ci.high), rel=RTOL_REFERENCE)
        w = stats.wilcoxon(d, alternative=alternative)
        assert res.wilcoxon_p.item() == pytest.approx(w.pvalue, rel=1e-9)
        if alternative != "two-sided":
            assert res.wilcoxon_W.item() == pytest.approx(w.statistic)
        k, n = int((d > 0).sum()), int((d != 0).sum())
        assert res.sign_p.item() == pytest.approx(stats.binomtest(k, n, 0.5, alternative=alternative).pvalue,
                                                  rel=1e-12)
        assert res.n.item() == xs.size and res["median"].item() == np.median(xs)


@pytest.mark.parametrize("alternative", ALTS)
def test_exact_sign_flips_against_brute_force(rng, alternative):
    for x in (np.array([1.0, -2.0, 2.0, 3.0, -3.0, 0.0, 4.0]), rng.integers(-3, 4, 10).astype(float),
              rng.normal(size=8)):
        w, p = naive.wilcoxon_exact(x, alternative)
        res = _one(x, alternative=alternative, wilcoxon_method="exact")
        assert res.wilcoxon_W.item() == pytest.approx(w)
        assert res.wilcoxon_p.item() == pytest.approx(p, rel=RTOL_KERNEL)


@pytest.mark.parametrize("alternative", ALTS)
def test_signed_rank_z_kernel_against_naive_twin(rng, alternative):
    from emostats._kernels.rank_tests import signed_rank_z

    alt = {"greater": 0, "less": 1, "two-sided": 2}[alternative]
    for x in (rng.normal(size=30), np.round(rng.normal(size=40), 1), np.array([0.5, 0.5, -0.5, 0.0]),
              np.full(5, 2.0), np.array([1.0])):
        for d in (0.0, 0.5, float(np.median(x)), 2.0):
            for correct in (False, True):
                ours = signed_rank_z(np.ascontiguousarray(x), d, correct, alt)
                ref = naive.signed_rank_z(x, d, correct, alternative)
                assert (np.isnan(ours) and np.isnan(ref)) or ours == pytest.approx(ref, rel=RTOL_KERNEL, abs=1e-15)


# -- degenerate cases, batches, inputs -------------------------------------------------------

def test_degenerate_cases_are_nan_not_inf():
    with pytest.warns(DegenerateWarning):
        zero = _one(np.zeros(6))
    assert zero.n.item() == 6 and zero.n_positive.item() == 0
    for name in ("t", "t_p", "wilcoxon_W", "wilcoxon_p", "sign_p", "ci_low"):
        assert np.isnan(zero[name].item()), name
    with pytest.warns(DegenerateWarning):
        const = _one(np.full(5, 2.0))  # constant away from popmean: t undefined, ranks fine
    assert np.isnan(const.t.item()) and np.isnan(const.t_p.item())
    assert const.sign_p.item() == pytest.approx(0.0625)
    # R: all |d| tied -> normal approximation with continuity correction, z = 7 / sqrt(11.25)
    assert const.wilcoxon_p.item() == pytest.approx(2 * stats.norm.sf(7 / np.sqrt(11.25)), rel=1e-12)
    assert const.wilcoxon_p_method.item() == "normal" and np.isnan(const.hl_ci_low.item())
    with pytest.warns(DegenerateWarning):  # equal values whose float mean is not exactly 0.2: still no spread
        rounded = _one(np.full(3, 0.2))
    assert np.isnan(rounded.t.item()) and np.isnan(rounded.t_p.item()) and np.isnan(rounded.ci_low.item())
    with pytest.warns(DegenerateWarning):
        single = _one([0.5])
    assert np.isnan(single.t.item()) and single.wilcoxon_p.item() == 1.0 and single.sign_p.item() == 1.0
    with pytest.warns(DegenerateWarning):
        empty = _one([np.nan, np.nan])
    assert empty.n.item() == 0 and np.isnan(empty["mean"].item()) and np.isnan(empty.sign_p.item())


def test_batched_dataarray(rng):
    x = xr.DataArray(rng.normal(0.2, 1, (3, 25)), dims=("target", "sample"),
                     coords={"target": ["probe", "pc", "sae"]})
    res = one_sample_tests(x, dim="sample")
    assert res.t.dims == ("target",) and list(res.target.values) == ["probe", "pc", "sae"]
    for i in range(3):
        ref = stats.ttest_1samp(x[i].values, 0).pvalue
        assert res.t_p[i].item() == pytest.approx(ref, rel=RTOL_REFERENCE)
    whole = one_sample_tests(x)  # dim=None: every dim is the sample
    assert whole.n.item() == 75
    arr = one_sample_tests(x.values, dim=1)
    np.testing.assert_array_equal(arr.t.values, res.t.values)
    assert res.attrs["alternative"] == "two-sided" and res.wilcoxon_W.attrs["long_name"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=np.array([1.0, np.inf])), "inf"),
    (dict(x=np.array([1.0, 2.0]), alternative="up"), "alternative"),
    (dict(x=np.array([1.0, 2.0]), wilcoxon_method="fast"), "wilcoxon_method"),
    (dict(x=xr.DataArray([1.0], dims="a"), dim="b"), "not dims"),
    (dict(x=np.array([1.0, 2.0]), dim="a"), "int axis"),
])
def test_user_errors(kwargs, match):
    with pytest.raises(EmostatsError, match=match):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateWarning)
            one_sample_tests(**kwargs)
