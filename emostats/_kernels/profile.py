"""Profile kernel: pooled moments of the pairs (x[t], x[t + L]) for every lag L = 0..max_lag.

Layout of the moments, valid pairs, shifts and the merge: :mod:`emostats._kernels.moments`.

Speed
-----
The profile transposes one segment and a block of probes at a time into
float64 and computes every lagged cross-product with a register-blocked loop
(eight lags per sweep); the sums of ``x[t]`` and their squares come from prefix
sums, those of ``x[t + L]`` from suffix sums (so that, without ``first_stop``,
none is a difference). A (segment, probe) with a non-finite value is redone on
a masked path. The NumPy layer splits the work over probes (it is bound by
multiply-adds, not by reading ``x``); the result is the same bits for any
number of threads.
"""

import numba
import numpy as np

from ._config import JIT
from .moments import BLOCK, SHIFT_SAMPLE, _max_segment, finite, shift_of, shifts


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
