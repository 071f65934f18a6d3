"""The kernel registry (numbagg's way): each public function or kernel with its naive twin,
tolerance and input generator, in one table.

The table drives both ``tests/test_registry.py`` (one parametrised equivalence test per
entry, on random inputs and on every edge case of :func:`edge_cases`) and the tracked
benchmarks of ``benchmarks/track.py`` (which take their inputs from the generators here).

An entry is a :class:`Entry`: ``fast(case)`` and ``twin(case)`` both return a tuple of
arrays computed from one :class:`Case`; ``rtol``/``atol`` apply to float outputs (integer
outputs and NaN masks are compared exactly); ``cases(rng)`` yields the inputs (default:
random cases and every edge case).

To add a kernel: write its twin in ``tests/naive/<topic>.py``, then one ``Entry`` here.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Callable, Iterator

import numpy as np

from tests.naive import decay as naive_decay
from tests.naive import firing as naive_firing
from tests.naive import lag as naive_lag
from tests.naive.inputs import activations, sae_index, turn_offsets  # noqa: F401 (re-exported)

#: float64 kernels against their twins (tests/conftest.py: RTOL_KERNEL, ATOL_KERNEL)
RTOL = 1e-10
ATOL = 1e-12


@dataclasses.dataclass
class Case:
    """One input: activations ``x`` (tokens, series) with CSR ``offsets``; ``name`` says what it tests."""

    name: str
    x: np.ndarray
    offsets: np.ndarray
    lag: int = 3
    max_lag: int = 8
    index: np.ndarray | None = None
    n_features: int = 0


def random_case(rng, n_segments=40, max_len=40, n_series=5, name="random"):
    """AR(1)-like series over random segments (incl. length 1), NaN and inf sprinkled in, a small SAE index."""
    lengths = rng.integers(1, max_len, size=n_segments)
    lengths[:2] = 1
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    n = int(offsets[-1])
    e = rng.standard_normal((n, n_series))
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, n):
        x[t] = 0.7 * x[t - 1] + e[t]
    x += rng.normal(0, 3, n_series)
    x[rng.integers(0, n, 4), 1 % n_series] = np.nan
    x[rng.integers(0, n), 2 % n_series] = np.inf
    index = rng.integers(-1, 30, size=(n, 4)).astype(np.int32)
    return Case(name, x, offsets, lag=int(rng.integers(0, 12)), max_lag=int(rng.integers(0, 15)), index=index,
                n_features=30)


def edge_cases(rng=None) -> Iterator[Case]:
    """numbagg's edge cases, each with segments: ``[nan, 2, 3]``, constants, ties, ``x + 1e9``, float32,
    byte-swapped, segments shorter than the lag, empty segments and groups, spikes at a segment's first token."""
    rng = np.random.default_rng(7) if rng is None else rng
    col = np.array([np.nan, 2.0, 3.0, 5.0, 4.0, 1.0, 2.0])
    yield Case("nan_2_3", col[:, None], np.array([0, 7]), lag=1, max_lag=4)
    yield Case("nan_2_3_short", np.array([[np.nan], [2.0], [3.0]]), np.array([0, 3]), lag=1, max_lag=2)
    base = rng.standard_normal((60, 3))
    const = base.copy()
    const[:, 0] = 5.0
    yield Case("constant_column", const, np.array([0, 25, 60]), lag=2, max_lag=6)
    ties = np.round(rng.standard_normal((80, 3)) * 1.5)  # many equal values
    yield Case("ties", ties, np.array([0, 10, 30, 80]), lag=3, max_lag=9)
    yield Case("offset_1e9", base + 1e9, np.array([0, 25, 60]), lag=2, max_lag=6)
    yield Case("float32_offset_1e4", (base + 1e4).astype(np.float32), np.array([0, 25, 60]), lag=2, max_lag=6)
    yield Case("byte_swapped", base.astype(base.dtype.newbyteorder(">")), np.array([0, 25, 60]), lag=2, max_lag=6)
    yield Case("segments_shorter_than_lag", base, np.array([0, 3, 7, 9, 60]), lag=5, max_lag=12)
    yield Case("all_segments_shorter_than_lag", base[:12], np.array([0, 3, 7, 9, 12]), lag=5, max_lag=6)
    yield Case("empty_segments", base, np.array([0, 0, 20, 20, 20, 60, 60]), lag=2, max_lag=5)
    yield Case("no_tokens", np.zeros((0, 3)), np.array([0]), lag=1, max_lag=3)
    spiked = base.copy()
    spiked[0, 0] += 1e8
    spiked[25, 1] -= 1e7
    yield Case("spike_at_first_token", spiked, np.array([0, 25, 60]), lag=1, max_lag=5)
    allnan = base.copy()
    allnan[:25, 2] = np.nan
    yield Case("all_nan_segment", allnan, np.array([0, 25, 60]), lag=1, max_lag=5)
    tiny = np.array([[0.0], [2.5e-94], [0.0], [5e-94], [1e-94]])
    yield Case("tiny_values", tiny, np.array([0, 5]), lag=1, max_lag=3)


def default_cases(rng) -> Iterator[Case]:
    for i in range(3):
        yield random_case(rng, name=f"random{i}")
    yield from edge_cases(rng)


# --------------------------------------------------------------------------- the table


@dataclasses.dataclass
class Entry:
    name: str
    fast: Callable[[Case], tuple]
    twin: Callable[[Case], tuple]
    rtol: float = RTOL
    atol: float = ATOL
    cases: Callable[[np.random.Generator], Iterator[Case]] = default_cases
    #: tracked benchmark of benchmarks/track.py that times ``fast`` (None: not tracked)
    benchmark: str | None = None


def _quiet(fn):
    def call(case):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(case)

    return call


@_quiet
def _lag_fast(case):
    from emostats._lagstats import lag_correlation

    return lag_correlation(case.x, case.offsets, case.lag)


@_quiet
def _lag_twin(case):
    return naive_lag.lag_r(case.x, case.offsets, case.lag)


@_quiet
def _profile_fast(case):
    from emostats._lagstats import lag_correlation_profile

    return lag_correlation_profile(case.x, case.offsets, case.max_lag)


@_quiet
def _profile_twin(case):
    return naive_lag.profile_r(case.x, case.offsets, case.max_lag)


@_quiet
def _lag_threads_fast(case):
    """The lag kernel on 3 threads with no serial shortcut: must equal the twin like the 1-thread call."""
    from emostats import _lagstats, _threads

    old = _threads.SERIAL_WORK, _threads.PIECE_TOKENS
    _threads.SERIAL_WORK, _threads.PIECE_TOKENS = 0, 16  # threads and pieces even for tiny inputs
    try:
        return _lagstats.lag_correlation(case.x, case.offsets, case.lag, threads=3)
    finally:
        _threads.SERIAL_WORK, _threads.PIECE_TOKENS = old


def _finite_stats(case):
    x = np.asarray(case.x, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0) if x.size else np.zeros(x.shape[1])
        sd = np.nanstd(np.where(np.isfinite(x), x, np.nan), axis=0) if x.size else np.zeros(x.shape[1])
    return mean, sd


BINS = ((1.0, 2.0), (2.0, 3.0), (3.0, np.inf))


@_quiet
def _traj_fast(case):
    from emostats._lagstats import trajectory_sums

    mean, sd = _finite_stats(case)
    s, c = trajectory_sums(case.x, case.offsets, mean, sd, BINS, case.max_lag)
    return s[0], c[0]


@_quiet
def _traj_twin(case):
    mean, sd = _finite_stats(case)
    return naive_lag.trajectories_given(case.x, case.offsets, BINS, case.max_lag, mean, sd)


def _firing_cases(rng):
    for case in default_cases(rng):
        if case.index is not None:
            yield case
    idx = np.array([[0, 1, 1], [1, -1, -1], [0, 2, 0], [-1, -1, -1], [2, 2, 1], [0, 1, 2]], dtype=np.int32)
    yield Case("firing_duplicates_and_empty_rows", np.zeros((6, 1)), np.array([0, 2, 6]), lag=1, index=idx,
               n_features=4)
    yield Case("firing_segments_shorter_than_lag", np.zeros((6, 1)), np.array([0, 2, 3, 6]), lag=4, index=idx,
               n_features=3)
    yield Case("firing_no_tokens", np.zeros((0, 1)), np.array([0]), lag=1, index=np.zeros((0, 3), np.int32),
               n_features=2)


def _firing_fast(case):
    from emostats.sae import firing_counts

    c = firing_counts(case.index, case.offsets, case.lag, case.n_features)
    return c["n_fires"], c["n_t"], c["n_tl"], c["n_both"], np.int64(c["n_valid"])


def _firing_twin(case):
    c = naive_firing.firing_counts(case.index, case.offsets, case.lag, case.n_features)
    return c["n_fires"], c["n_t"], c["n_tl"], c["n_both"], np.int64(c["n_valid"])


def _decay_columns(out, case):
    """What is well defined to compare: the one-component fit, the two-component RSS and, for curves with two
    clearly separate components, the two-component parameters (else their T2 is arbitrary when c = 0)."""
    if case.name.startswith("noisy_one"):
        return out[:, :4], out[:, 9]
    return out[:, :4], out[:, 4:]


def _decay_fast(case):
    from emostats._kernels import decay as k

    Y, W, tau, grid, lo, hi = case.x
    return _decay_columns(naive_decay.run_fast_kernel(k, Y, W, tau, grid, lo, hi), case)


def _decay_twin(case):
    Y, W, tau, grid, lo, hi = case.x
    return _decay_columns(naive_decay.fit_curves(Y, W, tau, grid, lo, hi), case)


REGISTRY = [
    Entry("lag_correlation", _lag_fast, _lag_twin, benchmark="lag100"),
    Entry("lag_correlation[threads=3]", _lag_threads_fast, _lag_twin),
    Entry("lag_correlation_profile", _profile_fast, _profile_twin, benchmark="profile"),
    Entry("trajectory_sums", _traj_fast, _traj_twin),
    Entry("firing_counts", _firing_fast, _firing_twin, cases=_firing_cases, benchmark="firing"),
    Entry("decay.fit_range", _decay_fast, _decay_twin, rtol=naive_decay.RTOL, atol=naive_decay.ATOL,
          cases=naive_decay.cases),
]
