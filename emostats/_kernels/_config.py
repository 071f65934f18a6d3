"""One place for the Numba compilation options of every kernel.

``FASTMATH`` leaves out the ``nnan``/``ninf`` flags so that NaN checks inside
kernels survive (as stumpy does); ``cache=True`` makes a new process load a
compiled kernel in a fraction of a second instead of recompiling it.

Caution: with ``reassoc`` and ``nsz`` LLVM may fold ``isfinite`` to True inside
vectorised loops (seen once in the lag kernels); test NaN with ``v != v`` or
``np.isnan`` and inf with ``np.isinf``, and keep a NaN edge case in every
kernel's tests.
"""

import numba

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

#: Options for serial kernels.
JIT = dict(cache=True, nogil=True, fastmath=FASTMATH)
#: Options for kernels with ``numba.prange`` loops.
PJIT = dict(cache=True, nogil=True, fastmath=FASTMATH, parallel=True)


def n_threads(threads=None):
    """The number of threads to pass into a parallel kernel.

    Parameters
    ----------
    threads : int, optional
        Requested thread count; ``None`` means all of Numba's threads.

    Examples
    --------
    >>> n_threads(1)
    1
    """
    limit = numba.config.NUMBA_NUM_THREADS
    if threads is None:
        return numba.get_num_threads()
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return min(threads, limit)
