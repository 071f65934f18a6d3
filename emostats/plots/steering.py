"""Figure 6: the causal effect of a steering pulse (heatmap of z, counts on top)."""

import numpy as np

__all__ = ["plot_steering"]


def plot_steering(effect, fig=None, every=5, order="peak"):
    """Heatmap of the z-scores of :func:`emostats.steering_effect`, with a top panel
    counting the emotions significantly persistent (red, upward bars) and
    anti-persistent (blue, downward bars) at every ``every``-th offset.

    Parameters
    ----------
    effect : xarray.Dataset
        The result of :func:`emostats.steering_effect`.
    fig : matplotlib.figure.Figure, optional
        Figure to draw in (cleared first); default a new one.
    every : int
        Offset step of the count bars (the study: every fifth token).
    order : {"peak", "none"}
        Row order: by the z at the offset of largest mean |z| (descending), or as stored.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> steer = xr.Dataset(
    ...     {"steered_act": (("emotion", "sample", "offset", "probe"), rng.normal(size=(3, 8, 20, 3)) + 1.0),
    ...      "baseline_act": (("baseline_sample", "offset", "probe"), rng.normal(size=(8, 20, 3)))},
    ...     coords={"emotion": ["a", "b", "c"], "probe": ["a", "b", "c"], "offset": np.arange(20)})
    >>> from emostats import steering_effect
    >>> fig = plot_steering(steering_effect(steer))
    >>> len(fig.axes)
    3
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    from ._style import FIGSIZE, PALETTE, styled

    z = effect["z"].transpose("emotion", "offset")
    offsets = np.asarray(effect["offset"].values)
    emotions = [str(e) for e in effect["emotion"].values]
    values = np.asarray(z.values, dtype=float)
    rows = np.arange(len(emotions))
    if order == "peak" and np.isfinite(values).any():
        col = int(np.nanargmax(np.nanmean(np.abs(values), axis=0)))
        key = np.where(np.isfinite(values[:, col]), values[:, col], -np.inf)
        rows = np.argsort(-key, kind="stable")
    values = values[rows]
    with styled():
        if fig is None:
            fig = plt.figure(figsize=FIGSIZE["tall"])
        else:
            fig.clear()
        grid = fig.add_gridspec(2, 2, height_ratios=(1, 3.2), width_ratios=(40, 1))
        ax_top = fig.add_subplot(grid[0, 0])
        ax = fig.add_subplot(grid[1, 0], sharex=ax_top)
        cax = fig.add_subplot(grid[1, 1])
        finite = values[np.isfinite(values)]
        limit = float(np.nanpercentile(np.abs(finite), 99)) if finite.size else 1.0
        limit = limit if limit > 0 else 1.0
        step = float(np.median(np.diff(offsets))) if offsets.size > 1 else 1.0
        extent = (offsets[0] - step / 2, offsets[-1] + step / 2, len(rows) - 0.5, -0.5)
        image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", interpolation="nearest",
                          cmap=PALETTE["diverging"], norm=TwoSlopeNorm(0.0, -limit, limit), extent=extent)
        fig.colorbar(image, cax=cax, label="causal effect z")
        ax.set_xlabel("tokens after the steering pulse")
        ax.set_ylabel(f"steered emotion ({len(emotions)})")
        ax.grid(False)
        if len(emotions) <= 40:
            ax.set_yticks(np.arange(len(rows)))
            ax.set_yticklabels([emotions[i] for i in rows], fontsize=6)
        else:
            ax.set_yticks([])
        pick = np.flatnonzero((offsets - offsets[0]) % every == 0)
        width = 0.8 * every * step
        n_pos = np.asarray(effect["n_persistent"].values)[pick]
        n_neg = np.asarray(effect["n_antipersistent"].values)[pick]
        ax_top.bar(offsets[pick], n_pos, width=width, color=PALETTE["persistent"], label="persistent (z > 0)")
        ax_top.bar(offsets[pick], -n_neg, width=width, color=PALETTE["antipersistent"],
                   label="anti-persistent (z < 0)")
        ax_top.axhline(0, color=PALETTE["reference"], linewidth=0.6)
        ax_top.set_ylabel("emotions\n(BH-FDR)")
        # symmetric integer ticks, so the downward (anti-persistent) counts can be read too
        top = max(int(n_pos.max(initial=0)), int(n_neg.max(initial=0)), 1)
        ax_top.set_ylim(-1.15 * top, 2.0 * top)  # headroom above the bars for the legend
        ax_top.yaxis.set_major_locator(plt.MaxNLocator(nbins=4, integer=True, symmetric=True))
        ax_top.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{abs(v):g}"))
        ax_top.tick_params(labelbottom=False)
        ax_top.legend(loc="upper right", ncol=2)
        alpha = effect.attrs.get("alpha", 0.05)
        ax_top.set_title(f"Significant emotions every {every} tokens (q <= {alpha:g})")
    return fig
