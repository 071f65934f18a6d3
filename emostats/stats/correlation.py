"""Batched Pearson and Spearman correlations with NaN dropped pairwise."""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import xarray as xr
from scipy import special

from .._kernels._config import n_threads
from .._kernels.ranks import (correlate_rows, correlate_rows_serial, correlation_permutations,
                              correlation_permutations_serial, pearson_rows, pearson_rows_serial,
                              ranks_from_order, ranks_from_order_serial)
from ..errors import EmostatsError
from ._common import check_alternative, check_n_perm, check_seed, stream_key, warn_degenerate

__all__ = ["spearman", "pearson", "r_pvalue"]

RTOL_TIE = 1e-12


def r_pvalue(r, n, alternative="two-sided"):
    """p-value of a correlation ``r`` from ``n`` pairs by the t approximation (as scipy).

    Under the null (bivariate normal for Pearson), ``t = r sqrt((n-2)/(1-r^2))``
    has a t distribution with ``n - 2`` degrees of freedom; the tail is computed
    as a regularized incomplete beta function of ``1 - r^2`` (the form scipy's
    ``pearsonr`` uses), which stays accurate for ``|r|`` near 1.

    Examples
    --------
    >>> round(float(r_pvalue(0.5, 20)), 6)
    0.02477
    """
    r = np.asarray(r, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    df = n - 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        one_minus = np.clip((1.0 - r) * (1.0 + r), 0.0, 1.0)
        two = special.betainc(df / 2.0, 0.5, one_minus)  # P(|T| >= |t|)
        if alternative == "two-sided":
            p = two
        elif alternative == "greater":
            p = np.where(r >= 0, two / 2.0, 1.0 - two / 2.0)
        else:
            p = np.where(r <= 0, two / 2.0, 1.0 - two / 2.0)
    return np.where(np.isnan(r) | (n < 3), np.nan, p)


#: rows ranked per block on the fast path (bounds the memory of the argsort)
_BLOCK = 64
#: below this many element operations a parallel region costs more than it saves
PARALLEL_WORK = 500_000


def _parallel(nt, rows, work):
    return nt > 1 and rows > 1 and work > PARALLEL_WORK


def _argsort_rows(block, nt):
    """``np.argsort(block, axis=1)`` split over ``nt`` threads (NumPy releases the GIL)."""
    if not _parallel(nt, block.shape[0], block.size * 20):
        return np.argsort(block, axis=1)
    order = np.empty(block.shape, dtype=np.intp)
    parts = np.array_split(np.arange(block.shape[0]), nt)

    def work(idx):
        if idx.size:
            order[idx[0]:idx[-1] + 1] = np.argsort(block[idx[0]:idx[-1] + 1], axis=1)

    with ThreadPoolExecutor(nt) as pool:
        list(pool.map(work, parts))
    return order


def _rank_rows(block, nt):
    out = np.empty_like(block)
    order = _argsort_rows(block, nt).astype(np.int64, copy=False)
    if _parallel(nt, block.shape[0], block.size):
        ranks_from_order(block, order, out, nt)
    else:
        ranks_from_order_serial(block, order, out)
    return out


def _r_and_n(xs, ys, rank, nt):
    """r and pairs used for each row; rows without NaN take the fast path
    (NumPy argsort, y ranked once when shared), the others are compacted
    pairwise in the kernel."""
    rows, n_obs = xs.shape
    shared = ys.shape[0] == 1
    x_nan = np.isnan(xs).any(axis=1)
    y_nan = np.isnan(ys).any(axis=1)
    complete = ~(x_nan | y_nan) if not shared else ~x_nan & ~y_nan[0]
    r = np.full(rows, np.nan)
    used = np.zeros(rows, dtype=np.int64)
    idx = np.flatnonzero(complete)
    if idx.size:
        y_once = (_rank_rows(ys, nt) if rank else ys) if shared else None
        for start in range(0, idx.size, _BLOCK):
            sel = idx[start:start + _BLOCK]
            xb = xs[sel]
            a = _rank_rows(xb, nt) if rank else xb
            b = y_once if shared else (_rank_rows(ys[sel], nt) if rank else ys[sel])
            a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
            r[sel] = (pearson_rows(a, b, nt) if _parallel(nt, a.shape[0], a.size)
                      else pearson_rows_serial(a, b))
        used[idx] = n_obs
    idx = np.flatnonzero(~complete)
    if idx.size:
        yb = ys if shared else np.ascontiguousarray(ys[idx])
        xb = np.ascontiguousarray(xs[idx])
        r[idx], used[idx] = (correlate_rows(xb, yb, rank, nt) if _parallel(nt, idx.size, xb.size * 20)
                             else correlate_rows_serial(xb, yb, rank))
    return r, used


def _core(x, y, rank, permutation, alt, seed, threads):
    """NumPy core: pair along the last axis, batch over the others."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape[-1] != y.shape[-1]:
        raise EmostatsError(
            f"correlation: x and y must have the same length along the paired axis, "
            f"got {x.shape[-1]} and {y.shape[-1]}")
    batch = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    n_obs = x.shape[-1]
    size = int(np.prod(batch, dtype=np.int64))
    xs = np.ascontiguousarray(np.broadcast_to(x, batch + (n_obs,))).reshape(size, n_obs)
    if int(np.prod(y.shape[:-1], dtype=np.int64)) == 1:
        ys = np.ascontiguousarray(y.reshape(1, n_obs))
    else:
        ys = np.ascontiguousarray(np.broadcast_to(y, batch + (n_obs,))).reshape(size, n_obs)
    if np.isinf(xs).any() or np.isinf(ys).any():
        raise EmostatsError("correlation: inputs contain inf; set them to NaN to drop those pairs")
    nt = n_threads(threads)
    r, used = _r_and_n(xs, ys, rank, nt)
    bad = np.isnan(r) | (used < 3)
    r[bad] = np.nan
    exact = np.zeros(r.shape, dtype=bool)
    if permutation is False or permutation is None:
        p = r_pvalue(r, used, ("greater", "less", "two-sided")[alt])
    else:
        n_perm = check_n_perm(permutation, "permutation")
        exact = np.array([3 <= m <= 20 and math.factorial(int(m)) <= n_perm for m in used], dtype=bool)
        # a row's stream comes from the seed and the row's own data, so the p-values do
        # not depend on the row's position, on dask chunking or on the thread count
        keys = np.array([stream_key(seed, "correlation", xs[i], ys[i if ys.shape[0] > 1 else 0])
                         for i in range(size)], dtype=np.uint64)
        args = (xs, ys, rank, keys, n_perm, exact, alt, RTOL_TIE)
        counts, _ = (correlation_permutations(*args, nt) if _parallel(nt, size, xs.size * n_perm)
                     else correlation_permutations_serial(*args))
        total = np.array([math.factorial(int(m)) if e else 1 for m, e in zip(used, exact)], dtype=np.float64)
        p = np.where(exact, counts / total, (1.0 + counts) / (1.0 + n_perm))
    p = np.where(bad, np.nan, p)
    return (r.reshape(batch), p.reshape(batch), used.reshape(batch), exact.reshape(batch),
            int(bad.sum()))


def _correlation(x, y, dim, method, permutation, alternative, seed, threads):
    alt = check_alternative(alternative)
    seed = check_seed(seed) if permutation not in (False, None) else seed
    name = "rho" if method == "spearman" else "r"
    if isinstance(x, xr.DataArray) or isinstance(y, xr.DataArray):
        if not (isinstance(x, xr.DataArray) and isinstance(y, xr.DataArray)):
            raise EmostatsError(f"{method}: pass x and y both as DataArrays or both as arrays")
        if dim is None:
            if x.ndim == 1 and y.dims == x.dims:
                dim = x.dims[0]
            else:
                raise EmostatsError(
                    f"{method}: x has dims {x.dims} and y {y.dims}; pass dim= to say which dim pairs them")
        if dim not in x.dims or dim not in y.dims:
            raise EmostatsError(f"{method}: dim {dim!r} must be a dim of x {x.dims} and of y {y.dims}")
        try:
            x, y = xr.align(x, y, join="exact")
        except ValueError as err:
            raise EmostatsError(
                f"{method}: the coordinates of x and y differ ({str(err).splitlines()[0]}); "
                f"select matching labels first") from None
        xa, ya = x, y
    else:
        xn, yn = np.asarray(x), np.asarray(y)
        if xn.ndim == 0 or yn.ndim == 0:
            raise EmostatsError(f"{method}: x and y must have at least one dim, got scalars")
        nd = max(xn.ndim, yn.ndim)
        dims = tuple(f"dim_{i}" for i in range(nd - 1)) + ("obs",)
        xa = xr.DataArray(xn, dims=dims[nd - xn.ndim:])
        ya = xr.DataArray(yn, dims=dims[nd - yn.ndim:])
        dim = "obs"
    if xa.chunks is not None or ya.chunks is not None:
        xa = xa.chunk({dim: -1})
        ya = ya.chunk({dim: -1})
    counts = []

    def func(a, b):
        r, p, n, e, nbad = _core(a, b, method == "spearman", permutation, alt, seed, threads)
        counts.append(nbad)
        return r, p, n, e

    r, p, n, exact = xr.apply_ufunc(
        func, xa, ya, input_core_dims=[[dim], [dim]], output_core_dims=[[], [], [], []],
        dask="parallelized", output_dtypes=[np.float64, np.float64, np.int64, bool],
    )
    warn_degenerate(sum(counts), method, "fewer than 3 complete pairs or a constant side")
    long = "Spearman rank correlation" if method == "spearman" else "Pearson correlation"
    ptext = ("t approximation" if permutation in (False, None)
             else "permutation (exact enumeration when n! <= permutation)")
    ds = xr.Dataset({
        name: r.assign_attrs(long_name=long),
        "p": p.assign_attrs(long_name=f"p-value ({alternative}, {ptext})"),
        "n": n.assign_attrs(long_name="complete pairs used"),
    })
    if permutation not in (False, None):
        ds["exact"] = exact.assign_attrs(long_name="p from all n! permutations")
    ds.attrs.update(test=method, dim=dim, alternative=alternative,
                    permutation=0 if permutation in (False, None) else int(permutation),
                    seed=-1 if permutation in (False, None) else seed)
    return ds


_DOC = """{title} of ``x`` and ``y`` paired along ``dim``, batched over all other dims.

    {what} Pairs with NaN on either side are dropped (row by row) and ``n``
    reports how many pairs were used. The p-value comes from the t
    approximation with ``n - 2`` degrees of freedom, as ``scipy.stats.{scipy}``
    computes it; with ``permutation=N`` it is a permutation p instead: all
    ``n!`` orderings are enumerated when ``n! <= N`` (exact, as R's
    ``cor.test`` for small samples; ``p = #{{|r*| >= |r|}} / n!`` two-sided),
    else ``p = (1 + #{{r* >= r}}) / (1 + N)`` from ``N`` random orderings (one
    stream per row, keyed by ``seed`` and the row's data, so chunking, row order
    and thread count do not change it).
    Rows with fewer than 3 pairs, or a constant side, are NaN with a
    ``DegenerateWarning`` (never inf or a made-up p).

    Parameters
    ----------
    x, y : xarray.DataArray or array_like
        DataArrays are aligned exactly and broadcast; arrays pair along their
        last axis and broadcast over the leading ones.
    dim : str, optional
        The paired dim (required unless x and y are 1-D over the same dim).
    permutation : False or int
        False for the t approximation, else the number of permutations.
    alternative : {{"two-sided", "greater", "less"}}
    seed : int
        Seed of the random permutations.
    threads : int, optional
        Threads (results do not depend on it).

    Returns
    -------
    xarray.Dataset
        ``{name}``, ``p``, ``n`` (and ``exact`` with ``permutation``) over the
        batch dims; attrs hold the parameters.

    Examples
    --------
    >>> import numpy as np
    >>> res = {func}(np.array([1.0, 2, 3, 4, 5]), np.array([5.0, 6, 7, 8, 7]))
    >>> round(float(res.{name}), 4), int(res.n)
    ({example}, 5)
    """


def spearman(x, y, dim=None, permutation=False, alternative="two-sided", seed=0, threads=None):
    return _correlation(x, y, dim, "spearman", permutation, alternative, seed, threads)


def pearson(x, y, dim=None, permutation=False, alternative="two-sided", seed=0, threads=None):
    return _correlation(x, y, dim, "pearson", permutation, alternative, seed, threads)


spearman.__doc__ = _DOC.format(
    title="Spearman rank correlation", name="rho", func="spearman", scipy="spearmanr",
    example="0.8208",
    what="Values are ranked with average ranks for ties, then correlated (Pearson of ranks).")
pearson.__doc__ = _DOC.format(
    title="Pearson correlation", name="r", func="pearson", scipy="pearsonr", example="0.8321",
    what="Computed with two passes (means first) in float64.")
