"""Multiple-testing adjustment over an explicit family: R's ``p.adjust`` (Holm,
Hochberg, Hommel, Bonferroni, Benjamini-Hochberg, Benjamini-Yekutieli), with
its ``n =`` argument to declare a larger family."""

import numpy as np
import xarray as xr

from .._kernels.multitest import adjust_sorted
from .. import defaults as D
from ..errors import ArgumentError

__all__ = ["bh_fdr", "p_adjust", "adjust_rows", "P_ADJUST_METHODS"]

#: method name -> (kernel code, R's name)
P_ADJUST_METHODS = {"bonferroni": (0, "bonferroni"), "holm": (1, "holm"), "hochberg": (2, "hochberg"),
                    "hommel": (3, "hommel"), "bh": (4, "BH"), "fdr": (4, "BH"), "by": (5, "BY"),
                    "none": (-1, "none")}


def _method(method, what):
    key = str(method).lower()
    if key not in P_ADJUST_METHODS:
        raise ArgumentError(f"{what}: method={method!r} is not supported; use one of "
                            f"{', '.join(sorted(set(v[1] for v in P_ADJUST_METHODS.values())))}")
    return key


def adjust_rows(p, method="bh", n=None):
    """Adjusted p-values of each row of ``p`` (rows = families), NaN left out.

    Equals R's ``p.adjust(row, method, n)`` for each row: NaN p-values come
    back NaN and do not count in the family size, which is the number of
    non-NaN values unless ``n`` (at least that many) declares a larger family
    (the untested members count as p = 1 for Hommel, as R). BH is
    ``q_(i) = min_{j >= i} min(1, n p_(j) / j)``; BY multiplies by
    ``sum_{i<=n} 1/i``.

    Examples
    --------
    >>> adjust_rows(np.array([[0.01, 0.04, np.nan, 0.03]])).round(4).tolist()
    [[0.03, 0.04, nan, 0.04]]
    >>> adjust_rows(np.array([[0.01, 0.04, 0.03]]), "holm", n=10).round(4).tolist()   # R: 0.1 0.32 0.27
    [[0.1, 0.32, 0.27]]
    """
    key = _method(method, "p_adjust")
    code = P_ADJUST_METHODS[key][0]
    p = np.ascontiguousarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    for row in range(p.shape[0]):
        pr = p[row]
        ok = np.flatnonzero(~np.isnan(pr))
        lp = ok.size
        size = lp if n is None else int(n)
        if size < lp:
            raise ArgumentError(f"p_adjust: n={n} is smaller than the {lp} non-NaN p-values of a family; "
                                f"n declares the family size and must be at least that")
        if size <= 1 or code < 0:
            out[row, ok] = pr[ok]
            continue
        c = code
        if size == 2 and c == 3:
            c = 2  # R: hommel with n = 2 is hochberg
        order = ok[np.argsort(pr[ok], kind="stable")]
        adj = np.empty(lp)
        by_sum = float(np.sum(1.0 / np.arange(1, size + 1))) if c == 5 else 1.0
        adjust_sorted(np.ascontiguousarray(pr[order]), c, size, by_sum, adj)
        out[row, order] = adj
    return out


def _family_array(p, dims, what):
    if isinstance(p, xr.DataArray):
        da = p
        if dims is None:
            fam = list(da.dims)
        else:
            fam = [dims] if isinstance(dims, str) else list(dims)
            missing = [d for d in fam if d not in da.dims]
            if missing:
                raise ArgumentError(f"{what}: dims {missing} are not dims of p {da.dims}; "
                                    f"name the dims that form one family")
        batch = [d for d in da.dims if d not in fam]
        arr = da.transpose(*batch, *fam).values
    else:
        if dims is not None:
            raise ArgumentError(f"{what}: dims= needs a DataArray; a NumPy array is one family")
        da = None
        arr = np.asarray(p)
        fam, batch = None, []
    arr = np.asarray(arr, dtype=np.float64)
    n_tests = int(arr.size - np.count_nonzero(np.isnan(arr)))
    if n_tests:
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if lo < 0 or hi > 1:
            raise ArgumentError(
                f"{what}: p-values must lie in [0, 1] (NaN allowed), found {lo if lo < 0 else hi!r}")
    return da, arr, fam, batch, n_tests


def _check_alpha(alpha, what):
    if isinstance(alpha, (bool, np.bool_)) or not (
            isinstance(alpha, (int, float, np.floating, np.integer)) and 0 < alpha < 1):
        raise ArgumentError(f"{what}: alpha must be a number in (0, 1), got {alpha!r}")


def _check_n(n, what):
    if n is None:
        return None
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ArgumentError(f"{what}: n must be a positive int (the declared family size) or None, got {n!r}")
    return int(n)


def _adjusted_dataset(p, alpha, dims, method, n, what, name):
    _check_alpha(alpha, what)
    n = _check_n(n, what)
    key = _method(method, what)
    da, arr, fam, batch, n_tests = _family_array(p, dims, what)
    n_batch = int(np.prod(arr.shape[:len(batch)], dtype=np.int64))
    q = adjust_rows(arr.reshape(n_batch, -1), key, n).reshape(arr.shape)
    with np.errstate(invalid="ignore"):
        reject = q <= alpha
    r_name = P_ADJUST_METHODS[key][1]
    attrs = dict(alpha=float(alpha), method=key if name == "q" else r_name, n_tests=n_tests,
                 family_size="non-NaN p-values of each family" if n is None else int(n),
                 reject_rule=f"{name} <= alpha", r_call=f"p.adjust(p, method = \"{r_name}\""
                 + ("" if n is None else f", n = {n}") + ")")
    if da is None:
        dims_ = tuple(f"dim_{i}" for i in range(q.ndim))
        ds = xr.Dataset({name: (dims_, q), "reject": (dims_, reject)})
        attrs["family"] = "all"
    else:
        order = [*batch, *fam]
        ds = xr.Dataset({name: (order, q), "reject": (order, reject)}, coords=da.coords)
        ds = ds.transpose(*da.dims)
        attrs["family"] = " ".join(map(str, fam))
    ds[name].attrs["long_name"] = f"{r_name} adjusted p-value"
    ds["reject"].attrs["long_name"] = f"{name} <= {alpha}"
    return ds, attrs


def p_adjust(p, method="BH", n=None, alpha=D.ALPHA, dims=None):
    """Adjusted p-values over an explicit family, as R's ``p.adjust(p, method, n)``.

    The family is all the ``dims`` given (default: every dim of ``p``); other
    dims index separate families. NaN p-values are left out and come back NaN.
    ``n`` declares the family size when it is larger than the p-values at hand
    (R's ``n =``; e.g. tests that were planned but not run), the same for every
    family. ``reject`` is ``p_adj <= alpha``.

    Parameters
    ----------
    p : xarray.DataArray or array_like
    method : {"holm", "hochberg", "hommel", "bonferroni", "BH", "BY", "fdr", "none"}
        R's names (case-insensitive); R's default is "holm", emostats' "BH".
    n : int, optional
    alpha : float
    dims : str or sequence of str, optional

    Returns
    -------
    xarray.Dataset
        ``p_adj`` and ``reject`` with the dims of ``p``; attrs ``method`` (R's
        name), ``family``, ``family_size``, ``n_tests``, ``r_call``.

    Examples
    --------
    >>> res = p_adjust(np.array([0.01, 0.02, 0.03, 0.04, 0.05]), "hommel")
    >>> res.p_adj.values.round(4).tolist()   # R: 0.05 0.05 0.05 0.05 0.05
    [0.05, 0.05, 0.05, 0.05, 0.05]
    """
    ds, attrs = _adjusted_dataset(p, alpha, dims, method, n, "p_adjust", "p_adj")
    ds.attrs.update(test="p_adjust", **attrs)
    return ds


def bh_fdr(p, alpha=D.ALPHA, dims=None, method="bh", n=None):
    """False discovery rate adjustment (Benjamini-Hochberg or Benjamini-Yekutieli).

    The family of tests is explicit: all the ``dims`` given (default: every dim
    of ``p``); the other dims index separate families. NaN p-values are left
    out of the family (they do not count in its size ``m``) and come back as
    NaN, as R's ``p.adjust`` does. On the non-NaN p-values ``q`` equals
    ``statsmodels.stats.multitest.multipletests(p, method="fdr_bh")[1]``
    (``"fdr_by"`` for ``method="by"``). The reject rule is ``q <= alpha``
    (the BH step-up rule at level alpha); NaN is never rejected.

    Parameters
    ----------
    p : xarray.DataArray or array_like
        p-values in [0, 1] (NaN allowed). A NumPy array is one family.
    alpha : float
        FDR level of ``reject``.
    dims : str or sequence of str, optional
        Dims that make up one family (DataArray only).
    method : {"bh", "by"}
        Benjamini-Hochberg (independent or positively dependent tests) or
        Benjamini-Yekutieli (any dependence).
    n : int, optional
        Declared family size (R's ``p.adjust(n = )``), when larger than the
        number of non-NaN p-values of each family.

    Returns
    -------
    xarray.Dataset
        ``q`` and ``reject`` with the dims of ``p``; attrs ``alpha``,
        ``method``, ``family`` and ``n_tests`` (non-NaN p-values in all families).

    Examples
    --------
    >>> res = bh_fdr(np.array([0.01, 0.04, 0.03, 0.5]))
    >>> res.q.values.round(4).tolist(), res.reject.values.tolist()
    ([0.04, 0.0533, 0.0533, 0.5], [True, False, False, False])
    """
    if str(method).lower() not in ("bh", "by"):
        raise ArgumentError(f"bh_fdr: method={method!r} is not supported; use 'bh' or 'by' (p_adjust has the others)")
    ds, attrs = _adjusted_dataset(p, alpha, dims, str(method).lower(), n, "bh_fdr", "q")
    name = "Benjamini-Hochberg" if str(method).lower() == "bh" else "Benjamini-Yekutieli"
    ds["q"].attrs["long_name"] = f"{name} adjusted p-value (q)"
    ds.attrs.update(test="fdr", **attrs)
    return ds
