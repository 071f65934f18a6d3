"""Benjamini-Hochberg (and Benjamini-Yekutieli) false discovery rate over an explicit family."""

import numpy as np
import xarray as xr

from .._kernels.multitest import step_up
from ..errors import EmostatsError

__all__ = ["bh_fdr", "adjust_rows"]


def adjust_rows(p, method="bh"):
    """BH/BY adjusted p-values of each row of ``p`` (rows = families), NaN left out.

    ``q_(i) = min_{j >= i} min(1, c * m * p_(j) / j)`` over the ``m`` non-NaN
    p-values of the row sorted ascending, with ``c = 1`` (BH) or
    ``c = sum_{i<=m} 1/i`` (BY); NaN p-values get NaN and do not count in ``m``
    (as R's ``p.adjust``).

    Examples
    --------
    >>> adjust_rows(np.array([[0.01, 0.04, np.nan, 0.03]])).round(4).tolist()
    [[0.03, 0.04, nan, 0.04]]
    """
    p = np.ascontiguousarray(p, dtype=np.float64)
    out = np.empty_like(p)
    for row in range(p.shape[0]):
        pr = p[row]
        m = int(pr.size - np.count_nonzero(np.isnan(pr)))
        factor = float(np.sum(1.0 / np.arange(1, m + 1))) if method == "by" and m else 1.0
        step_up(pr, np.argsort(pr), m, factor, out[row])
    return out


def bh_fdr(p, alpha=0.05, dims=None, method="bh"):
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
    if method not in ("bh", "by"):
        raise EmostatsError(f"bh_fdr: method={method!r} is not supported; use 'bh' or 'by'")
    if not (isinstance(alpha, (int, float, np.floating, np.integer)) and 0 < alpha < 1):
        raise EmostatsError(f"bh_fdr: alpha must be a number in (0, 1), got {alpha!r}")
    if isinstance(p, xr.DataArray):
        da = p
        if dims is None:
            fam = list(da.dims)
        else:
            fam = [dims] if isinstance(dims, str) else list(dims)
            missing = [d for d in fam if d not in da.dims]
            if missing:
                raise EmostatsError(f"bh_fdr: dims {missing} are not dims of p {da.dims}; "
                                    f"name the dims that form one family")
        batch = [d for d in da.dims if d not in fam]
        arr = da.transpose(*batch, *fam).values
    else:
        if dims is not None:
            raise EmostatsError("bh_fdr: dims= needs a DataArray; a NumPy array is one family")
        da = None
        arr = np.asarray(p)
        fam, batch = None, []
    arr = np.asarray(arr, dtype=np.float64)
    n_tests = int(arr.size - np.count_nonzero(np.isnan(arr)))
    if n_tests:
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if lo < 0 or hi > 1:
            raise EmostatsError(
                f"bh_fdr: p-values must lie in [0, 1] (NaN allowed), found {lo if lo < 0 else hi!r}")
    n_batch = int(np.prod(arr.shape[:len(batch)], dtype=np.int64))
    q = adjust_rows(arr.reshape(n_batch, -1), method).reshape(arr.shape)
    with np.errstate(invalid="ignore"):
        reject = q <= alpha
    attrs = dict(alpha=float(alpha), method=method, n_tests=n_tests,
                 reject_rule="q <= alpha")
    if da is None:
        ds = xr.Dataset({"q": (tuple(f"dim_{i}" for i in range(q.ndim)), q),
                         "reject": (tuple(f"dim_{i}" for i in range(q.ndim)), reject)})
        attrs["family"] = "all"
    else:
        order = [*batch, *fam]
        ds = xr.Dataset({"q": (order, q), "reject": (order, reject)}, coords=da.coords)
        ds = ds.transpose(*da.dims)
        attrs["family"] = " ".join(map(str, fam))
    name = "Benjamini-Hochberg" if method == "bh" else "Benjamini-Yekutieli"
    ds["q"].attrs["long_name"] = f"{name} adjusted p-value (q)"
    ds["reject"].attrs["long_name"] = f"q <= {alpha}"
    ds.attrs.update(test="fdr", **attrs)
    return ds
