"""Ranking kernels: average ranks with ties (used by the correlation kernels of
:mod:`emostats._kernels.correlation`).

Two ranking routes exist. Rows without NaN are ranked from an argsort done by
NumPy in the caller (NumPy's SIMD sort is the fastest sort available here) and
:func:`ranks_from_order` averages ties. Rows with NaN are compacted to their
complete pairs inside the kernel and ranked by :func:`average_ranks`, an LSD
radix sort on the order-preserving integer image of the floats.
"""

import numba
import numpy as np

from ._config import JIT, PJIT

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
