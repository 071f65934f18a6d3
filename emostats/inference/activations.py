"""A study from per-token hidden activations, with what the conversation bootstrap needs.

:func:`study_from_activations` is the one way to turn raw activations into a
study: ``/tokens`` (probe activations), ``/probes``, ``/moments`` and
``/conv_moments``, the format addition of ``docs/inference.md``:
per-conversation sufficient statistics of the projections of the
activations on the null directions (uniform random directions and the
top-k candidates of variance matching) and of the trace of the hidden
covariance. With them every number that uses ``/moments`` (random-direction
persistence, variance explained, matched residuals, PC residuals) can be
recomputed for any reweighting of the conversations without the tokens.

The stored directions are drawn exactly as :func:`emostats.run` draws them
(same functions, seeds ``derive_seed(seed, "random_directions")`` and
``derive_seed(seed, "candidates")``, same default k sweep), so a run with the
same seed measures the same directions that the bootstrap resamples.
"""

import numpy as np
import xarray as xr

from .. import defaults
from .._lagstats import lag_moments
from ..errors import EmostatsError
from ..segments import segments_of
from ._merge import merge_weighted, single_threaded_blas, within_from_segments
from .convstats import conversation_index

__all__ = ["study_from_activations", "conversation_moments", "conv_moments_dataset", "STATS", "WITHIN_STATS"]

#: names along the ``stat`` dim of ``lag_moments`` (the lag kernels' layout)
STATS = ("n", "mean_x", "mean_y", "cxx", "cyy", "cxy")
#: names along the ``wstat`` dim of ``within_moments``
WITHIN_STATS = ("n", "wxx", "wyy", "wxy")


def _check_hidden(hidden):
    if not isinstance(hidden, xr.DataArray) or hidden.ndim != 2 or "token" not in hidden.dims:
        raise EmostatsError("study_from_activations: hidden must be a 2-D DataArray (token, hidden) with "
                            "conversation and turn coordinates on token")
    hidden = hidden.transpose("token", ...)
    if hidden.sizes["token"] < 2:
        raise EmostatsError(f"study_from_activations: hidden has {hidden.sizes['token']} token(s); need at least 2")
    return hidden


def _segment_rows(offsets, seg_conv, g):
    segs = np.flatnonzero(seg_conv == g)
    return segs, np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in segs])


def _read(hidden, rows):
    data = hidden.data
    if rows.size and rows[-1] - rows[0] + 1 == rows.size:
        block = data[int(rows[0]):int(rows[-1]) + 1]
    else:
        block = data[rows]
    return np.asarray(block.compute() if hasattr(block, "compute") else block, dtype=np.float64)


def conv_moments_dataset(directions, population, k, lags, conversations, lag_moments, within_moments, n_tokens,
                         proj_mean, proj_m2, hidden_mean, hidden_m2_trace):
    """The ``/conv_moments`` Dataset from its arrays (the layout of ``docs/inference.md``).

    The one place that lays the group out: :func:`conversation_moments` and
    :func:`emostats.synth.sufficient_study` both build it here. Shapes:
    ``directions`` (D, hidden), ``lag_moments`` (G, 6, n_lags, D),
    ``within_moments`` (G, 4, n_lags, D), ``n_tokens`` (G,), ``proj_mean`` and
    ``proj_m2`` (G, D), ``hidden_mean`` (G, hidden), ``hidden_m2_trace`` (G,).
    Lag moments of a conversation without pairs are NaN (``n`` = 0).
    """
    lm = np.array(lag_moments, dtype=np.float64)
    lm[:, 1:][np.broadcast_to(lm[:, :1] == 0, lm[:, 1:].shape)] = np.nan
    D = np.asarray(directions)
    c, d = ("conversation",), ("direction",)
    ds = xr.Dataset(
        {
            "vector": (("direction", "hidden"), D.astype(np.float32), {"long_name": "stored unit direction"}),
            "population": (d, np.asarray(population).astype(str),
                           {"long_name": "uniform (sphere of the hidden space) or candidate (top-k)"}),
            "k": (d, np.asarray(k, dtype=np.int64), {"long_name": "dimension of the eigenspace the direction is uniform on"}),
            "lag_moments": (("conversation", "stat", "lag", "direction"), lm,
                            {"long_name": "per-conversation lag moments of the projections (pairs pooled over "
                                          "the conversation's turns): n, means, centred sums"}),
            "within_moments": (("conversation", "wstat", "lag", "direction"), np.asarray(within_moments, np.float64),
                               {"long_name": "per-conversation within-turn sums: n, and the centred sums with "
                                             "each turn centred on its own pair means"}),
            "n_tokens": (c, np.asarray(n_tokens, dtype=np.int64), {"long_name": "tokens of the conversation"}),
            "proj_mean": (("conversation", "direction"), np.asarray(proj_mean, np.float64),
                          {"long_name": "mean projection over its tokens"}),
            "proj_m2": (("conversation", "direction"), np.asarray(proj_m2, np.float64),
                        {"long_name": "centred sum of squares of the projection over its tokens"}),
            "hidden_mean": (("conversation", "hidden"), np.asarray(hidden_mean, np.float64),
                            {"long_name": "mean activation over its tokens"}),
            "hidden_m2_trace": (c, np.asarray(hidden_m2_trace, np.float64),
                                {"long_name": "trace of the centred sums of squares of the activations"}),
        },
        coords={"conversation": np.asarray(conversations), "stat": list(STATS), "wstat": list(WITHIN_STATS),
                "lag": ("lag", np.asarray(lags, dtype=np.int64)), "direction": np.arange(D.shape[0])},
        attrs={"description": "per-conversation sufficient statistics for the conversation bootstrap "
                              "(docs/inference.md)", "emostats_conv_moments": 1},
    )
    return ds


def conversation_moments(hidden, directions, population, k, lags=(defaults.LAG,), *, probes=None, threads=None):
    """The ``/conv_moments`` group: per-conversation moments of projections on ``directions``.

    Parameters
    ----------
    hidden : xarray.DataArray (token, hidden)
        Raw activations with ``conversation`` and ``turn`` coordinates (NumPy or dask).
    directions : array_like (direction, hidden)
        Unit directions (stored as float32; the projections use the stored values).
    population : sequence of str (direction,)
        ``"uniform"`` or ``"candidate"`` per direction.
    k : sequence of int (direction,)
        Eigenspace dimension of each direction (hidden for uniform ones).
    lags : sequence of int
    probes : array_like (probe, hidden), optional
        Also return the probe activations ``hidden @ probes.T`` (same pass).
    threads : int, optional

    Returns
    -------
    (xarray.Dataset, probe_act or None)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> h = xr.DataArray(rng.normal(size=(60, 4)), dims=("token", "hidden"),
    ...                  coords={"conversation": ("token", np.repeat([0, 1, 2], 20)),
    ...                          "turn": ("token", np.tile(np.repeat([0, 1], 10), 3))})
    >>> ds, _ = conversation_moments(h, np.eye(4)[:2], ["uniform", "candidate"], [4, 1], lags=[2])
    >>> ds["lag_moments"].dims, int(ds["lag_moments"].sel(stat="n").sum())
    (('conversation', 'stat', 'lag', 'direction'), 96)
    """
    hidden = _check_hidden(hidden)
    lags = [int(L) for L in np.atleast_1d(lags)]
    if not lags or min(lags) < 1:
        raise EmostatsError(f"conversation_moments: lags must be integers >= 1, got {lags}")
    D = np.asarray(directions, dtype=np.float32).astype(np.float64)
    H = hidden.shape[1]
    if D.ndim != 2 or D.shape[1] != H:
        raise EmostatsError(f"conversation_moments: directions have shape {D.shape}; expected (direction, {H})")
    population = np.asarray(population).astype(str)
    k = np.asarray(k, dtype=np.int64)
    if population.shape != (D.shape[0],) or k.shape != (D.shape[0],):
        raise EmostatsError("conversation_moments: population and k need one entry per direction")
    offsets = segments_of(hidden)
    seg_conv, labels = conversation_index(hidden["conversation"].values, offsets)
    G, nd, nl = labels.size, D.shape[0], len(lags)
    lm = np.zeros((G, 6, nl, nd))
    wm = np.zeros((G, 4, nl, nd))
    n_tok = np.zeros(G, dtype=np.int64)
    pmean = np.zeros((G, nd))
    pm2 = np.zeros((G, nd))
    hmean = np.zeros((G, H))
    hm2 = np.zeros(G)
    P = None if probes is None else np.asarray(probes, dtype=np.float64)
    probe_act = None if P is None else np.empty((hidden.sizes["token"], P.shape[0]), dtype=np.float32)
    with single_threaded_blas():
        for g in range(G):
            segs, rows = _segment_rows(offsets, seg_conv, g)
            x = _read(hidden, rows)
            if not np.isfinite(x).all():
                t = int(rows[np.flatnonzero(~np.isfinite(x).all(axis=1))[0]])
                raise EmostatsError(f"study_from_activations: hidden has a non-finite value at token {t}; "
                                    f"repair or drop those tokens first")
            if P is not None:
                probe_act[rows] = x @ P.T
            proj = x @ D.T
            local = np.concatenate(([0], np.cumsum(offsets[segs + 1] - offsets[segs]))).astype(np.int64)
            ns = segs.size
            for li, L in enumerate(lags):
                Mseg = lag_moments(proj, local, L, groups=np.arange(ns), n_groups=ns, threads=threads)
                lm[g, :, li] = merge_weighted(Mseg, np.ones((1, ns)))[0, :, 0]
                wm[g, :, li] = within_from_segments(Mseg, np.zeros(ns, dtype=np.int64), 1)[0, :, 0]
            n_tok[g] = x.shape[0]
            pmean[g] = proj.mean(axis=0)
            pm2[g] = ((proj - pmean[g]) ** 2).sum(axis=0)
            hmean[g] = x.mean(axis=0)
            hm2[g] = float(((x - hmean[g]) ** 2).sum())
    ds = conv_moments_dataset(D, population, k, lags, labels, lm, wm, n_tok, pmean, pm2, hmean, hm2)
    return ds, probe_act


def study_from_activations(hidden, probes, *, probe_names=None, lags=(defaults.LAG,), n_random=defaults.N_RANDOM,
                           n_candidates=defaults.N_CANDIDATES, ks=None, seed=defaults.SEED, conv_moments=True,
                           attrs=None, threads=None):
    """A valid study (DataTree) from per-token hidden activations and probe vectors.

    Parameters
    ----------
    hidden : xarray.DataArray (token, hidden)
        Raw layer activations, with ``conversation`` and ``turn`` coordinates
        on ``token`` (and optionally ``position``); NumPy or dask backed.
    probes : xarray.DataArray (probe, hidden) or array_like
        Probe vectors; ``probe_act = hidden @ probes.T``.
    probe_names : sequence of str, optional
        Names of the probes (default: the DataArray's ``probe`` coordinate, else ``probe_0``...).
    lags : sequence of int
        Lags of ``/moments`` and ``/conv_moments``.
    n_random, n_candidates : int
        Stored null directions (uniform; top-k sweep), drawn as ``es.run(seed=seed)`` draws them.
    ks : sequence of int, optional
        The k sweep (default :func:`emostats.nullmodels.default_ks`).
    seed : int
    conv_moments : bool
        Write ``/conv_moments`` (default); False gives a study whose intervals of
        ``/moments`` numbers hold the null population fixed.
    attrs : dict, optional
        Extra root attributes (model, layer, source ...).
    threads : int, optional

    Returns
    -------
    xarray.DataTree
        ``/tokens`` (``probe_act``, coords ``conversation``, ``turn``, ``position``),
        ``/probes`` (``vector``, ``variance_explained``), ``/moments`` and, with
        ``conv_moments``, ``/conv_moments``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> h = xr.DataArray(rng.normal(size=(400, 8)), dims=("token", "hidden"),
    ...                  coords={"conversation": ("token", np.repeat(np.arange(4), 100)),
    ...                          "turn": ("token", np.tile(np.repeat([0, 1], 50), 4))})
    >>> tree = study_from_activations(h, rng.normal(size=(3, 8)), lags=[5], n_random=10, n_candidates=20)
    >>> sorted(tree.children), tree["tokens"]["probe_act"].shape
    (['conv_moments', 'moments', 'probes', 'tokens'], (400, 3))
    """
    from ..nullmodels import default_ks, moments, random_direction_sweep, random_directions, split_evenly
    from ..seeds import derive_seed

    hidden = _check_hidden(hidden)
    H = hidden.shape[1]
    if isinstance(probes, xr.DataArray):
        pdim = next((d for d in probes.dims if d != "hidden"), probes.dims[0])
        if probe_names is None and pdim in probes.coords:
            probe_names = [str(v) for v in probes[pdim].values]
        probes = probes.transpose(pdim, ...).values
    V = np.atleast_2d(np.asarray(probes, dtype=np.float64))
    if V.shape[1] != H:
        raise EmostatsError(f"study_from_activations: probes have shape {V.shape}; expected (probe, {H})")
    if probe_names is None:
        probe_names = [f"probe_{i}" for i in range(V.shape[0])]
    if len(probe_names) != V.shape[0] or len(set(probe_names)) != len(probe_names):
        raise EmostatsError(f"study_from_activations: need {V.shape[0]} distinct probe names, got {len(probe_names)}")
    lags = [int(L) for L in np.atleast_1d(lags)]
    mom = moments(hidden, lags=lags)
    mom.attrs.update(computed_by="emostats.study_from_activations")
    cov = mom["cov"].values
    trace = float(np.trace(cov))
    ve = np.einsum("ph,hg,pg->p", V, cov, V) / ((V * V).sum(1) * trace)
    coords = {c: ("token", np.asarray(hidden[c].values)) for c in ("conversation", "turn")}
    if "position" in hidden.coords:
        coords["position"] = ("token", np.asarray(hidden["position"].values))
    else:
        offsets = segments_of(hidden)
        coords["position"] = ("token", (np.arange(offsets[-1]) - np.repeat(offsets[:-1], np.diff(offsets))).astype(np.int32))
    tree = {}
    if conv_moments:
        uni = random_directions(mom, int(n_random), seed=derive_seed(seed, "random_directions"))
        ks_ = default_ks(H) if ks is None else np.asarray(ks, dtype=np.int64)
        sweep = random_direction_sweep(mom, ks=ks_, n_per_k=split_evenly(int(n_candidates), len(ks_)),
                                       seed=derive_seed(seed, "candidates"))
        kcoord = sweep["k"].values if "k" in sweep.coords else np.full(sweep.sizes["direction"], -1)
        dirs = np.concatenate([uni.values, sweep.values])
        pop = ["uniform"] * uni.sizes["direction"] + ["candidate"] * sweep.sizes["direction"]
        kk = np.concatenate([np.full(uni.sizes["direction"], H), kcoord])
        cm, probe_act = conversation_moments(hidden, dirs, pop, kk, lags, probes=V, threads=threads)
        cm.attrs.update(seed=int(seed), n_random=int(n_random), n_candidates=int(n_candidates),
                        ks=np.asarray(ks_).tolist())
        tree["/conv_moments"] = cm
    else:
        probe_act = np.empty((hidden.sizes["token"], V.shape[0]), dtype=np.float32)
        with single_threaded_blas():
            for s in range(0, hidden.sizes["token"], 1 << 15):
                e = min(s + (1 << 15), hidden.sizes["token"])
                probe_act[s:e] = _read(hidden, np.arange(s, e)) @ V.T
    tree["/tokens"] = xr.Dataset({"probe_act": (("token", "probe"), probe_act,
                                                {"long_name": "probe activation: activation . probe vector"})},
                                 coords={**coords, "probe": ("probe", list(probe_names))})
    tree["/probes"] = xr.Dataset(
        {"vector": (("probe", "hidden"), V, {"long_name": "probe vector"}),
         "variance_explained": ("probe", ve, {"long_name": "v' cov v / (|v|^2 trace cov) from /moments"})},
        coords={"probe": list(probe_names)})
    tree["/moments"] = mom
    root = xr.DataTree(xr.Dataset(attrs={"emostats_format": 1, "source": "emostats.study_from_activations",
                                         **(attrs or {})}))
    for path, ds in tree.items():
        root[path] = xr.DataTree(ds)
    return root
