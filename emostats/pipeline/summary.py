"""SPEC.md analysis 12: the study's closing paragraph as a table (the ``/summary`` group of the results).

Every row is read from the results of the other steps (no new statistics are
computed here except means and counts of what they returned). A row whose step
did not run has NaN values and says so in ``detail``.
"""

import numpy as np
import xarray as xr

__all__ = ["summary_table", "ROWS", "ROW_STEP"]

#: row id -> (quantity, kind, the published value for Kimi K2.5 (Cogito v2.1 in brackets))
ROWS = {
    "probe_persistence": ("Mean lag persistence of the emotion probes", "mean", "0.367 (Cogito 0.214)"),
    "random_persistence": ("Mean lag persistence of random unit directions", "mean", "0.117 (Cogito 0.099)"),
    "residual_mean": ("Mean residual persistence over variance-matched directions", "signed",
                      "+0.170, p = 6.7e-30 (Cogito +0.077, p = 1.5e-27)"),
    "residual_positive": ("Probes with positive residual persistence", "count", "167 of 171 (Cogito 157)"),
    "pc_spearman": ("Spearman of PC rank with residual persistence", "rho",
                    "lower PCs more persistent (not given)"),
    "steering_5": ("Emotions significant 5 tokens after the steering pulse", "count", "130 of 171"),
    "steering_5_persistent": ("… of which persistent (z > 0)", "count", "about 62% of 171"),
    "steering_5_antipersistent": ("… of which anti-persistent (z < 0)", "count", "about 14% of 171"),
    "steering_100": ("Emotions significant 100 tokens after the pulse", "count", "48 of 171"),
    "sae_spearman": ("Spearman of SAE subspace fraction with residual persistence", "rho",
                     "+0.111, p = 4.4e-52 (Cogito +0.413, p = 4.4e-196)"),
    "subspace_self_rating": ("Spearman of subspace fraction with self rating", "rho", "positive (Figure 8)"),
    "subspace_text_rating": ("Spearman of subspace fraction with text rating", "rho", "Figure 8"),
    "self_text_rating": ("Spearman of self rating with text rating", "rho", "+0.051 (n.s.)"),
    "self_rating_residual": ("Spearman of self rating with residual persistence", "rho", "+0.124, p = 0.0001"),
    "text_rating_residual": ("Spearman of text rating with residual persistence", "rho", "weakly negative"),
    "self_rating_variance": ("Spearman of self rating with variance explained", "rho", "−0.184, p = 4.6e-09"),
    "mentions_significant": ("Emotions whose mention predicts cosine (BH-FDR)", "count", "17 of 83"),
    "mentions_positive": ("Emotions with a positive mention effect", "count", "67 of 83"),
}


#: row id -> the step whose results fill it (rows not named here: steering_* from steering, the rest ratings)
ROW_STEP = {"probe_persistence": "persistence", "random_persistence": "random_directions",
            "residual_mean": "variance_matched", "residual_positive": "variance_matched",
            "pc_spearman": "emotion_pcs", "sae_spearman": "sae_matched", "mentions_significant": "mentions",
            "mentions_positive": "mentions"}


def _step_of(key):
    if key.startswith("steering"):
        return "steering"
    return ROW_STEP.get(key, "ratings")


def _row(value=np.nan, p=np.nan, n=np.nan, detail="", offset=np.nan):
    return dict(value=float(value), p=float(p), n=float(n), detail=str(detail), offset=float(offset))


def _mean_r(ds, var="r"):
    r = np.asarray(ds[var].values, dtype=float)
    return _row(np.nanmean(r) if np.isfinite(r).any() else np.nan, n=np.isfinite(r).sum())


def _get(ds, name):
    return float(ds[name]) if name in ds.variables and ds[name].size == 1 else np.nan


def _nearest_offset(steering, wanted):
    offsets = np.asarray(steering["offset"].values)
    return int(offsets[np.argmin(np.abs(offsets - wanted))])


#: rows read from the rating analyses' ``pair`` labels
RATING_ROWS = {
    "subspace_self_rating": "subspace_fraction:self_rating",
    "subspace_text_rating": "subspace_fraction:text_rating",
    "self_text_rating": "self_rating:text_rating",
    "self_rating_residual": "residual:self_rating",
    "text_rating_residual": "residual:text_rating",
    "self_rating_variance": "self_rating:variance_explained",
}


def _fill(rows, results, params):
    """Fill ``rows`` (id -> dict) from the results of the other steps."""
    lag = params["lag"]
    per = results.get("persistence")
    if per is not None:
        rows["probe_persistence"] = _mean_r(per)
        rows["probe_persistence"]["detail"] = f"r at lag {lag}"
    rnd = results.get("random_directions")
    if rnd is not None:
        rows["random_persistence"] = _mean_r(rnd)
        rows["random_persistence"]["detail"] = f"r at lag {lag}"
    vm = results.get("variance_matched")
    if vm is not None:
        n = _get(vm, "n")
        rows["residual_mean"] = _row(_get(vm, "mean"), _get(vm, "t_p"), n,
                                     f"t-test; Wilcoxon p = {_p(_get(vm, 'wilcoxon_p'))}")
        rows["residual_positive"] = _row(_get(vm, "n_positive"), _get(vm, "sign_p"), n, "sign-test p")
    pcs = results.get("emotion_pcs")
    if pcs is not None and "rank_rho" in pcs:
        rows["pc_spearman"] = _row(_get(pcs, "rank_rho"), _get(pcs, "rank_p"), _get(pcs, "rank_n"),
                                   "< 0: leading PCs persist more")
    st = results.get("steering")
    if st is not None and st.sizes.get("offset", 0):
        for key, wanted in (("steering_5", 5), ("steering_100", 100)):
            o = _nearest_offset(st, wanted)
            at = st.sel(offset=o)
            npers, nanti, tested = int(at["n_persistent"]), int(at["n_antipersistent"]), int(at["n_tested"])
            note = "" if o == wanted else f" (offset {wanted} not in the study)"
            rows[key] = _row(npers + nanti, n=tested, offset=o,
                             detail=f"offset {o}{note}: {npers} up, {nanti} down")
            if key == "steering_5":
                rows["steering_5_persistent"] = _row(npers, n=tested, offset=o, detail=f"offset {o}{note}")
                rows["steering_5_antipersistent"] = _row(nanti, n=tested, offset=o, detail=f"offset {o}{note}")
    sm = results.get("sae_matched")
    if sm is not None:
        rows["sae_spearman"] = _row(_get(sm, "rho"), _get(sm, "p"), _get(sm, "n"), "included features")
    ra = results.get("ratings")
    if ra is not None:
        labels = [str(x) for x in ra["pair"].values]
        for key, label in RATING_ROWS.items():
            if label in labels:
                sel = ra.sel(pair=label)
                rows[key] = _row(float(sel["rho"]), float(sel["p"]), float(sel["n"]), "rated features")
    me = results.get("mentions")
    if me is not None:
        tested = _get(me, "n_tested")
        rows["mentions_significant"] = _row(_get(me, "n_significant"), n=tested,
                                            detail=f"q <= {params['alpha']}; n = emotions tested")
        rows["mentions_positive"] = _row(_get(me, "n_positive"), n=tested, detail="effect > 0")


def _p(p):
    return "NaN" if not np.isfinite(p) else f"{p:.2g}"


def summary_table(results, params, study=None, skipped=None):
    """The ``/summary`` Dataset: one row per number of the study's closing paragraph.

    Parameters
    ----------
    results : dict of str -> xarray.Dataset
        The results of the steps that ran (keys are step names).
    params : dict
        The run parameters (``lag``, ``alpha``, ...).
    study : xarray.DataTree, optional
        The study, for counts such as the number of conversations.
    skipped : dict of str -> str, optional
        Steps that were skipped and why; an empty row names its step and whether
        it was skipped or not run.

    Returns
    -------
    xarray.Dataset
        dims ``row``; ``quantity``, ``value``, ``p``, ``n``, ``detail``, ``kind``,
        ``study`` (the published number) and ``offset`` (steering rows).
    """
    skipped = skipped or {}
    rows = {key: _row(detail=f"not available: step {_step_of(key)} "
                             f"{'was skipped (see its section)' if _step_of(key) in skipped else 'did not run'}")
            for key in ROWS}
    _fill(rows, results, params)
    keys = list(ROWS)
    ds = xr.Dataset(
        {
            "quantity": ("row", [ROWS[k][0] for k in keys]),
            "value": ("row", [rows[k]["value"] for k in keys]),
            "p": ("row", [rows[k]["p"] for k in keys]),
            "n": ("row", [rows[k]["n"] for k in keys]),
            "detail": ("row", [rows[k]["detail"] for k in keys]),
            "offset": ("row", [rows[k]["offset"] for k in keys]),
            "kind": ("row", [ROWS[k][1] for k in keys]),
            "study": ("row", [ROWS[k][2] for k in keys]),
        },
        coords={"row": keys},
    )
    long = {"quantity": "what the row measures", "value": "value in this study", "p": "p-value (NaN: none)",
            "n": "number of items the value is computed over", "detail": "counts and remarks",
            "offset": "token offset after the steering pulse (steering rows)",
            "kind": "how to print the value (mean, signed, count, rho)",
            "study": "the published value (Sauers et al. 2026, Kimi K2.5; Cogito v2.1 in brackets)"}
    for name, text in long.items():
        ds[name].attrs["long_name"] = text
    ds.attrs.update(title="Summary: the study's closing paragraph with this study's numbers",
                    lag=params["lag"], alpha=params["alpha"])
    if study is not None and "tokens" in study.children and "conversation" in study["tokens"].coords:
        ds.attrs["n_conversations"] = int(np.unique(np.asarray(study["tokens"]["conversation"].values)).size)
    from ..inference.columns import inference_columns

    ds = inference_columns(ds, results)  # ci_low, ci_high, p_cluster, placebo_pct, placebo_p (issue 14)
    return ds
