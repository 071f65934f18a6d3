"""Kernel of the Benjamini-Hochberg/Yekutieli step-up adjustment after sorting."""

import numba
import numpy as np

from ._config import JIT


@numba.njit(**JIT)
def step_up(p, order, m, factor, out):
    """Adjusted p-values of one family, given ``order = argsort(p)`` (NaN last).

    ``q_(i) = min(1, min_{j >= i} factor * m * p_(j) / j)`` for the ``m``
    non-NaN values (one pass from the largest p down, scattering into
    ``out``); positions of NaN p-values get NaN.
    """
    n = p.shape[0]
    for i in range(m, n):
        out[order[i]] = np.nan
    running = np.inf
    scale = factor * m
    for i in range(m - 1, -1, -1):
        j = order[i]
        q = scale * p[j] / (i + 1)
        if q < running:
            running = q
        out[j] = running if running < 1.0 else 1.0
