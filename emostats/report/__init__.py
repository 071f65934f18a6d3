"""The emostats report: one content model, written as Quarto Markdown and as a PDF.

:func:`build_report` takes a study or a results tree, draws the figures
(:mod:`.figures`), builds the content once (:mod:`.content`) and writes it as
``report.qmd`` (:mod:`.write_qmd`, for users who have Quarto) and as
``report.pdf`` (:mod:`.write_typst`, compiled by the Typst compiler that the
``typst`` Python package carries). The page set-up and the Quarto options are
templates in ``emostats/report/templates/``.
"""

import contextlib
import datetime
import shutil
import sys
from pathlib import Path

__all__ = ["build_report", "load_results", "REPORT_FILES"]

#: file names the report writes into its folder (figures come from .figures.all_figures())
REPORT_FILES = {"qmd": "report.qmd", "pdf": "report.pdf", "results": "results.nc"}
_FORMATS = ("pdf", "qmd", "both")


def load_results(source=None, progress=True, quiet=False, **run_kwargs):
    """A results tree from a results file, a study file, a DataTree, or the example study.

    Returns
    -------
    (results, ran) : (xarray.DataTree, bool)
        ``ran`` is True when the study was run here (so the caller may save it).
    """
    import xarray as xr

    from .._results import is_results
    from ..io import example_study, open_study
    from ..pipeline.engine import run

    if source is None:
        source = example_study()
    if isinstance(source, xr.DataTree):
        if is_results(source):
            _check_run_kwargs(source, "the results tree", run_kwargs)
            return source, False
        return run(source, progress=progress, quiet=quiet, **run_kwargs), True
    paths = [source] if isinstance(source, (str, Path)) else list(source)
    first = open_study(paths[0], validate=False)  # one-line errors for missing / non-NetCDF files
    try:
        results = is_results(first)
        if results and len(paths) > 1:
            from ..errors import EmostatsError

            raise EmostatsError(f"{paths[0]} is a results file; give one results file, not {len(paths)} files")
        if results:
            _check_run_kwargs(first, paths[0], run_kwargs)
            return first.load(), False  # small; loaded so that no file handle stays open
    finally:
        first.close()
    return run(paths if len(paths) > 1 else paths[0], progress=progress, quiet=quiet, **run_kwargs), True


def _check_run_kwargs(results, name, run_kwargs):
    """Refuse run options that a results file was not computed with (they would be silently ignored)."""
    from ..errors import EmostatsError

    for key, value in run_kwargs.items():
        if value is None:
            continue
        had = results.attrs.get(f"param_{key}")
        if had is None or had != value:
            raise EmostatsError(f"{name} is a results file computed with {key}={had}; {key}={value} applies only "
                                f"when a study is run: drop the option or report the study itself")


def _outputs(folder, fmt, save_results):
    from .figures import all_figures

    names = []
    if fmt in ("qmd", "both"):
        names.append(REPORT_FILES["qmd"])
        names += [f"{n}.png" for n in all_figures()]
    if fmt in ("pdf", "both"):
        names.append(REPORT_FILES["pdf"])
    if save_results:
        names.append(REPORT_FILES["results"])
    return [folder / n for n in names]


def build_report(source=None, outdir="report", format="both", force=False, progress=True, quiet=False,
                 save_results=True, **run_kwargs):
    """Write ``report.qmd`` (with its figures) and/or ``report.pdf`` for a study or results.

    Parameters
    ----------
    source : path, sequence of paths, xarray.DataTree or None
        A results file or tree (from :func:`emostats.run` or any of its presets:
        ``emostats run``, ``persistence``, ``nullmodels``), or a study (run
        first); None means the example study shipped in the package.
    outdir : str or Path
        Folder of the report (created if missing).
    format : {"both", "pdf", "qmd"}
        ``qmd`` writes the Quarto document and its PNG figures; ``pdf`` the PDF
        only (its figures are embedded); ``both`` all of them.
    force : bool
        Replace existing report files; without it an existing file is an error
        and nothing is written.
    save_results : bool
        When a study was run here, also write ``results.nc`` beside the report.
    run_kwargs
        Passed to :func:`emostats.run` when a study is run.

    Returns
    -------
    dict
        ``{"qmd": path, "pdf": path, "results": path, "figures": [paths], "document": Document}``
        (keys only for what was written).
    """
    from .._atomic import check_folder, check_output, temporary
    from ..errors import EmostatsError

    if format not in _FORMATS:
        raise EmostatsError(f"format must be one of {', '.join(_FORMATS)}, got {format!r}")
    folder = Path(outdir)
    if folder.exists() and not folder.is_dir():
        raise EmostatsError(f"output {folder} is a file; give a folder for the report")
    parent = folder.resolve().parent
    if not folder.exists() and not parent.is_dir():
        raise EmostatsError(f"output folder {parent} does not exist; create it first (only the report "
                            f"folder itself is created)")
    inputs = [] if source is None or hasattr(source, "children") else (
        [source] if isinstance(source, (str, Path)) else list(source))
    # refuse before running anything long
    for path in _outputs(folder, format, save_results):
        if path.exists():
            check_output(path, force=force, inputs=inputs)
    check_folder(folder if folder.exists() else parent)  # read-only or full: one line, before the work
    results, ran = load_results(source, progress=progress, quiet=quiet, **run_kwargs)
    if folder.exists():
        for path in _outputs(folder, format, save_results and ran):
            check_output(path, force=force, inputs=inputs)
    # a new folder is rendered as a hidden sibling and renamed at the end: a failure or a signal leaves none
    final, staged = folder, not folder.exists()
    if staged:
        with temporary(parent, f".{final.name}.", folder=True) as staged_path:  # removed on a signal, too
            folder = Path(staged_path)
            try:
                return _moved(_build(results, ran, folder, format, force, save_results, quiet), folder, final)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
    return _build(results, ran, folder, format, force, save_results, quiet)


def _moved(written, staged, final):
    """Rename the staged folder onto ``final``; the paths in ``written`` follow."""
    import os

    from ..errors import OutputExistsError

    if final.exists():
        raise OutputExistsError(f"output {final} appeared while the report was written; nothing was replaced")
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(staged, 0o777 & ~mask)  # mkdtemp makes 0700; the folder gets the usual permissions
    os.rename(staged, final)

    def moved(path):
        return final / Path(path).relative_to(staged)

    return {k: ([moved(p) for p in v] if k == "figures" else moved(v) if isinstance(v, Path) else v)
            for k, v in written.items()}


def _build(results, ran, folder, format, force, save_results, quiet):
    from .._atomic import atomic_path, check_output, disk_full_error, temporary
    from .content import build_document
    from .figures import draw_figures
    from .write_qmd import to_qmd
    from .write_typst import compile_pdf, to_typst

    results = results.copy()  # shallow: the caller's tree keeps its attrs
    results.attrs["report_created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    written = {}
    if ran and save_results:
        from ..io import save

        save(results, folder / REPORT_FILES["results"], force=force)
        written["results"] = folder / REPORT_FILES["results"]
    registered = contextlib.ExitStack()
    work = Path(registered.enter_context(temporary(folder, ".emostats-report-", "", folder=True)))  # and on a signal
    try:
        figures = draw_figures(results, work, force=True)
        failed = {k: v for k, v in figures.items() if isinstance(v, Exception)}
        for name, exc in failed.items():  # a full disk is one error, not a line per figure
            full = disk_full_error(exc, folder / f"{name}.png", folder)
            if full:
                raise full from None
        for name, exc in failed.items():
            if not quiet:
                print(f"emostats report: figure {name} could not be drawn: {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        doc = build_document(results, figures)
        if format in ("pdf", "both"):
            (work / "report.typ").write_text(to_typst(doc), encoding="utf-8")
            pdf = compile_pdf(work / "report.typ", root=work)
            with atomic_path(folder / REPORT_FILES["pdf"], force=force) as tmp:
                Path(tmp).write_bytes(pdf)
            written["pdf"] = folder / REPORT_FILES["pdf"]
        if format in ("qmd", "both"):
            written["figures"] = []
            for fig in doc.figures():
                target = folder / fig.path
                check_output(target, force=force)
                shutil.move(work / fig.path, target)  # same file system: an atomic rename
                written["figures"].append(target)
            with atomic_path(folder / REPORT_FILES["qmd"], force=force) as tmp:
                Path(tmp).write_text(to_qmd(doc), encoding="utf-8")
            written["qmd"] = folder / REPORT_FILES["qmd"]
    finally:
        registered.close()
        shutil.rmtree(work, ignore_errors=True)
    written["document"] = doc
    written["failed_figures"] = failed
    return written
