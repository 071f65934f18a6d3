"""Input generators shared by the kernel registry (tests/naive/registry.py) and the tracked
benchmarks (benchmarks/track.py): the same data shapes in tests and timings."""

import numpy as np

def turn_offsets(n_tokens, rng, low=50, high=1501):
    """CSR offsets of turns with lengths uniform in [low, high) covering ``n_tokens``."""
    lengths = rng.integers(low, high, size=n_tokens // max(low, 1) + 1)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    return np.append(offsets[offsets < n_tokens], n_tokens).astype(np.int64)

def activations(n_tokens, n_probes, seed=0, mean=1e4, dtype=np.float32):
    """Benchmark input: ``x`` (n_tokens, n_probes) of mean ``mean`` and sd 1, turns of 50-1,500 tokens."""
    rng = np.random.default_rng(seed)
    offsets = turn_offsets(n_tokens, rng)
    x = rng.standard_normal((n_tokens, n_probes), dtype=np.float32).astype(dtype, copy=False)
    x += dtype(mean)  # activations with a large mean: the kernel must not lose digits
    return x, offsets

def sae_index(n_tokens, k, n_features, seed=0, exponent=1.0):
    """Top-k ids per token with Zipf-like frequencies (duplicates in a row become -1), and turn offsets."""
    rng = np.random.default_rng(seed)
    u = rng.random((n_tokens, k))
    if exponent == 1.0:
        v = 10.0 * np.exp(u * np.log((n_features + 10) / 10.0)) - 10.0
    else:
        a, b = 10.0 ** (1 - exponent), (n_features + 10.0) ** (1 - exponent)
        v = (a + u * (b - a)) ** (1 / (1 - exponent)) - 10.0
    index = np.minimum(v.astype(np.int32), n_features - 1)
    del u, v
    index.sort(axis=1)
    dup = np.zeros(index.shape, dtype=bool)
    dup[:, 1:] = index[:, 1:] == index[:, :-1]
    index[dup] = -1
    ids = rng.permutation(n_features).astype(np.int32)  # frequent ids scattered over the id range
    index = np.where(index >= 0, ids[np.maximum(index, 0)], -1).astype(np.int32)
    return index, turn_offsets(n_tokens, rng)
