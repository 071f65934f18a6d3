"""Slow, obviously correct twins of the lag kernels (issue 4).

Each lag is handled on its own with a global shift of the whole array and a
same-segment mask, then a float64 two-pass Pearson r on the valid pairs.
"""

import numpy as np


def segment_ids(offsets):
    """Segment index of every token."""
    offsets = np.asarray(offsets)
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def lag_pairs(x, offsets, lag):
    """(first, second, same_segment) arrays for lag ``lag`` by a global shift."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    seg = segment_ids(offsets)
    n = x.shape[0]
    if lag >= n:
        return x[:0], x[:0], np.zeros(0, bool)
    return x[: n - lag], x[lag:], seg[: n - lag] == seg[lag:]


def lag_r(x, offsets, lag):
    """(r per column, n_pairs, n_masked per column): two-pass Pearson per column."""
    first, second, same = lag_pairs(x, offsets, lag)
    n_pairs = int(same.sum())
    r = np.full(first.shape[1], np.nan)
    n_masked = np.zeros(first.shape[1], dtype=np.int64)
    for p in range(first.shape[1]):
        a = first[same, p]
        b = second[same, p]
        ok = np.isfinite(a) & np.isfinite(b)
        n_masked[p] = n_pairs - ok.sum()
        a, b = a[ok], b[ok]
        if a.size < 2:
            continue
        da = a - a.mean()
        db = b - b.mean()
        sxx, syy = (da * da).sum(), (db * db).sum()
        if sxx > 0 and syy > 0:
            r[p] = (da * db).sum() / (np.sqrt(sxx) * np.sqrt(syy))  # sqrt(sxx * syy) underflows near 1e-94
    return r, n_pairs, n_masked


def profile_r(x, offsets, max_lag):
    """:func:`lag_r` for lags 0..max_lag: (r (lag, col), n_pairs (lag,), n_masked (lag, col))."""
    out = [lag_r(x, offsets, lag) for lag in range(max_lag + 1)]
    return (np.array([o[0] for o in out]), np.array([o[1] for o in out]),
            np.array([o[2] for o in out]))


def lag_r_per_turn(x, offsets, lag):
    """The per-turn loop a user might write: stack each segment's pairs, then Pearson."""
    x = np.asarray(x, dtype=np.float64)
    firsts, seconds = [], []
    for a, b in zip(offsets[:-1], offsets[1:]):
        if b - a > lag:
            firsts.append(x[a: b - lag])
            seconds.append(x[a + lag: b])
    f = np.concatenate(firsts) if firsts else x[:0]
    s = np.concatenate(seconds) if seconds else x[:0]
    f = f - f.mean(0)
    s = s - s.mean(0)
    return (f * s).sum(0) / np.sqrt((f * f).sum(0) * (s * s).sum(0))


def trajectories(x, offsets, bins, max_lag):
    """(sums, counts) of shape (bin, tau, col) of sign(z_t) z_{t+tau} by bin of |z_t|."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    return trajectories_given(x, offsets, bins, max_lag, np.nanmean(x, axis=0), np.nanstd(x, axis=0))


def trajectories_given(x, offsets, bins, max_lag, mean, sd):
    """:func:`trajectories` with z = (x - mean) / sd for the given mean and sd (sd <= 0 or NaN: no events)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    sd = np.asarray(sd, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x - mean) / np.where(sd > 0, sd, np.nan)
    seg = segment_ids(offsets)
    n = x.shape[0]
    sums = np.zeros((len(bins), max_lag + 1, x.shape[1]))
    counts = np.zeros((len(bins), max_lag + 1, x.shape[1]))
    for k, (lo, hi) in enumerate(bins):
        az = np.abs(z)
        event = np.isfinite(z) & (az >= lo) & (az < hi)
        sign = np.sign(np.nan_to_num(z))
        for tau in range(max_lag + 1):
            if tau >= n:
                break
            same = (seg[: n - tau] == seg[tau:])[:, None]
            later = z[tau:]
            ok = event[: n - tau] & same & np.isfinite(later)
            sums[k, tau] = np.where(ok, sign[: n - tau] * np.nan_to_num(later), 0.0).sum(0)
            counts[k, tau] = ok.sum(0)
    return sums, counts
