"""Trajectory kernels (Figure 2): sign-aligned z at t + tau after a strong z at t.

For probe ``p`` with global mean ``mean[p]`` and ``inv_sd[p] = 1 / sd`` (NaN for a
constant probe), ``z[t] = (x[t, p] - mean[p]) * inv_sd[p]``. A token ``t`` whose
``|z[t]|`` lies in bin ``k`` (``lo[k] <= |z| < hi[k]``) is an *event*; for
``tau = 0..max_lag`` with ``t + tau`` in the same segment and ``z[t + tau]``
finite, the kernel adds ``sign(z[t]) * z[t + tau]`` to ``sums[g, k, p, tau]``
and one to the count. Counts of NaN-free (segment, probe) pairs are kept as a
histogram of the number of successors, ``hist[g, k, p, m - 1]`` (``m`` = how many
of tau = 0..max_lag stay in the segment), which the caller turns into counts
with a reverse cumulative sum; segments with NaN count directly in ``counts``.
Sums and counts are additive, so chunks and groups merge by addition.

Only events whose first token is before ``first_stop`` count (the dask path).
The kernel handles probes ``p0:p1``; the NumPy layer runs probe ranges on
threads, each owning its columns: same bits for any number of threads.
"""

import numba
import numpy as np

from ._config import JIT
from .lag import BLOCK, _max_segment, finite


@numba.njit(**JIT)
def trajectory_range(x, offsets, group, mean, inv_sd, lo, hi, max_lag, first_stop,
                     sums, hist, counts, p0, p1):
    """Accumulate trajectory sums and counts of probes ``p0:p1`` (see module docstring)."""
    longest = _max_segment(offsets)
    B = min(BLOCK, max(p1 - p0, 1))
    nbin = lo.shape[0]
    ntau = max_lag + 1
    z = np.empty((B, longest))
    zz = np.empty(longest)
    mk = np.empty(longest)
    for s in range(offsets.shape[0] - 1):
        a = offsets[s]
        n = offsets[s + 1] - a
        f = min(first_stop, offsets[s + 1]) - a
        if f <= 0 or n <= 0:
            continue
        g = group[s]
        for q0 in range(p0, p1, B):
            nb = min(B, p1 - q0)
            for t in range(n):
                xr = x[a + t, q0:q0 + nb]
                for j in range(nb):
                    z[j, t] = (np.float64(xr[j]) - mean[q0 + j]) * inv_sd[q0 + j]
            for j in range(nb):
                p = q0 + j
                row = z[j]
                total = 0.0
                for t in range(n):
                    total += row[t]
                masked = not finite(total)
                if masked:
                    for t in range(n):
                        v = row[t]
                        if finite(v):
                            zz[t] = v
                            mk[t] = 1.0
                        else:
                            zz[t] = 0.0
                            mk[t] = 0.0
                for t in range(f):
                    zt = row[t]
                    if not finite(zt):
                        continue
                    az = abs(zt)
                    sg = 1.0 if zt > 0.0 else (-1.0 if zt < 0.0 else 0.0)
                    m = min(ntau, n - t)
                    for k in range(nbin):
                        if lo[k] <= az < hi[k]:
                            acc = sums[g, k, p]  # 1-D views keep the tau loops vectorised
                            if masked:
                                cnt = counts[g, k, p]
                                for tau in range(m):
                                    acc[tau] += sg * zz[t + tau]
                                    cnt[tau] += mk[t + tau]
                            else:
                                for tau in range(m):
                                    acc[tau] += sg * row[t + tau]
                                hist[g, k, p, m - 1] += 1.0
