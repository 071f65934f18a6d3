"""Figures 8-10: emotionality ratings of SAE features, and the mention volcano plot."""

import numpy as np

from .sae import binned_trend, format_rho

__all__ = ["plot_ratings", "plot_mention_volcano", "plot_residual_vs_ratings"]

_RATING_TITLES = {"self_rating": "self-evaluation (agentic self-steering)",
                  "text_rating": "textual evaluation (steered text)"}


def _two_panels(ratings, x, xlabel, fig):
    import matplotlib.pyplot as plt

    from ._style import FIGSIZE, PALETTE, styled

    with styled():
        if fig is None:
            fig = plt.figure(figsize=FIGSIZE["pair"])
        else:
            fig.clear()
        axes = fig.subplots(1, 2, sharey=True)
        for ax, rating in zip(axes, ("self_rating", "text_rating")):
            xs = np.asarray(ratings[x].values, dtype=float)
            ys = np.asarray(ratings[rating].values, dtype=float)
            keep = np.isfinite(xs) & np.isfinite(ys)
            ax.scatter(xs[keep], ys[keep], s=7, alpha=0.55, color=PALETTE[rating], label="rated feature")
            cx, my = binned_trend(xs[keep], ys[keep], n_bins=10)
            if cx.size:
                ax.plot(cx, my, color=PALETTE["fit"], marker="o", markersize=2.5, label="binned median")
            pair = f"{x}:{rating}" if f"{x}:{rating}" in ratings["pair"].values else f"{rating}:{x}"
            if pair in ratings["pair"].values:
                row = ratings.sel(pair=pair)
                ax.set_title(f"{_RATING_TITLES[rating]}\n{format_rho(float(row['rho']), float(row['p']), int(row['n']))}")
            else:
                ax.set_title(_RATING_TITLES[rating])
            ax.set_xlabel(xlabel)
            if x == "residual":
                ax.axvline(0, color=PALETTE["reference"], linewidth=0.7, linestyle="--")
        axes[0].set_ylabel("emotionality rating (0-100)")
        axes[0].legend(loc="best")
    return fig


def plot_ratings(ratings, fig=None):
    """Figure 8: each rating against the feature's emotion subspace fraction (two panels).

    Parameters
    ----------
    ratings : xarray.Dataset
        The result of :func:`emostats.rating_analyses`.
    fig : matplotlib.figure.Figure, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from emostats.ratings import RATING_PAIRS
    >>> rng = np.random.default_rng(0)
    >>> pairs = [f"{a}:{b}" for a, b in RATING_PAIRS]
    >>> ds = xr.Dataset({"rho": ("pair", np.zeros(6)), "p": ("pair", np.ones(6)), "n": ("pair", np.full(6, 30)),
    ...     **{v: ("feature", rng.random(30)) for v in ("self_rating", "text_rating", "subspace_fraction",
    ...                                                  "residual")}}, coords={"pair": pairs})
    >>> len(plot_ratings(ds).axes)
    2
    """
    return _two_panels(ratings, "subspace_fraction", "emotion subspace fraction of the decoder", fig)


def plot_residual_vs_ratings(ratings, fig=None):
    """Figure 10: each rating against residual firing persistence (two panels).

    Parameters
    ----------
    ratings : xarray.Dataset
        The result of :func:`emostats.rating_analyses`.
    fig : matplotlib.figure.Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    stat = ratings.attrs.get("stat", "mean")
    n = ratings.attrs.get("n_match", 20)
    return _two_panels(ratings, "residual",
                       f"residual firing persistence\n(vs {stat} of {n} matched)", fig)


def plot_mention_volcano(mentions, ax=None, n_labels=12):
    """Figure 9: effect (mean cosine difference) against -log10 q, one point per tested emotion.

    Significant emotions (q <= alpha) are coloured and the ``n_labels`` of them
    with the largest effect are named; the dashed line marks q = alpha.

    Parameters
    ----------
    mentions : xarray.Dataset
        The result of :func:`emostats.mention_tests`.
    ax : matplotlib.axes.Axes, optional
    n_labels : int
        How many significant emotions to name.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"effect": ("emotion", [0.1, -0.02, 0.05]), "neg_log10_q": ("emotion", [3.0, 0.1, 0.5]),
    ...                  "significant": ("emotion", [True, False, False]), "tested": ("emotion", [True] * 3)},
    ...                 coords={"emotion": ["joy", "calm", "fear"]}, attrs={"alpha": 0.05})
    >>> plot_mention_volcano(ds).get_ylabel()
    '−log10 q (BH-FDR)'
    """
    import matplotlib.pyplot as plt

    from ._style import FIGSIZE, PALETTE, styled

    tested = np.asarray(mentions["tested"].values, dtype=bool)
    effect = np.asarray(mentions["effect"].values, dtype=float)[tested]
    height = np.asarray(mentions["neg_log10_q"].values, dtype=float)[tested]
    sig = np.asarray(mentions["significant"].values, dtype=bool)[tested]
    names = np.asarray([str(e) for e in mentions["emotion"].values])[tested]
    alpha = float(mentions.attrs.get("alpha", 0.05))
    with styled():
        if ax is None:
            _, ax = plt.subplots(figsize=FIGSIZE["full"])
        ax.scatter(effect[~sig], height[~sig], s=14, color=PALETTE["nonsignificant"], label="not significant")
        ax.scatter(effect[sig], height[sig], s=16, color=PALETTE["significant"], label=f"q <= {alpha:g}")
        ax.axhline(-np.log10(alpha), color=PALETTE["reference"], linestyle="--", linewidth=0.7)
        ax.axvline(0, color=PALETTE["reference"], linewidth=0.6)
        # name the significant emotions of largest effect; labels alternate above and below
        # the point, since many q values sit at the permutation floor
        chosen = np.flatnonzero(sig)[np.argsort(-effect[sig], kind="stable")][:n_labels]
        for rank, i in enumerate(sorted(chosen, key=lambda j: effect[j])):
            dy = 6 if rank % 2 == 0 else -9
            ax.annotate(names[i], (effect[i], height[i]), xytext=(0, dy), textcoords="offset points",
                        fontsize=6, ha="center", rotation=30 if dy > 0 else -30)
        ax.set_xlabel("effect: mean cosine (mentioning) − mean cosine (not mentioning)")
        ax.set_ylabel("−log10 q (BH-FDR)")
        n_pos = int((effect > 0).sum())
        ax.set_title(f"{int(sig.sum())} of {int(tested.sum())} emotions significant, {n_pos} positive")
        ax.legend(loc="upper left")
    return ax
