"""Probe sanity check: do the probes carry the meaning of their emotion words?

Probes that measure emotions should put near-synonyms (happy / joyful, afraid / terrified)
closer together than two emotions picked at random, put opposites (happy / sad, calm /
anxious) further apart, and have a leading principal component that follows valence
(pleasant against unpleasant), as the study's emotion space does. :func:`probe_check`
measures all three on any study:

- the *similarity* of two probes is the cosine of their vectors (``/probes`` ``vector``), or,
  for a study without vectors, the Pearson correlation of their activations over the tokens
  (``/tokens`` ``probe_act``);
- for the near-synonym and the opposite pairs of a shipped lexicon
  (``emostats/data/emotion_lexicon.json``; pass your own ``lexicon`` for other words), the
  mean similarity, its standardised distance from the mean over all pairs, each pair's
  percentile among all pairs, and a one-sided permutation p: the share of random sets of as
  many distinct pairs whose mean similarity is at least (synonyms) or at most (opposites)
  the observed one, ``(1 + count) / (1 + n_perm)``;
- the first principal component of the probes (the top eigenvector of the double-centred
  similarity matrix, i.e. PCA of the unit vectors across probes) against the valence signs
  of the lexicon: Pearson r over the probes with a valence, oriented so that r >= 0 (a PC's
  sign is arbitrary), with a permutation p of the valence labels on ``|r|``.

Pairs or words the study does not have are left out and counted; the check needs at least
two pairs of a kind (else that row is NaN, with the reason in ``detail``).
"""

from __future__ import annotations

import functools
import importlib.resources
import json

import numpy as np
import xarray as xr

from . import defaults as D
from ._checks import check_int, check_seed
from .errors import ArgumentError, MissingGroupError

__all__ = ["probe_check", "load_lexicon", "similarity_matrix"]

_KINDS = ("synonym", "opposite")

_LONG_NAMES = {
    "n_pairs": "lexicon pairs of this kind that are probes of the study",
    "n_missing": "lexicon pairs of this kind left out (a word is not a probe, or its similarity is undefined)",
    "mean": "mean similarity of the lexicon's pairs",
    "z": "distance of that mean from the mean over all pairs, in sds of all pairs",
    "mean_percentile": "mean percentile of the pairs' similarities among all pairs",
    "p": "one-sided permutation p (synonyms more, opposites less similar than random pairs)",
    "detail": "how p was computed, or why it is missing",
    "pair_a": "first word of a lexicon pair",
    "pair_b": "second word of a lexicon pair",
    "pair_kind": "kind of the lexicon pair",
    "similarity": "similarity of the pair's probes",
    "percentile": "percentile of the pair's similarity among all pairs",
    "all_mean": "mean similarity over all probe pairs",
    "all_sd": "sd of the similarity over all probe pairs",
    "n_all_pairs": "probe pairs with a defined similarity",
    "pc1": "score of each probe on the first probe PC (oriented so that valence_r >= 0)",
    "valence": "valence sign of the probe's word in the lexicon (+1 pleasant, -1 unpleasant, 0 neither)",
    "valence_r": "Pearson r of the first probe PC with valence (oriented >= 0)",
    "valence_p": "permutation p of |valence_r| (valence labels permuted)",
    "n_valence": "probes with a valence sign used in valence_r",
}


def _key(name) -> str:
    return str(name).strip().lower().replace("_", " ").replace("-", " ")


@functools.cache
def _shipped_lexicon() -> str:
    return importlib.resources.files("emostats").joinpath("data/emotion_lexicon.json").read_text()


def load_lexicon() -> dict:
    """The shipped lexicon: ``{"valence": {word: -1|0|1}, "synonyms": [[a, b], ...], "opposites": [...]}``.

    Examples
    --------
    >>> lex = load_lexicon()
    >>> lex["valence"]["happy"], lex["valence"]["sad"], ["happy", "joyful"] in lex["synonyms"]
    (1, -1, True)
    """
    return json.loads(_shipped_lexicon())


def similarity_matrix(vectors=None, probe_act=None) -> tuple[np.ndarray, str]:
    """(probe x probe similarity, what it is): cosines of ``vectors`` or correlations of ``probe_act``.

    Examples
    --------
    >>> s, kind = similarity_matrix(vectors=np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]]))
    >>> np.round(s[0], 4).tolist(), kind
    ([1.0, 0.7071, 0.0], 'cosine of the probe vectors')
    """
    if vectors is not None:
        v = np.asarray(vectors, dtype=np.float64)
        if v.ndim != 2:
            raise ArgumentError(f"vectors must be a (probe, hidden) array, got shape {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ArgumentError("/probes: vector has NaN/inf values; the probe check needs finite vectors")
        norms = np.linalg.norm(v, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            u = v / norms[:, None]
        s = u @ u.T
        s[norms == 0, :] = np.nan
        s[:, norms == 0] = np.nan
        return s, "cosine of the probe vectors"
    if probe_act is None:
        raise ArgumentError("probe_check needs probe vectors or probe activations")
    x = np.asarray(probe_act, dtype=np.float64)
    if x.ndim != 2:
        raise ArgumentError(f"probe_act must be a (token, probe) array, got shape {x.shape}")
    finite = np.isfinite(x)
    x = np.where(finite, x, np.nan)
    mean = np.nanmean(x, axis=0) if x.shape[0] else np.full(x.shape[1], np.nan)
    xc = np.where(finite, x - mean, 0.0)
    cov = xc.T @ xc
    sd = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        s = cov / np.outer(sd, sd)
    s[sd == 0, :] = np.nan
    s[:, sd == 0] = np.nan
    return s, "correlation of probe_act over the tokens"


def _first_pc(s: np.ndarray) -> np.ndarray:
    """Scores of the probes on the top eigenvector of the double-centred similarity (PCA across probes)."""
    g = s - s.mean(axis=0) - s.mean(axis=1)[:, None] + s.mean()
    w, v = np.linalg.eigh((g + g.T) / 2)
    return v[:, -1] * np.sqrt(max(w[-1], 0.0))


def _pair_rows(s, names, pairs, all_vals, kind, n_perm, rng):
    index = {_key(n): i for i, n in enumerate(names)}
    found = [(index[_key(a)], index[_key(b)], a, b) for a, b in pairs
             if _key(a) in index and _key(b) in index and index[_key(a)] != index[_key(b)]]
    vals = np.array([s[i, j] for i, j, _, _ in found], dtype=np.float64)
    keep = np.isfinite(vals)
    found = [f for f, k in zip(found, keep) if k]
    vals = vals[keep]
    sorted_all = np.sort(all_vals)
    pct = 100.0 * np.searchsorted(sorted_all, vals, side="right") / max(sorted_all.size, 1)
    k = vals.size
    row = dict(n_pairs=k, n_missing=len(pairs) - k, mean=np.nan, z=np.nan, mean_percentile=np.nan, p=np.nan,
               detail="")
    if k < 2 or all_vals.size <= k:
        row["detail"] = f"{k} {kind} pair(s) of the lexicon are probes of this study; the test needs at least 2"
        return row, found, vals, pct
    mean = float(vals.mean())
    mu, sd = float(all_vals.mean()), float(all_vals.std())
    draws = np.array([all_vals[rng.choice(all_vals.size, k, replace=False)].mean() for _ in range(n_perm)])
    tol = 1e-12 * max(1.0, abs(mean))
    count = np.sum(draws >= mean - tol) if kind == "synonym" else np.sum(draws <= mean + tol)
    row.update(mean=mean, z=(mean - mu) / sd if sd > 0 else np.nan, mean_percentile=float(pct.mean()),
               p=(1.0 + count) / (1.0 + n_perm),
               detail=f"one-sided permutation p over {n_perm:,} random sets of {k} distinct probe pairs "
                      f"({'higher' if kind == 'synonym' else 'lower'} similarity than random pairs)")
    return row, found, vals, pct


def probe_check(vectors=None, probe_act=None, *, names=None, lexicon: dict | None = None,
                n_perm: int = D.N_PERM, seed: int = D.SEED) -> xr.Dataset:
    """Near-synonym and opposite probe pairs against all pairs, and the first probe PC against valence.

    Parameters
    ----------
    vectors : DataArray (probe, hidden) or array, optional
        Probe vectors (``/probes`` ``vector``); their cosines are the similarity.
    probe_act : DataArray (token, probe) or array, optional
        Used when ``vectors`` is None: the correlation of the activations over the tokens.
    names : sequence of str, optional
        Probe names (default: the ``probe`` coordinate of the DataArray).
    lexicon : dict, optional
        ``{"valence": {word: sign}, "synonyms": [[a, b], ...], "opposites": [[a, b], ...]}``;
        default :func:`load_lexicon` (the study's 171 emotion words).
    n_perm : int
        Permutations of each test.
    seed : int
        Seed of the permutations (the step derives its own from the run's seed).

    Returns
    -------
    xarray.Dataset
        Per ``kind`` (synonym, opposite): ``n_pairs``, ``mean``, ``z`` (distance from the mean
        over all pairs in sds of all pairs), ``mean_percentile``, ``p``, ``detail``; per
        ``pair``: ``pair_a``, ``pair_b``, ``pair_kind``, ``similarity``, ``percentile``; the
        all-pairs ``all_mean``, ``all_sd``, ``n_all_pairs``; ``valence_r``, ``valence_p``,
        ``n_valence`` and per probe ``pc1`` (oriented so that ``valence_r >= 0``) and ``valence``.

    Examples
    --------
    >>> import emostats as es
    >>> study = es.open_study(es.example_study())
    >>> ds = probe_check(study["probes"]["vector"], n_perm=200)
    >>> ds["mean"].dims, int(ds["n_pairs"].sel(kind="synonym")) > 10
    (('kind',), True)
    """
    n_perm = check_int(n_perm, "n_perm", minimum=1)
    seed = check_seed(seed)
    source = vectors if vectors is not None else probe_act
    if source is None:
        raise MissingGroupError("the probe check needs /probes/vector or /tokens/probe_act")
    if names is None:
        if isinstance(source, xr.DataArray) and "probe" in source.coords:
            names = [str(n) for n in source["probe"].values]
        else:
            raise ArgumentError("names: give the probe names (or pass DataArrays with a probe coordinate)")
    if vectors is not None and isinstance(vectors, xr.DataArray):
        vectors = vectors.transpose("probe", ...).values
    if vectors is None and isinstance(probe_act, xr.DataArray):
        probe_act = probe_act.transpose("token", "probe").values
    s, what = similarity_matrix(vectors, probe_act)
    names = [str(n) for n in names]
    if len(names) != s.shape[0]:
        raise ArgumentError(f"names: {len(names)} names for {s.shape[0]} probes")
    lex = load_lexicon() if lexicon is None else lexicon
    rng = np.random.default_rng(seed)
    iu = np.triu_indices(s.shape[0], k=1)
    all_vals = s[iu]
    all_vals = all_vals[np.isfinite(all_vals)]
    rows, pairs = [], []
    for kind, key in zip(_KINDS, ("synonyms", "opposites")):
        row, found, vals, pct = _pair_rows(s, names, lex.get(key, []), all_vals, kind, n_perm, rng)
        rows.append(row)
        pairs += [(a, b, kind, v, p) for (_, _, a, b), v, p in zip(found, vals, pct)]
    out = xr.Dataset(coords={"kind": list(_KINDS), "probe": names})
    for var in ("n_pairs", "n_missing"):
        out[var] = ("kind", np.array([r[var] for r in rows], dtype=np.int64))
    for var in ("mean", "z", "mean_percentile", "p"):
        out[var] = ("kind", np.array([r[var] for r in rows], dtype=np.float64))
    out["detail"] = ("kind", np.array([r["detail"] for r in rows], dtype=object).astype(str))
    out["pair_a"] = ("pair", np.array([p[0] for p in pairs], dtype=str))
    out["pair_b"] = ("pair", np.array([p[1] for p in pairs], dtype=str))
    out["pair_kind"] = ("pair", np.array([p[2] for p in pairs], dtype=str))
    out["similarity"] = ("pair", np.array([p[3] for p in pairs], dtype=np.float64))
    out["percentile"] = ("pair", np.array([p[4] for p in pairs], dtype=np.float64))
    out["all_mean"] = float(all_vals.mean()) if all_vals.size else np.nan
    out["all_sd"] = float(all_vals.std()) if all_vals.size else np.nan
    out["n_all_pairs"] = np.int64(all_vals.size)
    out = out.merge(_valence(s, names, lex.get("valence", {}), n_perm, rng))
    for var, long_name in _LONG_NAMES.items():
        out[var].attrs["long_name"] = long_name
    out["kind"].attrs["long_name"] = "kind of probe pair (lexicon)"
    out["probe"].attrs["long_name"] = "probe (emotion name)"
    out.attrs.update(similarity=what, n_perm=n_perm, seed=seed,
                     lexicon="emostats/data/emotion_lexicon.json" if lexicon is None else "user-given")
    return out


def _valence(s, names, valence, n_perm, rng) -> xr.Dataset:
    v = np.array([float(valence.get(n, valence.get(_key(n), 0)) or 0) for n in names])
    ok = np.isfinite(s).all(axis=1) if s.size else np.zeros(0, bool)
    pc1 = np.full(len(names), np.nan)
    r = p = np.nan
    used = ok & (v != 0)
    if ok.sum() >= 3 and used.sum() >= 3 and np.unique(v[used]).size == 2:
        sub = np.flatnonzero(ok)
        pc1[sub] = _first_pc(s[np.ix_(sub, sub)])
        x, y = pc1[used], v[used]
        r = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 else np.nan
        if np.isfinite(r):
            if r < 0:
                pc1, r = -pc1, -r
                x = -x
            perm = rng.permuted(np.tile(y, (n_perm, 1)), axis=1)
            xc = (x - x.mean()) / x.std()
            pc = (perm - perm.mean(axis=1, keepdims=True)) / perm.std(axis=1, keepdims=True)
            rs = np.abs(pc @ xc) / x.size
            p = (1.0 + np.sum(rs >= r - 1e-12)) / (1.0 + n_perm)
    return xr.Dataset({"pc1": ("probe", pc1), "valence": ("probe", v.astype(np.int8)),
                       "valence_r": r, "valence_p": p, "n_valence": np.int64(used.sum())},
                      coords={"probe": names})
