"""Each headline number against its placebo (negative-control) distribution (issue 14).

:func:`plot_placebo` takes the result of :func:`emostats.inference.placebo_nulls` (the
``placebo`` step) and draws one small panel per statistic that has a study
value: a histogram of the placebo draws of every kind of placebo probe set
(isotropic, covariance-shaped) or of the random spans, the study's value as a
vertical line, and its percentile among the draws and the placebo p printed in
the panel. matplotlib is imported inside the function.
"""

import math

import numpy as np

__all__ = ["plot_placebo", "placebo_panels", "figure_size", "LABELS"]

#: statistic -> short panel title
LABELS = {
    "probe_persistence": "mean lag r of the probes",
    "residual_mean": "mean residual persistence",
    "residual_positive": "probes with residual > 0",
    "pc_spearman": "Spearman of PC rank with residual",
    "mean_variance_explained": "mean variance explained",
    "mean_subspace_fraction": "mean subspace fraction",
    "sae_spearman": "Spearman of subspace fraction\nwith SAE residual",
    "subspace_self_rating": "Spearman of subspace fraction\nwith self rating",
    "subspace_text_rating": "Spearman of subspace fraction\nwith text rating",
}

_KIND_COLORS = {"isotropic": "random", "shaped": "matched", "rotated": "pc", "span": "sae"}
_KIND_NAMES = {"isotropic": "isotropic probe sets", "shaped": "covariance-shaped probe sets",
               "rotated": "rotated probe sets", "span": "random spans"}


def placebo_panels(placebo):
    """The panels :func:`plot_placebo` draws: a list of dicts, one per statistic with a finite study value.

    Each dict has ``statistic``, ``observed`` and ``series``: a list of
    ``(kind, draws, percentile, p)`` (kind ``"span"`` for the random-span placebo).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> pl = xr.Dataset({"draws": (("kind", "draw", "statistic"), np.arange(6.0).reshape(1, 3, 2)),
    ...                  "observed": ("statistic", [9.0, np.nan]),
    ...                  "placebo_pct": (("kind", "statistic"), [[100.0, np.nan]]),
    ...                  "placebo_p": (("kind", "statistic"), [[0.5, np.nan]])},
    ...                 coords={"kind": ["isotropic"], "statistic": ["a", "b"]})
    >>> [(p["statistic"], p["observed"], p["series"][0][2]) for p in placebo_panels(pl)]
    [('a', 9.0, 100.0)]
    """
    panels = []
    if "draws" in placebo and "observed" in placebo:
        for j, name in enumerate(str(s) for s in placebo["statistic"].values):
            obs = float(placebo["observed"].values[j])
            if not math.isfinite(obs):
                continue
            series = []
            for a, kind in enumerate(str(k) for k in placebo["kind"].values):
                draws = np.asarray(placebo["draws"].values[a, :, j], dtype=np.float64)
                pct = float(placebo["placebo_pct"].values[a, j]) if "placebo_pct" in placebo else math.nan
                p = float(placebo["placebo_p"].values[a, j]) if "placebo_p" in placebo else math.nan
                series.append((kind, draws[np.isfinite(draws)], pct, p))
            panels.append({"statistic": name, "observed": obs, "series": series})
    if "span_draws" in placebo and "span_observed" in placebo:
        for j, name in enumerate(str(s) for s in placebo["span_statistic"].values):
            obs = float(placebo["span_observed"].values[j])
            if not math.isfinite(obs):
                continue
            draws = np.asarray(placebo["span_draws"].values[:, j], dtype=np.float64)
            pct = float(placebo["span_placebo_pct"].values[j]) if "span_placebo_pct" in placebo else math.nan
            p = float(placebo["span_placebo_p"].values[j]) if "span_placebo_p" in placebo else math.nan
            panels.append({"statistic": name, "observed": obs,
                           "series": [("span", draws[np.isfinite(draws)], pct, p)]})
    return panels


def _pct_text(kind, pct, p, reported=False):
    from ._style import format_p

    name = {"span": "spans"}.get(kind, kind)
    if not math.isfinite(pct):
        return f"{name}: –"
    return f"{name}: percentile {pct:.0f}, {format_p(p)}" + (" (reported)" if reported else "")


def figure_size(n_panels, ncols=3):
    """(width, height) in inches for ``n_panels`` panels in rows of ``ncols`` at A4 text width.

    Examples
    --------
    >>> figure_size(7)
    (6.3, 5.65)
    """
    rows = max(1, math.ceil(int(n_panels) / max(1, int(ncols))))
    return (6.3, round(1.75 * rows + 0.4, 2))


def plot_placebo(placebo, fig=None, ncols=3, bins=30, labels=None, reported=None):
    """Each study number against its placebo draws: one histogram panel per statistic.

    Parameters
    ----------
    placebo : xarray.Dataset
        The result of :func:`emostats.inference.placebo_nulls` with ``observed`` (as the
        ``placebo`` step writes it): ``draws(kind, draw, statistic)``,
        ``placebo_pct``, ``placebo_p`` and optionally ``span_*``.
    fig : matplotlib Figure, optional
        Drawn on (a new figure when None).
    ncols : int
        Panels per row.
    bins : int
        Histogram bins over each panel's range (draws and study value).
    labels : dict, optional
        statistic -> panel title (default :data:`LABELS`).
    reported : dict, optional
        statistic -> the kind whose percentile a table reports (marked "(reported)" in the panel).

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> pl = xr.Dataset({"draws": (("kind", "draw", "statistic"), rng.normal(size=(1, 50, 1))),
    ...                  "observed": ("statistic", [2.5]), "placebo_pct": (("kind", "statistic"), [[99.0]]),
    ...                  "placebo_p": (("kind", "statistic"), [[0.04]])},
    ...                 coords={"kind": ["isotropic"], "statistic": ["residual_mean"]})
    >>> fig = plot_placebo(pl)
    >>> len(fig.axes)
    1
    """
    from ._style import PALETTE

    panels = placebo_panels(placebo)
    if fig is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figure_size(len(panels), ncols), layout="constrained")
    labels = {**LABELS, **(labels or {})}
    if not panels:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no study value to compare with placebo draws", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    ncols = max(1, min(int(ncols), len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        obs = panel["observed"]
        values = [s[1] for s in panel["series"] if s[1].size]
        pool = np.concatenate(values + [np.array([obs])])
        lo, hi = float(pool.min()), float(pool.max())
        pad = 0.04 * (hi - lo) if hi > lo else 0.5 * max(abs(lo), 1e-9)
        edges = np.linspace(lo - pad, hi + pad, bins + 1)
        texts = []
        for kind, draws, pct, p in panel["series"]:
            color = PALETTE.get(_KIND_COLORS.get(kind, "random"), "#7F7F7F")
            if draws.size:
                name = _KIND_NAMES.get(kind, kind)
                ax.hist(draws, bins=edges, color=color, alpha=0.5, label=f"{name} placebo (n = {draws.size})")
            texts.append(_pct_text(kind, pct, p, reported=len(panel["series"]) > 1
                                   and (reported or {}).get(panel["statistic"]) == kind))
        ax.set_ylim(0, ax.get_ylim()[1] * (1.25 + 0.15 * len(texts)))  # room for the printed percentiles
        ax.axvline(obs, color=PALETTE["probe"], linewidth=1.6, label="this study")
        ax.set_title(labels.get(panel["statistic"], panel["statistic"].replace("_", " ")), fontsize=8)
        ax.text(0.02, 0.97, "\n".join(texts), transform=ax.transAxes, ha="left", va="top", fontsize=6.5,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0})
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    handles, names = [], []
    for ax in axes[:len(panels)]:
        for h, n in zip(*ax.get_legend_handles_labels()):
            key = n.split(" (")[0]
            if key not in [m.split(" (")[0] for m in names]:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, loc="outside lower center", ncols=min(4, len(names)), fontsize=7)
    return fig
