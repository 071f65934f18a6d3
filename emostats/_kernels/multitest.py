"""Kernel of the Benjamini-Hochberg/Yekutieli step-up adjustment after sorting."""

import numba
import numpy as np

from ._config import JIT


@numba.njit(**JIT)
def step_up(p, order, m, factor, out):
    """Adjusted p-values of one family, given ``order = argsort(p)`` (NaN last).

    ``q_(i) = min(1, min_{j >= i} factor * m * p_(j) / j)`` for the ``m``
    non-NaN values (one pass from the largest p down, scattering into
    ``out``); positions of NaN p-values get NaN.
    """
    n = p.shape[0]
    for i in range(m, n):
        out[order[i]] = np.nan
    running = np.inf
    scale = factor * m
    for i in range(m - 1, -1, -1):
        j = order[i]
        q = scale * p[j] / (i + 1)
        if q < running:
            running = q
        out[j] = running if running < 1.0 else 1.0


BONFERRONI, HOLM, HOCHBERG, HOMMEL, BH, BY = 0, 1, 2, 3, 4, 5


@numba.njit(**JIT)
def _hommel(ps, n, out):
    """R's Hommel adjustment of the ascending ``ps`` (length lp <= n, padded with 1 to n)."""
    lp = ps.shape[0]
    p = np.ones(n)
    for i in range(lp):
        p[i] = ps[i]
    m = np.inf
    for i in range(n):
        v = n * p[i] / (i + 1)
        if v < m:
            m = v
    q = np.full(n, m)
    pa = np.full(n, m)
    for j in range(n - 1, 1, -1):
        # ij = 1..n-j+1 (0-based 0..n-j), i2 = n-j+2..n (0-based n-j+1..n-1)
        q1 = np.inf
        for k in range(2, j + 1):
            v = j * p[n - j + k - 1] / k
            if v < q1:
                q1 = v
        for i in range(n - j + 1):
            v = j * p[i]
            q[i] = v if v < q1 else q1
        for i in range(n - j + 1, n):
            q[i] = q[n - j]
        for i in range(n):
            if q[i] > pa[i]:
                pa[i] = q[i]
    for i in range(lp):
        out[i] = pa[i] if pa[i] > p[i] else p[i]


@numba.njit(**JIT)
def adjust_sorted(ps, method, n, by_sum, out):
    """Adjusted p-values of one family whose ``lp`` non-NaN p-values ``ps`` are sorted
    ascending, for a declared family size ``n >= lp``; R's ``p.adjust`` formulas in
    R's order of operations. ``method``: 0 Bonferroni, 1 Holm, 2 Hochberg,
    3 Hommel, 4 BH, 5 BY (``by_sum = sum(1/(1:n))``)."""
    lp = ps.shape[0]
    if method == BONFERRONI:
        for i in range(lp):
            v = n * ps[i]
            out[i] = v if v < 1.0 else 1.0
    elif method == HOLM:
        run = -np.inf
        for i in range(lp):
            v = (n + 1 - (i + 1)) * ps[i]
            if v > run:
                run = v
            out[i] = run if run < 1.0 else 1.0
    elif method == HOMMEL:
        _hommel(ps, n, out)
    else:
        run = np.inf
        for i in range(lp - 1, -1, -1):
            rank = i + 1
            if method == HOCHBERG:
                v = (n + 1 - rank) * ps[i]
            elif method == BH:
                v = n / rank * ps[i]
            else:
                v = by_sum * n / rank * ps[i]
            if v < run:
                run = v
            out[i] = run if run < 1.0 else 1.0
