"""to_table: pingouin-style tidy tables beside the Datasets, checked against pingouin."""

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import xarray as xr

from emostats import EmostatsError, bh_fdr, one_sample_tests, pearson, permutation_test, spearman
from emostats.stats import kendall, p_adjust, t_test, to_table
from tests.conftest import RTOL_REFERENCE


def test_correlation_table_matches_pingouin(rng):
    x = xr.DataArray(rng.normal(size=(3, 40)), dims=("feature", "obs"), coords={"feature": [10, 11, 12]})
    y = xr.DataArray(rng.normal(size=40) + 0.5 * x[0].values, dims="obs")
    for fn, method, name in ((pearson, "pearson", "r"), (spearman, "spearman", "rho")):
        # pingouin's Spearman p is the t approximation (emostats: method="t"; R's rule is the default)
        tab = to_table(fn(x, y, dim="obs", method="t") if fn is spearman else fn(x, y, dim="obs"))
        assert list(tab.columns) == ["feature", "n", name, "CI95", "p_val", "p_fdr"]
        for i in range(3):
            ref = pg.corr(x[i].values, y.values, method=method)
            assert tab[name][i] == pytest.approx(ref["r"].iloc[0], rel=RTOL_REFERENCE)
            assert tab["p_val"][i] == pytest.approx(ref["p_val"].iloc[0], rel=RTOL_REFERENCE)
            if method == "pearson":  # pingouin rounds its interval to 2 decimals
                np.testing.assert_allclose(np.round(tab["CI95"][i], 2), ref["CI95"].iloc[0], atol=1e-12)
            else:  # Spearman: Fisher z with Bonett & Wright's standard error, not Pearson's (pingouin)
                r, n = tab[name][i], tab["n"][i]
                half = 1.959963984540054 * np.sqrt((1 + r ** 2 / 2) / (n - 3))
                np.testing.assert_allclose(tab["CI95"][i], np.tanh(np.arctanh(r) + np.array([-half, half])),
                                           rtol=1e-12)
                assert "Bonett" in tab.attrs["ci_method"]
        np.testing.assert_allclose(tab["p_fdr"], pg.multicomp(tab["p_val"].to_numpy(), method="fdr_bh")[1])


def test_permutation_table(rng):
    values = rng.normal(size=30)
    groups = xr.DataArray(rng.random((4, 30)) < 0.3, dims=("emotion", "item"),
                          coords={"emotion": list("abcd")})
    res = permutation_test(values, groups, group_dim="emotion", n_perm=999)
    tab = to_table(res)
    assert list(tab.columns) == ["emotion", "n_in", "n_out", "n", "mean_diff", "p_val", "p_fdr", "exact"]
    np.testing.assert_array_equal(tab["p_val"], res.p.values)
    np.testing.assert_allclose(tab["p_fdr"], bh_fdr(res.p.values).q.values)
    res["q"] = bh_fdr(res.p).q * 0 + 0.5  # a q already in the Dataset is used as is
    assert (to_table(res)["p_fdr"] == 0.5).all()
    assert "p_fdr" not in to_table(permutation_test(values, groups.values), fdr=False)


def test_one_sample_table_is_long(rng):
    x = xr.DataArray(rng.normal(0.3, 1, (2, 20)), dims=("kind", "s"), coords={"kind": ["probe", "pc"]})
    res = one_sample_tests(x, dim="s")
    tab = to_table(res)
    assert list(tab.columns) == ["kind", "test", "n", "statistic", "CI95", "p_val", "p_fdr"]
    assert len(tab) == 6
    t = tab[tab.test == "t-test"].set_index("kind")
    assert t.loc["pc", "p_val"] == res.t_p.sel(kind="pc").item()
    np.testing.assert_allclose(t.loc["probe", "CI95"], [res.ci_low[0].item(), res.ci_high[0].item()])
    ref = pg.ttest(x[0].values, 0)
    assert t.loc["probe", "p_val"] == pytest.approx(ref["p_val"].iloc[0], rel=RTOL_REFERENCE)


def test_interval_column_follows_the_level_and_alternative(rng):
    x, y = rng.normal(size=30), rng.normal(size=30)
    tab = to_table(kendall(x, y, alternative="greater", conf_level=0.9))
    assert list(tab.columns) == ["n", "tau", "CI90", "p_val", "p_fdr"] and tab["CI90"][0][1] == 1.0
    tt = to_table(t_test(x, y, conf_level=0.99))
    assert list(tt.columns) == ["n_x", "n_y", "estimate", "t", "df", "CI99", "p_val", "p_fdr"]
    one = to_table(one_sample_tests(x, conf_level=0.8))
    assert list(one.columns) == ["test", "n", "statistic", "CI80", "p_val", "p_fdr"]
    assert np.isfinite(np.stack(one["CI80"])).all()
    assert list(to_table(p_adjust(np.array([0.01, 0.2]), "holm")).columns)[-2:] == ["p_adj", "reject"]


def test_fdr_and_scalar_tables():
    tab = to_table(bh_fdr(np.array([0.01, 0.2])))
    assert list(tab.columns)[-2:] == ["q", "reject"] and len(tab) == 2
    one = to_table(spearman(np.arange(6.0), np.array([1.0, 3, 2, 5, 4, 6])))
    assert isinstance(one, pd.DataFrame) and len(one) == 1 and one["n"][0] == 6
    with pytest.raises(EmostatsError, match="test="):
        to_table(xr.Dataset())


def test_results_are_netcdf_safe(rng, tmp_path):
    """Every result Dataset (bool variables, attrs) round-trips through NetCDF."""
    values = rng.normal(size=20)
    groups = rng.random((3, 20)) < 0.4
    results = {
        "perm": permutation_test(values, groups, n_perm=99, return_null=True),
        "rho": spearman(rng.normal(size=(2, 15)), rng.normal(size=15), permutation=99),
        "rho_r": spearman(rng.normal(size=(3, 15)), rng.normal(size=15)),
        "tau": kendall(rng.normal(size=(2, 15)), rng.normal(size=15)),
        "t": t_test(rng.normal(size=(2, 9)), rng.normal(size=7)),
        "adj": p_adjust(rng.random(5), "hommel", n=8),
        "fdr": bh_fdr(xr.DataArray(rng.random((2, 3)), dims=("a", "b")), dims="b"),
        "one": one_sample_tests(xr.DataArray(rng.normal(size=(2, 9)), dims=("t", "s")), dim="s"),
    }
    for name, ds in results.items():
        path = tmp_path / f"{name}.nc"
        ds.to_netcdf(path)
        with xr.open_dataset(path) as back:
            xr.testing.assert_identical(back.load(), ds)
