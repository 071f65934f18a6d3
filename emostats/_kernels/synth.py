"""Numba kernels of the synthetic study generator (:mod:`emostats.synth`).

Two kernels, both deterministic for any thread count:

``ar_mix``
    Per segment and per latent direction, the sum of a slow AR(1), a fast AR(1)
    and white noise, each restarted from its stationary distribution at the
    first token of every segment. The Gaussian innovations come in from NumPy
    (one ``numpy.random.Generator`` per chunk of segments), so the kernel holds
    no random state; segments are independent, so the parallel loop over fixed
    blocks of segments never races.

``markov_fill``
    Two-state Markov chains (one per SAE feature) restarted stationary at every
    segment start, simulated by run lengths and written straight into the
    top-k slot arrays ``sae_index``/``sae_value`` (never densified). Random
    numbers come from a counter-based splitmix64 stream keyed by
    ``(seed, feature)``, so a feature's firing pattern does not depend on the
    order in which features are written or on threads.
"""

import numba
import numpy as np

from ._config import JIT, PJIT

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S11 = np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53


@numba.njit(**JIT)
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@numba.njit(**JIT)
def stream_key(seed, stream):
    """A 64-bit key for stream number ``stream`` of ``seed`` (both non-negative ints)."""
    return _mix64(_mix64(np.uint64(seed) + _GOLDEN) ^ (np.uint64(stream) * _MIX2 + _GOLDEN))


@numba.njit(**JIT)
def uniform(key, counter):
    """The ``counter``-th uniform number in (0, 1) of the stream ``key``."""
    z = _mix64(key + np.uint64(counter + 1) * _GOLDEN)
    return (np.float64(z >> _S11) + 0.5) * _TWO_M53


@numba.njit(**JIT)
def _geometric(u, p):
    """Number of Bernoulli(p) trials up to and including the first success (>= 1)."""
    if p >= 1.0:
        return np.int64(1)
    if p <= 0.0:
        return np.int64(1) << np.int64(62)
    d = np.ceil(np.log(u) / np.log1p(-p))
    if d < 1.0:
        return np.int64(1)
    if d > 4.0e18:
        return np.int64(1) << np.int64(62)
    return np.int64(d)


@numba.njit(**PJIT)
def ar_mix(z, offsets, c_slow, c_fast, c_white, phi_slow, phi_fast, n_blocks, out, col0):
    """Fill ``out[t, col0 + j]`` with c_slow[j]*a + c_fast[j]*b + c_white[j]*e per segment.

    Parameters
    ----------
    z : float32 array (3, n, m)
        Standard normal innovations for the slow, fast and white parts.
    offsets : int64 array (n_segments + 1,)
        CSR segment offsets within this block of tokens.
    c_slow, c_fast, c_white : float64 arrays (m,)
        Standard deviations of the three parts of each latent direction.
    phi_slow, phi_fast : float
        AR(1) coefficients; each AR part has unit stationary variance.
    n_blocks : int
        Number of fixed blocks of segments run in parallel.
    out : float64 array (n, >= col0 + m)
    col0 : int
        First output column.
    """
    n_seg = offsets.shape[0] - 1
    m = z.shape[2]
    ss = np.sqrt(1.0 - phi_slow * phi_slow)
    sf = np.sqrt(1.0 - phi_fast * phi_fast)
    per = (n_seg + n_blocks - 1) // n_blocks
    for blk in numba.prange(n_blocks):
        a = np.empty(m)
        b = np.empty(m)
        for s in range(blk * per, min(n_seg, (blk + 1) * per)):
            start = offsets[s]
            stop = offsets[s + 1]
            for j in range(m):
                a[j] = z[0, start, j]
                b[j] = z[1, start, j]
                out[start, col0 + j] = c_slow[j] * a[j] + c_fast[j] * b[j] + c_white[j] * z[2, start, j]
            for t in range(start + 1, stop):
                for j in range(m):
                    a[j] = phi_slow * a[j] + ss * z[0, t, j]
                    b[j] = phi_fast * b[j] + sf * z[1, t, j]
                    out[t, col0 + j] = c_slow[j] * a[j] + c_fast[j] * b[j] + c_white[j] * z[2, t, j]


@numba.njit(**JIT)
def _next_switch(t, starts, ns_cum, n, n_nonstart, p_nonstart, p_start, key, counter):
    """First token after ``t`` at which the chain changes state (n when none).

    Non-start tokens switch with probability ``p_nonstart``; segment starts with
    ``p_start`` (the restart draws a fresh stationary state). All trials are
    independent, so the first switch is the earlier of two geometric waits.
    """
    n_seg = starts.shape[0]
    best = n
    # next switch among non-start tokens after t
    d = _geometric(uniform(key, counter), p_nonstart)
    # non-start tokens in [0, t + 1): (t + 1) - number of starts <= t
    n_starts_le = np.searchsorted(starts, t, side="right")
    q = (t + 1 - n_starts_le) + d - 1  # 0-based index among non-start tokens
    if q < n_nonstart:
        s = np.searchsorted(ns_cum, q, side="right") - 1
        best = q + s + 1
    # next switch among segment starts after t
    g = _geometric(uniform(key, counter + 1), p_start)
    j = n_starts_le + g - 1
    if j < n_seg and starts[j] < best:
        best = starts[j]
    return best


@numba.njit(**JIT)
def markov_fill(offsets, order, pi, alpha, beta, value_scale, seed, index, value, count):
    """Write the firing runs of every feature into the top-k slots.

    Feature ``f`` is a two-state Markov chain with P(off->on) = alpha[f],
    P(on->off) = beta[f] within a segment, and a fresh state drawn with
    P(on) = pi[f] = alpha / (alpha + beta) at every segment start. Features are
    written in the order ``order``; a token whose ``k`` slots are full drops
    further firings (counted in the return value). ``count[t]`` is the number
    of slots used at token ``t``.

    Returns
    -------
    (n_fired, n_dropped) : int64, int64
        Firings simulated and firings dropped because all slots were full.
    """
    n = offsets[offsets.shape[0] - 1]
    k = index.shape[1]
    starts = offsets[:-1]
    n_seg = starts.shape[0]
    ns_cum = starts - np.arange(n_seg)
    n_nonstart = n - n_seg
    fired = np.int64(0)
    dropped = np.int64(0)
    for f in order:
        key = stream_key(seed, f)
        counter = np.int64(0)
        on = uniform(key, counter) < pi[f]
        counter += 1
        t = np.int64(0)
        while t < n:
            if on:
                nxt = _next_switch(t, starts, ns_cum, n, n_nonstart, beta[f], 1.0 - pi[f], key, counter)
            else:
                nxt = _next_switch(t, starts, ns_cum, n, n_nonstart, alpha[f], pi[f], key, counter)
            counter += 2
            if on:
                for u in range(t, nxt):
                    fired += 1
                    c = count[u]
                    if c < k:
                        index[u, c] = f
                        value[u, c] = value_scale[f] * (0.5 + uniform(key, counter))
                        count[u] = c + 1
                    else:
                        dropped += 1
                    counter += 1
            t = nxt
            on = not on
    return fired, dropped

