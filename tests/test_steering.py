"""Causal effect of steering (Figure 6): z by hand, BH per offset, planted truth."""

import numpy as np
import pytest
import scipy.stats
import xarray as xr
from statsmodels.stats.multitest import multipletests

import emostats as es
from emostats import synth
from emostats.errors import MissingGroupError, StudyError
from emostats.steering import steering_effect
from tests.conftest import RTOL_KERNEL, RTOL_REFERENCE


def random_steering(rng, n_emotions=4, n_probes=5, n_samples=9, n_baseline=11, n_offsets=6, nan=True):
    probes = [f"p{i}" for i in range(n_probes)]
    steered = rng.normal(size=(n_emotions, n_samples, n_offsets, n_probes)) + 1e3  # offset: no lost digits
    baseline = rng.normal(size=(n_baseline, n_offsets, n_probes)) + 1e3
    if nan:
        steered[0, 2, 1, 3] = np.nan
        baseline[4, 0, 0] = np.nan
    order = rng.permutation(n_probes)[:n_emotions]
    return xr.Dataset(
        {"steered_act": (("emotion", "sample", "offset", "probe"), steered),
         "baseline_act": (("baseline_sample", "offset", "probe"), baseline)},
        coords={"emotion": [probes[i] for i in order], "probe": probes, "offset": np.arange(n_offsets)})


def z_by_hand(ds):
    """Loops over (emotion, offset), exactly as SPEC.md analysis 11 reads."""
    probes = list(ds["probe"].values)
    emotions = list(ds["emotion"].values)
    s = ds["steered_act"].values
    b = ds["baseline_act"].values
    z = np.full((len(emotions), s.shape[2]), np.nan)
    for i, e in enumerate(emotions):
        j = probes.index(e)
        others = [m for m in range(len(probes)) if m != j]
        for o in range(s.shape[2]):
            cs = np.array([s[i, k, o, j] - np.mean(s[i, k, o, others]) for k in range(s.shape[1])])
            cb = np.array([b[k, o, j] - np.mean(b[k, o, others]) for k in range(b.shape[0])])
            cs, cb = cs[~np.isnan(cs)], cb[~np.isnan(cb)]
            se_s = np.std(cs, ddof=1) / np.sqrt(cs.size)
            se_b = np.std(cb, ddof=1) / np.sqrt(cb.size)
            z[i, o] = (cs.mean() - cb.mean()) / np.sqrt(se_s ** 2 + se_b ** 2)
    return z


def test_z_equals_hand_formula(rng):
    ds = random_steering(rng)
    res = steering_effect(ds)
    np.testing.assert_allclose(res["z"].values, z_by_hand(ds), rtol=1e-9)
    assert int(res["n_steered"].values[0, 1]) == 8 and int(res["n_baseline"].values[0, 0]) == 10
    np.testing.assert_allclose(res["p"].values, 2 * scipy.stats.norm.sf(np.abs(res["z"].values)),
                               rtol=RTOL_REFERENCE)


def test_bh_across_emotions_per_offset(rng):
    ds = random_steering(rng, n_emotions=5, n_probes=5)
    ds["steered_act"][:3, :, :, :] += rng.normal(size=(3, 1, 1, 5)) * 0.8  # some real effects
    res = steering_effect(ds, alpha=0.1)
    for o in range(res.sizes["offset"]):
        p = res["p"].values[:, o]
        np.testing.assert_allclose(res["q"].values[:, o], multipletests(p, method="fdr_bh")[1], rtol=RTOL_KERNEL)
    sig = res["q"].values <= 0.1
    np.testing.assert_array_equal(res["significant"].values, sig)
    np.testing.assert_array_equal(res["n_persistent"].values, (sig & (res["z"].values > 0)).sum(0))
    np.testing.assert_array_equal(res["n_antipersistent"].values, (sig & (res["z"].values < 0)).sum(0))
    assert res.attrs["alpha"] == 0.1


def test_degenerate_rows_are_nan(rng):
    ds = random_steering(rng, nan=False)
    ds["steered_act"][1, :, 2, :] = 5.0  # constant on both sides at one offset -> z undefined
    ds["baseline_act"][:, 2, :] = 5.0
    ds["steered_act"][2, 1:, 4, :] = np.nan  # one steered sample left -> no sd
    res = steering_effect(ds)
    assert np.isnan(res["z"].values[1, 2]) and np.isnan(res["q"].values[1, 2])
    assert np.isnan(res["z"].values[2, 4]) and int(res["n_steered"].values[2, 4]) == 1
    assert int(res["n_tested"].values[2]) == ds.sizes["emotion"] - 1


def test_dask_equals_eager(rng):
    ds = random_steering(rng)
    eager = steering_effect(ds)
    lazy = steering_effect(ds.chunk({"emotion": 1, "offset": 2, "sample": 4}))
    xr.testing.assert_allclose(eager, lazy, rtol=RTOL_KERNEL)


def test_validation(rng):
    ds = random_steering(rng)
    bad = ds.assign_coords(emotion=["p0", "joy", "p1", "p2"])
    with pytest.raises(StudyError, match=r"emotion 'joy' \(index 1\) is not a name in the probe"):
        steering_effect(bad)
    with pytest.raises(MissingGroupError, match="baseline_act"):
        steering_effect(ds.drop_vars("baseline_act"))
    with pytest.raises(MissingGroupError, match="/steering"):
        steering_effect(xr.DataTree())
    with pytest.raises(StudyError, match="alpha"):
        steering_effect(ds, alpha=2)


@pytest.fixture(scope="module")
def planted():
    tree, truth = synth.make_study(n_tokens=2000, n_probes=30, n_features=0, hidden=48, seed=11,
                                   n_steer_emotions=30, n_steer_samples=16, n_baseline=16, n_offsets=121,
                                   groups=["steering"])
    return tree, truth, steering_effect(tree)


def test_planted_effects_recovered(planted):
    _, truth, res = planted
    kind = truth["steer_kind"].values
    shift = truth["steer_shift"].values / truth["steer_probe_sd"].values[:, None]  # in sds of the probe
    sig, z = res["significant"].values, res["z"].values
    strong = np.abs(shift) > 1.0  # planted shifts of a sizeable fraction of an sd are found
    assert strong[kind == "elevated", 5].sum() > 5 and strong[kind == "suppressed", 5].sum() >= 1
    assert (sig & (z > 0))[strong & (shift > 0)].mean() > 0.9
    assert (sig & (z < 0))[strong & (shift < 0)].mean() > 0.9
    # where the planted shift is strong the sign is never wrong
    assert not (sig & (z < 0))[strong & (shift > 0)].any()
    assert not (sig & (z > 0))[strong & (shift < 0)].any()
    # cells with (almost) no planted effect: null emotions at every offset, and the decayed
    # tails of the others; discoveries there stay within the FDR budget
    none = np.abs(shift) < 0.02
    assert (kind == "null").sum() >= 3 and none.sum() > 1000
    assert sig[kind == "null"].mean() <= 0.05
    assert sig[none].mean() <= 0.05
    assert es.steering_effect is steering_effect


def test_plot_steering(planted):
    import matplotlib

    matplotlib.use("Agg")
    from emostats.plots.steering import plot_steering

    _, _, res = planted
    fig = plot_steering(res)
    top, heat, _ = fig.axes
    assert len(top.patches) == 2 * len(range(0, res.sizes["offset"], 5))
    assert heat.get_xlabel() == "tokens after the steering pulse"
    # the downward (anti-persistent) bars get labelled ticks too, printed as counts (no minus sign)
    fig.canvas.draw()
    if int(res["n_antipersistent"].max()) > 0:
        below = [t for t in top.get_yticks() if top.get_ylim()[0] <= t < 0]
        assert below, top.get_yticks()
    labels = [t.get_text() for t in top.get_yticklabels()]
    assert labels and not any(lab.startswith(("-", "\u2212")) for lab in labels)
    fig = plot_steering(res, fig=fig, order="none")  # redraw into the same figure
    assert len(fig.axes) == 3
    matplotlib.pyplot.close("all")


def test_plot_steering_labels_downward_counts(planted):
    # as in the first example study: up to 7 emotions up but only 3 down; the count axis once had
    # no tick below 0, so the downward bars could not be read
    import matplotlib

    matplotlib.use("Agg")
    from emostats.plots.steering import plot_steering

    _, _, res = planted
    n_off = res.sizes["offset"]
    up = np.zeros(n_off, dtype=np.int64)
    down = np.zeros(n_off, dtype=np.int64)
    up[:4], down[:2] = [7, 6, 3, 2], [3, 3]
    fig = plot_steering(res.assign(n_persistent=("offset", up), n_antipersistent=("offset", down)), every=1)
    top = fig.axes[0]
    fig.canvas.draw()
    low = top.get_ylim()[0]
    assert low <= -3
    assert [t for t in top.get_yticks() if low <= t < 0]
    matplotlib.pyplot.close("all")


def test_plot_steering_legend_clear_of_bars(planted):
    # the legend sat over the count bars of late offsets
    import matplotlib

    matplotlib.use("Agg")
    from emostats.plots.steering import plot_steering

    _, _, res = planted
    n_off = res.sizes["offset"]
    up = np.full(n_off, 2, dtype=np.int64)
    down = np.ones(n_off, dtype=np.int64)
    fig = plot_steering(res.assign(n_persistent=("offset", up), n_antipersistent=("offset", down)))
    top = fig.axes[0]
    fig.canvas.draw()
    legend = top.get_legend().get_window_extent()
    bars = [p.get_window_extent() for p in top.patches]
    assert not any(legend.overlaps(b) for b in bars)
    matplotlib.pyplot.close("all")
