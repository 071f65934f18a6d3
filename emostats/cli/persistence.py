"""``emostats persistence STUDY [-o OUT.nc]``: lag persistence, lag profile, trajectories and decay fits (Figure 2)."""

from pathlib import Path

from ._common import add_study_argument, study_paths
from ._engine import add_preset_options, check_args, inputs_of, run_preset

#: lags shown in the printed profile table
_SHOW_LAGS = (1, 2, 5, 10, 20, 50, 100, 200)


def register(sub):
    p = sub.add_parser("persistence", help="lag persistence, lag profile, trajectories and decay fits (Figure 2)",
                       description=__doc__.strip().splitlines()[0].replace("``", "").rstrip(".") + ". Prints a table; "
                       "with -o writes a results file (the format of 'emostats run') with the groups persistence, "
                       "profile, trajectories, decay and decay_profile. Nothing is overwritten without --force.")
    add_study_argument(p)
    p.add_argument("-o", "--output", type=Path, default=None, help="results file (NetCDF-4); default: print only")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    add_preset_options(p, "persistence")
    p.set_defaults(func=_main)


def _main(args):
    import time

    from .._atomic import check_output
    from ..io import save

    check_args(args)
    paths = study_paths(args)
    if args.output is not None:
        check_output(args.output, force=args.force, inputs=inputs_of(paths))  # refuse before the long part
    t0 = time.perf_counter()
    tree = run_preset(args, paths)
    if args.output is not None:
        save(tree, args.output, force=args.force)
    if not args.quiet:
        results = {name: tree[name].to_dataset() for name in tree.children}
        _print(results, args, output=args.output, seconds=time.perf_counter() - t0)
    return 0


def _print(results, args, output, seconds):
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    pers = results["persistence"]
    r = pers.r.to_series().sort_values(ascending=False, na_position="last")
    finite = r.dropna()
    console.print(f"[bold]Lag persistence[/bold] at L = {args.lag}: {int(pers.n_pairs):,} same-segment pairs, "
                  f"{pers.attrs['n_segments']:,} segments, {pers.attrs['n_tokens']:,} tokens")
    if len(finite):
        console.print(f"mean r = {finite.mean():.4f}, median {finite.median():.4f}, "
                      f"range {finite.min():.4f} .. {finite.max():.4f} over {len(finite)} probes")
    table = Table("rank", "probe", f"r(L={args.lag})", "pairs used", title="most and least persistent probes")
    rows = list(enumerate(r.items(), 1))
    show = rows if len(rows) <= 15 else rows[:10] + [None] + rows[-5:]
    for row in show:
        if row is None:
            table.add_row("...", "", "", "")
            continue
        i, (name, value) = row
        table.add_row(str(i), str(name), "NaN" if np.isnan(value) else f"{value:.4f}",
                      f"{int(pers.n_used.sel({pers.r.dims[0]: name})):,}" if pers.r.dims else "")
    console.print(table)
    prof = results.get("profile")
    lags = [L for L in _SHOW_LAGS if L <= args.max_lag]
    if lags and prof is not None:
        table = Table("L", *[str(L) for L in lags], title="lag profile: mean r over probes (L in tokens)")
        table.add_row("r(L)", *[f"{float(prof.r.sel(lag=L).mean(skipna=True)):.4f}" for L in lags])
        table.add_row("pairs", *[f"{int(prof.n_pairs.sel(lag=L)):,}" for L in lags])
        console.print(table)
    tr = results.get("trajectories")
    if tr is not None:
        _print_trajectories(console, tr, results.get("decay"), args)
    if "decay_profile" in results:
        fp = results["decay_profile"]
        hl = [f"{h:.3g}" for h in fp.half_life.values if np.isfinite(h)]
        console.print(f"mean lag profile: {int(fp.n_components)} component(s), half-lives {', '.join(hl) or '-'} "
                      f"tokens, tail {float(fp.tail_level):.4f}")
    if output is not None:
        console.print(f"wrote {output} ({seconds:.1f} s)")


def _print_trajectories(console, tr, fit, args):
    import numpy as np
    from rich.table import Table

    taus = sorted({t for t in (0, 1, 10, 100) if t <= args.max_lag} | {args.max_lag})
    table = Table("|z_t| bin", *[f"tau={t}" for t in taus], title="trajectories: mean sign-aligned z (sd) at t+tau")
    for b in tr.bin.values:
        table.add_row(str(b), *[f"{float(tr['mean'].sel(bin=b, tau=t)):.3f}" for t in taus])
    console.print(table)
    if fit is None:
        return
    table = Table("|z_t| bin", "model", "fast half-life", "slow half-life", "tail",
                  title="decay fits of the trajectories (tokens; bootstrap intervals)")

    def cell(values, intervals):
        if not np.isfinite(values):
            return "-"
        if intervals is None or not np.all(np.isfinite(intervals)):
            return f"{values:.3g}"
        return f"{values:.3g} [{intervals[0]:.3g}, {intervals[1]:.3g}]"

    for b in tr.bin.values:
        f = fit.sel(bin=b)
        hl = f.half_life.values
        ci = f.half_life_ci.values if "half_life_ci" in f else [None, None]
        tci = f.tail_level_ci.values if "tail_level_ci" in f else None
        k = int(f.n_components)
        model = "no fit (too few events)" if k == 0 else "flat (tail only)" if not np.isfinite(hl[0]) else \
            f"{k} exp + tail"
        table.add_row(str(b), model, cell(hl[0], ci[0]), cell(hl[1], ci[1]),
                      cell(float(f.tail_level), tci))
    console.print(table)
