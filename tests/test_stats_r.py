"""emostats.stats against R itself, computed at test time (issue 13).

Each test draws random inputs (ties, NaN, zeros, n from 1 to 2,000, every
alternative, several confidence levels), hands them all to one ``Rscript``
call and compares: adjusted p-values within 1e-12, p-values within 1e-9,
estimates and intervals within 1e-9 (relative, with an absolute floor for
values near 0). Skipped with a reason when ``Rscript`` is not installed; the
values pinned from R in tests/R/ run regardless (test_stats_*.py).
"""

import math
import warnings

import numpy as np

from emostats.stats import DegenerateWarning, kendall, one_sample_tests, p_adjust, pearson, spearman, t_test
from tests.rlive import ATOL, RTOL_ADJ, RTOL_EST, RTOL_P, needs_r, run_r, vec

pytestmark = needs_r
ALTS = ("two-sided", "greater", "less")
LEVELS = (0.8, 0.9, 0.95, 0.99)


def _close(ours, ref, rtol, what, atol=ATOL):
    ours, ref = np.asarray(ours, dtype=float), np.asarray(ref, dtype=float)
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def _pairs(rng):
    """(x, y) pairs: continuous, tied, with NaN, perfect; n from 3 to 2,000."""
    cases = []
    for n in (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 20, 30, 49, 50, 51, 80, 200, 600, 1290, 1291, 2000):
        rho = rng.uniform(-0.9, 0.9)
        x = rng.normal(size=n)
        y = rho * x + math.sqrt(1 - rho ** 2) * rng.normal(size=n) * rng.uniform(0.2, 1.5)
        cases.append((x, y))
        cases.append((np.round(x * 2), np.round(y)))  # ties
        xn, yn = x.copy(), y.copy()
        if n >= 6:
            xn[rng.random(n) < 0.1] = np.nan
            yn[rng.random(n) < 0.1] = np.nan
            cases.append((xn, yn))
    for n in (3, 5, 9, 10, 15):
        cases.append((np.arange(n, dtype=float), np.arange(n, dtype=float) ** 3))  # rho = 1
        cases.append((np.arange(n, dtype=float), -np.arange(n, dtype=float)))  # rho = -1
    return cases


def test_correlations_against_r(rng):
    cases = _pairs(rng)
    lines = [f"{i}|{ALTS[i % 3]}|{LEVELS[i % 4]}|{vec(x)}|{vec(y)}" for i, (x, y) in enumerate(cases)]
    body = """
    x <- num(f[4]); y <- num(f[5]); alt <- ALT[[f[2]]]; cl <- as.numeric(f[3])
    s1 <- suppressWarnings(cor.test(x, y, method = "spearman", alternative = alt))
    s2 <- suppressWarnings(cor.test(x, y, method = "spearman", alternative = alt, exact = FALSE,
                                    continuity = TRUE))
    k1 <- suppressWarnings(cor.test(x, y, method = "kendall", alternative = alt))
    k2 <- suppressWarnings(cor.test(x, y, method = "kendall", alternative = alt, exact = FALSE,
                                    continuity = TRUE))
    pr <- cor.test(x, y, method = "pearson", alternative = alt, conf.level = cl)
    ci <- if (is.null(pr$conf.int)) c(NaN, NaN) else pr$conf.int
    out(s1$estimate, s1$p.value, s1$statistic, s2$p.value, k1$estimate, k1$p.value, k2$p.value,
        pr$estimate, pr$p.value, ci)
    """
    ref = np.array(run_r(body, lines))
    seen = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWarning)
        for i, (x, y) in enumerate(cases):
            alt, cl = ALTS[i % 3], LEVELS[i % 4]
            r = ref[i]
            s1 = spearman(x, y, alternative=alt)
            s2 = spearman(x, y, alternative=alt, exact=False, continuity=True)
            k1 = kendall(x, y, alternative=alt)
            k2 = kendall(x, y, alternative=alt, exact=False, continuity=True)
            pr = pearson(x, y, alternative=alt, conf_level=cl)
            what = f"case {i} (n={int(s1.n)}, {alt}, {s1.p_method.item()}/{k1.p_method.item()})"
            seen.add(s1.p_method.item())
            seen.add("kendall " + k1.p_method.item())
            _close([s1.rho, k1.tau, pr.r], r[[0, 4, 7]], RTOL_EST, what + " estimates")
            n = float(s1.n)
            # S = (n^3 - n)(1 - rho)/6 is 0 for rho = 1: compare on the scale of its range
            _close(s1.statistic, r[2], RTOL_EST, what + " S", atol=RTOL_EST * (n ** 3 - n) / 6)
            _close([s1.p, s2.p, k1.p, k2.p, pr.p], r[[1, 3, 5, 6, 8]], RTOL_P, what + " p")
            _close([pr.ci_low, pr.ci_high], r[[9, 10]], RTOL_EST, what + " Pearson interval")
    assert seen >= {"exact", "edgeworth", "t", "kendall exact", "kendall normal"}


def _samples(rng):
    """(x, mu) one-sample cases: continuous, ties, zeros, NaN, near-constant, n from 1 to 2,000."""
    cases = []
    for n in (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 49, 50, 51, 100, 500, 2000):
        mu = (0.0, 0.25, -1.0)[n % 3]
        x = rng.normal(0.3, 1.0, n) + mu
        cases.append((x, mu))
        cases.append((np.round(x, 1), mu))  # ties, and zeros when a value rounds to mu
        if n >= 5:
            xz = x.copy()
            xz[: n // 4] = mu  # zeros
            xz[rng.random(n) < 0.1] = np.nan
            cases.append((xz, mu))
    cases += [(np.array([0.1 + 0.2, 0.3, 0.3]), 0.0), (1e8 + np.array([0, 1e-7, 3e-7, 4e-7]), 1e8),
              (np.full(6, 2.0), 0.0), (np.full(5, 0.25), 0.25), (np.array([1.0, 2.0]), 0.0),
              (1e4 + rng.normal(size=30), 1e4)]
    return cases


def test_one_sample_tests_against_r(rng):
    cases = _samples(rng)
    lines = [f"{i}|{ALTS[i % 3]}|{LEVELS[i % 4]}|{vec(x)}|{mu!r}" for i, (x, mu) in enumerate(cases)]
    body = """
    x <- num(f[4]); alt <- ALT[[f[2]]]; cl <- as.numeric(f[3]); mu <- as.numeric(f[5])
    x <- x[!is.na(x)]
    tt <- tryCatch({r <- t.test(x, mu = mu, alternative = alt, conf.level = cl)
                    c(r$statistic, r$p.value, r$conf.int)}, error = function(e) rep(NaN, 4))
    w1 <- tryCatch({r <- suppressWarnings(wilcox.test(x, mu = mu, alternative = alt, conf.int = TRUE,
                                                      conf.level = cl))
                    c(r$p.value, r$estimate, r$conf.int, attr(r$conf.int, "conf.level"))},
                   error = function(e) rep(NaN, 5))
    w2 <- tryCatch(suppressWarnings(wilcox.test(x, mu = mu, alternative = alt, exact = FALSE,
                                                correct = FALSE)$p.value), error = function(e) NaN)
    k <- sum(x > mu); m <- sum(x != mu)
    b <- if (m > 0) {r <- binom.test(k, m, 0.5, alternative = alt, conf.level = cl)
                     c(r$p.value, r$conf.int)} else rep(NaN, 3)
    out(tt, w1, w2, b)
    """
    ref = np.array(run_r(body, lines))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWarning)
        for i, (x, mu) in enumerate(cases):
            alt, cl = ALTS[i % 3], LEVELS[i % 4]
            r = ref[i]
            res = one_sample_tests(x, popmean=mu, alternative=alt, conf_level=cl)
            asy = one_sample_tests(x, popmean=mu, alternative=alt, wilcoxon_method="asymptotic", correct=False,
                                   conf_int=False)
            what = f"case {i} (n={int(res.n)}, mu={mu}, {alt}, {cl}, {res.wilcoxon_p_method.item()})"
            _close([res.t, res.t_p], r[[0, 1]], RTOL_P, what + " t-test")
            # R takes mean(x) - mu without centring: at large offsets its interval is off by
            # ~eps * |mean|, so the interval is compared to 1e-9 of the standard error as well
            se = float(np.nanstd(x, ddof=1) / math.sqrt(max(int(res.n), 1))) if int(res.n) > 1 else 0.0
            _close([res.ci_low, res.ci_high], r[[2, 3]], RTOL_EST, what + " t interval", atol=ATOL + RTOL_EST * se)
            if int(res.n_positive + res.n_negative) == 0:
                # no nonzero difference: emostats says NaN (warned); R divides the continuity
                # correction by a zero variance and reports p = 1 for one-sided tests
                assert np.isnan(res.wilcoxon_p.item()) and np.isnan(res.sign_p.item())
                continue
            _close([res.wilcoxon_p, asy.wilcoxon_p], r[[4, 9]], RTOL_P, what + " Wilcoxon p")
            _close([res.hl_estimate, res.hl_ci_low, res.hl_ci_high, res.hl_ci_level], r[[5, 6, 7, 8]], RTOL_EST,
                   what + " Hodges-Lehmann")
            _close([res.sign_p, res.sign_ci_low, res.sign_ci_high], r[[10, 11, 12]], RTOL_P, what + " sign test")


def test_two_sample_t_tests_against_r(rng):
    cases = []
    for nx, ny in ((2, 2), (2, 5), (3, 3), (5, 8), (10, 4), (30, 31), (200, 50), (2000, 1500)):
        x = rng.normal(0.2, rng.uniform(0.5, 2), nx)
        y = rng.normal(0.0, rng.uniform(0.5, 2), ny)
        cases.append((x, y, 0.0))
        cases.append((np.round(x, 1), np.round(y, 1), 0.1))
    cases.append((1e6 + rng.normal(size=20), 1e6 + rng.normal(size=25), 0.0))
    cases.append((np.full(4, 1.0), np.full(5, 1.0), 0.0))  # essentially constant: R stops
    lines = []
    for i, (x, y, mu) in enumerate(cases):
        for ve in ("TRUE", "FALSE"):
            lines.append(f"{i}|{ALTS[i % 3]}|{LEVELS[i % 4]}|{vec(x)}|{vec(y)}|{mu!r}|{ve}")
    body = """
    x <- num(f[4]); y <- num(f[5]); alt <- ALT[[f[2]]]; cl <- as.numeric(f[3]); mu <- as.numeric(f[6])
    v <- tryCatch({r <- t.test(x, y, mu = mu, alternative = alt, conf.level = cl, var.equal = as.logical(f[7]))
                   c(r$statistic, r$parameter, r$p.value, r$conf.int)}, error = function(e) rep(NaN, 5))
    out(v)
    """
    ref = run_r(body, lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWarning)
        for j, _line in enumerate(lines):
            i = j // 2
            x, y, mu = cases[i]
            res = t_test(x, y, mu=mu, alternative=ALTS[i % 3], conf_level=LEVELS[i % 4], var_equal=j % 2 == 0)
            what = f"case {i} (n={x.size},{y.size}, var_equal={j % 2 == 0})"
            _close([res.t, res.df, res.p], ref[j][:3], RTOL_P, what)
            # R differences the uncentred means (see the one-sample test): 1e-9 of the standard error
            _close([res.ci_low, res.ci_high], ref[j][3:], RTOL_EST, what + " interval",
                   atol=ATOL + RTOL_EST * float(res.stderr))


def test_p_adjust_against_r(rng):
    methods = ("holm", "hochberg", "hommel", "bonferroni", "BH", "BY")
    cases = []
    for size in (1, 2, 3, 4, 5, 10, 17, 50, 200, 1000):
        p = rng.random(size) ** 2
        p[rng.random(size) < 0.2] = 0.05  # ties at one value
        p = np.where(rng.random(size) < 0.2, np.round(p, 2), p)  # ties
        p[rng.random(size) < 0.1] = np.nan
        lp = int((~np.isnan(p)).sum())
        for n in (None, lp + 1, 3 * lp + 2):
            cases.append((p, n))
    lines = [f"{i}|{vec(p)}|{'NA' if n is None else n}" for i, (p, n) in enumerate(cases)]
    body = """
    p <- num(f[2]); nn <- as.numeric(f[3])
    res <- c()
    for (m in c("holm", "hochberg", "hommel", "bonferroni", "BH", "BY"))
      res <- c(res, if (is.na(nn)) p.adjust(p, m) else p.adjust(p, m, n = nn))
    out(res)
    """
    ref = run_r(body, lines)
    for i, (p, n) in enumerate(cases):
        got = np.concatenate([p_adjust(p, m, n=n).p_adj.values for m in methods])
        np.testing.assert_allclose(got, ref[i], rtol=RTOL_ADJ, atol=0, equal_nan=True,
                                   err_msg=f"case {i} (size {p.size}, n={n})")
