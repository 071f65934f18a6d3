"""Placebo (negative-control) nulls, computed exactly from ``/moments``.

Replace the emotion probes by random probe sets and run the same chain; the
study's number is then read against the distribution of the placebo numbers
(its percentile and a two-sided placebo p). Nothing re-reads tokens: a
placebo probe set ``V`` (P x hidden) has probe-activation covariance
``V Sigma V'`` and lag co-moments ``V Cxx V'``, ``V Cyy V'``, ``V Cxy V'``
from ``/moments``, which give its PCA, every PC's persistence and variance
explained, exactly as :func:`emostats.emotion_pcs` computes them from
activations (probe activations are projections).

Placebo probe sets have the probes' count and norms, and rows drawn

- ``isotropic``: uniform on the sphere of the hidden space;
- ``shaped``: ``Sigma^(1/2) g`` normalised (g standard normal): shaped like
  the activation covariance, so placebo probes explain as much variance as
  typical activation directions do;
- ``rotated``: the probe set itself under a uniformly random rotation of the
  hidden space (``V R``, R Haar on O(hidden)): every norm and every angle
  between probes is kept, only the set's orientation to the activations
  changes. Emotion probes share directions, so the mean of their r or
  residuals varies like that of a few directions, not of P independent
  ones; the isotropic and shaped sets miss that and their placebo p of
  those means over-rejects on the null world (about 30% at 5%, see
  ``docs/inference.md``), the rotated set keeps it.

For the SAE subspace-fraction test the probe span is replaced by random
spans of the same dimension (uniform on the Grassmannian), and the
Spearman of each feature's subspace fraction with its (fixed) residual
persistence, and with the ratings, is recomputed per draw.
"""

import numpy as np
import xarray as xr

from .. import defaults
from .._nan import nanmean
from ..errors import EmostatsError, MissingGroupError
from ._merge import single_threaded_blas
from ._rank import _STAT, DEGENERATE_RTOL, _nearest, rowwise_spearman
from ._resample import placebo_rank

__all__ = ["placebo_nulls", "placebo_probe_sets", "set_statistics", "KINDS"]

#: kinds of placebo probe sets (the summary reports isotropic for the PC-rank row, rotated for means)
KINDS = ("isotropic", "shaped", "rotated")
#: memory for one batch of placebo sets' lag products (sets per batch follow from it; the draws do not)
BLOCK_BYTES = 256e6


def _lag_index(mom, lag):
    lags = np.asarray(mom["lag"].values) if "lag" in mom.coords else np.array([])
    if int(lag) not in lags.tolist():
        raise MissingGroupError(f"/moments: lag {lag} missing (lags {lags.tolist()}); placebo persistence needs it")
    return int(np.flatnonzero(lags == int(lag))[0])


def _frame(vectors_e):
    """(C, r): the probe set in the eigenbasis as ``C F'`` with F an orthonormal frame of its span (rank r)."""
    with single_threaded_blas():
        u, s, vt = np.linalg.svd(np.asarray(vectors_e, dtype=np.float64), full_matrices=False)
    r = int((s > s.max() * 1e-12).sum()) if s.size else 0
    return u[:, :r] * s[:r], r


def _draw_sets(kind, n_draws, norms, w, rng, frame=None):
    """Placebo sets in the eigenbasis of Sigma (n_draws, P, H).

    The uniform distribution on the sphere is rotation invariant, so drawing
    isotropic rows in the eigenbasis gives the same distribution; shaped rows
    ``Sigma^(1/2) g`` are ``sqrt(w) * g`` there. A rotated set is ``C F'``
    with ``F`` a uniformly random orthonormal r-frame (Q of the QR of a
    Gaussian matrix, signs fixed): ``V R`` for a Haar rotation R has that law,
    at H r^2 per draw instead of H^3. Every kind draws its Gaussians in one
    call per block, the same stream as one call per draw.
    """
    if kind == "rotated":
        C, r = frame
        g = rng.standard_normal((n_draws, w.size, r))
        with single_threaded_blas():  # a threaded QR of a tall matrix is ~60x slower on shared cores
            q, t = np.linalg.qr(g)
        q *= np.sign(np.diagonal(t, axis1=1, axis2=2))[:, None, :]
        return C @ q.transpose(0, 2, 1)
    g = rng.standard_normal((n_draws, norms.size, w.size))
    if kind == "shaped":
        g *= np.sqrt(np.clip(w, 0, None))
    g /= np.linalg.norm(g, axis=2, keepdims=True)
    return g * norms[None, :, None]


class _Prepared:
    """``/moments`` at one lag in the eigenbasis of Sigma.

    ``w`` (eigenvalues), ``U`` (eigenvectors), ``stack`` the three lag
    matrices ``U' C U`` side by side (hidden, 3 hidden) in ``dtype``, and the
    trace. This is the setup of the placebo step, done once for every kind
    and draw:

    - the eigendecomposition, from :func:`emostats.nullmodels.leading_eigenspace`:
      stored in ``/moments``, or cached (in the process and on disk) from an
      earlier call on the same covariance, else computed once and cached;
    - three basis changes: ``C U`` for the three matrices in one product
      (3 hidden^3), then ``U' (C U)`` by blocks of its upper triangle
      (hidden^3 each, half of a full product). Only quadratic forms of the lag
      matrices are used, so ``Cxy`` enters as its symmetric part and every
      matrix is symmetric. In ``dtype`` (float32 by default: half the time of
      float64).
    """

    def __init__(self, mom, lag, dtype=np.float32, panel=1024):
        from ..nullmodels import leading_eigenspace

        li = _lag_index(mom, lag)
        self.dtype = np.dtype(dtype)
        H = mom.sizes["hidden"]
        self.trace = float(np.trace(np.asarray(mom["cov"].values, dtype=np.float64)))
        self.w, self.U = leading_eigenspace(mom, H)
        U = self.U.astype(self.dtype, copy=False)
        mats = []
        for name in ("lag_cxx", "lag_cyy", "lag_cxy"):
            M = np.asarray(mom[name].values[li], dtype=self.dtype)
            mats.append((M + M.T) / 2 if name == "lag_cxy" else M)
        X = (np.concatenate(mats, axis=0) @ U).reshape(3, H, H)  # C_k U, one product
        del mats
        self.stack = np.empty((H, 3 * H), dtype=self.dtype)
        for k in range(3):
            E = self.stack[:, k * H:(k + 1) * H]
            for c0 in range(0, H, panel):  # the upper triangle, a panel of columns at a time, mirrored
                c1 = min(H, c0 + panel)
                E[:c1, c0:c1] = U[:, :c1].T @ X[k][:, c0:c1]
                E[c0:c1, :c0] = E[:c0, c0:c1].T

    def block(self, n_probes, budget=BLOCK_BYTES):
        """Sets per batch: their lag products (P x 3 hidden each) within ``budget`` bytes."""
        return max(1, int(budget // (n_probes * self.stack.shape[1] * self.dtype.itemsize)))


def set_statistics(prep, V, candidates, n_match=defaults.N_MATCHED, match_stat=defaults.MATCH_STAT):
    """Headline numbers of probe sets ``V`` (n_sets, P, hidden) *in the eigenbasis* of ``prep``: dict -> (n_sets,).

    For a set with vectors ``v_i`` (rows) the probe activations are ``v_i . h``:
    mean lag r, mean residual and count positive over the variance-matched
    candidates, and the Spearman of PC rank with PC residual, each as
    :func:`emostats.lag_persistence`, :func:`emostats.variance_matched` and
    :func:`emostats.emotion_pcs` give them from those activations.

    Every set of the batch at once: one product of all their vectors with the
    stacked lag matrices (n_sets P x hidden by hidden x 3 hidden), one batched
    product per set for the P x P matrices ``V M V'`` (in ``prep.dtype``),
    ``V Sigma V'`` and ``V V'`` (float64), batched eigendecompositions and
    one variance matching of all targets (float64).
    """
    V = np.asarray(V, dtype=np.float64)
    nb, P, H = V.shape
    dt = prep.dtype
    norms2 = (V * V).sum(axis=2)
    cr, cve = (np.asarray(a, dtype=np.float64) for a in candidates)
    stat = _STAT[match_stat]
    Vd = V.astype(dt)
    Vt = Vd.transpose(0, 2, 1)
    B = (Vd.reshape(nb * P, H) @ prep.stack).reshape(nb, 3 * P, H)  # row 3 i + k: v_i' M_k
    with single_threaded_blas():
        # A[j, i, k, :] = v_i' M_k V_j'; S = V Sigma V' (Sigma is diagonal here) and Gm = V V' in one product
        A = np.matmul(B, Vt).reshape(nb, P, 3, P).astype(np.float64)
        del B
        # float64: the small eigenvalues of V Sigma V' (probes that share directions) need its digits
        SG = np.matmul(np.concatenate([V * prep.w, V], axis=1), V.transpose(0, 2, 1))
        S, Gm = (SG[:, :P] + SG[:, :P].transpose(0, 2, 1)) / 2, SG[:, P:]
        dS = np.diagonal(S, axis1=1, axis2=2)
        dx, dy, dxy = (np.diagonal(A[:, :, k], axis1=1, axis2=2) for k in range(3))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = dxy / (np.sqrt(dx) * np.sqrt(dy))
        ve = dS / (norms2 * prep.trace)
        res = _matched(r, ve, cr, cve, n_match, stat)
        ev, L = np.linalg.eigh(S)
        order = np.argsort(-ev, axis=1, kind="stable")
        ev = np.take_along_axis(ev, order, 1)
        L = np.take_along_axis(L, order[:, None, :], 2)
        deg = ev <= DEGENERATE_RTOL * np.maximum(ev.max(axis=1, keepdims=True), 0.0)
        # diag(L' A_k L) for the three lag matrices and V V' (|u_j|^2 of the PC direction u_j = sum_i L_ij v_i)
        q = np.einsum("jikm,jim->jkm", np.matmul(A.reshape(nb, 3 * P, P), L).reshape(nb, P, 3, P), L)
        qg = np.einsum("jim,jim->jm", Gm @ L, L)
    with np.errstate(invalid="ignore", divide="ignore"):
        pr = q[:, 2] / (np.sqrt(q[:, 0]) * np.sqrt(q[:, 1]))
        pve = np.where(deg, np.nan, ev / (qg * prep.trace))
    pr = np.where(deg, np.nan, pr)
    pres = _matched(pr, pve, cr, cve, n_match, stat)
    rank = np.arange(1, P + 1, dtype=np.float64)
    return {"probe_persistence": nanmean(r, axis=1), "residual_mean": nanmean(res, axis=1),
            "residual_positive": (res > 0).sum(axis=1).astype(np.float64),
            "pc_spearman": rowwise_spearman(pres, rank), "mean_variance_explained": ve.mean(axis=1)}


def _matched(values, ve, cr, cve, n_match, stat):
    """Residual (n_sets, T) of each target over its ``n_match`` nearest candidates (one matching of all)."""
    idx = _nearest(ve.ravel(), cve, n_match).reshape(ve.shape + (n_match,))
    return np.where(idx[..., 0] >= 0, values - stat(cr[np.maximum(idx, 0)], axis=-1), np.nan)


def placebo_probe_sets(mom, lag, n_probes_norms, candidates, *, kind="isotropic", n_draws=200, seed=0,
                       n_match=defaults.N_MATCHED, match_stat=defaults.MATCH_STAT, block=None, vectors=None,
                       prepared=None):
    """Headline numbers of ``n_draws`` placebo probe sets: dict name -> (n_draws,).

    Parameters
    ----------
    mom : xarray.Dataset
        ``/moments`` with lag moments at ``lag``.
    n_probes_norms : array (P,)
        Norms of the study's probe vectors (their count is the set's size).
    candidates : (r, variance_explained)
        The variance-matching population (as for the study's probes).
    kind : {"isotropic", "shaped", "rotated"}
    block : int, optional
        Sets per batch (default: as many as fit ``BLOCK_BYTES``);
        the draws do not depend on it.
    vectors : array (P, hidden), optional
        The probe vectors (needed by ``rotated``).
    prepared : optional
        ``/moments`` in its eigenbasis from an earlier call (one
        eigendecomposition serves every kind).

    Returns
    -------
    dict with ``probe_persistence``, ``residual_mean``, ``residual_positive``, ``pc_spearman``,
    ``mean_variance_explained`` (each (n_draws,)).

    Notes
    -----
    Everything is computed in the eigenbasis of ``Sigma`` (one decomposition):
    there ``V Sigma V'`` costs P^2 hidden per draw, and the three lag
    matrices ``V C V'`` cost 3 P hidden^2, the floor for dense moments, as one
    product of all the batch's sets, in float32 (relative error ~1e-6 on r,
    far below the spread of the placebo draws).

    Examples
    --------
    >>> import emostats as es
    >>> study = es.open_study(es.example_study())
    >>> mom = study["moments"].to_dataset()
    >>> cand = (np.linspace(0, 0.5, 60), np.linspace(0, 0.01, 60))
    >>> out = placebo_probe_sets(mom, 100, np.ones(10), cand, n_draws=3, seed=1, n_match=5)
    >>> out["probe_persistence"].shape
    (3,)
    >>> study.close()
    """
    if kind not in KINDS:
        raise EmostatsError(f"placebo kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "rotated" and vectors is None:
        raise EmostatsError("placebo kind 'rotated' needs the probe vectors")
    prep = _Prepared(mom, lag) if prepared is None else prepared
    norms = np.asarray(n_probes_norms, dtype=np.float64)
    frame = _frame(np.asarray(vectors, dtype=np.float64) @ prep.U) if kind == "rotated" else None
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), KINDS.index(kind)]))
    block = prep.block(norms.size) if block is None else int(block)
    parts = []
    for d0 in range(0, n_draws, block):
        nb = min(block, n_draws - d0)
        parts.append(set_statistics(prep, _draw_sets(kind, nb, norms, prep.w, rng, frame), candidates,
                                    n_match=n_match, match_stat=match_stat))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _random_span_fractions(decoders, dim, n_draws, rng, block=None):
    """(n_draws, F) subspace fraction of each decoder in random spans of dimension ``dim``.

    A span is the Q of the QR of a Gaussian (hidden, dim) matrix; a block of
    spans is drawn in one call (the stream of one call per draw), its QRs are
    batched and the decoders meet all its frames in one product.
    """
    D = np.asarray(decoders, dtype=np.float64)
    norms = np.linalg.norm(D, axis=1)
    F, H = D.shape
    out = np.empty((n_draws, F))
    block = max(1, int(BLOCK_BYTES // (8 * H * max(dim, 1) + 8 * F * max(dim, 1)))) if block is None else int(block)
    for d0 in range(0, n_draws, block):
        nb = min(block, n_draws - d0)
        with single_threaded_blas():  # as in _draw_sets
            Q, _ = np.linalg.qr(rng.standard_normal((nb, H, dim)))
        DQ = D @ Q.transpose(1, 0, 2).reshape(H, nb * dim)  # (F, nb dim)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[d0:d0 + nb] = (np.sqrt((DQ.reshape(F, nb, dim) ** 2).sum(axis=2)) / norms[:, None]).T
    return out


def placebo_nulls(study, lag=defaults.LAG, n_draws=200, seed=defaults.SEED, *, candidates=None, observed=None,
                  sae_matched=None, n_match=defaults.N_MATCHED, match_stat=defaults.MATCH_STAT, kinds=KINDS):
    """Placebo distributions of the headline numbers, and where the study's numbers fall in them.

    Parameters
    ----------
    study : xarray.DataTree
        With ``/moments`` (lag moments at ``lag``) and ``/probes`` ``vector``;
        ``/features`` ``decoder`` adds the random-span placebo of the SAE test.
    lag, n_draws, seed : int
        ``n_draws`` placebo sets per kind (at least 200 recommended), seeded.
    candidates : xarray.Dataset, optional
        The variance-matching population (``r``, ``variance_explained``; the
        ``candidates`` step). Default: drawn from ``/moments`` as ``es.run`` does.
    observed : dict, optional
        The study's numbers (statistic -> value) to place in the placebo
        distributions (e.g. from the summary).
    sae_matched : xarray.Dataset, optional
        The ``sae_matched`` result (its ``residual``), for the span placebo.
    kinds : sequence of str
        Which placebo probe sets (default both).

    Returns
    -------
    xarray.Dataset
        ``draws(kind, draw, statistic)``; with ``observed``: ``observed(statistic)``,
        ``placebo_pct(kind, statistic)`` (0-100) and ``placebo_p(kind, statistic)``
        (two-sided); ``span_*`` for the SAE span placebo.

    Examples
    --------
    >>> import emostats as es
    >>> study = es.open_study(es.example_study())
    >>> pl = placebo_nulls(study, n_draws=20, kinds=("isotropic",), observed={"pc_spearman": -0.55})
    >>> bool(0 <= float(pl["placebo_pct"].sel(kind="isotropic", statistic="pc_spearman")) <= 100)
    True
    >>> study.close()
    """
    from ..nullmodels import default_ks, direction_persistence, random_direction_sweep, split_evenly
    from ..seeds import derive_seed

    if int(n_draws) < 1:
        raise EmostatsError(f"placebo_nulls: n_draws must be >= 1, got {n_draws}")
    for name in ("moments", "probes"):
        if name not in study.children:
            raise MissingGroupError(f"/{name} missing: placebo probe sets are measured exactly from /moments "
                                    f"with the probes' count and norms")
    mom = study["moments"].to_dataset(inherit=False)
    probes = study["probes"].to_dataset(inherit=False)
    if "vector" not in probes:
        raise MissingGroupError("/probes: vector missing; placebo sets copy the probes' count and norms")
    pvec = np.asarray(probes["vector"].values, dtype=np.float64)
    norms = np.linalg.norm(pvec, axis=1)
    if candidates is None:
        ks = default_ks(mom.sizes["hidden"])
        dirs = random_direction_sweep(mom, ks=ks, n_per_k=split_evenly(defaults.N_CANDIDATES, len(ks)),
                                      seed=derive_seed(seed, "candidates"))
        candidates = direction_persistence(mom, dirs, lag=lag)
    cand = (candidates["r"].values, candidates["variance_explained"].values)
    names = ["probe_persistence", "residual_mean", "residual_positive", "pc_spearman", "mean_variance_explained"]
    draws = np.full((len(kinds), int(n_draws), len(names)), np.nan)
    prep = _Prepared(mom, lag)
    for a, kind in enumerate(kinds):
        res = placebo_probe_sets(mom, lag, norms, cand, kind=kind, n_draws=int(n_draws),
                                 seed=derive_seed(seed, "placebo"), n_match=n_match, match_stat=match_stat,
                                 vectors=pvec, prepared=prep)
        draws[a] = np.stack([res[k] for k in names], axis=1)
    ds = xr.Dataset(
        {"draws": (("kind", "draw", "statistic"), draws,
                   {"long_name": "the statistic on placebo probe sets (random directions, same count and norms)"})},
        coords={"kind": list(kinds), "draw": np.arange(int(n_draws)), "statistic": names},
        attrs={"analysis": "placebo_nulls", "lag": int(lag), "n_draws": int(n_draws), "seed": int(seed),
               "n_probes": int(norms.size),
               "placebo_p": "two-sided: min(1, 2 min(1 + #{draw <= value}, 1 + #{draw >= value}) / (1 + n))"})
    feats = study["features"].to_dataset(inherit=False) if "features" in study.children else None
    if feats is not None and "decoder" in feats:
        rng = np.random.default_rng(np.random.SeedSequence([derive_seed(seed, "placebo"), 7]))
        with single_threaded_blas():
            dim = int(np.linalg.matrix_rank(pvec))
        frac = _random_span_fractions(feats["decoder"].values, dim, int(n_draws), rng)
        span = {"mean_subspace_fraction": frac.mean(axis=1)}
        if sae_matched is not None and "residual" in sae_matched:
            span["sae_spearman"] = rowwise_spearman(frac, sae_matched["residual"].values)
        for rating in ("self_rating", "text_rating"):
            if rating in feats:
                span[f"subspace_{rating}"] = rowwise_spearman(frac, np.asarray(feats[rating].values, np.float64))
        snames = list(span)
        ds["span_draws"] = (("draw", "span_statistic"), np.stack([span[k] for k in snames], axis=1),
                            {"long_name": f"the statistic with the probe span replaced by a random {dim}-dim span"})
        ds = ds.assign_coords(span_statistic=snames)
        ds.attrs["span_dimension"] = dim
    if observed:
        obs = np.array([observed.get(k, np.nan) for k in names], dtype=np.float64)
        pct = np.full((len(kinds), len(names)), np.nan)
        pp = np.full_like(pct, np.nan)
        for a in range(len(kinds)):
            for j in range(len(names)):
                pct[a, j], pp[a, j] = placebo_rank(obs[j], draws[a, :, j])
        ds["observed"] = ("statistic", obs, {"long_name": "the study's value"})
        ds["placebo_pct"] = (("kind", "statistic"), pct, {"long_name": "percentile of the value among placebo draws"})
        ds["placebo_p"] = (("kind", "statistic"), pp, {"long_name": "two-sided placebo p"})
        if "span_draws" in ds:
            sn = list(ds["span_statistic"].values)
            sobs = np.array([observed.get(k, np.nan) for k in sn], dtype=np.float64)
            ranks = [placebo_rank(v, ds["span_draws"].values[:, j]) for j, v in enumerate(sobs)]
            ds["span_observed"] = ("span_statistic", sobs, {"long_name": "the study's value"})
            ds["span_placebo_pct"] = ("span_statistic", [x[0] for x in ranks],
                                      {"long_name": "percentile of the value among random-span draws"})
            ds["span_placebo_p"] = ("span_statistic", [x[1] for x in ranks], {"long_name": "two-sided placebo p"})
    return ds
