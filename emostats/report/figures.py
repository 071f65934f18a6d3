"""The figures of the report: which plot function draws each, from which result groups.

Each :class:`FigureSpec` names the result groups it needs and the plot function
(by module and name, imported when drawn) that turns them into a figure. Files
are PNG at the style's 200 dpi, written atomically.
"""

import importlib
from dataclasses import dataclass

from .._atomic import atomic_path

__all__ = ["FigureSpec", "FIGURES", "draw_figures"]


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


def _new_figure(size):
    """A matplotlib Figure without pyplot (no backend switch, nothing left open)."""
    from matplotlib.figure import Figure

    from ..plots import FIGSIZE

    return Figure(figsize=FIGSIZE[size])


def _as_figure(out, fig):
    if out is None:
        return fig
    return out if hasattr(out, "savefig") else getattr(out, "figure", fig)


def _g(results, name):
    return results[name].to_dataset(inherit=False)


def _spec(name, needs, module, function, kind, args, size="full", **options):
    """A spec whose plot function is called with the datasets of ``args`` (group names) and ``options``."""

    def draw(results, plot):
        data = [_g(results, a) for a in args]
        fig = _new_figure(size)
        if kind == "ax":
            return _as_figure(plot(*data, ax=fig.add_subplot(), **options), fig)
        return _as_figure(plot(*data, fig=fig, **options), fig)

    return FigureSpec(name, tuple(needs), module, function, draw, size)


def _draw_decay(results, plot):
    """Decay fits: the trajectories (left) and the mean lag profile on a log axis (right), as available."""
    panels = [(a, b, kw) for a, b, kw in (("trajectories", "decay", {}), ("profile", "decay_profile", {"log_x": True}))
              if a in results.children and b in results.children]
    fig = _new_figure("pair" if len(panels) == 2 else "full")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (data, fit, kw) in zip(axes, panels):
        plot(_g(results, data), _g(results, fit), ax=ax, **kw)
    return fig


#: name -> spec, in report order. The names are the PNG file stems.
FIGURES = {s.name: s for s in [
    _spec("fig-trajectories", ["trajectories"], "persistence", "plot_trajectories", "ax", ["trajectories"]),
    _spec("fig-profile", ["profile"], "persistence", "plot_lag_profile", "ax", ["profile"]),
    FigureSpec("fig-decay", ("decay",), "persistence", "plot_decay_fit", _draw_decay, "pair"),
    _spec("fig-random", ["persistence", "random_directions"], "nullmodels", "plot_random_vs_probes", "ax",
          ["persistence", "random_directions"]),
    _spec("fig-residuals", ["variance_matched"], "nullmodels", "plot_residuals", "ax", ["variance_matched"]),
    _spec("fig-pcs", ["emotion_pcs"], "nullmodels", "plot_pc_residuals", "ax", ["emotion_pcs"]),
    _spec("fig-steering", ["steering"], "steering", "plot_steering", "fig", ["steering"], size="tall"),
    _spec("fig-sae", ["sae_matched"], "sae", "plot_sae_residual_vs_subspace", "ax", ["sae_matched"]),
    _spec("fig-ratings", ["ratings"], "ratings", "plot_ratings", "fig", ["ratings"], size="pair"),
    _spec("fig-mentions", ["mentions"], "ratings", "plot_mention_volcano", "ax", ["mentions"], n_labels=0),
    _spec("fig-residual-ratings", ["ratings"], "ratings", "plot_residual_vs_ratings", "fig", ["ratings"],
          size="pair"),
]}


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
    for spec in FIGURES.values():
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
