"""NumPy-level lag statistics: validate, call the kernels, merge sufficient statistics.

This is the layer between the Numba kernels (``emostats._kernels.lag``,
``emostats._kernels.profile`` and ``emostats._kernels.trajectory``) and the xarray functions of
:mod:`emostats.persistence`, which re-exports the public names. Everything here
takes plain arrays: ``x`` is ``(n_tokens, n_series)`` float32/float64 and
``offsets`` the CSR segment starts (see :mod:`emostats.segments`).

Sufficient statistics
---------------------
:func:`lag_moments` and :func:`profile_moments` return float64 arrays of shape
``(n_groups, 6, n_lags, n_series)`` holding, per group, lag and series, the
number of valid pairs, the two means and the three centred co-moments (layout
in ``emostats._kernels.moments``). Two such arrays merge *exactly* (up to rounding)
with :func:`merge_moments` (Chan, Golub and LeVeque's pairwise update), so any
split of the tokens, e.g. dask chunks that each count the pairs starting in
them, gives the same r as one pass over everything.
"""

import warnings

import numpy as np

from . import defaults as D
from ._kernels import lag as _lag
from ._kernels import profile as _profile
from ._kernels import trajectory as _traj
from .errors import DegenerateWarning, EmostatsError

__all__ = [
    "lag_correlation", "lag_correlation_profile", "lag_moments", "profile_moments",
    "merge_moments", "moments_r", "pair_counts", "trajectory_sums", "DEFAULT_BINS",
]

#: bins of initial strength |z| of Figure 2 (lower inclusive, upper exclusive); see emostats.defaults
DEFAULT_BINS = D.BINS


def as_series(x, name="x"):
    """``x`` as a C-contiguous 2-D float32/float64 array (1-D becomes one column)."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise EmostatsError(f"{name}: expected a (tokens, series) array, got {x.ndim} dims of shape {x.shape}")
    if x.dtype not in (np.float32, np.float64) or not x.dtype.isnative:
        x = x.astype(np.float64)
    return np.ascontiguousarray(x)


def as_offsets(offsets, n_tokens):
    """Validated int64 CSR offsets for ``n_tokens`` tokens."""
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or offsets.shape[0] < 1 or offsets[0] != 0 or offsets[-1] != n_tokens:
        raise EmostatsError(
            f"offsets: expected CSR segment starts from 0 to n_tokens={n_tokens}, got "
            f"{offsets.shape[0]} values from {offsets[:1].tolist()} to {offsets[-1:].tolist()}; "
            f"build them with emostats.segments.segment_offsets")
    if np.any(np.diff(offsets) < 0):
        raise EmostatsError(f"offsets: must be non-decreasing, first decrease at index "
                            f"{int(np.flatnonzero(np.diff(offsets) < 0)[0])}")
    return offsets


def _groups(groups, n_groups, n_segments):
    if groups is None:
        return np.zeros(n_segments, dtype=np.int64), 1
    groups = np.ascontiguousarray(groups, dtype=np.int64)
    if groups.shape != (n_segments,):
        raise EmostatsError(f"groups: expected one group per segment ({n_segments}), got shape {groups.shape}")
    if n_groups is None:
        n_groups = int(groups.max()) + 1 if n_segments else 1
    if n_segments and (groups.min() < 0 or groups.max() >= n_groups):
        raise EmostatsError(f"groups: ids must lie in [0, {n_groups}), found {groups.min()}..{groups.max()}")
    return groups, int(n_groups)


def _nonneg(value, name):
    value = int(value)
    if value < 0:
        raise EmostatsError(f"{name} must be >= 0, got {value}")
    return value


# the kernels run on threads over pieces of segments (lag, profile) or ranges of probes (trajectories)
from ._threads import SERIAL_WORK, run_pieces, run_ranges  # noqa: E402,F401 (run_ranges: used by decay)


def lag_moments(x, offsets, lag, *, groups=None, n_groups=None, first_stop=None, threads=None):
    """Sufficient statistics of the lag-``lag`` pairs, in one pass over ``x``.

    Parameters
    ----------
    x : array_like (n_tokens, n_series)
    offsets : array_like of int (n_segments + 1,)
    lag : int >= 0
    groups : array_like of int (n_segments,), optional
        Output group of each segment (e.g. its conversation); default one group.
    n_groups : int, optional
    first_stop : int, optional
        Count only pairs whose first token is before this index (default all).
    threads : int, optional

    Returns
    -------
    numpy.ndarray float64 (n_groups, 6, 1, n_series)

    Examples
    --------
    >>> m = lag_moments([[1.0], [2.0], [4.0], [8.0]], [0, 4], lag=1)
    >>> np.round(m[0, :, 0, 0], 6).tolist()  # n, mean x, mean y, Cxx, Cyy, Cxy
    [3.0, 2.333333, 4.666667, 4.666667, 18.666667, 9.333333]
    """
    x = as_series(x)
    offsets = as_offsets(offsets, x.shape[0])
    lag = _nonneg(lag, "lag")
    groups, n_groups = _groups(groups, n_groups, offsets.shape[0] - 1)
    stop = x.shape[0] if first_stop is None else int(first_stop)
    acc = np.zeros((n_groups, 6, 1, x.shape[1]))
    ref = _lag.reference(x)  # means relative to it inside the kernels (no digits lost for x + 1e9)
    run_pieces(_lag.lag_range, (x, offsets, groups, lag, stop, ref), acc, offsets, x.shape[1], threads,
               _lag.merge_arrays, work=x.size)
    return _add_reference(acc, ref)


def profile_moments(x, offsets, max_lag, *, groups=None, n_groups=None, first_stop=None, threads=None):
    """Sufficient statistics of the pairs at every lag 0..``max_lag`` (see :func:`lag_moments`).

    Returns
    -------
    numpy.ndarray float64 (n_groups, 6, max_lag + 1, n_series)
    """
    x = as_series(x)
    offsets = as_offsets(offsets, x.shape[0])
    max_lag = _nonneg(max_lag, "max_lag")
    groups, n_groups = _groups(groups, n_groups, offsets.shape[0] - 1)
    stop = x.shape[0] if first_stop is None else int(first_stop)
    acc = np.zeros((n_groups, 6, x.shape[1], max_lag + 1))  # lag-last inside the kernel
    ref = _lag.reference(x)
    # arithmetic-bound: split over probes (all segments each); measured faster than pieces of segments here
    run_ranges(_profile.profile_range, x.shape[1], threads, (x, offsets, groups, max_lag, stop, ref, acc, 0,
                                                         offsets.shape[0] - 1), work=x.size * (max_lag + 1))
    return _add_reference(np.ascontiguousarray(acc.transpose(0, 1, 3, 2)), ref)


def _add_reference(acc, ref):
    """Absolute means from the kernels' means relative to ``ref`` (entries without pairs keep mean 0)."""
    has = acc[:, 0:1] > 0
    acc[:, 1:3] = np.where(has, acc[:, 1:3] + ref, 0.0)
    return acc


def merge_moments(*moments):
    """Merge moments arrays (same shape) in the order given; returns a new array.

    Examples
    --------
    >>> x = np.arange(10.0)[:, None] ** 1.5
    >>> whole = lag_moments(x, [0, 10], lag=2)
    >>> parts = merge_moments(lag_moments(x, [0, 10], 2, first_stop=4),
    ...                       lag_moments(x[4:], [0, 6], 2))
    >>> bool(np.allclose(whole, parts, rtol=1e-12))
    True
    """
    if not moments:
        raise EmostatsError("merge_moments: give at least one moments array")
    out = np.array(moments[0], dtype=np.float64, copy=True, order="C")
    for other in moments[1:]:
        other = np.ascontiguousarray(other, dtype=np.float64)
        if other.shape != out.shape:
            raise EmostatsError(f"merge_moments: shapes differ, {out.shape} and {other.shape}")
        _lag.merge_arrays(out, other)
    return out


def pair_counts(offsets, lags, first_stop=None):
    """Number of same-segment pairs (t, t + L) at each lag, ignoring NaN (int64).

    Examples
    --------
    >>> pair_counts([0, 3, 4, 9], [0, 1, 4]).tolist()
    [9, 6, 1]
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    lags = np.atleast_1d(np.asarray(lags, dtype=np.int64))
    starts, ends = offsets[:-1], offsets[1:]
    if first_stop is not None:
        ends_first = np.minimum(ends, int(first_stop))
    else:
        ends_first = ends
    # first tokens t in [start, min(end - L, first_stop))
    first = np.minimum(ends[None, :] - lags[:, None], ends_first[None, :]) - starts[None, :]
    return np.maximum(first, 0).sum(axis=1).astype(np.int64)


def moments_r(moments, names=None, what="series"):
    """Pearson r (n_groups, n_lags, n_series) from moments; warns once for undefined series.

    A series is undefined (NaN) when it has fewer than two valid pairs or is
    constant over them; the warning names the series (``names``) or their indices.
    """
    moments = np.ascontiguousarray(moments, dtype=np.float64)
    r = _lag.moments_to_r(moments)
    bad = np.isnan(r).all(axis=(0, 1)) if r.size else np.zeros(r.shape[-1], bool)
    if bad.any():
        idx = np.flatnonzero(bad)
        labels = [str(names[i]) for i in idx] if names is not None else [str(i) for i in idx]
        shown = ", ".join(labels[:10]) + (f" and {len(labels) - 10} more" if len(labels) > 10 else "")
        warnings.warn(f"lag correlation undefined (NaN) for {len(idx)} {what}: {shown}; "
                      f"they are constant or have fewer than 2 valid pairs", DegenerateWarning, stacklevel=3)
    return r


def lag_correlation(x, offsets, lag, threads=None):
    """Pooled Pearson r between x[t] and x[t + lag] over same-segment pairs, per column.

    Parameters
    ----------
    x : array_like (n_tokens, n_series), float32 or float64
    offsets : array_like of int, CSR segment starts (last = n_tokens)
    lag : int
    threads : int, optional
        Threads for the kernel (same result for any count).

    Returns
    -------
    r : float64 (n_series,)
        NaN (with a RuntimeWarning) for a constant series or < 2 valid pairs.
    n_pairs : int
        Same-segment pairs at this lag.
    n_masked : int64 (n_series,)
        Pairs left out because either value is NaN or inf.

    Examples
    --------
    >>> x = np.array([[1.0], [2.0], [3.0], [9.0], [1.0], [2.0], [4.0]])
    >>> r, n_pairs, n_masked = lag_correlation(x, [0, 4, 7], lag=1)
    >>> round(float(r[0]), 6), n_pairs, n_masked.tolist()
    (0.92241, 5, [0])
    """
    m = lag_moments(x, offsets, lag, threads=threads)
    n_pairs = int(pair_counts(offsets, [lag])[0])
    r = moments_r(m)[0, 0]
    return r, n_pairs, (n_pairs - m[0, 0, 0]).astype(np.int64)


def lag_correlation_profile(x, offsets, max_lag, threads=None):
    """:func:`lag_correlation` for every lag 0..``max_lag`` in one call.

    Returns
    -------
    r : float64 (max_lag + 1, n_series)
    n_pairs : int64 (max_lag + 1,)
    n_masked : int64 (max_lag + 1, n_series)

    Examples
    --------
    >>> x = np.sin(np.arange(50.0))[:, None]
    >>> r, n_pairs, _ = lag_correlation_profile(x, [0, 20, 50], max_lag=3)
    >>> n_pairs.tolist(), round(float(r[0, 0]), 12)
    ([50, 48, 46, 44], 1.0)
    """
    m = profile_moments(x, offsets, max_lag, threads=threads)
    n_pairs = pair_counts(offsets, np.arange(int(max_lag) + 1))
    r = moments_r(m)[0]
    return r, n_pairs, (n_pairs[:, None] - m[0, 0]).astype(np.int64)


def as_bins(bins):
    """Bins as two float64 arrays (lower, upper) with lower < upper."""
    try:
        arr = np.asarray(bins, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EmostatsError(f"bins: expected pairs (lower, upper) such as ((1, 2), (2, inf)), got {bins!r}") from exc
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
        raise EmostatsError(f"bins: expected pairs (lower, upper) such as ((1, 2), (2, inf)), got shape {arr.shape}")
    if np.any(np.isnan(arr)) or np.any(arr[:, 0] >= arr[:, 1]) or np.any(arr[:, 0] < 0):
        raise EmostatsError(f"bins: each bin needs 0 <= lower < upper, got {arr.tolist()}")
    return np.ascontiguousarray(arr[:, 0]), np.ascontiguousarray(arr[:, 1])


def standardisation(moments0):
    """Mean and population sd (ddof=0) per series from lag-0 moments (1, 6, 1, P)."""
    m = merge_moments(moments0)[0, :, 0]
    n = m[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, m[1], np.nan)
        sd = np.sqrt(np.where(n > 0, m[3] / n, np.nan))
    return mean, sd


def trajectory_sums(x, offsets, mean, sd, bins=DEFAULT_BINS, max_lag=D.MAX_LAG, *, groups=None, n_groups=None,
                    first_stop=None, threads=None):
    """Sums and counts of sign(z[t]) z[t + tau] over events t in each bin of |z[t]|.

    ``z = (x - mean) / sd`` per series (``sd <= 0`` or NaN: the series has no events).

    Returns
    -------
    sums, counts : float64 (n_groups, n_bins, max_lag + 1, n_series)
        Counts are exact integers stored as float64.

    Examples
    --------
    >>> x = np.array([[0.0], [3.0], [1.0], [0.5], [-2.5], [-1.0]])
    >>> s, c = trajectory_sums(x, [0, 6], mean=[0.0], sd=[1.0], bins=[(2, 4)], max_lag=2)
    >>> s[0, 0, :, 0].tolist(), c[0, 0, :, 0].tolist()
    ([5.5, 2.0, 0.5], [2.0, 2.0, 1.0])
    """
    x = as_series(x)
    offsets = as_offsets(offsets, x.shape[0])
    max_lag = _nonneg(max_lag, "max_lag")
    lo, hi = as_bins(bins)
    groups, n_groups = _groups(groups, n_groups, offsets.shape[0] - 1)
    # writable copies: a read-only view (broadcast_to of a full-length array) is another Numba signature
    mean = np.array(np.broadcast_to(np.asarray(mean, np.float64), (x.shape[1],)))
    sd = np.asarray(sd, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_sd = np.array(np.broadcast_to(np.where(sd > 0, 1.0 / sd, np.nan), (x.shape[1],)))
    stop = x.shape[0] if first_stop is None else int(first_stop)
    shape = (n_groups, lo.shape[0], x.shape[1], max_lag + 1)
    sums = np.zeros(shape)
    hist = np.zeros(shape)
    counts = np.zeros(shape)
    run_ranges(_traj.trajectory_range, x.shape[1], threads,
               (x, offsets, groups, mean, inv_sd, lo, hi, max_lag, stop, sums, hist, counts),
               work=x.size * (max_lag + 1))
    counts += np.cumsum(hist[..., ::-1], axis=-1)[..., ::-1]
    return sums.transpose(0, 1, 3, 2).copy(), counts.transpose(0, 1, 3, 2).copy()
