"""Slow, obviously correct twin of emostats/_kernels/firing.py (sets of feature ids)."""

import numpy as np


def firing_counts(index, offsets, lag, n_features):
    """Counts per feature with Python sets: a row is the set of its ids >= 0.

    Returns a dict of int64 arrays ``n_fires`` (over all tokens), ``n_t``,
    ``n_tl``, ``n_both`` (over valid t: t and t + lag in one segment) and the
    scalar ``n_valid``.
    """
    rows = [set(int(f) for f in row if f >= 0) for row in np.asarray(index)]
    out = {name: np.zeros(n_features, dtype=np.int64) for name in ("n_fires", "n_t", "n_tl", "n_both")}
    n_valid = 0
    offsets = [int(o) for o in offsets]
    for start, stop in zip(offsets[:-1], offsets[1:]):
        for t in range(start, stop):
            for f in rows[t]:
                out["n_fires"][f] += 1
        for t in range(start, stop - lag):
            n_valid += 1
            for f in rows[t]:
                out["n_t"][f] += 1
            for f in rows[t + lag]:
                out["n_tl"][f] += 1
            for f in rows[t] & rows[t + lag]:
                out["n_both"][f] += 1
    out["n_valid"] = n_valid
    return out


def firing_persistence(index, offsets, lag, n_features, min_fires):
    """P(fire t+L | fire t) - P(fire t+L | not fire t) from :func:`firing_counts` (NaN when undefined)."""
    c = firing_counts(index, offsets, lag, n_features)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_fire = c["n_both"] / c["n_t"]
        p_not = (c["n_tl"] - c["n_both"]) / (c["n_valid"] - c["n_t"])
    c["p_given_fire"] = np.where(c["n_t"] > 0, p_fire, np.nan)
    c["p_given_not"] = np.where(c["n_valid"] - c["n_t"] > 0, p_not, np.nan)
    c["persistence"] = c["p_given_fire"] - c["p_given_not"]
    c["included"] = c["n_fires"] >= min_fires
    return c


def feature_density(index, n_features):
    """Dense reference: a (tokens, features) boolean matrix, column means."""
    index = np.asarray(index)
    dense = np.zeros((index.shape[0], n_features), dtype=bool)
    for t, row in enumerate(index):
        for f in row:
            if f >= 0:
                dense[t, f] = True
    return dense.mean(axis=0)
