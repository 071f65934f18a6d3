"""NaN-aware reductions that stay silent where NaN is expected.

NumPy's ``nanmean`` and ``nanmedian`` warn ("Mean of empty slice", "All-NaN
slice encountered") when a slice holds no value at all. In emostats an all-NaN
slice is an expected outcome (a probe NaN on every token, a statistic undefined
for every replicate), which the analyses report in their own one-line warning
naming the group and how many values; the raw NumPy warning would only repeat it
without saying where. These give the same numbers as NumPy's and NaN for an
empty slice, without a warning.
"""

import numpy as np

__all__ = ["nanmean", "nanmedian"]


def nanmean(x, axis=None):
    """Mean over ``axis`` ignoring NaN; NaN (no warning) where a slice has no value.

    The same arithmetic as :func:`numpy.nanmean` (NaN replaced by 0, summed, divided
    by the count), so the numbers are identical.

    Examples
    --------
    >>> nanmean(np.array([[1.0, np.nan], [np.nan, np.nan]]), axis=1)
    array([ 1., nan])
    """
    x = np.asanyarray(x)
    if x.dtype.kind not in "fc":
        return np.mean(x, axis=axis)
    missing = np.isnan(x)
    count = (~missing).sum(axis=axis)
    total = np.where(missing, 0, x).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.true_divide(total, count, dtype=total.dtype)
    return np.where(count > 0, mean, np.nan)[()]


def nanmedian(x, axis=None):
    """Median over ``axis`` ignoring NaN; NaN (no warning) where a slice has no value.

    Examples
    --------
    >>> nanmedian(np.array([[1.0, 3.0, np.nan], [np.nan, np.nan, np.nan]]), axis=1)
    array([ 2., nan])
    """
    x = np.asanyarray(x)
    x = x if x.dtype.kind == "f" else x.astype(np.float64)
    if axis is None:
        x, axis = x.reshape(-1), 0
    moved = np.moveaxis(x, axis, -1)
    flat = moved.reshape(int(np.prod(moved.shape[:-1])), moved.shape[-1])
    out = np.full(flat.shape[0], np.nan, dtype=x.dtype)
    some = (~np.isnan(flat)).any(axis=1)
    if some.any():
        out[some] = np.nanmedian(flat[some], axis=1)
    return out.reshape(moved.shape[:-1])[()]
