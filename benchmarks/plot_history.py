"""Plot the tracked kernel figures over the recorded commits (benchmarks/history/<size>/*.json).

Usage::

    python -m benchmarks.plot_history            # writes docs/_static/benchmark_history.png

One panel per compared figure (see ``benchmarks.track.COMPARED``), one line per size,
commits in the order of their dates along x, each point with its measured noise as an
error bar and the load average of its run in the tooltip-free label below the axis.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks import track

OUT = Path(__file__).resolve().parent.parent / "docs" / "_static" / "benchmark_history.png"


def plot(history_dir=track.HISTORY, out=OUT):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(name, fig) for name, figs in track.COMPARED.items() for fig in figs]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), sharex=False, squeeze=False)
    sizes = (("full", "o"), ("smoke", "s"))
    records = {size: track.history(size, history_dir) for size, _ in sizes}
    # one x position per commit, shared by the sizes (commits in date order), labelled with each size's load
    keys = {}
    for recs in records.values():
        for r in recs:
            keys[r["sha"]] = min(keys.get(r["sha"], (r.get("date", ""), r.get("measured", ""))),
                                 (r.get("date", ""), r.get("measured", "")))
    shas = sorted(keys, key=keys.get)
    pos = {sha: i for i, sha in enumerate(shas)}
    loads = {sha: [f"{size[0]} {r['load_before'][0]:.1f}" for size, _ in sizes for r in records[size]
                   if r["sha"] == sha] for sha in shas}
    labels = [f"{sha[:7]}\nload {' '.join(loads[sha])}" for sha in shas]
    for size, marker in sizes:
        recs = records[size]
        if not recs:
            continue
        for ax, (name, figname) in zip(axes[:, 0], panels):
            xs, ys, es = [], [], []
            for r in recs:
                v = r["figures"].get(name, {}).get(figname)
                if v is not None:
                    xs.append(pos[r["sha"]])
                    ys.append(v["value"])
                    es.append(v["value"] * v["noise"])
            if xs:
                ax.errorbar(xs, ys, yerr=es, marker=marker, capsize=3, label=f"{size} size")
                ax.set_xticks(range(len(shas)), labels, fontsize=7)
            ax.set_title(f"{name}: {figname.replace('_', ' ')}", fontsize=9)
            ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        if ax.lines:
            ax.legend(fontsize=7, loc="best")
    fig.suptitle("emostats lag kernels: tracked ratios per commit (higher is better)", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, out)  # atomic
    plt.close(fig)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.plot_history", description=__doc__.splitlines()[0])
    p.add_argument("--history", type=Path, default=track.HISTORY)
    p.add_argument("-o", "--output", type=Path, default=OUT)
    args = p.parse_args(argv)
    print(plot(args.history, args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
