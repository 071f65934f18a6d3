"""Conversation bootstrap of every headline number (xarray level).

:func:`conversation_bootstrap` resamples whole conversations with
replacement, recomputes every headline number of the summary from
per-conversation sufficient statistics (:mod:`emostats.inference.headlines`),
and returns the draws, percentile and BCa intervals, the leave-one-out
jackknife replicates and the conversation-level p-values (jackknife t with
G - 1 df; see :mod:`emostats.inference._resample` for why).
"""

import numpy as np
import xarray as xr

from .. import defaults
from ..errors import EmostatsError, MissingGroupError
from ._merge import single_threaded_blas
from ._resample import bca_interval, bootstrap_weights, jackknife_p, jackknife_weights, percentile_interval
from .convstats import CONV_GROUP, firing_stats, hidden_stats, probe_stats
from .headlines import STATISTICS, Headlines

__all__ = ["conversation_bootstrap", "build_headlines", "INTERVALS"]

#: interval methods; the first is the default (see the module docstring of _resample)
INTERVALS = ("percentile", "bca")

#: statistic -> why it can have no interval without the group or input named
_NEEDS = {
    "random_persistence": "needs /conv_moments (per-conversation moments of the random directions)",
    "random_within": "needs /conv_moments (per-conversation within-turn moments of the random directions)",
    "probe_minus_random": "needs /conv_moments (per-conversation moments of the random directions)",
    "residual_within_mean": "needs /conv_moments (within-turn moments of the candidate directions)",
    "residual_mean": "needs /probes variance_explained (or vector with /moments) and candidates",
    "residual_positive": "needs /probes variance_explained (or vector with /moments) and candidates",
    "pc_spearman": "needs /probes vector, /moments and candidates",
    "sae_spearman": "needs /tokens sae_index and /features variance_explained, subspace_fraction",
    "self_rating_residual": "needs SAE firing persistence and /features self_rating",
    "text_rating_residual": "needs SAE firing persistence and /features text_rating",
}


def _group(study, name):
    return study[name].to_dataset(inherit=False) if name in study.children else None


def build_headlines(study, lag=defaults.LAG, *, candidates=None, random=None, sae_persistence=None,
                    min_fires=defaults.MIN_FIRES, n_match=defaults.N_MATCHED, match_stat=defaults.MATCH_STAT,
                    rating_stat=defaults.RATING_STAT, threads=None):
    """A :class:`Headlines` for ``study``: every per-conversation statistic it supports, in one pass each.

    ``candidates`` and ``random`` (Datasets with ``r`` and ``variance_explained``,
    e.g. the results of the ``candidates`` and ``random_directions`` steps) serve
    as fixed null populations when the study has no ``/conv_moments``.
    ``sae_persistence`` (the result of :func:`emostats.firing_persistence`) gives
    the included features; without it they are computed with ``min_fires``.
    Returns ``(headlines, scope)``: ``scope`` maps statistic -> how it is resampled.
    """
    if "tokens" not in study.children or "probe_act" not in study["tokens"].to_dataset(inherit=False):
        raise MissingGroupError("/tokens: probe_act missing; the conversation bootstrap resamples its conversations")
    act = study["tokens"]["probe_act"]
    ps = probe_stats(act, lag, matrices=True, threads=threads)
    if ps.n_groups < 2:
        raise EmostatsError(f"/tokens: {ps.n_groups} conversation; resampling conversations needs at least 2")
    hs = None
    if CONV_GROUP in study.children:
        hs = hidden_stats(study, lag, ps.conversations)
    probes = _group(study, "probes")
    mom = _group(study, "moments")
    vectors = probes["vector"].values if probes is not None and "vector" in probes else None
    if vectors is not None and "probe" in probes["vector"].dims and "probe" in act.coords:
        vectors = probes["vector"].sel(probe=act["probe"].values).values
    probe_ve = None
    if probes is not None and "variance_explained" in probes:
        pv = probes["variance_explained"]
        probe_ve = (pv.sel(probe=act["probe"].values) if "probe" in act.coords and "probe" in pv.coords else pv).values
    cov = mom["cov"].values if mom is not None and "cov" in mom else None
    fixed_c = None
    if hs is None and candidates is not None:
        fixed_c = (candidates["r"].values, candidates["variance_explained"].values)
    fixed_r = random["r"].values if (hs is None and random is not None) else None
    fs, sae = _firing(study, lag, sae_persistence, min_fires, ps.conversations)
    h = Headlines(ps, hs, fixed_candidates=fixed_c, fixed_random=fixed_r, probe_ve=probe_ve,
                  probe_vectors=vectors, moments_cov=cov, firing=fs, sae=sae, n_match=n_match,
                  match_stat=match_stat, rating_stat=rating_stat, threads=threads)
    scope = {}
    tok = "conversations resampled: probe activations"
    for key in STATISTICS:
        scope[key] = tok
    null_fixed = ("conversations resampled: probe side only; the null directions' r and variance explained held "
                  "at their pooled values (the study has no /conv_moments)")
    if hs is not None:
        for key in ("random_persistence", "random_within", "probe_minus_random", "residual_mean",
                    "residual_positive", "residual_within_mean", "pc_spearman"):
            scope[key] = "conversations resampled: probe activations and /conv_moments (null directions too)"
    else:
        for key in ("residual_mean", "residual_positive", "pc_spearman"):
            scope[key] = null_fixed
        for key in ("random_persistence", "probe_minus_random", "random_within", "residual_within_mean"):
            scope[key] = ""
    for key in ("sae_spearman", "self_rating_residual", "text_rating_residual"):
        scope[key] = "conversations resampled: per-conversation SAE firing counts (feature table fixed)"
    return h, scope


def _firing(study, lag, persistence, min_fires, conversations):
    tok = _group(study, "tokens")
    feats = _group(study, "features")
    if tok is None or "sae_index" not in tok or feats is None:
        return None, None
    if "variance_explained" not in feats:
        return None, None
    if "subspace_fraction" in feats:
        sf = feats["subspace_fraction"].values
    elif "decoder" in feats and "probes" in study.children and "vector" in study["probes"]:
        from ..geometry import subspace_fraction

        sf = subspace_fraction(feats["decoder"], study["probes"]["vector"]).values
    else:
        return None, None
    if persistence is None:
        from ..sae import firing_persistence

        persistence = firing_persistence(study, lag=lag, min_fires=min_fires)
    included = np.flatnonzero(np.asarray(persistence["included"].values)
                              & np.isfinite(np.asarray(persistence["persistence"].values)))
    if included.size < 3:
        return None, None
    fs = firing_stats(study, lag, included, conversations)
    sae = {"variance_explained": feats["variance_explained"].values[included], "subspace_fraction": sf[included]}
    for name in ("self_rating", "text_rating"):
        if name in feats:
            sae[name] = np.asarray(feats[name].values, dtype=np.float64)[included]
    return fs, sae


def conversation_bootstrap(study, lag=defaults.LAG, n_boot=1000, seed=defaults.SEED, ci=defaults.CI,
                           interval="percentile", *, candidates=None, random=None, sae_persistence=None,
                           min_fires=defaults.MIN_FIRES, n_match=defaults.N_MATCHED, match_stat=defaults.MATCH_STAT,
                           rating_stat=defaults.RATING_STAT, threads=None, progress=None):
    """Bootstrap over conversations of every headline number, with a conversation-level test.

    Parameters
    ----------
    study : xarray.DataTree
        A study with ``/tokens`` ``probe_act``; ``/probes``, ``/moments``,
        ``/conv_moments``, ``/tokens`` ``sae_index`` and ``/features`` add
        statistics (see ``scope`` in the result).
    lag : int
    n_boot : int
        Bootstrap replicates (whole conversations drawn with replacement).
    seed : int
        Seed of the resampling (the same seed gives the same draws).
    ci : float
        Coverage of the intervals.
    interval : {"percentile", "bca"}
        Which interval fills ``ci_low``/``ci_high`` (both are stored).
    candidates, random : xarray.Dataset, optional
        Null populations held fixed when the study has no ``/conv_moments``.
    sae_persistence : xarray.Dataset, optional
        :func:`emostats.firing_persistence` result (its ``included`` features).
    min_fires, n_match, match_stat, rating_stat : as in :func:`emostats.run`.
    threads : int, optional
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    xarray.Dataset
        Over ``statistic``: ``estimate``, ``ci_low``, ``ci_high`` (the chosen
        interval), ``percentile_low``/``_high``, ``bca_low``/``_high``,
        ``jackknife_se``, ``p_cluster`` (two-sided jackknife t-test of
        ``null_value`` with G - 1 df; NaN where no null is defined), ``null_value``,
        ``n_boot_ok``, ``scope`` (what is resampled), ``missing`` (why a
        statistic has no value); ``boot(replicate, statistic)`` and
        ``jackknife(conversation, statistic)``.

    Examples
    --------
    >>> import emostats as es
    >>> study = es.open_study(es.example_study())
    >>> bs = conversation_bootstrap(study, n_boot=50, seed=1)
    >>> float(bs["ci_low"].sel(statistic="probe_persistence")) < float(bs["estimate"].sel(statistic="probe_persistence"))
    True
    >>> study.close()
    """
    if interval not in INTERVALS:
        raise EmostatsError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    if not 0 < float(ci) < 1:
        raise EmostatsError(f"ci must lie in (0, 1), got {ci}")
    with single_threaded_blas():
        return _bootstrap(study, lag, n_boot, seed, ci, interval, candidates, random, sae_persistence, min_fires,
                          n_match, match_stat, rating_stat, threads, progress)


def _bootstrap(study, lag, n_boot, seed, ci, interval, candidates, random, sae_persistence, min_fires, n_match,
               match_stat, rating_stat, threads, progress):
    h, scope = build_headlines(study, lag, candidates=candidates, random=random, sae_persistence=sae_persistence,
                               min_fires=min_fires, n_match=n_match, match_stat=match_stat,
                               rating_stat=rating_stat, threads=threads)
    G = h.ps.n_groups
    names = list(STATISTICS)
    est = h.evaluate(np.ones((1, G)))
    jack = h.evaluate(jackknife_weights(G))
    W = bootstrap_weights(G, n_boot, seed)
    block = 100
    boot = {k: [] for k in names}
    for i in range(0, n_boot, block):
        part = h.evaluate(W[i:i + block])
        for k in names:
            boot[k].append(part[k])
        if progress is not None:
            progress(min(i + block, n_boot), n_boot)
    B = np.stack([np.concatenate(boot[k]) for k in names], axis=1)
    J = np.stack([jack[k] for k in names], axis=1)
    E = np.array([est[k][0] for k in names])
    pl, ph = percentile_interval(B, ci)
    bl, bh = bca_interval(B, E, J, ci)
    null = np.array([np.nan if STATISTICS[k][1] is None else STATISTICS[k][1] for k in names])
    p = np.where(np.isnan(null), np.nan, jackknife_p(E, J, np.nan_to_num(null)))
    missing = []
    for j, k in enumerate(names):
        if np.isfinite(E[j]):
            missing.append("")
        else:
            missing.append(_NEEDS.get(k, "undefined on this study"))
    E = np.where(np.isfinite(E), E, np.nan)
    lo, hi = (pl, ph) if interval == "percentile" else (bl, bh)
    st = ("statistic",)
    ds = xr.Dataset(
        {
            "estimate": (st, E, {"long_name": "value on the whole study"}),
            "ci_low": (st, np.where(np.isfinite(E), lo, np.nan), {"long_name": f"{ci:.0%} {interval} interval, low"}),
            "ci_high": (st, np.where(np.isfinite(E), hi, np.nan), {"long_name": f"{ci:.0%} {interval} interval, high"}),
            "percentile_low": (st, pl, {"long_name": f"{ci:.0%} percentile interval, low"}),
            "percentile_high": (st, ph, {"long_name": f"{ci:.0%} percentile interval, high"}),
            "bca_low": (st, bl, {"long_name": f"{ci:.0%} BCa interval, low"}),
            "bca_high": (st, bh, {"long_name": f"{ci:.0%} BCa interval, high"}),
            "jackknife_se": (st, _se(J), {"long_name": "leave-one-conversation-out jackknife standard error"}),
            "p_cluster": (st, p, {"long_name": "two-sided conversation-level p (jackknife t, G - 1 df)"}),
            "null_value": (st, null, {"long_name": "value under the null of p_cluster (NaN: no test)"}),
            "n_boot_ok": (st, np.isfinite(B).sum(axis=0), {"long_name": "replicates with a finite value"}),
            "scope": (st, [scope[k] for k in names], {"long_name": "what the replicates resample"}),
            "missing": (st, missing, {"long_name": "why the statistic has no value (empty: it has one)"}),
            "quantity": (st, [STATISTICS[k][0] for k in names], {"long_name": "what the statistic is"}),
            "boot": (("replicate", "statistic"), B, {"long_name": "bootstrap replicates (conversations resampled)"}),
            "jackknife": (("conversation", "statistic"), J,
                          {"long_name": "leave-one-conversation-out replicates (row g drops conversation g)"}),
        },
        coords={"statistic": names, "conversation": h.ps.conversations, "replicate": np.arange(n_boot)},
        attrs={"analysis": "conversation_bootstrap", "lag": int(lag), "n_boot": int(n_boot), "seed": int(seed),
               "ci": float(ci), "interval": interval, "n_conversations": int(G),
               "unit": "conversation (whole conversations resampled with replacement)",
               "p_cluster": "jackknife t-test over conversations: t = (estimate - null) / jackknife se, "
                            "Student t with G - 1 df, two-sided",
               "has_conv_moments": int(h.hs is not None)},
    )
    return ds


def _se(J):
    from ._resample import jackknife_se

    return jackknife_se(J)
