"""The headline numbers of the summary as functions of conversation weights (NumPy level).

:class:`Headlines` holds per-conversation sufficient statistics
(:mod:`emostats.inference.convstats`) and evaluates every headline number for
many weight vectors at once: all ones gives the study's estimate, a
multinomial row a bootstrap replicate, a leave-one-out row a jackknife
replicate. Each replicate redoes the whole chain: pooled r of the probes,
the probes' and candidates' variance explained, the variance matching (the
``n`` nearest candidates are re-chosen per replicate), the PCA of the probe
activations, the PC residuals and their rank Spearman, the SAE firing
persistence and its matched residuals.

Numbers whose null population comes from ``/moments`` (random directions,
candidates) are *fully* resampled only when the study holds
``/conv_moments``; otherwise the null population's r and variance explained
are held at their pooled values (``scope = "probe side only"``), which is
said in the results. See ``docs/inference.md``.
"""

import numpy as np

from .._nan import nanmean
from ..errors import EmostatsError
from ._merge import PackedMerge, merge_matrices, merge_weighted, merge_within, r_from, within_r
from ._rank import _STAT, DEGENERATE_RTOL, _nearest, rowwise_spearman

__all__ = ["Headlines", "STATISTICS", "rowwise_spearman"]

#: statistic -> (long name, null value of the conversation-level test or None)
STATISTICS = {
    "probe_persistence": ("mean lag r of the probes (pooled over pairs)", None),
    "probe_minus_random": ("mean lag r of the probes minus that of the uniform random directions", 0.0),
    # no test against 0: centring each turn on its own means biases the within-turn r down on short turns (-0.03
    # expected at 100 tokens, lag 10, phi^L = 0.03), so 0 is not its null; within-turn persistence beyond that of
    # the null directions is residual_within_mean's test
    "probe_within": ("mean within-turn lag r of the probes (each turn centred on its own pair means)", None),
    "probe_between_share": ("share of the probes' mean pooled r that is between-turn level", None),
    "random_persistence": ("mean lag r of uniform random directions", None),
    "random_within": ("mean within-turn lag r of uniform random directions", None),
    "residual_mean": ("mean residual persistence of the probes over variance-matched directions", 0.0),
    "residual_positive": ("probes with a positive residual", None),
    "residual_within_mean": ("mean within-turn residual of the probes over variance-matched directions", 0.0),
    # no jackknife test: on the null world it rejects 10.5% at 5% (a rank statistic over few PCs is too
    # non-smooth for the jackknife); its null is the placebo distribution (placebo_p)
    "pc_spearman": ("Spearman of PC rank with PC residual persistence", None),
    "sae_spearman": ("Spearman of SAE subspace fraction with residual firing persistence", 0.0),
    "self_rating_residual": ("Spearman of self rating with residual firing persistence", 0.0),
    "text_rating_residual": ("Spearman of text rating with residual firing persistence", 0.0),
}

class Headlines:
    """Headline numbers as functions of conversation weights.

    Parameters
    ----------
    probes : ProbeStats
        With matrices (for the PCA) unless ``pcs=False``.
    hidden : HiddenStats, optional
        ``/conv_moments``: the null populations are resampled too.
    fixed_candidates : (r, variance_explained), optional
        Without ``hidden``: the candidates' pooled values, held fixed.
    fixed_random : array, optional
        Without ``hidden``: the uniform random directions' pooled r.
    probe_ve : array (P,), optional
        Pooled variance explained of the probes (``/probes``).
    probe_vectors : array (P, hidden), optional
        With ``moments_cov``: the PC directions as :func:`emostats.emotion_pcs` builds them.
    moments_cov : array (hidden, hidden), optional
        ``/moments`` cov (pooled), for the probes' scale and the pooled trace.
    firing : FiringStats, optional
    sae : dict, optional
        ``variance_explained``, ``subspace_fraction``, ``self_rating``, ``text_rating``
        arrays over ``firing.features``.
    """

    def __init__(self, probes, hidden=None, *, fixed_candidates=None, fixed_random=None, probe_ve=None,
                 probe_vectors=None, moments_cov=None, firing=None, sae=None, n_match=20, match_stat="median",
                 rating_stat="mean", threads=None):
        self.ps = probes
        self.hs = hidden
        self.n_match = int(n_match)
        self.stat = _STAT[match_stat]
        self.rating_stat = _STAT[rating_stat]
        self.threads = threads
        self.fixed_candidates = fixed_candidates
        self.fixed_random = None if fixed_random is None else np.asarray(fixed_random, dtype=np.float64)
        self.firing = firing
        self.sae = sae
        self.missing = {}
        self._packed = None
        full = np.ones((1, probes.n_groups))
        self._pool_var = None
        if probes.tok_n is not None:
            _, _, _, C = merge_matrices(probes.tok_n, probes.tok_mean, probes.tok_mean, probes.tok_c, full)
            self._pool_cov = C[0] / probes.tok_n.sum()
            self._pool_var = np.diag(self._pool_cov).copy()
        self.probe_ve = None if probe_ve is None else np.asarray(probe_ve, dtype=np.float64)
        self._pool_trace = float(np.trace(moments_cov)) if moments_cov is not None else None
        self.pc_vectors = None
        self._pc_norm2 = None
        if probe_vectors is not None and moments_cov is not None and self._pool_var is not None:
            V = np.asarray(probe_vectors, dtype=np.float64)
            vsv = ((V @ np.asarray(moments_cov, dtype=np.float64)) * V).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                self.scale = np.sqrt(self._pool_var / vsv)  # probe_act_i = scale_i * v_i . h
            self.pc_vectors = V
            self._pc_norm2 = V @ V.T
            if self.probe_ve is None:
                self.probe_ve = vsv / ((V * V).sum(1) * self._pool_trace)
        self._sae_setup()

    # ------------------------------------------------------------------ pieces

    def _trace_ratio(self, W):
        """trace of the pooled hidden cov / trace of each replicate's (1 without /conv_moments)."""
        if self.hs is None:
            return np.ones(W.shape[0])
        return self._trace(np.ones((1, W.shape[1])))[0] / self._trace(W)

    def _trace(self, W):
        hs = self.hs
        n = hs.var_n
        tot = n.sum()
        ref = (n[:, None] * hs.trace_mean).sum(0) / tot
        d = hs.trace_mean - ref
        N = W @ n
        A = W @ (n[:, None] * d)
        S = W @ hs.trace_m2 + W @ (n * (d * d).sum(1)) - (A * A).sum(1) / N
        return S / N

    def _candidates(self, W):
        """(r (R, C), ve (R, C), within r (R, C) or None) of the candidates per replicate."""
        if self.hs is not None:
            sel = self.hs.select("candidate")
            r = r_from(merge_weighted(self.hs.moments[..., sel], W))[:, 0]
            wr = within_r(merge_within(self.hs.within[..., sel], W))[:, 0]
            N = W @ self.hs.var_n
            var = self._merged_var(W, sel) / N[:, None]
            ve = var / self._trace(W)[:, None]
            return r, ve, wr
        if self.fixed_candidates is None:
            return None, None, None
        r, ve = (np.asarray(a, dtype=np.float64) for a in self.fixed_candidates)
        R = W.shape[0]
        return np.broadcast_to(r, (R, r.size)), np.broadcast_to(ve, (R, ve.size)), None

    def _merged_var(self, W, sel):
        hs = self.hs
        n = hs.var_n
        mean = hs.var_mean[:, sel]
        tot = n.sum()
        ref = (n[:, None] * mean).sum(0) / tot
        d = mean - ref
        N = W @ n
        A = W @ (n[:, None] * d)
        return W @ hs.var_m2[:, sel] + W @ (n[:, None] * d * d) - A * A / N[:, None]

    def _random(self, W):
        if self.hs is not None:
            sel = self.hs.select("uniform")
            r = r_from(merge_weighted(self.hs.moments[..., sel], W))[:, 0]
            wr = within_r(merge_within(self.hs.within[..., sel], W))[:, 0]
            return nanmean(r, axis=1), nanmean(wr, axis=1)
        # without /conv_moments the random directions cannot be resampled: no interval (a fixed value
        # would give a zero-width one)
        return np.full(W.shape[0], np.nan), np.full(W.shape[0], np.nan)

    def _match(self, values, ve, cand_r, cand_ve):
        """Residual (R, T) of each target over its matched candidates, re-matched per replicate."""
        R, T = values.shape
        out = np.full((R, T), np.nan)
        for i in range(R):
            ok = np.isfinite(ve[i])
            cv = np.where(np.isfinite(cand_r[i]), cand_ve[i], np.nan)
            if not ok.any() or np.isfinite(cv).sum() < self.n_match:
                continue
            idx = _nearest(np.where(ok, ve[i], np.nan), cv, self.n_match, self.threads)
            base = self.stat(cand_r[i][np.maximum(idx, 0)], axis=1)
            out[i] = np.where(ok & (idx[:, 0] >= 0), values[i] - base, np.nan)
        return out

    def _match_within(self, values, ve, cand_r, cand_ve, cand_wr):
        """Like :meth:`_match` on within-turn r: matched on variance explained, baseline = their within r."""
        R, T = values.shape
        out = np.full((R, T), np.nan)
        for i in range(R):
            ok = np.isfinite(ve[i])
            cv = np.where(np.isfinite(cand_wr[i]), cand_ve[i], np.nan)
            if not ok.any() or np.isfinite(cv).sum() < self.n_match:
                continue
            idx = _nearest(np.where(ok, ve[i], np.nan), cv, self.n_match, self.threads)
            base = self.stat(cand_wr[i][np.maximum(idx, 0)], axis=1)
            out[i] = np.where(ok & (idx[:, 0] >= 0), values[i] - base, np.nan)
        return out

    def _pcs(self, W, ratio, cand_r, cand_ve):
        """PC rank Spearman per replicate (NaN without matrices, vectors, /moments or candidates).

        The block's four probe matrices come from one product (:class:`PackedMerge`), its PCAs from one
        batched eigendecomposition, and the PCs' quadratic forms from one batched product.
        """
        R = W.shape[0]
        if self.ps.tok_n is None or self.pc_vectors is None or self._pc_norm2 is None or cand_r is None:
            return np.full(R, np.nan)
        r_all, ve_all = self.pc_values(W, ratio)
        res = self._match(r_all, ve_all, cand_r, cand_ve)
        return rowwise_spearman(res, np.arange(1, r_all.shape[1] + 1, dtype=np.float64))

    def pc_values(self, W, ratio):
        """Lag r and variance explained (R, P) of each replicate's PCs, by decreasing eigenvalue (NaN: degenerate)."""
        ps = self.ps
        R = W.shape[0]
        if self._packed is None:
            self._packed = PackedMerge([(ps.tok_n, ps.tok_mean, ps.tok_mean, ps.tok_c),
                                        (ps.pair_n, ps.pair_mx, ps.pair_mx, ps.pair_cxx),
                                        (ps.pair_n, ps.pair_my, ps.pair_my, ps.pair_cyy),
                                        (ps.pair_n, ps.pair_mx, ps.pair_my, ps.pair_cxy)])
        N, (C, Cxx, Cyy, Cxy) = self._packed.merge(W)
        C /= N[:, 0, None, None]
        P = C.shape[1]
        with np.errstate(divide="ignore"):  # a constant probe has scale 0: its PCs are NaN, not an error
            inv_s = 1.0 / self.scale
        r_all = np.full((R, P), np.nan)
        ve_all = np.full((R, P), np.nan)
        ok = np.flatnonzero(np.isfinite(C).all(axis=(1, 2)))  # a probe without valid tokens: no PCs
        if ok.size:
            w, L = np.linalg.eigh(C[ok])
            order = np.argsort(-w, axis=1, kind="stable")
            w = np.take_along_axis(w, order, 1)
            L = np.take_along_axis(L, order[:, None, :], 2)
            deg = w <= DEGENERATE_RTOL * np.maximum(w.max(axis=1, keepdims=True), 0.0)
            # u' Sigma u = L' D^-1 cov(probe_act) D^-1 L (probe_act_i = s_i p_i . h); |u_j|^2 = L_j' (V V') L_j
            # with u_j = sum_i L_ij p_i, emotion_pcs's PC direction
            with np.errstate(invalid="ignore", over="ignore"):  # inf scale (constant probe): NaN, dropped below
                Cs = C[ok] * inv_s[None, :, None] * inv_s[None, None, :]
                G = np.broadcast_to(self._pc_norm2, Cs.shape)
                A = np.concatenate([Cxy[ok], Cxx[ok], Cyy[ok], Cs, G], axis=1)  # (n, 5 P, P)
                q = np.einsum("jkim,jim->jkm", np.matmul(A, L).reshape(ok.size, 5, P, P), L)
            with np.errstate(invalid="ignore", divide="ignore"):
                den = np.sqrt(q[:, 1]) * np.sqrt(q[:, 2])
                r_all[ok] = np.where(deg | ~(den > 0), np.nan, q[:, 0] / den)
                ve_all[ok] = np.where(deg, np.nan, q[:, 3] / (q[:, 4] * self._pool_trace) * ratio[ok, None])
        return r_all, ve_all

    def _sae_setup(self):
        self.sae_matched = None
        fs, sae = self.firing, self.sae
        if fs is None or sae is None:
            return
        ve = np.asarray(sae["variance_explained"], dtype=np.float64)
        full = self._firing(np.ones((1, fs.n_valid.size)))[0]
        ok = np.isfinite(full) & np.isfinite(ve)
        if ok.sum() <= self.n_match:
            return
        self.sae_matched = self._self_match(ve, ok)

    def _self_match(self, ve, ok):
        try:
            from ..nullmodels import nearest_by_variance
        except ImportError:
            from ..nullmodels.matching import nearest_by_variance
        return nearest_by_variance(np.where(ok, ve, np.nan), None, n=self.n_match, valid=ok, threads=self.threads)

    def _firing(self, W):
        fs = self.firing
        both, nt, ntl = W @ fs.n_both, W @ fs.n_t, W @ fs.n_tl
        nv = (W @ fs.n_valid)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            p_fire = np.where(nt > 0, both / nt, np.nan)
            p_not = np.where(nv - nt > 0, (ntl - both) / (nv - nt), np.nan)
        return p_fire - p_not

    def _sae(self, W):
        R = W.shape[0]
        out = {k: np.full(R, np.nan) for k in ("sae_spearman", "self_rating_residual", "text_rating_residual")}
        if self.sae_matched is None:
            return out
        pers = self._firing(W)
        idx = self.sae_matched
        valid = idx[:, 0] >= 0
        safe = np.maximum(idx, 0)
        matched = pers[:, safe]  # (R, F, n)
        res = np.where(valid, pers - self.stat(matched, axis=2), np.nan)
        out["sae_spearman"] = rowwise_spearman(res, self.sae["subspace_fraction"])
        res_r = np.where(valid, pers - self.rating_stat(matched, axis=2), np.nan)
        for key, name in (("self_rating_residual", "self_rating"), ("text_rating_residual", "text_rating")):
            rating = self.sae.get(name)
            if rating is not None and np.isfinite(rating).sum() >= 3:
                out[key] = rowwise_spearman(res_r, rating)
        return out

    def _probe_ve(self, W, ratio):
        """Variance explained of each probe per replicate (R, P), or None."""
        ps = self.ps
        if self.probe_ve is not None and self._pool_var is not None:
            N = W @ ps.tok_n
            _, _, m2 = _diag_var(ps, W)
            with np.errstate(invalid="ignore", divide="ignore"):
                return self.probe_ve[None, :] * (m2 / N[:, None]) / self._pool_var[None, :] * ratio[:, None]
        if self.probe_ve is not None:
            return np.broadcast_to(self.probe_ve, (W.shape[0], self.probe_ve.size))
        return None

    def probe_residuals(self, W):
        """Per-probe residuals (R, P) over variance-matched candidates, per replicate (NaN if unavailable)."""
        W = np.atleast_2d(np.asarray(W, dtype=np.float64))
        r = r_from(merge_weighted(self.ps.moments, W))[:, 0]
        cand_r, cand_ve, _ = self._candidates(W)
        ve = self._probe_ve(W, self._trace_ratio(W))
        if ve is None or cand_r is None:
            return np.full(r.shape, np.nan)
        return self._match(r, ve, cand_r, cand_ve)

    # ------------------------------------------------------------------ all

    def evaluate(self, W, block=64):
        """Every statistic of :data:`STATISTICS` for each row of ``W`` (R, G): dict name -> (R,)."""
        W = np.atleast_2d(np.asarray(W, dtype=np.float64))
        if W.shape[1] != self.ps.n_groups:
            raise EmostatsError(f"weights for {W.shape[1]} conversations, the study has {self.ps.n_groups}")
        parts = [self._evaluate(W[i:i + block]) for i in range(0, W.shape[0], block)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _evaluate(self, W):
        ps = self.ps
        R = W.shape[0]
        M = merge_weighted(ps.moments, W)
        r = r_from(M)[:, 0]
        Wsum = merge_within(ps.within, W)
        wr = within_r(Wsum)[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            within_part = Wsum[:, 3, 0] / (np.sqrt(M[:, 3, 0]) * np.sqrt(M[:, 4, 0]))
        out = {}
        out["probe_persistence"] = nanmean(r, axis=1)
        out["probe_within"] = nanmean(wr, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["probe_between_share"] = 1.0 - nanmean(within_part, axis=1) / out["probe_persistence"]
        rand_r, rand_w = self._random(W)
        out["random_persistence"] = rand_r
        out["random_within"] = rand_w
        out["probe_minus_random"] = out["probe_persistence"] - rand_r
        ratio = self._trace_ratio(W)
        cand_r, cand_ve, cand_wr = self._candidates(W)
        ve = self._probe_ve(W, ratio)
        if ve is not None and cand_r is not None:
            res = self._match(r, ve, cand_r, cand_ve)
            out["residual_mean"] = nanmean(res, axis=1)
            out["residual_positive"] = (res > 0).sum(axis=1).astype(np.float64)
            if cand_wr is not None:
                out["residual_within_mean"] = nanmean(self._match_within(wr, ve, cand_r, cand_ve, cand_wr), axis=1)
        for key in ("residual_mean", "residual_positive", "residual_within_mean"):
            out.setdefault(key, np.full(R, np.nan))
        out["pc_spearman"] = self._pcs(W, ratio, cand_r, cand_ve)
        out.update(self._sae(W))
        return out


def _diag_var(ps, W):
    """Merged (N, mean, M2) of each probe's activation over all tokens, per replicate."""
    from ._merge import merge_variances

    m2 = np.einsum("gpp->gp", ps.tok_c)
    return merge_variances(ps.tok_n, ps.tok_mean, m2, W)
