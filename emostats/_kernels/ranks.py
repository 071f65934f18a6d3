"""Kernels for rank correlations: average ranks with ties, and batched Pearson/Spearman
of paired rows with NaN dropped pairwise, plus the permutation null of a correlation.
"""

import numba
import numpy as np

from ._config import JIT, PJIT
from .rng import bounded, seed_state


@numba.njit(**JIT)
def average_ranks(a, out, order):
    """Ranks 1..n of ``a`` (no NaN) into ``out``, ties get their average rank.

    ``order`` is scratch space of length >= n (int64). Returns the tie term
    ``sum(t**3 - t)`` over tie groups of size ``t``.
    """
    n = a.shape[0]
    order[:n] = np.argsort(a, kind="mergesort")
    ties = 0.0
    i = 0
    while i < n:
        j = i + 1
        v = a[order[i]]
        while j < n and a[order[j]] == v:
            j += 1
        r = 0.5 * (i + j + 1)  # mean of ranks i+1..j
        for t in range(i, j):
            out[order[t]] = r
        t = j - i
        ties += t * t * t - t
        i = j
    return ties


@numba.njit(**JIT)
def _pearson(x, y, n):
    """Two-pass Pearson r of x[:n], y[:n] (NaN if n < 2 or a side is constant)."""
    if n < 2:
        return np.nan
    mx = 0.0
    my = 0.0
    for i in range(n):
        mx += x[i]
        my += y[i]
    mx /= n
    my /= n
    sxx = 0.0
    syy = 0.0
    sxy = 0.0
    for i in range(n):
        dx = x[i] - mx
        dy = y[i] - my
        sxx += dx * dx
        syy += dy * dy
        sxy += dx * dy
    if sxx == 0.0 or syy == 0.0:
        return np.nan
    r = sxy / np.sqrt(sxx * syy)
    return min(1.0, max(-1.0, r))


@numba.njit(**JIT)
def _prepare_row(xr, yr, rank, bx, by, rx, ry, order):
    """Copy the complete pairs of one row into bx, by (ranked into rx, ry when ``rank``);
    returns n and the arrays to correlate."""
    m = 0
    for i in range(xr.shape[0]):
        if not (np.isnan(xr[i]) or np.isnan(yr[i])):
            bx[m] = xr[i]
            by[m] = yr[i]
            m += 1
    if rank and m > 0:
        average_ranks(bx[:m], rx, order)
        average_ranks(by[:m], ry, order)
        return m, rx, ry
    return m, bx, by


@numba.njit(**PJIT)
def correlate_rows(x, y, rank, n_threads):
    """Pearson (``rank=False``) or Spearman (``rank=True``) r of each row pair.

    ``x`` is float64 (rows, n) and ``y`` (rows, n) or (1, n) (one row shared by
    every row of x); NaN pairs are dropped row by row.
    Returns r (rows,) and the number of pairs used (rows,).
    """
    rows, n = x.shape
    r = np.full(rows, np.nan)
    used = np.zeros(rows, dtype=np.int64)
    for c in numba.prange(n_threads):
        bx = np.empty(n)
        by = np.empty(n)
        rx = np.empty(n)
        ry = np.empty(n)
        order = np.empty(n, dtype=np.int64)
        for i in range(c, rows, n_threads):
            m, a, b = _prepare_row(x[i], y[i if y.shape[0] > 1 else 0], rank, bx, by, rx, ry, order)
            used[i] = m
            r[i] = _pearson(a, b, m)
    return r, used


@numba.njit(**JIT)
def _cross(a, b, n):
    s = 0.0
    for i in range(n):
        s += a[i] * b[i]
    return s


@numba.njit(**PJIT)
def correlation_permutations(x, y, rank, keys, n_perm, exact, alt, tol, n_threads):
    """Counts of permutations of y whose correlation with x is at least as extreme.

    The correlation of a permutation is an increasing function of
    ``sum(xc * yc[perm])`` with centred (ranked) values, so that sum is compared.
    ``exact[i]``: enumerate all n! permutations (Heap's algorithm) and return the
    count over them; otherwise ``n_perm`` full Fisher-Yates shuffles from the
    row's own stream. ``alt``: 0 greater, 1 less, 2 two-sided (|sum|).
    Returns counts (rows,) and the number of pairs (rows,).
    """
    rows, n = x.shape
    counts = np.zeros(rows, dtype=np.int64)
    used = np.zeros(rows, dtype=np.int64)
    for c in numba.prange(n_threads):
        bx = np.empty(n)
        by = np.empty(n)
        rx = np.empty(n)
        ry = np.empty(n)
        order = np.empty(n, dtype=np.int64)
        work = np.empty(n)
        heap = np.zeros(n, dtype=np.int64)
        state = np.empty(4, dtype=np.uint64)
        for i in range(c, rows, n_threads):
            m, a, b = _prepare_row(x[i], y[i if y.shape[0] > 1 else 0], rank, bx, by, rx, ry, order)
            used[i] = m
            if m < 3:
                continue
            ma = a[:m].mean()
            mb = b[:m].mean()
            amax = 0.0
            bmax = 0.0
            for t in range(m):
                a[t] -= ma
                work[t] = b[t] - mb
                amax = max(amax, abs(a[t]))
                bmax = max(bmax, abs(work[t]))
            s_obs = _cross(a, work, m)
            tl = tol * m * amax * bmax
            cnt = 0
            if exact[i]:
                for t in range(m):
                    heap[t] = 0
                s = s_obs
                cnt += _hit(s, s_obs, alt, tl)
                t = 1
                while t < m:
                    if heap[t] < t:
                        j = 0 if t % 2 == 0 else heap[t]
                        tmp = work[j]
                        work[j] = work[t]
                        work[t] = tmp
                        cnt += _hit(_cross(a, work, m), s_obs, alt, tl)
                        heap[t] += 1
                        t = 1
                    else:
                        heap[t] = 0
                        t += 1
            else:
                seed_state(keys[i], state)
                for _ in range(n_perm):
                    for t in range(m - 1, 0, -1):
                        j = bounded(state, t + 1)
                        tmp = work[j]
                        work[j] = work[t]
                        work[t] = tmp
                    cnt += _hit(_cross(a, work, m), s_obs, alt, tl)
            counts[i] = cnt
    return counts, used


@numba.njit(**JIT)
def _hit(s, s_obs, alt, tol):
    if alt == 0:
        return 1 if s >= s_obs - tol else 0
    if alt == 1:
        return 1 if s <= s_obs + tol else 0
    return 1 if abs(s) >= abs(s_obs) - tol else 0
