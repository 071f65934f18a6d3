"""Weighted merges of per-conversation sufficient statistics (NumPy level).

Layouts follow :mod:`emostats._lagstats`: a *moments* array is
``(n_groups, 6, n_lags, n_series)`` holding n, mean x, mean y and the centred
sums Cxx, Cyy, Cxy of the lag pairs of each group. A weight matrix ``W``
(replicate, group) merges the groups of every replicate at once with matrix
products (exact, in float64: deviations are taken about the all-group means
first, so large offsets cost no digits)::

    N = W n,   A = W (n dx),   C = W C_g + W (n dx dy) - A_x A_y / N

*Within-turn* statistics (``within`` arrays ``(n_groups, 4, n_lags, n_series)``:
n, Wxx, Wyy, Wxy) are the per-segment centred sums added up per group; they
merge by plain weighted sums.
"""

import numpy as np

from ..errors import EmostatsError

__all__ = ["single_threaded_blas", "merge_weighted", "r_from", "within_from_segments", "merge_within", "within_r",
           "merge_matrices", "merge_variances", "PackedMerge"]


def single_threaded_blas():
    """Context limiting BLAS to one thread: many small products on shared cores run many-fold faster."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _check(M, W, what="moments"):
    M = np.asarray(M, dtype=np.float64)
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    if W.shape[1] != M.shape[0]:
        raise EmostatsError(f"{what}: {M.shape[0]} groups but weights for {W.shape[1]}")
    return M, W


def merge_weighted(M, W):
    """Moments (R, 6, n_lags, P) of each replicate ``W[r]`` from per-group moments ``M`` (G, 6, n_lags, P).

    Examples
    --------
    >>> from emostats._lagstats import lag_moments, merge_moments
    >>> x = np.arange(12.0)[:, None] ** 1.3
    >>> M = lag_moments(x, [0, 5, 12], 1, groups=[0, 1], n_groups=2)
    >>> bool(np.allclose(merge_weighted(M, [[1, 1]])[0], merge_moments(M[:1], M[1:])[0]))
    True
    """
    M, W = _check(M, W)
    G = M.shape[0]
    n = M[:, 0]
    tot = n.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_x = np.where(tot > 0, (n * M[:, 1]).sum(axis=0) / tot, 0.0)
        ref_y = np.where(tot > 0, (n * M[:, 2]).sum(axis=0) / tot, 0.0)
    dx = np.where(n > 0, M[:, 1] - ref_x, 0.0)
    dy = np.where(n > 0, M[:, 2] - ref_y, 0.0)
    shape = M.shape[2:]
    flat = lambda a: a.reshape(G, -1)  # noqa: E731
    N = W @ flat(n)
    Ax = W @ flat(n * dx)
    Ay = W @ flat(n * dy)
    out = np.empty((W.shape[0], 6) + shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, 0] = N.reshape((-1,) + shape)
        mx = np.where(N > 0, Ax / N, 0.0)
        my = np.where(N > 0, Ay / N, 0.0)
        out[:, 1] = (ref_x.ravel() + mx).reshape((-1,) + shape)
        out[:, 2] = (ref_y.ravel() + my).reshape((-1,) + shape)
        for k, (a, b) in zip((3, 4, 5), ((dx, dx), (dy, dy), (dx, dy))):
            C = W @ flat(M[:, k]) + W @ flat(n * a * b)
            ma, mb = (mx, mx) if k == 3 else (my, my) if k == 4 else (mx, my)
            out[:, k] = (C - N * ma * mb).reshape((-1,) + shape)
    out[:, 1:][np.broadcast_to(out[:, :1] == 0, out[:, 1:].shape)] = np.nan
    return out


def r_from(M):
    """Pearson r (..., n_lags, P) from moments (..., 6, n_lags, P); NaN when n < 2 or a variance is 0."""
    M = np.asarray(M, dtype=np.float64)
    n, cxx, cyy, cxy = M[..., 0, :, :], M[..., 3, :, :], M[..., 4, :, :], M[..., 5, :, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt(np.where(cxx > 0, cxx, np.nan)) * np.sqrt(np.where(cyy > 0, cyy, np.nan))
        r = np.where((n >= 2) & (den > 0), cxy / den, np.nan)
    return np.clip(r, -1.0, 1.0)


def within_from_segments(M_seg, seg_group, n_groups):
    """Per-group within-segment sums (G, 4, n_lags, P): n, Wxx, Wyy, Wxy from per-segment moments.

    Each segment's Cxx, Cyy, Cxy are centred on that segment's own pair means
    (mean of x[t] and of x[t + L] over its pairs), so their sum over segments is
    the within-segment part of the pooled co-moments; the rest is between-segment level.

    Examples
    --------
    >>> from emostats._lagstats import lag_moments
    >>> x = np.array([[0.0], [1.0], [0.0], [10.0], [11.0], [10.0]])
    >>> M = lag_moments(x, [0, 3, 6], 1, groups=[0, 1], n_groups=2)
    >>> within_from_segments(M, [0, 0], 1)[0, :, 0, 0].tolist()
    [4.0, 1.0, 1.0, -1.0]
    """
    M_seg = np.asarray(M_seg, dtype=np.float64)
    seg_group = np.asarray(seg_group, dtype=np.int64)
    if seg_group.shape != (M_seg.shape[0],):
        raise EmostatsError(f"within: {M_seg.shape[0]} segments but {seg_group.shape} group ids")
    out = np.zeros((int(n_groups), 4) + M_seg.shape[2:])
    parts = np.stack([M_seg[:, 0], np.nan_to_num(M_seg[:, 3]), np.nan_to_num(M_seg[:, 4]),
                      np.nan_to_num(M_seg[:, 5])], axis=1)
    parts[:, 1:][np.broadcast_to(parts[:, :1] == 0, parts[:, 1:].shape)] = 0.0
    np.add.at(out, seg_group, parts)
    return out


def merge_within(Wn, W):
    """Within sums (R, 4, n_lags, P) of each replicate: weighted sums of the per-group sums."""
    Wn, W = _check(Wn, W, "within")
    G = Wn.shape[0]
    return (W @ Wn.reshape(G, -1)).reshape((W.shape[0],) + Wn.shape[1:])


def within_r(Wsum):
    """Within-segment r = Wxy / sqrt(Wxx Wyy) (..., n_lags, P)."""
    Wsum = np.asarray(Wsum, dtype=np.float64)
    n, wxx, wyy, wxy = (Wsum[..., k, :, :] for k in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt(np.where(wxx > 0, wxx, np.nan)) * np.sqrt(np.where(wyy > 0, wyy, np.nan))
        return np.clip(np.where((n >= 2) & (den > 0), wxy / den, np.nan), -1.0, 1.0)


def merge_matrices(n, mean_x, mean_y, C, W):
    """Merged centred cross-product matrices (R, P, Q) from per-group ``n`` (G,), means (G, P), (G, Q), ``C`` (G, P, Q).

    Returns ``(N (R,), mean_x (R, P), mean_y (R, Q), C (R, P, Q))``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(10, 2))
    >>> parts = [x[:4], x[4:]]
    >>> n = np.array([len(p) for p in parts], float)
    >>> m = np.stack([p.mean(0) for p in parts])
    >>> C = np.stack([(p - p.mean(0)).T @ (p - p.mean(0)) for p in parts])
    >>> N, mx, _, Cm = merge_matrices(n, m, m, C, [[1, 1]])
    >>> bool(np.allclose(Cm[0] / N[0], np.cov(x.T, ddof=0)))
    True
    """
    n = np.asarray(n, dtype=np.float64)
    C, W = _check(C, W, "matrices")
    G = n.shape[0]
    tot = n.sum()
    with np.errstate(invalid="ignore", divide="ignore"):  # no valid token at all: every entry NaN
        ref_x = (n[:, None] * mean_x).sum(0) / tot
        ref_y = (n[:, None] * mean_y).sum(0) / tot
    dx = mean_x - ref_x
    dy = mean_y - ref_y
    N = W @ n
    Ax = W @ (n[:, None] * dx)
    Ay = W @ (n[:, None] * dy)
    P, Q = C.shape[1], C.shape[2]
    S = W @ C.reshape(G, -1) + W @ (n[:, None, None] * dx[:, :, None] * dy[:, None, :]).reshape(G, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = Ax / N[:, None]
        my = Ay / N[:, None]
    out = S.reshape(-1, P, Q) - N[:, None, None] * mx[:, :, None] * my[:, None, :]
    return N, ref_x + mx, ref_y + my, out


def merge_variances(n, mean, m2, W):
    """Merged (N, mean, M2) per replicate from per-group count (G,), means (G, P) and centred sums of squares (G, P)."""
    n = np.asarray(n, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    m2 = np.asarray(m2, dtype=np.float64)
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    tot = n.sum()
    with np.errstate(invalid="ignore", divide="ignore"):  # no valid token at all: every entry NaN
        ref = (n[:, None] * mean).sum(0) / tot
    d = mean - ref
    N = W @ n
    A = W @ (n[:, None] * d)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = A / N[:, None]
    S = W @ m2 + W @ (n[:, None] * d * d) - N[:, None] * mu * mu
    return N, ref + mu, S


class PackedMerge:
    """Several per-group cross-product matrices merged for many weight rows in one product.

    Each entry is ``(n (G,), mean_x (G, P), mean_y (G, P), C (G, P, P))``, centred
    sums about the group means, as for :func:`merge_matrices`. The term
    ``K_g = C_g + n_g dx_g dy_g'`` (deviations from the all-group means) is
    formed once; a replicate is then ``W K - N m_x m_y'``, the arithmetic of
    :func:`merge_matrices`. The results are only used in quadratic forms, so
    each is symmetrised and kept as its upper triangle: one product of
    ``W`` with (G, about 2 P^2) numbers gives every matrix of a block.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n, m = np.array([4.0, 6.0]), rng.normal(size=(2, 3))
    >>> C = np.stack([a @ a.T for a in rng.normal(size=(2, 3, 3))])
    >>> W = np.array([[1.0, 2.0], [0.0, 2.0]])
    >>> _, (got,) = PackedMerge([(n, m, m, C)]).merge(W)
    >>> bool(np.allclose(got, merge_matrices(n, m, m, C, W)[3]))
    True
    """

    def __init__(self, entries):
        self.P = entries[0][3].shape[1]
        self.iu = np.triu_indices(self.P)
        cols, self.spans = [], []
        for n, mx, my, C in entries:
            n = np.asarray(n, dtype=np.float64)
            tot = n.sum()
            with np.errstate(invalid="ignore", divide="ignore"):  # no valid token at all: every entry NaN
                ref_x, ref_y = (n[:, None] * mx).sum(0) / tot, (n[:, None] * my).sum(0) / tot
            dx, dy = mx - ref_x, my - ref_y
            K = np.asarray(C, dtype=np.float64) + n[:, None, None] * dx[:, :, None] * dy[:, None, :]
            K = (K + K.transpose(0, 2, 1)) / 2
            start = sum(c.shape[1] for c in cols)
            cols += [n[:, None], n[:, None] * dx, n[:, None] * dy, K[:, self.iu[0], self.iu[1]]]
            self.spans.append((start, ref_x, ref_y))
        self.Z = np.concatenate(cols, axis=1)

    def merge(self, W):
        """``(N (R, n_entries), [C (R, P, P) symmetric centred sums per entry])`` for weight rows ``W`` (R, G)."""
        W = np.atleast_2d(np.asarray(W, dtype=np.float64))
        S = W @ self.Z
        P, T = self.P, self.iu[0].size
        Ns, out = [], []
        for start, _, _ in self.spans:
            N = S[:, start]
            with np.errstate(invalid="ignore", divide="ignore"):
                mx = S[:, start + 1:start + 1 + P] / N[:, None]
                my = S[:, start + 1 + P:start + 1 + 2 * P] / N[:, None]
            M = np.empty((W.shape[0], P, P))
            M[:, self.iu[0], self.iu[1]] = S[:, start + 1 + 2 * P:start + 1 + 2 * P + T]
            M[:, self.iu[1], self.iu[0]] = M[:, self.iu[0], self.iu[1]]
            outer = mx[:, :, None] * my[:, None, :]
            M -= N[:, None, None] * (outer + outer.transpose(0, 2, 1)) / 2
            Ns.append(N)
            out.append(M)
        return np.stack(Ns, axis=1), out
