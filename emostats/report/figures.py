"""The figures of the report: which plot function draws each, from which result groups.

Each :class:`FigureSpec` names the result groups it needs and the plot function
(by module and name, imported when drawn) that turns them into a figure. The
specs are declared in the section modules (:mod:`emostats.report.sections`),
beside the section that places them, with :func:`figure`. Files are PNG at the
style's 200 dpi, written atomically.
"""

import importlib
from dataclasses import dataclass

from .._atomic import atomic_path

__all__ = ["FigureSpec", "FIGURES", "figure", "register", "all_figures", "draw_figures"]


@dataclass
class FigureSpec:
    """A figure of the report.

    ``draw(results, plot)`` receives the results tree and the plot function and
    returns a matplotlib Figure; ``size`` is a key of ``emostats.plots.FIGSIZE``.
    """

    name: str
    needs: tuple
    module: str
    function: str
    draw: object
    size: str = "full"


def new_figure(size):
    """A matplotlib Figure without pyplot (no backend switch, nothing left open)."""
    from matplotlib.figure import Figure

    from ..plots import FIGSIZE

    return Figure(figsize=FIGSIZE[size])


def _as_figure(out, fig):
    if out is None:
        return fig
    return out if hasattr(out, "savefig") else getattr(out, "figure", fig)


def result_group(results, name):
    return results[name].to_dataset(inherit=False)


def _spec(name, needs, module, function, kind, args, size="full", **options):
    """A spec whose plot function is called with the datasets of ``args`` (group names) and ``options``."""

    def draw(results, plot):
        data = [result_group(results, a) for a in args]
        fig = new_figure(size)
        if kind == "ax":
            return _as_figure(plot(*data, ax=fig.add_subplot(), **options), fig)
        return _as_figure(plot(*data, fig=fig, **options), fig)

    return FigureSpec(name, tuple(needs), module, function, draw, size)


#: name -> spec, in report order (filled by the section modules through :func:`figure` and :func:`register`)
FIGURES: "dict[str, FigureSpec]" = {}


def register(spec):
    """Add a figure to the report (a section module calls it beside the section that places the figure)."""
    if spec.name in FIGURES and FIGURES[spec.name] != spec:
        raise ValueError(f"two report figures are named {spec.name!r}")
    FIGURES[spec.name] = spec
    return spec


def figure(name, needs, module, function, kind, args, size="full", **options):
    """Register a figure drawn by ``emostats.plots.<module>.<function>`` from the result groups ``args``.

    ``kind`` is ``"ax"`` (the plot takes ``ax=``) or ``"fig"`` (it takes ``fig=``); ``needs``
    lists the groups without which the figure is not drawn. The name is the PNG file stem.
    """
    return register(_spec(name, needs, module, function, kind, args, size, **options))


def all_figures():
    """Every figure, in the order of the report's sections."""
    from .sections import load_sections, section_for

    load_sections()
    order = {s.name: i for i, s in enumerate(load_sections())}

    def place(item):
        sec = section_for(item[1].needs[-1]) if item[1].needs else None
        return order.get(sec.name, len(order)) if sec else len(order)

    ordered = dict(sorted(FIGURES.items(), key=place))  # stable: declaration order inside a section
    FIGURES.clear()
    FIGURES.update(ordered)
    return FIGURES


def _plot_function(spec):
    module = importlib.import_module(f"emostats.plots.{spec.module}")
    return getattr(module, spec.function)


def draw_figures(results, folder, force=False, names=None, progress=None):
    """Draw every figure whose result groups exist; write ``<name>.png`` into ``folder``.

    Returns
    -------
    dict
        name -> file name (str) of every figure drawn, or the ``Exception`` of a
        figure whose plot function failed (the report says so in its place
        instead of stopping; :func:`emostats.report.build_report` prints one
        line per failed figure).
    """
    from ..plots import DPI, styled

    out = {}
    for spec in all_figures().values():
        if names is not None and spec.name not in names:
            continue
        if not all(g in results.children for g in spec.needs):
            continue
        if progress is not None:
            progress(spec.name)
        path = folder / f"{spec.name}.png"
        with styled():
            try:
                fig = spec.draw(results, _plot_function(spec))
            except Exception as exc:  # noqa: BLE001 - one broken figure must not lose the report
                out[spec.name] = exc
                continue
            with atomic_path(path, force=force) as tmp:
                fig.savefig(tmp, format="png", dpi=DPI)
        out[spec.name] = path.name
    return out
