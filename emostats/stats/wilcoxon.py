"""Wilcoxon signed-rank test of one sample, with the Hodges-Lehmann estimate and
interval, as R's ``wilcox.test(x, mu = mu, conf.int = TRUE)`` computes them.

R's asymptotic interval and estimate are roots of a step function found by
``uniroot(tol = 1e-4)``; :func:`zeroin` is R's ``R_zeroin2`` (Brent's method,
``src/library/stats/src/zeroin.c``) step for step, so the roots equal R's
rather than the exact jump points of the step function.
"""

import functools
import math

import numpy as np
from scipy import special, stats

from .._kernels.rank_tests import signed_rank_z
from ._nulldist import psignrank, qsignrank

__all__ = ["signed_rank", "zeroin", "WILCOXON_METHODS"]

#: p-value rules: R's wilcox.test (default), scipy's wilcoxon(method="auto") (the
#: emostats default before R's), the exact sign-flip distribution, the normal approximation
WILCOXON_METHODS = ("r", "auto", "exact", "asymptotic")
#: R's default ``exact = NULL`` means exact when fewer than this many nonzero values
EXACT_BELOW = 50
_EPS = np.finfo(np.float64).eps


def zeroin(f, ax, bx, fa, fb, tol, maxit=1000):
    """R's ``R_zeroin2``: a root of ``f`` in ``[ax, bx]`` given ``fa = f(ax)``, ``fb = f(bx)``."""
    a, b = ax, bx
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxit + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * _EPS * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


def _sigma(n, ranks):
    _, counts = np.unique(ranks, return_counts=True)
    return math.sqrt(n * (n + 1) * (2 * n + 1) / 24 - float((counts.astype(np.float64) ** 3 - counts).sum()) / 48)


def _correction(z, alt):
    return {0: 0.5, 1: -0.5}.get(alt, float(np.sign(z)) * 0.5)


def _w_function(x, correct, alt):
    """R's ``W(d)``: the standardised signed-rank statistic of ``x - d`` (a Numba kernel)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    correct = bool(correct)

    def w(d):
        return signed_rank_z(x, float(d), correct, alt)
    return w


@functools.lru_cache(maxsize=256)
def _sign_flip_null(ranks2):
    """Null pmf of the sum of the doubled ranks given a + sign (all 2**m sign patterns)."""
    pmf = np.zeros(sum(ranks2) + 1)
    pmf[0] = 1.0
    top = 0
    for r in ranks2:
        shifted = np.zeros_like(pmf)
        shifted[r:top + r + 1] = pmf[:top + 1]
        pmf = 0.5 * (pmf + shifted)
        top += r
    return pmf


def _sign_flip_p(ranks, v, alt):
    pmf = _sign_flip_null(tuple(int(r) for r in np.rint(2 * ranks)))
    w2 = int(round(2 * v))
    ge, le = min(1.0, pmf[w2:].sum()), min(1.0, pmf[: w2 + 1].sum())
    return ge if alt == 0 else le if alt == 1 else min(1.0, 2.0 * min(ge, le))


def _exact_ci(x, n, alt, conf_level):
    alpha = 1 - conf_level
    diffs = np.add.outer(x, x)[np.triu_indices(n)]
    diffs = np.sort(diffs) / 2
    top = n * (n + 1) // 2
    qu = qsignrank(alpha / 2 if alt == 2 else alpha, n) or 1
    achieved = (2 if alt == 2 else 1) * psignrank(qu - 1, n)
    lo = diffs[qu - 1] if alt != 1 else -np.inf
    hi = diffs[top - qu] if alt != 0 else np.inf
    level = conf_level
    if achieved - alpha > alpha / 2:
        level = 1 - float(f"{achieved:.2g}")
    return float(np.median(diffs)), lo, hi, level


def _asymptotic_ci(x, alt, correct, conf_level, tol_root):
    """R's asymptotic Hodges-Lehmann estimate and interval (uniroot on W)."""
    n = x.shape[0]
    nan = (np.nan, -np.inf if alt == 1 else np.nan, np.inf if alt == 0 else np.nan, 0.0)
    if n == 0:
        return nan
    mumin, mumax = float(x.min()), float(x.max())
    w = _w_function(x, correct, alt)
    wmin = w(mumin)
    wmax = w(mumax) if np.isfinite(wmin) else np.nan
    if not np.isfinite(wmax):
        return ((mumin + mumax) / 2,) + nan[1:]
    alpha = 1 - conf_level
    level = conf_level

    def root(zq):
        return zeroin(lambda d: w(d) - zq, mumin, mumax, wmin - zq, wmax - zq, tol_root)

    if alt == 2:
        while wmin - special.ndtri(1 - alpha / 2) < 0 or wmax - special.ndtri(alpha / 2) > 0:
            alpha *= 2
    elif alt == 0:
        while wmin - special.ndtri(1 - alpha) < 0:
            alpha *= 2
    else:
        while wmax - special.ndtri(alpha / 2) > 0:
            alpha *= 2
    if alpha >= 1 or 1 - conf_level < alpha * 0.75:
        level = 1 - min(1.0, alpha)
    if alt == 2:
        lo, hi = ((root(special.ndtri(1 - alpha / 2)), root(special.ndtri(alpha / 2))) if alpha < 1
                  else (float(np.median(x)),) * 2)
    elif alt == 0:
        lo, hi = (root(special.ndtri(1 - alpha)) if alpha < 1 else float(np.median(x))), np.inf
    else:
        lo, hi = -np.inf, (root(special.ndtri(alpha)) if alpha < 1 else float(np.median(x)))
    w0 = _w_function(x, False, alt)
    est = zeroin(w0, mumin, mumax, w0(mumin), w0(mumax), tol_root)
    return est, lo, hi, level


def signed_rank(x, mu, alt, correct=True, exact=None, method="r", conf_level=0.95, conf_int=True,
                tol_root=1e-4):
    """Signed-rank test of one sample ``x`` (no NaN) against ``mu``, as ``wilcox.test``.

    Returns a dict: ``V`` (R's statistic: sum of the ranks of the positive
    ``x - mu``), ``p``, ``p_method`` ("exact", "normal" or "exact sign-flips"),
    ``estimate`` (Hodges-Lehmann (pseudo)median), ``ci_low``, ``ci_high`` and
    ``ci_level`` (the level achieved: R lowers it when the requested one is
    not achievable; 0 when the interval is undefined).
    """
    out = dict(V=np.nan, p=np.nan, p_method="", estimate=np.nan, ci_low=np.nan, ci_high=np.nan,
               ci_level=np.nan)
    d = x - mu
    zeros = bool((d == 0).any())
    d = d[d != 0]
    n = d.shape[0]
    n_all = x.shape[0]
    r = stats.rankdata(np.abs(d))
    v = float(r[d > 0].sum())
    ties = bool(np.unique(r).shape[0] != n)
    if method == "r":
        r_exact = (n < EXACT_BELOW) if exact is None else bool(exact)
        use_exact = r_exact and not ties and not zeros
        flips = False
    elif method == "auto":
        use_exact = n_all <= 50 and (not (ties or zeros) or n_all <= 13)
        flips = use_exact
    else:
        use_exact = method == "exact"
        flips = use_exact
    if n == 0:
        return out
    out["V"] = v
    if use_exact and flips:
        out["p"], out["p_method"] = _sign_flip_p(r, v, alt), "exact sign-flips"
    elif use_exact:
        if alt == 2:
            p = psignrank(v - 1, n, False) if v > n * (n + 1) / 4 else psignrank(v, n)
            p = min(2 * p, 1.0)
        else:
            p = psignrank(v - 1, n, False) if alt == 0 else psignrank(v, n)
        out["p"], out["p_method"] = p, "exact"
    else:
        z = v - n * (n + 1) / 4
        sigma = _sigma(n, r)
        corr = _correction(z, alt) if correct else 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.float64(z - corr) / np.float64(sigma)
        p = special.ndtr(z) if alt == 1 else special.ndtr(-z) if alt == 0 else 2 * min(
            special.ndtr(z), special.ndtr(-z))
        out["p"], out["p_method"] = float(p), "normal"
    if conf_int:
        xs = d + mu
        exact_ci = use_exact and not ties and not zeros
        est, lo, hi, level = (_exact_ci(xs, n, alt, conf_level) if exact_ci
                              else _asymptotic_ci(xs, alt, correct, conf_level, tol_root))
        out.update(estimate=est, ci_low=lo, ci_high=hi, ci_level=level)
    return out
