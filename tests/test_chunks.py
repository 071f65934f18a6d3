"""The one chunked-reduction scheme (emostats._chunks) and its three users: lag statistics,
SAE firing counts and the streamed /moments. Any chunking -- chunks shorter than the lag,
segments crossing chunk borders, empty chunks -- gives the in-memory numbers; the overlap
is sliced, never a concatenation of whole chunks; a small dask.distributed cluster runs it
without a worker restart."""

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import emostats as es
from emostats._chunks import _StreamingTree, overlapping_spans, reduce_over_chunks, token_bounds, tree_reduce
from emostats.nullmodels import moment_arrays
from emostats.segments import offsets_from_lengths
from tests.conftest import ATOL_DASK, RTOL_KERNEL
from tests.naive import nullmodels as naive_moments

LAG = 7
MOMENT_KEYS = ("mean", "cov", "lag_mean_x", "lag_mean_y", "lag_cxx", "lag_cyy", "lag_cxy")


def _sizes(n, pattern):
    """Chunk sizes cycling through ``pattern`` (zeros allowed) until they cover ``n`` tokens."""
    sizes, total, i = [], 0, 0
    while total < n:
        size = min(pattern[i % len(pattern)], n - total)
        sizes.append(size)
        total += size
        i += 1
    return tuple(sizes) or (0,)


def _segments(lengths):
    offsets = offsets_from_lengths(lengths)
    seg = np.repeat(np.arange(len(lengths)), lengths)
    return offsets, seg


def _probe_act(rng, lengths, n_probes=3):
    offsets, seg = _segments(lengths)
    x = rng.standard_normal((int(offsets[-1]), n_probes)).cumsum(0) + 50.0
    return xr.DataArray(x, dims=("token", "probe"), coords={"conversation": ("token", seg // 3),
                                                            "turn": ("token", seg % 3)})


def _sae_index(rng, lengths, k=3, n_features=12):
    offsets, seg = _segments(lengths)
    idx = rng.integers(-1, n_features, size=(int(offsets[-1]), k)).astype(np.int32)
    return xr.DataArray(idx, dims=("token", "slot"), coords={"conversation": ("token", seg // 3),
                                                            "turn": ("token", seg % 3)})


# --------------------------------------------------------------------------- the helper itself


@given(st.integers(1, 70), st.sampled_from([None, 2, 3, 8]))
def test_streaming_tree_is_the_dask_tree(n, fan_in):
    parts = [f"p{i}" for i in range(n)]
    merge = lambda *p: "(" + ",".join(p) + ")"  # noqa: E731  (records the exact merge order)
    tree = _StreamingTree(merge, fan_in)
    for p in parts:
        tree.push(p)
    want = tree_reduce(parts, merge, fan_in)
    assert tree.result() == want
    delayed = tree_reduce([dask.delayed(p) for p in parts], merge, fan_in)
    assert (delayed.compute() if hasattr(delayed, "compute") else delayed) == want


def test_spans_own_rows_partition_and_reach():
    offsets = np.array([0, 5, 6, 14, 20])
    spans = overlapping_spans(token_bounds(20, chunks=(3, 0, 2, 9, 6)), 4, offsets, groups=np.array([0, 1, 2, 3]))
    assert [(s.start, s.stop, s.end) for s in spans] == [(0, 3, 7), (3, 5, 9), (5, 14, 18), (14, 20, 20)]
    for s in spans:
        assert s.offsets[0] == 0 and s.offsets[-1] == s.end - s.start
        glob = s.offsets + s.start  # local segments = global segments cut to the block
        assert set(glob[1:-1]) <= set(offsets.tolist())
    assert spans[1].groups.tolist() == [0, 1, 2]  # rows 3..9 lie in segments 0, 1, 2


class _CountingSource:
    """A sliceable array that records which rows are read (as a file-backed study would)."""

    def __init__(self, values):
        self.values, self.shape, self.dtype, self.ndim = values, values.shape, values.dtype, values.ndim
        self.rows_read = 0

    def __getitem__(self, key):
        out = self.values[key]
        self.rows_read += out.shape[0]
        return out


@pytest.mark.parametrize("chunk", [50, 3])
def test_overlap_is_sliced_not_whole_chunks(chunk):
    n, reach = 400, 5
    src = _CountingSource(np.arange(n * 2, dtype=np.float64).reshape(n, 2))
    arr = da.from_array(src, chunks=(chunk, 2))
    seen = []

    def fn(block, span):
        seen.append((span.start, span.stop, span.end, block.shape[0]))
        return block[: span.own].sum(axis=0)

    total = reduce_over_chunks(arr, reach, fn, lambda *p: sum(p[1:], p[0]))
    np.testing.assert_array_equal(total, src.values.sum(axis=0))
    assert all(rows == end - start for start, _, end, rows in seen)
    # every row once for its own chunk, and about `reach` rows more per chunk for the overlap
    n_chunks = -(-n // chunk)
    assert src.rows_read <= n + reach * n_chunks + reach, src.rows_read


def test_eager_and_dask_same_bits_for_the_same_chunks(rng):
    acts = rng.standard_normal((300, 4)) * 3 + 1e3
    offsets = offsets_from_lengths([50, 3, 90, 1, 156])
    eager = moment_arrays(acts, lags=[2, 20], offsets=offsets, block_tokens=37)
    lazy = moment_arrays(da.from_array(acts, chunks=(37, 4)), lags=[2, 20], offsets=offsets)
    for key in MOMENT_KEYS:
        np.testing.assert_array_equal(lazy[key], eager[key], err_msg=key)


# --------------------------------------------------------------------------- the users, any chunking


@settings(max_examples=15)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=8), st.lists(st.integers(0, 12), min_size=1, max_size=5)
       .filter(lambda p: any(p)))
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the naive twin divides by 0 pairs (NaN moments, skipped)
def test_any_chunking_equals_eager(lengths, pattern):
    """Chunks of 0..12 tokens (many shorter than the lag 7); segments of 1..30 cross chunk borders."""
    rng = np.random.default_rng(sum(lengths) + len(pattern))
    act = _probe_act(rng, lengths)
    index = _sae_index(rng, lengths)
    sizes = _sizes(act.sizes["token"], pattern)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for fn in (lambda a: es.lag_persistence(a, lag=LAG), lambda a: es.lag_profile(a, max_lag=LAG + 3),
                   lambda a: es.trajectories(a, max_lag=LAG + 3)):
            eager, lazy = fn(act), fn(act.chunk({"token": sizes}))
            for name in eager.data_vars:
                np.testing.assert_allclose(lazy[name].values, eager[name].values, rtol=0, atol=ATOL_DASK,
                                           err_msg=name)
    for lag in (0, LAG):
        eager = es.firing_persistence(index, lag=lag, min_fires=2, n_features=12)
        lazy = es.firing_persistence(index.chunk({"token": sizes}), lag=lag, min_fires=2, n_features=12)
        for name in ("n_fires", "n_t", "n_tl", "n_both", "n_valid"):  # counts: exactly equal
            np.testing.assert_array_equal(lazy[name].values, eager[name].values, err_msg=name)
    offsets = offsets_from_lengths(lengths)
    x = act.values
    want = naive_moments.moments_direct(x, [1, LAG], offsets)
    for got in (moment_arrays(da.from_array(x, chunks=(sizes, 3)), lags=[1, LAG], offsets=offsets),
                moment_arrays(x, lags=[1, LAG], offsets=offsets, block_tokens=max(pattern))):
        assert got["lag_n"].tolist() == want["lag_n"].tolist() and got["n"] == want["n"]
        for key in MOMENT_KEYS:
            if np.all(np.isfinite(want[key])):
                np.testing.assert_allclose(got[key], want[key], rtol=RTOL_KERNEL, atol=1e-9, err_msg=key)


def test_emotion_pcs_dask_equals_eager(rng):
    act = _probe_act(rng, [40, 3, 77, 12, 90], n_probes=4)
    eager = es.emotion_pcs(act, lag=LAG)
    lazy = es.emotion_pcs(act.chunk({"token": 5}), lag=LAG)
    for name in ("eigenvalue", "r", "n_pairs"):
        np.testing.assert_allclose(lazy[name].values, eager[name].values, rtol=RTOL_KERNEL, err_msg=name)


# --------------------------------------------------------------------------- dask.distributed


def test_local_cluster_small_memory_no_worker_restart(rng):
    distributed = pytest.importorskip("distributed")
    lengths = rng.integers(50, 400, size=300)
    act = _probe_act(rng, lengths, n_probes=8).astype(np.float32)
    index = _sae_index(rng, lengths, k=8, n_features=500)
    offsets = offsets_from_lengths(lengths)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        eager = (es.lag_persistence(act, lag=100), es.lag_profile(act, max_lag=120),
                 es.firing_persistence(index, lag=100, n_features=500),
                 moment_arrays(act.values, lags=[100], offsets=offsets, block_tokens=4000))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="700MiB",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        before = sorted(client.scheduler_info()["workers"])
        chunk = {"token": 4000}  # 20+ chunks, segments crossing every border
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lazy = (es.lag_persistence(act.chunk(chunk), lag=100), es.lag_profile(act.chunk(chunk), max_lag=120),
                    es.firing_persistence(index.chunk(chunk), lag=100, n_features=500),
                    moment_arrays(act.chunk(chunk), lags=[100], offsets=offsets))
        after = sorted(client.scheduler_info()["workers"])
    assert before == after and len(after) == 2  # a restarted worker comes back with a new address
    for a, b in zip(eager[:3], lazy[:3]):
        for name in a.data_vars:
            np.testing.assert_allclose(b[name].values, a[name].values, rtol=0, atol=ATOL_DASK, err_msg=name)
    for key in MOMENT_KEYS:  # same chunks: the same bits as in memory
        np.testing.assert_array_equal(lazy[3][key], eager[3][key], err_msg=key)
