"""A study holding only what the conversation bootstrap and the placebo step read, at any scale.

:func:`sufficient_study` skips the per-token hidden activations (1M tokens x
7,168 dims would be 29 GB of float32): it simulates a low-dimensional latent
process per token, and builds from the latent per-conversation moments,
*exactly*, the groups a study made by :func:`emostats.study_from_activations`
would hold: ``/tokens`` ``probe_act``, ``/probes``, ``/moments`` and
``/conv_moments`` with the paper's shapes. It exists to measure the cost and
storage of the inference steps at paper scale (``benchmarks/test_bench_inference.py``);
the costs depend on the shapes, not on the values.

Model: ``h_t = mu + A z_t + e_t`` with ``A`` (hidden x m) orthonormal,
``z`` the latent process of :mod:`emostats.synth._worlds` (turn levels plus
a within-turn AR(1), variances ``lam``) and ``e_t`` white noise of variance
``sigma2`` per dimension. The latent part enters every group as exact sample
moments (the projection ``d . h`` of any direction has moments that are
quadratic forms of the latent moments in ``A' d``); the noise enters
``/tokens`` as sampled values (probe noise with covariance ``sigma2 V V'``)
and the moment groups with its expectation (sigma2 per token or pair, as in
:func:`emostats.synth.make_study`), so that the per-conversation moments
merge to ``/moments`` exactly.
"""

import numpy as np
import xarray as xr

from ..errors import EmostatsError

__all__ = ["sufficient_study"]


def _rng(seed, part):
    return np.random.default_rng(np.random.SeedSequence([int(seed), 2727, part]))


def _centred(a):
    m = a.mean(axis=0)
    d = a - m
    return m, d.T @ d


def _quad_rows(Dl, M):
    """diag(Dl M Dl') for the rows of ``Dl`` (D, m)."""
    return ((Dl @ M) * Dl).sum(axis=1)


def sufficient_study(n_conversations=240, n_tokens=1_000_000, hidden=7168, n_probes=171, n_random=1000,
                     n_candidates=5420, turns=10, lag=100, latent=64, sigma2=0.05, seed=0, ks=None):
    """A study with ``/tokens`` probe activations, ``/probes``, ``/moments`` and ``/conv_moments``, no hidden tokens.

    Parameters
    ----------
    n_conversations, n_tokens : int
        Conversations and tokens (split evenly; ``turns`` turns per conversation).
    hidden, n_probes : int
        Hidden dimension and probes.
    n_random, n_candidates : int
        Stored uniform and candidate directions of ``/conv_moments``.
    turns, lag : int
    latent : int
        Dimension ``m`` of the latent process.
    sigma2 : float
        Noise variance per hidden dimension.
    seed : int
    ks : sequence of int, optional
        Eigenspace dimensions labelling the candidates (default
        :func:`emostats.nullmodels.default_ks`); candidates are unit vectors
        mixing the latent span and the noise.

    Returns
    -------
    xarray.DataTree

    Examples
    --------
    >>> tree = sufficient_study(n_conversations=4, n_tokens=4000, hidden=32, n_probes=5, n_random=10,
    ...                         n_candidates=40, turns=2, lag=10, latent=6)
    >>> sorted(tree.children), tree["conv_moments"]["lag_moments"].shape
    (['conv_moments', 'moments', 'probes', 'tokens'], (4, 6, 1, 50))
    """
    from ..inference.activations import conv_moments_dataset
    from ..nullmodels import default_ks, split_evenly

    G, T, L, m, H = int(n_conversations), int(turns), int(lag), int(latent), int(hidden)
    per_turn = int(n_tokens) // (G * T)
    if per_turn <= L:
        raise EmostatsError(f"sufficient_study: {per_turn} tokens per turn; need more than lag {L}")
    if m > H or m < 1:
        raise EmostatsError(f"sufficient_study: latent must lie in 1..hidden, got {m}")
    rng = _rng(seed, 0)
    A, _ = np.linalg.qr(rng.standard_normal((H, m)))
    lam = 10.0 ** np.linspace(1.0, 0.0, m)
    beta = 0.2
    phi = np.linspace(0.9, 0.99, m)[::-1]
    mu = 0.5 * rng.standard_normal(H)
    V = rng.standard_normal((n_probes, m)) @ A.T * 0.7 + 0.05 * rng.standard_normal((n_probes, H))
    Vl = V @ A  # latent loadings of the probes
    ks_ = default_ks(H) if ks is None else np.asarray(ks, dtype=np.int64)
    n_per = split_evenly(int(n_candidates), len(ks_))
    kk = np.concatenate([np.full(int(n_random), H), np.repeat(ks_, n_per)])
    Dr = rng.standard_normal((kk.size, H))
    # candidates of small k lie mostly in the latent span (the top eigenspace), large k mostly in the noise
    share = np.clip(kk / H, 0.0, 1.0)[:, None]
    cand = np.arange(kk.size) >= int(n_random)
    Dr[cand] = (np.sqrt(1 - share[cand]) * (rng.standard_normal((cand.sum(), m)) @ A.T) * np.sqrt(H / m)
                + np.sqrt(share[cand]) * Dr[cand])
    D = (Dr / np.linalg.norm(Dr, axis=1, keepdims=True)).astype(np.float32).astype(np.float64)
    Dl = D @ A
    dmu, d2 = D @ mu, (D * D).sum(1)
    noise_chol = np.linalg.cholesky(sigma2 * (V @ V.T) + 1e-12 * np.eye(n_probes))

    n_g = per_turn * T
    probe_act = np.empty((G * n_g, n_probes), dtype=np.float32)
    nd = D.shape[0]
    lm = np.zeros((G, 6, 1, nd))
    wm = np.zeros((G, 4, 1, nd))
    pmean, pm2 = np.zeros((G, nd)), np.zeros((G, nd))
    hmean, hm2 = np.zeros((G, H)), np.zeros(G)
    pool = {k: np.zeros((m, m)) for k in ("c", "cxx", "cyy", "cxy")}
    pool_mean = {k: np.zeros(m) for k in ("z", "x", "y")}
    pool_blocks = []
    rng1 = _rng(seed, 1)
    innov = np.sqrt(1 - phi ** 2)
    for g in range(G):
        b = rng1.standard_normal((T, m))
        e = np.empty((T, per_turn, m))
        e[:, 0] = rng1.standard_normal((T, m))
        zz = rng1.standard_normal((T, per_turn, m))
        for t in range(1, per_turn):
            e[:, t] = phi * e[:, t - 1] + innov * zz[:, t]
        z = (np.sqrt(beta) * b[:, None, :] + np.sqrt(1 - beta) * e) * np.sqrt(lam)
        rows = slice(g * n_g, (g + 1) * n_g)
        flat = z.reshape(n_g, m)
        probe_act[rows] = (V @ mu + flat @ Vl.T + rng1.standard_normal((n_g, n_probes)) @ noise_chol.T)
        zm, zc = _centred(flat)
        x, y = z[:, :-L].reshape(-1, m), z[:, L:].reshape(-1, m)
        n_p = x.shape[0]
        mx, my = x.mean(0), y.mean(0)
        dx, dy = x - mx, y - my
        cxx, cyy, cxy = dx.T @ dx, dy.T @ dy, dx.T @ dy
        wxx, wyy, wxy = np.zeros((m, m)), np.zeros((m, m)), np.zeros((m, m))
        for s in range(T):
            xs = z[s, :-L] - z[s, :-L].mean(0)
            ys = z[s, L:] - z[s, L:].mean(0)
            wxx += xs.T @ xs
            wyy += ys.T @ ys
            wxy += xs.T @ ys
        nw = n_p - T  # expected centred sum of white noise: (pairs - 1) sigma2 per turn
        lm[g, 0, 0] = n_p
        lm[g, 1, 0] = dmu + Dl @ mx
        lm[g, 2, 0] = dmu + Dl @ my
        lm[g, 3, 0] = _quad_rows(Dl, cxx) + sigma2 * d2 * n_p
        lm[g, 4, 0] = _quad_rows(Dl, cyy) + sigma2 * d2 * n_p
        lm[g, 5, 0] = _quad_rows(Dl, cxy)
        wm[g, 0, 0] = n_p
        wm[g, 1, 0] = _quad_rows(Dl, wxx) + sigma2 * d2 * nw
        wm[g, 2, 0] = _quad_rows(Dl, wyy) + sigma2 * d2 * nw
        wm[g, 3, 0] = _quad_rows(Dl, wxy)
        pmean[g] = dmu + Dl @ zm
        pm2[g] = _quad_rows(Dl, zc) + sigma2 * d2 * n_g
        hmean[g] = mu + A @ zm
        hm2[g] = np.trace(zc) + sigma2 * H * n_g
        pool_blocks.append((n_g, zm, zc, n_p, mx, my, cxx, cyy, cxy))
    # pooled moments (ddof 0) of the latent part, merged over conversations
    N = sum(blk[0] for blk in pool_blocks)
    Np = sum(blk[3] for blk in pool_blocks)
    pool_mean["z"] = sum(blk[0] * blk[1] for blk in pool_blocks) / N
    pool_mean["x"] = sum(blk[3] * blk[4] for blk in pool_blocks) / Np
    pool_mean["y"] = sum(blk[3] * blk[5] for blk in pool_blocks) / Np
    for n_g_, zm, zc, n_p, mx, my, cxx, cyy, cxy in pool_blocks:
        dz, ddx, ddy = zm - pool_mean["z"], mx - pool_mean["x"], my - pool_mean["y"]
        pool["c"] += zc + n_g_ * np.outer(dz, dz)
        pool["cxx"] += cxx + n_p * np.outer(ddx, ddx)
        pool["cyy"] += cyy + n_p * np.outer(ddy, ddy)
        pool["cxy"] += cxy + n_p * np.outer(ddx, ddy)

    def full(M, n, noise):
        out = (A @ (M / n)) @ A.T
        if noise:
            out[np.diag_indices(H)] += sigma2
        return out

    cov = full(pool["c"], N, True)
    hdim = ("hidden", "hidden_b")
    mom = xr.Dataset(
        {"mean": ("hidden", mu + A @ pool_mean["z"]), "cov": (hdim, cov), "n": ((), np.int64(N)),
         "lag_n": ("lag", np.array([Np], dtype=np.int64)),
         "lag_mean_x": (("lag", "hidden"), (mu + A @ pool_mean["x"])[None]),
         "lag_mean_y": (("lag", "hidden"), (mu + A @ pool_mean["y"])[None]),
         "lag_cxx": (("lag",) + hdim, full(pool["cxx"], Np, True)[None]),
         "lag_cyy": (("lag",) + hdim, full(pool["cyy"], Np, True)[None]),
         "lag_cxy": (("lag",) + hdim, full(pool["cxy"], Np, False)[None])},
        coords={"lag": [L]}, attrs={"ddof": 0, "source_hidden_dim": "hidden",
                                    "computed_by": "emostats.synth.sufficient_study (exact latent moments, "
                                                   "noise in expectation)"})
    names = [f"probe_{i}" for i in range(n_probes)]
    vsv = np.einsum("ph,ph->p", V @ cov, V)
    ve = vsv / ((V * V).sum(1) * np.trace(cov))
    conv = np.repeat(np.arange(G), n_g)
    turn = np.tile(np.repeat(np.arange(T), per_turn), G)
    position = np.tile(np.arange(per_turn, dtype=np.int32), G * T)
    pop = np.array(["uniform"] * int(n_random) + ["candidate"] * (kk.size - int(n_random)))
    cm = conv_moments_dataset(D, pop, kk, [L], np.arange(G), lm, wm, np.full(G, n_g), pmean, pm2, hmean, hm2)
    cm.attrs.update(seed=int(seed), n_random=int(n_random), n_candidates=int(n_candidates), ks=ks_.tolist())
    groups = {
        "tokens": xr.Dataset({"probe_act": (("token", "probe"), probe_act)},
                             coords={"conversation": ("token", conv), "turn": ("token", turn),
                                     "position": ("token", position), "probe": names}),
        "probes": xr.Dataset({"vector": (("probe", "hidden"), V), "variance_explained": ("probe", ve)},
                             coords={"probe": names}),
        "moments": mom,
        "conv_moments": cm,
    }
    root = xr.DataTree(xr.Dataset(attrs={"emostats_format": 1, "synthetic": 1,
                                         "source": "emostats.synth.sufficient_study",
                                         "description": "SYNTHETIC: sufficient statistics only (no hidden tokens)"}))
    for name, ds in groups.items():
        root[name] = xr.DataTree(ds)
    return root
