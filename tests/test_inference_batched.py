"""The batched pieces of the conversation bootstrap against slow, independent references.

- the per-conversation probe matrices (token covariance and lag-pair
  matrices, built from one centred token matrix, on threads) against a
  direct computation per conversation;
- :class:`PackedMerge` (all matrices of a block in one product) against
  :func:`merge_matrices`;
- the replicates' PCs (batched eigendecompositions and quadratic forms)
  against a per-replicate loop written from the definitions.
"""

import numpy as np
import pytest
import xarray as xr

from emostats.inference._merge import PackedMerge, merge_matrices
from emostats.inference.bootstrap import build_headlines
from emostats.inference.convstats import probe_stats
from emostats.synth import make_world

LAG = 4


def _act(seed=0, G=4, T=3, P=5, nan=True, shuffle=True):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(LAG + 2, 25, size=G * T)
    seg_conv = np.repeat(np.arange(G), T)
    if shuffle:  # conversations interleaved: not in token order
        seg_conv = rng.permutation(seg_conv)
    x = rng.normal(size=(lengths.sum(), P)) + 3.0 + np.repeat(rng.normal(size=(G * T, P)), lengths, axis=0)
    if nan:
        x[7, 2] = np.nan
    conv = np.repeat(seg_conv, lengths)
    turn = np.concatenate([np.full(n, i) for i, n in enumerate(lengths)])
    return xr.DataArray(x, dims=("token", "probe"), coords={"conversation": ("token", conv),
                                                            "turn": ("token", turn)}), lengths


def _direct(act, lengths, labels):
    """Per conversation (in ``labels`` order): n, mean, centred sums of the tokens and of the lag pairs."""
    x = act.values
    conv = act["conversation"].values
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    ok = np.isfinite(x).all(axis=1)
    out = []
    for c in labels:
        rows = np.flatnonzero((conv == c) & ok)
        pairs = [t for s, n in zip(starts, lengths) if conv[s] == c for t in range(s, s + n - LAG)
                 if ok[t] and ok[t + LAG]]
        a, X, Y = x[rows], x[pairs], x[np.array(pairs) + LAG]
        dx, dy = X - X.mean(0), Y - Y.mean(0)
        out.append(dict(tok_n=len(rows), tok_mean=a.mean(0), tok_c=(a - a.mean(0)).T @ (a - a.mean(0)),
                        pair_n=len(pairs), pair_mx=X.mean(0), pair_my=Y.mean(0), pair_cxx=dx.T @ dx,
                        pair_cyy=dy.T @ dy, pair_cxy=dx.T @ dy))
    return out


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shuffle", [False, True])
def test_probe_matrices_equal_a_direct_computation(threads, shuffle):
    act, lengths = _act(shuffle=shuffle)
    ps = probe_stats(act, LAG, matrices=True, threads=threads)
    assert ps.n_dropped == 1
    for g, want in enumerate(_direct(act, lengths, ps.conversations)):
        for key, value in want.items():
            np.testing.assert_allclose(getattr(ps, key)[g], value, rtol=1e-12, atol=1e-10, err_msg=f"{g} {key}")


def test_packed_merge_equals_merge_matrices():
    rng = np.random.default_rng(3)
    G, P = 7, 4
    n = rng.integers(5, 50, G).astype(float)
    mx, my = rng.normal(size=(G, P)) + 10, rng.normal(size=(G, P)) - 4
    C = rng.normal(size=(G, P, P))
    S = np.stack([a @ a.T for a in rng.normal(size=(G, P, P))])
    W = rng.integers(0, 3, size=(5, G)).astype(float)
    N, (got_s, got_c) = PackedMerge([(n, mx, mx, S), (n, mx, my, C)]).merge(W)
    np.testing.assert_allclose(N[:, 0], W @ n, rtol=1e-14)
    want_s = merge_matrices(n, mx, mx, S, W)[3]
    want_c = merge_matrices(n, mx, my, C, W)[3]
    np.testing.assert_allclose(got_s, want_s, rtol=1e-12, atol=1e-9)
    # a cross matrix is used in quadratic forms only: its symmetric part
    np.testing.assert_allclose(got_c, (want_c + want_c.transpose(0, 2, 1)) / 2, rtol=1e-12, atol=1e-9)


def test_replicate_pcs_equal_a_per_replicate_loop():
    tree, _ = make_world("planted", n_conversations=6, seed=4)
    h, _ = build_headlines(tree, 10)
    ps = h.ps
    W = np.random.default_rng(2).multinomial(6, np.full(6, 1 / 6), size=5).astype(float)
    ratio = h._trace_ratio(W)
    r_got, ve_got = h.pc_values(W, ratio)
    for i in range(W.shape[0]):
        w = W[i:i + 1]
        N, _, _, C = merge_matrices(ps.tok_n, ps.tok_mean, ps.tok_mean, ps.tok_c, w)
        Cxx = merge_matrices(ps.pair_n, ps.pair_mx, ps.pair_mx, ps.pair_cxx, w)[3][0]
        Cyy = merge_matrices(ps.pair_n, ps.pair_my, ps.pair_my, ps.pair_cyy, w)[3][0]
        Cxy = merge_matrices(ps.pair_n, ps.pair_mx, ps.pair_my, ps.pair_cxy, w)[3][0]
        C = C[0] / N[0]
        ev, L = np.linalg.eigh(C)
        L = L[:, np.argsort(-ev, kind="stable")]
        for j in range(L.shape[1]):
            lj = L[:, j]
            r = lj @ Cxy @ lj / np.sqrt((lj @ Cxx @ lj) * (lj @ Cyy @ lj))
            v = lj / h.scale  # u_j' Sigma u_j from the probes' covariance (probe_act_i = s_i p_i . h)
            u = lj @ h.pc_vectors  # the PC direction u_j = sum_i L_ij p_i
            ve = (v @ C @ v) / (u @ u * h._pool_trace) * ratio[i]
            assert r_got[i, j] == pytest.approx(r, rel=1e-10)
            assert ve_got[i, j] == pytest.approx(ve, rel=1e-10)
