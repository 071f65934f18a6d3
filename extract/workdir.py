"""The work folder of an extraction run: each stage's cached result, its shards and their locks, the stage times.

A stage's result is ``<stage>.npz`` holding, as ``key``, the settings it depends on
(:meth:`extract.pipeline.Config.key`): :func:`cached` finds it only when the key
matches. Stories and conversations can be made in shards (``<stage>.shardKofN.npz``)
by several processes: a process claims a shard with a ``.lock`` file beside it
(:func:`claim`), and :func:`gather_shards` makes the unclaimed ones and waits for the
others. ``times.json`` holds the seconds each stage took (:func:`record_time`, :func:`read_times`).
"""

import json
import time
from pathlib import Path

import numpy as np

__all__ = ["save_npz", "cached", "shard_bounds", "shard_path", "gather_shards", "claim", "read_times", "record_time"]


def save_npz(path, **arrays):
    """``np.savez`` to ``path`` through a temporary file renamed into place."""
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def cached(workdir, stage, cfg):
    """The path of ``stage``'s cached result in ``workdir`` when its key is ``cfg.key(stage)``, else None."""
    path = Path(workdir) / f"{stage}.npz"
    if path.exists():
        with np.load(path, allow_pickle=True) as z:
            if str(z["key"]) == cfg.key(stage):
                return path
    return None


def shard_bounds(n, shards, k):
    """Items ``[lo, hi)`` of shard ``k`` when ``n`` items are cut into ``shards`` contiguous parts."""
    edges = np.linspace(0, n, shards + 1).round().astype(int)
    return int(edges[k]), int(edges[k + 1])


def shard_path(workdir, stage, k, n):
    """The file of shard ``k`` of ``n`` of ``stage``."""
    return Path(workdir) / f"{stage}.shard{k}of{n}.npz"


def gather_shards(cfg, ctx, workdir, stage, n, make):
    """Paths of all ``n`` shards of ``stage``: make the missing, unclaimed ones here, wait for
    the ones another process has claimed (a ``.lock`` file beside the shard)."""
    key = cfg.key(stage)

    def ready(k):
        path = shard_path(workdir, stage, k, n)
        if path.exists():
            with np.load(path, allow_pickle=True) as z:
                return str(z["key"]) == key
        return False

    for k in range(n):
        lock = shard_path(workdir, stage, k, n).with_suffix(".lock")
        if not ready(k) and not lock.exists():
            make(cfg, ctx, workdir, k)
    waited = 0
    while not all(ready(k) for k in range(n)):
        if waited % 300 == 0:
            ctx.log(f"{stage}: waiting for shards made by other processes "
                    f"(delete stale {stage}.shard*.lock files if none is running)")
        time.sleep(10)
        waited += 10
    return [shard_path(workdir, stage, k, n) for k in range(n)]


def claim(path):
    """Claim the shard ``path`` for this process: a ``.lock`` file beside it (holding the pid); returns the lock."""
    lock = path.with_suffix(".lock")
    lock.write_text(str(__import__("os").getpid()))
    return lock


def read_times(workdir):
    """{stage: seconds} of ``times.json`` in ``workdir`` ({} when there is none)."""
    p = Path(workdir) / "times.json"
    return json.loads(p.read_text()) if p.exists() else {}


def record_time(workdir, name, seconds):
    """Set ``name``'s seconds in ``workdir``'s ``times.json`` (the other entries kept)."""
    times = read_times(workdir)
    times[name] = seconds
    (Path(workdir) / "times.json").write_text(json.dumps(times))
