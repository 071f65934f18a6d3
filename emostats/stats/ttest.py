"""Student's and Welch's t-tests, batched over rows, with R's ``t.test`` conventions."""

import numpy as np
import xarray as xr
from scipy import special

from ..errors import ArgumentError
from ._common import check_alternative, check_conf_level, warn_degenerate

__all__ = ["t_test", "t_rows", "EPS_CONSTANT"]

#: R's "data are essentially constant" rule: stderr < EPS_CONSTANT * max(|mean|, |mu|)
EPS_CONSTANT = 10 * np.finfo(np.float64).eps


def _moments(a):
    """n, mean and var (ddof=1, two passes) of each row of ``a`` ignoring NaN."""
    ok = ~np.isnan(a)
    n = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(ok, a, 0.0).sum(axis=-1) / n
        dev = np.where(ok, a - m[..., None], 0.0)
        m = m + dev.sum(axis=-1) / n  # second pass corrects the mean's rounding (as R's mean)
        dev = np.where(ok, a - m[..., None], 0.0)
        v = (dev * dev).sum(axis=-1) / (n - 1)
    return n, m, v


def _finish(t, df, se, centre, alt, conf_level):
    """p and the interval ``centre + (t -/+ q) * se`` (R: ``mu + cint * stderr``)."""
    with np.errstate(invalid="ignore"):
        if alt == 1:  # less
            p = special.stdtr(df, t)
            q = special.stdtrit(df, conf_level)
            lo, hi = np.full(t.shape, -np.inf), centre + (t + q) * se
        elif alt == 0:  # greater
            p = special.stdtr(df, -t)
            q = special.stdtrit(df, conf_level)
            lo, hi = centre + (t - q) * se, np.full(t.shape, np.inf)
        else:
            p = 2.0 * special.stdtr(df, -np.abs(t))
            q = special.stdtrit(df, 1.0 - (1.0 - conf_level) / 2.0)
            lo, hi = centre + (t - q) * se, centre + (t + q) * se
    return p, lo, hi


def t_rows(x, y=None, mu=0.0, alt=2, conf_level=0.95, var_equal=False):
    """t-test of each row of ``x`` (and of ``y``: two samples), NaN dropped.

    One sample: the values are centred on ``mu`` first, so
    ``t = mean(x - mu) / (sd / sqrt(n))`` keeps its digits when the mean is
    large and close to ``mu``. Two samples: both are centred on the mean of x
    before their means are differenced. A row is degenerate (NaN) with fewer
    than 2 values (Welch: per sample; Student: fewer than 3 in all) or when
    ``stderr < 10 eps max(|mean x|, |mu|)`` (one sample) or ``10 eps
    max(|mean x|, |mean y|)`` (two samples): R's "data are essentially
    constant". Returns a dict of arrays (``t``, ``df``, ``p``, ``ci_low``,
    ``ci_high``, ``stderr``, ``estimate``, ``mean_x``, ``mean_y``, ``n_x``,
    ``n_y``) and a mask of degenerate rows.
    """
    x = np.asarray(x, dtype=np.float64)
    nx, mx, _ = _moments(x)
    if y is None:
        nd, md, vd = _moments(x - mu)
        with np.errstate(invalid="ignore", divide="ignore"):
            se = np.sqrt(vd / nd)
            df = (nd - 1).astype(np.float64)
            bad = (nd < 2) | ~(se >= EPS_CONSTANT * np.maximum(np.abs(mx), abs(mu))) | (se == 0)
            t = md / se
        centre = np.full(t.shape, float(mu))
        est = mx
        my = np.full(mx.shape, np.nan)
        ny = np.zeros(nx.shape, dtype=np.int64)
    else:
        y = np.asarray(y, dtype=np.float64)
        ny, my, _ = _moments(y)
        shift = np.where(np.isfinite(mx), mx, 0.0)[..., None]
        _, mxc, vx = _moments(x - shift)
        _, myc, vy = _moments(y - shift)
        with np.errstate(invalid="ignore", divide="ignore"):
            if var_equal:
                df = (nx + ny - 2).astype(np.float64)
                v = np.where(nx > 1, (nx - 1) * vx, 0.0) + np.where(ny > 1, (ny - 1) * vy, 0.0)
                v = v / df
                se = np.sqrt(v * (1.0 / nx + 1.0 / ny))
                few = (nx < 1) | (ny < 1) | (nx + ny < 3)
            else:
                sx = np.sqrt(vx / nx)
                sy = np.sqrt(vy / ny)
                se = np.sqrt(sx ** 2 + sy ** 2)
                df = se ** 4 / (sx ** 4 / (nx - 1) + sy ** 4 / (ny - 1))
                few = (nx < 2) | (ny < 2)
            bad = few | ~(se >= EPS_CONSTANT * np.maximum(np.abs(mx), np.abs(my))) | (se == 0)
            t = (mxc - myc - mu) / se
        centre = np.full(t.shape, float(mu))
        est = mx - my
    p, lo, hi = _finish(t, df, se, centre, alt, conf_level)
    out = dict(t=t, df=df, p=p, ci_low=lo, ci_high=hi, stderr=se, estimate=est, mean_x=mx, mean_y=my,
               n_x=nx.astype(np.int64), n_y=ny.astype(np.int64))
    shape = np.broadcast_shapes(*(np.shape(v) for v in out.values()), np.shape(bad))
    out = {k: np.array(np.broadcast_to(v, shape)) for k, v in out.items()}
    bad = np.broadcast_to(bad, shape)
    for k in ("t", "df", "p", "ci_low", "ci_high"):
        out[k] = np.where(bad, np.nan, out[k])
    return out, bad


_VARS = {
    "t": "t statistic", "df": "degrees of freedom", "p": "p-value", "ci_low": "confidence interval, lower",
    "ci_high": "confidence interval, upper", "stderr": "standard error of the estimate",
    "estimate": "mean of x (one sample) or mean of x - mean of y", "mean_x": "mean of x", "mean_y": "mean of y",
    "n_x": "values of x used (NaN dropped)", "n_y": "values of y used (NaN dropped)",
}


def _to_rows(a, dim, name):
    if isinstance(a, xr.DataArray):
        if dim is None:
            if a.ndim != 1:
                raise ArgumentError(f"t_test: {name} has dims {a.dims}; pass dim= to name the sample dim")
            dim = a.dims[0]
        if dim not in a.dims:
            raise ArgumentError(f"t_test: dim {dim!r} is not a dim of {name} {a.dims}")
        return a.rename({dim: f"_sample_{name}"}), dim
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0:
        raise ArgumentError(f"t_test: {name} must have at least one dim, got a scalar")
    dims = tuple(f"dim_{i}" for i in range(arr.ndim - 1)) + (f"_sample_{name}",)
    return xr.DataArray(arr, dims=dims), "obs"


def t_test(x, y=None, dim=None, mu=0.0, alternative="two-sided", paired=False, var_equal=False,
           conf_level=0.95):
    """One-sample, paired, Welch or Student t-test, batched over every dim but the sample dim.

    Equals R's ``t.test(x, y, alternative, mu, paired, var.equal, conf.level)``:
    with ``y=None`` the one-sample test of mean ``mu``; ``paired=True`` the
    one-sample test of ``x - y``; else Welch's test (``var_equal=False``,
    Welch-Satterthwaite df, R's default) or Student's pooled-variance test
    (``var_equal=True``) of ``mean(x) - mean(y) = mu``. The interval is
    two-sided at ``conf_level`` or one-sided (``[lo, inf)`` for "greater",
    ``(-inf, hi]`` for "less"), as R's. NaN values are dropped per sample
    (pairwise when paired).

    Where R stops with "data are essentially constant" (standard error below
    ``10 eps`` times the largest absolute mean; for one sample the largest of
    ``|mean|`` and ``|mu|``) or with too few values, the row is NaN with a
    ``DegenerateWarning``. Values are centred (on ``mu``, or on the mean of x)
    before the means are taken, so large offsets lose no digits.

    Parameters
    ----------
    x, y : xarray.DataArray or array_like
        Arrays: the sample is the last axis, leading axes are batch axes
        (broadcast between x and y). DataArrays: the sample dim is ``dim``
        (its length may differ between x and y unless paired).
    dim : str, optional
    mu : float
    alternative : {"two-sided", "greater", "less"}
    paired, var_equal : bool
    conf_level : float

    Returns
    -------
    xarray.Dataset
        ``t``, ``df``, ``p``, ``ci_low``, ``ci_high``, ``stderr``, ``estimate``,
        ``mean_x``, ``mean_y``, ``n_x``, ``n_y``; attrs ``test_name`` (R's
        method string), ``alternative``, ``mu``, ``conf_level``.

    Examples
    --------
    >>> import numpy as np
    >>> res = t_test(np.array([5.1, 4.9, 5.6, 5.8, 6.0]), np.array([4.1, 4.4, 4.0, 4.8]))
    >>> round(float(res.t), 4), round(float(res.df), 3), round(float(res.p), 5)   # R: 4.1981, 6.9999, 0.004045
    (4.1981, 7.0, 0.00404)
    """
    alt = check_alternative(alternative)
    conf_level = check_conf_level(conf_level, "t_test")
    if not np.isfinite(mu):
        raise ArgumentError(f"t_test: mu must be a finite number, got {mu!r}")
    if paired and y is None:
        raise ArgumentError("t_test: paired=True needs y")
    xa, sdim = _to_rows(x, dim, "x")
    if y is not None:
        if isinstance(x, xr.DataArray) != isinstance(y, xr.DataArray):
            raise ArgumentError("t_test: pass x and y both as DataArrays or both as arrays")
        ya, _ = _to_rows(y, dim, "y")
        if paired:
            ya = ya.rename({"_sample_y": "_sample_x"})
            xa, ya = xr.align(xa, ya, join="exact")
            diff = xa - ya
            xa, ya = diff, None
    else:
        ya = None
    for a in (xa, ya):
        if a is not None and np.isinf(np.asarray(a)).any():
            raise ArgumentError("t_test: x or y contains inf; set such values to NaN to drop them")
    if ya is None:
        res = xr.apply_ufunc(lambda a: _wrap(a, None, mu, alt, conf_level, var_equal), xa,
                             input_core_dims=[["_sample_x"]], output_core_dims=[[]] * 12)
    else:
        res = xr.apply_ufunc(lambda a, b: _wrap(a, b, mu, alt, conf_level, var_equal), xa, ya,
                             input_core_dims=[["_sample_x"], ["_sample_y"]], output_core_dims=[[]] * 12)
    *vals, bad = res
    warn_degenerate(int(np.asarray(bad).sum()), "t_test", "too few values or the data are essentially constant")
    ds = xr.Dataset({k: v.assign_attrs(long_name=_VARS[k]) for k, v in zip(_VARS, vals)})
    name = ("Paired t-test" if paired else "One Sample t-test") if y is None or paired else \
        ("Two Sample t-test" if var_equal else "Welch Two Sample t-test")
    ds.attrs.update(test="t_test", test_name=name, sample_dim=str(sdim), alternative=alternative,
                    mu=float(mu), conf_level=conf_level, var_equal=int(bool(var_equal)), paired=int(bool(paired)))
    return ds


def _wrap(a, b, mu, alt, conf_level, var_equal):
    out, bad = t_rows(a, b, mu, alt, conf_level, var_equal)
    return (*[out[k] for k in _VARS], bad)
