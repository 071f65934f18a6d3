"""The dask path of lag_persistence / lag_profile / trajectories: any chunking, same numbers (issue 4)."""

import warnings

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import emostats as es
from emostats.segments import offsets_from_lengths
from tests.conftest import ATOL_DASK
from tests.naive import lag as naive

LAG, MAX_LAG = 7, 12


def _act(rng, lengths=None, n_probes=5, nan=True):
    lengths = rng.integers(1, 40, size=12) if lengths is None else np.asarray(lengths)
    offsets = offsets_from_lengths(lengths)
    n = int(offsets[-1])
    x = rng.standard_normal((n, n_probes)).cumsum(0).astype(np.float32) + 1e4
    x[:, 1] = 3.0  # constant probe
    if nan:
        x[rng.integers(0, n, 5), 2] = np.nan
    seg = naive.segment_ids(offsets)
    return xr.DataArray(x, dims=("token", "probe"), name="probe_act",
                        coords={"conversation": ("token", seg // 4), "turn": ("token", seg % 4),
                                "probe": [f"p{i}" for i in range(n_probes)]})


def _all(act):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return (es.lag_persistence(act, lag=LAG), es.lag_profile(act, max_lag=MAX_LAG),
                es.trajectories(act, max_lag=MAX_LAG))


def _assert_same(eager, lazy):
    for a, b in zip(eager, lazy):
        for name in a.data_vars:
            va, vb = a[name].values, b[name].values
            if np.issubdtype(va.dtype, np.integer):
                np.testing.assert_array_equal(va, vb, err_msg=name)
            else:
                np.testing.assert_array_equal(np.isnan(va), np.isnan(vb), err_msg=name)
                np.testing.assert_allclose(va, vb, rtol=0, atol=ATOL_DASK, err_msg=name)


@pytest.mark.parametrize("chunks", [1, 3, 7, 50, {"token": 64, "probe": 2}])
def test_any_token_chunking_gives_the_in_memory_numbers(rng, chunks):
    act = _act(rng)
    spec = chunks if isinstance(chunks, dict) else {"token": chunks}
    lazy = act.chunk(spec)
    assert lazy.chunks is not None
    _assert_same(_all(act), _all(lazy))


@settings(max_examples=20)
@given(st.lists(st.integers(1, 25), min_size=1, max_size=8), st.lists(st.integers(1, 30), min_size=1, max_size=6))
def test_chunking_changes_nothing_property(lengths, chunk_sizes):
    rng = np.random.default_rng(len(lengths))
    act = _act(rng, lengths=lengths, n_probes=3)
    n = act.sizes["token"]
    sizes, total = [], 0
    for c in chunk_sizes * (n // 1 + 1):
        if total >= n:
            break
        sizes.append(min(c, n - total))
        total += sizes[-1]
    _assert_same(_all(act), _all(act.chunk({"token": tuple(sizes)})))


def test_split_files_opened_lazily_match_one_file(tmp_path):
    from emostats import synth

    tree, _ = synth.make_study(n_tokens=6000, n_probes=4, n_features=0, k=4, hidden=16, groups=("tokens",), seed=2)
    tokens = tree["tokens"].to_dataset(inherit=False)
    cut = 2500  # inside a segment
    parts = []
    for i, piece in enumerate((tokens.isel(token=slice(0, cut)), tokens.isel(token=slice(cut, None)))):
        part = tree.copy()
        part["tokens"] = xr.DataTree(piece)
        es.save(part, tmp_path / f"part{i}.nc")
        parts.append(tmp_path / f"part{i}.nc")
    es.save(tree, tmp_path / "whole.nc")
    with es.open_study(tmp_path / "whole.nc") as one, es.open_study(parts, chunks={"token": 1000}) as two:
        split = two["tokens"]["probe_act"]
        assert split.chunks is not None
        _assert_same(_all(one["tokens"]["probe_act"]), _all(split))


def test_dask_distributed_local_cluster(rng):
    distributed = pytest.importorskip("distributed")
    act = _act(rng, n_probes=4)
    eager = _all(act)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        lazy = _all(act.chunk({"token": 37}))
    _assert_same(eager, lazy)
