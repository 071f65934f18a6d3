"""Figures 3, 4 and 5 of the study: probes against random and variance-matched directions, and emotion PCs.

Each function takes result Datasets (from :func:`emostats.lag_persistence`,
:func:`emostats.direction_persistence`, :func:`emostats.variance_matched`,
:func:`emostats.emotion_pcs`), draws on ``ax`` (a new figure when None) and
returns the axes. matplotlib is imported inside the functions.
"""

import numpy as np

__all__ = ["plot_random_vs_probes", "plot_residuals", "plot_pc_residuals"]


def _palette():
    try:
        from ._style import PALETTE
    except ImportError:  # pragma: no cover - the style module ships with the package
        PALETTE = {}
    base = {"probe": "#D55E00", "random": "#7F7F7F", "matched": "#0072B2", "pc": "#CC79A7",
            "positive": "#C0392B", "negative": "#2166AC", "reference": "#555555", "fit": "#000000"}
    base.update({k: v for k, v in PALETTE.items() if isinstance(v, str)})
    return base


def _axes(ax, size="full"):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    try:
        from ._style import FIGSIZE
        figsize = FIGSIZE[size]
    except (ImportError, KeyError):
        figsize = None
    _, ax = plt.subplots(figsize=figsize)
    return ax


def _finite(values):
    values = np.asarray(values, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def _fmt_p(p):
    from ._style import format_p

    return format_p(p)


def plot_random_vs_probes(probe_persistence, random_persistence, ax=None, bins=40):
    """Figure 3: distribution of lag persistence of random directions and of the emotion probes.

    Parameters
    ----------
    probe_persistence : xarray.Dataset
        With ``r(probe)`` (e.g. :func:`emostats.lag_persistence`).
    random_persistence : xarray.Dataset
        With ``r(direction)`` (:func:`emostats.direction_persistence`).
    ax : matplotlib Axes, optional
    bins : int
        Histogram bins over the common range.

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    colors = _palette()
    probe_r = _finite(probe_persistence["r"])
    rand_r = _finite(random_persistence["r"])
    both = np.concatenate([probe_r, rand_r])
    lag = probe_persistence.attrs.get("lag", random_persistence.attrs.get("lag", "L"))
    if both.size:
        lo, hi = both.min(), both.max()
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-9, bins + 1)
        if rand_r.size:
            ax.hist(rand_r, bins=edges, density=True, color=colors["random"], alpha=0.55,
                    label=f"random directions (n = {rand_r.size:,}, mean {rand_r.mean():.3f})")
            ax.axvline(rand_r.mean(), color=colors["random"], linestyle="--", linewidth=1)
        if probe_r.size:
            ax.hist(probe_r, bins=edges, density=True, color=colors["probe"], alpha=0.6,
                    label=f"emotion probes (n = {probe_r.size:,}, mean {probe_r.mean():.3f})")
            ax.axvline(probe_r.mean(), color=colors["probe"], linestyle="--", linewidth=1)
    ax.set_xlabel(f"lag-{lag} persistence r (Pearson, token t vs t+{lag})")
    ax.set_ylabel("density")
    ax.set_title("Persistence of random directions and emotion probes")
    ax.legend(loc="upper right")
    return ax


def plot_residuals(matched, ax=None, label_top=3):
    """Figure 4: residual persistence of each target above its variance-matched directions.

    Bars of the residuals, sorted, coloured by sign, with the mean, the
    t-test p-value and the count positive in the title.

    Parameters
    ----------
    matched : xarray.Dataset
        From :func:`emostats.variance_matched` (``residual(target)``; tests as scalars).
    ax : matplotlib Axes, optional
    label_top : int
        Name this many targets at each end in a caption (when the ``target``
        coordinate holds names; 0 for none).

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    colors = _palette()
    res = np.asarray(matched["residual"].values, dtype=np.float64)
    names = matched["target"].values if "target" in matched.coords else np.arange(res.size)
    keep = np.isfinite(res)
    res, names = res[keep], np.asarray(names)[keep]
    order = np.argsort(res, kind="stable")[::-1]
    res, names = res[order], names[order]
    x = np.arange(res.size)
    ax.bar(x, res, width=1.0, color=np.where(res > 0, colors["positive"], colors["negative"]), linewidth=0)
    ax.axhline(0, color=colors["reference"], linewidth=0.8)
    if res.size:
        mean = res.mean()
        ax.axhline(mean, color=colors["fit"], linestyle="--", linewidth=1, label=f"mean {mean:+.3f}")
        ax.legend(loc="upper right")
    if label_top and res.size and names.dtype.kind in "UO":
        k = min(int(label_top), res.size)
        ax.text(0.99, 0.80, "highest: " + ", ".join(map(str, names[:k])), transform=ax.transAxes,
                ha="right", va="top", fontsize="small")
        ax.text(0.01, 0.03, "lowest: " + ", ".join(map(str, names[::-1][:k])), transform=ax.transAxes,
                ha="left", va="bottom", fontsize="small")
    n_pos = int(matched["n_positive"]) if "n_positive" in matched else int((res > 0).sum())
    p = matched["t_p"] if "t_p" in matched else np.nan
    stat = matched.attrs.get("stat", "median")
    n_match = matched.attrs.get("n_match", "")
    ax.set_title(f"Residual persistence: {n_pos} of {res.size} positive, t-test {_fmt_p(p)}")
    ax.set_xlabel(f"{matched.attrs.get('target_dim', 'target')} (sorted by residual)")
    ax.set_ylabel(f"r minus {stat} r of {n_match} matched")
    ax.set_xlim(-0.5, max(res.size - 0.5, 0.5))
    return ax


def plot_pc_residuals(pcs, ax=None, window=None):
    """Figure 5: residual persistence of each emotion PC against its rank.

    Points per PC (1 = most variance), a running mean, the zero line, and the
    Spearman correlation of rank with residual in the title.

    Parameters
    ----------
    pcs : xarray.Dataset
        From :func:`emostats.emotion_pcs` (``residual(pc)``, ``rank_rho``, ``rank_p``).
    ax : matplotlib Axes, optional
    window : int, optional
        Width of the running mean (default about a tenth of the PCs, at least 3).

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    colors = _palette()
    rank = np.asarray(pcs["pc"].values, dtype=np.float64)
    if "residual" in pcs:
        y = np.asarray(pcs["residual"].values, dtype=np.float64)
        ylabel = f"residual persistence (r minus {pcs.attrs.get('stat', 'median')} of matched)"
    else:  # no moments: persistence of the scores only
        y = np.asarray(pcs["r"].values, dtype=np.float64)
        ylabel = f"lag-{pcs.attrs.get('lag', '')} persistence r of the PC scores"
    ax.scatter(rank, y, s=12, color=colors["pc"], alpha=0.8, label="PC")
    ok = np.isfinite(y)
    if ok.sum() >= 3:
        w = window or max(3, int(round(ok.sum() / 10)))
        w = min(w, int(ok.sum()))
        kernel = np.ones(w) / w
        smooth = np.convolve(y[ok], kernel, mode="valid")
        ax.plot(rank[ok][w // 2: w // 2 + smooth.size], smooth, color=colors["fit"], label=f"running mean ({w} PCs)")
    ax.axhline(0, color=colors["reference"], linewidth=0.8)
    title = "Emotion PCs: persistence by rank"
    if "rank_rho" in pcs:
        title += f" (Spearman rho = {float(pcs['rank_rho']):+.3f}, {_fmt_p(pcs['rank_p'])})"
    ax.set_title(title)
    ax.set_xlabel("PC rank (1 = most variance)")
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper right")
    return ax
