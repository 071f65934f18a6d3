"""A small counter-free random generator for kernels: xoshiro256** seeded by splitmix64.

Each independent stream (one grouping of a permutation test, one row of a
correlation) gets its own 64-bit key, computed in Python from the user's seed
(see :func:`emostats.stats._common.stream_key`). The kernel expands the key with
splitmix64 into a 256-bit xoshiro state, so a stream's numbers depend only on
its key: the same seed gives the same bits whichever thread runs the stream.

Bounded integers use Lemire's multiply-and-reject method on the top 32 bits, so
they are exactly uniform (no modulo bias) for bounds below 2**32.
"""

import numba
import numpy as np

from ._config import JIT

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MASK32 = np.uint64(0xFFFFFFFF)
_TWO32 = np.uint64(0x100000000)
_U5 = np.uint64(5)
_U9 = np.uint64(9)


@numba.njit(**JIT)
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@numba.njit(**JIT)
def seed_state(key, state):
    """Fill ``state`` (uint64, length 4) from the 64-bit ``key`` with splitmix64."""
    x = np.uint64(key)
    for i in range(4):
        x = x + _GOLDEN
        z = x
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        state[i] = z ^ (z >> np.uint64(31))


@numba.njit(**JIT)
def next_u64(state):
    """Next 64-bit output of xoshiro256** (advances ``state`` in place)."""
    s0 = state[0]
    s1 = state[1]
    s2 = state[2]
    s3 = state[3]
    result = _rotl(s1 * _U5, 7) * _U9
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    state[0] = s0
    state[1] = s1
    state[2] = s2
    state[3] = s3
    return result


@numba.njit(**JIT)
def bounded(state, bound):
    """A uniform integer in ``[0, bound)`` for ``1 <= bound < 2**32`` (Lemire)."""
    m = np.uint64(bound)
    prod = (next_u64(state) >> np.uint64(32)) * m
    low = prod & _MASK32
    if low < m:
        threshold = (_TWO32 - m) % m
        while low < threshold:
            prod = (next_u64(state) >> np.uint64(32)) * m
            low = prod & _MASK32
    return np.int64(prod >> np.uint64(32))
