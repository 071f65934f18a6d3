"""Kernels of the rank tests: Kendall's tau-b of rows (tie-corrected) and the signed-rank
z of the Wilcoxon test (tie and continuity corrections as R's ``wilcox.test``).
"""

import numba
import numpy as np

from ._config import JIT, PJIT

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
