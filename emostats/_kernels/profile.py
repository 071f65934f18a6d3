"""Profile kernel: pooled moments of the pairs (x[t], x[t + L]) for every lag L = 0..max_lag.

Layout of the moments, valid pairs, shifts and the merge: :mod:`emostats._kernels.moments`.

Speed
-----
The profile copies one segment and a block of 16 probes at a time into a
float64 buffer of 16 lanes and computes every lagged cross-product with a
register tile of 4 first tokens x 8 lags vectorised over the lanes
(:func:`_xcorr_lanes`); inputs with a segment longer than ``LANE_TOKENS``
take the older kernel over one probe's contiguous row (:func:`_profile_rows`),
whose buffers are a quarter of the size. The sums of ``x[t]`` and their squares come from prefix
sums, those of ``x[t + L]`` from suffix sums (so that, without ``first_stop``,
none is a difference). A (segment, probe) with a non-finite value is redone on
a masked path. The NumPy layer splits the work over probes (it is bound by
multiply-adds, not by reading ``x``); the result is the same bits for any
number of threads.
"""

import numba
import numpy as np

from ._config import JIT
from .moments import BLOCK, SHIFT_SAMPLE, _max_segment, _merge_lags, finite, shift_of, shifts


#: probes per lane block of the profile kernel (the width of its vectorised loop)
LANES = 16
#: longest segment (tokens) for the lane kernel: its buffers are then at most 5 x 16 x 8 B x 2**16 = 42 MB a thread
LANE_TOKENS = 1 << 16


@numba.njit(**JIT)
def _xcorr_lanes(d, m0, L0, out):
    """``out[16 (L0 + k) + q]`` = sum over t < m0 of d[t, q] d[t + L0 + k, q], for k = 0..7 and 16 lanes q.

    ``d`` is a flat (rows, 16) float64 buffer: lane q holds one probe of the segment, zero
    beyond its last token (so lag L0 + k needs no bound of its own: its pairs past the
    segment multiply a zero). A register tile of 4 first tokens x 8 lags loads 4 + 11 rows
    for 32 multiply-adds per lane, and the loop over the lanes vectorises (unsigned indices:
    no negative-index wraparound, which kept LLVM from vectorising). Compared with eight
    lags per sweep over one contiguous probe (unaligned loads of ``d[t + L]``, one per
    multiply-add): 0.30 against 0.50 CPU-s for 200k tokens x 171 probes, lags 0..200.
    """
    UW = np.uint64(16)
    ob = np.uint64(16 * L0)
    for i in range(np.uint64(128)):
        out[ob + i] = 0.0
    t = 0
    while t + 4 <= m0:
        ia = np.uint64(16 * t)
        ib = np.uint64(16 * (t + L0))
        for q in range(UW):
            qa = ia + q
            qb = ib + q
            a0 = d[qa + np.uint64(0)]
            a1 = d[qa + np.uint64(16)]
            a2 = d[qa + np.uint64(32)]
            a3 = d[qa + np.uint64(48)]
            b0 = d[qb + np.uint64(0)]
            b1 = d[qb + np.uint64(16)]
            b2 = d[qb + np.uint64(32)]
            b3 = d[qb + np.uint64(48)]
            b4 = d[qb + np.uint64(64)]
            b5 = d[qb + np.uint64(80)]
            b6 = d[qb + np.uint64(96)]
            b7 = d[qb + np.uint64(112)]
            b8 = d[qb + np.uint64(128)]
            b9 = d[qb + np.uint64(144)]
            b10 = d[qb + np.uint64(160)]
            out[ob + np.uint64(0) + q] += a0 * b0 + a1 * b1 + a2 * b2 + a3 * b3
            out[ob + np.uint64(16) + q] += a0 * b1 + a1 * b2 + a2 * b3 + a3 * b4
            out[ob + np.uint64(32) + q] += a0 * b2 + a1 * b3 + a2 * b4 + a3 * b5
            out[ob + np.uint64(48) + q] += a0 * b3 + a1 * b4 + a2 * b5 + a3 * b6
            out[ob + np.uint64(64) + q] += a0 * b4 + a1 * b5 + a2 * b6 + a3 * b7
            out[ob + np.uint64(80) + q] += a0 * b5 + a1 * b6 + a2 * b7 + a3 * b8
            out[ob + np.uint64(96) + q] += a0 * b6 + a1 * b7 + a2 * b8 + a3 * b9
            out[ob + np.uint64(112) + q] += a0 * b7 + a1 * b8 + a2 * b9 + a3 * b10
        t += 4
    while t < m0:
        ia = np.uint64(16 * t)
        for k in range(8):
            ib = np.uint64(16 * (t + L0 + k))
            ko = ob + np.uint64(16 * k)
            for q in range(UW):
                out[ko + q] += d[ia + q] * d[ib + q]
        t += 1


@numba.njit(**JIT)
def _masked_profile(x, a, n, f, p, max_lag, dz, mk, M, SX, SY, SXX, SYY, SXY):
    """Per-lag sums of one (segment, probe) with non-finite values masked pairwise; returns the shift."""
    h = shift_of(x, a, a + n, p, np.empty(SHIFT_SAMPLE))
    for L in range(max_lag + 1):
        M[L] = 0.0
        SX[L] = 0.0
        SY[L] = 0.0
        SXX[L] = 0.0
        SYY[L] = 0.0
        SXY[L] = 0.0
    if not finite(h):
        return 0.0
    for t in range(n):
        v = np.float64(x[a + t, p]) - h
        if finite(v):
            dz[t] = v
            mk[t] = 1.0
        else:
            dz[t] = 0.0
            mk[t] = 0.0
    for L in range(min(max_lag, n - 1) + 1):
        m = min(n - L, f)
        c = 0.0
        sx = 0.0
        sy = 0.0
        sxx = 0.0
        syy = 0.0
        sxy = 0.0
        for t in range(m):
            u = dz[t]
            v = dz[t + L]
            c += mk[t] * mk[t + L]
            sx += u * mk[t + L]
            sy += v * mk[t]
            sxx += u * u * mk[t + L]
            syy += v * v * mk[t]
            sxy += u * v
        M[L] = c
        SX[L] = sx
        SY[L] = sy
        SXX[L] = sxx
        SYY[L] = syy
        SXY[L] = sxy
    return h


@numba.njit(**JIT)
def _lag_sums(c1, c2, e1, e2, xc, stride, j, n, f, top, nl, M, SX, SY, SXX, SYY, SXY):
    """The per-lag sums of one (segment, probe) from its prefix sums ``c1``, ``c2`` (x side), suffix
    sums ``e1``, ``e2`` (y side) and lagged cross-products ``xc``, all read at ``stride * i + j``
    (lane-interleaved buffers: ``stride`` lanes, lane ``j``; one probe's row: 1, 0); lags past
    ``top`` (the segment's last) are zero. Both profile kernels finish through this."""
    for L in range(top + 1):
        m = min(n - L, f)
        M[L] = m
        SX[L] = c1[stride * m + j]
        SY[L] = e1[stride * L + j] - e1[stride * (m + L) + j]
        SXX[L] = c2[stride * m + j]
        SYY[L] = e2[stride * L + j] - e2[stride * (m + L) + j]
        SXY[L] = xc[stride * L + j]
    for L in range(top + 1, nl):
        M[L] = 0.0
        SX[L] = 0.0
        SY[L] = 0.0
        SXX[L] = 0.0
        SYY[L] = 0.0
        SXY[L] = 0.0


@numba.njit(**JIT)
def profile_range(x, offsets, group, max_lag, first_stop, ref, acc, s0, s1, p0, p1):
    """Moments for every lag 0..max_lag of segments ``s0:s1`` and probes ``p0:p1`` into ``acc``.

    ``acc`` has the lag-last layout (n_groups, 6, n_probes, max_lag + 1) so that
    the per-lag merge of each (segment, probe) runs over contiguous memory; the
    NumPy wrapper transposes it to (n_groups, 6, max_lag + 1, n_probes).

    The lane kernel's buffers hold ``5 x LANES`` values per token of the longest segment
    (whatever the number of probes): above ``LANE_TOKENS`` tokens the rows kernel, whose
    buffers are a quarter of that, is used instead. The choice depends on the input only,
    never on the probe range, so the result is the same bits for any number of threads.
    """
    if _max_segment(offsets) <= LANE_TOKENS:
        _profile_lanes(x, offsets, group, max_lag, first_stop, ref, acc, s0, s1, p0, p1)
    else:
        _profile_rows(x, offsets, group, max_lag, first_stop, ref, acc, s0, s1, p0, p1)


@numba.njit(**JIT)
def _profile_lanes(x, offsets, group, max_lag, first_stop, ref, acc, s0, s1, p0, p1):
    """:func:`profile_range` in lane blocks of ``LANES`` probes (:func:`_xcorr_lanes`)."""
    nl = max_lag + 1
    longest = _max_segment(offsets)
    B = LANES
    d = np.zeros((longest + 16) * B)  # lanes of the current (segment, probe block); rows past the segment stay 0
    xl = np.empty((nl + 8) * B)
    # prefix (c) and suffix (e) sums of the lanes and of their squares, lane-interleaved like d
    c1 = np.empty((longest + 1) * B)
    c2 = np.empty((longest + 1) * B)
    e1 = np.empty((longest + 1) * B)
    e2 = np.empty((longest + 1) * B)
    UB = np.uint64(B)
    h = np.empty(B)
    dz = np.empty(longest)
    mk = np.empty(longest)
    M = np.empty(nl)
    SX = np.empty(nl)
    SY = np.empty(nl)
    SXX = np.empty(nl)
    SYY = np.empty(nl)
    SXY = np.empty(nl)
    buf = np.empty(SHIFT_SAMPLE)
    for s in range(s0, s1):
        a = offsets[s]
        n = offsets[s + 1] - a
        f = min(first_stop, offsets[s + 1]) - a
        if f <= 0 or n <= 0:
            continue
        g = group[s]
        top = min(max_lag, n - 1)
        for q0 in range(p0, p1, B):
            nb = min(B, p1 - q0)
            shifts(x, a, a + n, q0, q0 + nb, h, buf)
            # unsigned indices below: no negative-index wraparound, so the loops over lanes vectorise
            for t in range(n):
                xr = x[a + t, q0:q0 + nb]  # a row view vectorises; x[a + t, q0 + j] does not
                r = np.uint64(B * t)
                for j in range(np.uint64(nb)):
                    d[r + j] = np.float64(xr[j]) - h[j]
                for j in range(np.uint64(nb), UB):
                    d[r + j] = 0.0
            for i in range(np.uint64(B * n), np.uint64(B * (n + 16))):
                d[i] = 0.0
            for L0 in range(0, top + 1, 8):
                _xcorr_lanes(d, min(n - L0, f), L0, xl)
            # prefix sums for the x side, suffix sums for the y side: with no first_stop neither
            # is a difference, so a spike at a segment's first or last token cancels no digits
            for j in range(UB):
                c1[j] = 0.0
                c2[j] = 0.0
                e1[np.uint64(B * n) + j] = 0.0
                e2[np.uint64(B * n) + j] = 0.0
            for t in range(n):
                r = np.uint64(B * t)
                for j in range(UB):
                    v = d[r + j]
                    c1[r + UB + j] = c1[r + j] + v
                    c2[r + UB + j] = c2[r + j] + v * v
            for t in range(n - 1, -1, -1):
                r = np.uint64(B * t)
                for j in range(UB):
                    v = d[r + j]
                    e1[r + j] = e1[r + UB + j] + v
                    e2[r + j] = e2[r + UB + j] + v * v
            for j in range(nb):
                p = q0 + j
                if not finite(c2[B * n + j]):
                    hp = _masked_profile(x, a, n, f, p, max_lag, dz, mk, M, SX, SY, SXX, SYY, SXY)
                    _merge_lags(acc, g, p, hp - ref[p], M, SX, SY, SXX, SYY, SXY)
                    continue
                _lag_sums(c1, c2, e1, e2, xl, B, j, n, f, top, nl, M, SX, SY, SXX, SYY, SXY)
                _merge_lags(acc, g, p, h[j] - ref[p], M, SX, SY, SXX, SYY, SXY)


@numba.njit(**JIT)
def _xcorr(d, n, f, max_lag, out):
    """out[L] = sum over t < min(n - L, f) of d[t] d[t + L], for L = 0..min(max_lag, n - 1).

    Eight lags share each sweep over ``t`` so that ``d[t]`` is loaded once per
    eight multiply-adds (the loop is bound by loads, not arithmetic).
    """
    top = min(max_lag, n - 1)
    L0 = 0
    while L0 + 7 <= top:
        m = min(n - L0 - 7, f)
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        s4 = 0.0
        s5 = 0.0
        s6 = 0.0
        s7 = 0.0
        for t in range(m):
            a = d[t]
            s0 += a * d[t + L0]
            s1 += a * d[t + L0 + 1]
            s2 += a * d[t + L0 + 2]
            s3 += a * d[t + L0 + 3]
            s4 += a * d[t + L0 + 4]
            s5 += a * d[t + L0 + 5]
            s6 += a * d[t + L0 + 6]
            s7 += a * d[t + L0 + 7]
        out[L0] = s0
        out[L0 + 1] = s1
        out[L0 + 2] = s2
        out[L0 + 3] = s3
        out[L0 + 4] = s4
        out[L0 + 5] = s5
        out[L0 + 6] = s6
        out[L0 + 7] = s7
        for k in range(8):  # the last few first tokens of the shorter lags
            L = L0 + k
            s = 0.0
            for t in range(m, min(n - L, f)):
                s += d[t] * d[t + L]
            out[L] += s
        L0 += 8
    for L in range(L0, top + 1):
        s = 0.0
        for t in range(min(n - L, f)):
            s += d[t] * d[t + L]
        out[L] = s


@numba.njit(**JIT)
def _profile_rows(x, offsets, group, max_lag, first_stop, ref, acc, s0, s1, p0, p1):
    """:func:`profile_range` for inputs with a segment longer than ``LANE_TOKENS``: one probe's row at a time.

    Each segment and block of ``BLOCK`` probes is transposed to float64 rows and every lagged
    cross-product of a row comes from :func:`_xcorr` (eight lags per sweep). Its buffers are
    ``BLOCK + 4`` rows of the longest segment, against ``5 x LANES`` for the lane kernel.
    """
    nl = max_lag + 1
    longest = _max_segment(offsets)
    B = min(BLOCK, max(p1 - p0, 1))
    d = np.empty((B, longest))
    c1 = np.empty(longest + 1)
    c2 = np.empty(longest + 1)
    e1 = np.empty(longest + 1)
    e2 = np.empty(longest + 1)
    xc = np.empty(nl)
    h = np.empty(B)
    dz = np.empty(longest)
    mk = np.empty(longest)
    M = np.empty(nl)
    SX = np.empty(nl)
    SY = np.empty(nl)
    SXX = np.empty(nl)
    SYY = np.empty(nl)
    SXY = np.empty(nl)
    buf = np.empty(SHIFT_SAMPLE)
    for s in range(s0, s1):
        a = offsets[s]
        n = offsets[s + 1] - a
        f = min(first_stop, offsets[s + 1]) - a
        if f <= 0 or n <= 0:
            continue
        g = group[s]
        top = min(max_lag, n - 1)
        for q0 in range(p0, p1, B):
            nb = min(B, p1 - q0)
            shifts(x, a, a + n, q0, q0 + nb, h, buf)
            for t in range(n):
                xr = x[a + t, q0:q0 + nb]  # a row view vectorises; x[a + t, q0 + j] does not
                for j in range(nb):
                    d[j, t] = np.float64(xr[j]) - h[j]
            for j in range(nb):
                p = q0 + j
                row = d[j]
                # prefix sums for the x side, suffix sums for the y side: with no first_stop neither
                # is a difference, so a spike at a segment's first or last token cancels no digits
                c1[0] = 0.0
                c2[0] = 0.0
                for t in range(n):
                    c1[t + 1] = c1[t] + row[t]
                    c2[t + 1] = c2[t] + row[t] * row[t]
                e1[n] = 0.0
                e2[n] = 0.0
                for t in range(n - 1, -1, -1):
                    e1[t] = e1[t + 1] + row[t]
                    e2[t] = e2[t + 1] + row[t] * row[t]
                if not finite(c2[n]):
                    hp = _masked_profile(x, a, n, f, p, max_lag, dz, mk, M, SX, SY, SXX, SYY, SXY)
                    _merge_lags(acc, g, p, hp - ref[p], M, SX, SY, SXX, SYY, SXY)
                    continue
                _xcorr(row, n, f, max_lag, xc)
                _lag_sums(c1, c2, e1, e2, xc, 1, 0, n, f, top, nl, M, SX, SY, SXX, SYY, SXY)
                _merge_lags(acc, g, p, h[j] - ref[p], M, SX, SY, SXX, SYY, SXY)
