"""The shared look of every emostats figure: one palette, one set of rcParams.

Plot functions colour their artists from :data:`PALETTE` so that the same
thing (emotion probes, random directions, persistent effects, ...) has the same
colour in every figure. :func:`apply_style` sets matplotlib's rcParams for
figures that stay readable when printed at A4 width (about 16 cm of text) and
saved as 200 dpi PNG; :func:`styled` does the same inside a ``with`` block and
restores the previous settings afterwards.

The colours are from the Okabe-Ito palette (distinguishable with the common
colour-vision deficiencies) plus greys; sequential colours come from ColorBrewer.
"""

import contextlib
import math

__all__ = ["PALETTE", "FIGSIZE", "DPI", "RC", "CYCLE", "apply_style", "styled", "bin_colors", "format_p"]

#: Named colours. Keys are roles, not hues, so a plot says what it draws.
PALETTE = {
    # what is being measured
    "probe": "#D55E00",          # emotion probes (vermillion)
    "random": "#7F7F7F",         # random unit directions (grey)
    "matched": "#0072B2",        # variance-matched candidates / residual baselines (blue)
    "pc": "#CC79A7",             # principal components of the emotion space (purple)
    "sae": "#009E73",            # SAE features (bluish green)
    "self_rating": "#CC79A7",    # agentic self-evaluation
    "text_rating": "#E69F00",    # textual evaluation (orange)
    # effects and significance
    "persistent": "#C0392B",     # significant positive effect (red)
    "antipersistent": "#2166AC", # significant negative effect (blue)
    "significant": "#C0392B",
    "nonsignificant": "#B0B0B0",
    "positive": "#C0392B",
    "negative": "#2166AC",
    # lines and references
    "fit": "#000000",            # fitted curves
    "reference": "#555555",      # zero lines, diagonals
    "interval": "#D9D9D9",       # bootstrap / confidence bands
    # colormaps (names understood by matplotlib)
    "diverging": "RdBu_r",       # signed quantities centred on 0 (z-scores)
    "sequential": "viridis",
    # initial-strength bins of the trajectories (Figure 2), light -> dark green
    "bins": ("#A1D99B", "#74C476", "#31A354", "#006D2C"),
}

#: Figure sizes in inches: "full" spans an A4 text width, "half" half of it.
FIGSIZE = {"full": (6.3, 3.6), "wide": (6.3, 2.8), "tall": (6.3, 5.2), "half": (3.1, 2.6),
           "pair": (6.3, 2.9)}

#: Resolution of saved raster figures.
DPI = 200

#: The rcParams applied by :func:`apply_style`.
RC = {
    "figure.figsize": FIGSIZE["full"],
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "savefig.dpi": DPI,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#E5E5E5",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "lines.linewidth": 1.4,
    "lines.markersize": 4,
    "scatter.edgecolors": "none",
    "image.cmap": PALETTE["sequential"],
}

#: Colour cycle for artists without a role (Okabe-Ito order).

CYCLE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def _rc():
    from cycler import cycler

    rc = dict(RC)
    rc["axes.prop_cycle"] = cycler(color=list(CYCLE))
    return rc


def apply_style():
    """Set matplotlib's rcParams to the emostats style (global, lasts the session).

    Examples
    --------
    >>> import matplotlib
    >>> apply_style()
    >>> matplotlib.rcParams["savefig.dpi"]
    200.0
    """
    import matplotlib

    matplotlib.rcParams.update(_rc())


@contextlib.contextmanager
def styled():
    """Context manager: the emostats style inside the block, the previous one after.

    Examples
    --------
    >>> import matplotlib
    >>> with styled():
    ...     matplotlib.rcParams["font.size"]
    9.0
    """
    import matplotlib

    with matplotlib.rc_context(_rc()):
        yield


def bin_colors(n):
    """``n`` colours for ordered bins (light to dark), from :data:`PALETTE` ``["bins"]``.

    Examples
    --------
    >>> bin_colors(2)
    ['#A1D99B', '#006D2C']
    """
    bins = list(PALETTE["bins"])
    if n <= len(bins):
        if n == 1:
            return [bins[-1]]
        idx = [round(i * (len(bins) - 1) / (n - 1)) for i in range(n)]
        return [bins[i] for i in idx]
    import matplotlib

    cmap = matplotlib.colormaps["Greens"]
    return [matplotlib.colors.to_hex(cmap(0.35 + 0.6 * i / (n - 1))) for i in range(n)]


def format_p(p):
    """``"p = 0.046"``, ``"p = 4.4e-52"`` or ``"p < 1e-300"`` (never ``p = 0``) for titles and legends.

    Examples
    --------
    >>> format_p(0.04567), format_p(4.4e-52), format_p(0.0), format_p(float("nan"))
    ('p = 0.046', 'p = 4.4e-52', 'p < 1e-300', 'p = n/a')
    """
    p = float(p)
    if not math.isfinite(p):
        return "p = n/a"
    if p < 1e-300:
        return "p < 1e-300"
    return f"p = {p:.2g}" if p >= 1e-3 else f"p = {p:.1e}"
