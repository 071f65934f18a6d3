"""The sufficient statistics behind persistence: a (token, series) DataArray's lag moments and trajectory sums.

:func:`series_input` checks an activation DataArray and finds its segments;
:func:`moments_of` and :func:`trajectory_stats` compute the statistics that
:mod:`emostats.persistence` (r, the lag profile, the trajectories) and the
decay bootstrap (:mod:`emostats.decay_bootstrap`, per conversation) are made
of, in memory or chunk by chunk for a dask-backed input.

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

import numpy as np
import xarray as xr

from ._chunks import reduce_over_chunks
from ._lagstats import lag_moments, merge_moments, profile_moments, trajectory_sums
from .errors import EmostatsError
from .segments import segments_of

__all__ = ["series_input", "moments_of", "trajectory_stats"]


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
