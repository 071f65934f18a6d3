"""Checks of the optional groups (``/features`` ... ``/evaluations``) for :mod:`emostats.validation`.

Each check yields one-line problems naming the group, the variable and the
first offending index. Dtypes are checked before any arithmetic, so a
variable of the wrong type is a problem, not a crash.

Moments must be a covariance: ``cov`` (and ``lag_cxx``, ``lag_cyy`` at every
lag) symmetric within ``SYM_RTOL`` times the trace, and positive semidefinite
within ``PSD_RTOL`` times the trace, tested by a Cholesky factorisation of
``C + PSD_RTOL * trace(C) * I`` (it succeeds exactly when the smallest
eigenvalue of ``C`` exceeds ``-PSD_RTOL * trace(C)``; about 8x cheaper than
the smallest eigenvalue by ``eigvalsh``). A passing factorisation of a matrix
with at least ``PSD_CACHE_MIN`` rows is remembered on disk, keyed by the
sha256 of the factorised matrix (:func:`emostats._fileguard.remember`), so
a study is factorised once, not at every opening.
"""

import hashlib

import numpy as np

from ._fileguard import remember, remembered
from ._validate_values import compute, count_first, dtype_problem, scalar

__all__ = ["GROUP_CHECKS", "SYM_RTOL", "PSD_RTOL"]

#: largest |C - C'| allowed, relative to trace(C) (float32 storage of a float64 sum is far inside)
SYM_RTOL = 1e-6
#: most negative eigenvalue allowed, relative to trace(C) (rounding of a rank-deficient covariance)
PSD_RTOL = 1e-6
#: matrices with at least this many rows keep a passing PSD verdict on disk (emostats._fileguard.remember)
PSD_CACHE_MIN = 1024
WARNING = "warning: "


def _py(x):
    return x.item() if hasattr(x, "item") else x


def _index(idx):
    return ", ".join(str(int(i)) for i in idx)


def _dims(group, ds, var, expected):
    if var not in ds.variables:
        return f"/{group}: variable {var} missing; expected {var}({', '.join(expected)})"
    if tuple(ds[var].dims) != tuple(expected):
        return f"/{group}: {var} has dims ({', '.join(ds[var].dims)}); expected ({', '.join(expected)})"
    return None


def _labels(ds, dim):
    return np.asarray(ds[dim].values) if dim in ds.variables and ds[dim].ndim == 1 else None


def _in_range(group, ds, name, where, low=0.0, high=1.0 + 1e-9):
    """A float variable finite within [low, high]; NaN allowed nowhere."""
    problem = dtype_problem(group, name, ds[name], "iuf", "a float dtype")
    if problem:
        yield problem
        return
    count, first = count_first(group, name, ds[name], lambda v: ~np.isfinite(v) | (v < low) | (v > high))
    if count:
        value = np.asarray(ds[name].values[first]).item()
        yield f"/{group}: {name} at {where} index {_index(first)} is {value}; expected a finite value in [0, 1]"


def _nonfinite(group, ds, var, warn=True):
    if ds[var].dtype.kind not in "f":
        return
    count, first = count_first(group, var, ds[var], lambda v: ~np.isfinite(v))
    if count:
        tail = "; analyses mask them pairwise and report how many" if warn else ""
        yield (f"{WARNING if warn else ''}/{group}: {var} has {count} NaN/inf values (first at index "
               f"[{_index(first)}] of ({', '.join(ds[var].dims)})){tail}")


def _unique(group, ds, dim, what):
    labels = _labels(ds, dim)
    if labels is None or not labels.size:
        return None
    text = labels.astype(str)
    uniq, counts = np.unique(text, return_counts=True)
    if (counts > 1).any():
        again = np.flatnonzero(text == uniq[counts > 1][0])
        dup = _py(labels[again[0]])
        shown = dup if isinstance(dup, (int, np.integer)) else repr(dup)
        return f"/{group}: {what} {shown} is not unique (again at index {int(again[1])})"
    return None


def _nonempty(group, ds, dims):
    for dim in dims:
        if ds.sizes.get(dim) == 0:
            yield f"/{group}: dim {dim} has size 0; remove the group or give at least one {dim}"


def check_features(ds, **_):
    if "feature" not in ds.variables:
        yield "/features: coordinate feature missing; expected integer feature ids"
        return
    ids = ds["feature"]
    if ids.dtype.kind not in "iu":
        yield f"/features: feature has dtype {ids.dtype}; expected integer feature ids"
    else:
        problem = _unique("features", ds, "feature", "feature id")
        if problem:
            yield problem
    for name in ("variance_explained", "subspace_fraction", "self_rating", "text_rating"):
        if name in ds.variables and ds[name].dims != ("feature",):
            yield f"/features: {name} has dims ({', '.join(ds[name].dims)}); expected ({name}(feature))"
    for name in ("variance_explained", "subspace_fraction"):
        if name in ds.variables and ds[name].dims == ("feature",):
            yield from _in_range("features", ds, name, "feature")
    for name in ("self_rating", "text_rating"):
        if name in ds.variables and ds[name].dims == ("feature",):
            problem = dtype_problem("features", name, ds[name], "iuf", "a float dtype (NaN = unrated)")
            if problem:
                yield problem
            elif ds[name].dtype.kind == "f":
                count, first = count_first("features", name, ds[name], np.isinf)
                if count:
                    yield f"/features: {name} at feature index {_index(first)} is infinite; expected a rating or NaN"
    if "decoder" in ds.variables:
        problem = _dims("features", ds, "decoder", ("feature", "hidden"))
        if problem:
            yield problem
        else:
            problem = dtype_problem("features", "decoder", ds["decoder"], "f", "float32 or float64")
            yield from [problem] if problem else _nonfinite("features", ds, "decoder", warn=False)


def _same_probes(group, ds, probes):
    if probes is None or "probe" not in ds.variables:
        return None
    names = np.asarray(ds["probe"].values)
    if names.shape != probes.shape:
        return (f"/{group}: probe has {names.size} entries; expected the {probes.shape[0]} "
                f"probes of /tokens in the same order")
    if not np.array_equal(names.astype(str), probes.astype(str)):
        i = int(np.argmax(names.astype(str) != probes.astype(str)))
        return f"/{group}: probe at index {i} is {_py(names[i])!r}; expected {_py(probes[i])!r} as in /tokens"
    return None


def check_probes(ds, probes, **_):
    problem = _same_probes("probes", ds, probes)
    if problem:
        yield problem
    if "vector" in ds.variables:
        problem = _dims("probes", ds, "vector", ("probe", "hidden"))
        if problem:
            yield problem
        else:
            problem = dtype_problem("probes", "vector", ds["vector"], "f", "float32 or float64")
            yield from [problem] if problem else _nonfinite("probes", ds, "vector", warn=False)
    if "variance_explained" in ds.variables:
        if ds["variance_explained"].dims != ("probe",):
            yield (f"/probes: variance_explained has dims ({', '.join(ds['variance_explained'].dims)}); "
                   f"expected (probe)")
        else:
            yield from _in_range("probes", ds, "variance_explained", "probe")


def _covariance(name, cov, where=""):
    """Symmetry and PSD of one square matrix (NumPy float64), within tolerances relative to the trace."""
    trace = float(np.trace(cov))
    if not trace > 0:
        return f"/moments: {name}{where} has trace {trace:g}; a covariance has a positive trace"
    # in place, one hidden x hidden temporary at a time (at hidden 7,168 each is 411 MB; np.eye was one more)
    asym = np.subtract(cov, cov.T)
    np.abs(asym, out=asym)
    if asym.max() > SYM_RTOL * trace:
        i, j = np.unravel_index(int(np.argmax(asym)), asym.shape)
        return (f"/moments: {name}{where} is not symmetric: [{i}, {j}] is {cov[i, j]:.6g} but [{j}, {i}] is "
                f"{cov[j, i]:.6g} (tolerance {SYM_RTOL:g} x trace); a covariance is symmetric")
    del asym
    shifted = np.add(cov, cov.T)
    shifted *= 0.5  # the bits of (cov + cov.T) / 2
    shifted.flat[::cov.shape[0] + 1] += PSD_RTOL * trace  # + PSD_RTOL * trace * eye, without the eye
    # a passing factorisation of a large matrix is remembered on disk by the hash of what was factorised
    # (at hidden 7,168 three of them are 28 CPU s of opening a study; the hash 0.3 s each)
    key = None
    if cov.shape[0] >= PSD_CACHE_MIN:
        key = hashlib.sha256(memoryview(shifted).cast("B")).hexdigest()
        if remembered("psd", key):
            return None
    try:
        np.linalg.cholesky(shifted)
        if key is not None:
            remember("psd", key)
    except np.linalg.LinAlgError:
        low = float(np.linalg.eigvalsh((cov + cov.T) / 2)[0]) if cov.shape[0] <= 512 else None
        said = f" (smallest eigenvalue {low:.4g})" if low is not None else ""
        return (f"/moments: {name}{where} is not positive semidefinite{said}, beyond {PSD_RTOL:g} x trace "
                f"{trace:.4g}; a covariance has no negative eigenvalues")
    return None


def check_moments(ds, **_):
    for var, dims in (("mean", ("hidden",)), ("cov", ("hidden", "hidden_b"))):
        problem = _dims("moments", ds, var, dims)
        if problem:
            yield problem
    yield from _nonempty("moments", ds, ("hidden",))
    if "n" not in ds.variables:
        yield "/moments: variable n missing; expected the number of tokens behind mean and cov"
    else:
        n, problem = scalar("moments", "n", ds["n"])
        if problem:
            yield problem
        elif n <= 1:
            yield f"/moments: n is {n}; expected more than one token"
    if ds.sizes.get("hidden_b", ds.sizes.get("hidden")) != ds.sizes.get("hidden"):
        yield f"/moments: hidden_b has size {ds.sizes['hidden_b']}; expected the size of hidden {ds.sizes.get('hidden')}"
        return
    lag_vars = {"lag_n": ("lag",), "lag_mean_x": ("lag", "hidden"), "lag_mean_y": ("lag", "hidden"),
                "lag_cxx": ("lag", "hidden", "hidden_b"), "lag_cyy": ("lag", "hidden", "hidden_b"),
                "lag_cxy": ("lag", "hidden", "hidden_b")}
    present = [v for v in lag_vars if v in ds.variables]
    shapes_ok = True
    for var, dims in lag_vars.items() if present else ():
        problem = _dims("moments", ds, var, dims)
        if problem:
            shapes_ok = False
            yield problem
    numeric = []
    for var in ("mean", "cov", *present):
        if var in ds.variables:
            problem = dtype_problem("moments", var, ds[var], "iuf", "a float dtype")
            if problem:
                yield problem
                continue
            numeric.append(var)
            bad = list(_nonfinite("moments", ds, var, warn=False))
            if bad:
                yield from bad
                shapes_ok = False
    if "lag_n" in numeric:
        count, first = count_first("moments", "lag_n", ds["lag_n"], lambda n: ~(n > 1))
        if count:
            yield (f"/moments: lag_n at lag index {_index(first)} is {np.asarray(ds['lag_n'].values)[first].item()}; "
                   f"expected more than one valid pair")
    if "cov" in numeric and _dims("moments", ds, "cov", ("hidden", "hidden_b")) is None and shapes_ok is not False:
        cov, = compute("moments", "cov", ds["cov"].data)
        problem = _covariance("cov", np.asarray(cov, dtype=np.float64))
        if problem:
            yield problem
    if shapes_ok:
        for var in ("lag_cxx", "lag_cyy"):
            if var not in numeric:
                continue
            for i in range(ds.sizes.get("lag", 0)):
                mat, = compute("moments", var, ds[var].data[i])
                problem = _covariance(var, np.asarray(mat, dtype=np.float64), f" at lag index {i}")
                if problem:
                    yield problem
                    break


def check_random(ds, n_tokens, **_):
    problem = _dims("random", ds, "random_act", ("token", "direction"))
    if problem:
        yield problem
    else:
        if n_tokens is not None and ds.sizes["token"] != n_tokens:
            yield f"/random: token has size {ds.sizes['token']}; expected {n_tokens} as in /tokens"
        yield from _nonempty("random", ds, ("direction",))
        problem = dtype_problem("random", "random_act", ds["random_act"], "f", "float32 or float64")
        yield from [problem] if problem else _nonfinite("random", ds, "random_act")
    problem = _dims("random", ds, "variance_explained", ("direction",))
    if problem:
        yield problem
    else:
        yield from _in_range("random", ds, "variance_explained", "direction")


def _known_emotions(group, ds, probes):
    if probes is None or "emotion" not in ds.variables or ds["emotion"].ndim != 1:
        return
    emotions = np.asarray(ds["emotion"].values).astype(str)
    unknown = ~np.isin(emotions, probes.astype(str))
    if unknown.any():
        i = int(np.argmax(unknown))
        yield f"/{group}: emotion at index {i} is {_py(emotions[i])!r}; expected one of the probe names of /tokens"
    problem = _unique(group, ds, "emotion", "emotion")
    if problem:
        yield problem


def check_steering(ds, probes, **_):
    problem = _same_probes("steering", ds, probes)
    if problem:
        yield problem
    for var, dims in (("steered_act", ("emotion", "sample", "offset", "probe")),
                      ("baseline_act", ("baseline_sample", "offset", "probe"))):
        problem = _dims("steering", ds, var, dims)
        if problem:
            yield problem
            continue
        problem = dtype_problem("steering", var, ds[var], "f", "float32 or float64")
        yield from [problem] if problem else _nonfinite("steering", ds, var)
    yield from _nonempty("steering", ds, ("emotion", "sample", "baseline_sample", "offset", "probe"))
    if "offset" in ds.variables:
        problem = dtype_problem("steering", "offset", ds["offset"], "iu", "integer token offsets")
        if problem:
            yield problem
        else:
            problem = _unique("steering", ds, "offset", "offset")
            if problem:
                yield problem
    yield from _known_emotions("steering", ds, probes)


def check_evaluations(ds, probes, feature_ids, **_):
    problem = _dims("evaluations", ds, "mentions", ("rated_feature", "emotion"))
    if problem:
        yield problem
    else:
        m = ds["mentions"]
        if m.dtype.kind not in "iub":
            yield f"/evaluations: mentions has dtype {m.dtype}; expected int8 0/1"
        else:
            count, first = count_first("evaluations", "mentions", m, lambda v: (v != 0) & (v != 1))
            if count:
                yield (f"/evaluations: mentions at [{_index(first)}] (rated_feature, emotion) is "
                       f"{np.asarray(m.values)[first].item()}; expected 0 or 1")
    if "cosine" in ds.variables:
        problem = _dims("evaluations", ds, "cosine", ("rated_feature", "emotion"))
        if problem:
            yield problem
        else:
            problem = dtype_problem("evaluations", "cosine", ds["cosine"], "f", "float32 or float64")
            if problem:
                yield problem
            else:
                count, first = count_first("evaluations", "cosine", ds["cosine"], np.isinf)
                if count:
                    yield (f"/evaluations: cosine at [{_index(first)}] (rated_feature, emotion) is "
                           f"{np.asarray(ds['cosine'].values)[first].item()}; expected a finite value or NaN")
    yield from _known_emotions("evaluations", ds, probes)
    if feature_ids is not None and "rated_feature" in ds.variables:
        rated = np.asarray(ds["rated_feature"].values)
        if rated.dtype.kind not in "iu":
            yield f"/evaluations: rated_feature has dtype {rated.dtype}; expected feature ids (integers)"
            return
        unknown = ~np.isin(rated, feature_ids) if feature_ids.dtype.kind in "iu" else np.zeros(rated.shape, bool)
        if unknown.any():
            i = int(np.argmax(unknown))
            yield f"/evaluations: rated_feature at index {i} is {rated[i]}; expected a feature id of /features"
        problem = _unique("evaluations", ds, "rated_feature", "rated_feature")
        if problem:
            yield problem


GROUP_CHECKS = (("features", check_features), ("probes", check_probes), ("moments", check_moments),
                ("random", check_random), ("steering", check_steering), ("evaluations", check_evaluations))
