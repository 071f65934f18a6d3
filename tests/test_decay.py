"""fit_decay: known half-lives recovered, AIC choice, bootstrap over conversations (issue 4)."""

import numpy as np
import pytest
import xarray as xr

import emostats as es
from emostats import decay, decay_bootstrap
from emostats.errors import EmostatsError

TAU = np.arange(0, 201)


def curves(params, noise=0.0, seed=0):
    """DataArray (probe, tau) of tail + sum amp * 2^(-tau/h) with Gaussian noise."""
    rng = np.random.default_rng(seed)
    rows = [decay.decay_curve(TAU, tail, amps, hls) for tail, amps, hls in params]
    y = np.array(rows) + noise * rng.standard_normal((len(rows), TAU.size))
    return xr.DataArray(y, dims=("probe", "tau"), coords={"tau": TAU, "probe": [f"p{i}" for i in range(len(rows))]})


TWO = [(0.1, [0.6, 0.3], [3.0, 60.0]), (0.0, [0.5, 0.4], [1.5, 140.0]), (0.2, [0.3, 0.3], [8.0, 40.0])]
ONE = [(0.1, [0.8], [10.0]), (0.3, [0.5], [25.0])]


def test_noise_free_curves_are_recovered_exactly():
    fit = es.fit_decay(curves(TWO + ONE), n_boot=0)
    assert fit.n_components.values.tolist() == [2, 2, 2, 1, 1]
    for i, (tail, amps, hls) in enumerate(TWO + ONE):
        k = len(hls)
        np.testing.assert_allclose(fit.half_life.values[i, :k], hls, rtol=1e-5)
        np.testing.assert_allclose(fit.amplitude.values[i, :k], amps, rtol=1e-5)
        assert fit.tail_level.values[i] == pytest.approx(tail, abs=1e-6)
        assert np.all(np.isnan(fit.half_life.values[i, k:]))
    np.testing.assert_allclose(fit.fitted.values, curves(TWO + ONE).values, atol=1e-6)


def test_noisy_curves_recover_known_half_lives_and_model():
    fit = es.fit_decay(curves(TWO + ONE, noise=0.003, seed=1), n_boot=0)
    assert fit.n_components.values.tolist() == [2, 2, 2, 1, 1]
    for i, (tail, _amps, hls) in enumerate(TWO + ONE):
        np.testing.assert_allclose(fit.half_life.values[i, :len(hls)], hls, rtol=0.15)
        assert fit.tail_level.values[i] == pytest.approx(tail, abs=0.03)
    assert np.all(fit.aic.sel(model=2).values[:3] < fit.aic.sel(model=1).values[:3])


def test_forced_components_and_fit_range():
    one = es.fit_decay(curves(TWO), components=1, n_boot=0)
    assert np.all(one.n_components == 1) and np.all(np.isnan(one.half_life.sel(component="slow")))
    two = es.fit_decay(curves(ONE, noise=0.002), components=2, n_boot=0)
    assert np.all(two.n_components == 2)
    late = es.fit_decay(curves(TWO[:1]), min_tau=80, n_boot=0)  # the fast part has all but vanished
    assert late.attrs["min_tau"] == 80
    assert np.nanmax(late.half_life.values[0]) == pytest.approx(60.0, rel=1e-3)


def test_nan_points_are_skipped_and_short_curves_give_no_fit():
    da = curves(TWO[:2])
    da[0, 150:] = np.nan
    fit = es.fit_decay(da, n_boot=0)
    np.testing.assert_allclose(fit.half_life.values[0], TWO[0][2], rtol=1e-4)
    assert int(fit.n_points[0]) == 150
    da[1, 3:] = np.nan
    with pytest.warns(RuntimeWarning, match="1 have too few finite points"):
        fit = es.fit_decay(da, n_boot=0)
    assert int(fit.n_components[1]) == 0 and np.isnan(fit.tail_level.values[1])


def test_flat_and_zero_curves_have_no_half_life():
    # a flat curve has no decay: amplitude 0 and an undefined half-life, not whatever the optimiser stopped at
    da = curves([(0.3, [], []), (0.0, [], []), ONE[0]])
    with pytest.warns(RuntimeWarning, match="2 are flat"):
        fit = es.fit_decay(da, n_boot=0)
    assert fit.n_components.values.tolist() == [1, 1, 1]
    assert np.isnan(fit.half_life.values[:2]).all() and np.all(np.abs(fit.amplitude.values[:2, 0]) < 1e-12)
    np.testing.assert_allclose(fit.tail_level.values, [0.3, 0.0, ONE[0][0]], atol=1e-9)
    assert fit.half_life.values[2, 0] == pytest.approx(ONE[0][2][0], rel=1e-5)


def test_fit_is_the_same_bits_for_any_thread_count():
    da = curves((TWO + ONE) * 4, noise=0.01, seed=3)  # 20 curves: enough to run in parallel
    a = es.fit_decay(da, n_boot=0, threads=1)
    b = es.fit_decay(da, n_boot=0, threads=2)
    for name in ("half_life", "amplitude", "tail_level", "aic"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(EmostatsError, match="components"):
        es.fit_decay(curves(ONE), components=3)
    with pytest.raises(EmostatsError, match="'lag' or 'tau'"):
        es.fit_decay(xr.DataArray(np.ones(10), dims="x"))
    with pytest.raises(EmostatsError, match="need >= 4"):
        es.fit_decay(curves(ONE), min_tau=198)
    with pytest.raises(EmostatsError, match="half_life_bounds"):
        es.fit_decay(curves(ONE), half_life_bounds=(5, 1))
    with pytest.raises(EmostatsError, match="Dataset returned by lag_profile"):
        es.fit_decay(curves(ONE), probe_act=xr.DataArray(np.zeros((3, 1)), dims=("token", "probe")), n_boot=5)


# --------------------------------------------------------------------------- on a study, with the bootstrap


@pytest.fixture(scope="module")
def study():
    from emostats import synth

    tree, truth = synth.make_study(n_tokens=40_000, n_probes=4, n_features=0, k=4, hidden=16,
                                   groups=("tokens",), seed=7, n_conversations=30, turn_length=(100, 800))
    return tree["tokens"]["probe_act"], truth


def test_bootstrap_replicate_of_one_conversation_is_that_conversation(study):
    act, _ = study
    prof = es.lag_profile(act, max_lag=20)
    offsets = es.segments_of(act)
    conv = act.conversation.values[offsets[:-1]]
    _, groups = np.unique(conv, return_inverse=True)
    from emostats.persistence_stats import moments_of

    M = moments_of(act, offsets, "profile", 20, groups=groups)
    G = M.shape[0]
    everyone = decay_bootstrap._profile_replicates(M, np.ones((1, G)))[0]
    np.testing.assert_allclose(everyone, prof.r.values, rtol=1e-10, atol=1e-12)
    pick = np.zeros((1, G))
    pick[0, 3] = 2.0  # conversation 3 drawn twice: r of conversation 3 alone
    alone = es.lag_profile(act.where(act.conversation == np.unique(conv)[3], drop=True), max_lag=20)
    np.testing.assert_allclose(decay_bootstrap._profile_replicates(M, pick)[0], alone.r.values, rtol=1e-9, atol=1e-12)


def test_profile_fit_with_bootstrap_brackets_the_planted_half_lives(study):
    act, truth = study
    prof = es.lag_profile(act, max_lag=200)
    fit = es.fit_decay(prof, probe_act=act, n_boot=40, seed=1)
    assert fit.half_life_ci.dims == ("probe", "component", "bound")
    ci = fit.half_life_ci.values
    est = fit.half_life.values
    ok = np.isfinite(ci[..., 0])
    assert np.all(ci[..., 0][ok] <= ci[..., 1][ok])
    # planted: r(L) = w_slow 0.995^L + w_fast 0.8^L -> half-lives 3.1 and 138 tokens, tail 0
    assert np.all(fit.n_components == 2)
    fast = np.log(2) / -np.log(truth.attrs["phi_fast"])
    np.testing.assert_allclose(est[:, 0], fast, rtol=0.35)
    inside = (ci[:, 0, 0] <= fast) & (fast <= ci[:, 0, 1])
    assert inside.sum() >= 3
    assert np.all(fit.n_boot_ok.values >= 35)
    again = es.fit_decay(prof, probe_act=act, n_boot=40, seed=1, threads=1)
    np.testing.assert_array_equal(again.half_life_ci.values, fit.half_life_ci.values)
    other = es.fit_decay(prof, probe_act=act, n_boot=40, seed=2)
    assert not np.array_equal(other.half_life_ci.values, fit.half_life_ci.values, equal_nan=True)


def test_trajectory_fit_and_probe_average(study):
    act, _ = study
    tr = es.trajectories(act, max_lag=100)
    fit = es.fit_decay(tr, probe_act=act, n_boot=10, seed=0)
    assert fit.half_life.dims == ("bin", "component")
    assert fit.attrs["source_analysis"] == "trajectories" and fit.attrs["n_boot"] == 10
    assert np.all(fit.tail_level_ci.sel(bound="lower") <= fit.tail_level_ci.sel(bound="upper"))
    prof = es.lag_profile(act, max_lag=100)
    avg = es.fit_decay(prof, average_probes=True, probe_act=act, n_boot=10, weights="count")
    assert avg.half_life.dims == ("component",) and int(avg.n_components) in (1, 2)
    assert avg.attrs["weights"] == "count"
