"""``emostats report [STUDY or RESULTS]``: a Quarto document with figures, and a PDF."""

from pathlib import Path

from .. import defaults as D


def register(sub):
    p = sub.add_parser("report", help="write report.qmd (Quarto), its figures and report.pdf",
                       description="Write a report of every analysis: report.qmd with its PNG figures (for "
                       "Quarto) and report.pdf (rendered with Typst). With no file, the example study shipped "
                       "in the package. A results file from 'emostats run' is used as is; a study is run first "
                       "(and its results saved as results.nc beside the report).")
    p.add_argument("source", nargs="*", type=Path, metavar="STUDY_OR_RESULTS",
                   help="a results file, or a study (several files concatenate along token)")
    p.add_argument("-o", "--output", type=Path, default=Path("report"), help="report folder (default ./report)")
    p.add_argument("--format", choices=("pdf", "qmd", "both"), default="both",
                   help="what to write (default both)")
    p.add_argument("--force", action="store_true", help="replace existing report files")
    p.add_argument("--lag", type=int, default=None, help=f"lag L when a study is run (default {D.LAG})")
    p.add_argument("--seed", type=int, default=None, help=f"seed when a study is run (default {D.SEED})")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_main)


def _main(args):
    import time

    from ..report import build_report

    t0 = time.perf_counter()
    source = None if not args.source else (args.source[0] if len(args.source) == 1 else list(args.source))
    written = build_report(source, args.output, format=args.format, force=args.force,
                           progress=not args.no_progress, quiet=args.quiet,
                           **{k: v for k, v in (("lag", args.lag), ("seed", args.seed)) if v is not None})
    if not args.quiet:
        names = [str(written[k]) for k in ("qmd", "pdf", "results") if k in written]
        n_fig = len(written.get("figures", []))
        extra = f" and {n_fig} figures" if n_fig else ""
        print(f"wrote {', '.join(names)}{extra} ({time.perf_counter() - t0:.1f} s)")
    return 0
