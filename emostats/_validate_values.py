"""Value checks of the validator that stay within memory on dask-backed studies.

Every reduction here (counts of NaN, ranges, first offending index) runs over
the chunks of a dask array (a ``dask.array`` reduction), so validating a study
larger than memory never computes a whole array at once; NumPy arrays are
reduced directly. A chunk that cannot be read (a corrupt HDF5 chunk) becomes a
one-line :class:`~emostats.errors.StudyError` naming the group and variable.
"""

import numpy as np

from .errors import StudyError

__all__ = ["Unreadable", "is_lazy", "compute", "count_first", "value_at", "show", "dtype_problem", "scalar"]


class Unreadable(StudyError):
    """A variable whose values cannot be read from the file."""


def is_lazy(var):
    return hasattr(getattr(var, "data", var), "dask")


def compute(group, name, *things):
    """Compute NumPy/dask values together; unreadable data is one line naming the variable."""
    try:
        if any(hasattr(t, "dask") for t in things):
            import dask

            things = dask.compute(*things)
        return tuple(np.asarray(t) for t in things)
    except (OSError, RuntimeError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unreadable(f"/{group}: {name} cannot be read from the file ({msg}); the file is damaged") from None


def count_first(group, name, var, predicate):
    """``(count, first index tuple or None)`` of the elements where ``predicate(values)`` holds."""
    data = getattr(var, "data", var)
    if not is_lazy(data):
        data = np.asarray(data)
    if data.size == 0:
        return 0, None
    with np.errstate(invalid="ignore"):
        bad = predicate(data)
    if bad.ndim == 0:
        count, = compute(group, name, bad.sum())
        return int(count), (() if count else None)
    rows = bad.any(axis=tuple(range(1, bad.ndim))) if bad.ndim > 1 else bad
    count, row = compute(group, name, bad.sum(), rows.argmax())
    if not count:
        return 0, None
    row = int(row)
    rest, = compute(group, name, bad[row])
    tail = np.unravel_index(int(np.argmax(rest)), rest.shape) if rest.ndim else ()
    return int(count), (row, *(int(i) for i in tail))


def value_at(group, name, var, index):
    """One element as a plain Python value (reads one element of a lazy array)."""
    data = getattr(var, "data", var)
    value, = compute(group, name, data[tuple(index)])
    return value.item() if value.ndim == 0 else value


def show(value, limit=60):
    """A short one-line repr of any attribute value (arrays, bytes, floats alike)."""
    if isinstance(value, np.ndarray):
        text = np.array2string(value, max_line_width=10**6, threshold=6, separator=", ")
        text = f"array {text} of dtype {value.dtype}"
    else:
        text = repr(value.item() if isinstance(value, np.generic) else value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def dtype_problem(group, name, var, kinds, expected):
    """One line if ``var``'s dtype kind is not in ``kinds`` (checked before any arithmetic)."""
    if var.dtype.kind not in kinds:
        return f"/{group}: {name} has dtype {var.dtype}; expected {expected}"
    return None


def scalar(group, name, var, *, kinds="iuf"):
    """``(value, problem)`` of a variable that must hold one finite number."""
    problem = dtype_problem(group, name, var, kinds, "a number")
    if problem:
        return None, problem
    if var.size != 1:
        return None, f"/{group}: {name} has shape {var.shape}; expected a single number"
    value, = compute(group, name, getattr(var, "data", var))
    value = value.reshape(()).item()
    if not np.isfinite(value):
        return None, f"/{group}: {name} is {value}; expected a finite number"
    return value, None
