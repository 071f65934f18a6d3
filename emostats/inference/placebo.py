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
from ..errors import EmostatsError, MissingGroupError
from ._merge import single_threaded_blas
from ._resample import placebo_rank
from .headlines import _STAT, _nearest, _quad, rowwise_spearman

__all__ = ["placebo_nulls", "placebo_probe_sets", "set_statistics", "KINDS"]

#: kinds of placebo probe sets (the summary reports isotropic for the PC-rank row, rotated for means)
KINDS = ("isotropic", "shaped", "rotated")
DEGENERATE_RTOL = 1e-10


def _lag_index(mom, lag):
    lags = np.asarray(mom["lag"].values) if "lag" in mom.coords else np.array([])
    if int(lag) not in lags.tolist():
        raise MissingGroupError(f"/moments: lag {lag} missing (lags {lags.tolist()}); placebo persistence needs it")
    return int(np.flatnonzero(lags == int(lag))[0])


def _frame(vectors_e):
    """(C, r): the probe set in the eigenbasis as ``C F'`` with F an orthonormal frame of its span (rank r)."""
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
    at H r^2 per draw instead of H^3.
    """
    if kind == "rotated":
        C, r = frame
        out = np.empty((n_draws, C.shape[0], w.size))
        with single_threaded_blas():  # a threaded QR of a tall matrix is ~60x slower on shared cores
            for i in range(n_draws):
                q, t = np.linalg.qr(rng.standard_normal((w.size, r)))
                out[i] = C @ (q * np.sign(np.diag(t))).T
        return out
    g = rng.standard_normal((n_draws, norms.size, w.size))
    if kind == "shaped":
        g *= np.sqrt(np.clip(w, 0, None))
    g /= np.linalg.norm(g, axis=2, keepdims=True)
    return g * norms[None, :, None]


class _Prepared:
    """``/moments`` in the eigenbasis of Sigma: eigenvalues, eigenvectors, lag matrices (float32), trace."""

    def __init__(self, mom, lag):
        li = _lag_index(mom, lag)
        cov = np.asarray(mom["cov"].values, dtype=np.float64)
        self.w, self.U = np.linalg.eigh((cov + cov.T) / 2)
        self.lag_mats = [np.ascontiguousarray((self.U.T @ np.asarray(mom[k].values[li], dtype=np.float64)
                                               @ self.U).astype(np.float32)) for k in ("lag_cxx", "lag_cyy", "lag_cxy")]
        self.trace = float(np.trace(cov))


def set_statistics(prep, V, candidates, n_match=defaults.N_MATCHED, match_stat=defaults.MATCH_STAT):
    """Headline numbers of probe sets ``V`` (n_sets, P, hidden) *in the eigenbasis* of ``prep``: dict -> (n_sets,).

    For a set with vectors ``v_i`` (rows) the probe activations are ``v_i . h``:
    mean lag r, mean residual and count positive over the variance-matched
    candidates, and the Spearman of PC rank with PC residual, each as
    :func:`emostats.lag_persistence`, :func:`emostats.variance_matched` and
    :func:`emostats.emotion_pcs` give them from those activations.
    """
    V = np.asarray(V, dtype=np.float64)
    nb, P, _ = V.shape
    norms2 = (V * V).sum(axis=2)
    cr, cve = (np.asarray(a, dtype=np.float64) for a in candidates)
    stat = _STAT[match_stat]
    out = {k: np.full(nb, np.nan) for k in ("probe_persistence", "residual_mean", "residual_positive",
                                            "pc_spearman", "mean_variance_explained")}
    rank = np.arange(1, P + 1, dtype=np.float64)
    V32 = V.astype(np.float32)
    flat = V32.reshape(nb * P, -1)
    Cxx, Cyy, Cxy = ((flat @ M).reshape(nb, P, -1) @ V32.transpose(0, 2, 1) for M in prep.lag_mats)
    with single_threaded_blas():
        S = (V * prep.w) @ V.transpose(0, 2, 1)
        Gm = V @ V.transpose(0, 2, 1)
        for j in range(nb):
            dS = np.diagonal(S[j])
            dx, dy, dxy = (np.diagonal(A[j]).astype(np.float64) for A in (Cxx, Cyy, Cxy))
            with np.errstate(invalid="ignore", divide="ignore"):
                r = dxy / (np.sqrt(dx) * np.sqrt(dy))
            ve = dS / (norms2[j] * prep.trace)
            out["probe_persistence"][j] = np.nanmean(r)
            out["mean_variance_explained"][j] = ve.mean()
            idx = _nearest(ve, cve, n_match)
            res = r - stat(cr[idx], axis=1)
            out["residual_mean"][j] = np.nanmean(res)
            out["residual_positive"][j] = float((res > 0).sum())
            ev, L = np.linalg.eigh((S[j] + S[j].T) / 2)
            order = np.argsort(-ev, kind="stable")
            ev, L = ev[order], L[:, order]
            deg = ev <= DEGENERATE_RTOL * max(float(ev.max()), 0.0)
            cxy, cxx, cyy = (A[j].astype(np.float64) for A in (Cxy, Cxx, Cyy))
            with np.errstate(invalid="ignore", divide="ignore"):
                pr = _quad(L, cxy) / (np.sqrt(_quad(L, cxx)) * np.sqrt(_quad(L, cyy)))
                pve = np.where(deg, np.nan, ev / (_quad(L, Gm[j]) * prep.trace))  # |sum_i L_ij v_i|^2 = L'VV'L
            pr = np.where(deg, np.nan, pr)
            idx = _nearest(pve, cve, n_match)
            pres = np.where(idx[:, 0] >= 0, pr - stat(cr[np.maximum(idx, 0)], axis=1), np.nan)
            out["pc_spearman"][j] = rowwise_spearman(pres[None, :], rank)[0]
    return out


def placebo_probe_sets(mom, lag, n_probes_norms, candidates, *, kind="isotropic", n_draws=200, seed=0,
                       n_match=defaults.N_MATCHED, match_stat=defaults.MATCH_STAT, block=16, vectors=None,
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
    matrices ``V C V'`` are products in float32 (relative error ~1e-6 on r,
    far below the spread of the placebo draws) -- the cost that dominates.
    """
    if kind not in KINDS:
        raise EmostatsError(f"placebo kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "rotated" and vectors is None:
        raise EmostatsError("placebo kind 'rotated' needs the probe vectors")
    prep = _Prepared(mom, lag) if prepared is None else prepared
    norms = np.asarray(n_probes_norms, dtype=np.float64)
    frame = _frame(np.asarray(vectors, dtype=np.float64) @ prep.U) if kind == "rotated" else None
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), KINDS.index(kind)]))
    parts = []
    for d0 in range(0, n_draws, block):
        nb = min(block, n_draws - d0)
        parts.append(set_statistics(prep, _draw_sets(kind, nb, norms, prep.w, rng, frame), candidates,
                                    n_match=n_match, match_stat=match_stat))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _random_span_fractions(decoders, dim, n_draws, rng, block=8):
    """(n_draws, F) subspace fraction of each decoder in random spans of dimension ``dim``."""
    D = np.asarray(decoders, dtype=np.float64)
    norms = np.linalg.norm(D, axis=1)
    H = D.shape[1]
    out = np.empty((n_draws, D.shape[0]))
    for i in range(n_draws):
        Q, _ = np.linalg.qr(rng.standard_normal((H, dim)))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.linalg.norm(D @ Q, axis=1) / norms
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
        dim = int(np.linalg.matrix_rank(np.asarray(probes["vector"].values, dtype=np.float64)))
        with single_threaded_blas():
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
