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
from emostats.stats import DegenerateWarning
from tests.conftest import RTOL_KERNEL, RTOL_R_PRINTED, RTOL_REFERENCE
from tests.naive import stats as naive

REF = json.loads((pathlib.Path(__file__).parent / "R" / "stats_reference.json").read_text())["wilcoxon"]
ALTS = ["two-sided", "greater", "less"]


def _one(x, **kw):
    return one_sample_tests(np.asarray(x, dtype=float), **kw)


# -- against R -------------------------------------------------------------------------------

def test_wilcoxon_normal_approximation_against_r():
    d = np.subtract(REF["approx_x"], REF["approx_y"])
    assert _one(d, wilcoxon_method="asymptotic").wilcoxon_p.item() == pytest.approx(
        REF["approx_p"]["nocorrect"], rel=RTOL_R_PRINTED)
    assert _one(d, wilcoxon_method="asymptotic", correction=True).wilcoxon_p.item() == pytest.approx(
        REF["approx_p"]["correct"], rel=RTOL_R_PRINTED)
    tie = np.full(10, 0.1)  # zero spread: the t-test is undefined (warned), ranks are fine
    with pytest.warns(DegenerateWarning):
        assert _one(tie, wilcoxon_method="asymptotic").wilcoxon_p.item() == pytest.approx(
            REF["tie_p"]["nocorrect"], rel=RTOL_R_PRINTED)
    with pytest.warns(DegenerateWarning):
        assert _one(tie, wilcoxon_method="asymptotic", correction=True).wilcoxon_p.item() == pytest.approx(
            REF["tie_p"]["correct"], rel=RTOL_R_PRINTED)
    d = np.subtract(REF["onesided_x"], REF["onesided_y"])  # ties and a zero
    for alt in ("less", "greater"):
        for cc, key in ((False, "nocorrect"), (True, "correct")):
            res = _one(d, alternative=alt, correction=cc, wilcoxon_method="asymptotic")
            assert res.wilcoxon_p.item() == pytest.approx(REF["onesided_p"][f"{alt}_{key}"], abs=1e-6)
            assert res.wilcoxon_W.item() == 27


@pytest.mark.parametrize("alternative", ALTS)
def test_wilcoxon_exact_against_r(alternative):
    d = np.subtract(REF["exact_x"], REF["exact_y"])
    res = _one(d, alternative=alternative)
    assert res.wilcoxon_exact.item()
    assert res.wilcoxon_p.item() == pytest.approx(REF["exact_p"][alternative], abs=1e-6)
    d20 = (np.arange(20) + 0.5) - np.arange(20, 0, -1)
    assert _one(d20, alternative=alternative).wilcoxon_p.item() == pytest.approx(
        REF["exact20_p"][alternative], abs=1e-6)


def test_sign_test_against_r_binom_test():
    cases = json.loads((pathlib.Path(__file__).parent / "R" / "stats_reference.json").read_text())
    for k, n, p in cases["sign_test"]["cases"]:
        x = np.r_[np.ones(k), -np.ones(n - k), np.zeros(3)]  # zeros are dropped
        res = _one(x)
        assert res.sign_p.item() == pytest.approx(p, rel=1e-10)
        assert res.n_positive.item() == k and res.n_negative.item() == n - k


# -- against scipy on random inputs -------------------------------------------------------

def _rows(rng):
    rows = [rng.normal(0.3, 1, 30), rng.normal(size=80), np.round(rng.normal(0.2, 1, 40), 1),
            rng.integers(-2, 3, 12).astype(float), rng.normal(size=9), np.round(rng.normal(size=60))]
    rows[1][[3, 10]] = np.nan
    return rows


@pytest.mark.parametrize("alternative", ALTS)
def test_matches_scipy(rng, alternative):
    for x in _rows(rng):
        res = _one(x, alternative=alternative, popmean=0.1)
        xs = x[~np.isnan(x)]
        d = xs - 0.1
        t = stats.ttest_1samp(xs, 0.1, alternative=alternative)
        assert res.t.item() == pytest.approx(t.statistic, rel=RTOL_REFERENCE)
        assert res.t_p.item() == pytest.approx(t.pvalue, rel=RTOL_REFERENCE)
        ci = stats.ttest_1samp(xs, 0.1).confidence_interval(0.95)
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
    assert const.sign_p.item() == pytest.approx(0.0625) and const.wilcoxon_p.item() == pytest.approx(0.0625)
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
