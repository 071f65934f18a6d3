"""Correlation kernels: batched Pearson and Spearman of rows (ranks from
:mod:`emostats._kernels.ranks`) and the permutation null of a correlation, seeded per row.
"""

import numba
import numpy as np

from ._config import JIT, PJIT
from .ranks import average_ranks
from .rng import bounded, seed_state

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
def _pearson_chunk(c, x, y, r, n_threads):
    rows, n = x.shape
    for i in range(c, rows, n_threads):
        r[i] = _pearson(x[i], y[i if y.shape[0] > 1 else 0], n)


@numba.njit(**PJIT)
def pearson_rows(x, y, n_threads):
    """Pearson r of each row of ``x`` (rows, n) with ``y`` (rows, n) or (1, n); no NaN."""
    r = np.empty(x.shape[0])
    for c in numba.prange(n_threads):
        _pearson_chunk(c, x, y, r, n_threads)
    return r


@numba.njit(**JIT)
def pearson_rows_serial(x, y):
    """:func:`pearson_rows` on the calling thread."""
    r = np.empty(x.shape[0])
    _pearson_chunk(0, x, y, r, 1)
    return r


@numba.njit(**JIT)
def _prepare_row(xr, yr, rank, bx, by, rx, ry, order, keys, sidx, skeys):
    """Compact the complete pairs of one row into bx, by (ranked into rx, ry when
    ``rank``); returns n and the two arrays to correlate."""
    m = 0
    for i in range(xr.shape[0]):
        if not (np.isnan(xr[i]) or np.isnan(yr[i])):
            bx[m] = xr[i]
            by[m] = yr[i]
            m += 1
    if rank and m > 0:
        average_ranks(bx[:m], rx, order, keys, sidx, skeys)
        average_ranks(by[:m], ry, order, keys, sidx, skeys)
        return m, rx, ry
    return m, bx, by


@numba.njit(**JIT)
def _correlate_chunk(c, x, y, rank, r, used, n_threads):
    rows, n = x.shape
    bx = np.empty(n)
    by = np.empty(n)
    rx = np.empty(n)
    ry = np.empty(n)
    order = np.empty(n, dtype=np.int64)
    sidx = np.empty(n, dtype=np.int64)
    keys = np.empty(n, dtype=np.uint64)
    skeys = np.empty(n, dtype=np.uint64)
    for i in range(c, rows, n_threads):
        m, a, b = _prepare_row(x[i], y[i if y.shape[0] > 1 else 0], rank, bx, by, rx, ry,
                               order, keys, sidx, skeys)
        used[i] = m
        r[i] = _pearson(a, b, m)


@numba.njit(**PJIT)
def correlate_rows(x, y, rank, n_threads):
    """Pearson (``rank=False``) or Spearman (``rank=True``) r of each row pair,
    dropping NaN pairs row by row.

    ``x`` is float64 (rows, n); ``y`` (rows, n) or (1, n) (shared by all rows).
    Returns r (rows,) and the number of complete pairs (rows,).
    """
    rows = x.shape[0]
    r = np.full(rows, np.nan)
    used = np.zeros(rows, dtype=np.int64)
    for c in numba.prange(n_threads):
        _correlate_chunk(c, x, y, rank, r, used, n_threads)
    return r, used


@numba.njit(**JIT)
def correlate_rows_serial(x, y, rank):
    """:func:`correlate_rows` on the calling thread."""
    rows = x.shape[0]
    r = np.full(rows, np.nan)
    used = np.zeros(rows, dtype=np.int64)
    _correlate_chunk(0, x, y, rank, r, used, 1)
    return r, used


@numba.njit(**JIT)
def _cross(a, b, n):
    s = 0.0
    for i in range(n):
        s += a[i] * b[i]
    return s


@numba.njit(**JIT)
def _hit(s, s_obs, alt, tol):
    if alt == 0:
        return 1 if s >= s_obs - tol else 0
    if alt == 1:
        return 1 if s <= s_obs + tol else 0
    return 1 if abs(s) >= abs(s_obs) - tol else 0


@numba.njit(**JIT)
def _permutation_chunk(c, x, y, rank, keys, n_perm, exact, alt, rtol, counts, used, n_threads):
    rows, n = x.shape
    bx = np.empty(n)
    by = np.empty(n)
    rx = np.empty(n)
    ry = np.empty(n)
    order = np.empty(n, dtype=np.int64)
    sidx = np.empty(n, dtype=np.int64)
    rkeys = np.empty(n, dtype=np.uint64)
    skeys = np.empty(n, dtype=np.uint64)
    work = np.empty(n)
    heap = np.zeros(n, dtype=np.int64)
    state = np.empty(4, dtype=np.uint64)
    for i in range(c, rows, n_threads):
        m, a, b = _prepare_row(x[i], y[i if y.shape[0] > 1 else 0], rank, bx, by, rx, ry,
                               order, rkeys, sidx, skeys)
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
        tol = rtol * m * amax * bmax
        cnt = 0
        if exact[i]:
            cnt = _hit(s_obs, s_obs, alt, tol)
            for t in range(m):
                heap[t] = 0
            t = 1
            while t < m:
                if heap[t] < t:
                    j = 0 if t % 2 == 0 else heap[t]
                    tmp = work[j]
                    work[j] = work[t]
                    work[t] = tmp
                    cnt += _hit(_cross(a, work, m), s_obs, alt, tol)
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
                cnt += _hit(_cross(a, work, m), s_obs, alt, tol)
        counts[i] = cnt


@numba.njit(**PJIT)
def correlation_permutations(x, y, rank, keys, n_perm, exact, alt, rtol, n_threads):
    """Counts of orderings of y whose correlation with x is at least as extreme.

    The correlation of a permuted pairing is an increasing function of
    ``S = sum(xc * yc[perm])`` (centred, ranked when ``rank``), so ``S`` is
    compared, with tolerance ``rtol * n * max|xc| * max|yc|``. ``exact[i]``:
    all n! orderings (Heap's algorithm; the count includes the observed one);
    otherwise ``n_perm`` Fisher-Yates shuffles from the stream ``keys[i]``.
    ``alt``: 0 greater, 1 less, 2 two-sided (``|S|``).
    Returns counts (rows,) and complete pairs (rows,).
    """
    rows = x.shape[0]
    counts = np.zeros(rows, dtype=np.int64)
    used = np.zeros(rows, dtype=np.int64)
    for c in numba.prange(n_threads):
        _permutation_chunk(c, x, y, rank, keys, n_perm, exact, alt, rtol, counts, used, n_threads)
    return counts, used


@numba.njit(**JIT)
def correlation_permutations_serial(x, y, rank, keys, n_perm, exact, alt, rtol):
    """:func:`correlation_permutations` on the calling thread."""
    rows = x.shape[0]
    counts = np.zeros(rows, dtype=np.int64)
    used = np.zeros(rows, dtype=np.int64)
    _permutation_chunk(0, x, y, rank, keys, n_perm, exact, alt, rtol, counts, used, 1)
    return counts, used
