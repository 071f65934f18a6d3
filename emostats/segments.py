"""Segments of a study: runs of tokens that share one (conversation, turn).

Kernels receive segments as CSR-style ``offsets``: ``offsets[i]`` is the first
token of segment ``i`` and ``offsets[-1]`` is the number of tokens, so segment
``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.
"""

import numpy as np

from .errors import StudyError

__all__ = ["segment_offsets", "offsets_from_lengths", "segments_of"]


def segment_offsets(conversation, turn, *, group="/tokens"):
    """CSR offsets of the segments given per-token conversation and turn ids.

    A new segment starts wherever ``(conversation, turn)`` changes. A key that
    appears again after another key (a segment split in two places) is an
    error, because lag pairs would otherwise silently cross the gap.

    Parameters
    ----------
    conversation, turn : array_like of int, shape (n_tokens,)
        Per-token ids.
    group : str
        Group name used in error messages.

    Returns
    -------
    numpy.ndarray of int64, shape (n_segments + 1,)

    Examples
    --------
    >>> segment_offsets([0, 0, 0, 1, 1], [0, 0, 1, 0, 0]).tolist()
    [0, 2, 3, 5]
    """
    conversation = np.asarray(conversation)
    turn = np.asarray(turn)
    if conversation.ndim != 1 or turn.shape != conversation.shape:
        raise StudyError(
            f"{group}: conversation and turn must be 1-D of one length, "
            f"got shapes {conversation.shape} and {turn.shape}"
        )
    n = conversation.shape[0]
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero((conversation[1:] != conversation[:-1]) | (turn[1:] != turn[:-1])) + 1
    starts = np.concatenate(([0], change)).astype(np.int64)
    keys = np.stack([conversation[starts], turn[starts]], axis=1)
    _, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        bad = np.flatnonzero(counts > 1)[0]
        c, t = keys[first[bad]]
        again = starts[np.flatnonzero((keys[:, 0] == c) & (keys[:, 1] == t))[1]]
        raise StudyError(
            f"{group}: segment (conversation={c}, turn={t}) is split: it starts again at "
            f"token {again}; sort tokens so each (conversation, turn) is contiguous"
        )
    return np.append(starts, n).astype(np.int64)


def offsets_from_lengths(lengths):
    """CSR offsets from segment lengths.

    Examples
    --------
    >>> offsets_from_lengths([3, 1, 2]).tolist()
    [0, 3, 4, 6]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)


def segments_of(obj, dim="token"):
    """CSR offsets from the ``conversation`` and ``turn`` coordinates of an xarray object.

    Parameters
    ----------
    obj : xarray.DataArray or xarray.Dataset
        Has coordinates ``conversation`` and ``turn`` along ``dim``.

    Examples
    --------
    >>> import xarray as xr
    >>> da = xr.DataArray([1.0, 2.0, 3.0], dims="token",
    ...     coords={"conversation": ("token", [0, 0, 1]), "turn": ("token", [1, 1, 1])})
    >>> segments_of(da).tolist()
    [0, 2, 3]
    """
    missing = [c for c in ("conversation", "turn") if c not in obj.coords]
    if missing:
        raise StudyError(
            f"/tokens: coordinate(s) {', '.join(missing)} missing on {getattr(obj, 'name', None) or 'input'}; "
            f"segments come from the conversation and turn coordinates of the '{dim}' dim"
        )
    return segment_offsets(np.asarray(obj["conversation"].values), np.asarray(obj["turn"].values))
