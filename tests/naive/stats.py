"""Slow, obviously correct twins of the statistical core (emostats.stats)."""

import itertools
import math

import numpy as np


def mean_difference(values, mask):
    return values[mask].mean() - values[~mask].mean()


def permutation_exact(values, mask, alternative="greater"):
    """Exact permutation p of mean(in) - mean(out): every labelling with the same k.

    Two-sided counts |T*| >= |T|. Ties compared with a 1e-9 relative slack.
    """
    values = np.asarray(values, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    keep = ~np.isnan(values)
    values, mask = values[keep], mask[keep]
    n, k = values.size, int(mask.sum())
    t_obs = mean_difference(values, mask)
    scale = np.abs(values - values.mean()).max() + 1e-300
    count = total = 0
    for combo in itertools.combinations(range(n), k):
        m = np.zeros(n, dtype=bool)
        m[list(combo)] = True
        t = mean_difference(values, m)
        total += 1
        if alternative == "greater":
            count += t >= t_obs - 1e-9 * scale
        elif alternative == "less":
            count += t <= t_obs + 1e-9 * scale
        else:
            count += abs(t) >= abs(t_obs) - 1e-9 * scale
    return count / total, t_obs, total


def average_ranks(a):
    """1-based average ranks by counting: rank = #less + (#equal + 1) / 2."""
    a = np.asarray(a, dtype=float)
    return np.array([(a < v).sum() + ((a == v).sum() + 1) / 2 for v in a])


def pearson(x, y):
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    dx, dy = x - x.mean(), y - y.mean()
    return float((dx * dy).sum() / math.sqrt((dx * dx).sum() * (dy * dy).sum())), int(keep.sum())


def spearman(x, y):
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    return pearson(average_ranks(x[keep]), average_ranks(y[keep]))


def correlation_exact(x, y, method="spearman", alternative="two-sided"):
    """Exact permutation p of a correlation over all n! orderings of y."""
    corr = spearman if method == "spearman" else pearson
    r_obs = corr(x, y)[0]
    y = np.asarray(y, dtype=float)
    count = total = 0
    for perm in itertools.permutations(range(len(y))):
        r = corr(x, y[list(perm)])[0]
        total += 1
        if alternative == "greater":
            count += r >= r_obs - 1e-9
        elif alternative == "less":
            count += r <= r_obs + 1e-9
        else:
            count += abs(r) >= abs(r_obs) - 1e-9
    return count / total


def bh(p, method="bh"):
    """BH/BY by the textbook formula q_i = min_{j: p_j >= p_i} m c p_j / rank_j, NaN left out."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    vals = p[ok]
    m = vals.size
    c = sum(1.0 / i for i in range(1, m + 1)) if method == "by" else 1.0
    order = sorted(range(m), key=lambda i: vals[i])
    rank = {i: r + 1 for r, i in enumerate(order)}
    out = []
    for i in range(m):
        out.append(min(1.0, min(m * c * vals[j] / rank[j] for j in range(m) if rank[j] >= rank[i])))
    q[ok] = out
    return q


def wilcoxon_exact(d, alternative="two-sided"):
    """W+ and its p over all 2**m sign patterns of the nonzero |d| ranks (zeros dropped)."""
    d = np.asarray(d, dtype=float)
    d = d[(d != 0) & ~np.isnan(d)]
    ranks = average_ranks(np.abs(d))
    w = ranks[d > 0].sum()
    ge = le = total = 0
    for signs in itertools.product((0, 1), repeat=d.size):
        s = (ranks * np.array(signs)).sum()
        ge += s >= w - 1e-9
        le += s <= w + 1e-9
        total += 1
    if alternative == "greater":
        return w, ge / total
    if alternative == "less":
        return w, le / total
    return w, min(1.0, 2 * min(ge, le) / total)
