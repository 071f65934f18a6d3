"""Variance matching (SPEC.md section 2, analysis 5; the study's Figures 4, 5, 7 and 10).

For each target (a probe, a PC, an SAE feature) take the ``n`` candidates
(random directions, other features) nearest in variance explained, and
subtract the median (or mean) of their values (persistence) from the target's
value: the *residual*, the part of the target's persistence that its variance
does not explain.

Rules, all deterministic:

- distance = ``|variance_c - variance_t|`` in float64; the ``n`` nearest are
  taken in order of distance, ties broken by the lower candidate index;
- when ``candidate_values`` is None the targets are their own candidates and
  a target is never matched with itself;
- candidates whose value or variance is NaN are left out of the pool; a
  target whose value or variance is NaN gets a NaN residual, index ``-1`` and
  NaN matched values (it is still counted in ``n_targets``, not in the tests).
"""

import numpy as np
import xarray as xr

from .._kernels._config import n_threads as _n_threads
from .._kernels.matching import nearest_values
from ..errors import EmostatsError
from ..stats import one_sample_tests

__all__ = ["variance_matched", "nearest_by_variance"]

_STATS = {"median": np.median, "mean": np.mean}


def _vector(x, name):
    """1-D float64 values, the dim name and its coordinate (if any)."""
    if isinstance(x, xr.DataArray):
        if x.ndim != 1:
            raise EmostatsError(f"variance_matched: {name} must be 1-D, got dims {x.dims}")
        dim = x.dims[0]
        coord = x[dim].values if dim in x.coords else None
        return np.asarray(x.values, dtype=np.float64), dim, coord
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise EmostatsError(f"variance_matched: {name} must be 1-D, got shape {arr.shape}")
    return arr, None, None


def _paired(values, variance, what):
    """Reorder ``variance`` to the coordinate order of ``values`` when both are labelled DataArrays."""
    if isinstance(values, xr.DataArray) and isinstance(variance, xr.DataArray) and values.ndim == variance.ndim == 1:
        dim = values.dims[0]
        if variance.dims[0] == dim and dim in values.coords and dim in variance.coords:
            a, b = values[dim].values, variance[dim].values
            if a.shape != b.shape or not np.array_equal(a, b):
                if a.shape != b.shape or set(a.tolist()) != set(b.tolist()):
                    raise EmostatsError(f"variance_matched: {what} values and variance have different '{dim}' "
                                        f"labels; pass them for the same {dim}s")
                variance = variance.sel({dim: a})
    return variance


def nearest_by_variance(variance, candidate_variance=None, n=20, valid=None, threads=None):
    """Indices (target, n) of the ``n`` candidates nearest in variance, nearest first.

    NumPy core of :func:`variance_matched`; see the module docstring for the
    rules. ``valid`` masks candidates that may be matched (default: finite
    variance). ``-1`` rows for NaN targets.

    Examples
    --------
    >>> nearest_by_variance(np.array([0.1, 0.5]), np.array([0.0, 0.2, 0.4, 0.6]), n=2).tolist()
    [[0, 1], [2, 3]]
    >>> nearest_by_variance(np.array([1.0, 2.0, 3.0]), n=1).tolist()  # self excluded, tie -> lower index
    [[1], [0], [1]]
    """
    variance = np.ascontiguousarray(variance, dtype=np.float64)
    self_match = candidate_variance is None
    cand = variance if self_match else np.ascontiguousarray(candidate_variance, dtype=np.float64)
    if np.isinf(variance).any() or np.isinf(cand).any():
        raise EmostatsError("variance_matched: variance explained contains inf; expected finite values (NaN = missing)")
    n = int(n)
    if n < 1:
        raise EmostatsError(f"variance_matched: n must be >= 1, got {n}")
    ok = np.isfinite(cand) if valid is None else (np.asarray(valid, dtype=bool) & np.isfinite(cand))
    pool = np.flatnonzero(ok)
    order = pool[np.argsort(cand[pool], kind="stable")]
    exclude = np.where(ok, np.arange(variance.size), -1) if self_match else np.full(variance.size, -1)
    need = n + (1 if self_match else 0)
    if order.size < need:
        raise EmostatsError(f"variance_matched: only {order.size} usable candidates (finite value and variance) "
                            f"for n={n} matches{' (a target never matches itself)' if self_match else ''}; "
                            f"lower n or supply more candidates")
    out = np.empty((variance.size, n), dtype=np.int64)
    if variance.size:
        nearest_values(np.ascontiguousarray(cand[order]), order.astype(np.int64),
                       variance, exclude.astype(np.int64), n, _n_threads(threads), out)
    return out


def variance_matched(values, variance, candidate_values=None, candidate_variance=None, n=20, stat="median",
                     threads=None):
    """Residual of each target's value above its ``n`` variance-matched candidates.

    Parameters
    ----------
    values, variance : xarray.DataArray or array_like (target,)
        The targets' values (e.g. lag persistence r) and variance explained.
        Two DataArrays with one labelled dim are matched by label (variance
        is put in the order of values).
    candidate_values, candidate_variance : xarray.DataArray or array_like (candidate,), optional
        The null population (e.g. random directions). Both or neither; when
        neither, the targets are their own candidates and a target never
        matches itself.
    n : int
        Matches per target (the study: 20).
    stat : {"median", "mean"}
        Baseline = this statistic of the matched values (the study: median;
        Figure 10: mean).
    threads : int, optional

    Returns
    -------
    xarray.Dataset
        dims ``target`` (coordinate from the targets' dim, if any) and ``match``
        (0 = nearest): ``residual(target)``, ``value``, ``variance``,
        ``baseline(target)``, ``matched(target, match)`` (int64 positions in
        the candidates, -1 for NaN targets), ``matched_values``,
        ``matched_variance``, ``max_distance(target)``; the one-sample tests of
        the residuals against 0 from :func:`emostats.one_sample_tests` (``n``,
        ``mean``, ``median``, ``n_positive``, ``n_negative``, ``t``, ``t_p``,
        ``ci_low``, ``ci_high``, ``wilcoxon_W``, ``wilcoxon_p``, ``sign_p``,
        ...) as scalars; attrs ``n_match``, ``stat``, ``self_match``,
        ``target_dim``, ``candidate_dim``, ``n_candidates``.

    Examples
    --------
    >>> res = variance_matched([0.5, 0.9], [0.1, 0.3], [0.1, 0.2, 0.3, 0.4], [0.09, 0.12, 0.29, 0.35], n=2)
    >>> res["matched"].values.tolist(), res["residual"].values.round(3).tolist()
    ([[0, 1], [2, 3]], [0.35, 0.55])
    >>> int(res["n_positive"])
    2
    """
    if stat not in _STATS:
        raise EmostatsError(f"variance_matched: stat must be 'median' or 'mean', got {stat!r}")
    if (candidate_values is None) != (candidate_variance is None):
        raise EmostatsError("variance_matched: pass both candidate_values and candidate_variance, or neither "
                            "(then the targets are their own candidates)")
    variance = _paired(values, variance, "target")
    vals, tdim, tcoord = _vector(values, "values")
    var, _, _ = _vector(variance, "variance")
    if vals.shape != var.shape:
        raise EmostatsError(f"variance_matched: values has {vals.size} targets but variance has {var.size}")
    self_match = candidate_values is None
    if self_match:
        cvals, cvar, cdim = vals, var, tdim
    else:
        candidate_variance = _paired(candidate_values, candidate_variance, "candidate")
        cvals, cdim, _ = _vector(candidate_values, "candidate_values")
        cvar, _, _ = _vector(candidate_variance, "candidate_variance")
        if cvals.shape != cvar.shape:
            raise EmostatsError(f"variance_matched: candidate_values has {cvals.size} entries but "
                                f"candidate_variance has {cvar.size}")
    if np.isinf(vals).any() or np.isinf(cvals).any():
        raise EmostatsError("variance_matched: values contain inf; expected finite values (NaN = missing)")
    target_var = np.where(np.isnan(vals), np.nan, var)
    valid = np.isfinite(cvals)
    idx = nearest_by_variance(target_var, None if self_match else cvar, n=n, valid=valid, threads=threads)
    missing = idx < 0
    safe = np.where(missing, 0, idx)
    mvals = np.where(missing, np.nan, cvals[safe] if cvals.size else np.nan)
    mvar = np.where(missing, np.nan, cvar[safe] if cvar.size else np.nan)
    bad_row = missing.any(axis=1)
    baseline = np.full(vals.size, np.nan)
    if (~bad_row).any():
        baseline[~bad_row] = _STATS[stat](mvals[~bad_row], axis=1)
    residual = vals - baseline
    max_dist = np.where(bad_row, np.nan, np.abs(mvar[:, -1] - var) if n else np.nan)

    coords = {"match": np.arange(int(n))}
    if tcoord is not None:
        coords["target"] = tcoord
    ds = xr.Dataset(
        {
            "residual": ("target", residual, {"long_name": f"value minus {stat} of the {n} variance-matched values"}),
            "value": ("target", vals, {"long_name": "target value"}),
            "variance": ("target", var, {"long_name": "target variance explained"}),
            "baseline": ("target", baseline, {"long_name": f"{stat} of the matched candidates' values"}),
            "matched": (("target", "match"), idx,
                        {"long_name": "positions of the matched candidates (nearest first; -1 = none)"}),
            "matched_values": (("target", "match"), mvals, {"long_name": "values of the matched candidates"}),
            "matched_variance": (("target", "match"), mvar,
                                 {"long_name": "variance explained of the matched candidates"}),
            "max_distance": ("target", max_dist,
                             {"long_name": "largest |variance difference| among the matches"}),
        },
        coords=coords,
    )
    tests = one_sample_tests(xr.DataArray(residual, dims="target"), dim="target")
    for name, var_ in tests.data_vars.items():
        ds[name] = var_
    ds.attrs.update(
        n_match=int(n), stat=stat, self_match=int(self_match), target_dim=str(tdim or "target"),
        candidate_dim=str(cdim or "candidate"), n_candidates=int(cvals.size),
        n_targets=int(vals.size), test="one-sample tests of the residuals against 0",
        tie_rule="nearest by |variance difference|, ties to the lower candidate index",
    )
    return ds
