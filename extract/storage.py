"""How extract stores values and provenance in a study file: rounded floats, paths without this machine's folders.

:func:`round_mantissa` rounds activations and moments to fewer mantissa bits, so
that zlib compresses them (``--mantissa-bits``, ``--moment-bits``);
:func:`portable` and :func:`portable_command` (those of :mod:`emostats._cf`, which
also cleans the attributes of every saved file) make the paths and the command line
recorded in the study's attributes relative, or bare file names, so a file made on
one machine names no folder of that machine.
"""

import numpy as np

from emostats._cf import portable, portable_command  # the one rule for paths in any emostats file

__all__ = ["round_mantissa", "portable", "portable_command"]


def round_mantissa(a, bits):
    """Round float values to ``bits`` mantissa bits (round half away from zero), keeping the dtype.

    The relative rounding error is at most ``2**-(bits+1)``; the zeroed low bits
    make zlib compression effective. ``bits = 0`` returns ``a`` unchanged.
    """
    a = np.ascontiguousarray(a)
    if not bits:
        return a
    if a.dtype == np.float32:
        drop, ui = 23 - bits, np.uint32
    elif a.dtype == np.float64:
        drop, ui = 52 - bits, np.uint64
    else:
        raise TypeError(f"round_mantissa needs float32 or float64, got {a.dtype}")
    if drop <= 0:
        return a
    u = a.view(ui)
    half = ui(1) << ui(drop - 1)
    mask = ~((ui(1) << ui(drop)) - ui(1))
    out = ((u + half) & mask).view(a.dtype)
    return np.where(np.isfinite(a), out, a)
