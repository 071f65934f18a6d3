"""Null distributions of rank statistics, computed as R computes them.

- Spearman's ``S = sum (rank x - rank y)^2``: R's ``prho`` (``src/library/stats/src/prho.c``,
  Algorithm AS 89): exact over all ``n!`` permutations for ``n <= 9``, the
  Edgeworth series above.
- Kendall's ``T`` (concordant pairs, no ties): R's ``ckendall`` recursion
  (``src/library/stats/src/kendall.c``): the number of permutations of ``n``
  with ``k`` inversions (Mahonian numbers).
- Wilcoxon's signed-rank ``V``: R's ``csignrank`` counts
  (``src/nmath/signrank.c``) and its ``psignrank``/``qsignrank``.

All tables are cached per ``n``; the p-values are vectorised over rows.
"""

import functools
import itertools
import math

import numpy as np
from scipy import special

__all__ = ["prho", "kendall_cdf", "kendall_sf", "signrank_counts", "psignrank", "qsignrank"]

#: largest n whose Spearman null R enumerates exactly (prho.c ``n_small``)
PRHO_EXACT_MAX = 9
#: Edgeworth coefficients of AS 89 (prho.c)
_C = (.2274, .2531, .1745, .0758, .1033, .3932, .0879, .0151, .0072, .0831, .0131, 4.6e-4)


@functools.lru_cache(maxsize=None)
def _spearman_counts(n):
    """Counts of ``S = sum (i - p_i)^2`` over all permutations ``p`` of 1..n (S = 0, 1, ...)."""
    i = np.arange(1, n + 1)
    perms = np.array(list(itertools.permutations(range(1, n + 1))), dtype=np.int64)
    s = ((perms - i) ** 2).sum(axis=1)
    return np.bincount(s, minlength=n * (n * n - 1) // 3 + 1)


def prho(n, s, lower_tail):
    """R's ``prho(n, is, lower_tail)``: ``P(S >= is)`` (upper) or ``P(S < is)`` (lower).

    ``n`` and ``s`` are arrays (one value per row); ``lower_tail`` a bool array
    or scalar. Rows with ``n <= 9`` use the exact permutation counts, the
    others the Edgeworth series of AS 89, exactly as R's C code.
    """
    n = np.asarray(n, dtype=np.int64)
    s = np.asarray(s, dtype=np.float64)
    lower = np.broadcast_to(np.asarray(lower_tail, dtype=bool), s.shape)
    pv = np.where(lower, 0.0, 1.0)
    n3 = n.astype(np.float64)
    n3 = n3 * ((n3 * n3 - 1.0) / 3.0)
    todo = (n > 1) & (s > 0)
    over = todo & (s > n3)
    pv = np.where(over, 1.0 - pv, pv)
    todo &= ~over
    small = todo & (n <= PRHO_EXACT_MAX)
    for i in np.flatnonzero(small):
        counts = _spearman_counts(int(n[i]))
        nfac = math.factorial(int(n[i]))
        # ifr = #{S >= is} (prho.c: 1 when is is the largest S)
        ifr = 1 if s[i] == n3[i] else int(counts[int(math.ceil(s[i])):].sum())
        pv[i] = (nfac - ifr if lower[i] else ifr) / float(nfac)
    big = todo & (n > PRHO_EXACT_MAX)
    if big.any():
        c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12 = _C
        y = n[big].astype(np.float64)
        b = 1.0 / y
        x = (6.0 * (s[big] - 1) * b / (y * y - 1) - 1) * np.sqrt(y - 1)
        y = x * x
        u = x * b * (c1 + b * (c2 + c3 * b) + y * (-c4 + b * (c5 + c6 * b) - y * b * (
            c7 + c8 * b - y * (c9 - c10 * b + y * b * (c11 - c12 * y)))))
        y = u / np.exp(y / 2.0)
        lo = lower[big]
        norm = np.where(lo, special.ndtr(x), special.ndtr(-x))
        pv[big] = np.clip(np.where(lo, -y, y) + norm, 0.0, 1.0)
    return pv


@functools.lru_cache(maxsize=None)
def _kendall_counts(n):
    """R's ``ckendall(k, n)`` for k = 0..n(n-1)/2: permutations of n with k inversions.

    Built by the same recursion, ``w[n][k] = sum_{i=0}^{n-1} w[n-1][k-i]``,
    summed in R's order (i ascending), in float64 as R does.
    """
    w = np.ones(1)
    for m in range(2, n + 1):
        u = m * (m - 1) // 2
        new = np.zeros(u + 1)
        for i in range(m):
            new[i:i + w.size] += w
        w = new
    return w


def kendall_cdf(q, n):
    """R's ``pkendall(q, n)``: ``P(T <= q)`` for T = concordant pairs, no ties."""
    q = np.floor(np.asarray(q, dtype=np.float64) + 1e-7)
    n = np.asarray(n, dtype=np.int64)
    out = np.empty(q.shape)
    for i in range(q.size):
        m = int(n.flat[i])
        u = m * (m - 1) // 2
        if q.flat[i] < 0:
            out.flat[i] = 0.0
        elif q.flat[i] > u:
            out.flat[i] = 1.0
        else:
            w = _kendall_counts(m)
            out.flat[i] = w[: int(q.flat[i]) + 1].sum() / special.gamma(m + 1)
    return out


def kendall_sf(q, n):
    """``P(T >= q)`` summed from the upper counts (R: ``1 - pkendall(q - 1, n)``, which
    loses the digits of small tails; the two agree to ~1e-16 absolute)."""
    q = np.asarray(q, dtype=np.float64)
    n = np.asarray(n, dtype=np.int64)
    out = np.empty(q.shape)
    for i in range(q.size):
        m = int(n.flat[i])
        u = m * (m - 1) // 2
        k = math.ceil(q.flat[i] - 1e-7)
        if k <= 0:
            out.flat[i] = 1.0
        elif k > u:
            out.flat[i] = 0.0
        else:
            w = _kendall_counts(m)
            out.flat[i] = w[k:].sum() / special.gamma(m + 1)
    return out


@functools.lru_cache(maxsize=None)
def signrank_counts(n):
    """R's ``csignrank(k, n)`` for k = 0..n(n+1)/2: subsets of 1..n with sum k."""
    w = np.zeros(n * (n + 1) // 2 + 1)
    w[0] = 1.0
    top = 0
    for m in range(1, n + 1):
        w[m:top + m + 1] += w[:top + 1].copy()
        top += m
    return w


def psignrank(x, n, lower_tail=True):
    """R's ``psignrank(x, n, lower.tail)`` (x may be non-integer: floored after +1e-7)."""
    x = math.floor(x + 1e-7)
    u = n * (n + 1) / 2
    if x < 0:
        return 0.0 if lower_tail else 1.0
    if x >= u:
        return 1.0 if lower_tail else 0.0
    c = signrank_counts(n)
    f = math.exp(-n * math.log(2.0))
    if x <= n * (n + 1) / 4:
        p = float(np.cumsum(c[: x + 1] * f)[-1])
    else:
        x = int(u - x)
        p = float(np.cumsum(c[:x] * f)[-1]) if x > 0 else 0.0
        lower_tail = not lower_tail
    return p if lower_tail else 0.5 - p + 0.5


def qsignrank(p, n):
    """R's ``qsignrank(p, n)`` (lower tail): the same cumulative loop and 10 eps slack."""
    u = n * (n + 1) // 2
    if p <= 0:
        return 0
    if p >= 1:
        return u
    f = math.exp(-n * math.log(2.0))
    cum = np.cumsum(signrank_counts(n) * f)
    if p <= 0.5:
        return int(np.argmax(cum >= p - 10 * np.finfo(float).eps))
    q = int(np.argmax(cum > 1 - p + 10 * np.finfo(float).eps))
    return u - q
