"""The one way a step's seed is derived from a master seed.

Every random step of :func:`emostats.run` (and of the commands, which are
presets of it) draws from ``derive_seed(seed, step_name)``, so the same master
seed gives the same numbers whichever command ran the step.

Examples
--------
>>> from emostats.seeds import derive_seed
>>> derive_seed(0, "decay") == derive_seed(0, "decay")
True
>>> derive_seed(0, "decay") != derive_seed(0, "mentions") != derive_seed(1, "decay")
True
"""

import zlib

import numpy as np

__all__ = ["derive_seed"]


def _entropy(key: "str | int") -> int:
    if isinstance(key, (bool, np.bool_)):
        raise TypeError(f"a seed key is a str or a non-negative int, got {key!r}")
    if isinstance(key, str):
        return zlib.crc32(key.encode())
    key = int(key)
    if key < 0:
        raise ValueError(f"a seed key is a str or a non-negative int, got {key}")
    return key


def derive_seed(seed: int, *keys: "str | int") -> int:
    """A seed for the stream named by ``keys``, derived from the master ``seed``.

    ``numpy.random.SeedSequence([seed, *keys])``'s first 32-bit word, with each
    string key replaced by its CRC-32. Different keys give independent streams;
    the same arguments always give the same seed.

    Parameters
    ----------
    seed : int
        The master seed (non-negative).
    *keys : str or int
        What the stream is for, e.g. the step name (``"decay"``).

    Returns
    -------
    int
        A seed in ``0 .. 2**32 - 1``.

    Examples
    --------
    >>> derive_seed(3, "candidates")
    229807213
    """
    entropy = [int(seed), *(_entropy(k) for k in keys)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])
