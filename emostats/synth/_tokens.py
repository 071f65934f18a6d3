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


def run_ar(hidden, offsets, cols, z, out, col0, threads=None):
    """Write the latent series ``cols`` of one block into ``out[:, col0:col0 + len(cols)]``."""
    cs, cf, cw = hidden.c_parts(cols)
    local = (offsets - offsets[0]).astype(np.int64)
    nb = min(n_threads(threads), max(1, local.size - 1))
    _k.ar_mix(z, local, cs, cf, cw, hidden.phi_slow, hidden.phi_fast, nb, out, col0)


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
        """Add a block ``y`` (n, m) whose segments have CSR ``offsets`` (block-local after shifting).

        Over valid pairs, x = all tokens but the last L of each segment and
        y = all tokens but the first L, so their Gram matrices are the full
        Gram minus that of the (few) excluded tokens; the cross product is
        ``y[:-L]' y[L:]`` minus the pairs that straddle a segment boundary.
        Gathered rows go into one reused buffer (no per-block allocations).
        """
        nb, m = y.shape
        self.n += nb
        s_all = y.sum(0)
        g_all = np.dot(y.T, y)
        self.s += s_all
        self.ss += g_all
        lengths = np.diff(offsets)
        starts = offsets[:-1] - offsets[0]
        pos = np.arange(nb) - np.repeat(starts, lengths)
        seg_len = np.repeat(lengths, lengths)
        for i, L in enumerate(self.lags):
            n_pairs = int(np.maximum(lengths - L, 0).sum())
            if n_pairs == 0:
                continue
            self.ln[i] += n_pairs
            tail = np.flatnonzero(pos >= seg_len - L)
            head = np.flatnonzero(pos < L)
            yt = self._gather(y, tail, 0)
            self.sx[i] += s_all - yt.sum(0)
            self.sxx[i] += g_all - np.dot(yt.T, yt)
            yh = self._gather(y, head, 0)
            self.sy[i] += s_all - yh.sum(0)
            self.syy[i] += g_all - np.dot(yh.T, yh)
            cross = tail[tail < nb - L]
            a = self._gather(y, cross, 0)
            b = self._gather(y, cross + L, 1)
            self.sxy[i] += np.dot(y[:nb - L].T, y[L:]) - np.dot(a.T, b)

    def _gather(self, y, rows, slot):
        """``y[rows]`` written into a reused buffer."""
        size = rows.size * y.shape[1]
        buf = getattr(self, "_buf", None)
        if buf is None or buf.shape[1] < size:
            self._buf = buf = np.empty((2, max(size, 1 << 20)))
        out = buf[slot, :size].reshape(rows.size, y.shape[1])
        np.take(y, rows, axis=0, out=out)
        return out

    def latent(self):
        """Centred latent moments (divided by n, i.e. ddof=0) as a dict."""
        mean = self.s / self.n
        cov = self.ss / self.n - np.outer(mean, mean)
        out = {"n": self.n, "mean": mean, "cov": 0.5 * (cov + cov.T), "lag_n": self.ln.copy(), "lags": self.lags}
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


def to_hidden(hidden, lat, threads=None):
    """Hidden-space moments from latent moments (see the synth module docstring).

    ``h_t = mean + basis @ y_t + e_t`` with ``e_t`` isotropic white noise of
    variance ``sigma2`` in the orthogonal complement of ``basis``: the signal
    part is exact (sample moments of the simulated ``y``); the noise part enters
    with its expectation (``sigma2 (I - basis basis')`` in ``cov``, ``lag_cxx``
    and ``lag_cyy``; ``sigma2 rho_noise(L) (I - basis basis')`` in ``lag_cxy``; zero in the means).
    """
    Q = hidden.basis
    s2 = hidden.sigma2
    H, m = Q.shape

    def product(a, noise, out, symmetric=True):
        b = a - noise * np.eye(m) if noise else a
        if symmetric:
            # Q b Q' = B+ B+' - B- B-' from the eigenvectors of the small b: two syrk products,
            # half the flops of a general product and exactly symmetric
            w, u = np.linalg.eigh(b)
            basis = Q @ u
            pos = w > 0
            bp = basis[:, pos] * np.sqrt(w[pos])
            np.dot(bp, bp.T, out=out)
            if not pos.all():
                bn = basis[:, ~pos] * np.sqrt(-w[~pos])
                out -= np.dot(bn, bn.T)
        else:
            np.matmul(Q @ b, Q.T, out=out)
        if noise:
            out[np.diag_indices_from(out)] += noise
        return out

    out = {"n": lat["n"], "lag_n": lat["lag_n"], "mean": hidden.mean + Q @ lat["mean"]}
    out["cov"] = product(lat["cov"], s2, np.empty((H, H)))
    out["lag_mean_x"] = hidden.mean[None, :] + lat["lag_mean_x"] @ Q.T
    out["lag_mean_y"] = hidden.mean[None, :] + lat["lag_mean_y"] @ Q.T
    nl = lat["lag_n"].size
    lags = lat["lags"]
    for key in ("lag_cxx", "lag_cyy", "lag_cxy"):
        arr = np.empty((nl, H, H))
        for i in range(nl):
            noise = s2 * hidden.noise_rho(lags[i]) if key == "lag_cxy" else s2
            product(lat[key][i], noise, arr[i], symmetric=key != "lag_cxy")
        out[key] = arr
    return out


def random_design(hidden, n_directions, seed):
    """Unit directions uniform on the hidden sphere and how to project the latent series onto them.

    Returns (vectors (D, hidden), proj (m, D), offset (D,), noise_factor (D, D)):
    ``v . h_t = y_t @ proj + offset + xi_t @ noise_factor.T`` where ``xi_t`` are D
    independent unit-variance series with the noise dynamics, and
    ``noise_factor`` is the Cholesky factor of ``sigma2 W'W``, ``W = (I - QQ') V'``.
    """
    rng = rng_for(seed, "random")
    v = rng.standard_normal((n_directions, hidden.hidden))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    proj = hidden.basis.T @ v.T
    w = v.T - hidden.basis @ proj
    gram = hidden.sigma2 * (w.T @ w)
    return v, proj, v @ hidden.mean, np.linalg.cholesky(gram)


def simulate_tokens(hidden, offsets, seed, lags, need_generic, dtype=np.float32, threads=None, random=None,
                    part="emotion"):
    """Probe activations (n_tokens, n_probes) and latent moment sums.

    The innovations of the next blocks are drawn in two worker threads (NumPy
    releases the GIL while filling) while the current block is processed.
    ``part`` names the random stream of the emotion latents (``"emotion"`` for
    ``/tokens``, ``"steer_latent"`` for ``/steering``).

    Returns
    -------
    probe_act : array (n_tokens, n_probes) of ``dtype``
    moments : LatentMoments or None (None when ``need_generic`` is false)
    random_act : array (n_tokens, n_directions) or None (from :func:`random_design` output ``random``)
    """
    from concurrent.futures import ThreadPoolExecutor

    p = hidden.n_probes
    n = int(offsets[-1])
    probe_act = np.empty((n, p), dtype=dtype)
    coef_t = np.ascontiguousarray(hidden.coef.T)
    probe_mean = hidden.vectors @ hidden.mean
    acc = LatentMoments(hidden.m, lags) if need_generic else None
    emo_cols = np.arange(p)
    gen_cols = np.arange(p, hidden.m)
    m = hidden.m if need_generic else p
    plan = blocks(offsets)
    sizes = [int(offsets[s1] - offsets[s0]) for s0, s1 in plan]
    n_max = max(sizes)
    random_act = None
    n_dir = 0
    if random is not None:
        _, r_proj, r_offset, r_noise = random
        n_dir = r_offset.size
        random_act = np.empty((n, n_dir), dtype=dtype)
        r_noise_t = np.ascontiguousarray(r_noise.T)
        w_slow, w_fast = hidden.noise_w_slow, hidden.noise_w_fast
        noise_c = [np.full(n_dir, np.sqrt(w)) for w in (w_slow, w_fast, 1.0 - w_slow - w_fast)]
        xi_buf = np.empty(n_max * n_dir)
    # reused buffers: large per-block allocations would cost a page fault per 4 kB each time
    n_ring = 3
    z_ring = [np.empty(3 * n_max * (m + n_dir), dtype=np.float32) for _ in range(min(n_ring, len(plan)))]
    y_buf = np.empty(n_max * m)
    act_buf = np.empty(n_max * p)

    def normals(b):
        nb = sizes[b]
        flat = z_ring[b % n_ring]
        parts = [(part, p), ("generic", m - p if need_generic else 0), ("random", n_dir)]
        out, used = [], 0
        for name, width in parts:
            z = flat[used:used + 3 * nb * width].reshape(3, nb, width)
            used += 3 * nb * width
            if width:
                rng_for(seed, name, b).standard_normal(out=z, dtype=np.float32)
            out.append(z)
        return out

    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = [pool.submit(normals, b) for b in range(min(2, len(plan)))]
        for b, (s0, s1) in enumerate(plan):
            z_e, z_g, z_r = pending.pop(0).result()
            if b + 2 < len(plan):  # its ring slot held block b - 1, which is done
                pending.append(pool.submit(normals, b + 2))
            off = offsets[s0:s1 + 1]
            nb = sizes[b]
            y = y_buf[:nb * m].reshape(nb, m)
            run_ar(hidden, off, emo_cols, z_e, y, 0, threads)
            if need_generic:
                run_ar(hidden, off, gen_cols, z_g, y, p, threads)
            act = act_buf[:nb * p].reshape(nb, p)
            np.matmul(y[:, :p], coef_t, out=act)
            np.add(act, probe_mean, out=probe_act[off[0]:off[-1]], casting="unsafe")
            if acc is not None:
                acc.add(y, off)
            if random is not None:
                xi = xi_buf[:nb * n_dir].reshape(nb, n_dir)
                local = (off - off[0]).astype(np.int64)
                _k.ar_mix(z_r, local, *noise_c, hidden.phi_slow, hidden.phi_fast,
                          min(n_threads(threads), local.size - 1), xi, 0)
                np.add(y @ r_proj + r_offset, xi @ r_noise_t, out=random_act[off[0]:off[-1]], casting="unsafe")
    return probe_act, acc, random_act
