"""Segment-aware lag kernels: pooled moments of the pairs (x[t], x[t + L]).

A *valid pair* at lag ``L`` is two tokens ``t`` and ``t + L`` of one segment
(``offsets[s] <= t`` and ``t + L < offsets[s + 1]``) whose values are both
finite. Optionally only pairs whose first token lies before ``first_stop`` count
(the dask path gives each chunk the pairs that *start* in it, reading ``L``
tokens past its end).

Sufficient statistics
---------------------
Every kernel accumulates, per output group ``g`` (e.g. conversation), lag index
``l`` and probe ``p``, the centred moments of the pairs in float64::

    acc[g, 0, l, p]  n      number of valid pairs
    acc[g, 1, l, p]  mx     mean of x[t]
    acc[g, 2, l, p]  my     mean of x[t + L]
    acc[g, 3, l, p]  Cxx    sum of (x[t] - mx)^2
    acc[g, 4, l, p]  Cyy    sum of (x[t + L] - my)^2
    acc[g, 5, l, p]  Cxy    sum of (x[t] - mx)(x[t + L] - my)

Within one segment the sums are taken about a shift ``h``, the median of five
evenly spaced values of the segment (:func:`shifts`; of up to 15 finite values
when one of the five is NaN or inf, :func:`shift_of`), so
float32 activations with a mean of 1e4 lose no digits and a large first token
(a spike of 1e8 sd) does not either: a shift at the segment's first value
made the raw sums of such a segment cancel catastrophically. Segments are
merged into ``acc`` with the exact pairwise update of Chan, Golub and LeVeque
(1979), segment by segment in order. Pearson r is ``Cxy / sqrt(Cxx Cyy)``.

Speed
-----
A single lag is one pass over the array with probes in the inner (contiguous)
loop and three float64 accumulators per probe (see :func:`lag_range`). The profile ``L = 0..max_lag`` transposes one segment and a block
of probes at a time into float64 and computes every lagged cross-product with
a register-blocked loop (eight lags per sweep); the sums of ``x[t]`` and
their squares come from prefix sums, those of ``x[t + L]`` from suffix sums
(so that, without ``first_stop``, none is a difference). A (segment, probe) with
a non-finite value is redone on a masked path.

Every kernel works on a range of segments ``s0:s1`` and of probes ``p0:p1`` and
releases the GIL (``nogil``). For the single lag (bound by reading ``x``) the
NumPy layer (``emostats._lagstats``) splits the *segments* into pieces whose
number depends only on the input, gives each piece its own accumulator, runs
the pieces on Python threads and merges them in piece order
(:func:`merge_arrays`): each thread streams whole rows of its own part of the
array. The profile (bound by multiply-adds) is split over probes. Either way
the result is the same bits for any number of threads. (Threads rather than ``prange``: no second, parallel compilation of
every kernel, no OpenMP spin-waiting on a loaded machine, and safe to call
from dask's worker threads.)
"""

import math

import numba
import numpy as np

from ._config import JIT

#: index of each statistic along axis 1 of a moments array
N, MX, MY, CXX, CYY, CXY = range(6)
#: probes per transposed block in the profile and trajectory kernels
BLOCK = 16


@numba.njit(**JIT)
def finite(v):
    """True for a finite float.

    Not ``math.isfinite``: with the ``reassoc`` and ``nsz`` fastmath flags together,
    LLVM folds its ``v - v == 0`` test to true, so NaN would pass; ``isnan`` and
    ``isinf`` compile to comparisons that these flags leave alone.
    """
    return not (math.isnan(v) or math.isinf(v))


@numba.njit(**JIT)
def _merge(acc, g, l, p, n, mx, my, cxx, cyy, cxy):
    """Chan et al. merge of one batch of centred moments into ``acc[g, :, l, p]``."""
    if n <= 0.0:
        return
    na = acc[g, 0, l, p]
    if na <= 0.0:
        acc[g, 0, l, p] = n
        acc[g, 1, l, p] = mx
        acc[g, 2, l, p] = my
        acc[g, 3, l, p] = cxx
        acc[g, 4, l, p] = cyy
        acc[g, 5, l, p] = cxy
        return
    nn = na + n
    fb = n / nn
    f = na * fb
    dx = mx - acc[g, 1, l, p]
    dy = my - acc[g, 2, l, p]
    acc[g, 0, l, p] = nn
    acc[g, 1, l, p] += dx * fb
    acc[g, 2, l, p] += dy * fb
    acc[g, 3, l, p] += cxx + dx * dx * f
    acc[g, 4, l, p] += cyy + dy * dy * f
    acc[g, 5, l, p] += cxy + dx * dy * f


@numba.njit(**JIT)
def _merge_sums(acc, g, l, p, m, h, sx, sy, sxx, syy, sxy):
    """Merge raw sums about the shift ``h`` (``m`` pairs) into ``acc``."""
    if m <= 0.0:
        return
    inv = 1.0 / m
    ax = sx * inv
    ay = sy * inv
    _merge(acc, g, l, p, m, h + ax, h + ay, sxx - sx * ax, syy - sy * ay, sxy - sx * ay)


@numba.njit(**JIT)
def merge_arrays(a, b):
    """Merge moments array ``b`` into ``a`` in place (same shape, Chan et al.)."""
    G, _, nl, P = a.shape
    for g in range(G):
        for l in range(nl):
            for p in range(P):
                _merge(a, g, l, p, b[g, 0, l, p], b[g, 1, l, p], b[g, 2, l, p],
                       b[g, 3, l, p], b[g, 4, l, p], b[g, 5, l, p])


#: values sampled per (segment, series) to choose the shift
SHIFT_SAMPLE = 15


@numba.njit(**JIT)
def shift_of(x, a, b, p, buf):
    """The shift of segment ``[a, b)`` of series ``p``: the lower median of up to 15 evenly spaced finite values.

    Sums about a value inside the bulk of the segment keep their digits; a
    single outlier (e.g. a spike of 1e8 sd at the first token) cannot be
    chosen unless it makes up half of the sample. The median is one of the
    values, so ``x - h`` is exact for values near it. NaN when the segment has
    no finite value (the sample is taken first; if it has none, the first
    finite value of the segment is used). ``buf``: scratch of ``SHIFT_SAMPLE`` float64.
    """
    n = b - a
    k = 0
    if n > 0:
        m = min(n, SHIFT_SAMPLE)
        for i in range(m):
            t = a + (i * (n - 1)) // max(m - 1, 1)
            v = np.float64(x[t, p])
            if finite(v):
                # insertion sort: k <= 15
                j = k
                while j > 0 and buf[j - 1] > v:
                    buf[j] = buf[j - 1]
                    j -= 1
                buf[j] = v
                k += 1
    if k > 0:
        return buf[(k - 1) // 2]
    for t in range(a, b):
        v = np.float64(x[t, p])
        if finite(v):
            return v
    return np.nan


@numba.njit(**JIT)
def _masked_lag(x, a, b, e, lag, p, acc, g, l, ref):
    """One segment [a, b), one probe, pairs with first token in [a, e): NaN/inf masked."""
    h = shift_of(x, a, b, p, np.empty(SHIFT_SAMPLE))
    if not finite(h):
        return
    m = 0.0
    sx = 0.0
    sy = 0.0
    sxx = 0.0
    syy = 0.0
    sxy = 0.0
    for t in range(a, e):
        u = np.float64(x[t, p]) - h
        v = np.float64(x[t + lag, p]) - h
        if finite(u) and finite(v):
            m += 1.0
            sx += u
            sy += v
            sxx += u * u
            syy += v * v
            sxy += u * v
    _merge_sums(acc, g, l, p, m, h - ref, sx, sy, sxx, syy, sxy)


@numba.njit(**JIT)
def shifts(x, a, b, p0, p1, h, buf):
    """``h[j]`` = the shift of segment ``[a, b)`` for probe ``p0 + j``: the median of 5 evenly spaced values.

    Five row views (first, quartiles, last token) and a min/max network, so the
    loop over probes vectorises; a probe with a non-finite value among the five
    takes :func:`shift_of` (median of the finite values of a larger sample).
    """
    n = b - a
    r0 = x[a, p0:p1]
    r1 = x[a + (n - 1) // 4, p0:p1]
    r2 = x[a + (n - 1) // 2, p0:p1]
    r3 = x[a + (3 * (n - 1)) // 4, p0:p1]
    r4 = x[b - 1, p0:p1]
    P = p1 - p0
    for j in range(P):
        v0 = np.float64(r0[j])
        v1 = np.float64(r1[j])
        v2 = np.float64(r2[j])
        v3 = np.float64(r3[j])
        v4 = np.float64(r4[j])
        f = max(min(v0, v1), min(v2, v3))
        g = min(max(v0, v1), max(v2, v3))
        h[j] = max(min(v4, f), min(max(v4, f), g))  # median of (v4, f, g) = median of the five
    for j in range(P):
        if not finite(np.float64(r0[j]) + np.float64(r1[j]) + np.float64(r2[j]) + np.float64(r3[j])
                      + np.float64(r4[j])):
            h[j] = shift_of(x, a, b, p0 + j, buf)


@numba.njit(**JIT)
def reference(x):
    """A value near the bulk of each column (median of 5 evenly spaced rows; first finite value as fallback).

    The kernels keep the means in their accumulators relative to it, so that
    merging segments of data such as ``x + 1e9`` does not take differences of
    means rounded at 1e9 (ulp 1.2e-7); the caller adds it back at the end.
    """
    P = x.shape[1]
    ref = np.zeros(P)
    if x.shape[0] > 0:
        shifts(x, 0, x.shape[0], 0, P, ref, np.empty(SHIFT_SAMPLE))
        for j in range(P):
            if not finite(ref[j]):
                ref[j] = 0.0
    return ref


@numba.njit(**JIT)
def _row_sums(x, t0, t1, p0, p1, h, s, ss):
    """``s[j]``, ``ss[j]`` = sum and sum of squares of ``x[t, p0 + j] - h[j]`` over rows ``t0 <= t < t1``."""
    P = p1 - p0
    for j in range(P):
        s[j] = 0.0
        ss[j] = 0.0
    for t in range(t0, t1):
        xr = x[t, p0:p1]
        for j in range(P):
            u = np.float64(xr[j]) - h[j]
            s[j] += u
            ss[j] += u * u


@numba.njit(**JIT)
def _pair_sums(x, t0, t1, lag, p0, p1, h, s, ss, sxy):
    """Over first tokens ``t0 <= t < t1``: ``s``, ``ss`` = sums of ``u = x[t] - h`` and ``u^2`` (set), ``sxy`` += u v.

    ``v = x[t + lag] - h``. Three accumulators per probe: the loop is bound by
    their stores, not by reading ``x``.
    """
    P = p1 - p0
    for j in range(P):
        s[j] = 0.0
        ss[j] = 0.0
    for t in range(t0, t1):
        xr = x[t, p0:p1]  # row views: LLVM vectorises these loops, not x[t, p0 + j]
        yr = x[t + lag, p0:p1]
        for j in range(P):
            u = np.float64(xr[j]) - h[j]
            v = np.float64(yr[j]) - h[j]
            s[j] += u
            ss[j] += u * u
            sxy[j] += u * v


@numba.njit(**JIT)
def lag_range(x, offsets, group, lag, first_stop, ref, acc, s0, s1, p0, p1):
    """Single-lag moments of segments ``s0:s1`` and probes ``p0:p1`` into ``acc[:, :, 0, :]``, one pass.

    Parameters
    ----------
    x : float32/float64 (n_tokens, n_probes), C-contiguous
    offsets : int64 (n_segments + 1,)
    group : int64 (n_segments,), output group of each segment
    lag : int >= 0
    first_stop : int, only pairs whose first token is < first_stop count
    ref : float64 (n_probes,), the means in ``acc`` are relative to it (see :func:`reference`)
    acc : float64 (n_groups, 6, 1, n_probes), merged into (segments in order)
    s0, s1, p0, p1 : the segments and probes to do

    The pass over the pairs ``(t, t + lag)`` of a segment keeps three float64
    accumulators per probe (sum and sum of squares of ``x[t]``, and the cross
    product), in two parts: first tokens in the segment's first ``lag`` rows,
    and the rest. The sums of ``x[t + lag]`` are the second part plus the
    ``lag`` rows after the last first token (still in cache): no subtraction,
    so a spike in the first rows cannot cancel digits away. The loop is bound by
    the accumulator stores, so three instead of five is what brings it near the
    speed of reading ``x``.
    """
    P = p1 - p0
    h = np.empty(P)
    sx = np.empty(P)
    sxx = np.empty(P)
    sxy = np.empty(P)
    hs = np.empty(P)
    hss = np.empty(P)
    ts = np.empty(P)
    tss = np.empty(P)
    buf = np.empty(SHIFT_SAMPLE)
    for s in range(s0, s1):
        a = offsets[s]
        b = offsets[s + 1]
        e = min(b - lag, first_stop)
        if e <= a:
            continue
        g = group[s]
        shifts(x, a, b, p0, p1, h, buf)
        for j in range(P):
            sxy[j] = 0.0
        # pairs with first token in the first `lag` rows (x-side only) and in the rest (x- and y-side)
        c = min(a + lag, e)
        _pair_sums(x, a, c, lag, p0, p1, h, hs, hss, sxy)
        _pair_sums(x, c, e, lag, p0, p1, h, sx, sxx, sxy)
        m = e - a
        if lag <= m:  # y rows [a + lag, e + lag) = x rows [a + lag, e) and the `lag` rows from e
            _row_sums(x, e, e + lag, p0, p1, h, ts, tss)
            for j in range(P):
                ts[j] += sx[j]
                tss[j] += sxx[j]
        else:
            _row_sums(x, a + lag, e + lag, p0, p1, h, ts, tss)
        for j in range(P):  # x side: all first tokens
            sx[j] += hs[j]
            sxx[j] += hss[j]
        fm = np.float64(m)
        for j in range(P):
            if finite(sxx[j] + tss[j]):
                _merge_sums(acc, g, 0, p0 + j, fm, h[j] - ref[p0 + j], sx[j], ts[j], sxx[j], tss[j], sxy[j])
            else:  # a NaN/inf somewhere in this segment and probe: redo it masked
                _masked_lag(x, a, b, e, lag, p0 + j, acc, g, 0, ref[p0 + j])


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
def _merge_lags(acc, g, p, h, M, SX, SY, SXX, SYY, SXY):
    """Merge per-lag raw sums about ``h`` into ``acc[g, :, p, :]`` (lag-last layout), branch-free.

    A lag with no pairs (``M = 0``) leaves ``acc`` unchanged; an empty ``acc``
    (n = 0) takes the new moments as they are: the same Chan et al. update as
    :func:`_merge`, written so that the loop over lags vectorises.
    """
    A0 = acc[g, 0, p]
    A1 = acc[g, 1, p]
    A2 = acc[g, 2, p]
    A3 = acc[g, 3, p]
    A4 = acc[g, 4, p]
    A5 = acc[g, 5, p]
    for L in range(M.shape[0]):
        m = M[L]
        inv = 1.0 / max(m, 1.0)
        ax = SX[L] * inv
        ay = SY[L] * inv
        cxx = SXX[L] - SX[L] * ax
        cyy = SYY[L] - SY[L] * ay
        cxy = SXY[L] - SX[L] * ay
        na = A0[L]
        nn = na + m
        fb = m / max(nn, 1.0)
        fc = na * fb
        dx = (h + ax) - A1[L]
        dy = (h + ay) - A2[L]
        A0[L] = nn
        A1[L] += dx * fb
        A2[L] += dy * fb
        A3[L] += cxx + dx * dx * fc
        A4[L] += cyy + dy * dy * fc
        A5[L] += cxy + dx * dy * fc


@numba.njit(**JIT)
def _max_segment(offsets):
    longest = 0
    for s in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[s + 1] - offsets[s])
    return longest


@numba.njit(**JIT)
def profile_range(x, offsets, group, max_lag, first_stop, ref, acc, s0, s1, p0, p1):
    """Moments for every lag 0..max_lag of segments ``s0:s1`` and probes ``p0:p1`` into ``acc``.

    ``acc`` has the lag-last layout (n_groups, 6, n_probes, max_lag + 1) so that
    the per-lag merge of each (segment, probe) runs over contiguous memory; the
    NumPy wrapper transposes it to (n_groups, 6, max_lag + 1, n_probes).
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
                for L in range(top + 1):
                    m = min(n - L, f)
                    M[L] = m
                    SX[L] = c1[m]
                    SY[L] = e1[L] - e1[m + L]
                    SXX[L] = c2[m]
                    SYY[L] = e2[L] - e2[m + L]
                    SXY[L] = xc[L]
                for L in range(top + 1, nl):
                    M[L] = 0.0
                    SX[L] = 0.0
                    SY[L] = 0.0
                    SXX[L] = 0.0
                    SYY[L] = 0.0
                    SXY[L] = 0.0
                _merge_lags(acc, g, p, h[j] - ref[p], M, SX, SY, SXX, SYY, SXY)


@numba.njit(**JIT)
def moments_to_r(acc):
    """Pearson r from moments (n_groups, 6, n_lags, P) -> (n_groups, n_lags, P); NaN if undefined."""
    G, _, nl, P = acc.shape
    r = np.empty((G, nl, P))
    for g in range(G):
        for l in range(nl):
            for p in range(P):
                cxx = acc[g, 3, l, p]
                cyy = acc[g, 4, l, p]
                # sqrt of each factor: cxx * cyy underflows to 0 for tiny but valid variances
                den = math.sqrt(cxx) * math.sqrt(cyy) if cxx > 0.0 and cyy > 0.0 else 0.0
                if acc[g, 0, l, p] >= 2.0 and den > 0.0:
                    v = acc[g, 5, l, p] / den
                    r[g, l, p] = min(1.0, max(-1.0, v))
                else:
                    r[g, l, p] = np.nan
    return r
