"""Probe persistence (SPEC.md section 2, analyses 1 and 2): lag correlation, lag profile, trajectories.

The xarray functions take a ``(token, probe)`` DataArray such as
``study["tokens"]["probe_act"]`` (any name for the second dim works, e.g.
``direction``); segments come from its ``conversation`` and ``turn``
coordinates. They return Datasets whose variables carry ``long_name`` and whose
attrs carry every parameter. The NumPy-level functions (:func:`lag_correlation`,
:func:`lag_correlation_profile`, the sufficient statistics and their merge) are
re-exported from :mod:`emostats._lagstats`.

A dask-backed input (a study opened with ``chunks={"token": n}``) is reduced chunk by
chunk, with the same r to rounding as in memory: the statistics and the chunk scheme are
in :mod:`emostats.persistence_stats`.
"""

import math
import warnings

import numpy as np
import xarray as xr

from . import _lagstats
from ._lagstats import (DEFAULT_BINS, lag_correlation, lag_correlation_profile, lag_moments, merge_moments,
                        moments_r, pair_counts, profile_moments, trajectory_sums)
from ._version import __version__
from .errors import DegenerateWarning, EmostatsError
from .persistence_stats import moments_of, series_input, trajectory_stats

__all__ = [
    "lag_persistence", "lag_profile", "trajectories",
    "lag_correlation", "lag_correlation_profile", "lag_moments", "profile_moments", "merge_moments",
    "moments_r", "pair_counts", "trajectory_sums", "DEFAULT_BINS",
]

_DEF_LAG = ("Pearson r between the activation at token t and at t + L over all valid pairs "
            "(t and t + L in the same (conversation, turn) segment, both finite), pooled across segments")
_DEF_TRAJ = ("z = activation standardised over all tokens (population sd); for tokens t with |z_t| in a bin, "
             "the mean of sign(z_t) * z_{t+tau} over tokens whose tau-successor is in the same segment; "
             "computed per probe, then averaged over probes with equal weight")


# --------------------------------------------------------------------------- helpers


#: the old private name (emostats.affect calls it); new code uses emostats.persistence_stats.series_input
def _series_input(act, name):
    return series_input(act, name)


def _standardisation(act, offsets, threads=None):
    """Mean and population sd of every series over all finite tokens (also used by emostats.affect)."""
    return _lagstats.standardisation(moments_of(act, offsets, "lag", 0, threads=threads))


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

