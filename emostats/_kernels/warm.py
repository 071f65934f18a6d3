"""Compile kernels ahead of their first use, in a child process, when Numba's cache is cold.

The first call after an install compiles every kernel it needs (seconds each; the
decay fit alone is about half of ``emostats persistence``'s cold start). Compilation
holds a lock of its own in each process, but two processes compile at once: while
this process opens the study and compiles the kernels of its first step, a child
compiles those of the later steps into the same on-disk cache (``cache=True``;
Numba writes cache files atomically). When the parent reaches such a kernel it
waits for the child's cache entry and loads it instead of compiling it again.

Nothing here changes a result: the child compiles the very signatures the NumPy
layer passes (``tests/test_warm.py`` checks that calling the wrappers afterwards
adds no signature), and if its cache entry does not fit, the parent compiles as
it would have anyway. Only numpy and the kernels are imported (kernel layer).

Usage (what the command line does)::

    from emostats._kernels import warm
    warm.start(["lag", "trajectory", "decay"])   # first topic here, the others in a child

``EMOSTATS_NO_PREWARM=1`` turns it off; one core, or a warm cache, starts nothing.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import time

import numpy as np

#: child processes started by :func:`start`, by topic
_CHILDREN: "dict[str, subprocess.Popen]" = {}
#: longest wait (s) for a child's cache entry before compiling here anyway
WAIT_S = 300.0


def _warm_lag():
    from . import lag, profile

    x = np.zeros((8, 2), dtype=np.float32)
    offsets = np.array([0, 5, 8], dtype=np.int64)
    groups = np.zeros(2, dtype=np.int64)
    ref = lag.reference(x)
    acc = np.zeros((1, 6, 1, 2))
    lag.lag_range(x, offsets, groups, 1, 8, ref, acc, 0, 2, 0, 2)
    lag.merge_arrays(acc, np.zeros_like(acc))
    prof = np.zeros((1, 6, 2, 3))
    profile.profile_range(x, offsets, groups, 2, 8, ref, prof, 0, 2, 0, 2)
    return profile.profile_range


def _warm_trajectory():
    from . import trajectory

    x = np.zeros((8, 2), dtype=np.float32)
    offsets = np.array([0, 5, 8], dtype=np.int64)
    groups = np.zeros(2, dtype=np.int64)
    mean = np.zeros(2)
    inv_sd = np.ones(2)
    lo, hi = np.array([1.0]), np.array([np.inf])
    shape = (1, 1, 2, 3)
    trajectory.trajectory_range(x, offsets, groups, mean, inv_sd, lo, hi, 2, 8, np.zeros(shape), np.zeros(shape),
                                np.zeros(shape), 0, 2)
    return trajectory.trajectory_range


def _warm_decay():
    from . import decay

    tau = np.arange(1.0, 9.0)
    Y = np.ascontiguousarray(np.exp(-tau / 3.0)[None, :])
    W = np.ones_like(Y)
    grid = np.linspace(0.0, 2.0, 4)
    E = np.ascontiguousarray(np.exp(-tau[None, :] / np.exp(grid)[:, None]))
    out = np.full((1, decay.N_OUT), np.nan)
    decay.fit_range(Y, W, tau, True, grid, E, 0.0, 2.0, True, True, out, 0, 1)
    return decay.fit_range


def _warm_firing():
    from . import firing

    index = np.array([[0, 1], [1, -1], [0, 1], [1, 1]], dtype=np.int32)
    offsets = np.array([0, 4], dtype=np.int64)
    firing.index_range(index)
    firing.n_valid_pairs(offsets, 2)
    firing.firing_counts(index, offsets, 2, 2, 0, 0, 1)
    return firing.firing_counts


#: topic (kernel module) -> function compiling its kernels with the NumPy layer's signatures;
#: returns the kernel compiled last (its cache index appears when the topic is done)
WARMERS = {"lag": _warm_lag, "trajectory": _warm_trajectory, "decay": _warm_decay, "firing": _warm_firing}
#: pipeline step -> kernel topic it calls (the command line warms the topics of the steps it will run)
STEP_TOPICS = {"persistence": "lag", "profile": "lag", "trajectories": "trajectory", "decay": "decay",
               "decay_profile": "decay", "sae_persistence": "firing", "sae_density": "firing"}
#: the kernel whose cache index marks a topic as compiled
_LAST = {"lag": ("profile", "profile_range"), "trajectory": ("trajectory", "trajectory_range"),
         "decay": ("decay", "fit_range"), "firing": ("firing", "firing_counts")}


def topics_of(steps):
    """Kernel topics of pipeline ``steps``, in the order the steps use them first.

    Examples
    --------
    >>> topics_of(["persistence", "looping", "profile", "trajectories", "decay"])
    ['lag', 'trajectory', 'decay']
    """
    return list(dict.fromkeys(STEP_TOPICS[s] for s in steps if s in STEP_TOPICS))


def _kernel(topic):
    import importlib

    module, name = _LAST[topic]
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def index_path(kernel):
    """Path of Numba's cache index of ``kernel`` (None if Numba's internals moved)."""
    try:
        return kernel._cache._cache_file._index_path
    except AttributeError:
        return None


def is_cached(topic):
    """True when Numba's cache holds the topic's kernels (or when that cannot be told)."""
    path = index_path(_kernel(topic))
    return path is None or os.path.exists(path)


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def background():
    """Topics a child process is compiling right now (named in the parent's first compile note)."""
    return [t for t, proc in _CHILDREN.items() if proc.poll() is None]


def start(topics, quiet=True):
    """Compile the kernels of ``topics[1:]`` in a child process if the cache does not hold them.

    ``topics`` lists kernel modules (keys of :data:`WARMERS`) in the order the
    caller will use them; the first is left to the caller, which needs it first.
    Returns the topics handed to the child (empty when nothing was started).
    Nothing is printed unless ``quiet=False``: the first compile note of this
    process names the topics compiling in the background (so a command that
    fails before any kernel, e.g. on a bad study file, prints only its error).

    Examples
    --------
    >>> start([], quiet=True)
    []
    """
    if os.environ.get("EMOSTATS_NO_PREWARM") or os.environ.get("NUMBA_DISABLE_JIT") == "1" or _cores() < 2:
        return []
    ordered = list(dict.fromkeys(t for t in topics if t in WARMERS))
    cold = [t for t in ordered[1:] if t not in _CHILDREN and not is_cached(t)]
    if not cold:
        return []
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds emostats/
    proc = subprocess.Popen([sys.executable, "-m", "emostats._kernels.warm", *cold], cwd=root,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for topic in cold:
        _CHILDREN[topic] = proc
    if not quiet and not os.environ.get("EMOSTATS_QUIET_COMPILE"):
        print(f"emostats: compiling the {', '.join(cold)} kernels for this machine in the background "
              f"(first use; cached for later runs)", file=sys.stderr, flush=True)
    return cold


def wait_for(topic, timeout=WAIT_S):
    """Wait until the child compiling ``topic`` has cached it (or ended); True if it is cached now."""
    proc = _CHILDREN.pop(topic, None)
    if proc is None:
        return False
    path = index_path(_kernel(topic))
    deadline = time.monotonic() + timeout
    while path is not None and not os.path.exists(path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return path is not None and os.path.exists(path)


@atexit.register
def _stop_children():
    """A child still compiling when the parent ends is stopped (Numba's cache files are written atomically)."""
    for proc in set(_CHILDREN.values()):
        if proc.poll() is None:
            proc.terminate()
    _CHILDREN.clear()


def main(argv=None):
    """Compile the topics named in ``argv`` (the child process's entry point)."""
    for topic in (sys.argv[1:] if argv is None else argv):
        WARMERS[topic]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
