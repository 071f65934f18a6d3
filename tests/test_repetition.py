"""Looping turns: the n-gram repeat share against a slow reference, and persistence by subset."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from emostats.errors import ArgumentError
from emostats.persistence import lag_persistence
from emostats.repetition import ngram_repeat_share, persistence_by_looping


def _naive_share(ids, offsets, n):
    out = []
    for a, b in zip(offsets[:-1], offsets[1:]):
        grams = [tuple(ids[i:i + n]) for i in range(a, b - n + 1)]
        if not grams:
            out.append(np.nan)
            continue
        seen, repeats = set(), 0
        for g in grams:
            repeats += g in seen
            seen.add(g)
        out.append(repeats / len(grams))
    return np.array(out)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=0, max_size=60), st.lists(st.integers(0, 20), max_size=5),
       st.integers(1, 5))
def test_repeat_share_equals_a_slow_reference(ids, cuts, n):
    ids = np.array(ids, dtype=np.int64)
    offsets = np.unique(np.clip([0, *cuts, ids.size], 0, ids.size))
    if offsets.size == 1:
        offsets = np.array([0, 0])
    np.testing.assert_array_equal(ngram_repeat_share(ids, offsets, n), _naive_share(ids, offsets, n))


def test_large_ids_do_not_collide():
    ids = np.array([2**62, 1, 2**62 + 1, 1], dtype=np.int64)
    assert ngram_repeat_share(ids, [0, 4], n=1)[0] == pytest.approx(0.25)


def _study(rng, n_turns=8, length=200, looping=(1, 3)):
    conv = np.repeat(np.arange(n_turns) // 2, length)
    turn = np.repeat(np.arange(n_turns) % 2, length)
    x = rng.standard_normal((n_turns * length, 3))
    share = np.zeros(n_turns * length)
    for t in looping:  # looping turns: a short pattern said again and again
        x[t * length:(t + 1) * length] = np.tile(rng.standard_normal((5, 3)), (length // 5, 1))
        share[t * length:(t + 1) * length] = 0.9
    act = xr.DataArray(x, dims=("token", "probe"), coords={"conversation": ("token", conv), "turn": ("token", turn),
                                                            "probe": ["a", "b", "c"]})
    return act, xr.DataArray(share, dims="token")


def test_subsets_equal_lag_persistence_on_the_selected_turns():
    act, share = _study(np.random.default_rng(0))
    ds = persistence_by_looping(act, share, lag=5)
    loop = share.values > 0.1
    np.testing.assert_array_equal(ds["r"].sel(subset="all").values, lag_persistence(act, lag=5)["r"].values)
    np.testing.assert_array_equal(ds["r"].sel(subset="non_looping").values,
                                  lag_persistence(act.isel(token=~loop), lag=5)["r"].values)
    np.testing.assert_array_equal(ds["r"].sel(subset="looping").values,
                                  lag_persistence(act.isel(token=loop), lag=5)["r"].values)
    assert ds["n_turns"].values.tolist() == [8, 6, 2] and float(ds["looping_share"]) == 0.25
    # the looping turns repeat a 5-token pattern: r at lag 5 is 1 there, about 0 elsewhere
    assert float(ds["mean_r"].sel(subset="looping")) == pytest.approx(1.0)
    assert abs(float(ds["mean_r"].sel(subset="non_looping"))) < 0.1


def test_no_looping_turn_gives_nan_not_a_crash():
    act, share = _study(np.random.default_rng(1), looping=())
    ds = persistence_by_looping(act, share, lag=5)
    assert int(ds["n_turns"].sel(subset="looping")) == 0
    assert np.isnan(ds["r"].sel(subset="looping").values).all()
    assert np.isnan(float(ds["mean_r"].sel(subset="looping")))


@pytest.mark.parametrize("share, match", [
    (np.full(1600, 2.0), "outside"),
    (np.zeros(5), "shape"),
])
def test_bad_share_is_one_line(share, match):
    act, _ = _study(np.random.default_rng(2))
    with pytest.raises(ArgumentError, match=match):
        persistence_by_looping(act, xr.DataArray(share, dims="token"), lag=5)


@pytest.mark.parametrize("ids, offsets, match", [
    (np.array([0.5, 1.0]), [0, 2], "integer"),
    (np.array([1, 2]), [0, 3], "offsets"),
    (np.array([1, 2]), [1, 2], "offsets"),
])
def test_bad_ids_are_one_line(ids, offsets, match):
    with pytest.raises(ArgumentError, match=match):
        ngram_repeat_share(ids, offsets)


def test_the_looping_step_runs_on_a_study_with_repeat_share_and_skips_without():
    import emostats as es

    act, share = _study(np.random.default_rng(3))
    tokens = xr.Dataset({"probe_act": act, "repeat_share": share})
    tokens = tokens.assign_coords(position=("token", np.tile(np.arange(200), 8)))
    tree = xr.DataTree.from_dict({"/tokens": tokens})
    tree.attrs["emostats_format"] = 1
    res = es.run(tree, steps=["persistence", "looping"], lag=5, max_lag=5, progress=False)
    direct = persistence_by_looping(act, share, lag=5)
    np.testing.assert_array_equal(res["looping"]["r"].values, direct["r"].values)
    res = es.run(_without_share(tree), steps=["persistence", "looping"], lag=5,
                 max_lag=5, progress=False, quiet=True)
    assert "repeat_share" in res.attrs["skipped_looping"]


def _without_share(tree):
    tokens = tree["tokens"].to_dataset().drop_vars("repeat_share")
    out = xr.DataTree.from_dict({"/tokens": tokens})
    out.attrs.update(tree.attrs)
    return out
