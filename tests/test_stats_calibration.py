"""Calibration: on null data every test rejects at its nominal rate (within Monte Carlo
error; exact discrete tests at most at it), and every interval covers its parameter at
its nominal rate. Small, seeded simulations, batched over rows."""

import math
import warnings

import numpy as np
import pytest

from emostats.stats import (DegenerateWarning, kendall, one_sample_tests, p_adjust, pearson, spearman,
                            t_test)
from emostats.stats.tables import r_confidence_interval

ALPHA = 0.05
REPS = 2000
#: Monte Carlo error allowed: 4 binomial standard errors of a rate at REPS replicates
SLACK = 4 * math.sqrt(ALPHA * (1 - ALPHA) / REPS)


def _rate(p, alpha=ALPHA):
    p = np.asarray(p, dtype=float)
    assert np.isfinite(p).all()
    return float(np.mean(p <= alpha))


@pytest.fixture
def sim():
    return np.random.default_rng(20261203)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("n, ties, expected", [(8, False, "exact"), (25, False, "edgeworth"), (25, True, "t"),
                                               (1400, False, "t")])
def test_spearman_rejects_at_the_nominal_rate(sim, n, ties, expected, alternative):
    reps = REPS if n < 1000 else 400
    x = sim.normal(size=(reps, n))
    y = sim.normal(size=n)
    if ties:
        x, y = np.round(x), np.round(y)
    res = spearman(x, y, alternative=alternative)
    assert set(res.p_method.values.tolist()) == {expected}
    slack = 4 * math.sqrt(ALPHA * (1 - ALPHA) / reps)
    assert abs(_rate(res.p) - ALPHA) < slack


@pytest.mark.parametrize("n, ties, expected", [(10, False, "exact"), (60, False, "normal"), (30, True, "normal")])
def test_kendall_rejects_at_the_nominal_rate(sim, n, ties, expected):
    x = sim.normal(size=(REPS, n))
    y = sim.normal(size=n)
    if ties:
        x, y = np.round(x), np.round(y)
    res = kendall(x, y)
    assert set(res.p_method.values.tolist()) == {expected}
    rate = _rate(res.p)
    assert rate < ALPHA + SLACK and (n == 10 or rate > ALPHA - SLACK)  # exact at n = 10: discrete, at most


def test_pearson_and_t_tests_reject_at_the_nominal_rate(sim):
    assert abs(_rate(pearson(sim.normal(size=(REPS, 12)), sim.normal(size=12)).p) - ALPHA) < SLACK
    assert abs(_rate(t_test(sim.normal(size=(REPS, 10))).p) - ALPHA) < SLACK
    # Welch with unequal variances and sizes keeps its level; Student's does not (it is not asked to)
    welch = t_test(sim.normal(0, 3, size=(REPS, 6)), sim.normal(0, 1, size=(REPS, 25)))
    assert abs(_rate(welch.p) - ALPHA) < SLACK
    student = t_test(sim.normal(size=(REPS, 7)), sim.normal(size=(REPS, 9)), var_equal=True, alternative="less")
    assert abs(_rate(student.p) - ALPHA) < SLACK


@pytest.mark.parametrize("n, expected", [(12, "exact"), (60, "normal")])
def test_wilcoxon_and_sign_test_reject_at_most_at_the_nominal_rate(sim, n, expected):
    x = sim.standard_t(5, size=(REPS, n))  # symmetric about 0, heavy tails
    res = one_sample_tests(x, dim=1, conf_int=False)
    assert set(res.wilcoxon_p_method.values.tolist()) == {expected}
    rate = _rate(res.wilcoxon_p)
    assert rate < ALPHA + SLACK and (expected == "exact" or rate > ALPHA - SLACK)
    assert _rate(res.sign_p) < ALPHA + SLACK  # discrete: conservative
    assert abs(_rate(res.t_p) - ALPHA) < SLACK + 0.01  # t with t5 data: robust, nearly nominal


@pytest.mark.parametrize("method", ["holm", "hochberg", "hommel", "bonferroni", "BH", "BY"])
def test_familywise_error_under_the_global_null(sim, method):
    p = sim.random((REPS, 10))  # independent uniform p-values: every null true
    adj = np.stack([p_adjust(row, method).p_adj.values for row in p[:600]])
    fwer = float(np.mean((adj <= ALPHA).any(axis=1)))
    assert fwer < ALPHA + 4 * math.sqrt(ALPHA * (1 - ALPHA) / 600)
    # declaring a larger family (n = 20) can only make the adjustment stricter
    big = np.stack([p_adjust(row, method, n=20).p_adj.values for row in p[:100]])
    assert (big >= adj[:100] - 1e-15).all()


def _covers(lo, hi, value):
    return float(np.mean((np.asarray(lo) <= value) & (value <= np.asarray(hi))))


@pytest.mark.parametrize("level", [0.8, 0.95])
def test_t_and_welch_intervals_cover(sim, level):
    cover_slack = 4 * math.sqrt(level * (1 - level) / REPS)
    one = t_test(sim.normal(1.5, 2, size=(REPS, 9)), mu=1.5, conf_level=level)
    assert abs(_covers(one.ci_low, one.ci_high, 1.5) - level) < cover_slack
    welch = t_test(sim.normal(1.0, 3, size=(REPS, 6)), sim.normal(0.0, 1, size=(REPS, 20)), conf_level=level)
    assert abs(_covers(welch.ci_low, welch.ci_high, 1.0) - level) < cover_slack
    upper = t_test(sim.normal(size=(REPS, 9)), alternative="less", conf_level=level)
    assert np.isinf(upper.ci_low).all() and abs(_covers(upper.ci_low, upper.ci_high, 0.0) - level) < cover_slack


def test_hodges_lehmann_and_clopper_pearson_intervals_cover(sim):
    x = 0.7 + sim.standard_t(4, size=(1000, 10))  # symmetric about 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWarning)
        res = one_sample_tests(x, dim=1, popmean=0.7)
    achieved = float(res.hl_ci_level.min())
    assert achieved >= 0.95 - 1e-12
    assert _covers(res.hl_ci_low, res.hl_ci_high, 0.7) > 0.95 - 4 * math.sqrt(0.05 * 0.95 / 1000)
    # Clopper-Pearson of P(x > 0.7) = 1/2 is conservative: coverage at least the level
    assert _covers(res.sign_ci_low, res.sign_ci_high, 0.5) > 0.95 - 4 * math.sqrt(0.05 * 0.95 / 1000)
    large = one_sample_tests(0.7 + sim.standard_t(4, size=(300, 80)), dim=1, popmean=0.7)  # asymptotic
    assert (large.wilcoxon_p_method == "normal").all()
    assert _covers(large.hl_ci_low, large.hl_ci_high, 0.7) > 0.95 - 4 * math.sqrt(0.05 * 0.95 / 300)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_correlation_intervals_cover(sim, rho):
    n, reps = 30, REPS
    z = sim.normal(size=(reps, n, 2))
    x = z[..., 0]
    y = rho * x + math.sqrt(1 - rho ** 2) * z[..., 1]
    slack = 4 * math.sqrt(0.05 * 0.95 / reps)
    rho_s = 6 / math.pi * math.asin(rho / 2)  # Spearman's rho of a bivariate normal
    tau = 2 / math.pi * math.asin(rho)  # Kendall's tau of a bivariate normal
    s, k, p = spearman(x, y), kendall(x, y), pearson(x, y)
    assert abs(_covers(s.ci_low, s.ci_high, rho_s) - 0.95) < slack
    assert abs(_covers(k.ci_low, k.ci_high, tau) - 0.95) < slack
    assert abs(_covers(p.ci_low, p.ci_high, rho) - 0.95) < slack
    if rho == 0.9:
        # the interval to_table used to give Spearman (Pearson's standard error) undercovers here
        lo, hi = r_confidence_interval(s.rho.values, s.n.values, 0.95, "pearson")
        assert _covers(lo, hi, rho_s) < 0.95 - slack
