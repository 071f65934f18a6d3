"""Probe persistence (SPEC.md section 2, analyses 1 and 2): lag correlation, lag profile, trajectories.

The xarray functions take a ``(token, probe)`` DataArray such as
``study["tokens"]["probe_act"]`` (any name for the second dim works, e.g.
``direction``); segments come from its ``conversation`` and ``turn``
coordinates. They return Datasets whose variables carry ``long_name`` and whose
attrs carry every parameter. The NumPy-level functions (:func:`lag_correlation`,
:func:`lag_correlation_profile`, the sufficient statistics and their merge) are
re-exported from :mod:`emostats._lagstats`.

Dask
----
A dask-backed input (a study opened with ``chunks={"token": n}``, or several
files concatenated along ``token``) is reduced chunk by chunk: each task reads
its chunk plus the next ``lag`` (or ``max_lag``) tokens and counts the pairs
whose *first* token lies in its chunk, so every pair is counted exactly once,
also when a chunk boundary cuts a segment. The per-chunk sufficient statistics
(centred co-moments, or sums and counts for trajectories) are merged in chunk
order with the exact formulas of Chan et al., so r equals the in-memory r to
rounding (1e-10 is tested) for any chunking, under any dask scheduler including
``dask.distributed``. Each task runs its kernel on one thread.
"""

import math
import warnings

import numpy as np
import xarray as xr

from . import _lagstats
from ._chunks import reduce_over_chunks
from ._lagstats import (DEFAULT_BINS, lag_correlation, lag_correlation_profile, lag_moments, merge_moments,
                        moments_r, pair_counts, profile_moments, trajectory_sums)
from ._version import __version__
from .errors import DegenerateWarning, EmostatsError
from .segments import segments_of

__all__ = [
    "lag_persistence", "lag_profile", "trajectories",
    "lag_correlation", "lag_correlation_profile", "lag_moments", "profile_moments", "merge_moments",
    "moments_r", "pair_counts", "trajectory_sums", "DEFAULT_BINS", "series_input", "moments_of", "trajectory_stats",
]

_DEF_LAG = ("Pearson r between the activation at token t and at t + L over all valid pairs "
            "(t and t + L in the same (conversation, turn) segment, both finite), pooled across segments")
_DEF_TRAJ = ("z = activation standardised over all tokens (population sd); for tokens t with |z_t| in a bin, "
             "the mean of sign(z_t) * z_{t+tau} over tokens whose tau-successor is in the same segment; "
             "computed per probe, then averaged over probes with equal weight")


# --------------------------------------------------------------------------- input handling


def series_input(act, name):
    """A (token, series) activation DataArray checked and transposed, with its segment offsets.

    Parameters
    ----------
    act : xarray.DataArray
        Dims ``token`` and at most one other (e.g. ``probe``), with
        ``conversation`` and ``turn`` coordinates on ``token``.
    name : str
        The function or argument named in the one-line error.

    Returns
    -------
    (act transposed to (token, series) or (token,), series dim name or None, int64 CSR offsets)

    Examples
    --------
    >>> da = xr.DataArray(np.zeros((4, 2)), dims=("token", "probe"),
    ...                   coords={"conversation": ("token", [0, 0, 1, 1]), "turn": ("token", [0, 0, 0, 0])})
    >>> _, series, offsets = series_input(da, "example")
    >>> series, offsets.tolist()
    ('probe', [0, 2, 4])
    """
    if not isinstance(act, xr.DataArray):
        raise EmostatsError(f"{name}: expected an xarray.DataArray with a 'token' dim such as "
                            f"study['tokens']['probe_act'], got {type(act).__name__}")
    if "token" not in act.dims or act.ndim > 2:
        raise EmostatsError(f"{name}: expected dims ('token', 'probe'), got {act.dims}; "
                            f"pass study['tokens']['probe_act'] or a (token, series) DataArray")
    series = next((d for d in act.dims if d != "token"), None)
    act = act.transpose("token", *([series] if series else []))
    offsets = segments_of(act)
    return act, series, offsets


#: the old private names (emostats.affect calls _series_input); new code uses the public ones
def _series_input(act, name):
    return series_input(act, name)


def _is_dask(act):
    return getattr(act.data, "dask", None) is not None


def _numpy_2d(act):
    values = act.values
    return values if values.ndim == 2 else values[:, None]


def _chunked(act, offsets, reach, fn, merge, groups=None):
    """Reduce ``fn(block, local_offsets, local_groups, first_stop)`` over the token chunks of a dask array.

    One scheme for every chunked analysis (:func:`emostats._chunks.reduce_over_chunks`):
    task ``i`` gets chunk ``i`` and the first ``reach`` tokens after it (sliced
    from the following chunks), counts only the pairs that start in chunk ``i``,
    and the results merge in a fixed tree.
    """
    data = act.data if act.ndim == 2 else act.data[:, None]

    def task(block, span):
        return fn(block, span.offsets, span.groups, span.own)

    return reduce_over_chunks(data, reach, task, merge, offsets=offsets, groups=groups)


def moments_of(act, offsets, kind, lag, groups=None, n_groups=None, threads=None):
    """Moments of the lag pairs of a NumPy- or dask-backed (token, series) DataArray.

    ``kind`` is ``"lag"`` (one lag ``lag``) or ``"profile"`` (lags 0..``lag``);
    ``groups`` gives the output group of each segment (e.g. its conversation, for
    the bootstrap). Returns float64 ``(n_groups, 6, n_lags, n_series)`` as
    :func:`lag_moments`. A dask input is reduced chunk by chunk (see the module notes).

    Examples
    --------
    >>> da = xr.DataArray(np.arange(8.0)[:, None] ** 2, dims=("token", "probe"),
    ...                   coords={"conversation": ("token", [0] * 8), "turn": ("token", [0] * 8)})
    >>> act, _, offsets = series_input(da, "example")
    >>> moments_of(act, offsets, "lag", 1)[0, 0, 0].tolist()  # pairs at lag 1
    [7.0]
    """
    fn = lag_moments if kind == "lag" else profile_moments
    if not _is_dask(act):
        return fn(_numpy_2d(act), offsets, lag, groups=groups, n_groups=n_groups, threads=threads)
    if groups is not None and n_groups is None:
        n_groups = int(np.max(groups)) + 1 if len(groups) else 1

    def task(block, local, local_groups, stop):
        return fn(block, local, lag, groups=local_groups, n_groups=n_groups, first_stop=stop, threads=1)

    out = _chunked(act, offsets, lag, task, merge_moments, groups)
    if out is None:
        n_lags = 1 if kind == "lag" else lag + 1
        out = np.zeros((n_groups or 1, 6, n_lags, act.shape[1] if act.ndim == 2 else 1))
    return out


def _standardisation(act, offsets, threads=None):
    """Mean and population sd of every series over all finite tokens."""
    return _lagstats.standardisation(moments_of(act, offsets, "lag", 0, threads=threads))


def _add_pairs(*parts):
    """Sum (sums, counts) pairs in order."""
    sums, counts = parts[0][0].copy(), parts[0][1].copy()
    for s, c in parts[1:]:
        sums += s
        counts += c
    return sums, counts


def trajectory_stats(act, offsets, mean, sd, bins, max_lag, groups=None, n_groups=None, threads=None):
    """Trajectory sums and counts (see :func:`trajectory_sums`) of a NumPy- or dask-backed DataArray."""
    if not _is_dask(act):
        return trajectory_sums(_numpy_2d(act), offsets, mean, sd, bins, max_lag,
                               groups=groups, n_groups=n_groups, threads=threads)
    if groups is not None and n_groups is None:
        n_groups = int(np.max(groups)) + 1 if len(groups) else 1

    def task(block, local, local_groups, stop):
        return trajectory_sums(block, local, mean, sd, bins, max_lag, groups=local_groups,
                               n_groups=n_groups, first_stop=stop, threads=1)

    return _chunked(act, offsets, max_lag, task, _add_pairs, groups)


def _check_int(value, name, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise EmostatsError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise EmostatsError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _base_attrs(act, offsets, analysis):
    return {
        "analysis": analysis,
        "emostats_version": __version__,
        "n_tokens": int(act.sizes["token"]),
        "n_segments": int(offsets.shape[0] - 1),
        "input": str(act.name) if act.name is not None else "",
    }


def _series_coords(act, series):
    return {series: act[series].values} if series and series in act.coords else {}


def _squeeze(values, series):
    return values if series else values[..., 0]


def _series_dims(series):
    return (series,) if series else ()


# --------------------------------------------------------------------------- public xarray API


def lag_persistence(probe_act, lag=100, *, threads=None):
    """Lag persistence: pooled Pearson r between tokens t and t + lag of one segment, per probe.

    Parameters
    ----------
    probe_act : xarray.DataArray (token, probe)
        With ``conversation`` and ``turn`` coordinates on ``token`` (a segment is
        one (conversation, turn)). NumPy or dask backed; float32 or float64.
    lag : int
        L in tokens (default 100, as in the paper).
    threads : int, optional
        Threads for the in-memory kernel (the result has the same bits for any count).

    Returns
    -------
    xarray.Dataset
        ``r(probe)``, ``n_pairs`` (same-segment pairs), ``n_masked(probe)`` (pairs
        left out because a value is NaN or inf), ``n_used(probe)``. A constant
        probe gets NaN and a RuntimeWarning.

    Notes
    -----
    One pass over the data in float64 with a per-segment shift, so a mean of
    1e4 costs no digits. Pairs are pooled: segment means are not removed (the
    paper's metric), so between-segment differences in level count as persistence.

    Examples
    --------
    >>> import emostats as es
    >>> study = es.open_study(es.example_study())
    >>> act = study["tokens"]["probe_act"]
    >>> res = es.lag_persistence(act, lag=100)
    >>> bool(-1 <= float(res.r.mean()) <= 1), int(res.n_pairs) > 0
    (True, True)
    >>> study.close()  # release the file handle now rather than at garbage collection
    """
    lag = _check_int(lag, "lag")
    act, series, offsets = series_input(probe_act, "lag_persistence")
    m = moments_of(act, offsets, "lag", lag, threads=threads)
    names = act[series].values if series and series in act.coords else None
    r = moments_r(m, names, what=series or "series")[0, 0]
    n_pairs = int(pair_counts(offsets, [lag])[0])
    n_used = m[0, 0, 0].astype(np.int64)
    dims = _series_dims(series)
    attrs = _base_attrs(act, offsets, "lag_persistence")
    attrs.update(lag=lag, definition=_DEF_LAG)
    return xr.Dataset(
        {
            "r": (dims, _squeeze(r, series), {"long_name": f"lag-{lag} correlation (pooled Pearson r)",
                                              "units": "1"}),
            "n_pairs": ((), n_pairs, {"long_name": f"same-segment pairs (t, t+{lag})"}),
            "n_masked": (dims, _squeeze(n_pairs - n_used, series),
                         {"long_name": "pairs left out because a value is NaN or inf"}),
            "n_used": (dims, _squeeze(n_used, series), {"long_name": "pairs used"}),
        },
        coords=_series_coords(act, series),
        attrs=attrs,
    )


def lag_profile(probe_act, max_lag=200, *, threads=None):
    """Lag profile: the pooled lag correlation r(L) for every L = 0..max_lag, per probe.

    Parameters
    ----------
    probe_act : xarray.DataArray (token, probe)
        As for :func:`lag_persistence`.
    max_lag : int
        Largest lag (default 200).
    threads : int, optional

    Returns
    -------
    xarray.Dataset
        ``r(lag, probe)``, ``n_pairs(lag)``, ``n_masked(lag, probe)``, coordinate
        ``lag`` = 0..max_lag (tokens). ``r`` at lag 0 is 1 for every non-constant probe.
        Lags with fewer than 2 same-segment pairs (beyond the longest segment)
        have NaN ``r``, with a RuntimeWarning.

    Notes
    -----
    All lags in one call: each segment is transposed into float64 and every
    lagged cross-product is computed with a register-blocked loop; the sums of
    x[t], x[t + L] and their squares come from prefix and suffix sums. Each lag's r is the
    r that :func:`lag_persistence` gives for that lag (to rounding).

    Examples
    --------
    >>> import emostats as es
    >>> study = es.open_study(es.example_study())
    >>> act = study["tokens"]["probe_act"]
    >>> prof = es.lag_profile(act, max_lag=20)
    >>> prof.r.sizes["lag"], float(prof.r.sel(lag=0).mean().round(12))
    (21, 1.0)
    >>> study.close()  # release the file handle now rather than at garbage collection
    """
    max_lag = _check_int(max_lag, "max_lag")
    act, series, offsets = series_input(probe_act, "lag_profile")
    m = moments_of(act, offsets, "profile", max_lag, threads=threads)
    names = act[series].values if series and series in act.coords else None
    r = moments_r(m, names, what=series or "series")[0]
    lags = np.arange(max_lag + 1)
    n_pairs = pair_counts(offsets, lags)
    n_used = m[0, 0].astype(np.int64)
    short = np.flatnonzero(n_pairs < 2)
    if short.size:
        warnings.warn(f"lag_profile: {short.size} of {lags.size} lags (from {int(short[0])}) have fewer than 2 "
                      f"same-segment pairs (longest segment: {int(np.diff(offsets).max(initial=0))} tokens); "
                      f"r is NaN there", DegenerateWarning, stacklevel=2)
    dims = ("lag", *_series_dims(series))
    attrs = _base_attrs(act, offsets, "lag_profile")
    attrs.update(max_lag=max_lag, definition=_DEF_LAG)
    return xr.Dataset(
        {
            "r": (dims, _squeeze(r, series), {"long_name": "lag correlation r(L) (pooled Pearson r)", "units": "1"}),
            "n_pairs": (("lag",), n_pairs, {"long_name": "same-segment pairs (t, t+L)"}),
            "n_masked": (dims, _squeeze(n_pairs[:, None] - n_used, series),
                         {"long_name": "pairs left out because a value is NaN or inf"}),
        },
        coords={"lag": ("lag", lags, {"long_name": "lag L", "units": "tokens"}), **_series_coords(act, series)},
        attrs=attrs,
    )


def _bin_labels(lo, hi):
    def fmt(v):
        return "inf" if math.isinf(v) else f"{v:g}"

    return [f"[{fmt(a)},{fmt(b)})" for a, b in zip(lo, hi)]


def trajectory_dataset(sums, counts, lo, hi, max_lag, series, names, mean, sd):
    """Assemble the trajectories Dataset from summed statistics (bin, tau, series)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(counts > 0, sums / counts, np.nan)
    has = np.isfinite(per)
    n_probes = has.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(n_probes > 0, np.where(has, per, 0.0).sum(axis=-1) / n_probes, np.nan)
    sdim = series or "series"
    coords = {
        "bin": ("bin", _bin_labels(lo, hi), {"long_name": "bin of initial strength |z_t|"}),
        "bin_lower": ("bin", lo, {"long_name": "lower edge of |z_t| (inclusive)", "units": "sd"}),
        "bin_upper": ("bin", hi, {"long_name": "upper edge of |z_t| (exclusive)", "units": "sd"}),
        "tau": ("tau", np.arange(max_lag + 1), {"long_name": "tokens after the initial token", "units": "tokens"}),
    }
    if names is not None:
        coords[sdim] = names
    return xr.Dataset(
        {
            "mean": (("bin", "tau"), avg, {"long_name": "mean sign-aligned z at t+tau, averaged over probes",
                                           "units": "sd"}),
            "count": (("bin", "tau"), counts.sum(axis=-1).astype(np.int64),
                      {"long_name": "events (token, probe) with a valid tau-successor, summed over probes"}),
            "n_probes": (("bin", "tau"), n_probes.astype(np.int64),
                         {"long_name": "probes with at least one event (weight of the average)"}),
            "mean_per_probe": (("bin", "tau", sdim), per, {"long_name": "mean sign-aligned z at t+tau per probe",
                                                           "units": "sd"}),
            "count_per_probe": (("bin", "tau", sdim), counts.astype(np.int64),
                                {"long_name": "events with a valid tau-successor per probe"}),
            "activation_mean": ((sdim,), mean, {"long_name": "mean activation used for z"}),
            "activation_sd": ((sdim,), sd, {"long_name": "population sd (ddof=0) used for z"}),
        },
        coords=coords,
    )


def trajectories(probe_act, bins=DEFAULT_BINS, max_lag=200, *, threads=None):
    """Trajectories of Figure 2: mean sign-aligned z at t + tau after a token of initial strength ``|z_t|`` in a bin.

    Parameters
    ----------
    probe_act : xarray.DataArray (token, probe)
        As for :func:`lag_persistence`.
    bins : sequence of (lower, upper)
        Bins of ``|z_t|``, lower inclusive, upper exclusive (default [1,2), [2,3), [3,4), [4,inf)).
    max_lag : int
        Largest tau (default 200).
    threads : int, optional

    Returns
    -------
    xarray.Dataset
        ``mean(bin, tau)`` (average over probes with equal weight of the per-probe
        means; probes without events in a bin are left out and ``n_probes`` says
        how many were averaged), ``count(bin, tau)`` (events summed over probes),
        ``mean_per_probe(bin, tau, probe)``, ``count_per_probe``,
        ``activation_mean(probe)``, ``activation_sd(probe)``. A constant probe has
        no events (NaN per-probe means) and a RuntimeWarning.

    Notes
    -----
    z uses the mean and population sd (ddof=0) over all finite tokens. An event
    is a token t with finite z_t in the bin; its contribution at tau needs t + tau
    in the same segment and z_{t+tau} finite. At tau = 0 the mean is the mean ``|z_t|``.

    Examples
    --------
    >>> import emostats as es
    >>> study = es.open_study(es.example_study())
    >>> act = study["tokens"]["probe_act"]
    >>> tr = es.trajectories(act, max_lag=50)
    >>> list(tr["mean"].dims), tr.bin.values.tolist()
    (['bin', 'tau'], ['[1,2)', '[2,3)', '[3,4)', '[4,inf)'])
    >>> study.close()  # release the file handle now rather than at garbage collection
    """
    max_lag = _check_int(max_lag, "max_lag")
    lo, hi = _lagstats.as_bins(bins)
    act, series, offsets = series_input(probe_act, "trajectories")
    mean, sd = _standardisation(act, offsets, threads=threads)
    names = act[series].values if series and series in act.coords else None
    bad = ~(sd > 0)
    if bad.any():
        labels = [str(names[i]) if names is not None else str(i) for i in np.flatnonzero(bad)]
        warnings.warn(f"trajectories: {len(labels)} constant or empty {series or 'series'} have no events: "
                      f"{', '.join(labels[:10])}", DegenerateWarning, stacklevel=2)
    sums, counts = trajectory_stats(act, offsets, mean, sd, np.stack([lo, hi], 1), max_lag, threads=threads)
    ds = trajectory_dataset(sums[0], counts[0], lo, hi, max_lag, series, names, mean, sd)
    if not series:
        ds = ds.squeeze("series", drop=True)
    attrs = _base_attrs(act, offsets, "trajectories")
    attrs.update(max_lag=max_lag, bins=np.stack([lo, hi], 1).ravel(), definition=_DEF_TRAJ)
    ds.attrs = attrs
    return ds

