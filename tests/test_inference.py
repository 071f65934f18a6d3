"""Conversation-level inference (issue 14): merges, within-turn split, bootstrap, placebo, study_from_activations.

The reference for every resampled number is the same analysis run on data in
which the resampled conversations are physically repeated.
"""

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import emostats as es
from emostats._lagstats import lag_moments
from emostats.inference import (conversation_bootstrap, placebo_nulls, study_from_activations,
                                within_turn_persistence)
from emostats.inference._merge import merge_matrices, merge_weighted, merge_within, r_from, within_from_segments
from emostats.inference._resample import (bca_interval, bootstrap_weights, jackknife_p, percentile_interval, placebo_rank)
from emostats.inference.bootstrap import build_headlines
from emostats.inference.convstats import conversation_index
from emostats.inference.headlines import _nearest, rowwise_spearman
from emostats.inference.placebo import _Prepared, set_statistics
from emostats.synth import make_world, world_truth

RTOL = 1e-10


def _hidden(seed=0, G=5, T=3, L=40, H=8, level=0.8):
    rng = np.random.default_rng(seed)
    n_seg = G * T
    lengths = rng.integers(L // 2, L + 1, size=n_seg)
    b = np.repeat(rng.normal(size=(n_seg, H)) * level, lengths, axis=0)
    x = b + rng.normal(size=(lengths.sum(), H)) + 5.0
    conv = np.repeat(np.repeat(np.arange(G), T), lengths)
    turn = np.repeat(np.tile(np.arange(T), G), lengths)
    return xr.DataArray(x, dims=("token", "hidden"), coords={"conversation": ("token", conv),
                                                             "turn": ("token", turn)})


def _resampled(da, counts):
    """The tokens of each conversation repeated ``counts[g]`` times, copies relabelled as new conversations."""
    conv = da["conversation"].values
    labels = np.unique(conv)
    parts, new_conv, new_turn = [], [], []
    k = 0
    for g, c in enumerate(labels):
        rows = np.flatnonzero(conv == c)
        for _ in range(int(counts[g])):
            parts.append(da.values[rows])
            new_conv.append(np.full(rows.size, k))
            new_turn.append(da["turn"].values[rows])
            k += 1
    return xr.DataArray(np.concatenate(parts), dims=da.dims,
                        coords={"conversation": ("token", np.concatenate(new_conv)),
                                "turn": ("token", np.concatenate(new_turn))})


# --------------------------------------------------------------------------- NumPy layer


def test_merge_weighted_equals_moments_of_repeated_conversations():
    da = _hidden()
    x = da.values
    offsets = es.segments_of(da)
    seg_conv, _ = conversation_index(da["conversation"].values, offsets)
    M = lag_moments(x, offsets, 3, groups=seg_conv, n_groups=5)
    counts = np.array([2, 0, 1, 3, 1])
    rep = _resampled(da, counts)
    ro = es.segments_of(rep)
    direct = lag_moments(rep.values, ro, 3)[0]
    merged = merge_weighted(M, counts[None, :])[0]
    np.testing.assert_allclose(merged, direct, rtol=RTOL, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6))
def test_within_split_is_exact_and_matches_naive(seed, lag):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 12, size=rng.integers(1, 6))
    x = rng.normal(size=(lengths.sum(), 2)) + rng.normal(size=2) * 1e3
    x[:, 1] = 7.0 if seed % 5 == 0 else x[:, 1]  # a constant series
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    M_seg = lag_moments(x, offsets, lag, groups=np.arange(lengths.size), n_groups=lengths.size)
    Ws = within_from_segments(M_seg, np.zeros(lengths.size, dtype=np.int64), 1)[0]
    # naive twin: centre each segment's pairs on their own means
    wxx = wyy = wxy = 0.0
    n = 0
    for s, e in zip(offsets[:-1], offsets[1:]):
        if e - s > lag:
            a, b = x[s:e - lag, 0], x[s + lag:e, 0]
            wxx += ((a - a.mean()) ** 2).sum()
            wyy += ((b - b.mean()) ** 2).sum()
            wxy += ((a - a.mean()) * (b - b.mean())).sum()
            n += a.size
    assert Ws[0, 0, 0] == n
    np.testing.assert_allclose(Ws[1:, 0, 0], [wxx, wyy, wxy], rtol=1e-8, atol=1e-6)
    # pooled = within + between, exactly
    M = merge_weighted(M_seg, np.ones((1, lengths.size)))[0]
    if n:
        means = [(x[s:e - lag, 0].mean(), x[s + lag:e, 0].mean(), e - s - lag)
                 for s, e in zip(offsets[:-1], offsets[1:]) if e - s > lag]
        mx = sum(m[0] * m[2] for m in means) / n
        my = sum(m[1] * m[2] for m in means) / n
        bxy = sum(m[2] * (m[0] - mx) * (m[1] - my) for m in means)
        np.testing.assert_allclose(M[5, 0, 0], wxy + bxy, rtol=1e-8, atol=1e-6)


def test_within_turn_persistence_against_naive():
    da = _hidden(seed=3, G=4, T=2, L=30, H=3)
    ds = within_turn_persistence(da.rename(hidden="probe"), lag=4)
    np.testing.assert_allclose(ds["r"], es.lag_persistence(da.rename(hidden="probe"), lag=4)["r"], rtol=RTOL)
    x = da.values
    off = es.segments_of(da)
    for j in range(3):
        a = np.concatenate([x[s:e - 4, j] - x[s:e - 4, j].mean() for s, e in zip(off[:-1], off[1:])])
        b = np.concatenate([x[s + 4:e, j] - x[s + 4:e, j].mean() for s, e in zip(off[:-1], off[1:])])
        assert np.isclose(ds["r_within"].values[j], (a @ b) / np.sqrt((a @ a) * (b @ b)), rtol=1e-10)
    assert np.allclose(ds["r"] * (1 - ds["between_share"]), ds["r_within_part"])
    with pytest.raises(es.EmostatsError, match="lag"):
        within_turn_persistence(da.rename(hidden="probe"), lag=0)


def test_merge_matrices_and_within_weights():
    rng = np.random.default_rng(1)
    parts = [rng.normal(size=(n, 3)) + 10 for n in (5, 7, 2)]
    n = np.array([len(p) for p in parts], float)
    m = np.stack([p.mean(0) for p in parts])
    C = np.stack([(p - p.mean(0)).T @ (p - p.mean(0)) for p in parts])
    counts = np.array([[0, 2, 1], [3, 0, 0]])
    N, mx, _, Cm = merge_matrices(n, m, m, C, counts)
    for i, c in enumerate(counts):
        x = np.concatenate([p for p, k in zip(parts, c) for _ in range(k)])
        assert N[i] == len(x)
        np.testing.assert_allclose(Cm[i] / N[i], np.cov(x.T, ddof=0), rtol=1e-10)
        np.testing.assert_allclose(mx[i], x.mean(0), rtol=1e-12)
    Wn = rng.random((3, 4, 1, 2))
    np.testing.assert_allclose(merge_within(Wn, counts)[0], 2 * Wn[1] + Wn[2])


def test_nearest_matches_the_kernel_rule():
    from emostats.nullmodels import nearest_by_variance

    rng = np.random.default_rng(0)
    for trial in range(150):
        C, T, n = rng.integers(25, 200), rng.integers(1, 40), rng.integers(1, 21)
        cv = rng.random(C).round(int(rng.integers(1, 4))) if trial % 2 else rng.random(C)
        cv[rng.random(C) < 0.05] = np.nan
        tv = cv[rng.integers(0, C, T)] if trial % 3 == 0 else rng.random(T) * 1.2 - 0.1
        tv[rng.random(T) < 0.1] = np.nan
        if np.isfinite(cv).sum() < n:
            continue
        assert (_nearest(tv, cv, n) == nearest_by_variance(tv, cv, n=n)).all()


def test_rowwise_spearman_equals_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(2)
    X = rng.integers(0, 5, size=(6, 15)).astype(float)
    X[2, 3] = np.nan
    y = rng.normal(size=15)
    rho = rowwise_spearman(X, y)
    for i in range(6):
        ok = np.isfinite(X[i])
        assert np.isclose(rho[i], spearmanr(X[i, ok], y[ok])[0])
    assert np.isnan(rowwise_spearman(np.array([[1.0, np.nan, np.nan]]), np.arange(3.0))[0])


def test_intervals_and_tests():
    from scipy import stats

    W = bootstrap_weights(7, 50, seed=3)
    assert (W.sum(1) == 7).all() and np.array_equal(W, bootstrap_weights(7, 50, seed=3))
    assert not np.array_equal(W, bootstrap_weights(7, 50, seed=4))
    with pytest.raises(es.EmostatsError, match="at least 2"):
        bootstrap_weights(1, 10, 0)
    x = np.random.default_rng(0).normal(size=9) + 0.3
    jack = (x.sum() - x) / 8
    assert np.isclose(jackknife_p(x.mean(), jack), stats.ttest_1samp(x, 0).pvalue)
    assert np.isnan(jackknife_p(1.0, np.ones(5)))  # no variation: no test
    lo, hi = percentile_interval(np.arange(1001.0), 0.95)
    assert np.allclose((lo, hi), (25.0, 975.0))
    # BCa against scipy's for the mean of a skewed sample (same statistic, large B)
    rng = np.random.default_rng(5)
    data = rng.exponential(size=30)
    B = bootstrap_weights(30, 20000, seed=1)
    reps = B @ data / 30
    jk = (data.sum() - data) / 29
    lo, hi = bca_interval(reps, data.mean(), jk, 0.95)
    ref = stats.bootstrap((data,), np.mean, method="BCa", n_resamples=20000, random_state=1).confidence_interval
    assert abs(lo - ref.low) < 0.03 and abs(hi - ref.high) < 0.05
    assert placebo_rank(5.0, np.arange(10.0)) == (55.0, 1.0)
    assert placebo_rank(20.0, np.arange(10.0))[1] == 2 / 11
    assert np.isnan(placebo_rank(np.nan, np.arange(3.0))[0])


# --------------------------------------------------------------------------- study level


@pytest.fixture(scope="module")
def world():
    tree, design = make_world("planted", n_conversations=6, seed=11)
    return tree, design


def test_study_from_activations_is_valid_and_consistent(world):
    tree, design = world
    assert es.validate(tree) == []
    cm = tree["conv_moments"].to_dataset()
    mom = tree["moments"].to_dataset()
    dp = es.direction_persistence(mom, xr.DataArray(cm["vector"].values.astype(float), dims=("direction", "hidden")),
                                  lag=10)
    h, _ = build_headlines(tree, 10)
    r = r_from(merge_weighted(h.hs.moments, np.ones((1, 6))))[0, 0]
    np.testing.assert_allclose(r, dp["r"].values, rtol=1e-9)
    # the probe activations are the projections
    act = tree["tokens"]["probe_act"].values
    assert np.allclose(act[:5], (make_world("planted", n_conversations=6, seed=11, as_study=False)[0].values[:5]
                                 @ design["vectors"].T), rtol=1e-5)


def test_study_from_activations_dask_equals_numpy():
    da = _hidden(seed=4, G=4, H=6)
    probes = np.random.default_rng(0).normal(size=(3, 6))
    a = study_from_activations(da, probes, lags=[3], n_random=10, n_candidates=20)
    b = study_from_activations(da.chunk({"token": 97}), probes, lags=[3], n_random=10, n_candidates=20)
    for group in ("tokens", "conv_moments", "moments"):
        for name, var in a[group].to_dataset().data_vars.items():
            if var.dtype.kind == "f":
                np.testing.assert_allclose(var.values, b[group][name].values, rtol=1e-9, atol=1e-12)
    with pytest.raises(es.EmostatsError, match="probes"):
        study_from_activations(da, probes[:, :4])
    with pytest.raises(es.EmostatsError, match="DataArray"):
        study_from_activations(da.values, probes)


def test_headlines_at_full_weight_equal_the_analyses(world):
    tree, _ = world
    h, scope = build_headlines(tree, 10)
    est = {k: v[0] for k, v in h.evaluate(np.ones((1, 6))).items()}
    act = tree["tokens"]["probe_act"]
    mom = tree["moments"].to_dataset()
    cm = tree["conv_moments"].to_dataset()
    vec = xr.DataArray(cm["vector"].values.astype(float), dims=("direction", "hidden"))
    dp = es.direction_persistence(mom, vec, lag=10)
    cand = dp.isel(direction=np.flatnonzero(cm["population"].values == "candidate"))
    uni = dp.isel(direction=np.flatnonzero(cm["population"].values == "uniform"))
    pr = es.lag_persistence(act, 10)
    assert np.isclose(est["probe_persistence"], float(pr["r"].mean()), rtol=RTOL)
    assert np.isclose(est["random_persistence"], float(uni["r"].mean()), rtol=1e-9)
    vm = es.variance_matched(pr["r"].reset_coords(drop=True), tree["probes"]["variance_explained"].values,
                             cand["r"], cand["variance_explained"])
    assert np.isclose(est["residual_mean"], float(vm["mean"]), rtol=1e-8)
    pcs = es.emotion_pcs(act, probe_vectors=tree["probes"]["vector"], moments=mom, candidates=cand, lag=10)
    assert np.isclose(est["pc_spearman"], float(pcs["rank_rho"]), rtol=1e-8)
    wt = within_turn_persistence(act, 10)
    assert np.isclose(est["probe_within"], float(wt["mean_r_within"]), rtol=RTOL)
    assert np.isclose(est["probe_between_share"], float(wt["mean_between_share"]), rtol=1e-9)
    assert "/conv_moments" in scope["residual_mean"]


def test_a_replicate_equals_the_analysis_of_the_resampled_study(world):
    tree, _ = world
    counts = np.array([2, 0, 1, 0, 2, 1])
    h, _ = build_headlines(tree, 10)
    rep = {k: v[0] for k, v in h.evaluate(counts[None, :]).items()}
    act = tree["tokens"]["probe_act"]
    ra = _resampled(act, counts).assign_coords(probe=act["probe"].values)
    assert np.isclose(rep["probe_persistence"], float(es.lag_persistence(ra, 10)["r"].mean()), rtol=1e-9)
    assert np.isclose(rep["probe_within"], float(within_turn_persistence(ra, 10)["mean_r_within"]), rtol=1e-9)


def test_conversation_bootstrap_on_the_example():
    study = es.open_study(es.example_study())
    try:
        bs = conversation_bootstrap(study, n_boot=60, seed=2)
        again = conversation_bootstrap(study, n_boot=60, seed=2)
    finally:
        study.close()
    np.testing.assert_array_equal(bs["boot"].values, again["boot"].values)
    pp = bs.sel(statistic="probe_persistence")
    assert pp["ci_low"] < pp["estimate"] < pp["ci_high"]
    assert bs.sizes["conversation"] == 24
    # the example has no /conv_moments: random-direction numbers say why they have no interval
    assert "conv_moments" in str(bs["missing"].sel(statistic="random_persistence").values)
    assert np.isnan(float(bs["ci_low"].sel(statistic="random_persistence")))
    with pytest.raises(es.EmostatsError, match="interval"):
        conversation_bootstrap(study, interval="basic")


def test_placebo_sets_equal_the_analyses_of_their_activations(world):
    tree, _ = world
    mom = tree["moments"].to_dataset()
    cm = tree["conv_moments"].to_dataset()
    vec = xr.DataArray(cm["vector"].values.astype(float), dims=("direction", "hidden"))
    cand = es.direction_persistence(mom, vec, lag=10).isel(
        direction=np.flatnonzero(cm["population"].values == "candidate"))
    hidden, _ = make_world("planted", n_conversations=6, seed=11, as_study=False)
    V = np.random.default_rng(9).normal(size=(1, 5, hidden.sizes["hidden"]))
    prep = _Prepared(mom, 10)
    got = set_statistics(prep, V @ prep.U, (cand["r"].values, cand["variance_explained"].values))
    act = xr.DataArray(hidden.values @ V[0].T, dims=("token", "probe"), coords=hidden.coords)
    pr = es.lag_persistence(act, 10)
    assert np.isclose(got["probe_persistence"][0], float(pr["r"].mean()), rtol=1e-5)
    pcs = es.emotion_pcs(act, probe_vectors=V[0], moments=mom, candidates=cand, lag=10)
    assert np.isclose(got["pc_spearman"][0], float(pcs["rank_rho"]), atol=1e-9)
    pl = placebo_nulls(tree, lag=10, n_draws=30, seed=1, candidates=cand, observed={"pc_spearman": 0.5})
    assert pl["draws"].shape == (3, 30, 5)
    assert np.isfinite(pl["draws"]).all()
    again = placebo_nulls(tree, lag=10, n_draws=30, seed=1, candidates=cand)
    np.testing.assert_array_equal(pl["draws"].values, again["draws"].values)
    assert 0 <= float(pl["placebo_pct"].sel(kind="isotropic", statistic="pc_spearman")) <= 100


def test_world_truth_null_is_zero():
    tree, design = make_world("null", n_conversations=4, seed=2)
    truth = world_truth(tree, design)
    assert abs(truth["residual_mean"]) < 1e-12 and abs(truth["probe_minus_random"]) < 1e-12
    assert np.isclose(truth["probe_persistence"], 0.2 + 0.8 * 0.03)


def test_rotated_placebo_sets_keep_the_probe_geometry():
    from emostats.inference.placebo import _draw_sets, _frame, placebo_probe_sets

    rng = np.random.default_rng(3)
    V = rng.normal(size=(5, 12))
    V[4] = V[0] + V[1]  # a set of rank 4
    sets = _draw_sets("rotated", 200, np.linalg.norm(V, axis=1), np.ones(12), rng, _frame(V))
    for S in sets[:5]:
        np.testing.assert_allclose(S @ S.T, V @ V.T, atol=1e-10)  # every norm and angle kept
    assert not np.allclose(sets[0], sets[1])
    # uniform orientation: the mean of a rotated probe vector over draws is ~0 (sd of each entry / sqrt(200))
    mean = sets[:, 0].mean(axis=0)
    assert np.abs(mean).max() < 5 * np.linalg.norm(V[0]) / np.sqrt(12 * 200)
    with pytest.raises(es.EmostatsError, match="rotated"):
        placebo_probe_sets(None, 10, np.ones(5), (np.zeros(3), np.zeros(3)), kind="rotated")


def test_summary_takes_each_rows_placebo_from_its_calibrated_kind():
    from emostats.inference.columns import inference_columns

    stats_ = ["probe_persistence", "residual_mean", "residual_positive", "pc_spearman"]
    pct = np.array([[10.0, 20.0, 30.0, 40.0], [60.0, 70.0, 80.0, 90.0]])
    pl = xr.Dataset({"placebo_pct": (("kind", "statistic"), pct), "placebo_p": (("kind", "statistic"), pct / 100)},
                    coords={"kind": ["isotropic", "rotated"], "statistic": stats_})
    summary = xr.Dataset({"value": ("row", np.zeros(4))}, coords={"row": stats_})
    out = inference_columns(summary, {"placebo": pl})
    assert out["placebo_pct"].values.tolist() == [60.0, 70.0, 80.0, 40.0]  # rotated for means, isotropic for PCs
    assert "rotated copies" in str(out["inference_detail"].sel(row="residual_mean").values)
    # a placebo result without rotated sets: the isotropic value, said to be uncalibrated for that row
    out = inference_columns(summary, {"placebo": pl.sel(kind=["isotropic"])})
    assert out["placebo_pct"].values.tolist() == [10.0, 20.0, 30.0, 40.0]
    assert "not calibrated" in str(out["inference_detail"].sel(row="residual_mean").values)
    assert "not calibrated" not in str(out["inference_detail"].sel(row="pc_spearman").values)
