"""Single-lag kernel: pooled moments of the pairs (x[t], x[t + L]) in one pass over ``x``.

Layout of the moments, valid pairs, shifts and the merge: :mod:`emostats._kernels.moments`
(its names are re-exported here for the other kernels).

Speed
-----
A single lag is one pass over the array with probes in the inner (contiguous)
loop and three float64 accumulators per probe (see :func:`lag_range`). A
(segment, probe) with a non-finite value is redone on a masked path.

The kernel works on a range of segments ``s0:s1`` and of probes ``p0:p1`` and
releases the GIL (``nogil``). The NumPy layer (``emostats._lagstats``) splits
the *segments* into pieces whose number depends only on the input, gives each
piece its own accumulator, runs the pieces on Python threads and merges them in
piece order (:func:`merge_arrays`): each thread streams whole rows of its own
part of the array, and the result is the same bits for any number of threads.
(Threads rather than ``prange``: no second, parallel compilation of every
kernel, no OpenMP spin-waiting on a loaded machine, and safe to call from
dask's worker threads.)
"""

import numba
import numpy as np

from ._config import JIT
from .moments import (BLOCK, CXX, CXY, CYY, MX, MY, N, SHIFT_SAMPLE, _max_segment, _merge, _merge_sums,  # noqa: F401
                      finite, merge_arrays, moments_to_r, reference, shift_of, shifts)


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
