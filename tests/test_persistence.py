"""Lag persistence, lag profile and trajectories against their slow twins (issue 4)."""

import math
import warnings

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

import emostats as es
from emostats import persistence as P
from emostats.errors import EmostatsError, StudyError
from emostats.segments import offsets_from_lengths
from tests.conftest import ATOL_FLOAT32_OFFSET, ATOL_KERNEL, RTOL_KERNEL
from tests.naive import lag as naive

BINS = P.DEFAULT_BINS


def random_case(rng, n_segments=60, max_len=40, n_series=6, nan=True):
    """Random segmentation (incl. length-1 segments), AR(1)-like series, a constant column, NaN and inf."""
    lengths = rng.integers(1, max_len, size=n_segments)
    lengths[:3] = 1
    offsets = offsets_from_lengths(lengths)
    n = int(offsets[-1])
    x = np.empty((n, n_series))
    e = rng.standard_normal((n, n_series))
    x[0] = e[0]
    for t in range(1, n):
        x[t] = 0.8 * x[t - 1] + e[t]
    x += rng.normal(0, 3, n_series)
    x[:, 1] = 7.0  # constant
    if nan:
        x[rng.integers(0, n, 6), 2] = np.nan
        x[5:9, 3] = np.nan
        x[rng.integers(0, n), 4] = np.inf
    return x, offsets


def assert_r_close(actual, expected):
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=RTOL_KERNEL, atol=ATOL_KERNEL)


# --------------------------------------------------------------------------- kernels vs naive twins


@pytest.mark.parametrize("lag", [0, 1, 3, 17, 39, 60])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lag_correlation_matches_naive(rng, lag, dtype):
    x, offsets = random_case(rng)
    x = x.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r, n_pairs, n_masked = P.lag_correlation(x, offsets, lag)
        r_ref, n_ref, masked_ref = naive.lag_r(x, offsets, lag)
    assert n_pairs == n_ref
    np.testing.assert_array_equal(n_masked, masked_ref)
    assert_r_close(r, r_ref)


@pytest.mark.parametrize("max_lag", [0, 7, 8, 30])
def test_profile_matches_naive_and_single_lags(rng, max_lag):
    x, offsets = random_case(rng, max_len=70)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r, n_pairs, n_masked = P.lag_correlation_profile(x, offsets, max_lag)
        r_ref, n_ref, masked_ref = naive.profile_r(x, offsets, max_lag)
        single = np.array([P.lag_correlation(x, offsets, L)[0] for L in range(max_lag + 1)])
    np.testing.assert_array_equal(n_pairs, n_ref)
    np.testing.assert_array_equal(n_masked, masked_ref)
    assert_r_close(r, r_ref)
    assert_r_close(r, single)
    assert r.shape == (max_lag + 1, x.shape[1])


def test_segments_shorter_than_lag_give_no_pairs():
    x = np.arange(10.0)[:, None] ** 2
    offsets = [0, 3, 5, 10]
    with pytest.warns(RuntimeWarning, match="fewer than 2 valid pairs"):
        r, n_pairs, _ = P.lag_correlation(x, offsets, 5)
    assert n_pairs == 0 and np.isnan(r[0])
    with pytest.warns(RuntimeWarning, match="fewer than 2 valid pairs"):
        r, n_pairs, _ = P.lag_correlation(x, offsets, 4)
    assert n_pairs == 1 and np.isnan(r[0])  # one pair: r undefined


def test_constant_probe_is_nan_with_warning_naming_it(rng):
    x = rng.standard_normal((50, 3))
    x[:, 1] = 1e4
    with pytest.warns(RuntimeWarning, match=r"constant.*") as record:
        r, _, _ = P.lag_correlation(x, [0, 20, 50], 2)
    assert np.isnan(r[1]) and np.isfinite(r[[0, 2]]).all()
    assert ": 1;" in str(record[0].message)
    act = xr.DataArray(x, dims=("token", "probe"),
                       coords={"probe": ["joy", "calm", "fear"], "conversation": ("token", np.repeat([0, 1], 25)),
                               "turn": ("token", np.zeros(50, int))})
    with pytest.warns(RuntimeWarning, match="calm"):
        es.lag_persistence(act, lag=2)


def test_user_edge_cases_give_nan_and_warnings_not_crashes(rng):
    # an all-NaN probe, a zero probe, a lag longer than every segment, one segment, an empty bin
    x = rng.standard_normal((30, 3))
    x[:, 1] = np.nan
    x[:, 2] = 0.0

    def act(values, conv):
        return xr.DataArray(values, dims=("token", "probe"),
                            coords={"probe": [f"p{i}" for i in range(values.shape[1])],
                                    "conversation": ("token", conv), "turn": ("token", np.zeros(len(conv), int))})

    two = act(x, np.repeat([0, 1], [10, 20]))
    with pytest.warns(RuntimeWarning, match="p1, p2"):
        res = es.lag_persistence(two, lag=2)
    assert np.isfinite(res["r"].values[0]) and np.isnan(res["r"].values[1:]).all()
    with pytest.warns(RuntimeWarning, match="fewer than 2 valid pairs"):
        res = es.lag_persistence(two, lag=25)
    assert int(res["n_pairs"]) == 0 and np.isnan(res["r"].values).all()
    with pytest.warns(RuntimeWarning) as record:  # lag 19 in a 20-token segment: one pair
        prof = es.lag_profile(two, max_lag=25)
    assert any("7 of 26 lags (from 19) have fewer than 2 same-segment pairs" in str(w.message) for w in record)
    assert np.all(prof["n_pairs"].values[19:] < 2) and prof["r"][19:].isnull().all()
    with pytest.warns(RuntimeWarning, match="no events"):
        tr = es.trajectories(two, max_lag=25)
    assert tr["mean_per_probe"].sel(probe=["p1", "p2"]).isnull().all()
    assert np.all(tr["count"].values[:, 20:] == 0) and tr["mean"][:, 20:].isnull().all()
    # 30 N(0,1) tokens have none with |z| >= 4: that bin is empty (count 0, mean NaN), not an error
    assert np.all(tr["count"].sel(bin="[4,inf)").values == 0) and tr["mean"].sel(bin="[4,inf)").isnull().all()
    one = act(x[:, :1], np.zeros(30, int))
    r, n_pairs, _ = naive.lag_r(x[:, :1], [0, 30], 3)
    res = es.lag_persistence(one, lag=3)
    assert int(res["n_pairs"]) == n_pairs == 27
    assert_r_close(res["r"].values, r)


def test_float32_offset_1e4_matches_float64_two_pass(rng):
    n, p = 40_000, 5
    lengths = rng.integers(50, 1500, size=60)
    offsets = offsets_from_lengths(lengths)
    offsets = offsets[offsets < n]
    offsets = np.append(offsets, n)
    e = rng.standard_normal((n, p))
    y = np.empty_like(e)
    y[0] = e[0]
    for t in range(1, n):
        y[t] = 0.9 * y[t - 1] + 0.436 * e[t]
    x = (1e4 + y).astype(np.float32)  # mean 1e4, sd ~1
    x64 = x.astype(np.float64)
    for lag in (1, 100):
        r, _, _ = P.lag_correlation(x, offsets, lag)
        r_ref, _, _ = naive.lag_r(x64, offsets, lag)  # float64 two-pass on the same values
        np.testing.assert_allclose(r, r_ref, rtol=0, atol=ATOL_FLOAT32_OFFSET)
        # the tolerance is meaningful: one-pass raw sums in the input's precision miss it
        first, second, same = naive.lag_pairs(x64, offsets, lag)
        a, b = first[same].astype(np.float32), second[same].astype(np.float32)
        m = a.shape[0]

        def total(v):
            return np.cumsum(v, axis=0, dtype=np.float32)[-1].astype(np.float64)

        raw = (total(a * b) - total(a) * total(b) / m) / np.sqrt(
            (total(a * a) - total(a) ** 2 / m) * (total(b * b) - total(b) ** 2 / m))
        assert np.max(np.abs(raw - r_ref)) > ATOL_FLOAT32_OFFSET
    r, _, _ = P.lag_correlation_profile(x, offsets, 12)
    r_ref, _, _ = naive.profile_r(x64, offsets, 12)
    np.testing.assert_allclose(r, r_ref, rtol=0, atol=ATOL_FLOAT32_OFFSET)


def test_same_bits_for_any_thread_count(rng, monkeypatch):
    from emostats import _threads

    monkeypatch.setattr(_threads, "SERIAL_WORK", 0)  # small inputs would otherwise run serially
    monkeypatch.setattr(_threads, "PIECE_TOKENS", 64)  # and in one piece of segments
    x, offsets = random_case(rng, n_series=37, max_len=80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        base = [P.lag_correlation(x, offsets, 9, threads=1)[0],
                P.lag_correlation_profile(x, offsets, 20, threads=1)[0],
                P.trajectory_sums(x, offsets, np.nanmean(x, 0), np.nanstd(x, 0), BINS, 20, threads=1)]
        for threads in (2, 3, 5):
            np.testing.assert_array_equal(P.lag_correlation(x, offsets, 9, threads=threads)[0], base[0])
            np.testing.assert_array_equal(P.lag_correlation_profile(x, offsets, 20, threads=threads)[0], base[1])
            s, c = P.trajectory_sums(x, offsets, np.nanmean(x, 0), np.nanstd(x, 0), BINS, 20, threads=threads)
            np.testing.assert_array_equal(s, base[2][0])
            np.testing.assert_array_equal(c, base[2][1])


def test_moments_merge_exactly_across_any_split(rng):
    x, offsets = random_case(rng, nan=False)
    whole = P.profile_moments(x, offsets, 15)
    for cut in (1, 37, 200, int(offsets[-1]) - 1):
        local = np.unique(np.concatenate(([0], offsets[offsets < cut + 15], [min(cut + 15, offsets[-1])])))
        left = P.profile_moments(x[: local[-1]], local, 15, first_stop=cut)
        right_off = np.unique(np.concatenate(([cut], offsets[offsets > cut]))) - cut
        right = P.profile_moments(x[cut:], right_off, 15)
        np.testing.assert_allclose(P.merge_moments(left, right), whole, rtol=1e-12, atol=1e-9)


def test_groups_partition_the_pairs(rng):
    x, offsets = random_case(rng, nan=False)
    groups = rng.integers(0, 4, size=len(offsets) - 1)
    per = P.lag_moments(x, offsets, 3, groups=groups, n_groups=4)
    merged = P.merge_moments(*[per[g:g + 1] for g in range(4)])
    np.testing.assert_allclose(merged, P.lag_moments(x, offsets, 3), rtol=1e-12, atol=1e-9)


def test_trajectory_sums_match_naive(rng):
    x, offsets = random_case(rng, max_len=50)
    x[:, 4] = np.where(np.isinf(x[:, 4]), np.nan, x[:, 4])
    mean, sd = np.nanmean(x, 0), np.nanstd(x, 0)
    bins = ((0.5, 1.5), (1.0, 2.0), (2.0, np.inf))  # overlapping bins are allowed
    s, c = P.trajectory_sums(x, offsets, mean, sd, bins, 25)
    s_ref, c_ref = naive.trajectories(x, offsets, bins, 25)
    np.testing.assert_array_equal(c[0], c_ref)
    np.testing.assert_allclose(s[0], s_ref, rtol=RTOL_KERNEL, atol=1e-10)


def test_offsets_and_inputs_are_validated():
    with pytest.raises(EmostatsError, match="offsets"):
        P.lag_correlation(np.zeros((5, 1)), [0, 3], 1)
    with pytest.raises(EmostatsError, match="lag must be >= 0"):
        P.lag_correlation(np.zeros((5, 1)), [0, 5], -1)
    with pytest.raises(EmostatsError, match="dims"):
        P.lag_correlation(np.zeros((5, 1, 1)), [0, 5], 1)
    with pytest.raises(EmostatsError, match="bins"):
        P.trajectory_sums(np.zeros((5, 1)), [0, 5], [0.0], [1.0], bins=((2, 1),), max_lag=2)


# --------------------------------------------------------------------------- properties


@st.composite
def segmented(draw):
    lengths = draw(st.lists(st.integers(1, 12), min_size=1, max_size=12))
    n_series = draw(st.integers(1, 3))
    n = sum(lengths)
    values = draw(st.lists(st.floats(-100, 100, allow_nan=False, width=64), min_size=n * n_series,
                           max_size=n * n_series))
    order = draw(st.permutations(range(len(lengths))))
    lag = draw(st.integers(0, 8))
    return np.array(values).reshape(n, n_series), np.array(lengths), list(order), lag


@given(segmented())
def test_shuffling_segment_order_changes_nothing(case):
    x, lengths, order, lag = case
    offsets = offsets_from_lengths(lengths)
    shuffled = np.concatenate([x[offsets[i]:offsets[i + 1]] for i in order])
    shuffled_offsets = offsets_from_lengths(lengths[order])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = P.lag_correlation(x, offsets, lag)
        b = P.lag_correlation(shuffled, shuffled_offsets, lag)
        pa = P.lag_correlation_profile(x, offsets, lag)
        pb = P.lag_correlation_profile(shuffled, shuffled_offsets, lag)
    assert a[1] == b[1]
    np.testing.assert_array_equal(np.isnan(a[0]), np.isnan(b[0]))
    np.testing.assert_allclose(a[0], b[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(pa[0], pb[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(pa[1], pb[1])


# --------------------------------------------------------------------------- xarray API


def _act(x, offsets, names=None, dim="probe"):
    seg = naive.segment_ids(offsets)
    coords = {"conversation": ("token", seg // 3), "turn": ("token", seg % 3)}
    if names is not None:
        coords[dim] = names
    return xr.DataArray(x, dims=("token", dim), coords=coords, name="probe_act")


def test_xarray_functions_return_labelled_datasets(rng):
    x, offsets = random_case(rng, nan=False)
    x[:, 1] += rng.standard_normal(x.shape[0])
    act = _act(x, offsets, [f"p{i}" for i in range(x.shape[1])])
    res = es.lag_persistence(act, lag=4)
    r_ref, n_ref, _ = naive.lag_r(x, offsets, 4)
    np.testing.assert_allclose(res.r.values, r_ref, rtol=RTOL_KERNEL)
    assert int(res.n_pairs) == n_ref and res.attrs["lag"] == 4 and res.r.attrs["long_name"]
    assert list(res.r.probe.values) == list(act.probe.values)
    prof = es.lag_profile(act, max_lag=6)
    assert prof.r.dims == ("lag", "probe") and prof.lag.values.tolist() == list(range(7))
    np.testing.assert_allclose(prof.r.sel(lag=4).values, res.r.values, rtol=RTOL_KERNEL)
    tr = es.trajectories(act, max_lag=6)
    assert tr["mean"].dims == ("bin", "tau") and tr["count"].dims == ("bin", "tau")
    assert tr.mean_per_probe.dims == ("bin", "tau", "probe")
    s_ref, c_ref = naive.trajectories(x, offsets, BINS, 6)
    np.testing.assert_array_equal(tr.count_per_probe.values, c_ref)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bins without events: mean of nothing
        per = s_ref / c_ref
        avg = np.nanmean(per, axis=-1)
    np.testing.assert_allclose(tr.mean_per_probe.values, per, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tr["mean"].values, avg, rtol=1e-10, atol=1e-12)
    for ds in (res, prof, tr):
        assert all("long_name" in ds[v].attrs for v in ds.data_vars)


def test_xarray_accepts_other_series_dims_and_1d(rng):
    x, offsets = random_case(rng, nan=False, n_series=2)
    x[:, 1] += rng.standard_normal(x.shape[0])
    act = _act(x, offsets, dim="direction")
    res = es.lag_persistence(act.transpose("direction", "token"), lag=2)
    assert res.r.dims == ("direction",)
    one = es.lag_persistence(act.isel(direction=0), lag=2)
    assert one.r.dims == () and float(one.r) == pytest.approx(float(res.r[0]), rel=1e-12)


def test_xarray_errors_are_one_line():
    bad = xr.DataArray(np.zeros((4, 2)), dims=("token", "probe"))
    with pytest.raises(StudyError, match="conversation, turn missing"):
        es.lag_persistence(bad)
    with pytest.raises(EmostatsError, match="expected dims"):
        es.lag_persistence(xr.DataArray(np.zeros((4, 2)), dims=("x", "probe")))
    with pytest.raises(EmostatsError, match="lag must be an integer"):
        es.lag_persistence(bad, lag=1.5)


def test_planted_truth_recovered_within_sampling_error():
    from emostats import synth

    tree, truth = synth.make_study(n_tokens=100_000, n_probes=8, n_features=0, k=4, hidden=24,
                                   groups=("tokens",), seed=3, turn_length=(50, 400))
    act = tree["tokens"]["probe_act"]
    prof = es.lag_profile(act, max_lag=100)
    for lag, tol in ((1, 0.04), (10, 0.05), (100, 0.1)):
        # sampling sd of r here is about 0.01 (lag 1) to 0.025 (lag 100) (from repeated seeds)
        err = prof.r.sel(lag=lag).values - synth.expected_lag_r(truth, lag).values
        assert np.all(np.abs(err) < tol), (lag, err)
        assert abs(err.mean()) < tol / 2


def test_trajectories_of_planted_truth_decay_towards_the_tail():
    from emostats import synth

    tree, truth = synth.make_study(n_tokens=60_000, n_probes=6, n_features=0, k=4, hidden=20,
                                   groups=("tokens",), seed=5, turn_length=(300, 600))
    tr = es.trajectories(tree["tokens"]["probe_act"], max_lag=100)
    m = tr["mean"]
    # at tau = 0 the mean is the mean |z| of the bin, then it drops and stays positive
    assert np.all((m.sel(tau=0) >= tr.bin_lower) & (m.sel(tau=0) < np.minimum(tr.bin_upper, 10)))
    assert np.all(m.sel(tau=100) < m.sel(tau=1)) and np.all(m.sel(tau=100) > 0)
    # for a Gaussian linear process E[z_{t+L} | z_t] = r(L) z_t: the trajectory / mean |z| tracks r(L)
    r = synth.expected_lag_r(truth, 10).mean().item()
    ratio = (m.sel(tau=10) / m.sel(tau=0)).values
    np.testing.assert_allclose(ratio[:3], r, atol=0.08)


def test_tiny_variances_do_not_underflow_to_a_division_by_zero():
    # found by hypothesis: cxx * cyy underflowed to 0 for values around 1e-94
    x = np.array([[0.0], [2.5e-94], [0.0], [5e-94]])
    r, n_pairs, _ = P.lag_correlation(x, np.array([0, 4]), 1)
    assert n_pairs == 3 and np.isfinite(r[0])
    np.testing.assert_allclose(r[0], np.corrcoef(x[:-1, 0] * 1e94, x[1:, 0] * 1e94)[0, 1], rtol=1e-10)


# --------------------------------------------------------------------------- the per-segment shift (issue 12)


def exact_lag_r(x, offsets, lag):
    """Pooled lag r of every column with exact rational arithmetic (fractions.Fraction), NaN if undefined.

    Cxy, Cxx and Cyy are exact; r = sign(Cxy) sqrt(Cxy^2 / (Cxx Cyy)) with one rounding of the exact ratio.
    """
    from fractions import Fraction

    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape[1], np.nan)
    for p in range(x.shape[1]):
        a, b = [], []
        for s, e in zip(offsets[:-1], offsets[1:]):
            for t in range(int(s), int(e) - lag):
                if np.isfinite(x[t, p]) and np.isfinite(x[t + lag, p]):
                    a.append(Fraction(float(x[t, p])))
                    b.append(Fraction(float(x[t + lag, p])))
        if len(a) < 2:
            continue
        n = len(a)
        ma, mb = sum(a) / n, sum(b) / n
        cxx = sum((v - ma) ** 2 for v in a)
        cyy = sum((v - mb) ** 2 for v in b)
        cxy = sum((u - ma) * (v - mb) for u, v in zip(a, b))
        if cxx > 0 and cyy > 0:
            out[p] = float(np.sign(float(cxy))) * math.sqrt(float(cxy * cxy / (cxx * cyy)))
    return out


@pytest.mark.parametrize("spike", [1e6, 1e7, 1e8])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_spike_at_the_first_token_keeps_r_exact(rng, spike, dtype):
    # a BOS-like spike of `spike` sd at the first token of segments: the shift must not be that value
    offsets = np.array([0, 150, 330, 500])
    e = rng.standard_normal((500, 4))
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, 500):
        x[t] = 0.6 * x[t - 1] + 0.8 * e[t]
    x += 1e4 if dtype == np.float32 else 0.0
    x[0, 0] += spike  # first token of the first segment
    x[150, 1] -= spike  # first token of the second segment
    x[0, 2] += spike  # and a spike in every segment of probe 2
    x[150, 2] += spike
    x[330, 2] += spike
    x[[149, 329, 499], 3] += spike  # and at the last tokens
    x = x.astype(dtype)
    for lag in (1, 7):
        ref = exact_lag_r(x, offsets, lag)
        assert np.all(np.isfinite(ref))
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no false "constant" warning
            r, _, _ = P.lag_correlation(x, offsets, lag)
            prof, _, _ = P.lag_correlation_profile(x, offsets, 8)
        np.testing.assert_allclose(r, ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(prof[lag], ref, rtol=0, atol=1e-10)


def test_exact_reference_agrees_with_the_twin(rng):
    x, offsets = random_case(rng, n_segments=8, max_len=30, n_series=3, nan=False)
    np.testing.assert_allclose(exact_lag_r(x, offsets, 2), naive.lag_r(x, offsets, 2)[0], rtol=1e-12)


@given(st.data())
def test_r_is_invariant_to_a_shift_of_the_data_and_to_the_pieces(data):
    # hypothesis: r of x + c equals the twin on those (rounded) values for c up to 1e9, and the same
    # bits whether the segments run in one piece or many (any thread count)
    from emostats import _threads

    n = data.draw(st.integers(4, 60))
    lengths = data.draw(st.lists(st.integers(0, 20), min_size=1, max_size=8))
    offsets = np.unique(np.clip(np.concatenate(([0], np.cumsum(lengths), [n])), 0, n))
    vals = data.draw(st.lists(st.floats(-100, 100, allow_nan=False, width=64), min_size=n, max_size=n))
    x = np.array(vals)[:, None]
    lag = data.draw(st.integers(0, 6))
    c = data.draw(st.sampled_from([1e3, -1e6, 1e9]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r0 = P.lag_correlation(x, offsets, lag)[0]
        r1 = P.lag_correlation(x + c, offsets, lag)[0]
        old = _threads.PIECE_TOKENS, _threads.SERIAL_WORK
        try:
            _threads.PIECE_TOKENS, _threads.SERIAL_WORK = 3, 0
            r2 = P.lag_correlation(x, offsets, lag, threads=1)[0]
            r3 = P.lag_correlation(x, offsets, lag, threads=3)[0]
        finally:
            _threads.PIECE_TOKENS, _threads.SERIAL_WORK = old
    np.testing.assert_array_equal(r2, r3)
    np.testing.assert_allclose(r2, r0, rtol=1e-10, atol=1e-12)
    # x + c rounds the data itself at ulp(c): compare with the twin on the same rounded values
    ref = naive.lag_r(x + c, offsets, lag)[0]
    if np.isfinite(ref).all() and np.isfinite(r1).all():
        np.testing.assert_allclose(r1, ref, rtol=0, atol=1e-8)
