"""Helpers shared by the statistics modules: option checks, seeds, warnings."""

import hashlib
import warnings

import numpy as np

from ..errors import ArgumentError, DegenerateWarning, EmostatsError

ALTERNATIVES = ("greater", "less", "two-sided")


def check_alternative(alternative):
    """Return the kernel code of ``alternative`` (0 greater, 1 less, 2 two-sided)."""
    if alternative not in ALTERNATIVES:
        raise EmostatsError(
            f"alternative={alternative!r} is not supported; use one of {', '.join(ALTERNATIVES)}"
        )
    return ALTERNATIVES.index(alternative)


def check_conf_level(conf_level, what):
    """A confidence level strictly between 0 and 1 (R: "'conf.level' must be a single number between 0 and 1")."""
    if isinstance(conf_level, (bool, np.bool_)) or not isinstance(conf_level, (int, float, np.floating)) \
            or not 0 < conf_level < 1:
        raise ArgumentError(f"{what}: conf_level must be a number in (0, 1), got {conf_level!r}")
    return float(conf_level)


def check_seed(seed):
    """A non-negative int seed; ``None`` draws fresh entropy (returned, so it can be recorded)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise EmostatsError(f"seed must be a non-negative int or None, got {seed!r}")
    return int(seed)


def check_n_perm(n_perm, name="n_perm"):
    if isinstance(n_perm, (bool, np.bool_)) or not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise EmostatsError(f"{name} must be a positive int (number of permutations), got {n_perm!r}")
    return int(n_perm)


def stream_key(seed, *parts):
    """A 64-bit stream key from the seed and identifying bytes (BLAKE2b).

    The key depends only on its arguments, so the random numbers of one stream
    do not depend on the thread that draws them.
    """
    h = hashlib.blake2b(digest_size=8, person=b"emostats-stream")
    h.update(int(seed).to_bytes(8, "little", signed=False))
    for part in parts:
        h.update(np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray)
                 else str(part).encode())
        h.update(b"|")
    return np.frombuffer(h.digest(), dtype=np.uint64)[0]


def warn_degenerate(count, what, why):
    """Warn once that ``count`` rows of ``what`` are NaN because ``why``."""
    if count:
        warnings.warn(f"{what}: {count} result(s) set to NaN because {why}", DegenerateWarning,
                      stacklevel=3)
