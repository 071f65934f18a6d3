"""Validation of a study tree against the format of SPEC.md section 1.

:func:`validate` returns every problem found, not just the first, each on one
line naming the group, the variable and the first offending index. Problems
that analyses can work around (NaN or inf activations, which are masked
pairwise) are reported with the prefix ``warning:``; :func:`emostats.open_study`
refuses a study only for the others.

The checks, group by group:

- root: attribute ``emostats_format`` present and equal to 1; group ``/tokens`` present.
- ``/tokens``: dims ``token`` and ``probe``; integer coords ``conversation``,
  ``turn``, ``position`` along ``token``; each (conversation, turn) segment
  contiguous (not split in two places); ``position`` counts 0, 1, 2, ... inside
  every segment; ``probe_act(token, probe)`` present with a float dtype; probe
  names unique; NaN/inf in ``probe_act`` counted; ``sae_index(token, slot)``
  of an integer dtype within ``[-1, n_features)``; ``sae_value`` of the same
  shape as ``sae_index``; ``text`` along ``token`` only.
- ``/features``: integer ``feature`` coord with unique ids; per-feature
  variables along ``feature``; ``decoder(feature, hidden)``; ratings within
  their range or NaN.
- ``/probes``: ``probe`` equal to ``/tokens`` ``probe``; ``vector(probe, hidden)``
  finite; ``variance_explained(probe)`` in [0, 1].
- ``/moments``: ``mean``, ``cov``, ``n`` present; ``hidden_b`` as long as
  ``hidden``; lag variables with a ``lag`` dim; ``n`` and ``lag_n`` positive.
- ``/random``: ``token`` as long as ``/tokens``; ``random_act(token, direction)``
  and ``variance_explained(direction)``; NaN/inf counted.
- ``/steering``: ``steered_act(emotion, sample, offset, probe)`` and
  ``baseline_act(baseline_sample, offset, probe)``; ``probe`` equal to
  ``/tokens`` ``probe``; every ``emotion`` a probe name; NaN/inf counted.
- ``/evaluations``: ``mentions(rated_feature, emotion)`` of 0/1 integers;
  ``cosine`` of the same dims; every ``emotion`` a probe name; every
  ``rated_feature`` a feature id of ``/features``.
- the ``hidden`` dim has one size in ``/features``, ``/probes`` and ``/moments``.
"""

import numpy as np

__all__ = ["validate", "problems_with_severity"]

WARNING = "warning: "


def validate(tree):
    """Every problem of a study tree, one line each (empty list: valid).

    Parameters
    ----------
    tree : xarray.DataTree

    Returns
    -------
    list of str

    Examples
    --------
    >>> import emostats as es
    >>> es.validate(es.open_study(es.example_study()))
    []
    """
    return list(_check(tree))


def problems_with_severity(tree):
    """``(errors, warnings)``: the problems of :func:`validate`, split by severity."""
    problems = validate(tree)
    warns = [p[len(WARNING):] for p in problems if p.startswith(WARNING)]
    errors = [p for p in problems if not p.startswith(WARNING)]
    return errors, warns


def _py(x):
    """A NumPy scalar as the plain Python value (for readable messages)."""
    return x.item() if hasattr(x, "item") else x


def _values(var):
    data = var.data
    if hasattr(data, "compute"):
        data = data.compute()
    return np.asarray(data)


def _first_index(mask):
    """Index tuple of the first True in ``mask`` (as a readable string)."""
    idx = np.unravel_index(int(np.argmax(mask)), mask.shape)
    return ", ".join(str(int(i)) for i in idx)


def _group(tree, name):
    return tree[name].to_dataset(inherit=False) if name in tree.children else None


def _dims(group, ds, var, expected):
    if var not in ds.variables:
        return f"/{group}: variable {var} missing; expected {var}({', '.join(expected)})"
    dims = ds[var].dims
    if tuple(dims) != tuple(expected):
        return f"/{group}: {var} has dims ({', '.join(dims)}); expected ({', '.join(expected)})"
    return None


def _nonfinite(group, ds, var):
    values = _values(ds[var])
    if values.dtype.kind != "f":
        return None
    bad = ~np.isfinite(values)
    count = int(bad.sum())
    if count:
        return (f"{WARNING}/{group}: {var} has {count} NaN/inf values (first at index [{_first_index(bad)}] "
                f"of ({', '.join(ds[var].dims)})); analyses mask them pairwise and report how many")
    return None


def _check(tree):
    fmt = tree.attrs.get("emostats_format")
    if fmt is None:
        yield "/: attribute emostats_format missing; expected emostats_format = 1"
    else:
        try:
            ok = int(np.asarray(fmt).item()) == 1 and float(np.asarray(fmt).item()) == 1.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            yield f"/: emostats_format is {_py(fmt)!r}; this emostats reads format 1"
    tokens = _group(tree, "tokens")
    if tokens is None:
        yield "/tokens: group missing; every study needs /tokens (probe_act and the segment coords)"
        probes = None
        n_tokens = None
    else:
        yield from _check_tokens(tree, tokens)
        probes = _values(tokens["probe"]) if "probe" in tokens.variables else None
        n_tokens = tokens.sizes.get("token")
    features = _group(tree, "features")
    feature_ids = None
    if features is not None:
        yield from _check_features(features)
        if "feature" in features.variables:
            feature_ids = _values(features["feature"])
    for name, check in (("probes", _check_probes), ("moments", _check_moments), ("random", _check_random),
                        ("steering", _check_steering), ("evaluations", _check_evaluations)):
        ds = _group(tree, name)
        if ds is not None:
            yield from check(ds, probes=probes, n_tokens=n_tokens, feature_ids=feature_ids)
    sizes = {g: tree[g].to_dataset(inherit=False).sizes.get("hidden") for g in ("features", "probes", "moments")
             if g in tree.children}
    sizes = {g: s for g, s in sizes.items() if s is not None}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"/{g} {s}" for g, s in sizes.items())
        yield f"/: dim hidden differs across groups ({listed}); all groups describe one hidden space"


def _check_tokens(tree, ds):
    for dim in ("token", "probe"):
        if dim not in ds.dims:
            yield f"/tokens: dim {dim} missing; expected probe_act(token, probe)"
    coords = {}
    for name in ("conversation", "turn", "position"):
        if name not in ds.variables:
            yield f"/tokens: coordinate {name}(token) missing; segments come from conversation and turn"
            continue
        var = ds[name]
        if var.dims != ("token",):
            yield f"/tokens: {name} has dims ({', '.join(var.dims)}); expected ({name}(token))"
            continue
        if var.dtype.kind not in "iu":
            yield f"/tokens: {name} has dtype {var.dtype}; expected an integer dtype"
            continue
        coords[name] = _values(var)
    if "conversation" in coords and "turn" in coords:
        conv, turn = coords["conversation"], coords["turn"]
        n = conv.shape[0]
        new = np.ones(n, dtype=bool)
        if n:
            new[1:] = (conv[1:] != conv[:-1]) | (turn[1:] != turn[:-1])
        starts = np.flatnonzero(new)
        keys = np.stack([conv[starts].astype(np.int64), turn[starts].astype(np.int64)], axis=1)
        if len(keys):
            order = np.lexsort((starts, keys[:, 1], keys[:, 0]))
            sk = keys[order]
            dup = np.flatnonzero(np.all(sk[1:] == sk[:-1], axis=1))
            if dup.size:
                again = np.sort(starts[order][dup + 1])[0]
                c, t = conv[again], turn[again]
                yield (f"/tokens: segment (conversation={c}, turn={t}) is not contiguous: it starts again at "
                       f"token {again}; sort tokens by conversation and turn")
        if "position" in coords:
            pos = coords["position"]
            seg_start = np.maximum.accumulate(np.where(new, np.arange(n), 0)) if n else np.zeros(0, int)
            expected = np.arange(n) - seg_start
            bad = pos != expected
            if bad.any():
                i = int(np.argmax(bad))
                yield (f"/tokens: position at token {i} is {pos[i]}; expected {expected[i]} "
                       f"(position counts 0, 1, 2, ... inside each (conversation, turn) segment)")
    if "probe" in ds.variables:
        names = _values(ds["probe"])
        uniq, counts = np.unique(names, return_counts=True)
        if (counts > 1).any():
            dup = uniq[counts > 1][0]
            first = int(np.flatnonzero(names == dup)[1])
            yield f"/tokens: probe name {_py(dup)!r} is not unique (again at probe index {first}); probe names must be unique"
    problem = _dims("tokens", ds, "probe_act", ("token", "probe"))
    if problem:
        yield problem
    elif ds["probe_act"].dtype.kind != "f":
        yield f"/tokens: probe_act has dtype {ds['probe_act'].dtype}; expected float32 or float64"
    else:
        problem = _nonfinite("tokens", ds, "probe_act")
        if problem:
            yield problem
    if "sae_index" in ds.variables:
        yield from _check_sae(tree, ds)
    elif "sae_value" in ds.variables:
        yield "/tokens: sae_value present without sae_index; expected both sae_index(token, slot) and sae_value"
    if "text" in ds.variables and ds["text"].dims != ("token",):
        yield f"/tokens: text has dims ({', '.join(ds['text'].dims)}); expected text(token)"


def _check_sae(tree, ds):
    problem = _dims("tokens", ds, "sae_index", ("token", "slot"))
    if problem:
        yield problem
        return
    idx = ds["sae_index"]
    if idx.dtype.kind not in "iu":
        yield (f"/tokens: sae_index has dtype {idx.dtype}; expected an integer dtype (int32) "
               f"with -1 for empty slots")
        return
    values = _values(idx)
    n_features = None
    if "features" in tree.children:
        n_features = tree["features"].to_dataset(inherit=False).sizes.get("feature")
    low = values < -1
    if low.any():
        yield (f"/tokens: sae_index at [{_first_index(low)}] (token, slot) is {values[low][0]}; "
               f"expected -1 (empty slot) or a feature index >= 0")
    if n_features is not None:
        high = values >= n_features
        if high.any():
            yield (f"/tokens: sae_index at [{_first_index(high)}] (token, slot) is {values[high][0]}; "
                   f"expected < n_features = {n_features} (size of /features feature)")
    if "sae_value" in ds.variables and ds["sae_value"].shape != idx.shape:
        yield (f"/tokens: sae_value has shape {ds['sae_value'].shape}; expected the shape of "
               f"sae_index {idx.shape}")


def _check_features(ds, **_):
    if "feature" not in ds.variables:
        yield "/features: coordinate feature missing; expected integer feature ids"
        return
    ids = _values(ds["feature"])
    if ids.dtype.kind not in "iu":
        yield f"/features: feature has dtype {ids.dtype}; expected integer feature ids"
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        yield f"/features: feature id {dup} is not unique (index {int(np.flatnonzero(ids == dup)[1])})"
    for name in ("variance_explained", "subspace_fraction", "self_rating", "text_rating"):
        if name in ds.variables and ds[name].dims != ("feature",):
            yield f"/features: {name} has dims ({', '.join(ds[name].dims)}); expected ({name}(feature))"
    for name in ("variance_explained", "subspace_fraction"):
        if name in ds.variables and ds[name].dims == ("feature",):
            v = _values(ds[name])
            bad = ~np.isfinite(v) | (v < 0) | (v > 1 + 1e-9)
            if bad.any():
                i = int(np.argmax(bad))
                yield f"/features: {name} at feature index {i} is {v[i]}; expected a finite value in [0, 1]"
    if "decoder" in ds.variables:
        problem = _dims("features", ds, "decoder", ("feature", "hidden"))
        if problem:
            yield problem


def _same_probes(group, ds, probes):
    if probes is None or "probe" not in ds.variables:
        return None
    names = _values(ds["probe"])
    if names.shape != probes.shape or not np.array_equal(names.astype(str), probes.astype(str)):
        if names.shape != probes.shape:
            return (f"/{group}: probe has {names.shape[0]} entries; expected the {probes.shape[0]} "
                    f"probes of /tokens in the same order")
        i = int(np.argmax(names.astype(str) != probes.astype(str)))
        return f"/{group}: probe at index {i} is {_py(names[i])!r}; expected {_py(probes[i])!r} as in /tokens"
    return None


def _check_probes(ds, probes, **_):
    problem = _same_probes("probes", ds, probes)
    if problem:
        yield problem
    if "vector" in ds.variables:
        problem = _dims("probes", ds, "vector", ("probe", "hidden"))
        if problem:
            yield problem
        else:
            v = _values(ds["vector"])
            bad = ~np.isfinite(v)
            if bad.any():
                yield f"/probes: vector has {int(bad.sum())} NaN/inf values (first at [{_first_index(bad)}] (probe, hidden))"
    if "variance_explained" in ds.variables:
        v = _values(ds["variance_explained"])
        bad = ~np.isfinite(v) | (v < 0) | (v > 1 + 1e-9)
        if bad.any():
            i = int(np.argmax(bad))
            yield f"/probes: variance_explained at probe index {i} is {v[i]}; expected a finite value in [0, 1]"


def _check_moments(ds, **_):
    for var, dims in (("mean", ("hidden",)), ("cov", ("hidden", "hidden_b"))):
        problem = _dims("moments", ds, var, dims)
        if problem:
            yield problem
    if "n" not in ds.variables:
        yield "/moments: variable n missing; expected the number of tokens behind mean and cov"
    elif float(_values(ds["n"])) <= 1:
        yield f"/moments: n is {float(_values(ds['n']))}; expected more than one token"
    if ds.sizes.get("hidden_b", ds.sizes.get("hidden")) != ds.sizes.get("hidden"):
        yield f"/moments: hidden_b has size {ds.sizes['hidden_b']}; expected the size of hidden {ds.sizes.get('hidden')}"
    lag_vars = {"lag_n": ("lag",), "lag_mean_x": ("lag", "hidden"), "lag_mean_y": ("lag", "hidden"),
                "lag_cxx": ("lag", "hidden", "hidden_b"), "lag_cyy": ("lag", "hidden", "hidden_b"),
                "lag_cxy": ("lag", "hidden", "hidden_b")}
    present = [v for v in lag_vars if v in ds.variables]
    if present:
        for var, dims in lag_vars.items():
            problem = _dims("moments", ds, var, dims)
            if problem:
                yield problem
        if "lag_n" in ds.variables:
            n = _values(ds["lag_n"])
            bad = ~(n > 1)
            if bad.any():
                i = int(np.argmax(bad))
                yield f"/moments: lag_n at lag index {i} is {n[i]}; expected more than one valid pair"
    for var in ("mean", "cov", *present):
        if var in ds.variables:
            v = _values(ds[var])
            bad = ~np.isfinite(v)
            if bad.any():
                yield f"/moments: {var} has {int(bad.sum())} NaN/inf values (first at [{_first_index(bad)}])"


def _check_random(ds, n_tokens, **_):
    problem = _dims("random", ds, "random_act", ("token", "direction"))
    if problem:
        yield problem
    else:
        if n_tokens is not None and ds.sizes["token"] != n_tokens:
            yield f"/random: token has size {ds.sizes['token']}; expected {n_tokens} as in /tokens"
        problem = _nonfinite("random", ds, "random_act")
        if problem:
            yield problem
    problem = _dims("random", ds, "variance_explained", ("direction",))
    if problem:
        yield problem


def _check_steering(ds, probes, **_):
    problem = _same_probes("steering", ds, probes)
    if problem:
        yield problem
    for var, dims in (("steered_act", ("emotion", "sample", "offset", "probe")),
                      ("baseline_act", ("baseline_sample", "offset", "probe"))):
        problem = _dims("steering", ds, var, dims)
        if problem:
            yield problem
        else:
            problem = _nonfinite("steering", ds, var)
            if problem:
                yield problem
    if probes is not None and "emotion" in ds.variables:
        emotions = _values(ds["emotion"]).astype(str)
        unknown = ~np.isin(emotions, probes.astype(str))
        if unknown.any():
            i = int(np.argmax(unknown))
            yield f"/steering: emotion at index {i} is {_py(emotions[i])!r}; expected one of the probe names of /tokens"


def _check_evaluations(ds, probes, feature_ids, **_):
    problem = _dims("evaluations", ds, "mentions", ("rated_feature", "emotion"))
    if problem:
        yield problem
    else:
        m = _values(ds["mentions"])
        if m.dtype.kind not in "iub":
            yield f"/evaluations: mentions has dtype {m.dtype}; expected int8 0/1"
        else:
            bad = (m != 0) & (m != 1)
            if bad.any():
                yield (f"/evaluations: mentions at [{_first_index(bad)}] (rated_feature, emotion) is "
                       f"{m[bad][0]}; expected 0 or 1")
    if "cosine" in ds.variables:
        problem = _dims("evaluations", ds, "cosine", ("rated_feature", "emotion"))
        if problem:
            yield problem
    if probes is not None and "emotion" in ds.variables:
        emotions = _values(ds["emotion"]).astype(str)
        unknown = ~np.isin(emotions, probes.astype(str))
        if unknown.any():
            i = int(np.argmax(unknown))
            yield f"/evaluations: emotion at index {i} is {_py(emotions[i])!r}; expected one of the probe names of /tokens"
    if feature_ids is not None and "rated_feature" in ds.variables:
        rated = _values(ds["rated_feature"])
        unknown = ~np.isin(rated, feature_ids)
        if unknown.any():
            i = int(np.argmax(unknown))
            yield f"/evaluations: rated_feature at index {i} is {rated[i]}; expected a feature id of /features"
