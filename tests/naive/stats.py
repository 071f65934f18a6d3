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


def kendall(x, y):
    """Kendall's tau-b by the definition: (concordant - discordant) / sqrt((n0 - n1)(n0 - n2))."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = x.size
    s = tx = ty = 0
    for i, j in itertools.combinations(range(n), 2):
        a, b = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        s += a * b
        tx += a != 0
        ty += b != 0
    return (s / math.sqrt(tx * ty) if tx and ty else float("nan")), int(n)


def inversions_distribution(n):
    """Number of permutations of n with k inversions, k = 0..n(n-1)/2, by enumeration."""
    counts = np.zeros(n * (n - 1) // 2 + 1)
    for perm in itertools.permutations(range(n)):
        k = sum(perm[i] > perm[j] for i, j in itertools.combinations(range(n), 2))
        counts[k] += 1
    return counts


def subset_sums(n):
    """Number of subsets of {1..n} with each sum (the signed-rank null counts), by enumeration."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    for signs in itertools.product((0, 1), repeat=n):
        counts[sum(i + 1 for i in range(n) if signs[i])] += 1
    return counts


def p_adjust(p, method, n=None):
    """Textbook adjusted p-values (NaN left out; family size n, default the non-NaN count).

    holm: max_{j<=i} (n - j + 1) p_(j); hochberg: min_{j>=i} (n - j + 1) p_(j);
    bonferroni: n p; bh: min_{j>=i} n p_(j) / j; by: bh times sum_{k<=n} 1/k;
    hommel: the closed test of Simes tests, adjusted p_i = max over all index sets I
    containing i (of the family padded with p = 1 to size n) of the Simes p of I.
    All capped at 1.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    vals = p[ok]
    m = vals.size
    n = m if n is None else n
    if n <= 1:
        out[ok] = vals
        return out
    order = sorted(range(m), key=lambda i: vals[i])
    ps = [vals[i] for i in order]
    if method == "hommel":
        full = ps + [1.0] * (n - m)
        adj = []
        for i in range(m):
            worst = 0.0
            others = [j for j in range(n) if j != i]
            for size in range(0, n):
                for rest in itertools.combinations(others, size):
                    sub = sorted([full[i]] + [full[j] for j in rest])
                    k = len(sub)
                    simes = min(k * sub[t] / (t + 1) for t in range(k))
                    worst = max(worst, simes)
            adj.append(min(1.0, worst))
    else:
        c = sum(1.0 / k for k in range(1, n + 1)) if method == "by" else 1.0
        adj = []
        for i in range(m):
            if method == "holm":
                v = max((n - j) * ps[j] for j in range(i + 1))
            elif method == "hochberg":
                v = min((n - j) * ps[j] for j in range(i, m))
            elif method == "bonferroni":
                v = n * ps[i]
            else:
                v = min(c * n * ps[j] / (j + 1) for j in range(i, m))
            adj.append(min(1.0, v))
    res = np.empty(m)
    for rank, i in enumerate(order):
        res[i] = adj[rank]
    out[ok] = res
    return out


def signed_rank_z(x, d, correct, alternative):
    """R's W(d) by the textbook formula on the counted ranks (zeros dropped)."""
    v = np.asarray(x, dtype=float) - d
    v = v[v != 0]
    m = v.size
    ranks = average_ranks(np.abs(v))
    z = ranks[v > 0].sum() - m * (m + 1) / 4
    _, counts = np.unique(np.abs(v), return_counts=True)
    sigma = math.sqrt(m * (m + 1) * (2 * m + 1) / 24 - ((counts ** 3 - counts).sum()) / 48)
    c = 0.0
    if correct:
        c = {"greater": 0.5, "less": -0.5}.get(alternative, 0.5 * np.sign(z))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(z - c) / np.float64(sigma))
