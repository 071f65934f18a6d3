"""The one place for argument checks: each returns the normalised value or raises :class:`ArgumentError`.

Every message is one line naming the argument, what was found and what is
expected, e.g. ``lag must be an integer >= 1, got 0``. The NumPy-level functions,
the xarray wrappers, the pipeline and the command line all check through these,
so one argument follows one rule everywhere. (A bad *study file* is a
:class:`~emostats.errors.StudyError` instead; see :mod:`emostats.validation`.)

Examples
--------
>>> check_int(100, "lag", minimum=1)
100
>>> check_int(0, "lag", minimum=1)
Traceback (most recent call last):
...
emostats.errors.ArgumentError: lag must be >= 1, got 0
"""

import math
import numbers
from collections.abc import Iterable, Sequence

from .defaults import SEED_MAX
from .errors import ArgumentError

__all__ = ["check_int", "check_ints", "check_choice", "check_fraction", "check_probability", "check_seed",
           "check_threads", "check_lags"]


def _is_integral(value) -> bool:
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return False
    if isinstance(value, numbers.Integral):
        return True
    return isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer()


def _range(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f" in {minimum}..{maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def check_int(value, name: str, *, minimum: "int | None" = None, maximum: "int | None" = None,
              unit: str = "") -> int:
    """``value`` as an ``int`` (integers and integral floats such as ``1e4``), within the bounds.

    Examples
    --------
    >>> check_int(1e4, "n_perm", minimum=1)
    10000
    >>> check_int(2.5, "lag", minimum=1)
    Traceback (most recent call last):
    ...
    emostats.errors.ArgumentError: lag must be an integer >= 1, got 2.5
    """
    if not _is_integral(value):
        raise ArgumentError(f"{name} must be an integer{_range(minimum, maximum)}, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        unit = "" if not unit else f" {unit}" if minimum == 1 and maximum is None else f" {unit}s"
        raise ArgumentError(f"{name} must be{_range(minimum, maximum)}{unit}, got {value!r}")
    return int(value)


def check_ints(values, name: str, *, minimum: "int | None" = None, maximum: "int | None" = None) -> list:
    """A non-empty sequence of integers within the bounds, as a list of ``int``.

    Examples
    --------
    >>> check_ints((1, 10, 100), "ks", minimum=1)
    [1, 10, 100]
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ArgumentError(f"{name} must be a sequence of integers{_range(minimum, maximum)}, got {values!r}")
    values = list(values)
    if not values:
        raise ArgumentError(f"{name} is empty; give at least one integer{_range(minimum, maximum)}")
    for v in values:
        if not _is_integral(v) or (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
            raise ArgumentError(f"{name} must hold integers{_range(minimum, maximum)}, got {v!r} in it")
    return [int(v) for v in values]


def check_choice(value, name: str, choices: Sequence):
    """``value`` when it is one of ``choices``.

    Examples
    --------
    >>> check_choice("mean", "stat", ("median", "mean"))
    'mean'
    """
    if not isinstance(value, (str, int, float)) or value not in choices:
        names = [repr(c) for c in choices]
        expected = " or ".join(names) if len(names) <= 2 else "one of " + ", ".join(names)
        raise ArgumentError(f"{name} must be {expected}, got {value!r}")
    return value


def check_fraction(value, name: str, *, low: float = 0.0, high: float = 1.0, closed: bool = False) -> float:
    """``value`` as a ``float`` strictly inside (``low``, ``high``), or inside [low, high] when ``closed``.

    Examples
    --------
    >>> check_fraction(0.05, "alpha")
    0.05
    >>> check_fraction(1.0, "alpha")
    Traceback (most recent call last):
    ...
    emostats.errors.ArgumentError: alpha must be a number in (0.0, 1.0), got 1.0
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = low <= v <= high if closed else low < v < high
    if not ok:
        interval = f"[{low}, {high}]" if closed else f"({low}, {high})"
        raise ArgumentError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def check_probability(value, name: str) -> float:
    """A probability in [0, 1].

    Examples
    --------
    >>> check_probability(1, "p")
    1.0
    """
    return check_fraction(value, name, closed=True)


def check_seed(value, name: str = "seed") -> int:
    """A seed: an integer in 0..2**63 - 1 (results store it as an int64 attribute).

    Examples
    --------
    >>> check_seed(3)
    3
    >>> check_seed(2**63)
    Traceback (most recent call last):
    ...
    emostats.errors.ArgumentError: seed must be in 0..9223372036854775807, got 9223372036854775808
    """
    if isinstance(value, float):  # a float seed is almost always a mistake: 1e19 would round silently
        raise ArgumentError(f"{name} must be an integer in 0..{SEED_MAX}, got {value!r}")
    return check_int(value, name, minimum=0, maximum=SEED_MAX)


def check_threads(value, name: str = "threads") -> "int | None":
    """``None`` (all cores) or an integer >= 1.

    Examples
    --------
    >>> check_threads(None) is None, check_threads(2)
    (True, 2)
    """
    if value is None:
        return None
    if not _is_integral(value) or value < 1:
        raise ArgumentError(f"{name} must be an integer >= 1 (or None for all cores), got {value!r}")
    return int(value)


def check_lags(lag, max_lag, *, lag_name: str = "lag", max_lag_name: str = "max_lag") -> "tuple[int, int]":
    """``(lag, max_lag)`` both >= 1 with ``max_lag >= lag`` (so the profile covers the lag).

    Examples
    --------
    >>> check_lags(100, 200)
    (100, 200)
    >>> check_lags(100, 50)
    Traceback (most recent call last):
    ...
    emostats.errors.ArgumentError: max_lag (50) must be >= lag (100) so the profile covers the lag
    """
    lag = check_int(lag, lag_name, minimum=1)
    max_lag = check_int(max_lag, max_lag_name, minimum=1)
    if max_lag < lag:
        raise ArgumentError(f"{max_lag_name} ({max_lag}) must be >= {lag_name} ({lag}) so the profile covers "
                            f"the lag")
    return lag, max_lag
