"""The decay bootstrap: replicate lag profiles or trajectories by resampling whole conversations.

:func:`bootstrap_curves` draws conversations with replacement (multinomial counts
per replicate) and recomputes each replicate's curve from per-conversation
sufficient statistics (:mod:`emostats.persistence_stats`), without reading the
activations again per replicate; :func:`emostats.fit_decay` refits these curves
for its percentile intervals.
"""

import numpy as np

from . import _lagstats
from .errors import EmostatsError
from .persistence_stats import moments_of, series_input, trajectory_stats

__all__ = ["bootstrap_curves"]

#: budget (bytes) of the per-conversation statistics held at once while bootstrapping
BOOT_BYTES = 256 * 2**20


def _boot_weights(n_groups, n_boot, seed):
    """Multinomial counts (n_boot, n_groups): conversations drawn with replacement."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    W = np.zeros((n_boot, n_groups))
    np.add.at(W, (np.repeat(np.arange(n_boot), n_groups), draws.ravel()), 1.0)
    return W


def _profile_replicates(M, W):
    """Replicate r (n_boot, n_lags, P) from per-group moments M (G, 6, n_lags, P) and weights W."""
    pooled = _lagstats.merge_moments(*[M[g:g + 1] for g in range(M.shape[0])])[0]
    n, mx, my, cxx, cyy, cxy = M[:, 0], M[:, 1], M[:, 2], M[:, 3], M[:, 4], M[:, 5]
    ax = np.where(n > 0, mx - pooled[1], 0.0)
    ay = np.where(n > 0, my - pooled[2], 0.0)
    raw = [n, n * ax, n * ay, cxx + n * ax * ax, cyy + n * ay * ay, cxy + n * ax * ay]
    S = [np.tensordot(W, s, axes=(1, 0)) for s in raw]
    with np.errstate(invalid="ignore", divide="ignore"):
        vx = S[3] - S[1] ** 2 / S[0]
        vy = S[4] - S[2] ** 2 / S[0]
        r = (S[5] - S[1] * S[2] / S[0]) / np.sqrt(vx * vy)
    return np.where((S[0] >= 2) & (vx > 0) & (vy > 0), np.clip(r, -1.0, 1.0), np.nan)


def bootstrap_curves(source, act, n_boot=200, seed=0, variable=None, average_probes=False, progress=None,
                     threads=None):
    """Replicate curves of a lag_profile/trajectories result, resampling conversations with replacement.

    Parameters
    ----------
    source : xarray.Dataset
        The result of :func:`emostats.lag_profile` or :func:`emostats.trajectories`
        (its attrs give ``max_lag`` and ``bins``).
    act : xarray.DataArray (token, probe)
        The activations that ``source`` was computed from.
    n_boot, seed : int
    variable : str, optional
        ``r`` (profile), ``mean`` or ``mean_per_probe`` (trajectories).
    average_probes : bool
        Average the variable over probes in every replicate.
    progress : callable, optional
        Called with (done, total) probe counts.

    Returns
    -------
    numpy.ndarray (n_boot, ...) with the dims of ``source[variable]`` (probe dim
    averaged away when asked). Trajectories keep z from the full data (the
    standardisation is not re-estimated per replicate).
    """
    analysis = source.attrs.get("analysis")
    if analysis not in ("lag_profile", "trajectories"):
        raise EmostatsError(f"fit_decay: bootstrap needs the Dataset returned by lag_profile or trajectories "
                            f"(attrs analysis), got analysis={analysis!r}")
    act, series, offsets = series_input(act, "probe_act")
    conv = np.asarray(act["conversation"].values)[offsets[:-1]]
    _, groups = np.unique(conv, return_inverse=True)
    G = int(groups.max()) + 1 if groups.size else 1
    W = _boot_weights(G, n_boot, seed)
    max_lag = int(source.attrs["max_lag"])
    P = act.shape[1] if act.ndim == 2 else 1
    variable = variable or ("r" if analysis == "lag_profile" else "mean")
    if analysis == "lag_profile":
        per_probe_bytes = G * 6 * (max_lag + 1) * 8 + n_boot * (max_lag + 1) * 8 * 8
    else:
        lo, hi = _lagstats.as_bins(np.asarray(source.attrs["bins"]).reshape(-1, 2))
        per_probe_bytes = (G + n_boot) * 2 * lo.size * (max_lag + 1) * 8 * 2
        mean = np.asarray(source["activation_mean"].values, dtype=np.float64).reshape(-1)
        sd = np.asarray(source["activation_sd"].values, dtype=np.float64).reshape(-1)
    batch = max(1, min(P, int(BOOT_BYTES // max(per_probe_bytes, 1))))
    pieces = []
    acc_sum = acc_n = None
    for p0 in range(0, P, batch):
        p1 = min(P, p0 + batch)
        sub = act.isel({series: slice(p0, p1)}) if series else act
        if analysis == "lag_profile":
            M = moments_of(sub, offsets, "profile", max_lag, groups=groups, n_groups=G, threads=threads)
            rep = _profile_replicates(M, W)  # (n_boot, lag, b)
        else:
            S, C = trajectory_stats(sub, offsets, mean[p0:p1], sd[p0:p1], np.stack([lo, hi], 1), max_lag,
                                     groups=groups, n_groups=G, threads=threads)
            S = np.tensordot(W, S, axes=(1, 0))
            C = np.tensordot(W, C, axes=(1, 0))
            with np.errstate(invalid="ignore", divide="ignore"):
                rep = np.where(C > 0, S / C, np.nan)  # (n_boot, bin, tau, b)
        if variable == "mean" or average_probes:
            ok = np.isfinite(rep)
            s = np.where(ok, rep, 0.0).sum(axis=-1)
            k = ok.sum(axis=-1)
            acc_sum = s if acc_sum is None else acc_sum + s
            acc_n = k if acc_n is None else acc_n + k
        else:
            pieces.append(rep)
        if progress is not None:
            progress(p1, P)
    if acc_sum is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(acc_n > 0, acc_sum / np.maximum(acc_n, 1), np.nan)
    rep = np.concatenate(pieces, axis=-1)
    return rep if series else rep[..., 0]
