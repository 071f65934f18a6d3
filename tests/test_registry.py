"""Every kernel of the registry (tests/naive/registry.py) against its naive twin, on random and edge-case inputs.

One parametrised test: an entry names the public function or kernel, its twin, the
tolerance and the input generator; the same table tells benchmarks/track.py which
benchmark times the entry. Integer outputs and NaN masks must match exactly.
"""

import numpy as np
import pytest

from tests.naive.registry import REGISTRY, edge_cases


def _pairs():
    rng = np.random.default_rng(20261203)
    for entry in REGISTRY:
        for case in entry.cases(rng):
            yield pytest.param(entry, case, id=f"{entry.name}-{case.name}")


@pytest.mark.parametrize(("entry", "case"), list(_pairs()))
def test_kernel_matches_its_twin(entry, case):
    fast = entry.fast(case)
    twin = entry.twin(case)
    assert len(fast) == len(twin)
    for i, (a, b) in enumerate(zip(fast, twin)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"output {i}: shape {a.shape} != twin's {b.shape}"
        if a.dtype.kind in "iub" and b.dtype.kind in "iub":
            np.testing.assert_array_equal(a, b, err_msg=f"output {i}")
            continue
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"output {i}: NaN where the twin has none")
        np.testing.assert_allclose(a, b, rtol=entry.rtol, atol=entry.atol, err_msg=f"output {i}")


def test_every_tracked_benchmark_names_a_registry_entry():
    from benchmarks.track import TRACKED

    tracked = {e.benchmark for e in REGISTRY if e.benchmark}
    assert tracked == set(TRACKED)


def test_edge_cases_cover_the_documented_kinds():
    names = {c.name for c in edge_cases()}
    for kind in ("nan_2_3", "constant_column", "ties", "offset_1e9", "float32_offset_1e4", "byte_swapped",
                 "segments_shorter_than_lag", "empty_segments", "spike_at_first_token"):
        assert kind in names
    swapped = next(c for c in edge_cases() if c.name == "byte_swapped")
    assert not swapped.x.dtype.isnative
