"""Running the GIL-free kernels of ``emostats._kernels`` on Python threads, with the same bits for any count.

Two ways to split the work, both fixed by the input alone (never by the thread count):

- :func:`run_ranges`: contiguous ranges of independent items (probes, curves), one per
  thread; every item is computed by the same code whatever range it falls in.
- :func:`run_pieces`: contiguous pieces of *segments* (token ranges), each reduced into
  its own accumulator, merged afterwards in piece order. The number of pieces depends
  only on the number of tokens, so the merge order, and therefore every bit of the
  result, is the same for one thread or many. Each thread streams whole rows of its own
  part of the array (splitting the probes of every row instead makes both cores pull in
  most of every row).

This is the NumPy layer: it validates nothing and is called by ``emostats._lagstats``
and ``emostats.decay``.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._kernels import _config, warm

__all__ = ["note_compile", "SERIAL_WORK", "PIECE_TOKENS", "MAX_PIECES", "PIECE_BYTES", "run_ranges", "segment_pieces",
           "run_pieces"]

#: below this much work (array elements x lags) a kernel runs in the calling thread:
#: starting threads costs more than it saves (the result has the same bits either way)
SERIAL_WORK = 1 << 21
#: tokens per piece of segments (at least), and the most pieces
PIECE_TOKENS = 1 << 14
MAX_PIECES = 32
#: most bytes of per-piece accumulators; above it the segments stay in one piece (split by probes)
PIECE_BYTES = 64 * 2**20


#: topics (kernel modules) already checked in this process
_NOTED = set()


def note_compile(kernel):
    """Say on stderr, once per kernel module and process, that a kernel is about to be compiled.

    Only when Numba's cache holds no compiled version of it (the first use after an
    install or an upgrade): the call then takes seconds instead of milliseconds, and a
    command line user should know why. Set ``EMOSTATS_QUIET_COMPILE=1`` to silence it.
    """
    topic = getattr(getattr(kernel, "py_func", None), "__module__", "").rsplit(".", 1)[-1]
    if not topic or topic in _NOTED:
        return
    _NOTED.add(topic)
    if getattr(kernel, "signatures", None) or warm.wait_for(topic):  # a child process compiled it (warm.start)
        return
    if os.environ.get("EMOSTATS_QUIET_COMPILE"):
        return
    try:  # Numba's cache index of this function (internal API: no note if it moves)
        index = kernel._cache._cache_file._index_path
    except AttributeError:
        return
    if not os.path.exists(index):
        others = warm.background()
        also = f"; {', '.join(others)} compiling meanwhile in a background process" if others else ""
        print(f"emostats: compiling the {topic} kernels for this machine (first use; cached for later runs{also})",
              file=sys.stderr, flush=True)


def _serial(n, work, threads):
    return n <= 1 or (work is not None and work < SERIAL_WORK)


def run_ranges(kernel, n_items, threads, args, work=None):
    """Call ``kernel(*args, i0, i1)`` on fixed contiguous ranges of ``n_items``, one per thread.

    The kernels release the GIL, so Python threads run them in parallel. Every item
    is computed by the same code whatever range it falls in, so results are the same
    bits for any count. Small work (``work < SERIAL_WORK``) runs in the calling thread.

    Examples
    --------
    >>> out = np.zeros(5)
    >>> def kernel(out, i0, i1):
    ...     out[i0:i1] = np.arange(i0, i1)
    >>> run_ranges(kernel, 5, 2, (out,), work=SERIAL_WORK)
    >>> out.tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    note_compile(kernel)
    n = min(_config.n_threads(threads), max(int(n_items), 1))
    if _serial(n, work, threads):
        kernel(*args, 0, n_items)
        return
    bounds = [(n_items * c // n, n_items * (c + 1) // n) for c in range(n)]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="emostats") as pool:
        for future in [pool.submit(kernel, *args, i0, i1) for i0, i1 in bounds]:
            future.result()


def segment_pieces(offsets, acc_bytes=0):
    """Contiguous segment ranges ``[(s0, s1), ...]`` of about equal tokens; their number depends only on the input.

    One piece per ``PIECE_TOKENS`` tokens, at most ``MAX_PIECES``, at most one per
    segment, and a single piece when the per-piece accumulators (``acc_bytes`` each)
    would exceed ``PIECE_BYTES``.

    Examples
    --------
    >>> segment_pieces(np.array([0, 10, 20, 30]))
    [(0, 3)]
    >>> segment_pieces(np.array([0, 20_000, 40_000]))
    [(0, 1), (1, 2)]
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    n_seg = offsets.shape[0] - 1
    n_tokens = int(offsets[-1]) if offsets.size else 0
    n = max(1, min(MAX_PIECES, n_tokens // PIECE_TOKENS, n_seg))
    if acc_bytes and n * acc_bytes > PIECE_BYTES:
        n = 1
    if n == 1:
        return [(0, n_seg)]
    # segment s goes to the piece holding its first token
    cuts = np.searchsorted(offsets[:-1], [n_tokens * c // n for c in range(1, n)], side="left")
    bounds = np.unique(np.concatenate(([0], cuts, [n_seg]))).tolist()
    return list(zip(bounds[:-1], bounds[1:]))


def run_pieces(kernel, args, acc, offsets, n_items, threads, merge, work=None):
    """Reduce ``kernel(*args, acc_piece, s0, s1, i0, i1)`` over pieces of segments into ``acc`` (zeros).

    With several pieces, each gets a zeroed copy of ``acc`` and all ``n_items`` items;
    the pieces run on up to ``threads`` threads and are merged into ``acc`` in piece
    order with ``merge(acc, acc_piece)``. With one piece the items are split over the
    threads instead (:func:`run_ranges`). Either way the bits do not depend on ``threads``.
    """
    note_compile(kernel)
    pieces = segment_pieces(offsets, acc.nbytes)
    n = min(_config.n_threads(threads), len(pieces))
    if len(pieces) == 1:
        s0, s1 = pieces[0]
        run_ranges(kernel, n_items, threads, (*args, acc, s0, s1), work=work)
        return acc
    parts = [np.zeros_like(acc) for _ in pieces]
    if _serial(n, work, threads):
        for part, (s0, s1) in zip(parts, pieces):
            kernel(*args, part, s0, s1, 0, n_items)
    else:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="emostats") as pool:
            futures = [pool.submit(kernel, *args, part, s0, s1, 0, n_items) for part, (s0, s1) in zip(parts, pieces)]
            for future in futures:
                future.result()
    for part in parts:  # fixed order: piece 0 first (merging into zeros copies it exactly)
        merge(acc, part)
    return acc
