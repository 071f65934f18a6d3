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
- the ``hidden`` dim has one size in ``/features``, ``/probes`` and ``/moments``,
  and the same labels where it has labels.

Empty dims that leave an analysis nothing to compute (no tokens, no probes, a
steering group without offsets or samples) are errors. Attributes and scalars
of the wrong type (``emostats_format`` of inf or an array, ``n`` as a string)
are one-line problems, never a crash; every value is checked for its dtype
before any arithmetic. Values are reduced chunk by chunk on dask-backed
studies (:mod:`emostats._validate_values`), and segments are found by
:func:`emostats.segments.scan_segments`, the same integer logic the analyses use.
"""

import numpy as np

from ._validate_groups import GROUP_CHECKS
from ._validate_values import Unreadable, count_first, dtype_problem, show, value_at
from .segments import scan_segments

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
    problems = []
    try:
        for problem in _check(tree):
            problems.append(problem)
    except Unreadable as exc:  # damaged data: say so, after what was found before it
        problems.append(str(exc))
    return problems


def problems_with_severity(tree):
    """``(errors, warnings)``: the problems of :func:`validate`, split by severity."""
    problems = validate(tree)
    warns = [p[len(WARNING):] for p in problems if p.startswith(WARNING)]
    errors = [p for p in problems if not p.startswith(WARNING)]
    return errors, warns


def _py(x):
    """A NumPy scalar as the plain Python value (for readable messages)."""
    return x.item() if hasattr(x, "item") else x


def _index(idx):
    return ", ".join(str(int(i)) for i in idx)


def _group(tree, name):
    return tree[name].to_dataset(inherit=False) if name in tree.children else None


def _format_problem(fmt):
    if fmt is None:
        return "/: attribute emostats_format missing; expected emostats_format = 1"
    arr = np.asarray(fmt)
    ok = arr.size == 1 and arr.dtype.kind in "iuf" and np.isfinite(arr.astype(float)).all() and arr.item() == 1
    if ok:
        return None
    if arr.dtype.kind not in "iuf" or arr.size != 1:
        return f"/: emostats_format is {show(fmt)}; expected the integer 1 (this emostats reads format 1)"
    return f"/: emostats_format is {show(fmt)}; this emostats reads format 1"


def _check(tree):
    problem = _format_problem(tree.attrs.get("emostats_format"))
    if problem:
        yield problem
    tokens = _group(tree, "tokens")
    probes, n_tokens = None, None
    if tokens is None:
        yield "/tokens: group missing; every study needs /tokens (probe_act and the segment coords)"
    else:
        yield from _check_tokens(tree, tokens)
        if "probe" in tokens.variables and tokens["probe"].ndim == 1:
            probes = np.asarray(tokens["probe"].values)
        n_tokens = tokens.sizes.get("token")
    feature_ids = None
    features = _group(tree, "features")
    if features is not None and "feature" in features.variables and features["feature"].ndim == 1:
        feature_ids = np.asarray(features["feature"].values)
    for name, check in GROUP_CHECKS:
        ds = _group(tree, name)
        if ds is not None:
            yield from check(ds, probes=probes, n_tokens=n_tokens, feature_ids=feature_ids)
    yield from _check_hidden(tree)


def _check_hidden(tree):
    groups = [g for g in ("features", "probes", "moments") if g in tree.children]
    sizes = {g: tree[g].to_dataset(inherit=False).sizes.get("hidden") for g in groups}
    sizes = {g: s for g, s in sizes.items() if s is not None}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"/{g} {s}" for g, s in sizes.items())
        yield f"/: dim hidden differs across groups ({listed}); all groups describe one hidden space"
        return
    labelled = {}
    for g in groups:
        ds = tree[g].to_dataset(inherit=False)
        for dim in ("hidden", "hidden_b"):
            if dim in ds.variables and ds[dim].ndim == 1:
                labelled[f"/{g} {dim}"] = np.asarray(ds[dim].values)
    if len(labelled) > 1:
        (ref_name, ref), *rest = labelled.items()
        for name, labels in rest:
            if labels.shape == ref.shape and not np.array_equal(labels.astype(str), ref.astype(str)):
                i = int(np.argmax(labels.astype(str) != ref.astype(str)))
                yield (f"{name.split()[0]}: {name.split()[1]} label at index {i} is {_py(labels[i])!r}; expected "
                       f"{_py(ref[i])!r} as in {ref_name} (groups are joined by position in hidden space)")
                return


def _check_tokens(tree, ds):
    for dim in ("token", "probe"):
        if dim not in ds.dims:
            yield f"/tokens: dim {dim} missing; expected probe_act(token, probe)"
        elif ds.sizes[dim] == 0:
            yield f"/tokens: dim {dim} has size 0; a study needs at least one {dim}"
    coords = {}
    for name in ("conversation", "turn", "position"):
        if name not in ds.variables:
            yield f"/tokens: coordinate {name}(token) missing; segments come from conversation and turn"
            continue
        var = ds[name]
        if var.dims != ("token",):
            yield f"/tokens: {name} has dims ({', '.join(var.dims)}); expected ({name}(token))"
            continue
        problem = dtype_problem("tokens", name, var, "iu", "an integer dtype")
        if problem:
            yield problem
            continue
        coords[name] = var.variable.data
    if "conversation" in coords and "turn" in coords:
        try:
            scan = scan_segments(coords["conversation"], coords["turn"], coords.get("position"))
        except (OSError, RuntimeError) as exc:
            raise Unreadable(f"/tokens: conversation/turn/position cannot be read from the file ({exc})") from None
        if scan.split is not None:
            yield scan.split_message()
        if scan.bad_position is not None:
            yield scan.position_message()
    if "probe" in ds.variables:
        names = np.asarray(ds["probe"].values)
        if names.ndim == 1 and names.size:
            uniq, counts = np.unique(names.astype(str), return_counts=True)
            if (counts > 1).any():
                dup = uniq[counts > 1][0]
                first = int(np.flatnonzero(names.astype(str) == dup)[1])
                yield (f"/tokens: probe name {_py(dup)!r} is not unique (again at probe index {first}); "
                       f"probe names must be unique")
    problem = _dims("tokens", ds, "probe_act", ("token", "probe"))
    if problem:
        yield problem
    else:
        problem = dtype_problem("tokens", "probe_act", ds["probe_act"], "f", "float32 or float64")
        yield from [problem] if problem else _nonfinite("tokens", ds, "probe_act")
    if "sae_index" in ds.variables:
        yield from _check_sae(tree, ds)
    elif "sae_value" in ds.variables:
        yield "/tokens: sae_value present without sae_index; expected both sae_index(token, slot) and sae_value"
    if "text" in ds.variables and ds["text"].dims != ("token",):
        yield f"/tokens: text has dims ({', '.join(ds['text'].dims)}); expected text(token)"


def _dims(group, ds, var, expected):
    if var not in ds.variables:
        return f"/{group}: variable {var} missing; expected {var}({', '.join(expected)})"
    dims = ds[var].dims
    if tuple(dims) != tuple(expected):
        return f"/{group}: {var} has dims ({', '.join(dims)}); expected ({', '.join(expected)})"
    return None


def _nonfinite(group, ds, var):
    if ds[var].dtype.kind != "f":
        return
    count, first = count_first(group, var, ds[var], lambda v: ~np.isfinite(v))
    if count:
        yield (f"{WARNING}/{group}: {var} has {count} NaN/inf values (first at index [{_index(first)}] "
               f"of ({', '.join(ds[var].dims)})); analyses mask them pairwise and report how many")


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
    n_features = None
    if "features" in tree.children:
        n_features = tree["features"].to_dataset(inherit=False).sizes.get("feature")
    if idx.dtype.kind == "i":
        count, first = count_first("tokens", "sae_index", idx, lambda v: v < -1)
        if count:
            yield (f"/tokens: sae_index at [{_index(first)}] (token, slot) is {value_at('tokens', 'sae_index', idx, first)}; "
                   f"expected -1 (empty slot) or a feature index >= 0")
    if n_features is not None:
        # unsigned indices cannot hold -1: every value must be a feature index
        count, first = count_first("tokens", "sae_index", idx, lambda v: v >= n_features)
        if count:
            yield (f"/tokens: sae_index at [{_index(first)}] (token, slot) is {value_at('tokens', 'sae_index', idx, first)}; "
                   f"expected < n_features = {n_features} (size of /features feature)")
    if "sae_value" in ds.variables:
        value = ds["sae_value"]
        if value.shape != idx.shape:
            yield (f"/tokens: sae_value has shape {value.shape}; expected the shape of sae_index {idx.shape}")
        elif value.dtype.kind not in "iuf":
            yield f"/tokens: sae_value has dtype {value.dtype}; expected float32 or float64"
