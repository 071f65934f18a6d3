"""The ``/moments`` group from raw activations, in one streaming pass.

Anyone with raw layer activations ``(token, hidden)`` can make the ``/moments``
group of a study (SPEC.md section 1) with :func:`moments`: the mean and
covariance over all tokens, and for each lag ``L`` the means and centred
(co)variances of the valid lag pairs (x = token t, y = token t+L, both in one
segment).

The activations are read block by block along ``token`` (a NumPy array, a
dask array, a lazily loaded or dask-backed DataArray); every block is read
once. The statistics of each block are computed about the block's own means
in float64 and merged exactly into the running totals with the pairwise update
of Chan, Golub and LeVeque (1979):
``mean = mean_a + d * n_b / n`` and ``M = M_a + M_b + d d' * n_a n_b / n``
with ``d = mean_b - mean_a``. So activations with a large common offset lose
no digits, and the result does not depend on the block size beyond rounding.

A lag pair is assigned to the block that holds its later token ``t+L``; the
last ``max(lags)`` rows of the previous blocks are kept in memory so that its
earlier token is at hand without reading anything twice.

Covariances are population covariances (divided by the number of tokens or
pairs, ddof=0). Persistence and variance explained are ratios of them, so the
choice does not change any analysis.
"""

import numpy as np
import xarray as xr

from ..errors import EmostatsError, StudyError
from ..segments import segments_of

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

    def add(self, x, y=None):
        nb = x.shape[0]
        if nb == 0:
            return
        bx = x.mean(axis=0)
        xc = x - bx
        bxx = xc.T @ xc
        if self.paired:
            by = y.mean(axis=0)
            yc = y - by
            byy = yc.T @ yc
            bxy = xc.T @ yc
        na = self.n
        n = na + nb
        if na == 0:
            self.mean_x, self.mxx = bx, bxx
            if self.paired:
                self.mean_y, self.myy, self.mxy = by, byy, bxy
            self.n = n
            return
        w = na * nb / n
        dx = bx - self.mean_x
        self.mean_x = self.mean_x + dx * (nb / n)
        self.mxx += bxx
        self.mxx += w * np.outer(dx, dx)
        if self.paired:
            dy = by - self.mean_y
            self.mean_y = self.mean_y + dy * (nb / n)
            self.myy += byy
            self.myy += w * np.outer(dy, dy)
            self.mxy += bxy
            self.mxy += w * np.outer(dx, dy)
        self.n = n

    def covariances(self):
        """Population covariances (NaN when there are no rows)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = 1.0 / self.n if self.n else np.nan
            out = [self.mxx * scale]
            if self.paired:
                out += [self.myy * scale, self.mxy * scale]
        return out


def _check_lags(lags):
    lags = np.atleast_1d(np.asarray(lags if lags is not None else (), dtype=np.int64)).ravel()
    if lags.size and lags.min() < 1:
        raise EmostatsError(f"lags must be >= 1, got {lags.tolist()}; lag 0 is the covariance itself")
    if np.unique(lags).size != lags.size:
        raise EmostatsError(f"lags must be unique, got {lags.tolist()}")
    return lags


def _block_bounds(n_tokens, hidden, chunks, block_tokens):
    if block_tokens is not None:
        step = int(block_tokens)
        if step < 1:
            raise EmostatsError(f"block_tokens must be >= 1, got {block_tokens}")
        edges = np.arange(0, n_tokens, step)
    elif chunks is not None:
        edges = np.concatenate(([0], np.cumsum(chunks)[:-1]))
    else:
        step = max(1, BLOCK_BYTES // (8 * max(hidden, 1)))
        edges = np.arange(0, n_tokens, step)
    ends = np.append(edges[1:], n_tokens)
    return [(int(s), int(e)) for s, e in zip(edges, ends) if e > s]


def _read(acts, s, e):
    block = acts[s:e]
    if isinstance(block, xr.DataArray):
        block = block.values  # loads lazily indexed or dask-backed data
    elif hasattr(block, "compute"):
        block = block.compute()
    return np.asarray(block, dtype=np.float64)


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
        seg_start = np.repeat(offsets[:-1], np.diff(offsets))
    max_lag = int(lags.max()) if lags.size else 0
    chunks = getattr(acts, "chunks", None)
    token_chunks = chunks[0] if chunks and isinstance(chunks[0], tuple) else None

    full = MomentAccumulator(hidden)
    pairs = [MomentAccumulator(hidden, paired=True) for _ in lags]
    tail = np.empty((0, hidden))
    tail_ok = np.empty(0, dtype=bool)
    n_dropped = 0
    for s, e in _block_bounds(n_tokens, hidden, token_chunks, block_tokens):
        block = _read(acts, s, e)
        ok = np.isfinite(block).all(axis=1)
        if not ok.all():
            if nonfinite == "raise":
                t = int(np.flatnonzero(~ok)[0])
                h = int(np.flatnonzero(~np.isfinite(block[t]))[0])
                raise StudyError(f"activations: non-finite value {block[t, h]} at token {s + t}, hidden {h}; "
                                 f"moments need finite activations (drop or repair those tokens)")
            n_dropped += int((~ok).sum())
            full.add(block[ok])
        else:
            full.add(block)
        if max_lag:
            buf = np.concatenate((tail, block)) if tail.shape[0] else block
            buf_ok = np.concatenate((tail_ok, ok))
            buf_start = s - tail.shape[0]
            u = np.arange(s, e)
            for acc, lag in zip(pairs, lags):
                ends = u[u - lag >= seg_start[s:e]]
                if not buf_ok.all():
                    ends = ends[buf_ok[ends - buf_start] & buf_ok[ends - lag - buf_start]]
                if ends.size:
                    acc.add(buf[ends - lag - buf_start], buf[ends - buf_start])
            tail = buf[-max_lag:] if buf.shape[0] > max_lag else buf
            tail_ok = buf_ok[-tail.shape[0]:] if tail.shape[0] else buf_ok[:0]
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


def moments(acts, lags=(100,), offsets=None, *, block_tokens=None, dim="token"):
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
    return ds
