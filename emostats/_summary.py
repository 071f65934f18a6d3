"""SPEC.md analysis 12: the study's closing paragraph as a table (the ``/summary`` group of :func:`emostats.run`).

Every row is read from the results of the other steps (no new statistics are
computed here except means and counts of what they returned). A row whose step
did not run has NaN values and says so in ``detail``.
"""

import numpy as np
import xarray as xr

__all__ = ["summary_table", "ROWS"]

#: row id -> (quantity, kind, the published value for Kimi K2.5 (Cogito v2.1 in brackets))
ROWS = {
    "probe_persistence": ("Mean lag persistence of the emotion probes", "mean", "0.367 (Cogito 0.214)"),
    "random_persistence": ("Mean lag persistence of random unit directions", "mean", "0.117 (Cogito 0.099)"),
    "residual_mean": ("Mean residual persistence over variance-matched directions", "signed",
                      "+0.170, p = 6.7e-30 (Cogito +0.077, p = 1.5e-27)"),
    "residual_positive": ("Probes with positive residual persistence", "count", "167 of 171 (Cogito 157)"),
    "pc_spearman": ("Spearman of PC rank with residual persistence", "signed",
                    "lower PCs more persistent (not given)"),
    "steering_5": ("Emotions significant 5 tokens after the steering pulse", "count", "130 of 171"),
    "steering_5_persistent": ("… of which persistent (z > 0)", "count", "about 62% of 171"),
    "steering_5_antipersistent": ("… of which anti-persistent (z < 0)", "count", "about 14% of 171"),
    "steering_100": ("Emotions significant 100 tokens after the pulse", "count", "48 of 171"),
    "sae_spearman": ("Spearman of SAE subspace fraction with residual persistence", "signed",
                     "+0.111, p = 4.4e-52 (Cogito +0.413, p = 4.4e-196)"),
    "subspace_self_rating": ("Spearman of subspace fraction with self rating", "signed", "positive (Figure 8)"),
    "subspace_text_rating": ("Spearman of subspace fraction with text rating", "signed", "Figure 8"),
    "self_text_rating": ("Spearman of self rating with text rating", "signed", "+0.051 (n.s.)"),
    "self_rating_residual": ("Spearman of self rating with residual persistence", "signed", "+0.124, p = 0.0001"),
    "text_rating_residual": ("Spearman of text rating with residual persistence", "signed", "weakly negative"),
    "self_rating_variance": ("Spearman of self rating with variance explained", "signed", "−0.184, p = 4.6e-09"),
    "mentions_significant": ("Emotions whose mention predicts cosine (BH-FDR)", "count", "17 of 83"),
    "mentions_positive": ("Emotions with a positive mention effect", "count", "67 of 83"),
}


def _row(value=np.nan, p=np.nan, n=np.nan, detail="", offset=np.nan):
    return dict(value=float(value), p=float(p), n=float(n), detail=str(detail), offset=float(offset))


def _mean_r(ds, var="r"):
    r = np.asarray(ds[var].values, dtype=float)
    return _row(np.nanmean(r) if np.isfinite(r).any() else np.nan, n=np.isfinite(r).sum())


def _fill(rows, results, params):
    """Fill ``rows`` (id -> dict) from the results of the other steps."""
    per = results.get("persistence")
    if per is not None:
        rows["probe_persistence"] = _mean_r(per)
        rows["probe_persistence"]["detail"] = f"lag {params['lag']}"


def summary_table(results, params, study=None):
    """The ``/summary`` Dataset: one row per number of the study's closing paragraph.

    Parameters
    ----------
    results : dict of str -> xarray.Dataset
        The results of the steps that ran (keys are step names).
    params : dict
        The run parameters (``lag``, ``alpha``, ...).
    study : xarray.DataTree, optional
        The study, for counts such as the number of conversations.

    Returns
    -------
    xarray.Dataset
        dims ``row``; ``quantity``, ``value``, ``p``, ``n``, ``detail``, ``kind``,
        ``study`` (the published number) and ``offset`` (steering rows).
    """
    rows = {key: _row(detail="not available: its analysis did not run") for key in ROWS}
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
            "kind": "how to print the value (mean, signed, count)",
            "study": "the published value (Sauers et al. 2026, Kimi K2.5; Cogito v2.1 in brackets)"}
    for name, text in long.items():
        ds[name].attrs["long_name"] = text
    ds.attrs.update(title="Summary: the study's closing paragraph with this study's numbers",
                    lag=params["lag"], alpha=params["alpha"])
    if study is not None and "tokens" in study.children and "conversation" in study["tokens"].coords:
        ds.attrs["n_conversations"] = int(np.unique(np.asarray(study["tokens"]["conversation"].values)).size)
    return ds
