"""Two-group permutation tests of many groupings of the same items at once."""

import math

import numpy as np
import xarray as xr

from .._kernels._config import n_threads
from .._kernels.permutation import permutation_counts, permutation_counts_serial
from .. import defaults as D
from ..errors import EmostatsError
from ._common import check_alternative, check_n_perm, check_seed, stream_key, warn_degenerate

__all__ = ["permutation_test"]

#: relative tolerance of the ">=" comparison of a permuted statistic with the observed one
RTOL_TIE = 1e-12
#: below this many value draws a parallel region costs more than it saves
PARALLEL_WORK = 500_000


def _as_arrays(values, groups, item_dim, group_dim):
    """NumPy (n,) values, (G, n) masks, group coordinate and whether groups was 1-D."""
    group_coords = None
    if isinstance(values, xr.DataArray):
        if values.dims != (item_dim,):
            raise EmostatsError(
                f"permutation_test: values has dims {values.dims}, expected ({item_dim!r},); "
                f"pass item_dim= or select a 1-D slice")
    if isinstance(groups, xr.DataArray):
        if item_dim not in groups.dims or groups.ndim > 2 or (
                groups.ndim == 2 and group_dim not in groups.dims):
            raise EmostatsError(
                f"permutation_test: groups has dims {groups.dims}, expected ({group_dim!r}, {item_dim!r}) "
                f"or ({item_dim!r},); pass group_dim=/item_dim= to name them")
        if isinstance(values, xr.DataArray) and item_dim in values.indexes and item_dim in groups.indexes:
            vi, gi = values.indexes[item_dim], groups.indexes[item_dim]
            if not vi.equals(gi):
                if len(vi) != len(gi) or not vi.isin(gi).all() or not vi.is_unique:
                    raise EmostatsError(
                        f"permutation_test: the {item_dim!r} labels of values and groups differ "
                        f"({len(vi)} vs {len(gi)} items); give both the same items")
                groups = groups.sel({item_dim: vi})
        if groups.ndim == 2:
            groups = groups.transpose(group_dim, item_dim)
            group_coords = {name: c for name, c in groups.coords.items() if c.dims == (group_dim,)}
    one = np.ndim(groups) == 1
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(groups)
    if one:
        g = g[None, :]
    if v.ndim != 1 or g.ndim != 2 or g.shape[1] != v.shape[0]:
        raise EmostatsError(
            f"permutation_test: values must be 1-D (n,) and groups (n_groups, n) or (n,), "
            f"got {np.shape(values)} and {np.shape(groups)}")
    if g.dtype != np.bool_:
        if g.size and not np.isin(g, (0, 1)).all():
            raise EmostatsError(
                "permutation_test: groups must be boolean (True = in the group), found values other "
                "than 0/1; pass a boolean mask")
        g = g.astype(bool)
    if np.isinf(v).any():
        raise EmostatsError(
            f"permutation_test: values contain {int(np.isinf(v).sum())} infinite value(s); "
            f"the mean difference is undefined; replace them or set them to NaN to drop them")
    return v, g, group_coords, one


def _observed(v, g):
    """Per grouping: in-group count, observed mean difference and centred sums, in a fixed order.

    Values are sorted first, so the sums depend on the multisets of in- and
    out-group values only (relabelling items changes no bit).
    """
    order = np.argsort(v, kind="stable")
    vs = v[order]
    gs = g[:, order]
    n = vs.shape[0]
    center = vs.mean() if n else 0.0
    c = vs - center
    total = float(c.sum())
    n_groups = gs.shape[0]
    k = gs.sum(axis=1).astype(np.int64)
    stat = np.full(n_groups, np.nan)
    d_obs = np.zeros(n_groups)
    for i in range(n_groups):
        if not 0 < k[i] < n:
            continue
        vin, vout = vs[gs[i]], vs[~gs[i]]
        stat[i] = vin.mean() - vout.mean()
        s = total - c[~gs[i]].sum() if k[i] > n - k[i] else c[gs[i]].sum()
        d_obs[i] = s - k[i] * total / n
    return c, total, k, stat, d_obs, gs, vs


def permutation_test(values, groups, alternative="greater", n_perm=D.N_PERM, seed=D.SEED,
                     statistic="mean_difference", return_null=False, threads=None,
                     item_dim="item", group_dim="group"):
    """Two-group permutation tests of mean(in) - mean(out) for many groupings at once.

    Each grouping is a boolean mask over the same items (True = in the group).
    The statistic is ``T = mean(in) - mean(out)``. When the number of distinct
    labellings ``C(n, k)`` (``n`` items, ``k`` in the group) is at most
    ``n_perm``, every labelling is enumerated and ``p = #{T* >= T} / C(n, k)``
    (the observed labelling counts itself); otherwise ``n_perm`` labellings are
    drawn at random and ``p = (1 + #{T* >= T}) / (1 + n_perm)``, which is never 0.
    ``>=`` allows a tolerance of ``1e-12 * m * max|v - mean(v)|`` on the
    in-group sums (``m = min(k, n - k)`` values summed), a bound on their
    rounding, so the observed labelling never misses itself.

    Alternatives: ``"greater"`` counts ``T* >= T``, ``"less"`` counts
    ``T* <= T``; ``"two-sided"`` counts ``|T*| >= |T|`` (the null distribution
    of T has mean 0, so this is the usual absolute-value test, as in R's
    ``coin``). This differs from scipy's ``permutation_test``, which doubles
    the smaller one-sided p; for symmetric null distributions they agree.

    Items whose value is NaN are dropped from every grouping (``n_in`` and
    ``n_out`` count what is left). A grouping with no item in or out is
    undefined: its row is NaN (with a warning), not an error.

    Randomness: each grouping has its own stream of xoshiro256** numbers whose
    key is made from ``seed`` and the grouping's own data (``n``, ``k`` and its
    in-group values), so the result is the same for any number of threads and
    does not change when groups or items are relabelled consistently.

    Parameters
    ----------
    values : xarray.DataArray (item) or array_like (n,)
        One value per item. NaN items are dropped.
    groups : xarray.DataArray (group, item) or (item,), or array_like (G, n) or (n,)
        Boolean masks, True = in the group.
    alternative : {"greater", "less", "two-sided"}
    n_perm : int
        Number of random labellings per grouping, and the largest number of
        labellings that is enumerated exactly.
    seed : int or None
        Seed of the random labellings (None: fresh entropy, recorded in attrs).
    statistic : {"mean_difference"}
        The only statistic implemented.
    return_null : bool
        Also return ``null(group, perm)``: the permuted statistics (exact
        groupings fill the first ``C(n, k)`` entries, the rest are NaN).
    threads : int, optional
        Number of threads (default: all of Numba's). Results do not depend on it.
    item_dim, group_dim : str
        Names of the item and group dims of DataArray inputs.

    Returns
    -------
    xarray.Dataset
        ``statistic(group)``, ``p(group)``, ``n_in(group)``, ``n_out(group)``,
        ``exact(group)`` and optionally ``null(group, perm)``; attrs hold the
        parameters. With 1-D ``groups`` the variables are scalars.

    Examples
    --------
    >>> import numpy as np
    >>> values = np.array([0.1, 0.5, 0.3, 2.0, 2.2, 1.9])
    >>> groups = np.array([[False, False, False, True, True, True]])
    >>> res = permutation_test(values, groups)
    >>> bool(res.exact[0]), float(res.p[0])   # C(6, 3) = 20 labellings, enumerated
    (True, 0.05)
    """
    if statistic != "mean_difference":
        raise EmostatsError(
            f"permutation_test: statistic={statistic!r} is not implemented; use 'mean_difference'")
    alt = check_alternative(alternative)
    n_perm = check_n_perm(n_perm)
    seed = check_seed(seed)
    v, g, group_coords, one = _as_arrays(values, groups, item_dim, group_dim)
    keep = ~np.isnan(v)
    n_dropped = int((~keep).sum())
    v, g = v[keep], g[:, keep]
    n = v.shape[0]
    if n >= 2**32:
        raise EmostatsError(f"permutation_test: {n} items is more than the 2**32 - 1 supported")
    c, total, k, stat, d_obs, gs, vs = _observed(v, g)
    valid = (k > 0) & (k < n)
    n_groups = k.shape[0]
    m = np.minimum(k, n - k)
    exact = np.zeros(n_groups, dtype=bool)
    n_comb = np.zeros(n_groups, dtype=np.int64)
    keys = np.zeros(n_groups, dtype=np.uint64)
    for i in np.flatnonzero(valid):
        comb = math.comb(n, int(k[i]))
        exact[i] = comb <= n_perm
        n_comb[i] = comb if exact[i] else 0
        keys[i] = stream_key(seed, n, int(k[i]), vs[gs[i]])
    maxabs = float(np.abs(c).max()) if n else 0.0
    tol = RTOL_TIE * np.maximum(m, 1) * maxabs
    null = np.full((n_groups, n_perm) if return_null else (0, 0), np.nan)
    counts = np.zeros(n_groups, dtype=np.int64)
    todo = np.flatnonzero(valid)
    if todo.size:
        cost = np.where(exact, n_comb, n_perm) * np.maximum(m, 1)
        order = todo[np.argsort(-cost[todo], kind="stable")].astype(np.int64)
        args = (c, total, np.where(valid, k, 1), d_obs, tol, keys, n_perm, exact, alt, order, null)
        nt = n_threads(threads)
        if nt > 1 and todo.size > 1 and cost[todo].sum() > PARALLEL_WORK:
            counts = permutation_counts(*args, nt)
        else:
            counts = permutation_counts_serial(*args)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(exact, counts / np.maximum(n_comb, 1), (1.0 + counts) / (1.0 + n_perm))
    p[~valid] = np.nan
    warn_degenerate(int((~valid).sum()), "permutation_test",
                    "a grouping had no item in the group or none outside it")
    dims = () if one else (group_dim,)
    sq = (lambda a: a[0]) if one else (lambda a: a)
    ds = xr.Dataset(
        {
            "statistic": (dims, sq(stat), {"long_name": "mean(in) - mean(out)"}),
            "p": (dims, sq(p), {"long_name": f"permutation p-value ({alternative})"}),
            "n_in": (dims, sq(k), {"long_name": "items in the group (after dropping NaN)"}),
            "n_out": (dims, sq(n - k), {"long_name": "items outside the group (after dropping NaN)"}),
            "exact": (dims, sq(exact),
                      {"long_name": "p from full enumeration of C(n_in + n_out, n_in) labellings"}),
        },
        coords=group_coords if not one else None,
    )
    if return_null:
        ds["null"] = (dims + ("perm",), sq(null),
                      {"long_name": "permuted mean(in) - mean(out) (exact: first C(n, k) entries, rest NaN)"})
    ds.attrs.update(
        test="permutation", statistic=statistic, alternative=alternative, n_perm=n_perm, seed=seed,
        n_dropped_nan=n_dropped, rtol_tie=RTOL_TIE,
        p_definition="exact: #{T*>=T}/C(n,k); sampled: (1+#{T*>=T})/(1+n_perm)",
        two_sided_definition="#{|T*| >= |T|}",
    )
    return ds
