"""Kernels for correlations: average ranks with ties, batched Pearson of rows, and
the permutation null of a correlation.

Two ranking routes exist. Rows without NaN are ranked from an argsort done by
NumPy in the caller (NumPy's SIMD sort is the fastest sort available here) and
:func:`ranks_from_order` averages ties. Rows with NaN are compacted to their
complete pairs inside the kernel and ranked by :func:`average_ranks`, an LSD
radix sort on the order-preserving integer image of the floats.
"""

import numba
import numpy as np

from ._config import JIT, PJIT
from .rng import bounded, seed_state

_SIGN = np.uint64(0x8000000000000000)
_BYTE = np.uint64(255)
_ZERO = np.uint64(0)


@numba.njit(**JIT)
def radix_argsort(a, order, keys, scratch_idx, scratch_keys):
    """Indices that sort ``a`` (contiguous float64, no NaN) ascending into ``order[:n]`` and
    the sorted integer keys into ``keys[:n]`` (equal values <=> equal keys;
    ``-0.0`` is mapped to ``0.0``). Work arrays have length >= n."""
    n = a.shape[0]
    counts = np.zeros((8, 256), dtype=np.int64)
    bits = a.view(np.uint64)
    for i in range(n):
        b = _ZERO if a[i] == 0.0 else bits[i]
        k = b ^ ((_ZERO - (b >> np.uint64(63))) | _SIGN)
        keys[i] = k
        order[i] = i
        for d in range(8):
            counts[d, np.int64((k >> np.uint64(8 * d)) & _BYTE)] += 1
    offsets = np.empty(256, dtype=np.int64)
    in_scratch = False
    for d in range(8):
        shift = np.uint64(8 * d)
        src_k = scratch_keys if in_scratch else keys
        src_i = scratch_idx if in_scratch else order
        dst_k = keys if in_scratch else scratch_keys
        dst_i = order if in_scratch else scratch_idx
        if n == 0 or counts[d, np.int64((src_k[0] >> shift) & _BYTE)] == n:
            continue
        total = 0
        for j in range(256):
            offsets[j] = total
            total += counts[d, j]
        for i in range(n):
            k = src_k[i]
            j = np.int64((k >> shift) & _BYTE)
            pos = offsets[j]
            offsets[j] = pos + 1
            dst_k[pos] = k
            dst_i[pos] = src_i[i]
        in_scratch = not in_scratch
    if in_scratch:
        for i in range(n):
            order[i] = scratch_idx[i]
            keys[i] = scratch_keys[i]


@numba.njit(**JIT)
def average_ranks(a, out, order, keys, scratch_idx, scratch_keys):
    """Ranks 1..n of ``a`` (no NaN) into ``out``; ties get their average rank."""
    n = a.shape[0]
    radix_argsort(a, order, keys, scratch_idx, scratch_keys)
    i = 0
    while i < n:
        j = i + 1
        while j < n and keys[j] == keys[i]:
            j += 1
        r = 0.5 * (i + j + 1)  # mean of ranks i+1..j
        for t in range(i, j):
            out[order[t]] = r
        i = j


@numba.njit(**JIT)
def _ranks_chunk(c, values, order, out, n_threads):
    rows, n = values.shape
    for row in range(c, rows, n_threads):
        v = values[row]
        o = order[row]
        dst = out[row]
        i = 0
        while i < n:
            j = i + 1
            x = v[o[i]]
            while j < n and v[o[j]] == x:
                j += 1
            r = 0.5 * (i + j + 1)
            for t in range(i, j):
                dst[o[t]] = r
            i = j


@numba.njit(**PJIT)
def ranks_from_order(values, order, out, n_threads):
    """Average ranks of each row of ``values`` given ``order = argsort(values, axis=1)``."""
    for c in numba.prange(n_threads):
        _ranks_chunk(c, values, order, out, n_threads)


@numba.njit(**JIT)
def ranks_from_order_serial(values, order, out):
    """:func:`ranks_from_order` on the calling thread."""
    _ranks_chunk(0, values, order, out, 1)


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


@numba.njit(**JIT)
def _run_sums(v, m, out, at):
    """Tie-group sums of sorted ``v[:m]``: sum t(t-1), sum t(t-1)(2t+5), sum t(t-1)(t-2)
    over groups of ``t`` equal values, into ``out[at:at+3]``."""
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    i = 0
    while i < m:
        j = i + 1
        while j < m and v[j] == v[i]:
            j += 1
        t = float(j - i)
        if t > 1.0:
            s1 += t * (t - 1.0)
            s2 += t * (t - 1.0) * (2.0 * t + 5.0)
            s3 += t * (t - 1.0) * (t - 2.0)
        i = j
    out[at] = s1
    out[at + 1] = s2
    out[at + 2] = s3


@numba.njit(**JIT)
def _kendall_chunk(c, x, y, tau, used, score, ties, n_threads):
    rows, n = x.shape
    bx = np.empty(n)
    by = np.empty(n)
    for i in range(c, rows, n_threads):
        xr = x[i]
        yr = y[i if y.shape[0] > 1 else 0]
        m = 0
        for t in range(n):
            if not (np.isnan(xr[t]) or np.isnan(yr[t])):
                bx[m] = xr[t]
                by[m] = yr[t]
                m += 1
        used[i] = m
        s = 0
        nx = 0
        ny = 0
        for a in range(1, m):
            for b in range(a):
                dx = bx[a] - bx[b]
                dy = by[a] - by[b]
                sx = 1 if dx > 0 else (-1 if dx < 0 else 0)
                sy = 1 if dy > 0 else (-1 if dy < 0 else 0)
                s += sx * sy
                nx += sx * sx
                ny += sy * sy
        score[i] = float(s)
        if m < 2 or nx == 0 or ny == 0:
            tau[i] = np.nan
        else:
            r = s / (np.sqrt(float(nx)) * np.sqrt(float(ny)))
            tau[i] = min(1.0, max(-1.0, r))
        _run_sums(np.sort(bx[:m]), m, ties[i], 0)
        _run_sums(np.sort(by[:m]), m, ties[i], 3)


@numba.njit(**PJIT)
def kendall_rows(x, y, n_threads):
    """Kendall's tau-b of each row pair, dropping NaN pairs row by row.

    ``x`` float64 (rows, n); ``y`` (rows, n) or (1, n). Returns tau (NaN when
    fewer than 2 pairs or a side is constant), the pairs used, the score
    ``S = sum_{a<b} sign(dx) sign(dy)`` (integer-valued) and ``ties`` (rows, 6):
    for x then y, ``sum t(t-1)``, ``sum t(t-1)(2t+5)``, ``sum t(t-1)(t-2)`` over
    groups of ``t`` tied values (the terms of R's variance of S with ties).
    """
    rows = x.shape[0]
    tau = np.full(rows, np.nan)
    used = np.zeros(rows, dtype=np.int64)
    score = np.zeros(rows)
    ties = np.zeros((rows, 6))
    for c in numba.prange(n_threads):
        _kendall_chunk(c, x, y, tau, used, score, ties, n_threads)
    return tau, used, score, ties


@numba.njit(**JIT)
def kendall_rows_serial(x, y):
    """:func:`kendall_rows` on the calling thread."""
    rows = x.shape[0]
    tau = np.full(rows, np.nan)
    used = np.zeros(rows, dtype=np.int64)
    score = np.zeros(rows)
    ties = np.zeros((rows, 6))
    _kendall_chunk(0, x, y, tau, used, score, ties, 1)
    return tau, used, score, ties


@numba.njit(**JIT)
def signed_rank_z(x, d, correct, alt):
    """R's standardised signed-rank statistic of ``x - d`` (the ``W(d)`` of ``wilcox.test``'s
    asymptotic interval): zeros dropped, average ranks of ``|x - d|``,
    ``(V - m(m+1)/4 - c) / sigma`` with R's tie-corrected sigma and continuity
    correction ``c`` (``correct``; ``alt`` 0 greater: 0.5, 1 less: -0.5, 2 two-sided:
    sign * 0.5). A zero sigma gives +-inf, or NaN for 0/0, as R's division."""
    n = x.shape[0]
    a = np.empty(n)
    pos = np.empty(n, dtype=np.bool_)
    m = 0
    for i in range(n):
        v = x[i] - d
        if v != 0.0:
            a[m] = abs(v)
            pos[m] = v > 0.0
            m += 1
    order = np.argsort(a[:m])
    v_plus = 0.0
    ties = 0.0
    i = 0
    while i < m:
        j = i + 1
        while j < m and a[order[j]] == a[order[i]]:
            j += 1
        r = 0.5 * (i + j + 1)
        for t in range(i, j):
            if pos[order[t]]:
                v_plus += r
        t = float(j - i)
        ties += t * t * t - t
        i = j
    z = v_plus - m * (m + 1) / 4.0
    sigma = np.sqrt(m * (m + 1) * (2 * m + 1) / 24.0 - ties / 48.0)
    c = 0.0
    if correct:
        if alt == 0:
            c = 0.5
        elif alt == 1:
            c = -0.5
        else:
            c = 0.5 if z > 0 else (-0.5 if z < 0 else 0.0)
    num = z - c
    if sigma == 0.0:
        if num == 0.0:
            return np.nan
        return np.inf if num > 0 else -np.inf
    return num / sigma
