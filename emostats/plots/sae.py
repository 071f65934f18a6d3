"""Figure 7: residual SAE firing persistence against subspace fraction."""

import numpy as np

__all__ = ["plot_sae_residual_vs_subspace", "binned_trend", "format_rho"]


def format_rho(rho, p, n):
    """``"rho = +0.111, p = 4.4e-52, n = 18,000"`` for a legend or title.

    Examples
    --------
    >>> format_rho(0.1114, 4.4e-52, 18000)
    'ρ = +0.111, p = 4.4e-52, n = 18,000'
    """
    if not np.isfinite(rho):
        return f"ρ undefined, n = {int(n):,}"
    from ._style import format_p

    return f"ρ = {rho:+.3f}, {format_p(p)}, n = {int(n):,}"


def binned_trend(x, y, n_bins=20):
    """Median of ``y`` in ``n_bins`` equal-count bins of ``x`` (NaN pairs dropped).

    Returns the bin centres (median x) and the medians of y.

    Examples
    --------
    >>> cx, my = binned_trend(np.arange(10.0), np.arange(10.0), n_bins=2)
    >>> cx.tolist(), my.tolist()
    ([2.0, 7.0], [2.0, 7.0])
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size == 0:
        return np.array([]), np.array([])
    n_bins = max(1, min(n_bins, x.size))
    order = np.argsort(x, kind="stable")
    parts = np.array_split(order, n_bins)
    return (np.array([np.median(x[p]) for p in parts]), np.array([np.median(y[p]) for p in parts]))


def plot_sae_residual_vs_subspace(sae_matched, ax=None, hexbin_above=2000):
    """Residual firing persistence (above variance-matched features) against subspace fraction.

    Scatter (or a hexbin when there are more than ``hexbin_above`` features),
    a binned-median trend and the Spearman correlation in the title.

    Parameters
    ----------
    sae_matched : xarray.Dataset
        The result of :func:`emostats.sae.sae_matched`.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"residual": ("feature", np.linspace(-0.1, 0.1, 50)),
    ...                  "subspace_fraction": ("feature", np.linspace(0, 1, 50)),
    ...                  "rho": 1.0, "p": 0.0, "n": 50})
    >>> plot_sae_residual_vs_subspace(ds).get_xlabel()
    'emotion subspace fraction of the decoder'
    """
    import matplotlib.pyplot as plt

    from ._style import FIGSIZE, PALETTE, styled

    x = np.asarray(sae_matched["subspace_fraction"].values, dtype=float)
    y = np.asarray(sae_matched["residual"].values, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    with styled():
        if ax is None:
            _, ax = plt.subplots(figsize=FIGSIZE["full"])
        if x.size > hexbin_above:
            art = ax.hexbin(x, y, gridsize=60, bins="log", mincnt=1, cmap="Greens", linewidths=0)
            ax.figure.colorbar(art, ax=ax, label="features per cell")
        else:
            ax.scatter(x, y, s=6, alpha=0.6, color=PALETTE["sae"], label="SAE feature")
        cx, my = binned_trend(x, y)
        if cx.size:
            ax.plot(cx, my, color=PALETTE["fit"], marker="o", markersize=2.5, label="binned median")
        ax.axhline(0, color=PALETTE["reference"], linewidth=0.7, linestyle="--")
        ax.set_xlabel("emotion subspace fraction of the decoder")
        ax.set_ylabel("residual firing persistence\n(vs variance-matched features)")
        ax.set_title(format_rho(float(sae_matched["rho"]), float(sae_matched["p"]), int(sae_matched["n"])))
        ax.legend(loc="best")
    return ax
