"""How extract stores values and provenance in a study file: rounded floats, paths without this machine's folders.

:func:`round_mantissa` rounds activations and moments to fewer mantissa bits, so
that zlib compresses them (``--mantissa-bits``, ``--moment-bits``);
:func:`portable` and :func:`portable_command` make the paths and the command line
recorded in the study's attributes relative, or bare file names, so a file made on
one machine names no folder of that machine.
"""

import numpy as np

__all__ = ["round_mantissa", "portable", "portable_command"]


def portable(path):
    """A path as it may be stored in a shared file: relative to the working folder when below it, else
    its name (a file made on one machine names no folder of that machine)."""
    import os
    path = str(path)
    if not path or not os.path.isabs(path):
        return path
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else os.path.basename(path.rstrip("/"))


def portable_command(command):
    """``command`` with every absolute path argument (also ``--opt=/path``) made :func:`portable`."""
    import shlex
    out = []
    for arg in shlex.split(command):
        opt, eq, value = arg.partition("=")
        out.append(f"{opt}={portable(value)}" if eq and opt.startswith("-") else portable(arg))
    return " ".join(shlex.quote(a) for a in out)


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
