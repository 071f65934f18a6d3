"""Properties (issue 12): any study ``validate`` accepts runs to the end; joining files in any
order, with their labels in any order, or reading them in chunks gives the same numbers.
"""

import warnings

import numpy as np
import pytest
import xarray as xr
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import emostats as es
from emostats.validation import problems_with_severity
from tests.hostile.generator import base_study

#: steps that cover every group of the small study and run in well under a second
STEPS = ["persistence", "profile", "trajectories", "steering", "sae_persistence", "mentions", "summary"]


@pytest.fixture(scope="module")
def base():
    return base_study(seed=3)


def _tokens(tree):
    return tree["tokens"].to_dataset(inherit=False)


def _relabel_segments(ds, lengths, conv_dtype, big_ids):
    n = ds.sizes["token"]
    conv, turn, pos, s, total = [], [], [], 0, 0
    while total < n:
        length = min(lengths[s % len(lengths)], n - total)
        conv += [s // 3] * length
        turn += [s % 3] * length
        pos += list(range(length))
        total += length
        s += 1
    conv = np.array(conv, dtype=np.uint64 if big_ids else conv_dtype)
    if big_ids:
        conv = np.uint64(2**64 - 2**20) + conv  # distinct ids that collide as float64
    return ds.assign_coords(conversation=("token", conv), turn=("token", np.array(turn, dtype=np.int32)),
                            position=("token", np.array(pos, dtype=np.int64)))


@st.composite
def hostile_studies(draw, base):
    tree = base.copy()
    ds = _tokens(tree)
    n = draw(st.integers(1, ds.sizes["token"]))
    ds = ds.isel(token=slice(0, n))
    lengths = draw(st.lists(st.integers(1, 60), min_size=1, max_size=6))
    ds = _relabel_segments(ds, lengths, draw(st.sampled_from([np.int16, np.int32, np.int64])), draw(st.booleans()))
    act = ds.probe_act.values.astype(draw(st.sampled_from([np.float32, np.float64])))
    for _ in range(draw(st.integers(0, 3))):  # NaN/inf: masked pairwise
        act[draw(st.integers(0, n - 1)), draw(st.integers(0, act.shape[1] - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf]))
    if draw(st.booleans()):
        act[:, draw(st.integers(0, act.shape[1] - 1))] = draw(st.floats(-1e6, 1e6))  # a constant probe
    scale = draw(st.sampled_from([1e-30, 1.0, 1e4, 1e30]))
    ds = ds.assign(probe_act=(("token", "probe"), act * act.dtype.type(scale) if np.isfinite(scale) else act))
    tree["tokens"] = xr.DataTree(ds)
    for group in ("features", "probes", "moments", "steering", "evaluations"):
        if draw(st.booleans()):
            del tree[group]
    if "steering" in tree.children and draw(st.booleans()):
        offsets = draw(st.integers(1, tree["steering"].sizes["offset"]))
        tree["steering"] = xr.DataTree(tree["steering"].to_dataset(inherit=False).isel(offset=slice(0, offsets)))
    return tree


@settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(data=st.data())
def test_any_study_validate_accepts_runs_to_the_end(base, data):
    tree = data.draw(hostile_studies(base))
    errors, _ = problems_with_severity(tree)
    if errors:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NaN/constant warnings are expected here
        res = es.run(tree, steps=STEPS, lag=5, max_lag=12, n_perm=99, progress=False, quiet=True)
    assert set(res.attrs["steps_run"].split()) | set(res.attrs["steps_skipped"].split()) == set(STEPS)
    if "persistence" in res.children:
        r = res["persistence"]["r"].values
        assert not np.isinf(r).any() and np.all(np.isnan(r) | (np.abs(r) <= 1 + 1e-12))


def _split(tree, cuts):
    ds = _tokens(tree)
    bounds = [0, *cuts, ds.sizes["token"]]
    return [ds.isel(token=slice(a, b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


@settings(max_examples=8, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(data=st.data())
def test_joining_in_any_order_or_chunking_gives_the_same_numbers(base, data, tmp_path_factory):
    tree = base.copy()
    ds = _tokens(tree)
    starts = np.flatnonzero(np.diff(ds.conversation.values) | np.diff(ds.turn.values)) + 1
    cuts = sorted(set(data.draw(st.lists(st.sampled_from(starts.tolist()), min_size=1, max_size=3))))
    parts = _split(tree, cuts)  # whole segments per file: any file order is the same study
    order = data.draw(st.permutations(range(len(parts))))
    folder = tmp_path_factory.mktemp("join")
    paths = []
    for i in order:
        part = tree.copy()
        probe_order = list(data.draw(st.permutations(range(parts[i].sizes["probe"]))))
        part["tokens"] = xr.DataTree(parts[i].isel(probe=probe_order))
        for group in ("probes", "steering"):  # each file consistent in itself, in its own probe order
            part[group] = xr.DataTree(tree[group].to_dataset(inherit=False).isel(probe=probe_order))
        es.save(part, folder / f"part{i}.nc")
        paths.append(folder / f"part{i}.nc")
    whole = es.lag_persistence(ds["probe_act"], lag=5)["r"]
    chunks = data.draw(st.sampled_from([None, {"token": 37}, {"token": 1000}]))
    joined = es.open_study(paths, chunks=chunks)
    try:
        got = es.lag_persistence(joined["tokens"]["probe_act"], lag=5)["r"]
        np.testing.assert_allclose(got.sel(probe=whole.probe).values, whole.values, rtol=1e-10, atol=1e-12)
    finally:
        joined.close()
