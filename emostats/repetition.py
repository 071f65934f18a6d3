"""Looping turns: repeated n-grams inside a turn, and persistence with and without such turns.

A small model that loops ("he he he ...", or a paragraph said again) keeps its activations
alike for as long as it loops, so a lag correlation over looping turns measures repetition,
not persistence. Two functions:

- :func:`ngram_repeat_share`: per segment (one conversation turn), the share of its n-grams
  of token ids (default n = 8) that equal an earlier n-gram of the same turn; natural prose
  repeats almost no 8-gram, a looping turn repeats most. The extractor stores it per token
  as ``/tokens`` ``repeat_share`` (every token of a turn carries its turn's share).
- :func:`persistence_by_looping`: the lag persistence of the probes over all turns, over the
  turns whose share is at most ``threshold`` (default 0.1: one n-gram in ten repeats) and over
  the looping turns alone, with the number of turns and tokens in each.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import defaults as D
from ._checks import check_fraction, check_int
from .errors import ArgumentError, MissingGroupError
from .persistence import lag_persistence
from .segments import segment_offsets

__all__ = ["ngram_repeat_share", "persistence_by_looping"]

_SUBSETS = ("all", "non_looping", "looping")


def ngram_repeat_share(ids, offsets, n: int = D.LOOP_NGRAM) -> np.ndarray:
    """Per segment, the share of its ``n``-grams that repeat an earlier ``n``-gram of the segment.

    Parameters
    ----------
    ids : array_like of int (n_tokens,)
        Token ids in order.
    offsets : array_like of int (n_segments + 1,)
        CSR segment starts (see :func:`emostats.segment_offsets`).
    n : int
        n-gram length.

    Returns
    -------
    numpy.ndarray of float64 (n_segments,)
        NaN for a segment shorter than ``n`` tokens (it has no n-gram).

    Examples
    --------
    >>> ngram_repeat_share([1, 2, 1, 2, 1, 2, 7, 8, 9], [0, 6, 9], n=2).round(3).tolist()
    [0.6, 0.0]
    """
    n = check_int(n, "n", minimum=1)
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ArgumentError(f"ids must be a 1-D integer array of token ids, got dtype {ids.dtype} "
                            f"and shape {ids.shape}")
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != ids.size \
            or np.any(np.diff(offsets) < 0):
        raise ArgumentError(f"offsets must be non-decreasing CSR segment starts from 0 to {ids.size}")
    ids = np.ascontiguousarray(ids.astype(np.int64))
    out = np.full(offsets.size - 1, np.nan)
    for s in range(offsets.size - 1):
        a, b = offsets[s], offsets[s + 1]
        if b - a < n:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(ids[a:b], n)
        keys = np.ascontiguousarray(windows).view(np.dtype((np.void, 8 * n))).ravel()
        _, first = np.unique(keys, return_index=True)
        out[s] = (keys.size - first.size) / keys.size
    return out


def persistence_by_looping(probe_act: xr.DataArray, repeat_share: xr.DataArray, *, lag: int = D.LAG,
                           threshold: float = D.LOOP_THRESHOLD, threads: int | None = None) -> xr.Dataset:
    """Lag persistence over all turns, the non-looping turns and the looping turns.

    Parameters
    ----------
    probe_act : xarray.DataArray (token, probe)
        With ``conversation`` and ``turn`` coordinates on ``token``.
    repeat_share : xarray.DataArray (token,)
        ``/tokens`` ``repeat_share``: each token carries its turn's n-gram repeat share
        (NaN for a turn too short to have an n-gram: counted as non-looping).
    lag : int
    threshold : float
        A turn loops when its share exceeds this.
    threads : int, optional

    Returns
    -------
    xarray.Dataset
        ``r(subset, probe)``, ``mean_r(subset)``, ``n_pairs(subset)``, ``n_turns(subset)``,
        ``n_tokens(subset)`` for subset = all, non_looping, looping; ``looping_share``, the
        share of turns that loop. A subset without valid pairs gets NaN.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> conv = np.repeat([0, 1], 50)
    >>> act = xr.DataArray(np.random.default_rng(0).standard_normal((100, 2)), dims=("token", "probe"),
    ...                    coords={"conversation": ("token", conv), "turn": ("token", np.zeros(100, int))})
    >>> share = xr.DataArray(np.repeat([0.0, 0.5], 50), dims="token")
    >>> ds = persistence_by_looping(act, share, lag=5)
    >>> ds["n_turns"].values.tolist(), float(ds["looping_share"])
    ([2, 1, 1], 0.5)
    """
    lag = check_int(lag, "lag", minimum=1)
    threshold = check_fraction(threshold, "threshold", closed=True)
    if not isinstance(probe_act, xr.DataArray) or "token" not in probe_act.dims:
        raise ArgumentError("probe_act must be a DataArray with a token dim")
    if repeat_share is None:
        raise MissingGroupError("needs /tokens/repeat_share (the n-gram repeat share of each turn)")
    share = np.asarray(repeat_share.values if isinstance(repeat_share, xr.DataArray) else repeat_share,
                       dtype=np.float64)
    if share.shape != (probe_act.sizes["token"],):
        raise ArgumentError(f"/tokens: repeat_share has shape {share.shape}; expected ({probe_act.sizes['token']},)")
    if np.any(share[np.isfinite(share)] < 0) or np.any(share[np.isfinite(share)] > 1):
        raise ArgumentError("/tokens: repeat_share has values outside [0, 1]; expected a share")
    offsets = segment_offsets(probe_act["conversation"].values, probe_act["turn"].values)
    starts = offsets[:-1]
    seg_share = share[starts] if starts.size else np.zeros(0)
    seg_loop = np.nan_to_num(seg_share, nan=0.0) > threshold
    token_loop = np.repeat(seg_loop, np.diff(offsets))
    probe_dim = [d for d in probe_act.dims if d != "token"]
    names = probe_act[probe_dim[0]].values if probe_dim and probe_dim[0] in probe_act.coords else None
    n_probe = probe_act.sizes[probe_dim[0]] if probe_dim else 1
    r = np.full((3, n_probe), np.nan)
    n_pairs = np.zeros(3, dtype=np.int64)
    n_turns = np.array([seg_loop.size, int((~seg_loop).sum()), int(seg_loop.sum())], dtype=np.int64)
    n_tokens = np.array([token_loop.size, int((~token_loop).sum()), int(token_loop.sum())], dtype=np.int64)
    for i, mask in enumerate((None, ~token_loop, token_loop)):
        sub = probe_act if mask is None else probe_act.isel(token=np.flatnonzero(mask))
        if sub.sizes["token"] == 0:
            continue
        res = lag_persistence(sub, lag=lag, threads=threads)
        n_pairs[i] = int(res["n_pairs"])
        if n_pairs[i]:
            r[i] = np.atleast_1d(res["r"].values)
    with np.errstate(all="ignore"):
        mean_r = np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in r])
    dims = ("subset", probe_dim[0]) if probe_dim else ("subset",)
    coords = {"subset": ("subset", list(_SUBSETS), {"long_name": "turns: all, non-looping, looping"})}
    if names is not None:
        coords[probe_dim[0]] = (probe_dim[0], names, {"long_name": "probe (emotion name)"})
    ds = xr.Dataset(
        {"r": (dims, r if probe_dim else r[:, 0], {"long_name": f"lag-{lag} correlation in the subset of turns"}),
         "mean_r": ("subset", mean_r, {"long_name": "mean r over probes"}),
         "n_pairs": ("subset", n_pairs, {"long_name": f"same-segment pairs (t, t+{lag})"}),
         "n_turns": ("subset", n_turns, {"long_name": "turns (segments) in the subset"}),
         "n_tokens": ("subset", n_tokens, {"long_name": "tokens in the subset"}),
         "looping_share": ((), float(seg_loop.mean()) if seg_loop.size else np.nan,
                           {"long_name": "share of turns that loop"})},
        coords=coords)
    ds.attrs.update(lag=lag, threshold=threshold,
                    definition=f"a turn loops when more than {threshold:g} of its n-grams repeat an earlier "
                               "n-gram of the same turn (/tokens repeat_share)")
    return ds
