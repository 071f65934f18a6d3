"""Tidy result tables for people (pingouin-style columns) from the result Datasets."""

import numpy as np
import pandas as pd

from ..errors import ArgumentError as EmostatsError
from ._correlation_core import fisher_interval
from .multitest import adjust_rows

__all__ = ["to_table", "r_confidence_interval"]


def _ci_name(ds):
    return f"CI{100 * float(ds.attrs.get('conf_level', 0.95)):g}"


def r_confidence_interval(r, n, confidence=0.95, method="pearson", alternative="two-sided"):
    """Fisher-z confidence interval of a correlation.

    ``method`` picks the standard error of z: "pearson" ``1/sqrt(n-3)`` (R's
    ``cor.test``, pingouin's ``compute_esci``), "spearman" Bonett & Wright
    (2000) ``sqrt((1 + r^2/2)/(n-3))``, "kendall" Fieller, Hartley & Pearson
    (1957) ``sqrt(0.437/(n-4))``. One-sided alternatives give one-sided intervals.

    Examples
    --------
    >>> [round(float(v), 4) for v in r_confidence_interval(0.5, 30)]
    [0.1704, 0.729]
    """
    from ._common import check_alternative

    return fisher_interval(r, n, method, confidence, check_alternative(alternative))


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
    - spearman/pearson/kendall: ``n``, ``r`` (``rho`` for Spearman, ``tau``
      for Kendall), ``CI95`` (the Dataset's interval: Fisher z with standard
      error ``1/sqrt(n-3)`` for Pearson, Bonett & Wright's ``sqrt((1 +
      rho^2/2)/(n-3))`` for Spearman, Fieller's ``sqrt(0.437/(n-4))`` for
      Kendall; the table's ``attrs["ci_method"]`` says which), ``p_val``, ``p_fdr``.
    - one_sample_tests: one row per position and test (``t-test``,
      ``wilcoxon``, ``sign``): ``test``, ``n``, ``statistic`` (t, W+ and the
      count of positive values), ``CI95`` (t interval of the mean,
      Hodges-Lehmann interval, Clopper-Pearson interval of P(value >
      popmean)), ``p_val``, ``p_fdr``.
    - t_test: ``n_x``, ``n_y``, ``estimate``, ``t``, ``df``, ``CI95``, ``p_val``, ``p_fdr``.
    - bh_fdr: the coordinates, ``q`` and ``reject``; p_adjust: ``p_adj`` and ``reject``.

    The interval column is named after the level of the Dataset
    (``conf_level`` attr): ``CI95``, ``CI90``, ...

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
    if test in ("spearman", "pearson", "kendall"):
        name = {"spearman": "rho", "pearson": "r", "kendall": "tau"}[test]
        names = ["n", name, "p", "ci_low", "ci_high"] + (["q"] if "q" in ds else [])
        if "ci_low" not in ds:  # results saved before intervals were stored
            lo, hi = r_confidence_interval(ds[name].values, ds["n"].values, 0.95, test)
            ds = ds.assign(ci_low=(ds[name].dims, lo), ci_high=(ds[name].dims, hi))
        tab = _frame(ds, names)
        keys = [c for c in tab.columns if c not in names]
        out = tab[keys].copy()
        out["n"] = tab["n"]
        out[name] = tab[name]
        out[_ci_name(ds)] = _ci(tab["ci_low"], tab["ci_high"])
        out["p_val"] = tab["p"]
        if "q" in ds:
            out["p_fdr"] = tab["q"]
        elif fdr:
            out["p_fdr"] = _fdr(out["p_val"])
        out.attrs["ci_method"] = ds.attrs.get("ci_method", "")
        out.attrs["p_rule"] = ds.attrs.get("p_rule", "")
        return out
    if test == "t_test":
        tab = _frame(ds, ["n_x", "n_y", "estimate", "t", "df", "ci_low", "ci_high", "p"])
        keys = [c for c in tab.columns if c not in ds.data_vars]
        out = tab[keys].copy()
        for c in ("n_x", "n_y", "estimate", "t", "df"):
            out[c] = tab[c]
        out[_ci_name(ds)] = _ci(tab["ci_low"], tab["ci_high"])
        out["p_val"] = tab["p"]
        if fdr:
            out["p_fdr"] = _fdr(out["p_val"])
        return out
    if test == "one_sample":
        tab = _frame(ds, ["n", "t", "t_p", "ci_low", "ci_high", "wilcoxon_W", "wilcoxon_p", "n_positive",
                          "sign_p"] + [v for v in ("hl_ci_low", "hl_ci_high", "sign_ci_low", "sign_ci_high")
                                       if v in ds])
        keys = [c for c in tab.columns if c not in ds.data_vars]
        nan = pd.Series(np.full(len(tab), np.nan))
        parts = []
        for label, stat, p, lo, hi in (("t-test", "t", "t_p", "ci_low", "ci_high"),
                                       ("wilcoxon", "wilcoxon_W", "wilcoxon_p", "hl_ci_low", "hl_ci_high"),
                                       ("sign", "n_positive", "sign_p", "sign_ci_low", "sign_ci_high")):
            part = tab[keys].copy()
            part["test"] = label
            part["n"] = tab["n"]
            part["statistic"] = tab[stat].astype(float)
            part[_ci_name(ds)] = _ci(tab.get(lo, nan), tab.get(hi, nan))
            part["p_val"] = tab[p]
            if fdr:
                part["p_fdr"] = _fdr(part["p_val"])
            parts.append(part)
        out = pd.concat(parts, ignore_index=True)
        out.attrs["ci_method"] = ("t-test: t interval of the mean; wilcoxon: Hodges-Lehmann interval of the "
                                  "(pseudo)median; sign: Clopper-Pearson interval of P(value > popmean)")
        return out
    if test == "p_adjust":
        return _frame(ds, ["p_adj", "reject"])
    if test == "fdr":
        return _frame(ds, ["q", "reject"])
    raise EmostatsError(
        f"to_table: the Dataset has attrs test={test!r}; expected a result of permutation_test, "
        f"spearman, pearson, kendall, t_test, one_sample_tests, bh_fdr or p_adjust")
