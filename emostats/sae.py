"""SAE features: firing persistence at a lag, feature density, and (re-exported from
:mod:`emostats.feature_matching`) the variance-matched residual persistence of Figure 7 (SPEC.md analyses 7 and 8).

A feature *fires* at a token when its id is among the token's active top-k ids
in ``sae_index(token, slot)`` (``-1`` = empty slot). An id that appears in more
than one slot of one token fires once (duplicates count once). The index arrays
are never densified: counting is O(tokens x k) time and O(features) memory per
thread.

Feature ids are positions along ``/features``' ``feature`` dim: id ``i`` is the
``i``-th feature, and the result's ``feature`` coordinate carries the ids of
``/features`` when they are known.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import xarray as xr

from ._chunks import reduce_over_chunks
from ._kernels import firing as _kernel
from ._kernels._config import n_threads
from ._threads import note_compile
from ._safetensors import read_sparsity
from .errors import MissingGroupError, StudyError
from .feature_matching import feature_table, matched_residuals, sae_matched
from .segments import segments_of

__all__ = ["firing_counts", "firing_persistence", "feature_density", "read_sparsity", "sae_matched", "feature_table",
           "matched_residuals"]

#: smallest number of rows worth a thread of its own
MIN_PIECE = 50_000

#: added to ``frac_nonzero`` before taking log10, as SAELens does, so dead features get -10
LOG_DENSITY_EPS = 1e-10


# --------------------------------------------------------------------------- NumPy level
def _as_index(index, group="/tokens"):
    """``index`` as a C-contiguous int32 (tokens, k) array, or a one-line StudyError."""
    index = np.asarray(index)
    if index.ndim != 2:
        raise StudyError(f"{group}: sae_index must be 2-D (token, slot), got shape {index.shape}")
    if index.dtype.kind not in "iu":
        raise StudyError(f"{group}: sae_index has dtype {index.dtype}, expected an integer dtype "
                         f"(int32, -1 = empty slot); cast it with .astype('int32')")
    if index.dtype != np.int32:
        if index.size and (index.min() < -1 or index.max() > np.iinfo(np.int32).max):
            raise StudyError(f"{group}: sae_index values lie in [{index.min()}, {index.max()}], "
                             f"expected [-1, n_features) with n_features < 2**31")
        index = index.astype(np.int32)
    return np.ascontiguousarray(index)


def _check_args(lag, n_features):
    if lag is not None and (int(lag) != lag or lag < 0):
        raise StudyError(f"lag must be a non-negative integer, got {lag!r}")
    if int(n_features) != n_features or n_features < 0:
        raise StudyError(f"n_features must be a non-negative integer, got {n_features!r}")


def _check_range(index, base, n_features, group="/tokens"):
    """One-line StudyError naming the first token with an id outside [-1, n_features)."""
    lo, hi = _kernel.index_range(index)
    if lo >= -1 and hi < n_features:
        return
    wrong = (index < -1) | (index >= n_features)
    row = int(np.flatnonzero(wrong.any(axis=1))[0])
    value = int(index[row][wrong[row]][0])
    raise StudyError(f"{group}: sae_index at token {base + row} holds id {value}, outside "
                     f"[-1, {n_features}) (n_features = size of /features' feature dim); "
                     f"fix the ids or pass a larger n_features")


def _count_block(index, offsets, lag, n_features, base, own_from, threads):
    """Kernel call on one block (rows ``base..``, counted from ``own_from``); raises on bad ids."""
    index = _as_index(index)
    if not (base == 0 or own_from - base >= (0 if lag is None else lag)):
        raise ValueError(f"block at token {own_from} needs {lag} rows of context, got {own_from - base}")
    note_compile(_kernel.firing_counts)  # first use with a cold cache: say so, or wait for a warm child's entry
    # one piece per thread, but no piece smaller than MIN_PIECE rows: below that a
    # thread costs more than it saves (counts are the same either way)
    n_own = base + index.shape[0] - own_from
    pieces = max(1, min(n_threads(threads), n_own // MIN_PIECE))
    args = (offsets, -1 if lag is None else int(lag), int(n_features), int(base))
    if pieces == 1:
        _check_range(index, base, n_features)  # the kernel trusts its ids
        return _kernel.firing_counts(index, *args, int(own_from), 1)
    # the kernel releases the GIL: piece c counts rows [lo, hi) of index[:hi - base] (its `lag` rows before lo
    # are context); integer counts summed in piece order. The range check (a pass at memory speed, as long as
    # a tenth of the counting on two threads) is done by each piece on the rows it reads, before it counts
    # them; together the pieces check every row (the first also the rows before own_from)
    context = max(0 if lag is None else int(lag), 0)
    bounds = [(own_from + n_own * c // pieces, own_from + n_own * (c + 1) // pieces) for c in range(pieces)]

    def piece(c):
        lo, hi = bounds[c]
        first = base if c == 0 else max(lo - context, base)
        ids_lo, ids_hi = _kernel.index_range(index[first - base:hi - base])
        if ids_lo < -1 or ids_hi >= n_features:
            return None  # a bad id: nothing counted (the caller raises)
        return _kernel.firing_counts(index[:hi - base], *args, int(lo), 1)

    with ThreadPoolExecutor(max_workers=pieces, thread_name_prefix="emostats") as pool:
        parts = list(pool.map(piece, range(pieces)))
    if any(part is None for part in parts):
        _check_range(index, base, n_features)  # raises, naming the first bad token
    counts = parts[0]
    for part in parts[1:]:
        counts += part
    return counts


def firing_counts(index, offsets, lag=100, n_features=None, threads=None):
    """Per-feature firing counts of a top-k index array at ``lag`` (NumPy level).

    Parameters
    ----------
    index : array_like of int, shape (n_tokens, k)
        Active feature ids per token, ``-1`` = empty slot. Duplicate ids within a
        token's row count once.
    offsets : array_like of int64
        CSR segment offsets (``emostats.segments``); last = n_tokens.
    lag : int
        The lag L (>= 0). A valid t has t + L in the same segment.
    n_features : int, optional
        Number of features; default ``index.max() + 1``.
    threads : int, optional
        Threads for the kernel (the counts are the same for any number).

    Returns
    -------
    dict
        int64 arrays ``n_fires`` (over all tokens), ``n_t`` (fires at a valid t),
        ``n_tl`` (fires at t + L of a valid t), ``n_both`` (fires at both), and the
        integer ``n_valid`` (number of valid t).

    Examples
    --------
    >>> idx = np.array([[0, 1], [1, -1], [0, 1], [1, 1]], dtype=np.int32)
    >>> c = firing_counts(idx, [0, 4], lag=2)
    >>> c["n_both"].tolist(), c["n_t"].tolist(), c["n_valid"]
    ([1, 2], [1, 2], 2)
    """
    index = _as_index(index)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != index.shape[0]:
        raise StudyError(f"offsets must run from 0 to n_tokens = {index.shape[0]}, "
                         f"got {offsets[:1].tolist()}..{offsets[-1:].tolist()}")
    if n_features is None:
        n_features = int(index.max()) + 1 if index.size else 0
    _check_args(lag, n_features)
    counts = _count_block(index, offsets, lag, n_features, 0, 0, threads)
    return _finish_counts(counts, offsets, lag)


def _finish_counts(counts, offsets, lag):
    n_fires = counts[_kernel.N_FIRES]
    return {
        "n_fires": n_fires,
        "n_t": n_fires - counts[_kernel.NO_SUCC],
        "n_tl": n_fires - counts[_kernel.NO_PRED],
        "n_both": counts[_kernel.N_BOTH],
        "n_valid": int(_kernel.n_valid_pairs(offsets, int(lag))),
    }


# --------------------------------------------------------------------------- xarray level
def _resolve(sae_index, n_features):
    """(DataArray (token, slot), n_features or None, feature coordinate or None)."""
    feature_coord = None
    size = None
    if isinstance(sae_index, xr.DataTree):
        if "tokens" not in sae_index.children or "sae_index" not in sae_index["tokens"].data_vars:
            raise MissingGroupError("/tokens: variable sae_index missing; SAE analyses need the "
                                    "top-k feature ids per token (sae_index(token, slot))")
        if "features" in sae_index.children and "feature" in sae_index["features"].dims:
            feature_coord = sae_index["features"]["feature"].values
            size = feature_coord.size
        da = sae_index["tokens"]["sae_index"]
    elif isinstance(sae_index, xr.Dataset):
        if "sae_index" not in sae_index.data_vars:
            raise MissingGroupError("/tokens: variable sae_index missing from the Dataset; "
                                    "pass the /tokens group of a study with SAE features")
        if "feature" in sae_index.dims:
            size = sae_index.sizes["feature"]
            if "feature" in sae_index.coords:
                feature_coord = sae_index["feature"].values
        da = sae_index["sae_index"]
    elif isinstance(sae_index, xr.DataArray):
        da = sae_index
    else:
        raise StudyError(f"sae_index must be an xarray DataTree, Dataset or DataArray, "
                         f"got {type(sae_index).__name__}; wrap a NumPy array with firing_counts")
    if set(da.dims) != {"token", "slot"}:
        raise StudyError(f"/tokens: sae_index has dims {da.dims}, expected ('token', 'slot')")
    da = da.transpose("token", "slot")
    if n_features is None:
        n_features = size
    elif size is not None and int(n_features) != size:
        feature_coord = None
    return da, n_features, feature_coord


def _counts_of(da, lag, n_features, threads):
    """Kernel counts of a DataArray (in memory or dask-backed), shape (4, n_features)."""
    offsets = segments_of(da)
    data = da.data
    if offsets[-1] != da.sizes["token"]:
        raise StudyError("/tokens: conversation/turn coordinates do not cover every token")
    if not hasattr(data, "dask"):
        return _count_block(np.asarray(data), offsets, lag, n_features, 0, 0, threads), offsets
    context = 0 if lag is None else int(lag)
    # inside dask tasks the scheduler supplies the parallelism: one kernel thread per task by default
    task_threads = 1 if threads is None else threads

    def task(block, span):
        # the kernel counts a pair at its later token t + lag (its context is the `lag` rows before it), so
        # the block rows [start, start + lag) are context and the rows owned here are shifted by `lag`:
        # [start + lag, stop + lag), the first chunk's from 0. Over all chunks they cover every token once.
        own_from = 0 if span.start == 0 else span.start + context
        if own_from >= span.end:
            return np.zeros((4, n_features), dtype=np.int64)
        return _count_block(block, offsets, lag, n_features, span.start, own_from, task_threads)

    counts = reduce_over_chunks(data, context, task, np.add, fan_in=2)  # np.add takes 2; int counts: exact
    if counts is None:
        return np.zeros((4, n_features), dtype=np.int64), offsets
    return np.asarray(counts), offsets


def _n_features_of(da):
    if da.sizes["token"] == 0 or da.sizes["slot"] == 0:
        return 0
    return int(da.max().values) + 1


def _feature_coords(n_features, feature_coord):
    ids = np.arange(n_features) if feature_coord is None else feature_coord
    return {"feature": ("feature", ids)}


def firing_persistence(sae_index, lag=100, min_fires=101, n_features=None, *, threads=None):
    """SAE firing persistence (SPEC.md analysis 7, the study's Figure 7).

    Per feature, over the valid tokens t (t and t + L in one segment):
    ``persistence = P(fires at t+L | fires at t) - P(fires at t+L | does not fire at t)``
    with ``P(fire t+L | fire t) = n_both / n_t`` and
    ``P(fire t+L | not fire t) = (n_tl - n_both) / (n_valid - n_t)``.
    Features firing fewer than ``min_fires`` times over all tokens keep their
    values but get ``included = False``; nothing is dropped.

    Parameters
    ----------
    sae_index : xarray.DataTree, Dataset or DataArray
        A study (``/tokens/sae_index``), the ``/tokens`` Dataset, or the
        ``sae_index(token, slot)`` DataArray with ``conversation`` and ``turn``
        coordinates; in memory or dask-backed (chunked along ``token``; the
        counts are exact for any chunking: each chunk's task reads its rows and
        the first ``lag`` rows of the following chunk(s), and the call computes them).
    lag : int
        L in tokens.
    min_fires : int
        Minimum ``n_fires`` (fires over all tokens) for ``included``.
    n_features : int, optional
        Number of features. Default: the size of ``/features``' ``feature`` dim
        when a DataTree (or a Dataset with a ``feature`` dim) is given, else
        ``sae_index.max() + 1`` (one more pass over the data).
    threads : int, optional
        Kernel threads; the result is the same for any number.

    Returns
    -------
    xarray.Dataset
        ``persistence(feature)``, ``p_given_fire``, ``p_given_not`` (NaN when the
        conditioning event never happens), ``n_fires``, ``n_t``, ``n_tl``,
        ``n_both``, ``included``; scalar ``n_valid``; attrs ``lag``, ``min_fires``,
        ``n_features``, ``n_tokens``, ``n_excluded``.

    Examples
    --------
    >>> import xarray as xr
    >>> idx = xr.DataArray(np.array([[0, 1], [1, -1], [0, 1], [1, 1]], dtype=np.int32),
    ...     dims=("token", "slot"), coords={"conversation": ("token", [0, 0, 0, 0]),
    ...                                    "turn": ("token", [0, 0, 0, 0])})
    >>> ds = firing_persistence(idx, lag=2, min_fires=2)
    >>> ds["persistence"].values.tolist(), ds["included"].values.tolist()
    ([1.0, nan], [True, True])
    """
    da, n_features, feature_coord = _resolve(sae_index, n_features)
    if n_features is None:
        n_features = _n_features_of(da)
    _check_args(lag, n_features)
    raw, offsets = _counts_of(da, int(lag), int(n_features), threads)
    c = _finish_counts(raw, offsets, lag)
    n_not = c["n_valid"] - c["n_t"]
    with np.errstate(invalid="ignore", divide="ignore"):
        p_fire = np.where(c["n_t"] > 0, c["n_both"] / np.maximum(c["n_t"], 1), np.nan)
        p_not = np.where(n_not > 0, (c["n_tl"] - c["n_both"]) / np.maximum(n_not, 1), np.nan)
    included = c["n_fires"] >= min_fires
    f = ("feature",)
    ds = xr.Dataset(
        {
            "persistence": (f, p_fire - p_not, {"long_name": f"P(fire t+{lag} | fire t) - P(fire t+{lag} | not fire t)"}),
            "p_given_fire": (f, p_fire, {"long_name": f"P(fires at t+{lag} | fires at t)"}),
            "p_given_not": (f, p_not, {"long_name": f"P(fires at t+{lag} | does not fire at t)"}),
            "n_fires": (f, c["n_fires"], {"long_name": "tokens at which the feature fires (all tokens)"}),
            "n_t": (f, c["n_t"], {"long_name": "valid t at which the feature fires"}),
            "n_tl": (f, c["n_tl"], {"long_name": f"valid t at which the feature fires at t+{lag}"}),
            "n_both": (f, c["n_both"], {"long_name": f"valid t at which the feature fires at t and t+{lag}"}),
            "included": (f, included, {"long_name": f"fires at least {min_fires} times (n_fires >= min_fires)"}),
            "n_valid": ((), c["n_valid"], {"long_name": f"valid t (t and t+{lag} in one segment)"}),
        },
        coords=_feature_coords(n_features, feature_coord),
        attrs={"analysis": "firing_persistence", "lag": int(lag), "min_fires": int(min_fires),
               "n_features": int(n_features), "n_tokens": int(offsets[-1]),
               "n_segments": int(offsets.size - 1), "n_excluded": int((~included).sum()),
               "duplicates": "an id in several slots of one token fires once"},
    )
    return ds


def feature_density(sae_index, n_features=None, *, threads=None):
    """Per-feature firing density, named as SAE tools name it.

    ``frac_nonzero`` (sae_vis / Neuronpedia), also returned as
    ``feature_density`` (SAEBench's name), is the fraction of tokens at which
    the feature fires; ``log10_density = log10(frac_nonzero + 1e-10)``, also
    returned as ``log_feature_sparsity`` (SAELens' name and convention, so that
    dead features get -10; :func:`read_sparsity` reads the training-time values
    SAELens stores in ``sparsity.safetensors``).

    Parameters
    ----------
    sae_index : xarray.DataTree, Dataset or DataArray
        As for :func:`firing_persistence` (segments are not needed).
    n_features : int, optional
        As for :func:`firing_persistence`.
    threads : int, optional
        Kernel threads.

    Returns
    -------
    xarray.Dataset
        ``frac_nonzero(feature)`` (= ``feature_density``), ``log10_density``
        (= ``log_feature_sparsity``), ``n_fires``, ``dead`` (never fires); attrs ``n_tokens``, ``n_features``, ``n_dead``.

    Examples
    --------
    >>> import xarray as xr
    >>> idx = xr.DataArray(np.array([[0, 1], [1, -1]], dtype=np.int32), dims=("token", "slot"))
    >>> feature_density(idx, n_features=3)["frac_nonzero"].values.tolist()
    [0.5, 1.0, 0.0]
    """
    da, n_features, feature_coord = _resolve(sae_index, n_features)
    if n_features is None:
        n_features = _n_features_of(da)
    _check_args(None, n_features)
    n_tokens = da.sizes["token"]
    if "conversation" not in da.coords or "turn" not in da.coords:  # segments are not needed
        da = da.assign_coords(conversation=("token", np.zeros(n_tokens, dtype=np.int64)),
                              turn=("token", np.zeros(n_tokens, dtype=np.int64)))
    raw, _ = _counts_of(da, None, int(n_features), threads)
    n_fires = raw[_kernel.N_FIRES]
    frac = n_fires / n_tokens if n_tokens else np.full(n_features, np.nan)
    f = ("feature",)
    return xr.Dataset(
        {
            "frac_nonzero": (f, frac, {"long_name": "fraction of tokens at which the feature fires (feature density)"}),
            "feature_density": (f, frac, {"long_name": "fraction of tokens at which the feature fires "
                                                        "(SAEBench's feature_density; = frac_nonzero)"}),
            "log10_density": (f, np.log10(frac + LOG_DENSITY_EPS), {"long_name": "log10(frac_nonzero + 1e-10)"}),
            "log_feature_sparsity": (f, np.log10(frac + LOG_DENSITY_EPS),
                                     {"long_name": "log10(frac_nonzero + 1e-10) (SAELens' log_feature_sparsity, "
                                                   "as in its sparsity.safetensors; = log10_density)"}),
            "n_fires": (f, n_fires, {"long_name": "tokens at which the feature fires"}),
            "dead": (f, n_fires == 0, {"long_name": "never fires"}),
        },
        coords=_feature_coords(n_features, feature_coord),
        attrs={"analysis": "feature_density", "n_tokens": int(n_tokens), "n_features": int(n_features),
               "n_dead": int((n_fires == 0).sum()), "log_density_eps": LOG_DENSITY_EPS,
               "duplicates": "an id in several slots of one token fires once"},
    )
