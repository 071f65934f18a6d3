"""``emostats persistence STUDY [-o OUT.nc]``: lag persistence, lag profile, trajectories and decay fits (Figure 2)."""

from pathlib import Path

from .. import defaults as D
from ._common import add_study_argument, study_paths

#: lags shown in the printed profile table
_SHOW_LAGS = (1, 2, 5, 10, 20, 50, 100, 200)


def register(sub):
    p = sub.add_parser("persistence", help="lag persistence, lag profile, trajectories and decay fits (Figure 2)",
                       description=__doc__.strip().splitlines()[0].replace("``", "").rstrip(".") + ". Prints a table; with "
                       "-o writes one NetCDF file with the groups persistence, profile, trajectories, "
                       "decay_trajectories and decay_profile. Nothing is overwritten without --force.")
    add_study_argument(p)
    p.add_argument("--lag", type=int, default=D.LAG, help=f"lag L of the persistence metric, tokens (default {D.LAG})")
    p.add_argument("--max-lag", type=int, default=D.MAX_LAG,
                   help=f"largest lag of the profile and largest tau of the trajectories (default {D.MAX_LAG})")
    p.add_argument("-o", "--output", type=Path, default=None, help="results file (NetCDF-4); default: print only")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--n-boot", type=int, default=D.N_BOOT,
                   help=f"bootstrap replicates (conversations resampled) of the decay fits; 0 = none (default {D.N_BOOT})")
    p.add_argument("--seed", type=int, default=D.SEED, help=f"seed of the bootstrap (default {D.SEED})")
    p.add_argument("--chunks", type=int, default=None,
                   help="open the study lazily with this many tokens per dask chunk (for studies larger than memory)")
    p.add_argument("--threads", type=int, default=None, help="threads of the kernels (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_main)


def _main(args):
    import datetime
    import json
    import time

    import xarray as xr

    from .._atomic import check_output
    from .._version import __version__
    from ..errors import EmostatsError
    from ..io import open_study, save, sha256

    if args.lag < 1 or args.max_lag < 1:
        raise EmostatsError(f"--lag and --max-lag must be >= 1 token (lag 0 is r = 1 by definition), "
                            f"got --lag {args.lag} --max-lag {args.max_lag}")
    if args.max_lag < args.lag:
        raise EmostatsError(f"--max-lag ({args.max_lag}) must be >= --lag ({args.lag}) so the profile covers the lag")
    if args.n_boot < 0:
        raise EmostatsError(f"--n-boot must be >= 0, got {args.n_boot}")
    if args.chunks is not None and args.chunks < 1:
        raise EmostatsError(f"--chunks must be >= 1 tokens, got {args.chunks}")
    paths = study_paths(args)
    inputs = paths if isinstance(paths, list) else [paths]
    if args.output is not None:
        check_output(args.output, force=args.force, inputs=inputs)  # refuse before the long part
    t0 = time.perf_counter()
    tree = open_study(paths, chunks={"token": args.chunks} if args.chunks else None)
    if "tokens" not in tree.children or "probe_act" not in tree["tokens"].data_vars:
        from ..errors import MissingGroupError

        raise MissingGroupError(f"{inputs[0]}: group /tokens has no variable probe_act; persistence needs "
                                f"per-token probe activations")
    try:
        results = _analyse(tree["tokens"]["probe_act"], args)
    finally:
        # release the file now, not whenever the garbage collector runs: HDF5 can crash when a
        # handle of a file is finalised while the same file is being opened again
        tree.close()
    if args.output is not None:
        out = xr.DataTree.from_dict({f"/{name}": _storable(ds) for name, ds in results.items()})
        params = dict(lag=args.lag, max_lag=args.max_lag, n_boot=args.n_boot, seed=args.seed)
        out.attrs.update(title="emostats persistence (SPEC.md section 2, analyses 1-3)",
                         emostats_version=__version__, input_sha256=sha256(paths),
                         input_files=";".join(Path(p).name for p in inputs), seed=int(args.seed),
                         parameters=json.dumps(params),
                         created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        save(out, args.output, force=args.force)
    if not args.quiet:
        _print(results, args, output=args.output, seconds=time.perf_counter() - t0)
    return 0


def _analyse(act, args):
    import warnings

    from .._progress import StepProgress
    from ..decay import fit_decay
    from ..persistence import lag_persistence, lag_profile, trajectories

    enabled = not args.no_progress and not args.quiet
    with StepProgress("emostats persistence", 5, enabled) as steps, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        steps.step(f"lag persistence (L = {args.lag})")
        res = {"persistence": lag_persistence(act, lag=args.lag, threads=args.threads)}
        steps.advance()
        steps.step(f"lag profile (L = 0..{args.max_lag})")
        res["profile"] = lag_profile(act, max_lag=args.max_lag, threads=args.threads)
        steps.advance()
        steps.step("trajectories")
        res["trajectories"] = trajectories(act, max_lag=args.max_lag, threads=args.threads)
        steps.advance()
        boot = act if args.n_boot else None
        steps.step("decay fit of the trajectories")
        res["decay_trajectories"] = fit_decay(res["trajectories"], probe_act=boot, n_boot=args.n_boot,
                                              seed=args.seed, threads=args.threads,
                                              progress=steps.sub("  bootstrap (probes)"))
        steps.advance()
        steps.step("decay fit of the mean profile")
        if args.max_lag >= 4:
            res["decay_profile"] = fit_decay(res["profile"], average_probes=True, probe_act=boot, n_boot=args.n_boot,
                                             seed=args.seed, threads=args.threads,
                                             progress=steps.sub("  bootstrap (probes)"))
        steps.advance()
    seen = set()
    for w in caught:  # one line per distinct warning, after the progress display is gone
        text = str(w.message)
        if text not in seen and not args.quiet:
            seen.add(text)
            import sys

            print(f"emostats persistence: warning: {text}", file=sys.stderr)
    return res


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
    prof = results["profile"]
    lags = [L for L in _SHOW_LAGS if L <= args.max_lag]
    if lags:
        table = Table("L", *[str(L) for L in lags], title="lag profile: mean r over probes (L in tokens)")
        table.add_row("r(L)", *[f"{float(prof.r.sel(lag=L).mean(skipna=True)):.4f}" for L in lags])
        table.add_row("pairs", *[f"{int(prof.n_pairs.sel(lag=L)):,}" for L in lags])
        console.print(table)
    tr = results["trajectories"]
    taus = sorted({t for t in (0, 1, 10, 100) if t <= args.max_lag} | {args.max_lag})
    table = Table("|z_t| bin", *[f"tau={t}" for t in taus], title="trajectories: mean sign-aligned z (sd) at t+tau")
    for b in tr.bin.values:
        table.add_row(str(b), *[f"{float(tr['mean'].sel(bin=b, tau=t)):.3f}" for t in taus])
    console.print(table)
    fit = results["decay_trajectories"]
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
    if "decay_profile" in results:
        fp = results["decay_profile"]
        hl = [f"{h:.3g}" for h in fp.half_life.values if np.isfinite(h)]
        console.print(f"mean lag profile: {int(fp.n_components)} component(s), half-lives {', '.join(hl) or '-'} "
                      f"tokens, tail {float(fp.tail_level):.4f}")
    if output is not None:
        console.print(f"wrote {output} ({seconds:.1f} s)")


def _storable(ds):
    """A copy whose attrs NetCDF can store: bools as 0/1, numbers, text and arrays as they are, lists of
    numbers as arrays, anything else as JSON text (shared by ``emostats persistence`` and ``nullmodels``)."""
    import json

    import numpy as np

    def value(v):
        if isinstance(v, (bool, np.bool_)):
            return int(v)
        if isinstance(v, (str, int, float, np.integer, np.floating, np.ndarray)):
            return v
        if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float, np.integer, np.floating))
                                                      and not isinstance(x, bool) for x in v):
            return np.asarray(v)
        return json.dumps(v, default=str)

    ds = ds.copy()
    ds.attrs = {k: value(v) for k, v in ds.attrs.items()}
    for name in ds.variables:
        ds[name].attrs = {k: value(v) for k, v in ds[name].attrs.items()}
    return ds
