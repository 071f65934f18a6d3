"""bh_fdr: R's p.adjust and multtest, statsmodels/scipy on random inputs with ties and NaN,
the textbook twin, explicit families, and properties (q monotone in p, q >= p)."""

import json
import pathlib

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests

from emostats import EmostatsError, bh_fdr
from emostats.stats import p_adjust
from tests.conftest import RTOL_KERNEL
from tests.rlive import RTOL_ADJ

REF = json.loads((pathlib.Path(__file__).parent / "R" / "stats_reference.json").read_text())
#: the brief: equal to statsmodels on the flattened family to 1e-12
RTOL_STATSMODELS = 1e-12


def _arr(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


METHODS = ("holm", "hochberg", "hommel", "bonferroni", "bh", "by")


@pytest.mark.parametrize("method", ["bh", "by"])
def test_against_r_p_adjust(method):
    ref = REF["p_adjust"]
    q = bh_fdr(_arr(ref["p"]), method=method).q.values
    np.testing.assert_allclose(q, ref[method], rtol=RTOL_ADJ)
    q = bh_fdr(_arr(ref["p_na"]), method=method).q.values
    np.testing.assert_allclose(q, _arr(ref["na"][method]), rtol=RTOL_ADJ)
    p2 = np.array([_arr(row) for row in ref["p_2d"]])
    q = bh_fdr(p2, method=method).q.values.ravel()  # the whole array is one family
    np.testing.assert_allclose(q, _arr(ref[f"p_2d_{method}"]), rtol=RTOL_ADJ)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_and_declared_family_against_r(method):
    ref = REF["p_adjust"]
    r_name = {"bh": "BH", "by": "BY"}.get(method, method)
    np.testing.assert_allclose(p_adjust(_arr(ref["p"]), r_name).p_adj.values, ref[method], rtol=RTOL_ADJ)
    np.testing.assert_allclose(p_adjust(_arr(ref["p_na"]), method).p_adj.values, _arr(ref["na"][method]),
                               rtol=RTOL_ADJ)
    res = p_adjust(_arr(ref["p_na"]), method, n=12)  # R's p.adjust(p, method, n = 12)
    np.testing.assert_allclose(res.p_adj.values, _arr(ref["n12"][method]), rtol=RTOL_ADJ)
    assert res.attrs["family_size"] == 12 and "n = 12" in res.attrs["r_call"]
    if method in ("bh", "by"):
        np.testing.assert_allclose(bh_fdr(_arr(ref["p_na"]), method=method, n=12).q.values,
                                   _arr(ref["n12"][method]), rtol=RTOL_ADJ)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_against_textbook_twin(rng, method):
    from tests.naive import stats as naive

    for size in (1, 2, 3, 6, 9):
        p = np.round(rng.random(size), 2)
        p[rng.random(size) < 0.15] = np.nan
        lp = int((~np.isnan(p)).sum())
        for n in (None, lp + 2):
            np.testing.assert_allclose(p_adjust(p, method, n=n).p_adj.values, naive.p_adjust(p, method, n),
                                       rtol=RTOL_KERNEL, equal_nan=True)


def test_against_statsmodels_other_methods(rng):
    p = rng.random(300) ** 2
    for ours, theirs in (("holm", "holm"), ("hochberg", "simes-hochberg"), ("hommel", "hommel"),
                         ("bonferroni", "bonferroni")):
        np.testing.assert_allclose(p_adjust(p, ours).p_adj.values, multipletests(p, method=theirs)[1],
                                   rtol=RTOL_STATSMODELS)


def test_declared_family_smaller_than_the_tests_is_an_error():
    with pytest.raises(EmostatsError, match="n=2 is smaller"):
        p_adjust(np.array([0.1, 0.2, 0.3]), "holm", n=2)
    with pytest.raises(EmostatsError, match="positive int"):
        bh_fdr(np.array([0.1]), n=0)


@pytest.mark.parametrize("method", ["bh", "by"])
def test_against_r_multtest(method):
    ref = REF["multtest"]
    res = bh_fdr(np.array(ref["rawp"]), method=method, alpha=0.1)
    np.testing.assert_allclose(res.q.values, ref[method], rtol=RTOL_ADJ)
    np.testing.assert_array_equal(res.reject.values, np.array(ref[method]) <= 0.1)


@pytest.mark.parametrize("method", ["bh", "by"])
def test_against_statsmodels_with_ties_and_nan(rng, method):
    for size in (1, 2, 17, 1000):
        p = np.round(rng.random(size) ** 2, 2)  # rounding makes many ties
        p[rng.random(size) < 0.1] = np.nan
        ok = ~np.isnan(p)
        res = bh_fdr(p, method=method, alpha=0.1)
        if ok.any():
            rej, q, _, _ = multipletests(p[ok], alpha=0.1, method=f"fdr_{method}")
            np.testing.assert_allclose(res.q.values[ok], q, rtol=RTOL_STATSMODELS, atol=0)
            np.testing.assert_array_equal(res.reject.values[ok], rej)
        assert np.isnan(res.q.values[~ok]).all() and not res.reject.values[~ok].any()
        assert res.attrs["n_tests"] == ok.sum()


def test_against_scipy_false_discovery_control(rng):
    p = rng.random(500) ** 3
    np.testing.assert_allclose(bh_fdr(p).q.values, stats.false_discovery_control(p), rtol=RTOL_STATSMODELS)
    np.testing.assert_allclose(bh_fdr(p, method="by").q.values,
                               stats.false_discovery_control(p, method="by"), rtol=RTOL_STATSMODELS)


def test_against_textbook_twin(rng):
    from tests.naive import stats as naive

    p = np.round(rng.random(40), 1)
    p[[3, 9]] = np.nan
    for method in ("bh", "by"):
        np.testing.assert_allclose(bh_fdr(p, method=method).q.values, naive.bh(p, method), rtol=RTOL_KERNEL)


def test_family_is_explicit(rng):
    p = xr.DataArray(rng.random((4, 6, 5)), dims=("offset", "emotion", "seed"),
                     coords={"emotion": list("abcdef")})
    p[0, 1, 2] = np.nan
    per = bh_fdr(p, dims=("emotion", "seed"))  # one family per offset
    assert per.q.dims == p.dims and list(per.emotion.values) == list("abcdef")
    for o in range(4):
        flat = p[o].values.ravel()
        ok = ~np.isnan(flat)
        np.testing.assert_allclose(per.q[o].values.ravel()[ok],
                                   multipletests(flat[ok], method="fdr_bh")[1], rtol=RTOL_STATSMODELS)
    whole = bh_fdr(p)  # default: every dim is one family
    flat = p.values.ravel()
    ok = ~np.isnan(flat)
    np.testing.assert_allclose(whole.q.values.ravel()[ok], multipletests(flat[ok], method="fdr_bh")[1],
                               rtol=RTOL_STATSMODELS)
    # the family dims can be given in any order and the result keeps p's layout
    np.testing.assert_array_equal(bh_fdr(p, dims=("seed", "emotion")).q.values, per.q.values)
    single = bh_fdr(p, dims="emotion")
    ref = multipletests(p[1, :, 3].values, method="fdr_bh")[1]
    np.testing.assert_allclose(single.q[1, :, 3].values, ref, rtol=RTOL_STATSMODELS)
    assert per.attrs["family"] == "emotion seed" and per.attrs["reject_rule"] == "q <= alpha"


def test_edge_cases():
    assert np.isnan(bh_fdr(np.array([np.nan, np.nan])).q.values).all()
    assert bh_fdr(np.array([])).q.size == 0
    res = bh_fdr(np.array([0.0, 1.0, 0.05]), alpha=0.05)
    np.testing.assert_array_equal(res.reject.values, [True, False, False])
    np.testing.assert_allclose(res.q.values, [0.0, 1.0, 0.075])
    # reject uses q <= alpha, so a q exactly at alpha is rejected
    assert bh_fdr(np.array([0.025, 0.5]), alpha=0.05).reject.values.tolist() == [True, False]


@pytest.mark.parametrize("kwargs, match", [
    (dict(p=np.array([0.1, 1.2])), r"\[0, 1\]"),
    (dict(p=np.array([-0.1])), r"\[0, 1\]"),
    (dict(p=np.array([0.1]), method="holm"), "method"),
    (dict(p=np.array([0.1]), alpha=1.5), "alpha"),
    (dict(p=np.array([0.1]), dims="x"), "DataArray"),
    (dict(p=xr.DataArray([0.1], dims="a"), dims="b"), "not dims"),
])
def test_user_errors(kwargs, match):
    with pytest.raises(EmostatsError, match=match):
        bh_fdr(**kwargs)


p_lists = st.lists(st.one_of(st.floats(0, 1), st.just(np.nan), st.sampled_from([0.0, 0.01, 0.05, 1.0])),
                   min_size=1, max_size=40)


@given(p_lists, st.sampled_from(["bh", "by"]))
def test_q_is_monotone_in_p_and_at_least_p(values, method):
    p = np.array(values, dtype=float)
    q = bh_fdr(p, method=method).q.values
    ok = ~np.isnan(p)
    assert np.array_equal(np.isnan(q), ~ok)
    pv, qv = p[ok], q[ok]
    assert (qv >= pv).all() and (qv <= 1).all()
    order = np.argsort(pv, kind="stable")
    assert (np.diff(qv[order]) >= 0).all()
    # ties in p give ties in q
    for v in np.unique(pv):
        assert np.ptp(qv[pv == v]) == 0


@given(p_lists, st.randoms(use_true_random=False))
def test_order_of_tests_does_not_matter(values, rnd):
    p = np.array(values, dtype=float)
    perm = list(range(p.size))
    rnd.shuffle(perm)
    np.testing.assert_array_equal(bh_fdr(p).q.values[perm], bh_fdr(p[perm]).q.values)
