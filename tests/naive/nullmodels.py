"""Slow, obviously correct twins of the null-model code (emostats/nullmodels/{matching,streamed}.py, geometry.py)."""

import numpy as np


def nearest_by_variance(variance, candidate_variance=None, n=20, valid=None):
    """Brute force: for each target sort every usable candidate by (|difference|, index)."""
    variance = np.asarray(variance, dtype=np.float64)
    self_match = candidate_variance is None
    cand = variance if self_match else np.asarray(candidate_variance, dtype=np.float64)
    usable = np.isfinite(cand) if valid is None else (np.asarray(valid) & np.isfinite(cand))
    out = np.full((variance.size, n), -1, dtype=np.int64)
    for i, t in enumerate(variance):
        if np.isnan(t):
            continue
        keys = []
        for j, c in enumerate(cand):
            if not usable[j] or (self_match and j == i):
                continue
            keys.append((abs(c - t), j))
        keys.sort()
        out[i] = [j for _, j in keys[:n]]
    return out


def variance_matched_residual(values, variance, cand_values, cand_variance, n, stat="median"):
    """Residual with argsort over all candidates (candidates given, no NaN)."""
    values = np.asarray(values, dtype=np.float64)
    cand_values = np.asarray(cand_values, dtype=np.float64)
    idx = np.empty((values.size, n), dtype=np.int64)
    for i, t in enumerate(np.asarray(variance, dtype=np.float64)):
        d = np.abs(np.asarray(cand_variance, dtype=np.float64) - t)
        idx[i] = np.lexsort((np.arange(d.size), d))[:n]
    base = np.median(cand_values[idx], axis=1) if stat == "median" else cand_values[idx].mean(axis=1)
    return values - base, idx


def moments_direct(acts, lags, offsets):
    """Two-pass NumPy moments: all tokens, and per lag the list of valid pairs."""
    acts = np.asarray(acts, dtype=np.float64)
    out = {"n": acts.shape[0], "mean": acts.mean(axis=0), "cov": np.cov(acts.T, ddof=0).reshape(acts.shape[1], -1)}
    for key in ("lag_n", "lag_mean_x", "lag_mean_y", "lag_cxx", "lag_cyy", "lag_cxy"):
        out[key] = []
    for lag in lags:
        xs, ys = [], []
        for s, e in zip(offsets[:-1], offsets[1:]):
            for t in range(s, e - lag):
                xs.append(t)
                ys.append(t + lag)
        x, y = acts[xs], acts[ys]
        mx, my = x.mean(axis=0), y.mean(axis=0)
        out["lag_n"].append(len(xs))
        out["lag_mean_x"].append(mx)
        out["lag_mean_y"].append(my)
        out["lag_cxx"].append((x - mx).T @ (x - mx) / len(xs))
        out["lag_cyy"].append((y - my).T @ (y - my) / len(xs))
        out["lag_cxy"].append((x - mx).T @ (y - my) / len(xs))
    return {k: np.asarray(v) for k, v in out.items()}


def lag_r(series, offsets, lag):
    """Pooled Pearson r of (s[t], s[t+lag]) over pairs inside one segment (1-D series)."""
    xs, ys = [], []
    for s, e in zip(offsets[:-1], offsets[1:]):
        for t in range(s, e - lag):
            xs.append(series[t])
            ys.append(series[t + lag])
    return float(np.corrcoef(xs, ys)[0, 1])


def subspace_fraction_qr(vectors, basis_vectors):
    """||P d|| / ||d|| with P from a QR of the (full-rank) basis."""
    q, _ = np.linalg.qr(np.asarray(basis_vectors, dtype=np.float64).T)
    out = []
    for d in np.asarray(vectors, dtype=np.float64):
        out.append(np.linalg.norm(q @ (q.T @ d)) / np.linalg.norm(d))
    return np.asarray(out)
