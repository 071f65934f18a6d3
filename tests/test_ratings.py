"""Mention tests (Figure 9) and rating analyses (Figures 8 and 10)."""

import itertools

import numpy as np
import pytest
import scipy.stats
import xarray as xr
from statsmodels.stats.multitest import multipletests

import emostats as es
from emostats import synth
from emostats.errors import MissingGroupError, StudyError
from emostats.ratings import RATING_PAIRS, mention_tests, rating_analyses
from emostats.sae import firing_persistence
from tests.conftest import RTOL_KERNEL, RTOL_REFERENCE


def evaluations(cos, men, emotions=None):
    emotions = emotions or [f"e{i}" for i in range(cos.shape[1])]
    return xr.Dataset({"mentions": (("rated_feature", "emotion"), men.astype(np.int8)),
                       "cosine": (("rated_feature", "emotion"), cos)},
                      coords={"rated_feature": np.arange(cos.shape[0]) * 3, "emotion": emotions})


def exact_p(values, mask):
    """Brute force: every labelling with the same group size, p = #{T >= T_obs} / C(n, k)."""
    values = np.asarray(values, dtype=float)
    n, k = values.size, int(mask.sum())
    t_obs = values[mask].mean() - values[~mask].mean()
    hits = total = 0
    for idx in itertools.combinations(range(n), k):
        m = np.zeros(n, dtype=bool)
        m[list(idx)] = True
        t = values[m].mean() - values[~m].mean()
        hits += t >= t_obs - 1e-12 * max(1.0, abs(t_obs))
        total += 1
    return hits / total, t_obs


def test_mentions_vs_exact_enumeration(rng):
    n = 12
    cos = rng.normal(size=(n, 4))
    men = np.zeros((n, 4), dtype=bool)
    men[:5, 0] = True                    # 5 mentions: tested (C(12, 5) = 792 <= n_perm: exact)
    men[[1, 4, 6, 8, 11], 1] = True      # 5 mentions: tested
    men[:4, 2] = True                    # 4 mentions: below min_mentions, not tested
    men[:, 3] = True                     # everyone mentions it: no comparison group, not tested
    cos[:5, 0] += 1.5
    res = mention_tests(evaluations(cos, men), n_perm=1000)
    np.testing.assert_array_equal(res["tested"].values, [True, True, False, False])
    assert int(res["n_tested"]) == 2
    for e in (0, 1):
        p, t = exact_p(cos[:, e], men[:, e])
        assert res["exact"].values[e]
        np.testing.assert_allclose(float(res["p"][e]), p, rtol=RTOL_KERNEL)
        np.testing.assert_allclose(float(res["effect"][e]), t, rtol=RTOL_KERNEL)
    assert np.isnan(res["p"].values[2:]).all() and np.isnan(res["q"].values[2:]).all()
    q = multipletests(res["p"].values[:2], method="fdr_bh")[1]
    np.testing.assert_allclose(res["q"].values[:2], q, rtol=RTOL_KERNEL)
    np.testing.assert_allclose(res["neg_log10_q"].values[:2], -np.log10(q), rtol=RTOL_KERNEL)
    assert res["n_mentions"].values.tolist() == [5, 5, 4, 12]


def test_mentions_vs_statistical_core(rng):
    n, n_emotions = 60, 8
    cos = rng.normal(size=(n, n_emotions))
    men = rng.random((n, n_emotions)) < 0.2
    men[:, :3] |= cos[:, :3] > 1.0
    cos[7, 2] = np.nan  # a NaN cosine leaves the feature out of that emotion only
    res = mention_tests(evaluations(cos, men), n_perm=499, seed=7, alpha=0.1)
    tested = res["tested"].values
    for e in np.flatnonzero(tested):
        core = es.permutation_test(cos[:, e], men[:, e], alternative="greater", n_perm=499, seed=7)
        assert float(res["p"][e]) == float(core["p"])
        assert float(res["effect"][e]) == float(core["statistic"])
        keep = ~np.isnan(cos[:, e])
        np.testing.assert_allclose(float(res["mean_mentioning"][e]) - float(res["mean_other"][e]),
                                   cos[keep & men[:, e], e].mean() - cos[keep & ~men[:, e], e].mean(),
                                   rtol=RTOL_KERNEL)
    q = multipletests(res["p"].values[tested], method="fdr_bh")[1]
    np.testing.assert_allclose(res["q"].values[tested], q, rtol=RTOL_REFERENCE)
    sig = res["q"].values <= 0.1
    np.testing.assert_array_equal(res["significant"].values, sig)
    assert int(res["n_significant"]) == sig.sum()
    assert int(res["n_positive"]) == (tested & (res["effect"].values > 0)).sum()
    assert int(res["n_significant_positive"]) == (sig & (res["effect"].values > 0)).sum()
    assert int(res["n_mentions"][2]) == int((men[:, 2] & ~np.isnan(cos[:, 2])).sum())
    again = mention_tests(evaluations(cos, men), n_perm=499, seed=7, alpha=0.1)
    xr.testing.assert_identical(res, again)  # same seed, same bits
    assert res.attrs["seed"] == 7 and res.attrs["min_mentions"] == 5


def test_mentions_errors(rng):
    cos = rng.normal(size=(10, 2))
    ev = evaluations(cos, cos > 0)
    with pytest.raises(MissingGroupError, match="cosine"):
        mention_tests(ev.drop_vars("cosine"))
    with pytest.raises(MissingGroupError, match="/evaluations"):
        mention_tests(xr.DataTree())
    bad = ev.copy(deep=True)
    bad["mentions"][0, 0] = 3
    with pytest.raises(StudyError, match="0/1"):
        mention_tests(bad)
    # cosine= overrides a missing stored cosine
    res = mention_tests(ev.drop_vars("cosine"), cosine=ev["cosine"], n_perm=99)
    assert res.sizes["emotion"] == 2


def test_mentions_planted_association():
    tree, truth = synth.make_study(n_tokens=2000, n_probes=40, n_features=1500, k=8, hidden=64, seed=4,
                                   groups=["features", "evaluations"])
    res = mention_tests(tree, n_perm=2000)
    tested = res["tested"].values
    assoc = truth["mention_associated"].values
    sig = res["significant"].values
    assert tested.sum() >= 15
    assert sig[tested & assoc].mean() > 0.7                      # power for the planted associations
    assert sig[tested & ~assoc].sum() <= max(1, 0.1 * tested.sum())  # false discoveries, FDR scale
    assert (res["effect"].values[sig] > 0).all()
    assert es.mention_tests is mention_tests


# --------------------------------------------------------------------------- rating analyses
@pytest.fixture(scope="module")
def rated_study():
    tree, truth = synth.make_study(n_tokens=40_000, n_probes=6, n_features=500, k=8, hidden=24, seed=8,
                                   groups=["tokens", "features"], turn_length=(200, 1200), n_rated=150)
    return tree, truth, firing_persistence(tree, min_fires=101)


def brute_force_mean_residual(values, variance, n):
    ok = np.isfinite(values) & np.isfinite(variance)
    out = np.full(values.size, np.nan)
    for i in np.flatnonzero(ok):
        others = sorted((j for j in np.flatnonzero(ok) if j != i), key=lambda j: (abs(variance[j] - variance[i]), j))
        out[i] = values[i] - values[others[:n]].mean()
    return out


def test_rating_correlations_vs_scipy(rated_study):
    tree, _, per = rated_study
    res = rating_analyses(tree, per, n=20)
    f = tree["features"]
    rated = np.isfinite(f["self_rating"].values) | np.isfinite(f["text_rating"].values)
    residual = brute_force_mean_residual(per["persistence"].where(per["included"]).values,
                                         f["variance_explained"].values.astype(float), 20)
    np.testing.assert_allclose(res["residual"].values, residual[rated], rtol=RTOL_KERNEL, atol=1e-14,
                               equal_nan=True)
    columns = {name: f[name].values.astype(float) for name in
               ("subspace_fraction", "self_rating", "text_rating", "variance_explained")}
    columns["residual"] = residual
    assert list(res["pair"].values) == [f"{x}:{y}" for x, y in RATING_PAIRS]
    for x, y in RATING_PAIRS:
        a, b = columns[x], columns[y]
        ok = np.isfinite(a) & np.isfinite(b)
        rho, p = scipy.stats.spearmanr(a[ok], b[ok])
        row = res.sel(pair=f"{x}:{y}")
        assert int(row["n"]) == ok.sum()
        np.testing.assert_allclose([float(row["rho"]), float(row["p"])], [rho, p], rtol=RTOL_REFERENCE)
    assert res.sizes["feature"] == rated.sum()
    np.testing.assert_array_equal(res["feature"].values, f["feature"].values[rated])


def test_rating_planted_signs(rated_study):
    """Planted: self rating rises with subspace fraction and falls with variance explained."""
    tree, _, per = rated_study
    res = rating_analyses(tree, per)
    assert float(res["rho"].sel(pair="subspace_fraction:self_rating")) > 0.2
    assert float(res["rho"].sel(pair="self_rating:variance_explained")) < -0.2
    assert float(res["p"].sel(pair="self_rating:variance_explained")) < 0.01


def test_rating_missing_parts(rated_study):
    tree, _, per = rated_study
    features = tree["features"].to_dataset()
    only_self = rating_analyses(features.drop_vars("text_rating"), per)
    assert np.isnan(float(only_self["rho"].sel(pair="self_rating:text_rating")))
    assert int(only_self["n"].sel(pair="self_rating:text_rating")) == 0
    assert np.isfinite(float(only_self["rho"].sel(pair="residual:self_rating")))
    no_persistence = rating_analyses(features)
    assert int(no_persistence["n"].sel(pair="residual:self_rating")) == 0
    with pytest.raises(MissingGroupError, match="self_rating nor text_rating"):
        rating_analyses(features.drop_vars(["self_rating", "text_rating"]), per)
    with pytest.raises(StudyError, match="do not match"):
        rating_analyses(features.isel(feature=slice(0, 100)), per)


def test_rating_plots(rated_study):
    import matplotlib

    matplotlib.use("Agg")
    from emostats.plots.ratings import plot_mention_volcano, plot_ratings, plot_residual_vs_ratings

    tree, _, per = rated_study
    res = rating_analyses(tree, per)
    fig = plot_ratings(res)
    assert [ax.get_xlabel() for ax in fig.axes] == ["emotion subspace fraction of the decoder"] * 2
    assert "ρ" in fig.axes[0].get_title()
    fig = plot_residual_vs_ratings(res)
    assert fig.axes[0].get_xlabel().startswith("residual firing persistence")
    rng = np.random.default_rng(1)
    cos = rng.normal(size=(40, 3))
    ax = plot_mention_volcano(mention_tests(evaluations(cos, cos > 0.5), n_perm=199))
    assert "emotions significant" in ax.get_title()
    matplotlib.pyplot.close("all")
