"""One-sample tests of a location against ``popmean``: t-test, Wilcoxon signed-rank
(with the Hodges-Lehmann estimate and interval) and sign test (with the
Clopper-Pearson interval), with R's defaults."""

import numpy as np
import xarray as xr
from scipy import special

from ..errors import ArgumentError
from ._common import check_alternative, check_conf_level, warn_degenerate
from .ttest import t_rows
from .wilcoxon import WILCOXON_METHODS, signed_rank

__all__ = ["one_sample_tests", "clopper_pearson", "sign_test_p"]

_VARS = {
    "n": ("values used (NaN dropped)", np.int64),
    "mean": ("mean", np.float64),
    "median": ("median", np.float64),
    "n_positive": ("values > popmean", np.int64),
    "n_negative": ("values < popmean", np.int64),
    "t": ("one-sample t statistic", np.float64),
    "t_df": ("t-test degrees of freedom", np.float64),
    "t_p": ("t-test p-value", np.float64),
    "ci_low": ("t confidence interval of the mean, lower", np.float64),
    "ci_high": ("t confidence interval of the mean, upper", np.float64),
    "wilcoxon_W": ("Wilcoxon signed-rank statistic W+ (sum of positive ranks, R's V)", np.float64),
    "wilcoxon_p": ("Wilcoxon signed-rank p-value", np.float64),
    "wilcoxon_exact": ("Wilcoxon p from an exact null distribution", bool),
    "wilcoxon_p_method": ("how the Wilcoxon p was computed", "<U16"),
    "hl_estimate": ("Hodges-Lehmann estimate ((pseudo)median)", np.float64),
    "hl_ci_low": ("Hodges-Lehmann confidence interval, lower", np.float64),
    "hl_ci_high": ("Hodges-Lehmann confidence interval, upper", np.float64),
    "hl_ci_level": ("confidence level achieved by the Hodges-Lehmann interval", np.float64),
    "sign_p": ("sign test (binomial, p=1/2) p-value", np.float64),
    "sign_ci_low": ("Clopper-Pearson interval of P(value > popmean), lower", np.float64),
    "sign_ci_high": ("Clopper-Pearson interval of P(value > popmean), upper", np.float64),
}


def clopper_pearson(k, n, alt=2, conf_level=0.95):
    """R's ``binom.test(k, n, conf.level = conf_level)$conf.int`` (``alt``: 2 two-sided, 0 greater,
    1 less), vectorised over ``k`` and ``n`` (NaN where ``n == 0``).

    Examples
    --------
    >>> [round(float(v), 6) for v in clopper_pearson(7, 20)]   # R: 0.153909 0.592189
    [0.153909, 0.592189]
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)

    def lower(a):
        with np.errstate(invalid="ignore"):
            return np.where(k == 0, 0.0, special.betaincinv(np.maximum(k, 1), n - k + 1, a))

    def upper(a):
        with np.errstate(invalid="ignore"):
            return np.where(k == n, 1.0, special.betaincinv(k + 1, np.maximum(n - k, 1), 1 - a))

    if alt == 1:
        lo, hi = np.zeros(k.shape), upper(1 - conf_level)
    elif alt == 0:
        lo, hi = lower(1 - conf_level), np.ones(k.shape)
    else:
        a = (1 - conf_level) / 2
        lo, hi = lower(a), upper(a)
    bad = n < 1
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def sign_test_p(k, n, alt=2):
    """R's ``binom.test(k, n, 0.5, alternative)$p.value``, vectorised (NaN where ``n == 0``).

    With p = 1/2 the binomial is symmetric, so R's two-sided rule (the
    outcomes no more likely than the observed one) is ``min(1, 2 P(X <=
    min(k, n - k)))``, and 1 at ``k = n / 2``.

    Examples
    --------
    >>> round(float(sign_test_p(3, 10)), 6)   # R: 0.34375
    0.34375
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    # counts go to SciPy as integers (a float n is deprecated there); n < 1 (or NaN) is NaN below
    valid = np.isfinite(k) & np.isfinite(n) & (n >= 1)
    k_int = np.where(valid, k, 0).astype(np.int64)
    n_int = np.where(valid, n, 1).astype(np.int64)
    p = _sign_p(k_int, n_int, alt)
    return np.where(valid, p, np.nan)


def _sign_p(k, n, alt):
    with np.errstate(invalid="ignore"):
        if alt == 1:
            p = special.bdtr(k, n, 0.5)
        elif alt == 0:
            p = np.where(k == 0, 1.0, special.bdtrc(np.maximum(k - 1, 0), n, 0.5))
        else:
            p = np.where(2 * k == n, 1.0, np.minimum(1.0, 2.0 * special.bdtr(np.minimum(k, n - k), n, 0.5)))
    return p


def _row(x, popmean, alt, opts):
    x = x[~np.isnan(x)]
    n = x.shape[0]
    out = dict.fromkeys(_VARS, np.nan)
    out.update(n=n, n_positive=0, n_negative=0, wilcoxon_exact=False, wilcoxon_p_method="")
    if n == 0:
        return out, True
    d = x - popmean
    out.update(mean=float(x.mean()), median=float(np.median(x)),
               n_positive=int((d > 0).sum()), n_negative=int((d < 0).sum()))
    w = signed_rank(x, popmean, alt, correct=opts["correct"], exact=opts["exact"],
                    method=opts["wilcoxon_method"], conf_level=opts["conf_level"], conf_int=opts["conf_int"],
                    tol_root=opts["tol_root"])
    out.update(wilcoxon_W=w["V"], wilcoxon_p=w["p"], wilcoxon_exact=w["p_method"].startswith("exact"),
               wilcoxon_p_method=w["p_method"], hl_estimate=w["estimate"], hl_ci_low=w["ci_low"],
               hl_ci_high=w["ci_high"], hl_ci_level=w["ci_level"])
    return out, out["n_positive"] + out["n_negative"] == 0


def one_sample_tests(x, dim=None, popmean=0.0, alternative="two-sided", correction=None,
                     wilcoxon_method="r", *, correct=True, exact=None, conf_level=0.95, conf_int=True,
                     tol_root=1e-4):
    """t-test, Wilcoxon signed-rank test and sign test of ``x`` against ``popmean``, R's defaults.

    NaN values are dropped (``n`` counts what is left). ``alternative``
    "greater" means location above ``popmean``. Every interval is at
    ``conf_level``, two-sided or one-sided as the alternative (R's).

    - t-test = ``t.test(x, mu = popmean, alternative, conf.level)``:
      ``t = mean(x - popmean) / (sd / sqrt(n))`` (centred on ``popmean``
      first, so no digits are lost), ``n - 1`` df, ``ci_low``/``ci_high`` the
      t interval of the mean. Where R stops with "data are essentially
      constant" (``stderr < 10 eps max(|mean|, |popmean|)``; R 4.2 uses
      ``|mean|`` alone) or with fewer than 2 values, t, t_p and the interval are
      NaN with a ``DegenerateWarning``.
    - Wilcoxon signed-rank = ``wilcox.test(x, mu = popmean, alternative,
      exact = exact, correct = correct, conf.int = TRUE, conf.level,
      tol.root = tol_root)``: zeros dropped, average ranks of ``|x - popmean|``;
      ``wilcoxon_W`` is R's V (sum of the ranks of positive differences). With
      ``wilcoxon_method="r"`` (default) the p is exact (``psignrank``) when
      fewer than 50 nonzero differences (or ``exact=True``) and no ties or
      zeros, else the normal approximation with tie correction and, with
      ``correct=True`` (R's default), continuity correction.
      ``hl_estimate``/``hl_ci_low``/``hl_ci_high`` are the Hodges-Lehmann
      estimate and interval: from the Walsh averages when the p is exact, else
      R's asymptotic search (``uniroot`` with ``tol_root``, replicated step for
      step); ``hl_ci_level`` is the level achieved (R lowers it when the one
      asked for is not achievable). Other ``wilcoxon_method`` values keep the
      earlier rules: ``"auto"`` is scipy's ``wilcoxon(method="auto")`` (exact
      for n <= 50 without ties or zeros, exact sign flips of tied ranks for n
      <= 13, else normal; the default before R's, with ``correct=False``),
      ``"exact"`` the exact distribution of the sign flips of the (tied) ranks
      at any n, ``"asymptotic"`` the normal approximation (R's ``exact =
      FALSE``). ``wilcoxon_p_method`` records which was used per row.
    - sign test = ``binom.test(n_positive, n_positive + n_negative, 0.5,
      alternative, conf.level)``: p and the Clopper-Pearson interval
      (``sign_ci_low``/``sign_ci_high``) of P(value > popmean).

    Rows with no values, or no nonzero difference (Wilcoxon and sign test
    NaN), or a degenerate t-test are counted in one ``DegenerateWarning``.

    Parameters
    ----------
    x : xarray.DataArray or array_like
    dim : str or sequence of str or int, optional
        The sample dims (default: all dims; an int axis for arrays). The other
        dims are batch dims, one test per position.
    popmean : float
    alternative : {"two-sided", "greater", "less"}
    correction : bool, optional
        Old name of ``correct`` (wins when given).
    wilcoxon_method : {"r", "auto", "exact", "asymptotic"}
    correct : bool
        Continuity correction of the Wilcoxon normal approximation (R's ``correct``).
    exact : None, True or False
        R's ``exact`` for ``wilcoxon_method="r"`` (None: exact below 50 values).
    conf_level : float
    conf_int : bool
        Compute the Hodges-Lehmann estimate and interval (NaN when False).
    tol_root : float
        R's ``tol.root`` of the asymptotic interval search.

    Returns
    -------
    xarray.Dataset
        ``n``, ``mean``, ``median``, ``n_positive``, ``n_negative``, ``t``,
        ``t_df``, ``t_p``, ``ci_low``, ``ci_high``, ``wilcoxon_W``,
        ``wilcoxon_p``, ``wilcoxon_exact``, ``wilcoxon_p_method``,
        ``hl_estimate``, ``hl_ci_low``, ``hl_ci_high``, ``hl_ci_level``,
        ``sign_p``, ``sign_ci_low``, ``sign_ci_high`` over the batch dims.

    Examples
    --------
    >>> res = one_sample_tests(np.array([0.3, -0.1, 0.5, 0.7, 0.2, 0.4]))
    >>> int(res.n_positive), round(float(res.t_p), 4), round(float(res.wilcoxon_p), 4), round(float(res.sign_p), 4)
    (5, 0.0305, 0.0625, 0.2188)
    >>> round(float(res.hl_estimate), 2), float(res.hl_ci_low), float(res.hl_ci_high)   # R: 0.35, -0.1, 0.7
    (0.35, -0.1, 0.7)
    """
    alt = check_alternative(alternative)
    conf_level = check_conf_level(conf_level, "one_sample_tests")
    if wilcoxon_method not in WILCOXON_METHODS:
        raise ArgumentError(f"one_sample_tests: wilcoxon_method={wilcoxon_method!r} is not one of "
                            f"{', '.join(map(repr, WILCOXON_METHODS))}")
    if exact not in (None, True, False):
        raise ArgumentError(f"one_sample_tests: exact must be None, True or False, got {exact!r}")
    if not np.isfinite(popmean):
        raise ArgumentError(f"one_sample_tests: popmean must be a finite number, got {popmean!r}")
    correct = bool(correct if correction is None else correction)
    if isinstance(x, xr.DataArray):
        sample = list(x.dims) if dim is None else ([dim] if isinstance(dim, str) else list(dim))
        missing = [d for d in sample if d not in x.dims]
        if missing:
            raise ArgumentError(f"one_sample_tests: dims {missing} are not dims of x {x.dims}")
        batch = [d for d in x.dims if d not in sample]
        sample_dims = " ".join(map(str, sample))
        arr = x.transpose(*batch, *sample).values
        coords = {k: c for k, c in x.coords.items() if set(c.dims) <= set(batch)}
    else:
        arr = np.asarray(x, dtype=np.float64)
        sample_dims = "all" if dim is None else f"axis {dim}"
        if dim is None:
            arr = arr.reshape(1, -1)[0] if arr.ndim else arr.reshape(1)
            batch = []
        else:
            if not isinstance(dim, (int, np.integer)):
                raise ArgumentError(f"one_sample_tests: dim must be an int axis for arrays, got {dim!r}")
            arr = np.moveaxis(arr, dim, -1)
            batch = [f"dim_{i}" for i in range(arr.ndim - 1)]
        coords = None
    arr = np.asarray(arr, dtype=np.float64)
    if np.isinf(arr).any():
        raise ArgumentError("one_sample_tests: x contains inf; set such values to NaN to drop them")
    bshape = arr.shape[: len(batch)]
    rows = arr.reshape(int(np.prod(bshape, dtype=np.int64)), -1)
    results = {k: np.empty(rows.shape[0], dtype=t) for k, (_, t) in _VARS.items()}
    opts = dict(correct=correct, exact=exact, wilcoxon_method=wilcoxon_method, conf_level=conf_level,
                conf_int=bool(conf_int), tol_root=float(tol_root))
    bad = np.zeros(rows.shape[0], dtype=bool)
    for i, row in enumerate(rows):
        out, bad[i] = _row(row, float(popmean), alt, opts)
        for k in _VARS:
            results[k][i] = out[k]
    k, m = results["n_positive"], results["n_positive"] + results["n_negative"]
    results["sign_p"] = sign_test_p(k, m, alt)
    results["sign_ci_low"], results["sign_ci_high"] = clopper_pearson(k, m, alt, conf_level)
    tt, t_bad = t_rows(rows, None, float(popmean), alt, conf_level)
    results.update(t=tt["t"], t_df=tt["df"], t_p=tt["p"], ci_low=tt["ci_low"], ci_high=tt["ci_high"])
    warn_degenerate(int((bad | t_bad).sum()), "one_sample_tests",
                    "fewer than 2 values, essentially constant data (t-test), or no nonzero difference")
    ds = xr.Dataset({k: (batch, results[k].reshape(bshape), {"long_name": _VARS[k][0]}) for k in _VARS},
                    coords=coords)
    ds.attrs.update(test="one_sample", sample_dims=sample_dims, popmean=float(popmean),
                    alternative=alternative, conf_level=conf_level,
                    wilcoxon_correction=int(correct), wilcoxon_zero_method="wilcox",
                    wilcoxon_method=wilcoxon_method, wilcoxon_exact="NULL" if exact is None else str(exact).upper(),
                    t_rule="R t.test; NaN where R stops (fewer than 2 values, data essentially constant)",
                    wilcoxon_rule=("R wilcox.test(exact = NULL, correct = TRUE) when wilcoxon_method='r': exact "
                                   "below 50 nonzero values without ties or zeros, else normal"))
    return ds
