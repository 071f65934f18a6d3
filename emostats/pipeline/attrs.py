"""NetCDF attribute encoding of results, written once for every step and every preset.

NetCDF stores numbers, text and 1-d numeric arrays as attributes; everything
else is encoded here: bools as 0/1, None as ``"none"``, lists of numbers as
arrays, anything else (nested lists, dicts, tuples of tuples) as JSON text.

Examples
--------
>>> attr_value(True), attr_value(None), attr_value([1, 2]).tolist(), attr_value({"a": (1, 2)})
(1, 'none', [1, 2], '{"a": [1, 2]}')
"""

import json
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["attr_value", "storable"]


def attr_value(value: Any) -> Any:
    """A value NetCDF can store as an attribute (bools as 0/1, None as "none", nesting as JSON)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if value is None:
        return "none"
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf" and value.ndim == 1:
        return value
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value):
        return np.asarray(value)
    try:
        return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    except (TypeError, ValueError):
        return str(value)


def storable(ds: xr.Dataset) -> xr.Dataset:
    """A copy of ``ds`` whose attrs (and its variables') NetCDF can store."""
    ds = ds.copy()
    ds.attrs = {k: attr_value(v) for k, v in ds.attrs.items()}
    for name in ds.variables:
        ds[name].attrs = {k: attr_value(v) for k, v in ds[name].attrs.items()}
    return ds
