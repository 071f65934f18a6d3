"""Variance matching and rank helpers shared by the bootstrap and the placebo (NumPy level).

- :func:`_nearest`: the ``n`` candidates nearest in variance explained, for
  many targets at once (the rule of :func:`emostats.nullmodels.nearest_by_variance`);
- :func:`rowwise_spearman`: Spearman rho of many rows with one vector;
- ``_STAT``: the matched baseline (median or mean, NaN-aware).
"""

import numpy as np

from .._nan import nanmean, nanmedian
from ..errors import EmostatsError

__all__ = ["rowwise_spearman", "DEGENERATE_RTOL"]

#: a PC with eigenvalue at most this times the largest carries only rounding noise (as emotion_pcs)
DEGENERATE_RTOL = 1e-10


def _nearest(variance, candidate_variance, n, threads=None):
    """Indices (T, n) of the ``n`` candidates nearest in variance, nearest first, ties to the lower index.

    The rule of :func:`emostats.nullmodels.nearest_by_variance` (whose kernel
    is tested against it), vectorised over targets for the many small calls of
    the replicates: the ``n`` nearest lie within ``n`` places of a target's
    insertion point in the sorted candidates. NaN candidates never match; NaN
    targets get ``-1``.
    """
    variance = np.asarray(variance, dtype=np.float64)
    cand = np.asarray(candidate_variance, dtype=np.float64)
    pool = np.flatnonzero(np.isfinite(cand))
    if pool.size < n:
        raise EmostatsError(f"variance matching: {pool.size} usable candidates for n={n} matches")
    order = pool[np.argsort(cand[pool], kind="stable")]
    sv = cand[order]
    ins = np.searchsorted(sv, np.nan_to_num(variance), side="left")
    pos = ins[:, None] + np.arange(-n - 1, n + 1)[None, :]  # one beyond the n nearest each side
    inside = (pos >= 0) & (pos < sv.size)
    posc = np.clip(pos, 0, sv.size - 1)
    idx = order[posc]
    dist = np.where(inside, np.abs(sv[posc] - variance[:, None]), np.inf)
    by_index = np.argsort(np.where(inside, idx, np.iinfo(np.int64).max), axis=1, kind="stable")
    idx = np.take_along_axis(idx, by_index, 1)
    dist = np.take_along_axis(dist, by_index, 1)
    by_dist = np.argsort(dist, axis=1, kind="stable")[:, :n]
    out = np.take_along_axis(idx, by_dist, 1)
    # a tie at the n-th distance may reach past the window: redo those targets with the exact kernel
    dn = np.take_along_axis(dist, by_dist[:, -1:], 1)[:, 0]
    edge = np.minimum(np.where(inside[:, 0], np.abs(sv[posc[:, 0]] - variance), np.inf),
                      np.where(inside[:, -1], np.abs(sv[posc[:, -1]] - variance), np.inf))
    redo = np.flatnonzero(np.isfinite(variance) & (edge <= dn))
    if redo.size:
        from ..nullmodels import nearest_by_variance

        out[redo] = nearest_by_variance(variance[redo], cand, n=n, threads=1)
    out[~np.isfinite(variance)] = -1
    return out


def rowwise_spearman(X, y):
    """Spearman rho of each row of ``X`` (R, F) with ``y`` (F,), pairs with a NaN dropped per row.

    Examples
    --------
    >>> from scipy.stats import spearmanr
    >>> X = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 1.0, np.nan, 2.0]])
    >>> y = np.array([1.0, 3.0, 2.0, 2.0])
    >>> bool(np.isclose(rowwise_spearman(X, y)[0], spearmanr(X[0], y)[0]))
    True
    >>> bool(np.isclose(rowwise_spearman(X, y)[1], spearmanr([4, 1, 2], [1, 3, 2])[0]))
    True
    """
    from scipy.stats import rankdata

    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(X) & np.isfinite(y)[None, :]
    out = np.full(X.shape[0], np.nan)
    uniform = (ok == ok[:1]).all() if X.shape[0] else True
    rows = [np.arange(X.shape[0])] if uniform else [np.array([i]) for i in range(X.shape[0])]
    for sel in rows:
        mask = ok[sel[0]]
        if mask.sum() < 3:
            continue
        rx = rankdata(X[np.ix_(sel, np.flatnonzero(mask))], axis=1)
        ry = rankdata(y[mask])
        rx = rx - rx.mean(axis=1, keepdims=True)
        ry = ry - ry.mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            out[sel] = (rx @ ry) / np.sqrt((rx * rx).sum(axis=1) * (ry @ ry))
    return out


def _median(x, axis):
    return nanmedian(x, axis=axis) if np.isnan(x).any() else np.median(x, axis=axis)


def _mean(x, axis):
    return nanmean(x, axis=axis) if np.isnan(x).any() else np.mean(x, axis=axis)


_STAT = {"median": _median, "mean": _mean}
