"""Segments of a study: runs of tokens that share one (conversation, turn).

Kernels receive segments as CSR-style ``offsets``: ``offsets[i]`` is the first
token of segment ``i`` and ``offsets[-1]`` is the number of tokens, so segment
``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.

This module is the one place where segments are found, for the validator and
for every analysis alike (:func:`scan_segments`). Ids are compared as exact
integers of any width (uint64 ids near 2**64 included): they are never stacked
into one array, where NumPy would promote a uint64/int64 mix to float64 and
distinct ids above 2**53 would collide. Dask-backed coordinates are read one
chunk at a time.
"""

from dataclasses import dataclass

import numpy as np

from .errors import StudyError

__all__ = ["segment_offsets", "offsets_from_lengths", "segments_of", "scan_segments", "SegmentScan",
           "exact_int64"]


def exact_int64(values):
    """Integer ids as int64 with equality preserved exactly (uint64 is reinterpreted, not rounded).

    Examples
    --------
    >>> a = np.array([2**64 - 1, 2**64 - 2], dtype=np.uint64)
    >>> bool(exact_int64(a)[0] != exact_int64(a)[1]), bool(float(a[0]) == float(a[1]))
    (True, True)
    """
    values = np.asarray(values)
    if values.dtype.kind not in "iub":
        raise StudyError(f"/tokens: ids have dtype {values.dtype}; expected an integer dtype")
    if values.dtype == np.uint64:
        return values.view(np.int64)
    return values.astype(np.int64, copy=False)


def _blocks(*arrays):
    """Aligned NumPy blocks of 1-D NumPy or dask arrays (dask: one chunk at a time)."""
    datas = [getattr(a, "data", a) for a in arrays]
    lazy = [d for d in datas if hasattr(d, "dask")]
    if not lazy:
        yield tuple(np.asarray(d) for d in datas)
        return
    import dask
    import dask.array as da

    chunks = lazy[0].chunks
    datas = [d.rechunk(chunks) if hasattr(d, "dask") else da.from_array(np.asarray(d), chunks=chunks)
             for d in datas]
    for i in range(len(chunks[0])):
        yield tuple(np.asarray(b) for b in dask.compute(*(d.blocks[i] for d in datas)))


@dataclass
class SegmentScan:
    """What :func:`scan_segments` found.

    Attributes
    ----------
    starts : int64 array (n_segments,)
        First token of each segment.
    n_tokens : int
    split : tuple or None
        ``(token, conversation, turn)``: the first segment that starts again after
        another one (not contiguous), with its original ids.
    bad_position : tuple or None
        ``(token, found, expected)``: the first token whose position is not its
        index inside the segment.
    """

    starts: np.ndarray
    n_tokens: int
    split: tuple = None
    bad_position: tuple = None

    @property
    def offsets(self):
        return np.append(self.starts, self.n_tokens).astype(np.int64)

    def split_message(self, group="/tokens"):
        token, c, t = self.split
        return (f"{group}: segment (conversation={c}, turn={t}) is not contiguous: it starts again at token "
                f"{token}; sort tokens by conversation and turn")

    def position_message(self, group="/tokens"):
        token, found, expected = self.bad_position
        return (f"{group}: position at token {token} is {found}; expected {expected} "
                f"(position counts 0, 1, 2, ... inside each (conversation, turn) segment)")


def scan_segments(conversation, turn, position=None):
    """Segment starts of per-token ids, with the first non-contiguous segment and bad position.

    Parameters
    ----------
    conversation, turn : 1-D integer arrays (NumPy, dask or xarray), one length
    position : 1-D integer array, optional
        Checked to count 0, 1, 2, ... inside every segment.

    Returns
    -------
    SegmentScan

    Examples
    --------
    >>> s = scan_segments([0, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0])
    >>> s.starts.tolist(), s.split
    ([0, 2, 3], (3, 0, 0))
    """
    arrays = [conversation, turn] + ([] if position is None else [position])
    starts, start_conv, start_turn, orig_c, orig_t = [], [], [], [], []
    bad_position = None
    prev = None  # (conversation, turn) of the last token seen
    seg_start = 0
    offset = 0
    for blocks in _blocks(*arrays):
        c_raw, t_raw = blocks[0], blocks[1]
        c, t = exact_int64(c_raw), exact_int64(t_raw)
        n = c.shape[0]
        if n == 0:
            continue
        new = np.empty(n, dtype=bool)
        new[1:] = (c[1:] != c[:-1]) | (t[1:] != t[:-1])
        new[0] = prev is None or c[0] != prev[0] or t[0] != prev[1]
        idx = np.flatnonzero(new)
        starts.append(idx + offset)
        start_conv.append(c[idx])
        start_turn.append(t[idx])
        orig_c.append(c_raw[idx])
        orig_t.append(t_raw[idx])
        if position is not None and bad_position is None:
            glob_idx = np.arange(offset, offset + n, dtype=np.int64)
            seg = np.maximum.accumulate(np.where(new, glob_idx, seg_start))
            expected = glob_idx - seg
            pos = exact_int64(blocks[2])
            bad = pos != expected
            if bad.any():
                i = int(np.argmax(bad))
                bad_position = (offset + i, blocks[2][i].item(), int(expected[i]))
        seg_start = int(offset + idx[-1]) if idx.size else seg_start
        prev = (c[-1], t[-1])
        offset += n
    if not starts:
        return SegmentScan(np.zeros(0, dtype=np.int64), 0, None, None)
    starts = np.concatenate(starts).astype(np.int64)
    kc, kt = np.concatenate(start_conv), np.concatenate(start_turn)
    split = None
    if starts.size > 1:
        order = np.lexsort((starts, kt, kc))
        dup = np.flatnonzero((kc[order][1:] == kc[order][:-1]) & (kt[order][1:] == kt[order][:-1]))
        if dup.size:
            j = int(order[dup + 1][np.argmin(starts[order][dup + 1])])
            split = (int(starts[j]), np.concatenate(orig_c)[j].item(), np.concatenate(orig_t)[j].item())
    return SegmentScan(starts, offset, split, bad_position)


def segment_offsets(conversation, turn, *, group="/tokens"):
    """CSR offsets of the segments given per-token conversation and turn ids.

    A new segment starts wherever ``(conversation, turn)`` changes. A key that
    appears again after another key (a segment split in two places) is an
    error, because lag pairs would otherwise silently cross the gap.

    Parameters
    ----------
    conversation, turn : array_like of int, shape (n_tokens,)
        Per-token ids (NumPy or dask; any integer width).
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
    c = getattr(conversation, "data", conversation)
    t = getattr(turn, "data", turn)
    if not hasattr(c, "dask"):
        c = np.asarray(c)
    if not hasattr(t, "dask"):
        t = np.asarray(t)
    if c.ndim != 1 or t.shape != c.shape:
        raise StudyError(
            f"{group}: conversation and turn must be 1-D of one length, "
            f"got shapes {c.shape} and {t.shape}"
        )
    for name, values in (("conversation", c), ("turn", t)):
        if values.dtype.kind not in "iu":
            raise StudyError(f"{group}: {name} has dtype {values.dtype}; expected an integer dtype")
    scan = scan_segments(c, t)
    if scan.split is not None:
        raise StudyError(scan.split_message(group))
    return scan.offsets


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
    return segment_offsets(obj["conversation"].variable.data, obj["turn"].variable.data)
