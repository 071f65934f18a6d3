"""What marks a results file (low level: io, validation and the pipeline all read it).

Examples
--------
>>> is_results({RESULTS_MARKER: 1}), is_results({"emostats_format": 1})
(True, False)
"""

from collections.abc import Mapping
from typing import Any

__all__ = ["RESULTS_MARKER", "RESULTS_VERSION", "is_results"]

#: root attribute that marks a results file (its value is the results format version)
RESULTS_MARKER = "emostats_results"
#: the version of the results format written by :func:`emostats.run`
RESULTS_VERSION = 1


def is_results(tree_or_attrs: Any) -> bool:
    """True when a DataTree (or its root attrs) is a results tree written by :func:`emostats.run`.

    Parameters
    ----------
    tree_or_attrs : xarray.DataTree or mapping
        A tree (its ``attrs`` are read) or a mapping of root attributes.

    Returns
    -------
    bool
    """
    attrs = getattr(tree_or_attrs, "attrs", tree_or_attrs)
    return isinstance(attrs, Mapping) and RESULTS_MARKER in attrs
