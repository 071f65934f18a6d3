"""CF labels for study and results files, so that ``ncdump -h`` explains a file to someone without emostats.

:func:`cf_label` gives every variable and coordinate of every group a
``long_name`` (keeping one already set), ``units = "1"`` where the quantity is
a number (activations, correlations, probabilities, counts, token distances:
every quantity emostats stores is dimensionless; identifiers, names, flags and
booleans get no ``units``; coordinates, ids among them, get ``"1"``), and the root the attribute ``Conventions``
(:data:`CF_VERSION`: CF 1.8 is the first version that covers netCDF-4 groups).

Booleans (stored by xarray as bytes 0/1) get ``flag_values = 0, 1`` and
``flag_meanings = "false true"``. A group's ``long_name`` becomes its ``title``
(CF lists ``long_name`` as a variable attribute only; ``title`` is a group attribute).

``sae_index`` keeps its ``-1`` for an empty slot without a ``_FillValue``
(a ``_FillValue`` makes xarray and netCDF4-python mask the ids and turn the
int32 array into float64): ``flag_values = -1``, ``flag_meanings =
"empty_slot"`` and ``valid_min = -1`` describe it, and neither reader masks
or converts on them. 0/1 integer flags (``mentions``) get ``flag_values`` and
``flag_meanings`` too.

Units UDUNITS does not know (``tokens``, ``sd``) become ``"1"`` with the
unit named in ``long_name``. Provenance attributes that name files (``model``, ``command``, ...) are
stored without the writing machine's folders (:func:`portable`), and so is every absolute path inside
any other text attribute of the file, its groups and variables (a JSON ``config``, an SAE's
``sae_metadata``, ...).
"""

import os
import re
import shlex

import numpy as np
import xarray as xr

__all__ = ["CF_VERSION", "cf_label", "portable", "portable_command", "LONG_NAMES"]

#: the CF version the files meet (the root attribute ``Conventions``)
CF_VERSION = "CF-1.8"

#: long names of coordinates and variables that no writer labels itself
LONG_NAMES = {
    "token": "token number in the study (target model turns, in order)",
    "conversation": "conversation id of the token",
    "turn": "turn number of the token within its conversation",
    "position": "position of the token within its turn (0 = first token)",
    "probe": "emotion probe name",
    "emotion": "emotion (probe) whose direction was steered",
    "slot": "slot of the token's top-k SAE features",
    "feature": "SAE feature id (position along /features' feature dim)",
    "rated_feature": "id of a rated SAE feature",
    "hidden": "hidden dimension of the layer activations",
    "hidden_b": "hidden dimension of the layer activations (second axis of a covariance)",
    "lag": "lag in tokens (pairs t, t+lag in one segment)",
    "tau": "tokens after t",
    "offset": "tokens after the steering pulse (0 = first token after it)",
    "sample": "steered sample number",
    "baseline_sample": "baseline (unsteered) sample number",
    "direction": "random direction number",
    "bin": "initial-strength bin of |z_t|",
    "match": "rank of the matched candidate (nearest in variance explained first)",
    "target": "target of the variance matching",
    "k": "dimension of the covariance eigenspace the directions were drawn from",
    "probe_act": "probe activation (layer activation projected on the unit probe vector)",
    "text": "decoded token text",
    "sae_index": "ids of the token's active SAE features (largest first); -1 = empty slot",
    "sae_value": "activation of the SAE feature in the slot",
    "vector": "probe vector in the hidden space",
    "decoder": "SAE decoder row of the feature",
    "variance_explained": "variance along the unit direction / total variance of the activations",
    "subspace_fraction": "fraction of the vector's norm in the span of the probe vectors",
    "self_rating": "rating of the feature by the model itself (NaN = unrated)",
    "text_rating": "rating of the feature from its text (NaN = unrated)",
    "random_act": "activation along the random direction",
    "steered_act": "probe activation after a steering pulse on emotion",
    "baseline_act": "probe activation without a steering pulse",
    "mentions": "1 if the feature's evaluation transcript names the emotion word, else 0",
    "cosine": "cosine similarity",
    "mean": "mean",
    "cov": "covariance (ddof = 0)",
    "n": "number of observations used",
    "log_feature_sparsity": "log10 firing frequency of the feature (SAELens sparsity)",
    "component": "component of the decay fit",
    "model": "decay model (number of exponential components)",
    "bound": "interval bound (low, high)",
    "pc": "principal component of the probe activations (1 = largest variance)",
    "pair": "pair of variables that are correlated",
    "row": "row of the summary table",
    "persistence": "persistence at the lag",
}

#: integer data variables that are identifiers, never quantities (no units)
_ID_VARIABLES = {"conversation", "turn", "feature", "rated_feature", "matched", "sae_index", "token"}
#: integer 0/1 variables that are flags: (flag_meanings)
_FLAGS = {"mentions": "not_mentioned mentioned"}
#: provenance attributes that may hold paths of the writing machine
_PATH_ATTRS = ("model", "source_file", "source_path", "input", "input_file", "input_files", "study", "path")


def portable(value):
    """A path as it may be stored in a shared file: relative when below the working folder, else its name.

    Examples
    --------
    >>> portable("/nowhere/models/model.gguf")
    'model.gguf'
    >>> portable("study.nc")
    'study.nc'
    """
    value = str(value)
    if not value or not os.path.isabs(value):
        return value
    rel = os.path.relpath(value)
    return rel if not rel.startswith("..") else os.path.basename(value.rstrip("/"))


def portable_command(command):
    """``command`` with every absolute path argument (also ``--opt=/path``) made :func:`portable`;
    a command that does not split as shell words is returned as it is."""
    try:
        args = shlex.split(command)
    except ValueError:
        return command
    out = []
    for arg in args:
        opt, eq, value = arg.partition("=")
        out.append(f"{opt}={portable(value)}" if eq and opt.startswith("-") else portable(arg))
    return " ".join(shlex.quote(a) for a in out)


#: an absolute path inside a text: "/" then at least two path components, not inside a word or a relative path
_ABS_PATH = re.compile(r"(?<![\w.~/-])/(?:[\w.+@-]+/)+[\w.+@-]*")


def _portable_text(value):
    """``value`` with every absolute path in it made :func:`portable` (names inside JSON, prose, ...).

    Examples
    --------
    >>> _portable_text('{"model_name": "/opt/models/m.gguf", "ratio": "1/2"}')
    '{"model_name": "m.gguf", "ratio": "1/2"}'
    """
    return _ABS_PATH.sub(lambda m: portable(m.group(0)), value)


def _portable_attrs(attrs):
    out = dict(attrs)
    for key in _PATH_ATTRS:
        if isinstance(out.get(key), str):
            out[key] = ";".join(portable(p) for p in out[key].split(";"))
    if isinstance(out.get("command"), str):
        out["command"] = portable_command(out["command"])
    for key, value in out.items():
        if isinstance(value, str) and "/" in value:
            out[key] = _portable_text(value)
    return out


def _group_attrs(attrs):
    """A group's attributes: paths made portable, ``long_name`` (a variable attribute) as ``title``."""
    out = _portable_attrs(attrs)
    if "long_name" in out:
        name = out.pop("long_name")
        out.setdefault("title", name)
    return out


#: units some writers give that UDUNITS (and so CF) does not know: stored as "1", named in long_name
_COUNTED_UNITS = {"tokens": "tokens", "token": "tokens", "sd": "standard deviations"}


def _label(name, var, is_coord):
    attrs = _portable_attrs(var.attrs)
    if "long_name" not in attrs:
        attrs["long_name"] = LONG_NAMES.get(name, name.replace("_", " "))
    counted = _COUNTED_UNITS.get(str(attrs.get("units", "")).strip())
    if counted:
        attrs["units"] = "1"
        if counted.split()[0].rstrip("s") not in str(attrs["long_name"]):
            attrs["long_name"] = f"{attrs['long_name']} (in {counted})"
    kind = var.dtype.kind
    if name == "sae_index" and kind == "i":
        fill = var.dtype.type(-1)
        attrs.pop("_FillValue", None)
        attrs.setdefault("flag_values", fill)  # one value: a scalar, as netCDF reads it back
        attrs.setdefault("flag_meanings", "empty_slot")
        attrs.setdefault("valid_min", fill)
        attrs.setdefault("comment", "values >= 0 are feature ids: positions along /features' feature dim")
        return attrs
    if name in _FLAGS and kind in "iu":
        attrs.setdefault("flag_values", np.array([0, 1], dtype=var.dtype))
        attrs.setdefault("flag_meanings", _FLAGS[name])
        return attrs
    if kind == "b":  # xarray stores booleans as bytes 0/1 (attribute dtype = "bool")
        attrs.setdefault("flag_values", np.array([0, 1], dtype=np.int8))
        attrs.setdefault("flag_meanings", "false true")
        return attrs
    # coordinates (ids too) are numbers without a physical unit: "1", as CF checkers expect of coordinates
    numeric = kind in "fc" or (kind in "iu" and (is_coord or name not in _ID_VARIABLES))
    if numeric and "flag_values" not in attrs:
        attrs.setdefault("units", "1")
    return attrs


def _label_dataset(ds):
    out = ds.copy(deep=False)
    for name, var in ds.variables.items():
        out[name].attrs = _label(str(name), var, name in ds.coords)
    out.attrs = _group_attrs(ds.attrs)
    return out


def cf_label(tree):
    """A copy of ``tree`` (DataTree or Dataset) with CF attributes; the data are not copied or computed.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"probe_act": (("token", "probe"), np.zeros((2, 1), "float32"))},
    ...                 coords={"probe": ["joy"], "lag": 3})
    >>> out = cf_label(ds)
    >>> out.attrs["Conventions"], out["probe_act"].attrs["units"], "units" in out["probe"].attrs
    ('CF-1.8', '1', False)
    """
    if isinstance(tree, xr.Dataset):
        out = _label_dataset(tree)
        out.attrs = {**_group_attrs(tree.attrs), "Conventions": _conventions(tree.attrs)}
        return out
    out = tree.copy()
    for node in out.subtree:
        node.dataset = _label_dataset(node.to_dataset(inherit=False))
    out.attrs = {**_group_attrs(tree.attrs), "Conventions": _conventions(tree.attrs)}
    return out


def _conventions(attrs):
    """``CF-1.8``, keeping other conventions a file already names (comma separated, CF first)."""
    old = [c.strip() for c in str(attrs.get("Conventions", "")).replace(",", " ").split() if c.strip()]
    return ", ".join([CF_VERSION] + [c for c in old if not c.startswith("CF-")])
