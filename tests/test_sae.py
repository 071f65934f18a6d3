"""SAE firing persistence, feature density and the Figure 7 analysis."""

import numpy as np
import pytest
import scipy.sparse
import scipy.stats
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

import emostats as es
from emostats import synth
from emostats.errors import MissingGroupError, StudyError
from emostats.sae import feature_density, firing_counts, firing_persistence, sae_matched
from emostats.segments import offsets_from_lengths
from tests.conftest import RTOL_KERNEL, RTOL_REFERENCE
from tests.naive import firing as naive

COUNTS = ("n_fires", "n_t", "n_tl", "n_both", "n_valid")


@pytest.fixture
def small_pieces(monkeypatch):
    """Let even tiny inputs be split into one piece per thread (exercises the parallel path)."""
    import emostats.sae

    monkeypatch.setattr(emostats.sae, "MIN_PIECE", 1)


def random_case(rng, n_tokens, k, n_features, max_len):
    """Index array with empty slots and duplicates, segments of 1..max_len tokens."""
    index = rng.integers(-1, n_features, size=(n_tokens, k)).astype(np.int32)
    if n_tokens and k > 1:  # force some duplicates within rows
        rows = rng.random(n_tokens) < 0.3
        index[rows, 1] = index[rows, 0]
    lengths = []
    while sum(lengths) < n_tokens:
        lengths.append(int(min(rng.integers(1, max_len + 1), n_tokens - sum(lengths))))
    return index, offsets_from_lengths(lengths)


def as_dataarray(index, offsets):
    seg = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    return xr.DataArray(index, dims=("token", "slot"),
                        coords={"conversation": ("token", seg // 3), "turn": ("token", seg % 3)})


def assert_counts_equal(got, want):
    for key in COUNTS:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


# --------------------------------------------------------------------------- exact counts
@pytest.mark.parametrize("lag", [0, 1, 3, 7, 40])
def test_counts_equal_set_reference(rng, lag, small_pieces):
    for _ in range(15):
        index, offsets = random_case(rng, int(rng.integers(0, 120)), int(rng.integers(1, 7)),
                                     int(rng.integers(1, 15)), max_len=int(rng.integers(1, 30)))
        n_features = 15
        got = firing_counts(index, offsets, lag=lag, n_features=n_features, threads=int(rng.integers(1, 4)))
        assert_counts_equal(got, naive.firing_counts(index, offsets, lag, n_features))


@given(data=st.data())
def test_counts_property(data):
    n_tokens = data.draw(st.integers(0, 40))
    k = data.draw(st.integers(1, 5))
    n_features = data.draw(st.integers(1, 8))
    index = np.array(data.draw(st.lists(st.lists(st.integers(-1, n_features - 1), min_size=k, max_size=k),
                                        min_size=n_tokens, max_size=n_tokens)), dtype=np.int32).reshape(n_tokens, k)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(n_tokens - 1, 1)), max_size=6))) - {n_tokens})
    offsets = np.array([0, *[c for c in cuts if c < n_tokens], n_tokens], dtype=np.int64)
    lag = data.draw(st.integers(0, 12))
    got = firing_counts(index, offsets, lag=lag, n_features=n_features)
    assert_counts_equal(got, naive.firing_counts(index, offsets, lag, n_features))


def test_edge_cases():
    # all slots empty; one token; segments of length 1; segments shorter than the lag
    empty = np.full((5, 3), -1, dtype=np.int32)
    c = firing_counts(empty, [0, 2, 5], lag=1, n_features=4)
    assert c["n_fires"].sum() == 0 and c["n_valid"] == 3
    one = np.array([[2, 2, -1]], dtype=np.int32)
    c = firing_counts(one, [0, 1], lag=0, n_features=3)
    assert c["n_fires"].tolist() == [0, 0, 1] and c["n_both"].tolist() == [0, 0, 1] and c["n_valid"] == 1
    index = np.array([[0], [0], [0], [0]], dtype=np.int32)
    c = firing_counts(index, [0, 1, 2, 3, 4], lag=1, n_features=1)  # every segment has length 1
    assert c["n_valid"] == 0 and c["n_both"].tolist() == [0] and c["n_fires"].tolist() == [4]
    c = firing_counts(index, [0, 2, 4], lag=5, n_features=1)  # segments shorter than the lag
    assert c["n_valid"] == 0 and c["n_t"].tolist() == [0]
    zero = np.zeros((0, 4), dtype=np.int32)
    c = firing_counts(zero, [0], lag=3, n_features=2)
    assert c["n_fires"].tolist() == [0, 0] and c["n_valid"] == 0


def test_duplicates_count_once():
    index = np.array([[1, 1, 1], [1, -1, 1], [0, 1, 1]], dtype=np.int32)
    c = firing_counts(index, [0, 3], lag=1, n_features=2)
    assert c["n_fires"].tolist() == [1, 3]
    assert c["n_both"].tolist() == [0, 2]


def test_counts_equal_scipy_sparse(rng):
    """Independent reference: the CSR-matrix way (rows t and t+L, product, column sums)."""
    n, k, n_features, lag = 3000, 8, 200, 25
    index = np.sort(rng.integers(0, n_features, size=(n, k)), axis=1).astype(np.int32)
    index[:, 1:][index[:, 1:] == index[:, :-1]] = -1  # no duplicates, so sparse sums count fires
    offsets = offsets_from_lengths(np.full(30, 100))
    valid = (index >= 0)
    rows = np.repeat(np.arange(n), k)[valid.ravel()]
    X = scipy.sparse.csr_matrix((np.ones(rows.size, np.int64), (rows, index.ravel()[valid.ravel()])),
                                shape=(n, n_features))
    t = np.concatenate([np.arange(s, e - lag) for s, e in zip(offsets[:-1], offsets[1:])])
    a, b = X[t], X[t + lag]
    c = firing_counts(index, offsets, lag=lag, n_features=n_features)
    np.testing.assert_array_equal(c["n_both"], np.asarray(a.multiply(b).sum(0)).ravel())
    np.testing.assert_array_equal(c["n_t"], np.asarray(a.sum(0)).ravel())
    np.testing.assert_array_equal(c["n_tl"], np.asarray(b.sum(0)).ravel())
    np.testing.assert_array_equal(c["n_fires"], np.asarray(X.sum(0)).ravel())


def test_thread_count_invariance(rng, small_pieces):
    index, offsets = random_case(rng, 5000, 6, 300, max_len=400)
    ref = firing_counts(index, offsets, lag=50, n_features=300, threads=1)
    for threads in (2, 3, 8):
        assert_counts_equal(firing_counts(index, offsets, lag=50, n_features=300, threads=threads), ref)
    # the kernel itself, with more pieces than threads and pieces shorter than the lag
    from emostats._kernels.firing import firing_counts as kernel

    one = kernel(index, offsets, 50, 300, 0, 0, 1)
    for pieces in (2, 7, 333):
        np.testing.assert_array_equal(kernel(index, offsets, 50, 300, 0, 0, pieces), one)


@pytest.mark.parametrize("chunks", [13, 64, 333, 5000])
def test_dask_chunking_invariance(rng, chunks, small_pieces):
    index, offsets = random_case(rng, 2000, 5, 60, max_len=300)
    da = as_dataarray(index, offsets)
    eager = firing_persistence(da, lag=40, min_fires=10, n_features=60)
    lazy = firing_persistence(da.chunk({"token": chunks, "slot": 2}), lag=40, min_fires=10, n_features=60)
    xr.testing.assert_identical(eager, lazy)


def test_persistence_formula_and_inclusion(rng):
    index, offsets = random_case(rng, 600, 4, 12, max_len=80)
    ds = firing_persistence(as_dataarray(index, offsets), lag=5, min_fires=160, n_features=14)
    ref = naive.firing_persistence(index, offsets, 5, 14, 160)
    for key in ("persistence", "p_given_fire", "p_given_not"):
        np.testing.assert_allclose(ds[key].values, ref[key], rtol=RTOL_KERNEL, equal_nan=True)
    np.testing.assert_array_equal(ds["included"].values, ref["included"])
    assert ds.sizes["feature"] == 14  # excluded features stay, marked
    assert not ds["included"].values[-2:].any() and np.isnan(ds["persistence"].values[-1])
    assert ds.attrs["n_excluded"] == int((~ref["included"]).sum())
    assert int(ds["n_valid"]) == ref["n_valid"]


def test_markov_planted_truth():
    tree, truth = synth.make_study(n_tokens=200_000, n_probes=2, n_features=150, k=16, hidden=8, seed=5,
                                   groups=["tokens", "features"], turn_length=(300, 1500))
    ds = firing_persistence(tree, lag=100, min_fires=1000)
    inc = ds["included"].values
    est, true = ds["persistence"].values[inc], truth["firing_persistence"].values[inc]
    assert inc.sum() > 100
    assert np.corrcoef(est, true)[0, 1] > 0.95
    assert abs(np.mean(est - true)) < 0.01
    assert np.median(np.abs(est - true)) < 0.03
    # the firing rates recover the planted stationary probabilities
    rate = ds["n_fires"].values[inc] / ds.attrs["n_tokens"]
    assert np.corrcoef(rate, truth["firing_rate"].values[inc])[0, 1] > 0.95


def test_n_features_defaults(rng):
    tree, _ = synth.make_study(n_tokens=2000, n_probes=2, n_features=90, k=4, hidden=8, seed=1,
                               groups=["tokens", "features"])
    ds = firing_persistence(tree, lag=10, min_fires=5)
    assert ds.sizes["feature"] == 90 and ds.attrs["n_features"] == 90
    np.testing.assert_array_equal(ds["feature"].values, tree["features"]["feature"].values)
    da = tree["tokens"]["sae_index"]
    top = int(da.max()) + 1
    assert firing_persistence(da, lag=10).sizes["feature"] == top
    tokens = tree["tokens"].to_dataset()
    assert firing_persistence(tokens, lag=10).sizes["feature"] == top
    assert firing_persistence(da, lag=10, n_features=120).sizes["feature"] == 120


@pytest.mark.parametrize("bad_row", [0, 3, 499, 500, 997, 999])
def test_bad_id_found_by_any_piece(rng, small_pieces, bad_row):
    """On threads each piece checks the rows it reads before counting them: a bad id anywhere raises,
    naming its token, and a bad id in another piece's rows is never counted (no write outside the arrays)."""
    index, offsets = random_case(rng, 1000, 4, 50, max_len=300)
    for value in (50, -2, 10**6):
        bad = index.copy()
        bad[bad_row, 1] = value
        for threads in (1, 2, 3):
            with pytest.raises(StudyError, match=f"token {bad_row} holds id {value}"):
                firing_counts(bad, offsets, lag=7, n_features=50, threads=threads)


def test_errors():
    da = as_dataarray(np.array([[0, 1], [1, 7]], dtype=np.int32), offsets_from_lengths([2]))
    with pytest.raises(StudyError, match=r"token 1 holds id 7.*\[-1, 5\)"):
        firing_persistence(da, lag=1, n_features=5)
    with pytest.raises(StudyError, match="integer dtype"):
        firing_persistence(da.astype(float), lag=1)
    with pytest.raises(StudyError, match="dims"):
        firing_persistence(da.rename(slot="k"), lag=1)
    with pytest.raises(StudyError, match="lag"):
        firing_persistence(da, lag=-1)
    below = da.copy(data=np.array([[0, -2], [1, 1]], dtype=np.int32))
    with pytest.raises(StudyError, match="holds id -2"):
        firing_persistence(below, lag=1, n_features=5)
    tree = xr.DataTree.from_dict({"/tokens": xr.Dataset({"probe_act": (("token", "probe"), np.zeros((2, 1)))})})
    with pytest.raises(MissingGroupError, match="sae_index"):
        firing_persistence(tree)


def test_feature_density_vs_dense(rng):
    index, offsets = random_case(rng, 300, 5, 20, max_len=50)
    ds = feature_density(as_dataarray(index, offsets), n_features=22)
    dense = naive.feature_density(index, 22)
    np.testing.assert_allclose(ds["frac_nonzero"].values, dense, rtol=RTOL_KERNEL)
    np.testing.assert_allclose(ds["log10_density"].values, np.log10(dense + 1e-10), rtol=RTOL_KERNEL)
    assert ds["dead"].values[-2:].all() and ds.attrs["n_dead"] == int((dense == 0).sum())
    # no segments needed, and dask gives the same
    plain = xr.DataArray(index, dims=("token", "slot"))
    xr.testing.assert_identical(feature_density(plain, n_features=22),
                                feature_density(plain.chunk({"token": 37}), n_features=22))
    assert es.feature_density is feature_density


# --------------------------------------------------------------------------- Figure 7
def brute_force_residual(values, variance, n, stat):
    """Residual of each finite target against its n nearest others (ties to the lower index)."""
    ok = np.isfinite(values) & np.isfinite(variance)
    out = np.full(values.size, np.nan)
    for i in np.flatnonzero(ok):
        others = [j for j in np.flatnonzero(ok) if j != i]
        others.sort(key=lambda j: (abs(variance[j] - variance[i]), j))
        matched = values[others[:n]]
        out[i] = values[i] - (np.median(matched) if stat == "median" else np.mean(matched))
    return out


@pytest.fixture(scope="module")
def sae_study():
    tree, truth = synth.make_study(n_tokens=40_000, n_probes=6, n_features=400, k=8, hidden=24, seed=3,
                                   groups=["tokens", "features", "probes"], turn_length=(200, 1200))
    return tree, truth, firing_persistence(tree, min_fires=101)


@pytest.mark.parametrize("stat", ["median", "mean"])
def test_sae_matched_vs_brute_force(sae_study, stat):
    tree, _, per = sae_study
    res = sae_matched(per, tree, n=7, stat=stat)
    values = per["persistence"].where(per["included"]).values
    variance = tree["features"]["variance_explained"].values.astype(float)
    np.testing.assert_allclose(res["residual"].values, brute_force_residual(values, variance, 7, stat),
                               rtol=RTOL_KERNEL, atol=1e-14, equal_nan=True)
    ok = np.isfinite(res["residual"].values)
    assert int(res["n"]) == ok.sum() == int((per["included"] & per["persistence"].notnull()).sum())
    rho, _ = scipy.stats.spearmanr(res["residual"].values[ok], res["subspace_fraction"].values[ok])
    p = float(es.spearman(res["residual"].values[ok], res["subspace_fraction"].values[ok]).p)  # R's cor.test rule
    np.testing.assert_allclose([float(res["rho"]), float(res["p"])], [rho, p], rtol=RTOL_REFERENCE)
    matched = res["matched"].values[ok]
    assert (matched != np.flatnonzero(ok)[:, None]).all()  # never itself
    assert per["included"].values[matched].all()  # only included features are candidates


def test_sae_matched_planted_direction(sae_study):
    """Planted: persistence rises with subspace fraction at fixed variance explained."""
    tree, _, per = sae_study
    res = sae_matched(per, tree)
    assert float(res["rho"]) > 0 and float(res["p"]) < 0.01


def test_sae_matched_subspace_from_decoder(sae_study):
    tree, _, per = sae_study
    stored = sae_matched(per, tree, n=5)
    features = tree["features"].to_dataset().drop_vars("subspace_fraction")
    computed = sae_matched(per, features, n=5, probe_vectors=tree["probes"]["vector"])
    np.testing.assert_allclose(computed["subspace_fraction"].values, stored["subspace_fraction"].values,
                               rtol=1e-6)
    with pytest.raises(MissingGroupError, match="subspace_fraction"):
        sae_matched(per, features.drop_vars("decoder"), n=5)


def test_plot_sae(sae_study):
    import matplotlib

    matplotlib.use("Agg")
    from emostats.plots.sae import plot_sae_residual_vs_subspace

    tree, _, per = sae_study
    ax = plot_sae_residual_vs_subspace(sae_matched(per, tree, n=5))
    assert "ρ" in ax.get_title() and ax.get_ylabel().startswith("residual")
    ax = plot_sae_residual_vs_subspace(sae_matched(per, tree, n=5), hexbin_above=10)
    assert ax.collections  # hexbin drawn
    matplotlib.pyplot.close("all")
