"""Tidy result tables for people (pingouin-style columns) from the result Datasets."""

import numpy as np
import pandas as pd
from scipy import special

from ..errors import EmostatsError
from .multitest import adjust_rows

__all__ = ["to_table", "r_confidence_interval"]


def r_confidence_interval(r, n, confidence=0.95):
    """Fisher-z confidence interval of a correlation (as pingouin's ``compute_esci``).

    Examples
    --------
    >>> [round(float(v), 4) for v in r_confidence_interval(0.5, 30)]
    [0.1704, 0.729]
    """
    r = np.asarray(r, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.arctanh(r)
        half = special.ndtri(0.5 + confidence / 2) / np.sqrt(n - 3)
        lo, hi = np.tanh(z - half), np.tanh(z + half)
    bad = n < 4
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def _frame(ds, names):
    """DataFrame of ``names`` over the dims of ``ds`` (one row for 0-d datasets)."""
    sub = ds[names]
    if not sub.dims:
        return pd.DataFrame({k: [sub[k].item()] for k in names})
    return sub.to_dataframe()[names].reset_index()


def _fdr(p):
    p = np.asarray(p, dtype=np.float64)
    return adjust_rows(p[None, :])[0] if p.size else p


def _ci(lo, hi):
    return [np.array([a, b]) for a, b in zip(lo, hi)]


def to_table(ds, fdr=True):
    """A tidy pandas table of a result Dataset, with pingouin-style columns.

    Columns, in order: the batch coordinates, then ``n`` (after NaN removal),
    the statistic, ``CI95`` (a 2-array per row, where one is defined),
    ``p_val`` and ``p_fdr``. ``p_fdr`` is the Dataset's ``q`` when it has one,
    else the Benjamini-Hochberg q over the rows of this table (one family per
    test; NaN rows left out), or absent with ``fdr=False``.

    - permutation_test: ``n_in``, ``n_out``, ``n``, ``mean_diff``, ``p_val``,
      ``p_fdr``, ``exact``.
    - spearman/pearson: ``n``, ``r`` (``rho`` for Spearman), ``CI95`` (Fisher
      z interval), ``p_val``, ``p_fdr``.
    - one_sample_tests: one row per position and test (``t-test``,
      ``wilcoxon``, ``sign``): ``test``, ``n``, ``statistic`` (t, W+ and the
      count of positive values), ``CI95`` (t-test only), ``p_val``, ``p_fdr``.
    - bh_fdr: the coordinates, ``q`` and ``reject``.

    Examples
    --------
    >>> import numpy as np
    >>> from emostats.stats import spearman
    >>> tab = to_table(spearman(np.arange(10.0), np.arange(10.0) ** 2))
    >>> list(tab.columns)
    ['n', 'rho', 'CI95', 'p_val', 'p_fdr']
    """
    test = ds.attrs.get("test")
    if test == "permutation":
        tab = _frame(ds, ["n_in", "n_out", "statistic", "p", "exact"])
        tab.insert(tab.columns.get_loc("statistic"), "n", tab["n_in"] + tab["n_out"])
        tab = tab.rename(columns={"statistic": "mean_diff", "p": "p_val"})
        keys = [c for c in tab.columns if c not in ("n_in", "n_out", "n", "mean_diff", "p_val", "exact")]
        tab = tab[[*keys, "n_in", "n_out", "n", "mean_diff", "p_val", "exact"]]
        q = _frame(ds, ["q"])["q"].to_numpy() if "q" in ds else (_fdr(tab["p_val"]) if fdr else None)
        if q is not None:
            tab.insert(tab.columns.get_loc("p_val") + 1, "p_fdr", q)
        return tab
    if test in ("spearman", "pearson"):
        name = "rho" if test == "spearman" else "r"
        names = ["n", name, "p"] + (["q"] if "q" in ds else [])
        tab = _frame(ds, names)
        keys = [c for c in tab.columns if c not in names]
        lo, hi = r_confidence_interval(tab[name].to_numpy(), tab["n"].to_numpy())
        out = tab[keys].copy()
        out["n"] = tab["n"]
        out[name] = tab[name]
        out["CI95"] = _ci(lo, hi)
        out["p_val"] = tab["p"]
        if "q" in ds:
            out["p_fdr"] = tab["q"]
        elif fdr:
            out["p_fdr"] = _fdr(out["p_val"])
        return out
    if test == "one_sample":
        tab = _frame(ds, ["n", "t", "t_p", "ci_low", "ci_high", "wilcoxon_W", "wilcoxon_p",
                          "n_positive", "sign_p"])
        keys = [c for c in tab.columns if c not in ds.data_vars]
        parts = []
        for label, stat, p in (("t-test", "t", "t_p"), ("wilcoxon", "wilcoxon_W", "wilcoxon_p"),
                               ("sign", "n_positive", "sign_p")):
            part = tab[keys].copy()
            part["test"] = label
            part["n"] = tab["n"]
            part["statistic"] = tab[stat].astype(float)
            part["CI95"] = (_ci(tab["ci_low"], tab["ci_high"]) if label == "t-test"
                            else [np.array([np.nan, np.nan])] * len(tab))
            part["p_val"] = tab[p]
            if fdr:
                part["p_fdr"] = _fdr(part["p_val"])
            parts.append(part)
        return pd.concat(parts, ignore_index=True)
    if test == "fdr":
        return _frame(ds, ["q", "reject"])
    raise EmostatsError(
        f"to_table: the Dataset has attrs test={test!r}; expected a result of permutation_test, "
        f"spearman, pearson, one_sample_tests or bh_fdr")
