"""Reduce over chunks along ``token`` with an overlap of ``reach`` tokens: the one chunk scheme.

Every analysis that pairs a token with a later one (lag moments and the lag
profile, trajectories, SAE firing counts, the streamed ``/moments``) splits the
tokens into chunks and maps each chunk to *sufficient statistics* that merge
exactly. A pair ``(t, t + L)`` with ``L <= reach`` is counted by the chunk that
holds its first token ``t``, so each chunk's task needs its own rows plus the
first ``reach`` rows after it, and nothing more:

- :func:`overlapping_spans` cuts the tokens into :class:`Span` s: own rows
  ``[start, stop)`` and the block ``[start, end)`` with ``end = min(stop + reach,
  n)``, and the segment offsets (and per-segment groups) cut to the block.
- :func:`reduce_over_chunks` runs ``fn(block, span)`` on every span and merges
  the results in a fixed tree (:func:`tree_reduce`, ``fan_in`` at a time, in
  chunk order), so the result has the same bits whatever the scheduler and the
  order in which tasks finish. For a dask array the block is the dask slice
  ``data[start:end]``: the ``reach`` overlap rows are *sliced* from the
  following chunk(s), never a concatenation of whole next chunks, and dask's
  graph optimisation pushes that slice into the read (a study opened from disk
  reads only those rows again). A chunk shorter than ``reach`` is fine: the
  overlap then spans several following chunks. For anything else (a NumPy
  array, a lazily indexed file variable) the blocks are read one after another
  and merged by the *same* tree, held as a stack of at most ``fan_in - 1``
  partial results per level, so the eager and the dask reduction over the same
  bounds give the same bits; ``fan_in=None`` merges in a left fold (one running
  total: for large statistics such as hidden x hidden moments).

Floating-point statistics merged with the exact pairwise formulas (Chan,
Golub and LeVeque) equal the one-pass in-memory result to rounding for any
chunking; integer statistics (firing counts) are exactly equal.

Examples
--------
>>> import numpy as np
>>> x = np.arange(10.0)
>>> def lag1_pairs(block, span):  # the pairs (t, t+1) whose first token is in the chunk
...     own = span.stop - span.start
...     return float((block[:own][: len(block) - 1] * block[1:own + 1]).sum())
>>> total = reduce_over_chunks(x, 1, lag1_pairs, lambda *p: sum(p), bounds=[(0, 3), (3, 4), (4, 10)])
>>> total == float((x[:-1] * x[1:]).sum())
True
"""

from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

__all__ = ["Span", "token_bounds", "overlapping_spans", "tree_reduce", "reduce_over_chunks", "is_dask", "read_rows"]

#: results merged at a time by the tree reduction (the default)
FAN_IN = 8


class Span(NamedTuple):
    """One chunk's task: own rows ``[start, stop)``, block rows ``[start, end)`` (``end - stop <= reach``).

    ``offsets`` are the CSR offsets of the segments cut to the block (local:
    ``offsets[0] == 0``, ``offsets[-1] == end - start``) and ``groups`` the
    group of each of those segments (None without groups).
    """

    start: int
    stop: int
    end: int
    offsets: Optional[np.ndarray]
    groups: Optional[np.ndarray]

    @property
    def own(self) -> int:
        """Number of rows the chunk owns (pairs start in them)."""
        return self.stop - self.start


def is_dask(data) -> bool:
    """True for a dask array or a dask-backed DataArray."""
    data = getattr(data, "data", data) if hasattr(data, "dims") else data
    return getattr(data, "dask", None) is not None


def token_bounds(n_tokens: int, chunks: Optional[Sequence[int]] = None, block_tokens: Optional[int] = None):
    """Contiguous ``(start, stop)`` of non-empty chunks: given chunk sizes, or blocks of ``block_tokens``.

    Examples
    --------
    >>> token_bounds(7, block_tokens=3)
    [(0, 3), (3, 6), (6, 7)]
    >>> token_bounds(5, chunks=(2, 0, 3))
    [(0, 2), (2, 5)]
    """
    n_tokens = int(n_tokens)
    if chunks is not None:
        edges = np.concatenate(([0], np.cumsum(np.asarray(chunks, dtype=np.int64))))
        if edges[-1] != n_tokens:
            raise ValueError(f"chunks sum to {int(edges[-1])}, expected {n_tokens} tokens")
    else:
        step = max(1, int(block_tokens or n_tokens or 1))
        edges = np.append(np.arange(0, n_tokens, step), n_tokens)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def overlapping_spans(bounds, reach: int, offsets=None, groups=None):
    """The :class:`Span` of each chunk of ``bounds``: own rows plus the next ``reach`` tokens.

    Parameters
    ----------
    bounds : sequence of (start, stop)
        Contiguous chunks covering ``0..n``.
    reach : int
        Overlap (the largest lag the task needs).
    offsets : array_like of int64, optional
        Global CSR segment offsets (last = n); cut to each block.
    groups : array_like of int, optional
        Group of each global segment.

    Examples
    --------
    >>> s = overlapping_spans([(0, 4), (4, 6), (6, 9)], 3, offsets=[0, 5, 9])
    >>> [(x.start, x.stop, x.end) for x in s], s[1].offsets.tolist()
    ([(0, 4, 7), (4, 6, 9), (6, 9, 9)], [0, 1, 5])
    """
    reach = int(reach)
    if reach < 0:
        raise ValueError(f"reach must be >= 0, got {reach}")
    n = int(bounds[-1][1]) if bounds else 0
    if offsets is not None:
        offsets = np.asarray(offsets, dtype=np.int64)
    spans = []
    for a, b in bounds:
        end = min(int(b) + reach, n)
        local = local_groups = None
        if offsets is not None:
            inner = offsets[(offsets > a) & (offsets < end)]
            local = np.concatenate(([a], inner, [end])).astype(np.int64) - a
            if groups is not None:
                seg = np.searchsorted(offsets, a + local[:-1], side="right") - 1
                local_groups = np.asarray(groups)[seg]
        spans.append(Span(int(a), int(b), end, local, local_groups))
    return spans


def tree_reduce(parts, merge: Callable, fan_in: Optional[int] = FAN_IN):
    """Merge ``parts`` in a fixed tree: consecutive groups of ``fan_in``, level by level (None: a left fold).

    Works on plain values and on ``dask.delayed`` objects alike (``merge`` is
    wrapped in ``dask.delayed`` when the parts are delayed).

    Examples
    --------
    >>> tree_reduce(["a", "b", "c", "d", "e"], lambda *p: "(" + "".join(p) + ")", fan_in=2)
    '(((ab)(cd))e)'
    >>> tree_reduce(["a", "b", "c"], lambda *p: "(" + "".join(p) + ")", fan_in=None)
    '((ab)c)'
    """
    parts = list(parts)
    if not parts:
        return None
    if _is_delayed(parts[0]):
        import dask

        merge = dask.delayed(merge)
    if fan_in is None:
        out = parts[0]
        for p in parts[1:]:
            out = merge(out, p)
        return out
    fan_in = max(2, int(fan_in))
    while len(parts) > 1:
        parts = [merge(*parts[i:i + fan_in]) if len(parts[i:i + fan_in]) > 1 else parts[i]
                 for i in range(0, len(parts), fan_in)]
    return parts[0]


def _is_delayed(x) -> bool:
    if not hasattr(x, "__dask_graph__"):
        return False
    from dask.delayed import Delayed

    return isinstance(x, Delayed)


class _StreamingTree:
    """The tree of :func:`tree_reduce` built as the parts arrive (at most ``fan_in - 1`` held per level)."""

    def __init__(self, merge, fan_in):
        self.merge, self.fan_in = merge, fan_in
        self.levels: list = []
        self.total = None
        self.count = 0

    def push(self, item):
        self.count += 1
        if self.fan_in is None:
            self.total = item if self.count == 1 else self.merge(self.total, item)
            return
        level = 0
        while True:
            if len(self.levels) <= level:
                self.levels.append([])
            self.levels[level].append(item)
            if len(self.levels[level]) < self.fan_in:
                return
            item = self.merge(*self.levels[level])
            self.levels[level] = []
            level += 1

    def result(self):
        if self.fan_in is None or not self.count:
            return self.total
        carry = None
        for level, held in enumerate(self.levels):
            buf = held + ([carry] if carry is not None else [])
            higher = any(self.levels[level + 1:])
            if not buf:
                carry = None
            elif len(buf) == 1:
                if not higher:
                    return buf[0]
                carry = buf[0]
            else:
                carry = self.merge(*buf)
                if not higher:
                    return carry
        return carry


def read_rows(data, start: int, end: int) -> np.ndarray:
    """Rows ``start..end`` of a NumPy, dask or lazily indexed array (or DataArray) as a NumPy array."""
    block = data[start:end]
    if hasattr(block, "dims") and hasattr(block, "values"):
        block = block.values  # a DataArray: loads lazily indexed or dask-backed data
    elif hasattr(block, "compute"):
        block = block.compute()
    return np.asarray(block)


def reduce_over_chunks(data, reach: int, fn: Callable, merge: Callable, *, offsets=None, groups=None,
                       bounds=None, block_tokens: Optional[int] = None, fan_in: Optional[int] = FAN_IN):
    """``merge`` over chunks of ``fn(block, span)``, each block its chunk's rows plus the next ``reach`` rows.

    Parameters
    ----------
    data : dask array, NumPy array or sliceable (token, ...)
        A dask array (or dask-backed DataArray) is reduced over its token
        chunks (its other axes are merged into one chunk), in parallel under
        the active dask scheduler (threads, processes or ``dask.distributed``).
        Anything else is read block by block along ``bounds`` (or blocks of
        ``block_tokens``, default: everything at once).
    reach : int
        Overlap in tokens (the largest lag a task needs).
    fn : callable ``(block: numpy.ndarray, span: Span) -> statistics``
        ``block`` holds the rows ``span.start .. span.end``; pairs whose first
        token is in ``span.start .. span.stop`` belong to this chunk.
    merge : callable ``(*statistics) -> statistics``
        Merges results given in chunk order (it may reuse its first argument).
    offsets, groups : array_like, optional
        Global segment offsets and per-segment groups, cut to each span.
    bounds : sequence of (start, stop), optional
        Chunks of a non-dask input.
    fan_in : int or None
        Results merged at a time (None: a left fold with one running total).

    Returns
    -------
    The merged statistics, or None when there are no tokens.
    """
    if is_dask(data):
        import dask

        arr = data.data if hasattr(data, "dims") else data
        if arr.ndim > 1:
            arr = arr.rechunk({k: -1 for k in range(1, arr.ndim)})
        spans = overlapping_spans(token_bounds(arr.shape[0], chunks=arr.chunks[0]), reach, offsets, groups)
        if not spans:
            return None
        pieces = dask.optimize(*[arr[s.start:s.end] for s in spans])  # joint: a chunk read once, overlaps sliced
        task = dask.delayed(fn)
        parts = [task(piece, span) for piece, span in zip(pieces, spans)]
        return dask.compute(tree_reduce(parts, merge, fan_in))[0]
    n = int(data.shape[0])
    if bounds is None:
        bounds = token_bounds(n, block_tokens=block_tokens)
    tree = _StreamingTree(merge, fan_in)
    for span in overlapping_spans(bounds, reach, offsets, groups):
        tree.push(fn(read_rows(data, span.start, span.end), span))
    return tree.result()
