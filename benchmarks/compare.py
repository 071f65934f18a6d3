"""Compare the working tree's tracked kernel figures with the last recorded commit; fail on a regression.

Usage::

    python -m benchmarks.compare --size smoke     # exit 0: no regression, 1: regression

Only the ratios of :data:`benchmarks.track.COMPARED` are compared (higher is better);
they are measured in one process beside their references, so a slower or busier
machine moves them much less than it moves the times. A figure regresses when

    new < old / (1 + tolerance),  tolerance = max(MIN_TOLERANCE, NOISE_FACTOR x (noise_old + noise_new))

where each noise is the relative spread ((median - best) / best) measured with the
figure. When the tolerance comes out above MAX_TOLERANCE the run is too noisy to
tell: the figure is measured again (up to ``--retries`` times) and the best of the
runs is used; a figure still that noisy counts as a regression only if it is below
old / (1 + MAX_TOLERANCE). MAX_TOLERANCE is below 1, so a kernel that does its
work twice (ratio halved, ``EMOSTATS_BENCH_SLOWDOWN=lag100=2``) is always caught.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from benchmarks import track

#: smallest tolerance: run-to-run drift of the ratios on an idle machine is below ~10%
MIN_TOLERANCE = 0.25
#: a figure's tolerance grows with the noise measured beside it
NOISE_FACTOR = 2.0
#: largest tolerance: a 2x slowdown (ratio / 2 = -50%, i.e. old / new = 2) must always fail
MAX_TOLERANCE = 0.6


def tolerance(old, new):
    return max(MIN_TOLERANCE, NOISE_FACTOR * (old["noise"] + new["noise"]))


def verdicts(baseline, current):
    """[(benchmark, figure, old, new, tolerance, ok)] for every compared figure in both records."""
    out = []
    for name, figures in track.COMPARED.items():
        if name not in baseline["figures"] or name not in current["figures"]:
            continue
        for fig in figures:
            old = baseline["figures"][name].get(fig)
            new = current["figures"][name].get(fig)
            if old is None or new is None:
                continue
            tol = min(tolerance(old, new), MAX_TOLERANCE)
            ok = new["value"] >= old["value"] / (1.0 + tol)
            out.append((name, fig, old["value"], new["value"], tol, ok))
    return out


def _merge_best(a, b):
    """Per figure, the measurement with the higher value (the least disturbed by load)."""
    for name, figs in b["figures"].items():
        for fig, val in figs.items():
            if fig.startswith("_"):
                continue
            cur = a["figures"].setdefault(name, {}).get(fig)
            if cur is None or val["value"] > cur["value"]:
                a["figures"][name][fig] = val
    return a


def base_package(sha, repo=None):
    """The ``emostats`` package of commit ``sha``, importable beside the working tree's (for ``--ab``).

    ``git archive`` exports the commit's ``emostats/`` once into a folder of the temp
    directory (kept, so its Numba cache stays warm for later runs), renamed to
    ``emostats_base_<sha>``: the package imports itself relatively, so both versions
    load in one process.
    """
    import importlib
    import io
    import os
    import tarfile
    import tempfile

    repo = Path(repo or track.REPO)
    sha = subprocess.run(["git", "rev-parse", sha], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
    name = f"emostats_base_{sha[:12]}"
    root = Path(tempfile.gettempdir()) / f"emostats-bench-{sha[:12]}"
    if not (root / name / "__init__.py").exists():
        tar = subprocess.run(["git", "archive", "--format=tar", sha, "emostats"], cwd=repo, capture_output=True,
                             check=True).stdout
        tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            archive.extractall(tmp, filter="data")
        (tmp / "emostats").rename(tmp / name)
        try:
            os.rename(tmp, root)
        except OSError:  # another run exported it meanwhile
            pass
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    pkg = importlib.import_module(name)
    for sub in ("_lagstats", "sae"):
        importlib.import_module(f"{name}.{sub}")
    return pkg, sha


def main_ab(args):
    """``--ab``: the base commit's kernels and the working tree's, timed in pairs in this process."""
    records = track.history(args.size, args.history)
    base = args.base or (records[-1]["sha"] if records else None)
    if base is None:
        print(f"benchmarks.compare: no history at size {args.size!r} in {args.history} and no --base; "
              f"record one with python -m benchmarks.track --size {args.size} --record", file=sys.stderr)
        return 2
    try:
        pkg, sha = base_package(base)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = (getattr(exc, "stderr", None) or b"").strip()
        detail = detail.decode(errors="replace") if isinstance(detail, bytes) else detail
        print(f"benchmarks.compare: cannot export commit {base[:12]} with git ({detail.splitlines()[0] if detail else exc}); "
              f"a shallow clone lacks it: fetch the history (git fetch --unshallow) or pass --base", file=sys.stderr)
        return 2
    names = args.only or list(track.TRACKED)
    current = track.measure_ab(pkg, args.size, names, args.repeat)
    for _ in range(args.retries):
        again = [n for n, f in current["figures"].items()
                 if not _ab_ok(f["speed_vs_base"]) or _ab_tol(f["speed_vs_base"]) >= MAX_TOLERANCE]
        if not again:
            break
        current = _merge_best(current, track.measure_ab(pkg, args.size, again, args.repeat))
    print(f"A/B against {sha[:10]} ({track._git('show', '-s', '--format=%s', sha)[:60]}), same process, "
          f"load {current['load_before'][0]:.2f}")
    failed = 0
    for name, figs in current["figures"].items():
        fig = figs["speed_vs_base"]
        ok = _ab_ok(fig)
        failed += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {name}.speed_vs_base: {fig['value']:.3f} (noise {fig['noise']:.0%}, "
              f"fails below {1 / (1 + _ab_tol(fig)):.3f})")
    if failed:
        print(f"benchmarks.compare: {failed} kernel(s) slower than {sha[:10]} beyond the measured noise",
              file=sys.stderr)
        return 1
    return 0


def _ab_tol(fig):
    return min(max(MIN_TOLERANCE, NOISE_FACTOR * fig["noise"]), MAX_TOLERANCE)


def _ab_ok(fig):
    return fig["value"] >= 1.0 / (1.0 + _ab_tol(fig))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(track.SIZES), default="smoke")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--retries", type=int, default=2, help="re-measurements of figures that fail or are too noisy")
    p.add_argument("--history", type=Path, default=track.HISTORY)
    p.add_argument("--only", nargs="*", choices=sorted(track.TRACKED))
    p.add_argument("--ab", action="store_true",
                   help="time the base commit's kernels beside the working tree's in this process (load-proof; CI)")
    p.add_argument("--base", default=None, help="with --ab: commit to compare with (default: the last recorded one)")
    args = p.parse_args(argv)
    if args.ab:
        return main_ab(args)
    records = track.history(args.size, args.history)
    if not records:
        print(f"benchmarks.compare: no history at size {args.size!r} in {args.history}; record one with "
              f"python -m benchmarks.track --size {args.size} --record", file=sys.stderr)
        return 2
    baseline = records[-1]
    names = [n for n in (args.only or track.TRACKED) if n in baseline["figures"]]
    current = track.measure(args.size, names, args.repeat)
    result = verdicts(baseline, current)
    for _ in range(args.retries):
        again = sorted({name for name, _, _, _, tol, ok in result if not ok or tol >= MAX_TOLERANCE})
        if not again:
            break
        current = _merge_best(current, track.measure(args.size, again, args.repeat))
        result = verdicts(baseline, current)
    print(f"baseline {baseline['sha'][:10]} ({baseline.get('subject', '')[:60]}), measured {baseline['measured']} "
          f"at load {baseline['load_before'][0]:.2f}; now load {current['load_before'][0]:.2f}")
    failed = 0
    for name, fig, old, new, tol, ok in result:
        failed += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {name}.{fig}: {old:.4g} -> {new:.4g} ({new / old - 1:+.0%}, "
              f"tolerance -{1 - 1 / (1 + tol):.0%})")
    if failed:
        print(f"benchmarks.compare: {failed} figure(s) regressed beyond the measured noise", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
