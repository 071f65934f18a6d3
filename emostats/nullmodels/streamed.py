"""The ``/moments`` group from raw activations, in one streaming pass.

Anyone with raw layer activations ``(token, hidden)`` can make the ``/moments``
group of a study (SPEC.md section 1) with :func:`moments`: the mean and
covariance over all tokens, and for each lag ``L`` the means and centred
(co)variances of the valid lag pairs (x = token t, y = token t+L, both in one
segment).

The activations are reduced chunk by chunk along ``token`` with
:func:`emostats._chunks.reduce_over_chunks` (the one chunk scheme of the
package): a dask array (or dask-backed DataArray) over its chunks, in parallel
under the active dask scheduler; anything else (a NumPy array, a lazily loaded
DataArray) block by block, one block in memory at a time. Each chunk's task
gets its own rows plus the first ``max(lags)`` rows after it and counts the
lag pairs whose *first* token ``t`` is its own. The statistics of each chunk
are computed about the chunk's own means in float64 and merged exactly, in
chunk order, with the pairwise update of Chan, Golub and LeVeque (1979):
``mean = mean_a + d * n_b / n`` and ``M = M_a + M_b + d d' * n_a n_b / n``
with ``d = mean_b - mean_a``. So activations with a large common offset lose
no digits, the result does not depend on the block size beyond rounding, and
the same chunks give the same bits in memory and under dask.

Covariances are population covariances (divided by the number of tokens or
pairs, ddof=0). Persistence and variance explained are ratios of them, so the
choice does not change any analysis.
"""

import numpy as np
import xarray as xr

from .._chunks import is_dask, reduce_over_chunks, token_bounds
from ..defaults import LAG
from ..errors import EmostatsError, StudyError
from ..segments import segments_of
from .eigenspace import store_eigenspace

__all__ = ["moments", "moment_arrays", "MomentAccumulator"]

#: float64 bytes per block of activations read at a time (when the input has no dask chunks)
BLOCK_BYTES = 32 * 2**20


class MomentAccumulator:
    """Running count, mean and centred co-moment sums of paired vectors.

    ``add(x, y)`` merges a block of pairs (rows of ``x`` and ``y``); with
    ``y=None`` only the moments of ``x`` are kept. The merge is the exact
    pairwise update of Chan et al., so any split into blocks gives the same
    totals up to rounding.

    Examples
    --------
    >>> acc = MomentAccumulator(2)
    >>> acc.add(np.array([[1.0, 2.0], [3.0, 6.0]]))
    >>> acc.add(np.array([[5.0, 10.0]]))
    >>> acc.n, acc.mean_x.tolist(), (acc.mxx / acc.n)[0].tolist()
    (3, [3.0, 6.0], [2.6666666666666665, 5.333333333333333])
    """

    def __init__(self, hidden, paired=False):
        self.n = 0
        self.paired = paired
        self.mean_x = np.zeros(hidden)
        self.mxx = np.zeros((hidden, hidden))
        if paired:
            self.mean_y = np.zeros(hidden)
            self.myy = np.zeros((hidden, hidden))
            self.mxy = np.zeros((hidden, hidden))

    @classmethod
    def of(cls, x, y=None):
        """The accumulator of one block of rows (pairs ``(x[i], y[i])`` when ``y`` is given)."""
        acc = cls(x.shape[1], paired=y is not None)
        nb = x.shape[0]
        if nb == 0:
            return acc
        acc.n = nb
        acc.mean_x = x.mean(axis=0)
        xc = x - acc.mean_x
        acc.mxx = xc.T @ xc
        if y is not None:
            acc.mean_y = y.mean(axis=0)
            yc = y - acc.mean_y
            acc.myy = yc.T @ yc
            acc.mxy = xc.T @ yc
        return acc

    def add(self, x, y=None):
        """Merge a block of rows (or pairs) into the totals."""
        self.merge(MomentAccumulator.of(x, y if self.paired else None))

    def merge(self, other):
        """Merge another accumulator into this one (exact pairwise update); returns self."""
        nb = other.n
        if nb == 0:
            return self
        na = self.n
        n = na + nb
        if na == 0:
            self.mean_x, self.mxx = other.mean_x, other.mxx
            if self.paired:
                self.mean_y, self.myy, self.mxy = other.mean_y, other.myy, other.mxy
            self.n = n
            return self
        w = na * nb / n
        dx = other.mean_x - self.mean_x
        self.mean_x = self.mean_x + dx * (nb / n)
        self.mxx += other.mxx
        self.mxx += w * np.outer(dx, dx)
        if self.paired:
            dy = other.mean_y - self.mean_y
            self.mean_y = self.mean_y + dy * (nb / n)
            self.myy += other.myy
            self.myy += w * np.outer(dy, dy)
            self.mxy += other.mxy
            self.mxy += w * np.outer(dx, dy)
        self.n = n
        return self

    def covariances(self):
        """Population covariances (NaN when there are no rows)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = 1.0 / self.n if self.n else np.nan
            out = [self.mxx * scale]
            if self.paired:
                out += [self.myy * scale, self.mxy * scale]
        return out


def _block_size(block_tokens):
    step = int(block_tokens)
    if step < 1:
        raise EmostatsError(f"block_tokens must be >= 1, got {block_tokens}")
    return step


def _check_lags(lags):
    lags = np.atleast_1d(np.asarray(lags if lags is not None else (), dtype=np.int64)).ravel()
    if lags.size and lags.min() < 1:
        raise EmostatsError(f"lags must be >= 1, got {lags.tolist()}; lag 0 is the covariance itself")
    if np.unique(lags).size != lags.size:
        raise EmostatsError(f"lags must be unique, got {lags.tolist()}")
    return lags


def _chunk_moments(block, span, lags, nonfinite):
    """Moments of one chunk: all its own rows, and the lag pairs whose first token is its own."""
    block = np.asarray(block, dtype=np.float64)
    own = span.own
    ok = np.isfinite(block).all(axis=1)
    if not ok[:own].all():
        if nonfinite == "raise":
            t = int(np.flatnonzero(~ok[:own])[0])
            h = int(np.flatnonzero(~np.isfinite(block[t]))[0])
            raise StudyError(f"activations: non-finite value {block[t, h]} at token {span.start + t}, hidden {h}; "
                             f"moments need finite activations (drop or repair those tokens)")
    full = MomentAccumulator.of(block[:own][ok[:own]] if not ok[:own].all() else block[:own])
    pairs = []
    if lags.size:
        offs = span.offsets
        seg_end = np.repeat(offs[1:], np.diff(offs))[:own]  # end of each own row's segment (block-local)
        rows = np.arange(own)
        for lag in lags.tolist():
            t = rows[rows + lag < seg_end]
            if not ok.all():
                t = t[ok[t] & ok[t + lag]]
            pairs.append(MomentAccumulator.of(block[t], block[t + lag]))
    return full, pairs, int((~ok[:own]).sum())


def _merge_chunks(*parts):
    """Merge chunk results in order (into the first)."""
    full, pairs, dropped = parts[0]
    for f, p, d in parts[1:]:
        full.merge(f)
        for acc, other in zip(pairs, p):
            acc.merge(other)
        dropped += d
    return full, pairs, dropped


def moment_arrays(acts, lags=(), offsets=None, block_tokens=None, nonfinite="raise"):
    """NumPy core of :func:`moments`: a dict of float64 arrays and counts.

    Parameters
    ----------
    acts : array_like (n_tokens, hidden)
        NumPy, dask or anything sliceable along the first axis.
    lags : sequence of int
        Lags (>= 1) for the lag moments.
    offsets : array_like of int64
        CSR segment offsets (required when ``lags`` is not empty).
    block_tokens : int, optional
        Tokens per block; default: the dask chunks, else about 32 MiB of float64.
    nonfinite : {"raise", "drop"}
        A token with a NaN/inf value raises a StudyError, or ("drop") is left
        out of the moments and of every lag pair it belongs to.

    Returns
    -------
    dict with ``n``, ``n_dropped`` (tokens left out), ``mean``, ``cov`` and, stacked along the lag axis,
    ``lag_n``, ``lag_mean_x``, ``lag_mean_y``, ``lag_cxx``, ``lag_cyy``, ``lag_cxy``.
    """
    lags = _check_lags(lags)
    if nonfinite not in ("raise", "drop"):
        raise EmostatsError(f"nonfinite must be 'raise' or 'drop', got {nonfinite!r}")
    shape = getattr(acts, "shape", None)
    if shape is None or len(shape) != 2:
        raise EmostatsError(f"activations must be 2-D (token, hidden), got shape {shape}")
    n_tokens, hidden = int(shape[0]), int(shape[1])
    if lags.size:
        if offsets is None:
            raise EmostatsError("lag moments need segment offsets: pass offsets= (CSR, see "
                                "emostats.segments) or a DataArray with conversation and turn coords")
        offsets = np.asarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or offsets[0] != 0 or offsets[-1] != n_tokens or np.any(np.diff(offsets) < 0):
            raise EmostatsError(f"offsets must rise from 0 to n_tokens={n_tokens}; got {offsets[:3].tolist()}"
                                f"...{offsets[-3:].tolist()} (length {offsets.size})")
    max_lag = int(lags.max()) if lags.size else 0
    bounds = None
    if is_dask(acts):
        if block_tokens is not None:
            acts = (acts.data if hasattr(acts, "dims") else acts).rechunk({0: _block_size(block_tokens)})
    else:
        step = _block_size(block_tokens) if block_tokens is not None else max(1, BLOCK_BYTES // (8 * max(hidden, 1)))
        bounds = token_bounds(n_tokens, block_tokens=step)

    def chunk(block, span):
        return _chunk_moments(block, span, lags, nonfinite)

    # a left fold (one running total): the statistics are hidden x hidden matrices, too large to hold many
    merged = reduce_over_chunks(acts, max_lag, chunk, _merge_chunks, offsets=offsets if lags.size else None,
                                bounds=bounds, fan_in=None)
    if merged is None:
        merged = (MomentAccumulator(hidden), [MomentAccumulator(hidden, paired=True) for _ in lags], 0)
    full, pairs, n_dropped = merged
    out = {"n": full.n, "n_dropped": n_dropped, "mean": full.mean_x, "cov": full.covariances()[0]}
    if lags.size:
        covs = [acc.covariances() for acc in pairs]
        out.update(
            lag=lags,
            lag_n=np.array([acc.n for acc in pairs], dtype=np.int64),
            lag_mean_x=np.stack([acc.mean_x for acc in pairs]),
            lag_mean_y=np.stack([acc.mean_y for acc in pairs]),
            lag_cxx=np.stack([c[0] for c in covs]),
            lag_cyy=np.stack([c[1] for c in covs]),
            lag_cxy=np.stack([c[2] for c in covs]),
        )
    return out


def moments(acts, lags=(LAG,), offsets=None, *, block_tokens=None, dim="token", eigenvectors=None):
    """The ``/moments`` group of a study from raw activations, in one streaming pass.

    Parameters
    ----------
    acts : xarray.DataArray or array_like, shape (token, hidden)
        Raw layer activations. A DataArray brings its segments with its
        ``conversation`` and ``turn`` coordinates; it may be dask-backed (each
        dask chunk along ``token`` is computed once, in order).
    lags : sequence of int
        Lags of the lag-pair moments (default ``(100,)``); ``()`` for none.
    offsets : array_like of int, optional
        CSR segment offsets (see :mod:`emostats.segments`); needed for plain
        arrays when ``lags`` is not empty.
    block_tokens : int, optional
        Tokens per block (default: dask chunks, else about 32 MiB).
    dim : str
        Name of the token dim of a DataArray; the other dim is the hidden dim.
    eigenvectors : int or "sweep", optional
        Also store the leading eigenvalues and eigenvectors of ``cov``
        (``eigenvalues(eigen)``, ``eigenvectors(hidden, eigen)``), so that no
        analysis of the study decomposes the covariance again
        (:func:`emostats.nullmodels.store_eigenspace`; ``"sweep"``: as many as
        the default candidate sweep needs).

    Returns
    -------
    xarray.Dataset
        ``mean(hidden)``, ``cov(hidden, hidden_b)``, ``n`` and, per lag,
        ``lag_n(lag)``, ``lag_mean_x(lag, hidden)``, ``lag_mean_y``,
        ``lag_cxx(lag, hidden, hidden_b)``, ``lag_cyy``, ``lag_cxy`` (x = token
        t, y = token t+lag, over valid pairs). Covariances divide by the count
        (ddof=0); ``lag_cxy[h, g]`` is cov(x_h, y_g).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> acts = rng.normal(size=(50, 3))
    >>> m = moments(acts, lags=[2], offsets=[0, 20, 50])
    >>> int(m["lag_n"][0]), int(m["n"])
    (46, 50)
    >>> bool(np.allclose(m["cov"], np.cov(acts.T, ddof=0)))
    True
    """
    hidden_coord = None
    hidden_dim = "hidden"
    if isinstance(acts, xr.DataArray):
        if acts.ndim != 2 or dim not in acts.dims:
            raise EmostatsError(f"activations: expected a 2-D DataArray with a '{dim}' dim, got dims {acts.dims}")
        acts = acts.transpose(dim, ...)
        hidden_dim = acts.dims[1]
        if hidden_dim in acts.coords:
            hidden_coord = acts[hidden_dim].values
        if offsets is None and _check_lags(lags).size:
            offsets = segments_of(acts, dim=dim)
    arrays = moment_arrays(acts, lags, offsets, block_tokens=block_tokens)
    h, hb = "hidden", "hidden_b"
    ds = xr.Dataset(
        {
            "mean": ((h,), arrays["mean"], {"long_name": "mean activation over all tokens"}),
            "cov": ((h, hb), arrays["cov"], {"long_name": "covariance of activations over all tokens (ddof=0)"}),
            "n": ((), np.int64(arrays["n"]), {"long_name": "number of tokens"}),
        }
    )
    if "lag" in arrays:
        ds = ds.assign_coords(lag=("lag", arrays["lag"], {"long_name": "lag (tokens)"}))
        lag_vars = {
            "lag_n": (("lag",), arrays["lag_n"], "number of valid lag pairs (t, t+lag in one segment)"),
            "lag_mean_x": (("lag", h), arrays["lag_mean_x"], "mean activation at t over valid pairs"),
            "lag_mean_y": (("lag", h), arrays["lag_mean_y"], "mean activation at t+lag over valid pairs"),
            "lag_cxx": (("lag", h, hb), arrays["lag_cxx"], "covariance of activations at t over valid pairs"),
            "lag_cyy": (("lag", h, hb), arrays["lag_cyy"], "covariance of activations at t+lag over valid pairs"),
            "lag_cxy": (("lag", h, hb), arrays["lag_cxy"],
                        "cross-covariance cov(x_t[hidden], x_t+lag[hidden_b]) over valid pairs"),
        }
        for name, (dims, values, long_name) in lag_vars.items():
            ds[name] = (dims, values, {"long_name": long_name})
    if hidden_coord is not None:
        ds = ds.assign_coords(hidden=hidden_coord, hidden_b=hidden_coord)
    ds.attrs.update(ddof=0, source_hidden_dim=hidden_dim,
                    method="one streaming pass, per-block centred moments merged exactly (Chan et al. 1979)")
    if eigenvectors is not None:
        ds = store_eigenspace(ds, eigenvectors)
    return ds
