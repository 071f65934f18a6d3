"""Tracked figures of the lag kernels: measure, record one history point per commit, compare.

Every tracked figure is measured in one process, beside the reference it is a
ratio to, so that the ratios hold on other machines and under load:

- ``speedup_vs_masked_numpy``: the obvious NumPy way (one global shift, a
  same-segment mask, float64 two-pass Pearson) over the kernel;
- ``fraction_of_read_bandwidth``: the time to read the input once
  (``np.add.reduce``, the floor of any pass) over the kernel's;
- ``fraction_of_flop_bound``: for the profile, its multiply-adds per second over
  those of a float64 matrix product (OpenBLAS, same machine, same run);

each in CPU seconds of one thread (``threads=1``, ``time.thread_time``), which a
loaded machine distorts least: these are the figures ``benchmarks.compare``
checks. The same ratios in wall-clock time on all threads (``wall_*``; e.g. the
fraction of the two-thread read bandwidth, each thread reducing half the
buffer) and the times in seconds (``*_s``) are recorded for reading.

Usage::

    python -m benchmarks.track --size smoke            # print the figures
    python -m benchmarks.track --size full --record    # append a history point for HEAD
    python -m benchmarks.compare --size smoke          # working tree against the last record

History points live in ``benchmarks/history/<size>/<date>_<sha>.json`` (one per
commit and size): sha, commit date and subject, the load average before and
after, the machine and the figures with their measured noise.

To add a kernel to the tracked set, write a function ``bench_<name>(size, repeat)``
returning ``{figure: (value, noise)}`` and add it to :data:`TRACKED` with the
names of its ratio figures (higher is better) in :data:`COMPARED` (see
benchmarks/README.md). The input generators are those of the kernel registry
(``tests/naive/registry.py``), so benchmarks and equivalence tests share them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
HISTORY = HERE / "history"

#: problem sizes: tokens, probes (lag), max lag (profile), SAE tokens, k, features (firing)
SIZES = {
    "smoke": dict(n_tokens=200_000, n_probes=64, lag=100, max_lag=200, sae_tokens=200_000, k=16,
                  n_features=20_000),
    "full": dict(n_tokens=1_000_000, n_probes=171, lag=100, max_lag=200, sae_tokens=1_000_000, k=64,
                 n_features=100_000),
}

#: env var to inject a slowdown, e.g. ``lag100=2``: the tracked call does its work twice (compare's test)
SLOWDOWN_ENV = "EMOSTATS_BENCH_SLOWDOWN"


def _slowdown(name):
    spec = os.environ.get(SLOWDOWN_ENV, "")
    for item in filter(None, spec.split(",")):
        key, _, factor = item.partition("=")
        if key.strip() == name:
            return max(1, int(factor or 2))
    return 1


def _repeated(fn, name):
    k = _slowdown(name)
    if k == 1:
        return fn

    def slow(*args, **kwargs):
        for _ in range(k - 1):
            fn(*args, **kwargs)
        return fn(*args, **kwargs)

    return slow


def times(fn, *args, repeat=5, clock=time.perf_counter, **kwargs):
    """Seconds (``clock``) of ``repeat`` calls after one warm-up call (JIT compile and page faults kept out)."""
    fn(*args, **kwargs)
    out = []
    for _ in range(repeat):
        t0 = clock()
        fn(*args, **kwargs)
        out.append(clock() - t0)
    return np.array(out)


def cpu_times(fn, *args, repeat=5, **kwargs):
    """CPU seconds of the calling thread (``time.thread_time``): what one core spends, whatever the load."""
    return times(fn, *args, repeat=repeat, clock=time.thread_time, **kwargs)


def paired_ratio(ref, kernel, repeat=7):
    """(median, noise) of ref_time / kernel_time over ``repeat`` back-to-back pairs, in one thread's CPU seconds.

    Each pair is measured within a few milliseconds, so a change of load, clock or cache
    pressure moves both of its times alike; noise = the interquartile range / median.
    ``ref`` and ``kernel`` are zero-argument callables (warmed up here once).
    """
    ref()
    kernel()
    ratios = []
    for _ in range(repeat):
        t0 = time.thread_time()
        ref()
        t1 = time.thread_time()
        kernel()
        t2 = time.thread_time()
        ratios.append((t1 - t0) / max(t2 - t1, 1e-9))
    q1, med, q3 = np.percentile(ratios, [25, 50, 75])
    return float(med), float((q3 - q1) / med) if med > 0 else 0.0


def best_and_noise(samples):
    """(best, relative noise): the best sample and (median - best) / best."""
    best = float(np.min(samples))
    return best, float((np.median(samples) - best) / best) if best > 0 else 0.0


def _ratio(num, den):
    """Ratio of two (best, noise) pairs; noises add."""
    return num[0] / den[0], num[1] + den[1]


_POOL = None


def read_floor(array, repeat=7):
    """(best, noise) wall seconds of reading ``array`` once on two threads (each reduces half the bytes)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bench-read")
    flat = array.reshape(-1)
    reduce = _reducer(flat)
    h = flat.size // 2

    def two():
        for f in [_POOL.submit(reduce, flat[:h]), _POOL.submit(reduce, flat[h:])]:
            f.result()

    return best_and_noise(times(two, repeat=repeat))


def _reducer(flat):
    return np.add.reduce if flat.dtype.kind == "f" else np.bitwise_or.reduce


def read_floor_cpu(array, repeat=7):
    """(best, noise) CPU seconds of one thread reading ``array`` once (``np.add.reduce``)."""
    flat = array.reshape(-1)
    return best_and_noise(cpu_times(_reducer(flat), flat, repeat=repeat))


def copy_time(array, repeat=7):
    out = np.empty_like(array)
    return best_and_noise(times(np.copyto, out, array, repeat=repeat))


def fma_rate(repeat=5, n=768, threads=None):
    """(best, noise) float64 multiply-adds per second of an n x n matrix product (BLAS).

    ``threads=1``: one BLAS thread, CPU time of the calling thread; else all threads, wall time.
    """
    a = np.random.default_rng(0).standard_normal((n, n))
    b = np.random.default_rng(1).standard_normal((n, n))
    if threads == 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            best, noise = best_and_noise(cpu_times(np.dot, a, b, repeat=repeat))
    else:
        best, noise = best_and_noise(times(np.dot, a, b, repeat=repeat))
    return n ** 3 / best, noise


def masked_numpy(x, offsets, lag):
    """The obvious NumPy way: shift the whole array, keep pairs within a segment, two-pass Pearson."""
    seg = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    same = seg[:-lag] == seg[lag:]
    a = x[:-lag][same].astype(np.float64)
    b = x[lag:][same].astype(np.float64)
    a -= a.mean(0)
    b -= b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def _inputs(size):
    from tests.naive.inputs import activations, sae_index

    s = SIZES[size]
    x, offsets = activations(s["n_tokens"], s["n_probes"], seed=0)
    return s, x, offsets, sae_index


# --------------------------------------------------------------------------- tracked benchmarks


def bench_lag100(size, repeat):
    """Lag 100: wall figures on all threads, and the compared figures in one thread's CPU seconds."""
    from emostats._lagstats import lag_correlation

    s, x, offsets, _ = _inputs(size)
    kernel = _repeated(lag_correlation, "lag100")
    lag = s["lag"]
    t_kernel = best_and_noise(times(kernel, x, offsets, lag, repeat=repeat))
    c_kernel = best_and_noise(cpu_times(kernel, x, offsets, lag, threads=1, repeat=repeat))
    c_numpy = best_and_noise(cpu_times(masked_numpy, x, offsets, lag, repeat=2))
    t_read = read_floor(x)
    c_read = read_floor_cpu(x)
    t_copy = copy_time(x)
    flat = x.reshape(-1)

    def one():
        return kernel(x, offsets, lag, threads=1)

    speedup = paired_ratio(lambda: masked_numpy(x, offsets, lag), one, repeat=max(3, repeat))
    fraction = paired_ratio(lambda: np.add.reduce(flat), one, repeat=max(7, repeat))
    return {
        "kernel_s": t_kernel, "read_floor_s": t_read, "copy_s": t_copy,
        "kernel_1thread_cpu_s": c_kernel, "masked_numpy_cpu_s": c_numpy, "read_floor_1thread_cpu_s": c_read,
        "speedup_vs_masked_numpy": speedup,
        "fraction_of_read_bandwidth": fraction,
        "wall_speedup_vs_masked_numpy": _ratio((c_numpy[0], c_numpy[1]), t_kernel),
        "wall_fraction_of_2thread_read_bandwidth": _ratio(t_read, t_kernel),
        "wall_fraction_of_copy_bandwidth": _ratio(t_copy, t_kernel),
    }


def bench_profile(size, repeat):
    """Lag profile 0..max_lag: multiply-adds per second against a float64 matrix product's."""
    from emostats._lagstats import lag_correlation_profile, pair_counts

    s, x, offsets, _ = _inputs(size)
    kernel = _repeated(lag_correlation_profile, "profile")
    r = max(2, repeat // 2)
    t_kernel = best_and_noise(times(kernel, x, offsets, s["max_lag"], repeat=r))
    c_kernel = best_and_noise(cpu_times(kernel, x, offsets, s["max_lag"], threads=1, repeat=r))
    fmas = float(pair_counts(offsets, np.arange(s["max_lag"] + 1)).sum()) * x.shape[1]
    rate = fma_rate()
    rate1 = fma_rate(threads=1)
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((768, 768))
    with threadpool_limits(1):
        per_fma = paired_ratio(lambda: np.dot(a, a), lambda: kernel(x, offsets, s["max_lag"], threads=1), repeat=3)
    bound = (per_fma[0] * fmas / 768 ** 3, per_fma[1])  # (dgemm time / kernel time) x (kernel FMAs / dgemm FMAs)
    return {
        "kernel_s": t_kernel, "kernel_1thread_cpu_s": c_kernel,
        "flop_bound_s": (fmas / rate[0], rate[1]),
        "fraction_of_flop_bound": bound,
        "fraction_of_flop_bound_unpaired": _ratio((fmas / rate1[0], rate1[1]), c_kernel),
        "wall_fraction_of_flop_bound": _ratio((fmas / rate[0], rate[1]), t_kernel),
        "gfma_per_s": (fmas / t_kernel[0] / 1e9, t_kernel[1]),
    }


def bench_firing(size, repeat):
    """SAE firing counts: against reading the index array once."""
    from emostats.sae import firing_counts

    s, _, _, sae_index = _inputs(size)
    index, offsets = sae_index(s["sae_tokens"], s["k"], s["n_features"], seed=0)
    kernel = _repeated(firing_counts, "firing")
    t_kernel = best_and_noise(times(kernel, index, offsets, s["lag"], s["n_features"], repeat=repeat))
    c_kernel = best_and_noise(cpu_times(kernel, index, offsets, s["lag"], s["n_features"], threads=1,
                                        repeat=repeat))
    t_read = read_floor(index)
    flat = index.reshape(-1)
    fraction = paired_ratio(lambda: np.bitwise_or.reduce(flat),
                            lambda: kernel(index, offsets, s["lag"], s["n_features"], threads=1), repeat=max(7, repeat))
    # a reference with the kernel's access pattern (random increments into per-feature counts), which load and
    # cache pressure slow down alike: the compared figure (the read floor is streaming and suffers far less)
    ids = np.ascontiguousarray(flat.astype(np.intp) + 1)
    bincount = paired_ratio(lambda: np.bincount(ids, minlength=s["n_features"] + 1),
                            lambda: kernel(index, offsets, s["lag"], s["n_features"], threads=1), repeat=max(7, repeat))
    return {
        "kernel_s": t_kernel, "read_floor_s": t_read, "kernel_1thread_cpu_s": c_kernel,
        "fraction_of_read_bandwidth": fraction,
        "fraction_of_bincount": bincount,
        "wall_fraction_of_2thread_read_bandwidth": _ratio(t_read, t_kernel),
        "wall_times_read_floor": _ratio(t_kernel, t_read),
    }


# --------------------------------------------------------------------------- same-run A/B against a commit


def ab_ratio(old, new, repeat=9, min_seconds=0.05):
    """(median, noise) of old_time / new_time over ``repeat`` interleaved pairs, in this thread's CPU seconds.

    Both are zero-argument callables doing the same work (the kernel of a base commit and of
    the working tree); the order inside a pair alternates, and each timing repeats its call
    until it lasts ``min_seconds``, so that load, clock and cache pressure hit both alike.
    noise = interquartile range / median. Above 1: the working tree is faster.
    """
    old()
    new()
    t0 = time.thread_time()
    new()
    inner = max(1, int(np.ceil(min_seconds / max(time.thread_time() - t0, 1e-6))))

    def timed(fn):
        t = time.thread_time()
        for _ in range(inner):
            fn()
        return time.thread_time() - t

    ratios = []
    for i in range(repeat):
        if i % 2:
            tn = timed(new)
            to = timed(old)
        else:
            to = timed(old)
            tn = timed(new)
        ratios.append(to / max(tn, 1e-9))
    q1, med, q3 = np.percentile(ratios, [25, 50, 75])
    return float(med), float((q3 - q1) / med) if med > 0 else 0.0


def _ab_calls(name, pkg, size):
    """(old, new) zero-argument calls of tracked kernel ``name``: ``pkg`` is the base commit's emostats."""
    s, x, offsets, sae_index = _inputs(size)
    if name == "lag100":
        from emostats._lagstats import lag_correlation as new_fn

        old_fn = pkg._lagstats.lag_correlation
        args = (x, offsets, s["lag"])
    elif name == "profile":
        from emostats._lagstats import lag_correlation_profile as new_fn

        old_fn = pkg._lagstats.lag_correlation_profile
        args = (x, offsets, s["max_lag"])
    elif name == "firing":
        from emostats.sae import firing_counts as new_fn

        old_fn = pkg.sae.firing_counts
        index, offs = sae_index(s["sae_tokens"], s["k"], s["n_features"], seed=0)
        args = (index, offs, s["lag"], s["n_features"])
    else:
        raise KeyError(name)
    new_fn = _repeated(new_fn, name)
    return (lambda: old_fn(*args, threads=1)), (lambda: new_fn(*args, threads=1))


def measure_ab(pkg, size="smoke", names=None, repeat=9):
    """A record whose figures are ``speed_vs_base`` (old time / new time, same run) per tracked kernel."""
    load_before = os.getloadavg()
    figures = {}
    for name in names or TRACKED:
        t0 = time.perf_counter()
        try:
            old, new = _ab_calls(name, pkg, size)
        except AttributeError as exc:  # the base commit does not have this kernel yet
            print(f"benchmarks: {name}: not in the base commit ({exc}); skipped", file=sys.stderr)
            continue
        value, noise = ab_ratio(old, new, repeat=repeat)
        figures[name] = {"speed_vs_base": {"value": value, "noise": noise}, "_seconds": time.perf_counter() - t0}
    return {"size": size, "sizes": SIZES[size], "load_before": load_before, "load_after": os.getloadavg(),
            "machine": machine(), "figures": figures}


#: tracked benchmarks, run in this order
TRACKED = {"lag100": bench_lag100, "profile": bench_profile, "firing": bench_firing}
#: figures compared by benchmarks.compare (ratios; higher is better)
COMPARED = {
    "lag100": ("speedup_vs_masked_numpy", "fraction_of_read_bandwidth"),
    "profile": ("fraction_of_flop_bound",),
    "firing": ("fraction_of_read_bandwidth",),
}


# --------------------------------------------------------------------------- records


#: the git checkout whose commits are recorded (override to measure an exported old tree)
REPO = Path(os.environ.get("EMOSTATS_BENCH_REPO", HERE.parent))


def _git(*args):
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine():
    info = {"system": platform.system(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__}
    try:
        import llvmlite.binding as ll
        import numba

        info["cpu"] = ll.get_host_cpu_name()
        info["numba"] = numba.__version__
        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    except Exception:  # noqa: BLE001 - the record is still useful without it
        pass
    return info


def measure(size="smoke", names=None, repeat=5):
    """Run the tracked benchmarks; returns a record (dict) without commit fields."""
    load_before = os.getloadavg()
    figures = {}
    for name in names or TRACKED:
        t0 = time.perf_counter()
        out = TRACKED[name](size, repeat)
        figures[name] = {k: {"value": v[0], "noise": v[1]} for k, v in out.items()}
        figures[name]["_seconds"] = time.perf_counter() - t0
    return {"size": size, "sizes": SIZES[size], "load_before": load_before, "load_after": os.getloadavg(),
            "machine": machine(), "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"), "figures": figures}


def commit_fields(sha=None):
    sha = sha or _git("rev-parse", "HEAD")
    return {"sha": sha, "date": _git("show", "-s", "--format=%cI", sha), "subject": _git("show", "-s", "--format=%s",
                                                                                         sha),
            "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", "emostats"))}


def history(size, directory=HISTORY):
    """Records of ``size`` sorted by commit date, then measurement time."""
    folder = Path(directory) / size
    recs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted(recs, key=lambda r: (r.get("date", ""), r.get("measured", "")))


def write_record(record, directory=HISTORY):
    folder = Path(directory) / record["size"]
    folder.mkdir(parents=True, exist_ok=True)
    stamp = (record.get("date") or record["measured"])[:19].replace(":", "").replace("-", "")
    path = folder / f"{stamp}_{record['sha'][:10]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)  # atomic
    return path


def format_record(record):
    lines = [f"size {record['size']}, load {record['load_before'][0]:.2f} -> {record['load_after'][0]:.2f}"]
    for name, figs in record["figures"].items():
        parts = [f"{k}={v['value']:.4g}(±{100 * v['noise']:.0f}%)" for k, v in figs.items() if not k.startswith("_")]
        lines.append(f"  {name}: " + " ".join(parts))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.track", description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="smoke")
    p.add_argument("--only", nargs="*", choices=sorted(TRACKED), help="benchmarks to run (default all)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--record", action="store_true", help="write a history point for the commit (--sha or HEAD)")
    p.add_argument("--sha", default=None, help="commit the measured code belongs to (default HEAD)")
    p.add_argument("--history", type=Path, default=HISTORY)
    args = p.parse_args(argv)
    rec = measure(args.size, args.only, args.repeat)
    rec.update(commit_fields(args.sha))
    print(format_record(rec))
    if args.record:
        print(f"recorded {write_record(rec, args.history)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
