"""The batched placebo (emostats.inference.placebo) against slow, independent per-draw references.

The placebo step computes every set of a batch at once (one product with the
stacked lag matrices, batched eigendecompositions, one variance matching of
all targets, batched QRs). Here each piece is checked against a plain loop
over draws written from the definitions, in float64, to ~1e-12.
"""

import numpy as np
import pytest
import xarray as xr
from scipy.stats import spearmanr

from emostats.inference import placebo as P
from emostats.nullmodels import nearest_by_variance

H, NP, LAG = 30, 8, 5


def _moments(seed=0, H=H):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, H)) * np.linspace(3.0, 0.2, H)
    Y = 0.6 * X + rng.normal(size=(400, H))
    cov = np.cov(X.T, ddof=0)
    cxx, cyy = np.cov(X[:-LAG].T, ddof=0), np.cov(X[LAG:].T, ddof=0)
    cxy = (X[:-LAG] - X[:-LAG].mean(0)).T @ (Y[LAG:] - Y[LAG:].mean(0)) / (400 - LAG)  # not symmetric
    hd = ("hidden", "hidden_b")
    return xr.Dataset({"cov": (hd, cov), "lag_cxx": (("lag",) + hd, cxx[None]),
                       "lag_cyy": (("lag",) + hd, cyy[None]), "lag_cxy": (("lag",) + hd, cxy[None])},
                      coords={"lag": [LAG]})


def _candidates(seed=1, n=300):
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.2, 0.6, n), rng.uniform(0.0, 0.12, n)


def _reference(mom, V, cand, n_match=20):
    """The headline numbers of one set V (P, hidden) from the definitions, in the original basis."""
    S, Cxx, Cyy, Cxy = (np.asarray(mom[k].values, dtype=np.float64).reshape(H, H)
                        for k in ("cov", "lag_cxx", "lag_cyy", "lag_cxy"))
    tr = np.trace(S)
    cr, cve = cand

    def quad(u, M):
        return float(u @ M @ u)

    def persistence(u):
        return quad(u, Cxy) / np.sqrt(quad(u, Cxx) * quad(u, Cyy))

    def residuals(r, ve):
        idx = nearest_by_variance(ve, cve, n=n_match)
        return np.array([r[i] - np.median(cr[idx[i]]) if idx[i, 0] >= 0 else np.nan for i in range(r.size)])

    r = np.array([persistence(v) for v in V])
    ve = np.array([quad(v, S) / (v @ v * tr) for v in V])
    res = residuals(r, ve)
    ev, L = np.linalg.eigh(V @ S @ V.T)
    order = np.argsort(-ev, kind="stable")
    ev, L = ev[order], L[:, order]
    deg = ev <= 1e-10 * max(ev.max(), 0.0)
    U = L.T @ V  # PC directions u_j = sum_i L_ij v_i
    pr = np.array([np.nan if d else persistence(u) for u, d in zip(U, deg)])
    pve = np.array([np.nan if d else e / (u @ u * tr) for u, e, d in zip(U, ev, deg)])
    pres = residuals(pr, pve)
    ok = np.isfinite(pres)
    return {"probe_persistence": r.mean(), "residual_mean": np.nanmean(res),
            "residual_positive": float((res > 0).sum()), "mean_variance_explained": ve.mean(),
            "pc_spearman": spearmanr(np.arange(1, r.size + 1)[ok], pres[ok])[0]}


def test_batched_set_statistics_equal_a_per_set_loop():
    mom = _moments()
    cand = _candidates()
    rng = np.random.default_rng(5)
    V = rng.normal(size=(6, NP, H)) * rng.uniform(0.5, 2.0, size=(6, NP, 1))
    V[2, 7] = V[2, 0] + V[2, 1]  # a rank-deficient set: its last PC is degenerate (NaN, left out of the rank)
    V[4, 3] = -0.5 * V[4, 6]
    prep = P._Prepared(mom, LAG, dtype=np.float64)
    got = P.set_statistics(prep, V @ prep.U, cand)
    for j in range(V.shape[0]):
        want = _reference(mom, V[j], cand)
        for key, value in want.items():
            assert got[key][j] == pytest.approx(value, rel=1e-12, abs=1e-12), (j, key)


def test_float32_products_stay_close_to_float64():
    mom = _moments(2)
    cand = _candidates(3)
    V = np.random.default_rng(4).normal(size=(4, NP, H))
    p64, p32 = P._Prepared(mom, LAG, dtype=np.float64), P._Prepared(mom, LAG)
    a, b = P.set_statistics(p64, V @ p64.U, cand), P.set_statistics(p32, V @ p32.U, cand)
    np.testing.assert_allclose(b["probe_persistence"], a["probe_persistence"], atol=1e-5)
    np.testing.assert_allclose(b["mean_variance_explained"], a["mean_variance_explained"], rtol=1e-12)


@pytest.mark.parametrize("kind", P.KINDS)
def test_batched_draws_equal_one_draw_at_a_time(kind):
    rng_v = np.random.default_rng(8)
    V = rng_v.normal(size=(NP, H))
    V[5] = V[0] - V[1]  # rotated sets keep a rank-deficient span's rank
    w = np.linspace(4.0, 0.1, H)
    norms = np.linalg.norm(V, axis=1)
    frame = P._frame(V)
    got = P._draw_sets(kind, 7, norms, w, np.random.default_rng(11), frame)
    rng = np.random.default_rng(11)
    for i in range(7):  # the per-draw definitions
        if kind == "rotated":
            C, r = frame
            q, t = np.linalg.qr(rng.standard_normal((H, r)))
            want = C @ (q * np.sign(np.diag(t))).T
        else:
            g = rng.standard_normal((NP, H))
            if kind == "shaped":
                g = g * np.sqrt(w)
            want = g / np.linalg.norm(g, axis=1, keepdims=True) * norms[:, None]
        np.testing.assert_allclose(got[i], want, rtol=0, atol=1e-12)


def test_placebo_draws_do_not_depend_on_the_batch_size():
    mom = _moments(6)
    cand = _candidates(7)
    V = np.random.default_rng(9).normal(size=(NP, H))
    prep = P._Prepared(mom, LAG, dtype=np.float64)
    for kind in P.KINDS:
        kw = dict(kind=kind, n_draws=9, seed=3, vectors=V, prepared=prep)
        one = P.placebo_probe_sets(mom, LAG, np.linalg.norm(V, axis=1), cand, block=1, **kw)
        many = P.placebo_probe_sets(mom, LAG, np.linalg.norm(V, axis=1), cand, **kw)
        for key in one:
            np.testing.assert_allclose(many[key], one[key], rtol=1e-12, atol=1e-12, err_msg=f"{kind} {key}")


def test_random_span_fractions_equal_one_span_at_a_time():
    rng = np.random.default_rng(12)
    D = rng.normal(size=(40, H))
    got = P._random_span_fractions(D, 6, 9, np.random.default_rng(13), block=4)
    rng = np.random.default_rng(13)
    for i in range(9):
        Q, _ = np.linalg.qr(rng.standard_normal((H, 6)))
        np.testing.assert_allclose(got[i], np.linalg.norm(D @ Q, axis=1) / np.linalg.norm(D, axis=1),
                                   rtol=1e-12, atol=0)


def test_basis_change_by_panels_equals_the_full_products():
    mom = _moments(10)
    prep = P._Prepared(mom, LAG, dtype=np.float64, panel=7)  # 30 = 4 panels of 7 and one of 2
    U = prep.U
    np.testing.assert_allclose(U.T @ mom["cov"].values @ U, np.diag(prep.w), atol=1e-12)
    for k, name in enumerate(("lag_cxx", "lag_cyy", "lag_cxy")):
        M = mom[name].values[0]
        np.testing.assert_allclose(prep.stack[:, k * H:(k + 1) * H], U.T @ ((M + M.T) / 2) @ U, atol=1e-12)
