"""Per-conversation sufficient statistics of a study, computed in one pass each.

Everything the conversation bootstrap, the jackknife test and the
within-turn decomposition need, so that no replicate re-reads tokens:

- :func:`probe_stats`: from ``/tokens`` ``probe_act``: per-segment lag
  moments (hence per-conversation pooled moments and within-turn sums), and
  per-conversation probe covariance matrices over all tokens and over the lag
  pairs (for the PCA of each replicate);
- :func:`hidden_stats`: from the ``/conv_moments`` group (the format addition
  of ``docs/inference.md``, written by :func:`emostats.study_from_activations`):
  per-conversation moments of the projections on stored random and
  candidate directions, and of the trace of the hidden covariance;
- :func:`firing_stats`: per-conversation SAE firing counts;
- conversations are numbered ``0..G-1`` in the order of their first token.
"""

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from .._lagstats import lag_moments
from ..errors import EmostatsError, MissingGroupError
from ..segments import segments_of
from ._merge import merge_weighted, single_threaded_blas, within_from_segments

__all__ = ["ProbeStats", "HiddenStats", "FiringStats", "probe_stats", "hidden_stats", "firing_stats",
           "conversation_index", "CONV_GROUP"]

#: the study group holding per-conversation moments of projections on stored directions
CONV_GROUP = "conv_moments"


def conversation_index(conversation, offsets):
    """(conversation index 0..G-1 of each segment, conversation labels in order of first appearance).

    Examples
    --------
    >>> idx, labels = conversation_index(np.array([7, 7, 3, 3, 9]), np.array([0, 2, 4, 5]))
    >>> idx.tolist(), labels.tolist()
    ([0, 1, 2], [7, 3, 9])
    """
    seg_conv = np.asarray(conversation)[np.asarray(offsets)[:-1]]
    uniq, first, inv = np.unique(seg_conv, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank[inv.ravel()].astype(np.int64), uniq[order]


@dataclass
class ProbeStats:
    """Per-conversation statistics of the probe activations at one lag."""

    lag: int
    names: np.ndarray
    conversations: np.ndarray       # labels (G,)
    moments: np.ndarray             # (G, 6, 1, P) pooled lag moments per conversation
    within: np.ndarray              # (G, 4, 1, P) within-segment sums per conversation
    n_segments: np.ndarray          # (G,)
    # per-conversation matrices (PCA); None when not requested
    tok_n: np.ndarray = None        # (G,)
    tok_mean: np.ndarray = None     # (G, P)
    tok_c: np.ndarray = None        # (G, P, P) centred sums over all tokens
    pair_n: np.ndarray = None       # (G,)
    pair_mx: np.ndarray = None      # (G, P)
    pair_my: np.ndarray = None
    pair_cxx: np.ndarray = None     # (G, P, P)
    pair_cyy: np.ndarray = None
    pair_cxy: np.ndarray = None
    n_dropped: int = 0

    @property
    def n_groups(self):
        return int(self.conversations.size)


def _pair_index(offsets, lag):
    """First tokens t of the valid pairs (t, t + lag) (same segment), in token order."""
    starts, ends = offsets[:-1], offsets[1:]
    lengths = np.maximum(ends - starts - lag, 0)
    first = np.repeat(starts, lengths) + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    return first.astype(np.int64)


def probe_stats(probe_act, lag, matrices=True, threads=None):
    """Per-conversation statistics of ``probe_act`` (token, probe) at ``lag``; one pass (two with matrices).

    Tokens with a non-finite probe value are left out of the matrices (and of
    the lag pairs they belong to) and counted in ``n_dropped``; the lag moments
    mask non-finite pairs as :func:`emostats.lag_persistence` does.

    Examples
    --------
    >>> import emostats as es
    >>> study = es.open_study(es.example_study())
    >>> ps = probe_stats(study["tokens"]["probe_act"], lag=100, matrices=False)
    >>> ps.n_groups, ps.moments.shape[1:]
    (24, (6, 1, 171))
    >>> study.close()
    """
    if not isinstance(probe_act, xr.DataArray) or "token" not in probe_act.dims or probe_act.ndim != 2:
        raise EmostatsError("probe_stats: expected /tokens probe_act, a (token, probe) DataArray with "
                            "conversation and turn coordinates")
    act = probe_act.transpose("token", ...)
    pdim = act.dims[1]
    offsets = segments_of(act)
    seg_conv, labels = conversation_index(act["conversation"].values, offsets)
    G = labels.size
    x = np.asarray(act.values)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    n_seg = offsets.size - 1
    M_seg = lag_moments(x, offsets, int(lag), groups=np.arange(n_seg), n_groups=max(n_seg, 1), threads=threads)
    ind = np.zeros((G, n_seg))
    ind[seg_conv, np.arange(n_seg)] = 1.0
    M = merge_weighted(M_seg, ind)
    Wn = within_from_segments(M_seg, seg_conv, G)
    names = act[pdim].values if pdim in act.coords else np.arange(act.sizes[pdim])
    out = ProbeStats(lag=int(lag), names=names, conversations=labels, moments=M, within=Wn,
                     n_segments=np.bincount(seg_conv, minlength=G))
    if matrices:
        _matrices(out, x, offsets, seg_conv, int(lag), threads)
    return out


def _matrices(out, x, offsets, seg_conv, lag, threads=None):
    """Per-conversation token and lag-pair matrices, conversations on ``threads`` threads (same bits for any count).

    Everything is centred on the conversation's token mean ``m`` first (``D = x - m``,
    float64). The token matrix is ``D'D``; the pair matrices follow from it:
    ``Cxx = D'D - (sum over the valid tokens that start no pair) - n dmx dmx'``
    with ``dmx`` the mean of ``D`` over the pairs' first tokens, ``Cyy`` alike
    with the tokens that end no pair, ``Cxy = D_x' D_y - n dmx dmy'``. The two
    symmetric corrections cover the turns' last (first) ``lag`` tokens only, so
    a conversation costs about one token matrix and one cross product.
    """
    from .._threads import run_ranges

    G = out.n_groups
    P = x.shape[1]
    tok_conv = np.repeat(seg_conv, np.diff(offsets))
    ok = np.isfinite(x).all(axis=1)
    out.n_dropped = int((~ok).sum())
    first = _pair_index(offsets, lag)
    pair_ok = ok[first] & ok[first + lag]
    first = first[pair_ok]
    pair_conv = tok_conv[first]
    res = {k: np.zeros((G, P)) for k in ("tok_mean", "pair_mx", "pair_my")}
    res.update({k: np.zeros((G, P, P)) for k in ("tok_c", "pair_cxx", "pair_cyy", "pair_cxy")})
    res["tok_n"], res["pair_n"] = np.zeros(G), np.zeros(G)
    sorted_ = bool(np.all(np.diff(tok_conv) >= 0))
    tb = np.searchsorted(tok_conv, np.arange(G + 1)) if sorted_ else None
    pb = np.searchsorted(pair_conv, np.arange(G + 1)) if sorted_ else None

    def one(g):
        rows = np.arange(tb[g], tb[g + 1]) if sorted_ else np.flatnonzero(tok_conv == g)
        rows = rows[ok[rows]]
        if not rows.size:
            return
        a = x[rows].astype(np.float64)
        m = a.mean(axis=0)
        D = a - m
        res["tok_n"][g] = rows.size
        res["tok_mean"][g] = m
        res["tok_c"][g] = D.T @ D
        f = first[pb[g]:pb[g + 1]] if sorted_ else first[pair_conv == g]
        if not f.size:
            return
        pos = np.full(x.shape[0], -1, dtype=np.int64)  # token -> its row in D (within this conversation)
        pos[rows] = np.arange(rows.size)
        fx, fy = pos[f], pos[f + lag]
        Dx, Dy = D[fx], D[fy]
        dmx, dmy = Dx.mean(axis=0), Dy.mean(axis=0)
        n = f.size
        res["pair_n"][g] = n
        res["pair_mx"][g], res["pair_my"][g] = m + dmx, m + dmy
        for key, used, dm in (("pair_cxx", fx, dmx), ("pair_cyy", fy, dmy)):
            rest = np.ones(rows.size, dtype=bool)
            rest[used] = False
            E = D[rest]
            res[key][g] = res["tok_c"][g] - E.T @ E - n * np.outer(dm, dm)
        res["pair_cxy"][g] = Dx.T @ Dy - n * np.outer(dmx, dmy)

    def kernel(i0, i1):
        for g in range(i0, i1):
            one(g)

    with single_threaded_blas():  # one BLAS thread per conversation worker
        run_ranges(kernel, G, threads, (), work=int(x.size))
    for k, v in res.items():
        setattr(out, k, v)


@dataclass
class HiddenStats:
    """Per-conversation moments of projections on stored directions (``/conv_moments``)."""

    lag: int
    population: np.ndarray          # (D,) str: "uniform" or "candidate"
    k: np.ndarray                   # (D,) eigenspace dimension of a candidate (-1 for uniform)
    moments: np.ndarray             # (G, 6, 1, D)
    within: np.ndarray              # (G, 4, 1, D)
    var_n: np.ndarray               # (G,)
    var_mean: np.ndarray            # (G, D)
    var_m2: np.ndarray              # (G, D)
    trace_mean: np.ndarray          # (G, hidden)  per-conversation mean of the hidden activations
    trace_m2: np.ndarray            # (G,)  per-conversation trace of the centred sums of squares
    conversations: np.ndarray = field(default=None)

    def select(self, population):
        return np.flatnonzero(self.population == population)


def hidden_stats(study, lag, conversations=None):
    """The ``/conv_moments`` group of ``study`` at ``lag`` as :class:`HiddenStats`; MissingGroupError without it.

    ``conversations`` (labels in the order of :func:`probe_stats`) reorders the
    group's conversations to match; every label must be present.
    """
    if CONV_GROUP not in study.children:
        raise MissingGroupError(f"/{CONV_GROUP} missing: intervals of numbers that use /moments (random and "
                                f"variance-matched directions) need per-conversation moments of the directions "
                                f"(write them with emostats.study_from_activations)")
    ds = study[CONV_GROUP].to_dataset(inherit=False)
    lags = np.asarray(ds["lag"].values)
    if int(lag) not in lags.tolist():
        raise MissingGroupError(f"/{CONV_GROUP}: lag {lag} not stored (lags {lags.tolist()})")
    li = int(np.flatnonzero(lags == int(lag))[0])
    conv = np.asarray(ds["conversation"].values)
    order = np.arange(conv.size)
    if conversations is not None:
        pos = {c: i for i, c in enumerate(conv.tolist())}
        missing = [c for c in np.asarray(conversations).tolist() if c not in pos]
        if missing:
            raise EmostatsError(f"/{CONV_GROUP}: conversation {missing[0]} of /tokens has no moments")
        order = np.array([pos[c] for c in np.asarray(conversations).tolist()])
    lm = np.asarray(ds["lag_moments"].values, dtype=np.float64)[order][:, :, li:li + 1]
    wm = np.asarray(ds["within_moments"].values, dtype=np.float64)[order][:, :, li:li + 1]
    return HiddenStats(lag=int(lag), population=np.asarray(ds["population"].values).astype(str),
                       k=np.asarray(ds["k"].values), moments=lm, within=wm,
                       var_n=np.asarray(ds["n_tokens"].values, dtype=np.float64)[order],
                       var_mean=np.asarray(ds["proj_mean"].values, dtype=np.float64)[order],
                       var_m2=np.asarray(ds["proj_m2"].values, dtype=np.float64)[order],
                       trace_mean=np.asarray(ds["hidden_mean"].values, dtype=np.float64)[order],
                       trace_m2=np.asarray(ds["hidden_m2_trace"].values, dtype=np.float64)[order],
                       conversations=conv[order])


@dataclass
class FiringStats:
    """Per-conversation SAE firing counts of selected features."""

    lag: int
    features: np.ndarray            # (F,) positions in /features
    n_fires: np.ndarray             # (G, F)
    n_t: np.ndarray
    n_tl: np.ndarray
    n_both: np.ndarray
    n_valid: np.ndarray             # (G,)


def firing_stats(study, lag, features, conversations):
    """Per-conversation firing counts of ``features`` (positions) at ``lag``, conversations in the given order."""
    from ..sae import firing_counts

    tok = study["tokens"]
    index = tok["sae_index"]
    offsets = segments_of(index)
    conv = np.asarray(index["conversation"].values)
    n_features = study["features"].sizes["feature"] if "features" in study.children else None
    idx = np.asarray(index.values)
    features = np.asarray(features, dtype=np.int64)
    G = len(conversations)
    arrays = {k: np.zeros((G, features.size), dtype=np.int64) for k in ("n_fires", "n_t", "n_tl", "n_both")}
    n_valid = np.zeros(G, dtype=np.int64)
    starts = offsets[:-1]
    seg_conv = conv[starts]
    for g, label in enumerate(np.asarray(conversations).tolist()):
        segs = np.flatnonzero(seg_conv == label)
        if segs.size == 0:
            continue
        rows = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in segs])
        local = np.concatenate(([0], np.cumsum(offsets[segs + 1] - offsets[segs])))
        c = firing_counts(idx[rows], local, lag=int(lag), n_features=n_features)
        for k in arrays:
            arrays[k][g] = c[k][features]
        n_valid[g] = c["n_valid"]
    return FiringStats(lag=int(lag), features=features, n_valid=n_valid, **arrays)
