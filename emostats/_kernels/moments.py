"""Shared pieces of the lag kernels: the moments layout, their exact merge, per-segment shifts, Pearson r.

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

The kernels using them: the single lag (:mod:`emostats._kernels.lag`), the
profile over lags ``0..max_lag`` (:mod:`emostats._kernels.profile`) and the
trajectories (:mod:`emostats._kernels.trajectory`).
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
def _max_segment(offsets):
    longest = 0
    for s in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[s + 1] - offsets[s])
    return longest


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
