"""Batched Pearson, Spearman and Kendall correlations with NaN dropped pairwise,
with R's ``cor.test`` p-values and intervals by default."""

import numpy as np
import xarray as xr

from ..errors import ArgumentError
from ._common import check_alternative, check_conf_level, check_seed, warn_degenerate
from ._correlation_core import CI_METHODS, correlation_core, r_pvalue

__all__ = ["spearman", "pearson", "kendall", "r_pvalue"]

_NAMES = {"spearman": "rho", "pearson": "r", "kendall": "tau"}
_LONG = {"spearman": "Spearman rank correlation", "pearson": "Pearson correlation",
         "kendall": "Kendall rank correlation tau-b"}
_STAT = {"spearman": "S = (n^3 - n)(1 - rho)/6", "pearson": "t = sqrt(n-2) r / sqrt(1 - r^2)",
         "kendall": "T (concordant pairs) when exact, else z"}
_PTEXT = {
    "spearman": "R cor.test(method='spearman', exact=NULL): prho exact enumeration for n <= 9 "
                "('exact'), AS 89 Edgeworth series for 10 <= n <= 1290 ('edgeworth'), both only "
                "without ties; else the t approximation ('t')",
    "kendall": "R cor.test(method='kendall', exact=NULL): exact (ckendall) when n < 50 and no ties "
               "('exact'), else the normal approximation with tie-corrected variance ('normal')",
    "pearson": "t test on n - 2 df (R cor.test(method='pearson'))",
}


def _as_dataarrays(x, y, dim, method):
    if isinstance(x, xr.DataArray) or isinstance(y, xr.DataArray):
        if not (isinstance(x, xr.DataArray) and isinstance(y, xr.DataArray)):
            raise ArgumentError(f"{method}: pass x and y both as DataArrays or both as arrays")
        if dim is None:
            if x.ndim == 1 and y.dims == x.dims:
                dim = x.dims[0]
            else:
                raise ArgumentError(
                    f"{method}: x has dims {x.dims} and y {y.dims}; pass dim= to say which dim pairs them")
        if dim not in x.dims or dim not in y.dims:
            raise ArgumentError(f"{method}: dim {dim!r} must be a dim of x {x.dims} and of y {y.dims}")
        try:
            x, y = xr.align(x, y, join="exact")
        except ValueError as err:
            raise ArgumentError(
                f"{method}: the coordinates of x and y differ ({str(err).splitlines()[0]}); "
                f"select matching labels first") from None
        return x, y, dim
    xn, yn = np.asarray(x), np.asarray(y)
    if xn.ndim == 0 or yn.ndim == 0:
        raise ArgumentError(f"{method}: x and y must have at least one dim, got scalars")
    nd = max(xn.ndim, yn.ndim)
    dims = tuple(f"dim_{i}" for i in range(nd - 1)) + ("obs",)
    return xr.DataArray(xn, dims=dims[nd - xn.ndim:]), xr.DataArray(yn, dims=dims[nd - yn.ndim:]), "obs"


def _correlation(x, y, dim, method, opts):
    alternative = opts.pop("alternative")
    opts["alt"] = check_alternative(alternative)
    opts["conf_level"] = check_conf_level(opts["conf_level"], method)
    if opts["pmethod"] not in ("auto", "t"):
        raise ArgumentError(f"{method}: method={opts['pmethod']!r} is not supported; use 'auto' "
                            f"(R's cor.test rule) or 't' (t approximation at every n)")
    if opts["exact"] not in (None, True, False):
        raise ArgumentError(f"{method}: exact must be None, True or False, got {opts['exact']!r}")
    perm = opts["permutation"]
    if perm not in (False, None):
        opts["seed"] = check_seed(opts["seed"])
    xa, ya, dim = _as_dataarrays(x, y, dim, method)
    if xa.chunks is not None or ya.chunks is not None:
        xa = xa.chunk({dim: -1})
        ya = ya.chunk({dim: -1})
    counts = []
    keys = ("r", "p", "n", "statistic", "p_method", "exact", "ci_low", "ci_high")

    def func(a, b):
        out, nbad = correlation_core(a, b, method, opts)
        counts.append(nbad)
        return tuple(out[k] for k in keys)

    res = xr.apply_ufunc(
        func, xa, ya, input_core_dims=[[dim], [dim]], output_core_dims=[[]] * len(keys),
        dask="parallelized",
        output_dtypes=[np.float64, np.float64, np.int64, np.float64, "<U17", bool, np.float64, np.float64],
    )
    res = dict(zip(keys, res))
    warn_degenerate(sum(counts), method, "fewer than 3 complete pairs or a constant side")
    name = _NAMES[method]
    level = opts["conf_level"]
    if perm not in (False, None):
        ptext = "permutation (exact enumeration when n! <= permutation)"
    elif method != "pearson" and opts["pmethod"] == "t":
        ptext = "t approximation at every n (scipy)"
    else:
        ptext = _PTEXT[method]
    ds = xr.Dataset({
        name: res["r"].assign_attrs(long_name=_LONG[method]),
        "p": res["p"].assign_attrs(long_name=f"p-value ({alternative})"),
        "n": res["n"].assign_attrs(long_name="complete pairs used"),
        "statistic": res["statistic"].assign_attrs(long_name=_STAT[method]),
        "p_method": res["p_method"].assign_attrs(long_name="how this row's p was computed"),
        "ci_low": res["ci_low"].assign_attrs(long_name=f"{level:g} confidence interval, lower ({CI_METHODS[method]})"),
        "ci_high": res["ci_high"].assign_attrs(long_name=f"{level:g} confidence interval, upper ({CI_METHODS[method]})"),
    })
    if perm not in (False, None):
        ds["exact"] = res["exact"].assign_attrs(long_name="p from all n! permutations")
    ds.attrs.update(test=method, dim=dim, alternative=alternative, p_rule=ptext,
                    method=opts["pmethod"], exact="NULL" if opts["exact"] is None else str(bool(opts["exact"])).upper(),
                    continuity=int(bool(opts["continuity"])), conf_level=level, ci_method=CI_METHODS[method],
                    permutation=0 if perm in (False, None) else int(perm),
                    seed=-1 if perm in (False, None) else opts["seed"])
    return ds


def spearman(x, y, dim=None, permutation=False, alternative="two-sided", seed=0, threads=None, *,
             method="auto", exact=None, continuity=False, conf_level=0.95):
    """Spearman rank correlation of ``x`` and ``y`` paired along ``dim``, batched over all other dims.

    Values are ranked with average ranks for ties, then correlated (Pearson of
    ranks; equals ``scipy.stats.spearmanr``). Pairs with NaN on either side are
    dropped row by row and ``n`` reports how many pairs were used.

    The p-value is R's by default: it equals
    ``cor.test(x, y, method = "spearman", alternative = alternative, exact = NULL,
    continuity = FALSE)$p.value``. That is, without ties and for n <= 1290,
    R's ``prho`` (Algorithm AS 89): exact over all n! orderings for n <= 9
    (``p_method = "exact"``), the Edgeworth series for 10 <= n <= 1290
    (``"edgeworth"``); with ties or for n > 1290 the t approximation
    ``t = rho sqrt((n - 2) / (1 - rho^2))`` on n - 2 df (``"t"``).
    ``method="t"`` gives the t approximation at every n (scipy's ``spearmanr``
    p; the behaviour before R's rule became the default). ``exact=False`` is
    R's ``exact = FALSE`` (t approximation; ``continuity=True`` is R's
    continuity correction of it). ``permutation=N`` gives a permutation p
    instead: all n! orderings when ``n! <= N`` (``p = #{|r*| >= |r|} / n!``
    two-sided), else ``(1 + #{r* >= r}) / (1 + N)`` from N random orderings
    (one stream per row keyed by ``seed`` and the row's data).

    The interval ``ci_low``/``ci_high`` is a Fisher-z interval with the
    Bonett & Wright (2000) standard error ``sqrt((1 + rho^2 / 2) / (n - 3))``,
    which keeps its coverage for large rho (Pearson's ``1 / sqrt(n - 3)``
    undercovers Spearman's rho); one-sided for one-sided alternatives, as R's
    Pearson interval. R's ``cor.test`` gives no Spearman interval.

    Rows with fewer than 3 pairs, or a constant side, are NaN with a
    ``DegenerateWarning`` (R computes n = 2; emostats does not).

    Parameters
    ----------
    x, y : xarray.DataArray or array_like
        DataArrays are aligned exactly and broadcast; arrays pair along their
        last axis and broadcast over the leading ones.
    dim : str, optional
        The paired dim (required unless x and y are 1-D over the same dim).
    alternative : {"two-sided", "greater", "less"}
    method : {"auto", "t"}
        "auto": R's rule above; "t": the t approximation at every n.
    exact : None, True or False
        R's ``exact`` (None = R's NULL, which for Spearman means TRUE).
    continuity : bool
        R's ``continuity`` (t approximation only).
    conf_level : float
        Coverage of the interval, in (0, 1).
    permutation : False or int
        Number of permutations of a permutation p (False: not used).
    seed : int
        Seed of the random permutations.
    threads : int, optional
        Threads (results do not depend on it).

    Returns
    -------
    xarray.Dataset
        ``rho``, ``p``, ``n``, ``statistic`` (R's S), ``p_method``, ``ci_low``,
        ``ci_high`` (and ``exact`` with ``permutation``) over the batch dims;
        attrs hold the parameters and the rule.

    Examples
    --------
    >>> import numpy as np
    >>> res = spearman(np.array([1.0, 2, 3, 4, 5]), np.array([5.0, 6, 7, 8, 9]))
    >>> float(res.rho), round(float(res.p), 4), str(res.p_method.values)   # R: 0.01667
    (1.0, 0.0167, 'exact')
    """
    return _correlation(x, y, dim, "spearman", dict(
        alternative=alternative, pmethod=method, exact=exact, continuity=continuity, conf_level=conf_level,
        permutation=permutation, seed=seed, threads=threads))


def kendall(x, y, dim=None, alternative="two-sided", threads=None, *, exact=None, continuity=False,
            conf_level=0.95):
    """Kendall's tau-b of ``x`` and ``y`` paired along ``dim``, batched over all other dims.

    ``tau = S / sqrt((n0 - n1)(n0 - n2))`` with ``S`` the number of concordant
    minus discordant pairs, ``n0 = n(n-1)/2`` and ``n1``, ``n2`` the pairs tied
    in x and in y (R's ``cor(method = "kendall")``, scipy's ``kendalltau``).
    NaN pairs are dropped row by row.

    The p-value equals ``cor.test(x, y, method = "kendall", alternative =
    alternative, exact = exact, continuity = continuity)$p.value``: with
    ``exact=None`` (R's NULL) exact when n < 50 and there are no ties (R's
    ``ckendall`` recursion; ``p_method = "exact"``, ``statistic`` = T, the
    number of concordant pairs), else the normal approximation of S with R's
    tie-corrected variance (``"normal"``, ``statistic`` = z; ``continuity=True``
    uses ``|S| - 1``). The interval is Fisher-z with the Fieller, Hartley &
    Pearson (1957) standard error ``sqrt(0.437 / (n - 4))``.

    Rows with fewer than 3 pairs, or a constant side, are NaN with a
    ``DegenerateWarning``.

    Parameters
    ----------
    x, y : xarray.DataArray or array_like
    dim : str, optional
    alternative : {"two-sided", "greater", "less"}
    exact : None, True or False
        R's ``exact``; True still uses the normal approximation with ties (as R).
    continuity : bool
    conf_level : float
    threads : int, optional

    Returns
    -------
    xarray.Dataset
        ``tau``, ``p``, ``n``, ``statistic``, ``p_method``, ``ci_low``, ``ci_high``.

    Examples
    --------
    >>> import numpy as np
    >>> res = kendall(np.array([1.0, 2, 3, 4, 5]), np.array([2.0, 1, 4, 3, 5]))
    >>> round(float(res.tau), 4), round(float(res.p), 4)   # R: 0.6, 0.2333
    (0.6, 0.2333)
    """
    return _correlation(x, y, dim, "kendall", dict(
        alternative=alternative, pmethod="auto", exact=exact, continuity=continuity, conf_level=conf_level,
        permutation=False, seed=0, threads=threads))


def pearson(x, y, dim=None, permutation=False, alternative="two-sided", seed=0, threads=None, *,
            conf_level=0.95):
    """Pearson correlation of ``x`` and ``y`` paired along ``dim``, batched over all other dims.

    Computed with two passes (means first) in float64; NaN pairs dropped row by
    row. The p-value is the t test on n - 2 df and the interval the Fisher-z
    interval with standard error ``1 / sqrt(n - 3)``, one-sided for one-sided
    alternatives: both equal ``cor.test(x, y, method = "pearson", alternative
    = alternative, conf.level = conf_level)`` (and ``scipy.stats.pearsonr``).
    ``permutation=N`` gives a permutation p as in :func:`spearman`.

    Parameters
    ----------
    x, y : xarray.DataArray or array_like
    dim : str, optional
    alternative : {"two-sided", "greater", "less"}
    conf_level : float
    permutation : False or int
    seed : int
    threads : int, optional

    Returns
    -------
    xarray.Dataset
        ``r``, ``p``, ``n``, ``statistic`` (t), ``p_method``, ``ci_low``, ``ci_high``.

    Examples
    --------
    >>> import numpy as np
    >>> res = pearson(np.array([1.0, 2, 3, 4, 5]), np.array([5.0, 6, 7, 8, 7]))
    >>> round(float(res.r), 4), int(res.n)
    (0.8321, 5)
    """
    return _correlation(x, y, dim, "pearson", dict(
        alternative=alternative, pmethod="auto", exact=None, continuity=False, conf_level=conf_level,
        permutation=permutation, seed=seed, threads=threads))
