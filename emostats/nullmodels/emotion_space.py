"""Principal components of the emotion space (SPEC.md section 2, analysis 6; the study's Figure 5).

PCA of ``probe_act`` over all tokens: the covariance of the probes (mean
removed, ddof=0, one streaming pass, dask-aware; tokens with a non-finite
probe value are left out and counted) is eigendecomposed; components are
ordered by decreasing eigenvalue (PC 1 = most variance). Sign convention: each
component's loading vector has its largest-magnitude entry positive (the
first such entry on ties). PC ``j``'s score at token ``t`` is
``sum_i W[i, j] (probe_act[t, i] - mean_i)``; its lag persistence is the
pooled Pearson r over valid pairs, like a probe's (NaN-masked pairs counted).

Because a probe's activation is the projection ``p_i . h_t`` of the hidden
state on the vector ``p_i`` that produced it, PC ``j`` is the projection on
``u_j = sum_i W[i, j] p_i``: its direction in hidden space, normalised to unit
length. ``p_i`` is the stored ``/probes`` ``vector`` scaled to unit length when
``probe_act`` was made with unit probes (the extractor) and the stored vector
itself otherwise (:mod:`emostats.synth`); :func:`probe_act_vectors` tells the
two apart from the probes' variances (a direction built from the wrong ones
mixes the probes with the wrong weights). With ``/moments``
that direction's variance explained (and its persistence, ``r_direction``,
which equals the scores' persistence when ``probe_act`` is exactly ``P h``)
come from the moments; the PC's residual is its score persistence minus the
median persistence of the ``n`` random directions nearest in variance
explained; and the Spearman correlation of PC rank (1 = first) with the
residual says whether the leading, high-variance PCs are the more persistent
beyond what their variance explains.

Degenerate components: a PC whose eigenvalue is at most ``DEGENERATE_RTOL``
times the largest (a constant probe, or probes that are exact linear
combinations of others) has scores that are rounding noise; its ``r`` (and so
its residual, variance explained and ``r_direction``) is NaN, flagged
``degenerate(pc)``, with a ``RuntimeWarning``, rather than a number made of noise.
"""

import warnings

import numpy as np
import xarray as xr

from ..defaults import LAG, MATCH_STAT, N_MATCHED
from ..errors import ArgumentError, DegenerateWarning, EmostatsError
from .._chunks import is_dask, reduce_over_chunks, token_bounds
from ..persistence import lag_moments, merge_moments, moments_r, pair_counts
from ..segments import segments_of
from ..stats import spearman
from .from_moments import direction_persistence, quadratic_forms
from .matching import variance_matched
from .sphere import random_direction_sweep
from .streamed import moment_arrays

__all__ = ["emotion_pcs", "pca_from_cov", "pc_directions", "probe_act_vectors"]

#: a PC with eigenvalue <= this times the largest eigenvalue carries only rounding noise
DEGENERATE_RTOL = 1e-10
#: float64 bytes of probe activations projected at a time
SCORE_BLOCK_BYTES = 32 * 2**20


def pca_from_cov(cov):
    """Eigenvalues (descending) and loadings (probe, pc) of a covariance, with the sign convention.

    Examples
    --------
    >>> w, load = pca_from_cov(np.array([[2.0, 0.0], [0.0, 5.0]]))
    >>> w.tolist(), load.tolist()
    ([5.0, 2.0], [[0.0, 1.0], [1.0, 0.0]])
    """
    cov = np.asarray(cov, dtype=np.float64)
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    order = np.argsort(-w, kind="stable")
    w, v = w[order], np.ascontiguousarray(v[:, order])
    pivot = np.argmax(np.abs(v), axis=0)
    v *= np.where(v[pivot, np.arange(v.shape[1])] < 0, -1.0, 1.0)
    return w, v


def pc_directions(loadings, probe_vectors):
    """Unit hidden-space direction of each PC: ``u_j = sum_i W[i, j] p_i / ||.||`` -> (pc, hidden).

    Examples
    --------
    >>> pc_directions(np.eye(2), np.array([[3.0, 0.0], [0.0, 2.0]])).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    u = np.asarray(loadings, dtype=np.float64).T @ np.asarray(probe_vectors, dtype=np.float64)
    norm = np.linalg.norm(u, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, u / norm, np.nan)


def probe_act_vectors(vectors, probe_variance, cov, scaling="auto"):
    """The vectors that produced ``probe_act`` from the stored probe vectors: raw, or scaled to unit length.

    ``probe_act[:, i] = h . w_i`` with ``w_i = v_i`` ("raw") or ``w_i = v_i / |v_i|``
    ("unit"). Then ``var(probe_act[:, i]) = w_i' cov w_i``; "auto" takes the
    convention whose prediction is nearer the observed variances (median
    absolute log ratio over the probes with positive variance; "raw" when none
    can tell, e.g. unit-length vectors).

    Parameters
    ----------
    vectors : array_like (probe, hidden)
    probe_variance : array_like (probe,)
        Variance of each probe's activation (ddof=0, over the tokens of the moments).
    cov : array_like (hidden, hidden)
        ``/moments`` ``cov``.
    scaling : {"auto", "unit", "raw"}

    Returns
    -------
    (numpy.ndarray (probe, hidden), str, float)
        The vectors, the convention chosen and its misfit (NaN when unknown).

    Examples
    --------
    >>> v = np.array([[3.0, 0.0], [0.0, 2.0]])
    >>> w, how, misfit = probe_act_vectors(v, [1.0, 2.0], np.diag([1.0, 2.0]))
    >>> how, w.tolist(), misfit
    ('unit', [[1.0, 0.0], [0.0, 1.0]], 0.0)
    """
    if scaling not in ("auto", "unit", "raw"):
        raise ArgumentError(f"probe_scaling must be 'auto', 'unit' or 'raw', got {scaling!r}")
    v = np.asarray(vectors, dtype=np.float64)
    norm2 = np.einsum("ph,ph->p", v, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norm2[:, None] > 0, v / np.sqrt(norm2)[:, None], 0.0)
        q = quadratic_forms([cov], v)[0] if np.all(np.isfinite(cov)) else np.full(v.shape[0], np.nan)
        log_ratio = np.log(np.asarray(probe_variance, dtype=np.float64) / q)
        ok = np.isfinite(log_ratio) & (norm2 > 0)
        misfit = {"raw": float(np.median(np.abs(log_ratio[ok]))) if ok.any() else np.nan,
                  "unit": float(np.median(np.abs(log_ratio[ok] + np.log(norm2[ok])))) if ok.any() else np.nan}
    if scaling == "auto":
        scaling = "unit" if misfit["unit"] < misfit["raw"] else "raw"  # NaN compares False: raw
    return (unit if scaling == "unit" else v), scaling, misfit[scaling]


def _scores_persistence(probe_act, mean, loadings, lag, threads):
    """Lag persistence of the PC scores, streamed: per block of tokens (plus the ``lag`` after it) the
    scores are projected and reduced to lag moments, merged in a fixed order (:mod:`emostats._chunks`).

    Memory stays at one block of scores whatever the number of tokens (the whole (token, pc) float64
    score matrix and its temporaries, three times the probe activations, are never made); dask input
    goes chunk by chunk the same way."""
    offsets = segments_of(probe_act)
    mean = np.asarray(mean, dtype=np.float64)
    loadings = np.ascontiguousarray(loadings, dtype=np.float64)
    dask_input = is_dask(probe_act)

    def chunk(block, span):
        scores = np.asarray(block, dtype=np.float64) - mean
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf tokens give NaN scores, masked by the kernel
            scores = scores @ loadings  # one BLAS matmul per block
        return lag_moments(scores, span.offsets, lag, first_stop=span.own, threads=1 if dask_input else threads)

    n = probe_act.sizes["token"]
    step = max(1, SCORE_BLOCK_BYTES // (8 * max(loadings.shape[0], 1)))
    m = reduce_over_chunks(probe_act, lag, chunk, merge_moments, offsets=offsets,
                           bounds=None if dask_input else token_bounds(n, block_tokens=step))
    if m is None:
        m = np.zeros((1, 6, 1, loadings.shape[1]))
    r = moments_r(m, np.arange(1, loadings.shape[1] + 1), what="PC")[0, 0]
    n_pairs = int(pair_counts(offsets, [lag])[0])
    n_used = m[0, 0, 0].astype(np.int64)
    return np.asarray(r, dtype=np.float64), np.full(loadings.shape[1], n_pairs), n_pairs - n_used


def emotion_pcs(probe_act, probe_vectors=None, moments=None, candidates=None, lag=LAG, n=N_MATCHED,
                stat=MATCH_STAT, seed=0, threads=None, *, probe_scaling="auto"):
    """PCA of the probe activations, persistence of each PC and its variance-matched residual.

    Parameters
    ----------
    probe_act : xarray.DataArray (token, probe)
        With ``conversation`` and ``turn`` coordinates (``/tokens`` ``probe_act``).
    probe_vectors : xarray.DataArray (probe, hidden) or array_like, optional
        ``/probes`` ``vector``: gives each PC a hidden-space direction.
    moments : xarray.Dataset, optional
        ``/moments``: variance explained (and persistence) of the PC directions.
    candidates : xarray.Dataset, optional
        The null population with ``r`` and ``variance_explained`` (the output
        of :func:`emostats.direction_persistence` for random directions). By
        default, with ``moments``, the sweep of
        :func:`emostats.nullmodels.random_direction_sweep` (5,420 directions,
        ``seed``) is drawn and measured.
    lag : int
        Lag of the persistence (default 100).
    n : int
        Matches per PC.
    stat : {"median", "mean"}
        Baseline statistic of the matched values.
    seed : int
        Seed of the default random directions.
    threads : int, optional
    probe_scaling : {"auto", "unit", "raw"}
        Which vectors produced ``probe_act``, so that a PC's hidden-space
        direction is the combination of *those* vectors: ``"unit"``:
        ``probe_act = h . v / |v|`` (the extractor's convention), ``"raw"``:
        ``probe_act = h . v`` (:mod:`emostats.synth`'s). ``"auto"`` picks the
        one that predicts the probes' variances from ``/moments``
        (:func:`probe_act_vectors`).

    Returns
    -------
    xarray.Dataset
        dims ``pc`` (1 = most variance), ``probe`` and (with a residual) ``match``:
        ``eigenvalue(pc)``, ``pca_variance_ratio(pc)``, ``loadings(probe, pc)``,
        ``probe_mean(probe)``, ``r(pc)``, ``n_pairs(pc)``, ``n_masked(pc)``,
        ``degenerate(pc)`` (zero-variance PC: ``r`` NaN, see the module docstring);
        with ``probe_vectors`` and ``moments``: ``variance_explained(pc)``,
        ``r_direction(pc)``; with candidates too: ``residual(pc)``,
        ``baseline(pc)``, ``matched(pc, match)``, ``matched_values``,
        ``matched_variance``, the residual's one-sample tests prefixed
        ``residual_`` (``residual_mean``, ``residual_t_p``, ...), and the
        Spearman of PC rank against residual, ``rank_rho``, ``rank_p``, ``rank_n``.
        attrs: parameters, ``n_tokens_used``, ``n_tokens_dropped``,
        ``dropped_probes`` (probes NaN on every token, left out with a warning);
        with directions ``probe_scaling`` (the convention used) and
        ``probe_scaling_misfit`` (median ``|log|`` of observed over predicted
        probe variance; 0 = exact).
    """
    if not isinstance(probe_act, xr.DataArray) or probe_act.ndim != 2 or "token" not in probe_act.dims:
        raise EmostatsError("emotion_pcs: probe_act must be a DataArray (token, probe) with conversation and "
                            "turn coordinates (the /tokens group's probe_act)")
    probe_act = probe_act.transpose("token", ...)
    pdim = probe_act.dims[1]
    n_probes = probe_act.sizes[pdim]
    if n_probes < 1 or probe_act.sizes["token"] < 2:
        raise EmostatsError(f"emotion_pcs: probe_act has {n_probes} probes and {probe_act.sizes['token']} tokens; "
                            f"PCA needs at least 1 probe and 2 tokens")
    dead = ~np.asarray(np.isfinite(probe_act).any("token").values)
    dropped = []
    if dead.any():  # NaN on every token: it would leave no token for the PCA
        names = probe_act[pdim].values if pdim in probe_act.coords else np.arange(n_probes)
        dropped = [str(v) for v in names[dead]]
        if dead.all():
            raise EmostatsError(f"emotion_pcs: every {pdim} of probe_act is NaN on every token; nothing to analyse")
        warnings.warn(f"emotion_pcs: left out {len(dropped)} {pdim}(s) NaN on every token: {', '.join(dropped[:10])}",
                      DegenerateWarning, stacklevel=2)
        keep = np.flatnonzero(~dead)
        probe_act = probe_act.isel({pdim: keep})
        labelled = (isinstance(probe_vectors, xr.DataArray) and pdim in probe_vectors.dims
                    and pdim in probe_act.coords and pdim in probe_vectors.coords)  # aligned by label below
        if probe_vectors is not None and not labelled and np.ndim(probe_vectors) == 2:
            probe_vectors = np.asarray(probe_vectors, dtype=np.float64)[keep]
        n_probes = keep.size
    stats_ = moment_arrays(probe_act, lags=(), nonfinite="drop")
    if stats_["n"] < 2:
        raise EmostatsError(f"emotion_pcs: {stats_['n']} tokens have every probe activation finite; PCA needs at "
                            f"least 2")
    eig, load = pca_from_cov(stats_["cov"])
    total = eig.sum()
    r, n_pairs, n_masked = _scores_persistence(probe_act, stats_["mean"], load, int(lag), threads)
    degenerate = eig <= DEGENERATE_RTOL * max(float(eig.max()), 0.0)
    if degenerate.any():
        r = np.where(degenerate, np.nan, r)
        warnings.warn(f"emotion_pcs: {int(degenerate.sum())} of {n_probes} PCs have zero variance (eigenvalue <= "
                      f"{DEGENERATE_RTOL:g} x the largest: constant or collinear probes); their r is NaN",
                      DegenerateWarning, stacklevel=2)
    pcs = np.arange(1, n_probes + 1)
    coords = {"pc": pcs}
    if pdim in probe_act.coords:
        coords["probe"] = probe_act[pdim].values
    ds = xr.Dataset(
        {"eigenvalue": ("pc", eig, {"long_name": "variance of the PC scores (ddof=0)"}),
         "pca_variance_ratio": ("pc", eig / total if total > 0 else np.full_like(eig, np.nan),
                                {"long_name": "fraction of the probe-space variance"}),
         "loadings": (("probe", "pc"), load, {"long_name": "unit loading vector of each PC over the probes"}),
         "probe_mean": ("probe", stats_["mean"], {"long_name": "mean probe activation"}),
         "r": ("pc", r, {"long_name": f"lag-{lag} persistence of the PC scores"}),
         "n_pairs": ("pc", n_pairs, {"long_name": "valid lag pairs"}),
         "n_masked": ("pc", n_masked, {"long_name": "lag pairs masked for non-finite values"}),
         "degenerate": ("pc", degenerate, {"long_name": "zero-variance PC (r set to NaN)"})},
        coords=coords)
    ds.attrs.update(lag=int(lag), n_match=int(n), stat=stat, seed=int(seed),
                    n_tokens_used=int(stats_["n"]), n_tokens_dropped=int(stats_["n_dropped"]),
                    dropped_probes=", ".join(dropped),
                    sign_convention="largest-magnitude loading of each PC positive",
                    pca="eigendecomposition of the probe covariance over all tokens (ddof=0)")

    if probe_vectors is not None and moments is not None:
        if isinstance(probe_vectors, xr.DataArray):
            pv = probe_vectors.transpose(..., "hidden")
            if pdim in pv.dims and pdim in probe_act.coords and pdim in pv.coords:
                pv = pv.sel({pdim: probe_act[pdim].values})
            pv = np.asarray(pv.values, dtype=np.float64)
        else:
            pv = np.asarray(probe_vectors, dtype=np.float64)
        if pv.ndim != 2 or pv.shape[0] != n_probes:
            raise EmostatsError(f"emotion_pcs: probe_vectors has shape {pv.shape}; expected ({n_probes}, hidden)")
        cov = np.asarray(moments["cov"].values if "cov" in moments else np.full((pv.shape[1],) * 2, np.nan))
        act_vectors, chosen, misfit = probe_act_vectors(pv, np.diagonal(stats_["cov"]), cov, probe_scaling)
        ds.attrs.update(probe_scaling=chosen, probe_scaling_misfit=misfit)
        u = pc_directions(load, act_vectors)
        dirs = xr.DataArray(u, dims=("pc", "hidden"), coords={"pc": pcs})
        dp = direction_persistence(moments, dirs, lag=lag)
        # a zero-variance PC's combination of probe vectors is ~0: its normalised direction is noise
        ds["variance_explained"] = ("pc", np.where(degenerate, np.nan, dp["variance_explained"].values),
                                    {"long_name": "variance explained by the PC's hidden-space direction"})
        ds["r_direction"] = ("pc", np.where(degenerate, np.nan, dp["r"].values),
                             {"long_name": f"lag-{lag} persistence of the PC's direction from /moments"})
        if candidates is None:
            cand_dirs = random_direction_sweep(moments, seed=seed)
            candidates = direction_persistence(moments, cand_dirs, lag=lag)
            ds.attrs["candidates"] = f"random_direction_sweep(seed={seed}): {cand_dirs.sizes['direction']} directions"
        else:
            missing = [v for v in ("r", "variance_explained") if v not in candidates]
            if missing:
                raise EmostatsError(f"emotion_pcs: candidates lack {', '.join(missing)}; pass the output of "
                                    f"emostats.direction_persistence (r and variance_explained per direction)")
            ds.attrs["candidates"] = f"given: {candidates['r'].size} directions"
        vm = variance_matched(ds["r"], ds["variance_explained"], candidates["r"],
                              candidates["variance_explained"], n=n, stat=stat, threads=threads)
        vm = vm.rename({"target": "pc"})
        for name in ("residual", "baseline", "matched", "matched_values", "matched_variance"):
            ds[name] = vm[name]
        for name, var in vm.data_vars.items():
            if var.ndim == 0:
                ds[f"residual_{name}"] = var
        _rank_spearman(ds)
    return ds


def _rank_spearman(ds):
    sp = spearman(xr.DataArray(ds["pc"].values.astype(np.float64), dims="pc"),
                  xr.DataArray(ds["residual"].values, dims="pc"), dim="pc")
    for key in ("rho", "p", "n", "p_method"):
        ds[f"rank_{key}"] = ((), sp[key].values, {"long_name": f"Spearman {key} of PC rank against residual"})
