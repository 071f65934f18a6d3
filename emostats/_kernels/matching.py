"""Kernel: the n candidates nearest to each target in one scalar (variance explained).

Candidates arrive sorted by value (ties in index order); a target's nearest
candidates form a contiguous run of that order around the target's insertion
point. Two pointers walk out from it to find the distance ``D`` of the n-th
nearest; the run is widened to every candidate at distance ``D`` (floating
point subtraction is monotone, so the run stays contiguous), and the run is
ordered by (distance, candidate index) so ties go to the lower index.
"""

import numba
import numpy as np

from ._config import PJIT


@numba.njit(**PJIT)
def nearest_values(sorted_values, sorted_index, targets, exclude, n, n_threads, out):
    """For each target, the indices of the ``n`` nearest candidates, nearest first.

    Parameters
    ----------
    sorted_values : float64 (m,)
        Candidate values, ascending, finite.
    sorted_index : int64 (m,)
        The candidate index of each sorted value (ascending within equal values).
    targets : float64 (t,)
        Target values; NaN targets get -1 everywhere.
    exclude : int64 (t,)
        A candidate index never matched with the target (itself), or -1.
    n : int
        Matches per target; the caller guarantees ``m - (exclude >= 0) >= n``.
    n_threads : int
        Fixed work split (results do not depend on it).
    out : int64 (t, n)
        Filled with candidate indices.
    """
    m = sorted_values.shape[0]
    n_t = targets.shape[0]
    per = (n_t + n_threads - 1) // n_threads
    for chunk in numba.prange(n_threads):
        for i in range(chunk * per, min(n_t, (chunk + 1) * per)):
            t = targets[i]
            if np.isnan(t):
                out[i, :] = -1
                continue
            me = exclude[i]
            # insertion point: first position with value >= t
            a, b = 0, m
            while a < b:
                mid = (a + b) // 2
                if sorted_values[mid] < t:
                    a = mid + 1
                else:
                    b = mid
            lo = a - 1
            hi = a
            count = 0
            dist = 0.0
            while count < n:
                if lo >= 0 and sorted_index[lo] == me:
                    lo -= 1
                    continue
                if hi < m and sorted_index[hi] == me:
                    hi += 1
                    continue
                dl = t - sorted_values[lo] if lo >= 0 else np.inf
                dr = sorted_values[hi] - t if hi < m else np.inf
                if dl <= dr:
                    dist = dl
                    lo -= 1
                else:
                    dist = dr
                    hi += 1
                count += 1
            while lo >= 0 and t - sorted_values[lo] <= dist:
                lo -= 1
            while hi < m and sorted_values[hi] - t <= dist:
                hi += 1
            size = hi - lo - 1
            idx = np.empty(size, dtype=np.int64)
            d = np.empty(size, dtype=np.float64)
            k = 0
            for pos in range(lo + 1, hi):
                if sorted_index[pos] == me:
                    continue
                idx[k] = sorted_index[pos]
                d[k] = abs(sorted_values[pos] - t)
                k += 1
            idx = idx[:k]
            d = d[:k]
            by_index = np.argsort(idx)
            idx = idx[by_index]
            d = d[by_index]
            by_dist = np.argsort(d, kind="mergesort")
            for j in range(n):
                out[i, j] = idx[by_dist[j]]
