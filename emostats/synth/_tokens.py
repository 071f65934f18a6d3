"""Token-level simulation: latent series, probe activations and exact moments.

The latent series are simulated in blocks of whole segments (about
``BLOCK_TOKENS`` tokens each); every block draws its innovations from its own
seeded generator, so the data do not depend on threads. Sums for the moments
are accumulated in float64 in block order.
"""

import numpy as np

from .._kernels import synth as _k
from .._kernels._config import n_threads
from ._design import rng_for

#: tokens per simulation block (whole segments; a longer segment is its own block)
BLOCK_TOKENS = 1 << 15


def blocks(offsets):
    """Split segments into blocks of about BLOCK_TOKENS tokens: list of (first_seg, stop_seg)."""
    out = []
    n_seg = offsets.shape[0] - 1
    s = 0
    while s < n_seg:
        stop = int(np.searchsorted(offsets, offsets[s] + BLOCK_TOKENS, side="right")) - 1
        stop = max(stop, s + 1)
        out.append((s, min(stop, n_seg)))
        s = min(stop, n_seg)
    return out


def simulate_latent(hidden, offsets, cols, part, seed, block_id, threads=None):
    """Latent series (n_tokens_of_block, len(cols)) for one block of segments."""
    n = int(offsets[-1] - offsets[0])
    z = rng_for(seed, part, block_id).standard_normal((3, n, len(cols)), dtype=np.float32)
    out = np.empty((n, len(cols)))
    cs, cf, cw = hidden.c_parts(cols)
    local = (offsets - offsets[0]).astype(np.int64)
    nb = min(n_threads(threads), max(1, local.size - 1))
    _k.ar_mix(z, local, cs, cf, cw, hidden.phi_slow, hidden.phi_fast, nb, out)
    return out


class LatentMoments:
    """Float64 sums of the latent series over all tokens and over valid lag pairs."""

    def __init__(self, m, lags):
        self.lags = tuple(int(L) for L in lags)
        self.n = 0
        self.s = np.zeros(m)
        self.ss = np.zeros((m, m))
        nl = len(self.lags)
        self.ln = np.zeros(nl, dtype=np.int64)
        self.sx = np.zeros((nl, m))
        self.sy = np.zeros((nl, m))
        self.sxx = np.zeros((nl, m, m))
        self.syy = np.zeros((nl, m, m))
        self.sxy = np.zeros((nl, m, m))

    def add(self, y, offsets):
        """Add a block ``y`` (n, m) whose segments have local CSR ``offsets``."""
        self.n += y.shape[0]
        self.s += y.sum(0)
        self.ss += y.T @ y
        lengths = np.diff(offsets)
        starts = offsets[:-1] - offsets[0]
        for i, L in enumerate(self.lags):
            keep = lengths > L
            if not keep.any():
                continue
            cnt = lengths[keep] - L
            x_idx = np.repeat(starts[keep], cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))
            x = y[x_idx]
            yy = y[x_idx + L]
            self.ln[i] += x_idx.size
            self.sx[i] += x.sum(0)
            self.sy[i] += yy.sum(0)
            self.sxx[i] += x.T @ x
            self.syy[i] += yy.T @ yy
            self.sxy[i] += x.T @ yy

    def latent(self):
        """Centred latent moments (divided by n, i.e. ddof=0) as a dict."""
        mean = self.s / self.n
        cov = self.ss / self.n - np.outer(mean, mean)
        out = {"n": self.n, "mean": mean, "cov": 0.5 * (cov + cov.T), "lag_n": self.ln.copy()}
        nl = len(self.lags)
        m = mean.size
        for key in ("lag_mean_x", "lag_mean_y"):
            out[key] = np.zeros((nl, m))
        for key in ("lag_cxx", "lag_cyy", "lag_cxy"):
            out[key] = np.zeros((nl, m, m))
        for i in range(nl):
            n = self.ln[i]
            if n == 0:
                for key in ("lag_mean_x", "lag_mean_y", "lag_cxx", "lag_cyy", "lag_cxy"):
                    out[key][i] = np.nan
                continue
            mx, my = self.sx[i] / n, self.sy[i] / n
            out["lag_mean_x"][i], out["lag_mean_y"][i] = mx, my
            cxx = self.sxx[i] / n - np.outer(mx, mx)
            cyy = self.syy[i] / n - np.outer(my, my)
            out["lag_cxx"][i] = 0.5 * (cxx + cxx.T)
            out["lag_cyy"][i] = 0.5 * (cyy + cyy.T)
            out["lag_cxy"][i] = self.sxy[i] / n - np.outer(mx, my)
        return out


def to_hidden(hidden, lat):
    """Hidden-space moments from latent moments (see the synth module docstring).

    ``h_t = mean + basis @ y_t + e_t`` with ``e_t`` isotropic white noise of
    variance ``sigma2`` in the orthogonal complement of ``basis``: the signal
    part is exact (sample moments of the simulated ``y``); the noise part enters
    with its expectation (``sigma2 (I - basis basis')`` in ``cov``, ``lag_cxx``
    and ``lag_cyy``; zero in ``lag_cxy`` and in the means).
    """
    Q = hidden.basis
    s2 = hidden.sigma2
    m = Q.shape[1]

    def sym(a, noise):
        b = a - noise * np.eye(m) if noise else a
        out = (Q @ b) @ Q.T
        if noise:
            out[np.diag_indices_from(out)] += noise
        return out

    out = {"n": lat["n"], "lag_n": lat["lag_n"], "mean": hidden.mean + Q @ lat["mean"]}
    c = sym(lat["cov"], s2)
    out["cov"] = 0.5 * (c + c.T)
    out["lag_mean_x"] = hidden.mean[None, :] + lat["lag_mean_x"] @ Q.T
    out["lag_mean_y"] = hidden.mean[None, :] + lat["lag_mean_y"] @ Q.T
    nl = lat["lag_n"].size
    H = Q.shape[0]
    for key, noise in (("lag_cxx", s2), ("lag_cyy", s2), ("lag_cxy", 0.0)):
        arr = np.empty((nl, H, H))
        for i in range(nl):
            arr[i] = sym(lat[key][i], noise)
            if key != "lag_cxy":
                arr[i] = 0.5 * (arr[i] + arr[i].T)
        out[key] = arr
    return out


def simulate_tokens(hidden, offsets, seed, lags, need_generic, dtype=np.float32, threads=None):
    """Probe activations (n_tokens, n_probes) and latent moment sums.

    Returns
    -------
    probe_act : array (n_tokens, n_probes) of ``dtype``
    moments : LatentMoments or None (None when ``need_generic`` is false)
    """
    p = hidden.n_probes
    n = int(offsets[-1])
    probe_act = np.empty((n, p), dtype=dtype)
    coef_t = np.ascontiguousarray(hidden.coef.T)
    probe_mean = hidden.vectors @ hidden.mean
    acc = LatentMoments(hidden.m, lags) if need_generic else None
    emo_cols = np.arange(p)
    gen_cols = np.arange(p, hidden.m)
    for b, (s0, s1) in enumerate(blocks(offsets)):
        off = offsets[s0:s1 + 1]
        y_e = simulate_latent(hidden, off, emo_cols, "emotion", seed, b, threads)
        probe_act[off[0]:off[-1]] = y_e @ coef_t + probe_mean
        if acc is not None:
            y_g = simulate_latent(hidden, off, gen_cols, "generic", seed, b, threads)
            acc.add(np.concatenate([y_e, y_g], axis=1), off)
    return probe_act, acc
