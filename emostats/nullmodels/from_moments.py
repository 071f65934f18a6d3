"""Lag persistence and variance explained of arbitrary directions (SPEC.md section 2, analysis 4).

From ``/moments``, exactly: the projection ``s_t = v . h_t`` of the
activations on a direction ``v`` has, over the valid lag pairs,
``cov(s_t, s_t+L) = v' Cxy v``, ``var(s_t) = v' Cxx v`` and
``var(s_t+L) = v' Cyy v``, so its pooled Pearson lag correlation is::

    r = v' Cxy v / sqrt(v' Cxx v * v' Cyy v)

and its variance explained is ``v' Sigma v / (|v|^2 trace Sigma)`` (the
direction is normalised, so any length works). For a block of directions
``V`` (rows) each quadratic form is one matrix product ``V M`` followed by a
row-wise dot product with ``V``: four products per block (Sigma, Cxx, Cyy,
Cxy), in float64. From 256 directions on, ``v'Mv = 2 v'Tv`` with ``T`` the
upper triangle of the symmetrised ``M`` (diagonal halved) and ``V T`` a BLAS
triangular product, which halves the flops.

Degenerate directions: when ``v' Cxx v`` or ``v' Cyy v`` is at most
``DEGENERATE_RTOL * |v|^2 * trace`` of its matrix (a zero vector, or a
direction in the null space of the covariance, whose quadratic forms are
rounding noise) ``r`` is NaN, with a ``RuntimeWarning``; variance explained is
clipped at 0 (a tiny negative value is rounding; zero vector: NaN).

From ``/random``: the activations ``random_act(token, direction)`` of the
directions are read and their lag correlation computed like a probe's
(:func:`emostats.persistence.lag_correlation`); variance explained comes from
the group's ``variance_explained``.
"""

import warnings

import numpy as np
import xarray as xr

from ..defaults import LAG
from ..errors import DegenerateWarning, EmostatsError, MissingGroupError, StudyError
from ..persistence import lag_persistence
from ..segments import segments_of

__all__ = ["direction_persistence", "quadratic_forms", "select_lag", "DEFAULT_LAG"]

#: the study's lag (tokens), :data:`emostats.defaults.LAG`
DEFAULT_LAG = LAG
#: directions per matrix product
BLOCK = 512
#: a quadratic form at most this times |v|^2 trace(M) is rounding noise (zero-variance direction)
DEGENERATE_RTOL = 1e-10


def _half_upper(m):
    """S with S[i, j] = (M[i, j] + M[j, i]) / 2 off the diagonal and M[i, i] / 2 on it, so v'Mv = 2 v'Tv
    with T the upper triangle of S (the lower triangle is never read)."""
    s = np.add(m, m.T)
    s *= 0.5
    s[np.diag_indices_from(s)] = 0.5 * np.diagonal(m)
    return s


def quadratic_forms(matrices, vectors, block=BLOCK, method="auto"):
    """``v' M v`` for every row ``v`` of ``vectors`` and every matrix ``M``, blockwise.

    Parameters
    ----------
    matrices : sequence of array_like (hidden, hidden)
    vectors : array_like (n, hidden)
    block : int
        Rows per matrix product (bounds the memory to ``block * hidden`` floats).
    method : {"auto", "gemm", "trmm"}
        ``gemm``: ``rowsum((V M) * V)``, 2 n hidden^2 flops per matrix.
        ``trmm``: ``v'Mv = 2 v'Tv`` with ``T`` the upper triangle of the
        symmetrised matrix with its diagonal halved, and ``V T`` a BLAS
        triangular product: half the flops, plus one (hidden, hidden)
        temporary per matrix. ``auto`` takes ``trmm`` from 256 vectors on.

    Returns
    -------
    numpy.ndarray (len(matrices), n)

    Examples
    --------
    >>> quadratic_forms([np.diag([1.0, 2.0])], np.array([[1.0, 1.0], [0.0, 2.0]])).tolist()
    [[3.0, 8.0]]
    >>> quadratic_forms([np.array([[1.0, 2.0], [0.0, 1.0]])], np.array([[1.0, 1.0]]), method="trmm").tolist()
    [[4.0]]
    """
    from scipy.linalg import blas

    vectors = np.ascontiguousarray(vectors, dtype=np.float64)
    n = vectors.shape[0]
    out = np.empty((len(matrices), n))
    block = max(1, int(block))
    if method == "auto":
        method = "trmm" if n >= 256 else "gemm"
    if method not in ("gemm", "trmm"):
        raise EmostatsError(f"quadratic_forms: method must be 'auto', 'gemm' or 'trmm', got {method!r}")
    for i, m in enumerate(matrices):
        m = np.asarray(m, dtype=np.float64)
        if method == "gemm":
            for start in range(0, n, block):
                vb = vectors[start:start + block]
                out[i, start:start + block] = np.einsum("bh,bh->b", vb @ m, vb)
            continue
        # S is symmetric, so S.T (Fortran-ordered, no copy) is S for BLAS; T = upper triangle of it
        t_fortran = _half_upper(m).T
        for start in range(0, n, block):
            vt = vectors[start:start + block].T  # (hidden, b), Fortran-ordered view
            prod = blas.dtrmm(1.0, t_fortran, vt, side=0, lower=0, trans_a=1)  # T' V' = (V T)'
            out[i, start:start + block] = 2.0 * np.einsum("hb,hb->b", prod, vt)
        del t_fortran
    return out


def select_lag(ds, lag, group="/moments"):
    """The position of ``lag`` on the ``lag`` dim of ``ds`` (None: 100 if present, else the only lag)."""
    if "lag" not in ds.dims:
        raise MissingGroupError(f"{group}: no lag moments (lag_cxx, lag_cyy, lag_cxy); persistence of directions "
                                f"needs them: recompute with emostats.moments(acts, lags=[{DEFAULT_LAG}])")
    lags = np.asarray(ds["lag"].values if "lag" in ds.coords else np.arange(ds.sizes["lag"])).astype(np.int64)
    if lag is None:
        if lags.size == 1:
            return 0, int(lags[0])
        lag = DEFAULT_LAG
    hits = np.flatnonzero(lags == int(lag))
    if hits.size == 0:
        raise StudyError(f"{group}: lag {lag} not among the stored lags {lags.tolist()}; pick one of them "
                         f"(or recompute the moments with that lag)")
    return int(hits[0]), int(lag)


def _direction_array(directions, hidden):
    if directions is None:
        raise EmostatsError("direction_persistence: directions are needed with /moments (e.g. "
                            "emostats.random_directions(moments['cov'], 1000))")
    if isinstance(directions, xr.DataArray):
        if directions.ndim != 2 or "hidden" not in directions.dims:
            raise EmostatsError(f"direction_persistence: directions must be a DataArray (direction, hidden), "
                                f"got dims {directions.dims}")
        directions = directions.transpose(..., "hidden")
        dim = directions.dims[0]
        coords = {k: c for k, c in directions.coords.items() if c.dims == (dim,)}
        values = np.asarray(directions.values, dtype=np.float64)
    else:
        values = np.asarray(directions, dtype=np.float64)
        if values.ndim == 1:
            values = values[None, :]
        if values.ndim != 2:
            raise EmostatsError(f"direction_persistence: directions must be 2-D (direction, hidden), "
                                f"got shape {values.shape}")
        dim, coords = "direction", {}
    if values.shape[1] != hidden:
        raise EmostatsError(f"direction_persistence: directions have hidden={values.shape[1]}; "
                            f"expected {hidden} as in /moments")
    if not np.all(np.isfinite(values)):
        raise EmostatsError("direction_persistence: directions contain NaN/inf; expected finite vectors")
    return values, dim, coords


def _from_moments(ds, directions, lag, block, method="auto"):
    missing = [v for v in ("cov", "lag_cxx", "lag_cyy", "lag_cxy") if v not in ds]
    if missing:
        raise MissingGroupError(f"/moments: variable(s) {', '.join(missing)} missing; direction persistence needs "
                                f"cov and the lag moments (emostats.moments makes them)")
    i, lag = select_lag(ds, lag)
    hidden = ds.sizes["hidden"]
    v, dim, coords = _direction_array(directions, hidden)
    mats = [ds["cov"].values, ds["lag_cxx"].isel(lag=i).values, ds["lag_cyy"].isel(lag=i).values,
            ds["lag_cxy"].isel(lag=i).values]
    q_cov, q_xx, q_yy, q_xy = quadratic_forms(mats, v, block=block, method=method)
    trace, tr_xx, tr_yy = (float(np.trace(np.asarray(m_, dtype=np.float64))) for m_ in mats[:3])
    norm2 = np.einsum("nh,nh->n", v, v)
    ok = (norm2 > 0) & (q_xx > DEGENERATE_RTOL * norm2 * tr_xx) & (q_yy > DEGENERATE_RTOL * norm2 * tr_yy)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(ok, q_xy / np.sqrt(np.where(ok, q_xx * q_yy, 1.0)), np.nan)
        ve = np.where(norm2 > 0, np.maximum(q_cov, 0.0) / (norm2 * trace), np.nan)
    n_pairs = int(ds["lag_n"].isel(lag=i).values) if "lag_n" in ds else -1
    if 0 <= n_pairs < 2:
        warnings.warn(f"direction_persistence: /moments has {n_pairs} valid pairs at lag {lag} (every segment is "
                      f"shorter than the lag); r is NaN for every direction", DegenerateWarning, stacklevel=3)
    elif not ok.all():
        warnings.warn(f"direction_persistence: {int((~ok).sum())} of {ok.size} directions have zero length or zero "
                      f"variance at lag {lag} (v'Cxx v or v'Cyy v <= {DEGENERATE_RTOL:g} |v|^2 trace); their r is NaN",
                      DegenerateWarning, stacklevel=3)
    out = xr.Dataset(
        {"r": (dim, r, {"long_name": f"lag-{lag} persistence (pooled Pearson r of the projection)"}),
         "variance_explained": (dim, ve, {"long_name": "variance explained v'Sv / (|v|^2 tr S)"}),
         "n_pairs": ((), np.int64(n_pairs), {"long_name": "valid lag pairs behind the moments"})},
        coords=coords)
    out = out.assign_coords(lag=np.int64(lag))
    out.attrs.update(lag=lag, source="moments", method="r = v'Cxy v / sqrt(v'Cxx v v'Cyy v) from /moments")
    return out


def _from_random(ds, lag, offsets, threads):
    if "random_act" not in ds:
        raise MissingGroupError("/random: variable random_act(token, direction) missing")
    act = ds["random_act"].transpose("token", ...)
    if "conversation" not in act.coords or "turn" not in act.coords:
        if offsets is None:
            raise StudyError("/random: random_act has no conversation/turn coordinates; pass the whole study "
                             "(segments come from /tokens) or offsets=")
        offsets = np.asarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or offsets[-1] != act.sizes["token"]:
            raise StudyError(f"/random: offsets end at {offsets[-1] if offsets.size else None}; expected "
                             f"{act.sizes['token']} (the tokens of random_act)")
        seg = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
        act = act.assign_coords(conversation=("token", seg), turn=("token", np.zeros_like(seg)))
    lag = DEFAULT_LAG if lag is None else int(lag)
    lp = lag_persistence(act, lag=lag, threads=threads)
    dim = act.dims[1]
    coords = {k: c for k, c in ds.coords.items() if c.dims == (dim,)}
    data = {"r": (dim, np.asarray(lp["r"].values, dtype=np.float64),
                  {"long_name": f"lag-{lag} persistence (pooled Pearson r of random_act)"}),
            "n_pairs": ((), np.int64(lp["n_pairs"].values), {"long_name": "same-segment lag pairs"}),
            "n_masked": (dim, lp["n_masked"].values, {"long_name": "pairs left out because a value is NaN or inf"})}
    if "variance_explained" in ds:
        data["variance_explained"] = (dim, np.asarray(ds["variance_explained"].values, dtype=np.float64),
                                      {"long_name": "variance explained (from /random)"})
    out = xr.Dataset(data, coords=coords).assign_coords(lag=np.int64(lag))
    out.attrs.update(lag=lag, source="random", method="pooled Pearson r of /random random_act over valid pairs")
    return out


def _tokens_offsets(tree):
    if "tokens" not in tree.children:
        raise MissingGroupError("/tokens: group missing; /random needs its conversation and turn coordinates")
    return segments_of(tree["tokens"].to_dataset(inherit=False))


def direction_persistence(moments, directions=None, lag=None, *, block=BLOCK, method="auto", offsets=None,
                          threads=None):
    """Lag persistence and variance explained of directions, exactly from ``/moments`` (or from ``/random``).

    Parameters
    ----------
    moments : xarray.Dataset or xarray.DataTree
        The ``/moments`` group; or a ``/random`` group (a Dataset with
        ``random_act``); or a whole study, which uses ``/moments`` when
        ``directions`` is given and the study has it, else ``/random``.
    directions : xarray.DataArray (direction, hidden) or array_like, optional
        The directions (need not be unit length). Needed with ``/moments``;
        ignored with ``/random`` (its directions are fixed).
    lag : int, optional
        The lag; default: the only lag in ``/moments``, else 100.
    block : int
        Directions per matrix product (memory: ``block * hidden`` float64 per product).
    method : {"auto", "gemm", "trmm"}
        How the quadratic forms are computed (see :func:`quadratic_forms`;
        ``trmm`` halves the flops and needs one hidden x hidden temporary).
    offsets : array_like, optional
        Segment offsets for ``/random`` when ``random_act`` has no
        conversation/turn coordinates (a study tree takes them from ``/tokens``).
    threads : int, optional
        Threads of the lag kernel (``/random`` path).

    Returns
    -------
    xarray.Dataset
        ``r(direction)``, ``variance_explained(direction)``, ``n_pairs``;
        the directions' coordinates (e.g. ``k``); scalar coord ``lag``;
        attrs ``source`` ("moments" or "random") and ``lag``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> acts = np.cumsum(rng.normal(size=(400, 4)), axis=0)
    >>> from emostats.nullmodels import moments
    >>> m = moments(acts, lags=[5], offsets=[0, 200, 400])
    >>> res = direction_persistence(m, np.eye(4))
    >>> res["r"].shape, bool(abs(res["variance_explained"].sum() - 1) < 1e-12)
    ((4,), True)
    """
    if isinstance(moments, xr.DataTree):
        tree = moments
        if directions is not None and "moments" in tree.children:
            return _from_moments(tree["moments"].to_dataset(inherit=False), directions, lag, block, method)
        if "random" in tree.children:
            ds = tree["random"].to_dataset(inherit=False)
            if offsets is None and "conversation" not in ds.coords:
                offsets = _tokens_offsets(tree)
                tokens = tree["tokens"].to_dataset(inherit=False)
                if tokens.sizes.get("token") == ds.sizes.get("token"):
                    ds = ds.assign_coords(conversation=tokens["conversation"], turn=tokens["turn"])
            return _from_random(ds, lag, offsets, threads)
        if "moments" in tree.children:
            raise EmostatsError("direction_persistence: the study has /moments but no directions were given; "
                                "pass directions (e.g. emostats.random_directions(tree['moments']['cov'], 1000))")
        raise MissingGroupError("direction persistence needs /moments or /random; the study has neither "
                                "(make /moments with emostats.moments from raw activations)")
    if isinstance(moments, xr.DataArray) and moments.name == "random_act":
        moments = moments.to_dataset()
    if not isinstance(moments, xr.Dataset):
        raise EmostatsError(f"direction_persistence: expected the /moments (or /random) group as an xarray "
                            f"Dataset or a study DataTree, got {type(moments).__name__}")
    if "random_act" in moments:
        return _from_random(moments, lag, offsets, threads)
    return _from_moments(moments, directions, lag, block, method)
