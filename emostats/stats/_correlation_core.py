"""NumPy core of the correlations: ranks, r and n per row, and the p-values and
intervals exactly as R's ``cor.test`` computes them.

R's decisions, for ``cor.test(x, y, method=..., exact=NULL)``:

- Spearman: ``exact`` defaults to TRUE; the p-value comes from R's ``prho``
  (exact enumeration for n <= 9, the AS 89 Edgeworth series for 10 <= n <=
  1290) when there are no ties and n <= 1290, else from the t approximation
  ``t = r / sqrt((1 - r^2) / (n - 2))`` on ``n - 2`` df, with r recomputed
  from ``S = (n^3 - n)(1 - r) / 6`` and ``n(n^2 - 1)/6 + 1`` as the
  denominator when ``continuity=TRUE``.
- Kendall: ``exact`` defaults to ``n < 50``; exact (ckendall) without ties,
  else the normal approximation of S with R's tie-corrected variance and
  optional continuity correction ``|S| - 1``.
- Pearson: the t test on ``n - 2`` df.
"""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import special

from .._kernels._config import n_threads
from .._kernels.correlation import (correlate_rows, correlate_rows_serial, correlation_permutations,
                                    correlation_permutations_serial, pearson_rows, pearson_rows_serial)
from .._kernels.rank_tests import kendall_rows, kendall_rows_serial
from .._kernels.ranks import ranks_from_order, ranks_from_order_serial
from ..errors import ArgumentError
from ._common import check_n_perm, stream_key
from ._nulldist import PRHO_EXACT_MAX, kendall_cdf, kendall_sf, prho

__all__ = ["r_pvalue", "correlation_core", "fisher_interval", "SPEARMAN_EXACT_MAX", "KENDALL_EXACT_BELOW"]

RTOL_TIE = 1e-12
#: R computes Spearman's p from prho up to this n (``n <= 1290``, no ties)
SPEARMAN_EXACT_MAX = 1290
#: R's default ``exact`` for Kendall is ``n < 50``
KENDALL_EXACT_BELOW = 50
#: Fisher-z standard errors: Pearson 1/sqrt(n-3) (R's cor.test), Spearman Bonett & Wright (2000),
#: Kendall Fieller, Hartley & Pearson (1957)
CI_METHODS = {
    "pearson": "Fisher z, se = 1/sqrt(n-3) (R cor.test)",
    "spearman": "Fisher z, se = sqrt((1 + rho^2/2)/(n-3)) (Bonett & Wright 2000)",
    "kendall": "Fisher z, se = sqrt(0.437/(n-4)) (Fieller, Hartley & Pearson 1957)",
}


def r_pvalue(r, n, alternative="two-sided"):
    """p-value of a correlation ``r`` from ``n`` pairs by the t approximation (as scipy).

    Under the null (bivariate normal for Pearson), ``t = r sqrt((n-2)/(1-r^2))``
    has a t distribution with ``n - 2`` degrees of freedom; the tail is computed
    as a regularized incomplete beta function of ``1 - r^2`` (the form scipy's
    ``pearsonr`` uses), which stays accurate for ``|r|`` near 1.

    Examples
    --------
    >>> round(float(r_pvalue(0.5, 20)), 6)
    0.02477
    """
    r = np.asarray(r, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    df = n - 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        one_minus = np.clip((1.0 - r) * (1.0 + r), 0.0, 1.0)
        two = special.betainc(df / 2.0, 0.5, one_minus)  # P(|T| >= |t|)
        if alternative == "two-sided":
            p = two
        elif alternative == "greater":
            p = np.where(r >= 0, two / 2.0, 1.0 - two / 2.0)
        else:
            p = np.where(r <= 0, two / 2.0, 1.0 - two / 2.0)
    return np.where(np.isnan(r) | (n < 3), np.nan, p)


#: rows ranked per block on the fast path (bounds the memory of the argsort)
_BLOCK = 64
#: below this many element operations a parallel region costs more than it saves
PARALLEL_WORK = 500_000


def _parallel(nt, rows, work):
    return nt > 1 and rows > 1 and work > PARALLEL_WORK


def _argsort_rows(block, nt):
    """``np.argsort(block, axis=1)`` split over ``nt`` threads (NumPy releases the GIL)."""
    if not _parallel(nt, block.shape[0], block.size * 20):
        return np.argsort(block, axis=1)
    order = np.empty(block.shape, dtype=np.intp)
    parts = np.array_split(np.arange(block.shape[0]), nt)

    def work(idx):
        if idx.size:
            order[idx[0]:idx[-1] + 1] = np.argsort(block[idx[0]:idx[-1] + 1], axis=1)

    with ThreadPoolExecutor(nt) as pool:
        list(pool.map(work, parts))
    return order


def _rank_rows(block, nt):
    out = np.empty_like(block)
    order = _argsort_rows(block, nt).astype(np.int64, copy=False)
    if _parallel(nt, block.shape[0], block.size):
        ranks_from_order(block, order, out, nt)
    else:
        ranks_from_order_serial(block, order, out)
    return out


def _r_and_n(xs, ys, rank, nt):
    """r and pairs used for each row; rows without NaN take the fast path
    (NumPy argsort, y ranked once when shared), the others are compacted
    pairwise in the kernel."""
    rows, n_obs = xs.shape
    shared = ys.shape[0] == 1
    x_nan = np.isnan(xs).any(axis=1)
    y_nan = np.isnan(ys).any(axis=1)
    complete = ~(x_nan | y_nan) if not shared else ~x_nan & ~y_nan[0]
    r = np.full(rows, np.nan)
    used = np.zeros(rows, dtype=np.int64)
    idx = np.flatnonzero(complete)
    if idx.size:
        y_once = (_rank_rows(ys, nt) if rank else ys) if shared else None
        for start in range(0, idx.size, _BLOCK):
            sel = idx[start:start + _BLOCK]
            xb = xs[sel]
            a = _rank_rows(xb, nt) if rank else xb
            b = y_once if shared else (_rank_rows(ys[sel], nt) if rank else ys[sel])
            a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
            r[sel] = (pearson_rows(a, b, nt) if _parallel(nt, a.shape[0], a.size)
                      else pearson_rows_serial(a, b))
        used[idx] = n_obs
    idx = np.flatnonzero(~complete)
    if idx.size:
        yb = ys if shared else np.ascontiguousarray(ys[idx])
        xb = np.ascontiguousarray(xs[idx])
        r[idx], used[idx] = (correlate_rows(xb, yb, rank, nt) if _parallel(nt, idx.size, xb.size * 20)
                             else correlate_rows_serial(xb, yb, rank))
    return r, used


def _has_ties(xs, ys):
    """Per row: do the complete pairs hold a tie in x or in y (R's ``TIES``)?"""
    ok = ~(np.isnan(xs) | np.isnan(ys))
    out = np.zeros(xs.shape[0], dtype=bool)
    for start in range(0, xs.shape[0], _BLOCK):
        sl = slice(start, start + _BLOCK)
        for a in (xs[sl], np.broadcast_to(ys, xs.shape)[sl]):
            s = np.sort(np.where(ok[sl], a, np.nan), axis=1)
            out[sl] |= (s[:, 1:] == s[:, :-1]).any(axis=1)
    return out


def _tail_t(t, df, upper):
    """R's ``pt(t, df, lower.tail = !upper)``."""
    return np.where(upper, special.stdtr(df, -t), special.stdtr(df, t))


def spearman_p(r, n, ties, alt, exact, continuity):
    """Spearman p-values and the method of each row, as R's ``cor.test``.

    ``exact``: None (R's NULL: TRUE), True or False. Codes: ``"exact"``
    (prho enumeration, n <= 9), ``"edgeworth"`` (AS 89), ``"t"``.
    """
    r = np.asarray(r, dtype=np.float64)
    nf = n.astype(np.float64)
    use_exact = (exact is None or bool(exact)) & ~ties & (n <= SPEARMAN_EXACT_MAX)
    q = (nf ** 3 - nf) * (1.0 - r) / 6.0
    den = nf * (nf ** 2 - 1.0) / 6.0 + (1.0 if continuity else 0.0)

    def pspearman(lower):
        out = np.full(r.shape, np.nan)
        if use_exact.any():
            e = use_exact
            out[e] = prho(n[e], np.round(q[e]) + 2.0 * lower[e], lower[e])
        t_rows = ~use_exact
        if t_rows.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                rr = 1.0 - q[t_rows] / den[t_rows]
                t = rr / np.sqrt(np.maximum(1.0 - rr ** 2, 0.0) / (nf[t_rows] - 2.0))
            out[t_rows] = _tail_t(t, nf[t_rows] - 2.0, lower[t_rows])
        return out

    ones = np.ones(r.shape, dtype=bool)
    if alt == 2:
        p = np.minimum(2.0 * pspearman(~(q > (nf ** 3 - nf) / 6.0)), 1.0)
    elif alt == 0:
        p = pspearman(ones)
    else:
        p = pspearman(~ones)
    code = np.where(use_exact, np.where(n <= PRHO_EXACT_MAX, "exact", "edgeworth"), "t")
    return p, code


def kendall_p(tau, n, score, tie_sums, ties, alt, exact, continuity):
    """Kendall p-values, statistics (T or z) and methods (``"exact"``/``"normal"``), as R."""
    nf = n.astype(np.float64)
    flag = (n < KENDALL_EXACT_BELOW) if exact is None else np.full(n.shape, bool(exact))
    use_exact = flag & ~ties
    p = np.full(tau.shape, np.nan)
    stat = np.full(tau.shape, np.nan)
    e = use_exact & np.isfinite(tau)
    if e.any():
        q = np.round((tau[e] + 1.0) * nf[e] * (nf[e] - 1.0) / 4.0)
        stat[e] = q
        lower = kendall_cdf(q, n[e])
        upper = kendall_sf(q, n[e])
        if alt == 2:
            p[e] = np.minimum(2.0 * np.where(q > nf[e] * (nf[e] - 1.0) / 4.0, upper, lower), 1.0)
        else:
            p[e] = upper if alt == 0 else lower
    a = ~use_exact & np.isfinite(tau)
    if a.any():
        m = nf[a]
        x1, x2, x3, y1, y2, y3 = (tie_sums[a, k] for k in range(6))
        t0 = m * (m - 1.0) / 2.0
        s = tau[a] * np.sqrt((t0 - x1 / 2.0) * (t0 - y1 / 2.0))
        v0 = m * (m - 1.0) * (2.0 * m + 5.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            var_s = (v0 - x2 - y2) / 18.0 + x1 * y1 / (2.0 * m * (m - 1.0)) + x3 * y3 / (
                9.0 * m * (m - 1.0) * (m - 2.0))
            if continuity:
                s = np.sign(s) * (np.abs(s) - 1.0)
            z = s / np.sqrt(var_s)
        stat[a] = z
        if alt == 2:
            p[a] = 2.0 * np.minimum(special.ndtr(z), special.ndtr(-z))
        else:
            p[a] = special.ndtr(-z) if alt == 0 else special.ndtr(z)
    code = np.where(use_exact, "exact", "normal")
    return p, stat, code


def fisher_interval(r, n, method, conf_level, alt):
    """Fisher-z interval of a correlation (``CI_METHODS``), two- or one-sided as R's cor.test.

    ``alt`` 2 two-sided, 0 greater (``[lo, 1]``), 1 less (``[-1, hi]``). NaN
    where the standard error is undefined (n <= 3, Kendall n <= 4).
    """
    r = np.asarray(r, dtype=np.float64)
    nf = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "pearson":
            se = 1.0 / np.sqrt(nf - 3.0)
        elif method == "spearman":
            se = np.sqrt((1.0 + r ** 2 / 2.0) / (nf - 3.0))
        else:
            se = np.sqrt(0.437 / (nf - 4.0))
        z = np.arctanh(r)
        if alt == 2:
            half = se * special.ndtri((1.0 + conf_level) / 2.0)
            lo, hi = np.tanh(z - half), np.tanh(z + half)
        else:
            half = se * special.ndtri(conf_level)
            lo = np.tanh(z - half) if alt == 0 else np.full(r.shape, -1.0)
            hi = np.tanh(z + half) if alt == 1 else np.full(r.shape, 1.0)
    bad = ~np.isfinite(se) | (nf <= (4 if method == "kendall" else 3)) | np.isnan(r)
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def _flatten(x, y):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape[-1] != y.shape[-1]:
        raise ArgumentError(
            f"correlation: x and y must have the same length along the paired axis, "
            f"got {x.shape[-1]} and {y.shape[-1]}")
    batch = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    n_obs = x.shape[-1]
    size = int(np.prod(batch, dtype=np.int64))
    xs = np.ascontiguousarray(np.broadcast_to(x, batch + (n_obs,))).reshape(size, n_obs)
    if int(np.prod(y.shape[:-1], dtype=np.int64)) == 1:
        ys = np.ascontiguousarray(y.reshape(1, n_obs))
    else:
        ys = np.ascontiguousarray(np.broadcast_to(y, batch + (n_obs,))).reshape(size, n_obs)
    if np.isinf(xs).any() or np.isinf(ys).any():
        raise ArgumentError("correlation: inputs contain inf; set them to NaN to drop those pairs")
    return xs, ys, batch


def correlation_core(x, y, method, opts):
    """All results of one correlation over the last axis, batched over the others.

    ``opts``: alt (code), exact, continuity, conf_level, pmethod ("auto"/"t"),
    permutation (False or int), seed, threads. Returns a dict of arrays of the
    batch shape and the count of degenerate rows.
    """
    xs, ys, batch = _flatten(x, y)
    size = xs.shape[0]
    nt = n_threads(opts["threads"])
    alt = opts["alt"]
    stat = np.full(size, np.nan)
    if method == "kendall":
        work = _parallel(nt, size, size * xs.shape[1] ** 2)
        r, used, score, tie_sums = (kendall_rows(xs, ys, nt) if work else kendall_rows_serial(xs, ys))
    else:
        r, used = _r_and_n(xs, ys, method == "spearman", nt)
    bad = np.isnan(r) | (used < 3)
    r[bad] = np.nan
    exact_perm = np.zeros(size, dtype=bool)
    perm = opts["permutation"]
    if perm not in (False, None):
        n_perm = check_n_perm(perm, "permutation")
        exact_perm = np.array([3 <= m <= 20 and math.factorial(int(m)) <= n_perm for m in used], dtype=bool)
        # a row's stream comes from the seed and the row's own data, so the p-values do
        # not depend on the row's position, on dask chunking or on the thread count
        keys = np.array([stream_key(opts["seed"], "correlation", xs[i], ys[i if ys.shape[0] > 1 else 0])
                         for i in range(size)], dtype=np.uint64)
        args = (xs, ys, method == "spearman", keys, n_perm, exact_perm, alt, RTOL_TIE)
        counts, _ = (correlation_permutations(*args, nt) if _parallel(nt, size, xs.size * n_perm)
                     else correlation_permutations_serial(*args))
        total = np.array([math.factorial(int(m)) if e else 1 for m, e in zip(used, exact_perm)],
                         dtype=np.float64)
        p = np.where(exact_perm, counts / total, (1.0 + counts) / (1.0 + n_perm))
        code = np.where(exact_perm, "exact permutation", "permutation")
    elif method == "pearson" or opts["pmethod"] == "t":
        p = r_pvalue(r, used, ("greater", "less", "two-sided")[alt])
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = np.sqrt(used - 2.0) * r / np.sqrt(1.0 - r ** 2)
        code = np.full(size, "t")
    elif method == "spearman":
        ties = _has_ties(xs, ys)
        p, code = spearman_p(r, used, ties, alt, opts["exact"], opts["continuity"])
        nf = used.astype(np.float64)
        stat = (nf ** 3 - nf) * (1.0 - r) / 6.0
    else:
        ties = (tie_sums[:, 0] > 0) | (tie_sums[:, 3] > 0)
        p, stat, code = kendall_p(r, used, score, tie_sums, ties, alt, opts["exact"], opts["continuity"])
    p = np.where(bad, np.nan, p)
    stat = np.where(bad, np.nan, stat)
    code = np.where(bad, "", code)
    lo, hi = fisher_interval(r, used, method, opts["conf_level"], alt)
    out = dict(r=r, p=p, n=used, statistic=stat, p_method=code.astype(str), exact=exact_perm,
               ci_low=lo, ci_high=hi)
    return {k: v.reshape(batch) for k, v in out.items()}, int(bad.sum())
