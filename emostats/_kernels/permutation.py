"""Kernels of the two-group permutation test (statistic: mean(in) - mean(out)).

The mean difference is an increasing function of the in-group sum ``S`` of the
values: with ``n`` items, ``k`` in the group and total ``A``,
``T = D * n / (k * (n - k))`` where ``D = S - k * A / n``. So the kernels work
with ``D`` and only turn it into ``T`` for the null distribution that the caller
may ask for. Each permutation draws only ``m = min(k, n - k)`` items by a
partial Fisher-Yates shuffle (the out-group when it is the smaller side); a
partial shuffle that starts from any arrangement gives a uniform random subset,
but the work array is reset for every grouping so that a grouping's draws
depend only on its own stream key.

Alternatives are coded ``0`` greater, ``1`` less, ``2`` two-sided (``|D|``).
"""

import numba
import numpy as np

from ._config import JIT, PJIT
from .rng import bounded, seed_state

GREATER, LESS, TWO_SIDED = 0, 1, 2


@numba.njit(**JIT)
def _hit(d, d_obs, alt, tol):
    if alt == 0:
        return d >= d_obs - tol
    if alt == 1:
        return d <= d_obs + tol
    return abs(d) >= abs(d_obs) - tol


@numba.njit(**JIT)
def _tally(s, comp, total, shift, scale, d_obs, alt, tol, null_row, want_null, b):
    """1 if the labelling whose drawn-side sum is ``s`` is at least as extreme; records its T in ``null_row[b]``."""
    if comp:
        s = total - s
    d = s - shift
    if want_null:
        null_row[b] = d * scale
    return 1 if _hit(d, d_obs, alt, tol) else 0


@numba.njit(**JIT)
def _one_grouping(vals, total, k, d_obs, tol, key, n_perm, exact, alt, null_row, want_null, work, idx, state):
    """Count of permutations at least as extreme as the observed one, for one grouping."""
    n = vals.shape[0]
    comp = k > n - k
    m = n - k if comp else k
    shift = k * total / n
    scale = n / (k * (n - k))
    count = 0
    if exact:
        # every m-subset, lexicographic; the observed labelling is among them
        for i in range(m):
            idx[i] = i
        b = 0
        while True:
            s = 0.0
            for i in range(m):
                s += vals[idx[i]]
            count += _tally(s, comp, total, shift, scale, d_obs, alt, tol, null_row, want_null, b)
            b += 1
            i = m - 1
            while i >= 0 and idx[i] == n - m + i:
                i -= 1
            if i < 0:
                break
            idx[i] += 1
            for j in range(i + 1, m):
                idx[j] = idx[j - 1] + 1
        return count
    for i in range(n):
        work[i] = vals[i]
    seed_state(key, state)
    for b in range(n_perm):
        s = 0.0
        for i in range(m):
            j = i + bounded(state, n - i)
            tmp = work[j]
            work[j] = work[i]
            work[i] = tmp
            s += tmp
        count += _tally(s, comp, total, shift, scale, d_obs, alt, tol, null_row, want_null, b)
    return count


@numba.njit(**JIT)
def _chunk(c, vals, total, k, d_obs, tol, keys, n_perm, exact, alt, order, null, n_threads, counts):
    """Groupings ``order[c::n_threads]``: fill their counts (and null rows)."""
    n = vals.shape[0]
    want_null = null.shape[0] > 0
    dummy = np.empty(0, dtype=np.float64)
    work = np.empty(n, dtype=np.float64)
    idx = np.empty(n, dtype=np.int64)
    state = np.empty(4, dtype=np.uint64)
    for o in range(c, order.shape[0], n_threads):
        g = order[o]
        row = null[g] if want_null else dummy
        counts[g] = _one_grouping(vals, total, k[g], d_obs[g], tol[g], keys[g], n_perm,
                                  exact[g], alt, row, want_null, work, idx, state)


@numba.njit(**PJIT)
def permutation_counts(vals, total, k, d_obs, tol, keys, n_perm, exact, alt, order, null, n_threads):
    """Extreme-permutation counts for many groupings of the same items.

    Parameters
    ----------
    vals : float64 (n,)
        Centred values of the items (NaN already removed), in a fixed order.
    total : float
        ``vals.sum()`` (close to 0).
    k : int64 (G,)
        In-group counts, each in ``1..n-1`` for the groupings in ``order``.
    d_obs : float64 (G,)
        Observed ``S - k * total / n``.
    tol : float64 (G,)
        Tolerance of the ``>=`` comparisons (bound on the rounding of the sums).
    keys : uint64 (G,)
        Stream key of each grouping.
    n_perm : int
        Sampled permutations per grouping (ignored where ``exact``).
    exact : bool (G,)
        Enumerate every subset instead of sampling.
    alt : int
        0 greater, 1 less, 2 two-sided.
    order : int64 (T,)
        The groupings to compute, in the order to hand out (most expensive
        first); chunk ``c`` takes ``order[c::n_threads]``. Others keep count 0.
    null : float64 (G, n_perm) or (0, 0)
        Filled with the null statistics (mean differences) when not empty.
    n_threads : int
        Number of fixed chunks (results do not depend on it: every grouping
        draws from its own stream).

    Returns
    -------
    int64 (G,)
        Counts (for exact groupings, over all C(n, k) subsets).
    """
    counts = np.zeros(k.shape[0], dtype=np.int64)
    for c in numba.prange(n_threads):
        _chunk(c, vals, total, k, d_obs, tol, keys, n_perm, exact, alt, order, null, n_threads, counts)
    return counts


@numba.njit(**JIT)
def permutation_counts_serial(vals, total, k, d_obs, tol, keys, n_perm, exact, alt, order, null):
    """:func:`permutation_counts` on the calling thread (small problems: no parallel
    region to start, which costs more than the work under load). Same results."""
    counts = np.zeros(k.shape[0], dtype=np.int64)
    _chunk(0, vals, total, k, d_obs, tol, keys, n_perm, exact, alt, order, null, 1, counts)
    return counts
