"""Within-turn vs between-turn persistence (xarray level).

The pooled lag r of SPEC.md analysis 1 pools the pairs of all segments
(turns) without removing segment means, so turns that differ in level count
as persistence. The pooled co-moments split exactly (an ANOVA of the pairs)::

    Cxy = sum_s sum_pairs (x - mx_s)(y - my_s)  +  sum_s n_s (mx_s - mx)(my_s - my)
        =            W_xy (within turns)        +          B_xy (between turns)

with ``mx_s``, ``my_s`` the means of x[t] and x[t + L] over the pairs of
segment ``s``. Reported per series:

- ``r``: the pooled r, ``Cxy / sqrt(Cxx Cyy)``;
- ``r_within``: ``W_xy / sqrt(W_xx W_yy)``, the pooled-within-turn
  correlation (each turn centred on its own pair means: the r of the
  ANCOVA with turn as a factor);
- ``r_within_part``: ``W_xy / sqrt(Cxx Cyy)``, the within-turn part of the
  pooled r (``r = r_within_part + r_between_part`` exactly);
- ``between_share = 1 - r_within_part / r``: the share of the pooled r that
  is between-turn level.

Centring on the pair means rather than on all of the turn's tokens is what
makes the split exact (the two differ by O(L / turn length)). No new kernel:
the lag kernels already give the moments per segment (``groups`` = segment).
"""

import numpy as np
import xarray as xr

from .. import defaults
from .._lagstats import lag_moments
from ..errors import EmostatsError
from ..segments import segments_of
from ._merge import merge_weighted, r_from, within_from_segments, within_r
from .convstats import CONV_GROUP, hidden_stats

__all__ = ["within_turn_persistence", "within_from_moments", "direction_within"]


def within_from_moments(M, Wsum):
    """(r, r_within, r_within_part, between_share) (..., P) from pooled moments and within sums (one lag).

    Examples
    --------
    >>> from emostats._lagstats import lag_moments
    >>> x = np.array([[0.0], [1.0], [0.0], [10.0], [11.0], [10.0]])
    >>> M = lag_moments(x, [0, 3, 6], 1, groups=[0, 1], n_groups=2)
    >>> Ws = within_from_segments(M, [0, 0], 1)
    >>> [round(float(v[0]), 4) for v in within_from_moments(merge_weighted(M, [[1, 1]])[0], Ws[0])]
    [0.9802, -1.0, -0.0099, 1.0101]
    """
    M = np.asarray(M, dtype=np.float64)
    Wsum = np.asarray(Wsum, dtype=np.float64)
    r = r_from(M)[..., 0, :]
    rw = within_r(Wsum)[..., 0, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        part = Wsum[..., 3, 0, :] / (np.sqrt(M[..., 3, 0, :]) * np.sqrt(M[..., 4, 0, :]))
        part = np.where(np.isfinite(r), part, np.nan)
        share = 1.0 - part / r
    return r, rw, part, share


def _dataset(r, rw, part, share, dim, coords, lag, what):
    d = (dim,)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_share = 1.0 - np.nanmean(part) / np.nanmean(r) if np.isfinite(r).any() else np.nan
    ds = xr.Dataset(
        {
            "r": (d, r, {"long_name": f"pooled lag-{lag} r (turn means not removed)"}),
            "r_within": (d, rw, {"long_name": f"within-turn lag-{lag} r (each turn centred on its own pair means)"}),
            "r_within_part": (d, part, {"long_name": "within-turn part of the pooled r (same denominator)"}),
            "between_share": (d, share, {"long_name": "share of the pooled r that is between-turn level"}),
            "mean_r": ((), np.nanmean(r) if np.isfinite(r).any() else np.nan, {"long_name": f"mean pooled r of the {what}"}),
            "mean_r_within": ((), np.nanmean(rw) if np.isfinite(rw).any() else np.nan,
                              {"long_name": f"mean within-turn r of the {what}"}),
            "mean_between_share": ((), mean_share, {"long_name": "1 - mean within part / mean pooled r"}),
        },
        coords=coords,
        attrs={"analysis": "within_turn_persistence", "lag": int(lag),
               "definition": "Cxy = W_xy + B_xy over valid pairs; W centred on each turn's pair means; "
                             "r_within = W_xy / sqrt(W_xx W_yy); between_share = 1 - W_xy / Cxy"},
    )
    return ds


def within_turn_persistence(probe_act, lag=defaults.LAG, *, threads=None):
    """Pooled and within-turn lag r of each series, and the between-turn share of the pooled r.

    Parameters
    ----------
    probe_act : xarray.DataArray (token, probe)
        With ``conversation`` and ``turn`` coordinates (any second dim name works).
    lag : int
    threads : int, optional

    Returns
    -------
    xarray.Dataset
        ``r``, ``r_within``, ``r_within_part``, ``between_share`` over the series,
        and their means (``mean_between_share = 1 - mean(r_within_part) / mean(r)``).

    Examples
    --------
    >>> import emostats as es
    >>> study = es.open_study(es.example_study())
    >>> ds = within_turn_persistence(study["tokens"]["probe_act"], lag=100)
    >>> bool(np.allclose(ds["r"], es.lag_persistence(study["tokens"]["probe_act"], 100)["r"]))
    True
    >>> bool(ds["mean_r_within"] < ds["mean_r"])
    True
    >>> study.close()
    """
    if not isinstance(probe_act, xr.DataArray) or probe_act.ndim != 2 or "token" not in probe_act.dims:
        raise EmostatsError("within_turn_persistence: expected a (token, probe) DataArray with conversation and "
                            "turn coordinates, such as study['tokens']['probe_act']")
    if isinstance(lag, bool) or int(lag) != lag or lag < 1:
        raise EmostatsError(f"within_turn_persistence: lag must be an integer >= 1, got {lag!r}")
    act = probe_act.transpose("token", ...)
    dim = act.dims[1]
    offsets = segments_of(act)
    n_seg = offsets.size - 1
    x = np.asarray(act.values)
    M_seg = lag_moments(x, offsets, int(lag), groups=np.arange(n_seg), n_groups=max(n_seg, 1), threads=threads)
    M = merge_weighted(M_seg, np.ones((1, n_seg)))[0]
    Wsum = within_from_segments(M_seg, np.zeros(n_seg, dtype=np.int64), 1)[0]
    r, rw, part, share = within_from_moments(M, Wsum)
    coords = {dim: act[dim].values} if dim in act.coords else {}
    ds = _dataset(r, rw, part, share, dim, coords, lag, dim + "s")
    ds.attrs.update(n_segments=int(n_seg), n_pairs=int(M[0, 0].max()) if M.size else 0)
    return ds


def direction_within(study, lag=defaults.LAG):
    """:func:`within_turn_persistence` of the directions stored in ``/conv_moments`` (uniform and candidates).

    Returns a Dataset over ``direction`` with ``population`` and ``k`` coordinates.
    """
    hs = hidden_stats(study, lag)
    G = hs.moments.shape[0]
    ones = np.ones((1, G))
    M = merge_weighted(hs.moments, ones)[0]
    Wsum = hs.within.sum(axis=0)
    r, rw, part, share = within_from_moments(M, Wsum)
    coords = {"direction": np.arange(r.size), "population": ("direction", hs.population), "k": ("direction", hs.k)}
    ds = _dataset(r, rw, part, share, "direction", coords, lag, "directions")
    for pop in np.unique(hs.population):
        sel = hs.population == pop
        ds[f"mean_r_{pop}"] = ((), np.nanmean(r[sel]), {"long_name": f"mean pooled r of the {pop} directions"})
        ds[f"mean_r_within_{pop}"] = ((), np.nanmean(rw[sel]),
                                      {"long_name": f"mean within-turn r of the {pop} directions"})
    ds.attrs["source"] = f"/{CONV_GROUP}"
    return ds
