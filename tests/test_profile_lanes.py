"""The profile kernel's lane blocks (16 probes per vectorised block): a probe's result does not depend
on its lane, on the block it falls in or on the thread split, and every lane matches the naive twin,
also next to lanes holding NaN or inf and with a first_stop (the dask path)."""

import numpy as np
import pytest

from emostats import _lagstats, _threads
from tests.naive import lag as naive


@pytest.fixture
def case():
    rng = np.random.default_rng(11)
    lengths = rng.integers(1, 120, size=30)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    n = int(offsets[-1])
    x = rng.standard_normal((n, 37)).cumsum(axis=0) * 0.1 + rng.normal(0, 5, 37)
    x[rng.integers(0, n, 6), 3] = np.nan  # NaN in lane 3 of the first block
    x[rng.integers(0, n), 17] = np.inf  # inf in lane 1 of the second block
    return x.astype(np.float32), offsets


def test_profile_same_bits_for_any_thread_split(case, monkeypatch):
    x, offsets = case
    monkeypatch.setattr(_threads, "SERIAL_WORK", 0)  # threads even for this small input
    one = _lagstats.profile_moments(x, offsets, 30, threads=1)
    for threads in (2, 3, 5):
        np.testing.assert_array_equal(_lagstats.profile_moments(x, offsets, 30, threads=threads), one)
    # a probe alone (lane 0 of a block of one) gives the bits it gets as lane j of a full block
    for p in (0, 3, 17, 36):
        alone = _lagstats.profile_moments(np.ascontiguousarray(x[:, p:p + 1]), offsets, 30, threads=1)
        np.testing.assert_array_equal(alone[..., 0], one[..., p])


def test_profile_lanes_match_the_twin(case):
    x, offsets = case
    with np.errstate(invalid="ignore"):
        r, n_pairs, _ = _lagstats.lag_correlation_profile(x, offsets, 30)
        twin, twin_pairs, _ = naive.profile_r(x, offsets, 30)
    np.testing.assert_array_equal(n_pairs, twin_pairs)
    np.testing.assert_allclose(r, twin, rtol=1e-10, atol=1e-12)


def test_profile_first_stop_splits_exactly(case):
    x, offsets = case
    cut = int(offsets[11]) + 7  # inside a segment
    whole = _lagstats.profile_moments(x, offsets, 30)
    head = _lagstats.profile_moments(x, offsets, 30, first_stop=cut)
    tail_offsets = np.concatenate(([0], offsets[offsets > cut] - cut))
    tail = _lagstats.profile_moments(x[cut:], tail_offsets, 30)
    np.testing.assert_allclose(_lagstats.merge_moments(head, tail), whole, rtol=1e-10, atol=1e-9)


def test_profile_rows_kernel_for_long_segments(monkeypatch):
    """A segment longer than LANE_TOKENS takes the rows kernel (a quarter of the buffers): same twin, same bits
    for any thread split."""
    from emostats._kernels.profile import LANE_TOKENS

    rng = np.random.default_rng(5)
    n = LANE_TOKENS + 3000
    x = (rng.standard_normal((n, 19)).cumsum(axis=0) * 0.01 + 1e3).astype(np.float32)
    x[17, 4] = np.nan
    offsets = np.array([0, 1000, LANE_TOKENS + 2000, n], dtype=np.int64)
    with np.errstate(invalid="ignore"):
        r, _, _ = _lagstats.lag_correlation_profile(x, offsets, 6)
        twin, _, _ = naive.profile_r(x, offsets, 6)
    np.testing.assert_allclose(r, twin, rtol=1e-10, atol=1e-12)
    monkeypatch.setattr(_threads, "SERIAL_WORK", 0)
    one = _lagstats.profile_moments(x, offsets, 6, threads=1)
    np.testing.assert_array_equal(_lagstats.profile_moments(x, offsets, 6, threads=3), one)
