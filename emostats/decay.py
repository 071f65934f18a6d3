"""Decay fits (SPEC.md section 2, analysis 3): one or two exponentials plus a tail.

:func:`fit_decay` fits ``a + b exp(-tau/T_fast) + c exp(-tau/T_slow)`` and
``a + b exp(-tau/T)`` to each curve of a lag profile or of the trajectories,
keeps the one with the lower AIC, and reports half-lives ``T ln 2`` in tokens,
the tail level ``a`` and, given the activations, percentile bootstrap
intervals from resampling whole conversations (:mod:`emostats.decay_bootstrap`).
"""

import math
import warnings

import numpy as np
import xarray as xr

from ._kernels import decay as _k
from ._threads import SERIAL_WORK, run_ranges
from ._version import __version__
from .decay_bootstrap import bootstrap_curves
from .errors import DegenerateWarning, EmostatsError

__all__ = ["fit_decay", "decay_curve"]

#: grid points over log T for the initial search
GRID_SIZE = 28
#: an amplitude at most this times the curve's largest |value| is no component (flat curve: NaN half-life)
FLAT_RTOL = 1e-9
_LN2 = math.log(2.0)


def decay_curve(tau, tail, amplitudes, half_lives):
    """Evaluate ``tail + sum_k amplitude_k 2^(-tau / half_life_k)`` (NaN components skipped).

    Examples
    --------
    >>> decay_curve([0, 10], 0.1, [0.9], [10.0]).tolist()
    [1.0, 0.55]
    """
    tau = np.asarray(tau, dtype=np.float64)
    out = np.full(tau.shape, float(tail))
    for amp, hl in zip(np.atleast_1d(amplitudes), np.atleast_1d(half_lives)):
        if np.isfinite(amp) and np.isfinite(hl) and hl > 0:
            out = out + amp * np.exp2(-tau / hl)
    return out


# --------------------------------------------------------------------------- the curve to fit


def _resolve(curve, variable, average_probes):
    """(DataArray with tau last, tau dim, analysis name, source Dataset or None)."""
    source = None
    analysis = None
    if isinstance(curve, xr.Dataset):
        source = curve
        analysis = curve.attrs.get("analysis")
        default = {"lag_profile": "r", "trajectories": "mean"}.get(analysis)
        variable = variable or default
        if variable is None or variable not in curve:
            raise EmostatsError(f"fit_decay: the Dataset (analysis={analysis!r}) has no variable {variable!r} to fit; "
                                f"pass the result of lag_profile or trajectories, or variable=NAME")
        da = curve[variable]
    elif isinstance(curve, xr.DataArray):
        da = curve
        variable = da.name
    else:
        raise EmostatsError(f"fit_decay: expected a Dataset from lag_profile/trajectories or a DataArray with a "
                            f"'lag' or 'tau' dim, got {type(curve).__name__}")
    tdim = "lag" if "lag" in da.dims else "tau" if "tau" in da.dims else None
    if tdim is None:
        raise EmostatsError(f"fit_decay: {variable!r} has dims {da.dims}; expected a 'lag' or 'tau' dim to fit along")
    series = None
    if average_probes:
        others = [d for d in da.dims if d not in (tdim, "bin")]
        if len(others) != 1:
            raise EmostatsError(f"fit_decay: average_probes needs exactly one probe dim besides {tdim!r}/'bin', "
                                f"found {others}")
        series = others[0]
        da = da.mean(series, skipna=True)
    return da.transpose(..., tdim), tdim, analysis, variable, source, series


def _tau_values(da, tdim):
    tau = np.asarray(da[tdim].values if tdim in da.coords else np.arange(da.sizes[tdim]), dtype=np.float64)
    if np.any(np.diff(tau) <= 0):
        raise EmostatsError(f"fit_decay: coordinate {tdim!r} must increase, got {tau[:5].tolist()}...")
    return tau


def _weights(weights, source, da, analysis, tdim):
    if weights is None:
        return np.ones(da.shape)
    if isinstance(weights, str):
        if weights != "count" or source is None:
            raise EmostatsError(f"fit_decay: weights must be None, 'count' (with a Dataset) or a DataArray, "
                                f"got {weights!r}")
        if analysis == "lag_profile":
            w = source["n_pairs"] - source["n_masked"]
        elif analysis == "trajectories":
            w = source["count"] if da.name == "mean" else source["count_per_probe"]
        else:
            raise EmostatsError("fit_decay: weights='count' works for lag_profile and trajectories results")
    else:
        w = weights if isinstance(weights, xr.DataArray) else xr.DataArray(np.asarray(weights), dims=da.dims)
    extra = [d for d in w.dims if d not in da.dims]  # e.g. probes averaged away: their counts add up
    if extra:
        w = w.sum(extra)
    w = w.broadcast_like(da).transpose(*da.dims)
    return np.asarray(w.values, dtype=np.float64)


# --------------------------------------------------------------------------- fitting many curves


def _fit_matrix(Y, W, tau, bounds, want, threads):
    """Fit each row of Y; returns the kernel's (n_curves, N_OUT) parameter table."""
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    W = np.ascontiguousarray(np.where(np.isfinite(Y) & np.isfinite(W) & (W > 0), W, 0.0))
    Y = np.ascontiguousarray(np.where(W > 0, Y, 0.0))
    t_lo, t_hi = bounds[0] / _LN2, bounds[1] / _LN2
    grid = np.linspace(math.log(t_lo), math.log(t_hi), GRID_SIZE)
    E = np.ascontiguousarray(np.exp(-tau[None, :] / np.exp(grid)[:, None]))
    d = np.diff(tau)
    even = bool(tau.size > 1 and np.allclose(d, d[0], rtol=1e-12, atol=0))
    out = np.full((Y.shape[0], _k.N_OUT), np.nan)
    args = (Y, W, tau, even, grid, E, math.log(t_lo), math.log(t_hi), want in ("auto", 1), want in ("auto", 2), out)
    # a few curves are not worth starting threads for (same bits either way)
    run_ranges(_k.fit_range, Y.shape[0], threads, args, work=Y.shape[0] * SERIAL_WORK // 8)
    return out, (W > 0).sum(axis=1)


def _aic(rss, n, k, scale):
    # RSS is floored at (1e-9 * the curve's scale)^2 per point (an exact fit would give log 0); an all-zero
    # curve gets the smallest normal float so it still has a (flat) fit
    floor = n * np.maximum((1e-9 * scale) ** 2, np.finfo(np.float64).tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = n * np.log(np.maximum(rss, floor) / n) + 2 * k
    return np.where((n > k) & np.isfinite(rss), a, np.nan)


def _select(out, n_valid, Y, components):
    """Chosen model per curve (1 or 2; 0 = no fit) and the AICs (n_curves, 2)."""
    scale = np.nanmax(np.abs(Y), axis=1, initial=0.0) if Y.size else np.zeros(0)
    aic = np.stack([_aic(out[:, 3], n_valid, 3, scale), _aic(out[:, 9], n_valid, 5, scale)], axis=1)
    if components == 1:
        chosen = np.where(np.isfinite(aic[:, 0]), 1, 0)
    elif components == 2:
        chosen = np.where(np.isfinite(aic[:, 1]), 2, 0)
    else:
        a1 = np.where(np.isfinite(aic[:, 0]), aic[:, 0], np.inf)
        a2 = np.where(np.isfinite(aic[:, 1]), aic[:, 1], np.inf)
        chosen = np.where(np.isinf(a1) & np.isinf(a2), 0, np.where(a2 < a1, 2, 1))
    return chosen, aic


def _params(out, chosen, Y):
    """(tail, amplitude (n, 2), half_life (n, 2)) of the chosen model; slow = NaN for one component.

    A component whose amplitude is at most ``FLAT_RTOL`` times the curve's largest ``|y|`` (``Y`` rows)
    is absent (a flat curve): its half-life is NaN.
    """
    n = out.shape[0]
    tail = np.full(n, np.nan)
    amp = np.full((n, 2), np.nan)
    hl = np.full((n, 2), np.nan)
    one = chosen == 1
    two = chosen == 2
    tail[one] = out[one, 0]
    amp[one, 0] = out[one, 1]
    hl[one, 0] = out[one, 2] * _LN2
    tail[two] = out[two, 4]
    amp[two, 0] = out[two, 5]
    amp[two, 1] = out[two, 6]
    hl[two, 0] = out[two, 7] * _LN2
    hl[two, 1] = out[two, 8] * _LN2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        scale = np.nanmax(np.abs(Y), axis=1, initial=0.0) if Y.size else np.zeros(n)
    hl[~(amp > FLAT_RTOL * scale[:, None])] = np.nan
    return tail, amp, hl


def _warn_no_fit(chosen, hl, variable):
    no_fit = int((chosen == 0).sum())
    flat = int(((chosen > 0) & np.isnan(hl[:, 0])).sum())
    if no_fit or flat:
        what = f" {variable}" if variable else ""
        parts = ([f"{no_fit} have too few finite points to fit"] if no_fit else []) + (
            [f"{flat} are flat (fitted amplitude ~0)"] if flat else [])
        warnings.warn(f"fit_decay: of {chosen.size}{what} curves, {' and '.join(parts)}; their half-lives are NaN",
                      DegenerateWarning, stacklevel=3)


# --------------------------------------------------------------------------- public function


def fit_decay(curve, *, components="auto", variable=None, average_probes=False, min_tau=None, max_tau=None,
              half_life_bounds=None, weights=None, probe_act=None, n_boot=200, seed=0, ci=0.95, threads=None,
              progress=None):
    """Fit one or two exponentials plus a tail to decay curves; half-lives in tokens.

    The models are ``a + b 2^(-tau/h)`` (one component) and
    ``a + b 2^(-tau/h_fast) + c 2^(-tau/h_slow)`` (two), with amplitudes
    ``b, c >= 0``, ``h_fast <= h_slow`` and half-lives within
    ``half_life_bounds``; by default the one with the lower AIC
    (``n ln(RSS/n) + 2k``, k = 3 or 5) is kept.

    Parameters
    ----------
    curve : xarray.Dataset or xarray.DataArray
        The result of :func:`emostats.lag_profile` (fits ``r`` per probe) or
        :func:`emostats.trajectories` (fits ``mean`` per bin), or any DataArray
        with a ``lag`` or ``tau`` dim (every other dim is a separate curve).
    components : {"auto", 1, 2}
        Model choice; "auto" picks by AIC.
    variable : str, optional
        The variable of a Dataset to fit (e.g. ``"mean_per_probe"``).
    average_probes : bool
        Average over the probe dim before fitting (and in each bootstrap replicate).
    min_tau, max_tau : float, optional
        Fit range. ``min_tau`` defaults to 1 for lag profiles (r(0) = 1 by
        definition and holds the token-level noise) and to the first tau otherwise.
    half_life_bounds : (float, float), optional
        Default (0.1, 10 * the fitted span) tokens.
    weights : None, "count" or DataArray
        Least-squares weights. None (default) weighs points equally (neighbouring
        lags share most of their pairs, so counts overstate the information);
        "count" uses the number of pairs/events behind each point.
    probe_act : xarray.DataArray (token, probe), optional
        The activations the curve came from. With it and ``n_boot > 0``,
        conversations are resampled with replacement, the curve is recomputed
        from per-conversation sufficient statistics (no re-reading per
        replicate), refitted with the chosen model, and percentile intervals
        are reported. Needs ``curve`` to be the Dataset of lag_profile/trajectories.
    n_boot, seed : int
        Bootstrap replicates and the seed of the resampling (same seed, same bits).
    ci : float
        Coverage of the percentile intervals.
    threads : int, optional
    progress : callable, optional
        ``progress(done, total)`` during the bootstrap.

    Returns
    -------
    xarray.Dataset
        ``half_life(..., component)`` (tokens; component "fast", "slow"; a
        one-component fit fills "fast" and leaves "slow" NaN), ``amplitude(...,
        component)``, ``tail_level(...)``, ``n_components(...)`` (0 when the curve has
        too few finite points; a flat curve fits with amplitude 0 and a NaN
        half-life; both with a RuntimeWarning), ``aic(..., model)``, ``rss(..., model)``,
        ``fitted(..., tau)``; with a bootstrap also ``half_life_ci(..., component,
        bound)``, ``amplitude_ci``, ``tail_level_ci(..., bound)``, ``n_boot_ok(...)``.

    Examples
    --------
    >>> tau = np.arange(0, 201)
    >>> y = 0.1 + 0.6 * 2.0 ** (-tau / 3.0) + 0.3 * 2.0 ** (-tau / 60.0)
    >>> fit = fit_decay(xr.DataArray(y, dims="tau", coords={"tau": tau}), n_boot=0)
    >>> int(fit.n_components), np.round(fit.half_life.values, 3).tolist(), round(float(fit.tail_level), 4)
    (2, [3.0, 60.0], 0.1)
    """
    if components not in ("auto", 1, 2):
        raise EmostatsError(f"fit_decay: components must be 'auto', 1 or 2, got {components!r}")
    if not 0 < ci < 1:
        raise EmostatsError(f"fit_decay: ci must lie in (0, 1), got {ci}")
    n_boot = int(n_boot)
    if n_boot < 0:
        raise EmostatsError(f"fit_decay: n_boot must be >= 0, got {n_boot}")
    da, tdim, analysis, variable, source, avg_dim = _resolve(curve, variable, average_probes)
    tau_all = _tau_values(da, tdim)
    if min_tau is None:
        min_tau = 1.0 if analysis == "lag_profile" or (analysis is None and tdim == "lag") else tau_all[0]
    if max_tau is None:
        max_tau = tau_all[-1]
    sel = (tau_all >= min_tau) & (tau_all <= max_tau)
    if sel.sum() < 4:
        raise EmostatsError(f"fit_decay: only {int(sel.sum())} {tdim} values in [{min_tau}, {max_tau}]; need >= 4")
    tau = np.ascontiguousarray(tau_all[sel])
    span = float(tau[-1] - tau[0])
    if half_life_bounds is None:
        half_life_bounds = (0.1, 10.0 * max(span, 1.0))
    lo_b, hi_b = (float(v) for v in half_life_bounds)
    if not 0 < lo_b < hi_b < np.inf:
        raise EmostatsError(f"fit_decay: half_life_bounds must satisfy 0 < lower < upper < inf, got {half_life_bounds}")

    other = da.dims[:-1]
    shape = tuple(da.sizes[d] for d in other)
    Y_all = np.asarray(da.values, dtype=np.float64).reshape(-1, tau_all.size)
    W_all = _weights(weights, source, da, analysis, tdim).reshape(-1, tau_all.size)
    Y, Wt = Y_all[:, sel], W_all[:, sel]
    out, n_valid = _fit_matrix(Y, Wt, tau, (lo_b, hi_b), components, threads)
    chosen, aic = _select(out, n_valid, np.where(Wt > 0, Y, np.nan), components)
    tail, amp, hl = _params(out, chosen, np.where(Wt > 0, Y, np.nan))
    _warn_no_fit(chosen, hl, variable)
    fitted = np.stack([decay_curve(tau_all, tail[i], amp[i], hl[i]) if chosen[i] else np.full(tau_all.size, np.nan)
                       for i in range(Y.shape[0])]) if Y.shape[0] else np.zeros((0, tau_all.size))

    coords = {d: da[d] for d in other if d in da.coords}
    for name, c in da.coords.items():  # keep auxiliary coords (e.g. bin_lower) on the curve dims
        if name not in coords and set(c.dims) <= set(other) and c.dims:
            coords[name] = c
    coords["component"] = ["fast", "slow"]
    coords["model"] = [1, 2]
    coords[tdim] = da[tdim] if tdim in da.coords else np.arange(tau_all.size)
    data = {
        "half_life": ((*other, "component"), hl.reshape(*shape, 2),
                      {"long_name": "half-life of the exponential component", "units": "tokens"}),
        "amplitude": ((*other, "component"), amp.reshape(*shape, 2),
                      {"long_name": "amplitude of the exponential component (value at tau = 0)"}),
        "tail_level": (other, tail.reshape(shape), {"long_name": "tail level a (the curve's limit)"}),
        "n_components": (other, chosen.reshape(shape).astype(np.int64),
                         {"long_name": "exponentials in the chosen model (0 = no fit)"}),
        "aic": ((*other, "model"), aic.reshape(*shape, 2), {"long_name": "AIC = n ln(RSS/n) + 2k"}),
        "rss": ((*other, "model"), out[:, [3, 9]].reshape(*shape, 2), {"long_name": "residual sum of squares"}),
        "n_points": (other, n_valid.reshape(shape).astype(np.int64), {"long_name": "points fitted"}),
        "fitted": ((*other, tdim), fitted.reshape(*shape, tau_all.size), {"long_name": "fitted curve"}),
    }
    attrs = {
        "analysis": "fit_decay",
        "emostats_version": __version__,
        "model": "a + b*2^(-tau/h_fast) [+ c*2^(-tau/h_slow)], b, c >= 0, h_fast <= h_slow",
        "selection": "AIC = n ln(RSS/n) + 2k (k = 3 or 5)" if components == "auto" else f"{components} component(s)",
        "components": str(components),
        "source_analysis": analysis or "",
        "variable": str(variable),
        "average_probes": int(bool(average_probes)),
        "min_tau": float(min_tau),
        "max_tau": float(max_tau),
        "half_life_bounds": np.array([lo_b, hi_b]),
        "weights": "equal" if weights is None else (weights if isinstance(weights, str) else "user"),
        "n_boot": 0,
        "seed": int(seed),
        "ci": float(ci),
    }
    if source is not None:
        for key in ("max_lag", "bins", "n_tokens", "n_segments"):
            if key in source.attrs:
                attrs[f"source_{key}"] = source.attrs[key]

    if probe_act is not None and n_boot > 0:
        if source is None:
            raise EmostatsError("fit_decay: the bootstrap needs the Dataset returned by lag_profile or trajectories, "
                                "not a bare DataArray")
        rep = bootstrap_curves(source, probe_act, n_boot=n_boot, seed=seed, variable=variable,
                               average_probes=average_probes, progress=progress, threads=threads)
        # rep has source[variable]'s dims (probe averaged away) with tau in its own position: move tau last
        src_dims = [d for d in source[variable].dims if d != avg_dim]
        order = [src_dims.index(d) for d in da.dims]
        rep = np.transpose(rep, (0, *[o + 1 for o in order]))
        Yb = rep.reshape(n_boot * Y.shape[0], tau_all.size)[:, sel]
        Wb = np.tile(Wt, (n_boot, 1))
        out_b, n_b = _fit_matrix(Yb, Wb, tau, (lo_b, hi_b), components, threads)
        model_b = np.tile(chosen, n_boot)
        tail_b, amp_b, hl_b = _params(out_b, model_b, np.where(Wb > 0, Yb, np.nan))
        q = [(1 - ci) / 2, 1 - (1 - ci) / 2]

        def interval(v, k):
            v = v.reshape(n_boot, -1, k)
            with np.errstate(invalid="ignore"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    qs = np.nanquantile(v, q, axis=0)  # (2, curves, k)
            return np.moveaxis(qs, 0, -1)  # (curves, k, 2)

        ok = np.isfinite(hl_b[:, 0]).reshape(n_boot, -1).sum(axis=0)
        coords["bound"] = ["lower", "upper"]
        data["half_life_ci"] = ((*other, "component", "bound"), interval(hl_b, 2).reshape(*shape, 2, 2),
                                {"long_name": f"{ci:.0%} bootstrap interval of the half-life", "units": "tokens"})
        data["amplitude_ci"] = ((*other, "component", "bound"), interval(amp_b, 2).reshape(*shape, 2, 2),
                                {"long_name": f"{ci:.0%} bootstrap interval of the amplitude"})
        data["tail_level_ci"] = ((*other, "bound"), interval(tail_b, 1).reshape(*shape, 2),
                           {"long_name": f"{ci:.0%} bootstrap interval of the tail level"})
        data["n_boot_ok"] = (other, ok.reshape(shape).astype(np.int64),
                             {"long_name": "bootstrap replicates with a fit"})
        attrs.update(n_boot=n_boot, bootstrap="percentile; conversations resampled with replacement; "
                                               "the chosen model refitted in every replicate")
    return xr.Dataset(data, coords=coords, attrs=attrs)
