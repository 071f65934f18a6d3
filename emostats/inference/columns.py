"""The summary table's inference columns: interval, conversation-level p, placebo percentile and p.

:func:`inference_columns` adds to the ``/summary`` Dataset, per row,
``ci_low``, ``ci_high`` (95% conversation bootstrap), ``p_cluster``
(conversation-level jackknife t-test), ``placebo_pct`` (0-100) and
``placebo_p`` (from the placebo kind calibrated for the row,
:data:`PLACEBO_KIND`), NaN with the reason in ``inference_detail`` where a row has
none, and ``p_assumes`` saying what unit the existing ``p`` column treats as
independent.
"""

import numpy as np

__all__ = ["inference_columns", "ROW_SOURCES", "PLACEBO_KIND"]

#: summary row -> (bootstrap statistic or None, statistic whose p_cluster the row takes or None,
#:                 placebo statistic (probe-set placebo) or "span:<name>" or None, what ``p`` assumes)
ROW_SOURCES = {
    "probe_persistence": ("probe_persistence", "probe_minus_random", "probe_persistence", ""),
    "random_persistence": ("random_persistence", None, None, ""),
    "residual_mean": ("residual_mean", "residual_mean", "residual_mean", "probes independent (t-test over probes)"),
    "residual_positive": ("residual_positive", None, "residual_positive", "probes independent (sign test)"),
    "pc_spearman": ("pc_spearman", None, "pc_spearman", "PCs independent (Spearman p)"),
    "sae_spearman": ("sae_spearman", "sae_spearman", "span:sae_spearman", "features independent (Spearman p)"),
    "self_rating_residual": ("self_rating_residual", "self_rating_residual", None,
                             "features independent (Spearman p)"),
    "text_rating_residual": ("text_rating_residual", "text_rating_residual", None,
                             "features independent (Spearman p)"),
    "subspace_self_rating": (None, None, "span:subspace_self_rating", "features independent (Spearman p)"),
    "subspace_text_rating": (None, None, "span:subspace_text_rating", "features independent (Spearman p)"),
    "self_text_rating": (None, None, None, "features independent (Spearman p)"),
    "self_rating_variance": (None, None, None, "features independent (Spearman p)"),
}

#: summary row -> the placebo kind whose p is calibrated for it on the null world (docs/inference.md): means over
#: the probes need sets with the probes' own geometry (rotated); the PC-rank Spearman holds with isotropic sets
PLACEBO_KIND = {"probe_persistence": "rotated", "residual_mean": "rotated", "residual_positive": "rotated",
                "pc_spearman": "isotropic"}

_NO_CONV = "computed from the feature table alone: no conversation unit to resample"
_STEERING = ("steering samples are their own unit (independent generations), not conversations; "
             "BH-FDR over emotions is the row's inference")
_MENTIONS = "transcripts of rated features: no conversation unit; the permutation test is the row's inference"


def _why(row):
    if row.startswith("steering"):
        return _STEERING
    if row.startswith("mentions"):
        return _MENTIONS
    return _NO_CONV


def inference_columns(summary, results):
    """``summary`` with the inference columns filled from the ``bootstrap`` and ``placebo`` results.

    Parameters
    ----------
    summary : xarray.Dataset
        The ``/summary`` table (dim ``row``).
    results : dict of str -> xarray.Dataset
        The steps' results (``bootstrap``, ``placebo`` when they ran).

    Returns
    -------
    xarray.Dataset

    Examples
    --------
    >>> import xarray as xr
    >>> s = xr.Dataset({"value": ("row", [0.2, 3.0])}, coords={"row": ["probe_persistence", "steering_5"]})
    >>> out = inference_columns(s, {})
    >>> out["inference_detail"].values.tolist()[1][:16]
    'steering samples'
    """
    rows = [str(r) for r in summary["row"].values]
    n = len(rows)
    cols = {k: np.full(n, np.nan) for k in ("ci_low", "ci_high", "p_cluster", "placebo_pct", "placebo_p")}
    notes = [[] for _ in rows]
    assumes = [""] * n
    bs = results.get("bootstrap")
    pl = results.get("placebo")
    bstats = [str(s) for s in bs["statistic"].values] if bs is not None else []
    kinds = []
    if pl is not None and "placebo_pct" in pl:
        kinds = [str(k) for k in pl["kind"].values]
    for i, row in enumerate(rows):
        src = ROW_SOURCES.get(row)
        if src is None:
            notes[i].append(_why(row))
            continue
        boot, ptest, plac, assumes[i] = src
        if boot is None:
            notes[i].append("interval: " + _NO_CONV)
        elif bs is None:
            notes[i].append("interval: the bootstrap step did not run")
        elif boot in bstats:
            b = bs.sel(statistic=boot)
            cols["ci_low"][i], cols["ci_high"][i] = float(b["ci_low"]), float(b["ci_high"])
            why = str(b["missing"].values)
            if not np.isfinite(cols["ci_low"][i]):
                notes[i].append(f"interval: {why or 'undefined on this study'}")
            elif "probe side only" in str(b["scope"].values):
                notes[i].append("interval: null directions held fixed (no /conv_moments)")
        if ptest is None:
            if row == "pc_spearman":
                notes[i].append("p_cluster: the jackknife test over-rejects for this rank statistic on the null "
                                "world (10.5% at 5%); its test is placebo_p")
            else:
                notes[i].append("p_cluster: no null value for this number" if boot else "p_cluster: " + _NO_CONV)
        elif bs is not None and ptest in bstats:
            cols["p_cluster"][i] = float(bs["p_cluster"].sel(statistic=ptest))
            if ptest != boot:
                notes[i].append(f"p_cluster tests {ptest.replace('_', ' ')} = 0")
        if plac is None:
            notes[i].append("no placebo defined (the number is itself a null, or involves no probes or span)")
        elif pl is None:
            notes[i].append("placebo: the placebo step did not run")
        elif plac.startswith("span:"):
            name = plac[5:]
            if "span_statistic" in pl.coords and name in [str(s) for s in pl["span_statistic"].values] \
                    and "span_placebo_pct" in pl:
                cols["placebo_pct"][i] = float(pl["span_placebo_pct"].sel(span_statistic=name))
                cols["placebo_p"][i] = float(pl["span_placebo_p"].sel(span_statistic=name))
                notes[i].append("placebo: random spans of the probe span's dimension")
            else:
                notes[i].append("placebo: needs /features decoder for random spans")
        elif kinds and plac in [str(s) for s in pl["statistic"].values]:
            want = PLACEBO_KIND.get(row, kinds[0])
            kind = want if want in kinds else kinds[0]
            cols["placebo_pct"][i] = float(pl["placebo_pct"].sel(kind=kind, statistic=plac))
            cols["placebo_p"][i] = float(pl["placebo_p"].sel(kind=kind, statistic=plac))
            what = "randomly rotated copies of the probe set" if kind == "rotated" else f"{kind} random probe sets"
            notes[i].append(f"placebo: {what}")
            if kind != want:
                notes[i].append(f"placebo p not calibrated for this number with {kind} sets (over-rejects on the "
                                f"null world); {want} sets are")
    out = summary.copy()
    long = {"ci_low": "95% conversation-bootstrap interval, low", "ci_high": "95% conversation-bootstrap interval, high",
            "p_cluster": "conversation-level p (jackknife t over conversations, G - 1 df)",
            "placebo_pct": "percentile of the value among placebo draws (0-100)",
            "placebo_p": "two-sided placebo p"}
    for k, v in cols.items():
        out[k] = ("row", v, {"long_name": long[k]})
    out["inference_detail"] = ("row", ["; ".join(x) for x in notes],
                               {"long_name": "why an inference column is NaN, and what it uses"})
    out["p_assumes"] = ("row", assumes, {"long_name": "what the p column treats as independent (empty: none)"})
    return out
