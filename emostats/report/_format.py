"""Number formatting for the report: significant digits, p-values, counts, a true minus sign."""

import math

import numpy as np

__all__ = ["num", "pval", "p_is", "count", "signed", "frac", "scalar", "rho"]

MINUS = "\u2212"


def scalar(value):
    """A Python float/int from a 0-d DataArray, NumPy scalar or number (None stays None)."""
    if value is None:
        return None
    value = getattr(value, "values", value)
    value = np.asarray(value)
    if value.size != 1:
        raise ValueError(f"expected one value, got shape {value.shape}")
    value = value.reshape(()).item()
    return value


def _bad(x):
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def num(x, digits=3):
    """``x`` with ``digits`` significant digits (fixed notation between 1e-3 and 1e5), "–" for NaN.

    Examples
    --------
    >>> num(0.21437), num(-0.0012345), num(123456.0), num(float("nan"))
    ('0.214', '−0.00123', '1.23e+05', '–')
    """
    x = scalar(x)
    if _bad(x):
        return "\u2013"
    x = float(x)
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
        text = f"{x:.{decimals}f}"
    else:
        text = f"{x:.{digits - 1}e}"
    return text.replace("-", MINUS)


def signed(x, digits=3):
    """Like :func:`num` with an explicit plus sign.

    Examples
    --------
    >>> signed(0.077), signed(-0.5)
    ('+0.0770', '−0.500')
    """
    text = num(x, digits)
    x = scalar(x)
    return "+" + text if not _bad(x) and float(x) > 0 else text


def pval(p):
    """A p-value: 2 significant digits, scientific below 0.001, never exactly 0.

    Examples
    --------
    >>> pval(0.04567), pval(1.5e-27), pval(0.0), pval(float("nan"))
    ('0.046', '1.5e−27', '< 1e−300', '–')
    """
    p = scalar(p)
    if _bad(p):
        return "\u2013"
    p = float(p)
    if p <= 0:
        return f"< 1e{MINUS}300"
    if p >= 0.001:
        return num(p, 2)
    mantissa, exponent = f"{p:.1e}".split("e")
    return f"{mantissa}e{MINUS}{int(exponent[1:])}" if exponent.startswith("-") else f"{mantissa}e{int(exponent)}"


def count(x):
    """An integer count with thousands separators.

    Examples
    --------
    >>> count(1000000), count(float("nan"))
    ('1,000,000', '–')
    """
    x = scalar(x)
    if _bad(x):
        return "\u2013"
    return f"{int(x):,}"


def frac(k, n):
    """``"k of n (pp%)"``.

    Examples
    --------
    >>> frac(130, 171)
    '130 of 171 (76%)'
    """
    k, n = scalar(k), scalar(n)
    if _bad(k) or _bad(n) or not n:
        return "\u2013"
    return f"{int(k):,} of {int(n):,} ({100 * k / n:.0f}%)"


def rho(x):
    """A correlation coefficient: signed, three decimals.

    Examples
    --------
    >>> rho(0.41337), rho(-0.000956), rho(float("nan"))
    ('+0.413', '−0.001', '–')
    """
    x = scalar(x)
    if _bad(x):
        return "\u2013"
    text = f"{float(x):+.3f}"
    return text.replace("-", MINUS)


def p_is(p):
    """``"p = 0.046"`` for a sentence, or ``"p < 1e−300"`` when it underflowed.

    Examples
    --------
    >>> p_is(0.04567), p_is(0.0)
    ('p = 0.046', 'p < 1e−300')
    """
    text = pval(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"
