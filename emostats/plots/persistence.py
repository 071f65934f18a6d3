"""Figure 2 and the lag profile: trajectories by initial strength, r(L), and decay fits.

Each function takes result Datasets (:func:`emostats.trajectories`,
:func:`emostats.lag_profile`, :func:`emostats.fit_decay`), draws on ``ax`` (a
new figure when None) and returns the axes. matplotlib is imported inside the
functions; colours come from :mod:`emostats.plots._style`.
"""

import numpy as np

__all__ = ["plot_trajectories", "plot_lag_profile", "plot_decay_fit"]


def _style():
    from ._style import FIGSIZE, PALETTE, bin_colors

    return PALETTE, FIGSIZE, bin_colors


def _axes(ax, size="full"):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, FIGSIZE, _ = _style()
    _, ax = plt.subplots(figsize=FIGSIZE.get(size))
    return ax


def _tau_dim(ds):
    for dim in ("tau", "lag"):
        if dim in ds.dims:
            return dim
    raise ValueError(f"expected a 'tau' or 'lag' dim, got {tuple(ds.dims)}")


def plot_trajectories(traj, ax=None, baseline=True):
    """Figure 2: mean sign-aligned z at t + tau for each bin of initial strength |z_t|.

    Parameters
    ----------
    traj : xarray.Dataset
        The result of :func:`emostats.trajectories` (``mean(bin, tau)``).
    ax : matplotlib Axes, optional
    baseline : bool
        Draw the zero line (the mean of z over all tokens).

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import emostats as es
    >>> from emostats.plots.persistence import plot_trajectories
    >>> study = es.open_study(es.example_study())
    >>> act = study["tokens"]["probe_act"]
    >>> ax = plot_trajectories(es.trajectories(act, max_lag=50))
    >>> ax.get_xlabel()
    'tokens after the initial token (tau)'
    >>> study.close()  # release the file handle now rather than at garbage collection
    """
    PALETTE, _, bin_colors = _style()
    ax = _axes(ax)
    mean = traj["mean"]
    colors = bin_colors(mean.sizes["bin"])
    tau = traj["tau"].values
    for color, b in zip(colors, mean["bin"].values):
        label = str(b).replace("inf", "\u221e")
        ax.plot(tau, mean.sel(bin=b).values, color=color, label=f"|z| in {label}")
    if baseline:
        ax.axhline(0.0, color=PALETTE["reference"], lw=0.8, ls="--", zorder=0)
    ax.set_xlabel("tokens after the initial token (tau)")
    ax.set_ylabel("sign-aligned activation (sd from the mean)")
    ax.set_title("Trajectories of emotion-probe activation after a strong token")
    ax.set_xlim(tau[0], tau[-1])
    ax.legend(title="initial strength", loc="upper right")
    return ax


def plot_lag_profile(profile, ax=None, band=(0.1, 0.9), show_probes=False):
    """The lag profile r(L): mean over probes with a band of probe quantiles.

    Parameters
    ----------
    profile : xarray.Dataset
        The result of :func:`emostats.lag_profile` (``r(lag, probe)``).
    ax : matplotlib Axes, optional
    band : (float, float) or None
        Quantiles of r over probes to shade (default 10% to 90%).
    show_probes : bool
        Also draw every probe's curve, thin.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import emostats as es
    >>> from emostats.plots.persistence import plot_lag_profile
    >>> study = es.open_study(es.example_study())
    >>> act = study["tokens"]["probe_act"]
    >>> ax = plot_lag_profile(es.lag_profile(act, max_lag=50))
    >>> ax.get_ylabel()
    'lag correlation r(L)'
    >>> study.close()  # release the file handle now rather than at garbage collection
    """
    PALETTE, _, _ = _style()
    ax = _axes(ax)
    r = profile["r"]
    lag = profile["lag"].values
    series = [d for d in r.dims if d != "lag"]
    if series:
        values = r.transpose("lag", *series).values.reshape(lag.size, -1)
        with np.errstate(all="ignore"), _quiet():
            mean = np.nanmean(values, axis=1)
        if show_probes:
            ax.plot(lag, values, color=PALETTE["probe"], lw=0.4, alpha=0.25)
        if band is not None:
            with _quiet():
                lo, hi = np.nanquantile(values, band, axis=1)
            ax.fill_between(lag, lo, hi, color=PALETTE["probe"], alpha=0.2, lw=0,
                            label=f"probes, {band[0]:.0%}-{band[1]:.0%} quantiles")
        label = f"mean over {values.shape[1]} probes"
    else:
        mean = r.values
        label = "r(L)"
    ax.plot(lag, mean, color=PALETTE["probe"], label=label)
    ax.axhline(0.0, color=PALETTE["reference"], lw=0.8, ls="--", zorder=0)
    if "lag" in profile.attrs:
        ax.axvline(profile.attrs["lag"], color=PALETTE["reference"], lw=0.8, ls=":")
    ax.set_xlabel("lag L (tokens)")
    ax.set_ylabel("lag correlation r(L)")
    ax.set_title("Persistence of emotion probes across tokens")
    ax.set_xlim(lag[0], lag[-1])
    ax.legend(loc="upper right")
    return ax


def plot_decay_fit(profile_or_traj, fit, ax=None, log_x=False):
    """Data and fitted decay curves, with the half-lives in the legend.

    Parameters
    ----------
    profile_or_traj : xarray.Dataset
        The Dataset that was fitted: :func:`emostats.trajectories` (one curve per
        bin) or :func:`emostats.lag_profile` (the probe mean when ``fit`` was made
        with ``average_probes=True``, else one curve per probe; keep it to a few).
    fit : xarray.Dataset
        The result of :func:`emostats.fit_decay` on it.
    ax : matplotlib Axes, optional
    log_x : bool
        Logarithmic tau axis (from tau = 1), which separates the fast and slow parts.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import emostats as es
    >>> from emostats.plots.persistence import plot_decay_fit
    >>> study = es.open_study(es.example_study())
    >>> act = study["tokens"]["probe_act"]
    >>> tr = es.trajectories(act, max_lag=50)
    >>> ax = plot_decay_fit(tr, es.fit_decay(tr, n_boot=0))
    >>> len(ax.get_lines()) >= 8
    True
    >>> study.close()  # release the file handle now rather than at garbage collection
    """
    PALETTE, _, bin_colors = _style()
    ax = _axes(ax)
    tdim = _tau_dim(fit)
    variable = fit.attrs.get("variable", "mean" if "mean" in profile_or_traj else "r")
    data = profile_or_traj[variable]
    if fit.attrs.get("average_probes"):
        probe_dim = next(d for d in data.dims if d not in (tdim, "bin"))
        with _quiet():
            data = data.mean(probe_dim, skipna=True)
    curve_dims = [d for d in data.dims if d != tdim]
    stacked = data.stack(curve=curve_dims) if curve_dims else data.expand_dims(curve=[""])
    fitted = fit["fitted"].stack(curve=curve_dims) if curve_dims else fit["fitted"].expand_dims(curve=[""])
    hl = fit["half_life"].stack(curve=curve_dims) if curve_dims else fit["half_life"].expand_dims(curve=[""])
    n = stacked.sizes["curve"]
    if "bin" in curve_dims:
        colors = bin_colors(n)
    elif n == 1:
        colors = [PALETTE["probe"]]
    else:
        cycle = _cycle()
        colors = [cycle[i % len(cycle)] for i in range(n)]
    tau = data[tdim].values
    keep = tau >= 1 if log_x else np.ones(tau.size, bool)
    for i in range(n):
        name = stacked["curve"].values[i]
        name = ", ".join(str(v) for v in name) if isinstance(name, tuple) else str(name)
        lives = [f"{h:.3g}" for h in hl.isel(curve=i).values if np.isfinite(h)]
        label = (f"{name}: " if name else "") + ("half-lives " + ", ".join(lives) + " tokens" if lives else "no fit")
        ax.plot(tau[keep], stacked.isel(curve=i).transpose(tdim).values[keep], ls="none", marker="o", ms=2,
                color=colors[i], alpha=0.6)
        ax.plot(tau[keep], fitted.isel(curve=i).transpose(tdim).values[keep], color=colors[i], lw=1.2,
                label=label.replace("inf", "\u221e"))
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(("lag L" if tdim == "lag" else "tokens after the initial token (tau)")
                  + (" (tokens)" if tdim == "lag" else ""))
    ax.set_ylabel("lag correlation r(L)" if variable == "r" else "sign-aligned activation (sd)")
    ax.set_title("Decay fits: tail plus one or two exponentials")
    ax.legend(loc="upper right", fontsize="small")
    return ax


def _cycle():
    from ._style import CYCLE

    return CYCLE


class _quiet:
    """Silence NumPy's RuntimeWarnings for all-NaN slices inside a block."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
