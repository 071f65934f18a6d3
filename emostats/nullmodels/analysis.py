"""The null-model chain of ``emostats nullmodels`` on one study (Figures 3-5 of the study).

Kept until the step engine (:mod:`emostats.pipeline`) runs the same steps as
its ``nullmodels`` preset; then this module goes.
"""

import numpy as np

from ..errors import EmostatsError, MissingGroupError
from ..persistence import lag_persistence
from .emotion_space import emotion_pcs
from .from_moments import DEFAULT_LAG, direction_persistence, select_lag
from .matching import variance_matched
from .eigenspace import default_ks
from .sphere import random_direction_sweep, random_directions, split_evenly

__all__ = ["nullmodel_analysis"]


def nullmodel_analysis(tree, lag=None, n_random=1000, n_candidates=5420, ks=None, n_match=20, stat="median",
                       seed=0, threads=None):
    """Figures 3-5 of the study on one study tree: a dict of result Datasets.

    With ``/moments`` (and its lag moments): ``n_random`` directions uniform on
    the sphere of the hidden space (Figure 3; seed ``[seed, 0]``) and
    ``n_candidates`` directions uniform on top-k eigenspaces, spread evenly
    over ``ks`` (variance matching; seed ``[seed, 1]``), both measured exactly
    from the moments. Without ``/moments``, ``/random`` serves as both.

    Parameters
    ----------
    tree : xarray.DataTree
        A study with ``/tokens`` ``probe_act`` and ``/moments`` or ``/random``;
        ``/probes`` (``vector`` and/or ``variance_explained``) for the matching.
    lag : int, optional
        Default: the only lag of ``/moments``, else 100.
    n_random, n_candidates : int
        Directions for Figure 3 and for variance matching (the study: 5,420 candidates).
    ks : sequence of int, optional
        The k sweep (default :func:`default_ks`: 20 log-spaced values from 1 to hidden).
    n_match, stat : int, str
        Variance matching (20 nearest, median).
    seed : int
    threads : int, optional

    Returns
    -------
    dict of xarray.Dataset
        ``random_persistence`` (Figure 3), ``candidates`` (the matching
        population: r, variance explained, k), ``probe_persistence``,
        ``probe_matched`` (Figure 4; needs the probes' variance explained or
        vectors), ``emotion_pcs`` (Figure 5).
    """
    children = tree.children
    if "tokens" not in children or "probe_act" not in tree["tokens"].to_dataset(inherit=False):
        raise MissingGroupError("/tokens: probe_act missing; the null models compare probes with random directions")
    if int(n_random) < 1 or int(n_candidates) < 1:
        raise EmostatsError(f"n_random and n_candidates must be >= 1, got {n_random} and {n_candidates}")
    tokens = tree["tokens"].to_dataset(inherit=False)
    mom = tree["moments"].to_dataset(inherit=False) if "moments" in children else None
    if mom is not None and "lag" not in mom.dims:
        mom = None  # no lag moments: cannot give persistence
    probes = tree["probes"].to_dataset(inherit=False) if "probes" in children else None
    lag = select_lag(mom, lag)[1] if mom is not None else (DEFAULT_LAG if lag is None else int(lag))
    out = {}
    if mom is not None:
        uniform = random_directions(mom, int(n_random), seed=[int(seed), 0])
        rand = direction_persistence(mom, uniform, lag=lag)
        rand.attrs.update(seed=f"[{int(seed)}, 0]", population="uniform on the unit sphere of the hidden space")
        hidden = mom.sizes["hidden"]
        ks_ = default_ks(hidden) if ks is None else np.asarray(ks, dtype=np.int64)
        sweep = random_direction_sweep(mom, ks=ks_, n_per_k=split_evenly(n_candidates, len(ks_)),
                                       seed=[int(seed), 1])
        cand = direction_persistence(mom, sweep, lag=lag)
        cand.attrs.update(seed=f"[{int(seed)}, 1]", ks=np.asarray(ks_).tolist(),
                          population="uniform on the unit spheres of top-k eigenspaces of /moments cov")
    elif "random" in children:
        rand = direction_persistence(tree, lag=lag, threads=threads)
        rand.attrs.update(population="/random")
        cand = rand
    else:
        raise MissingGroupError("the null models need /moments (with lag moments) or /random; the study has neither")
    out["random_persistence"] = rand
    out["candidates"] = cand
    probe_r = lag_persistence(tokens["probe_act"], lag=lag)
    out["probe_persistence"] = probe_r
    vectors = probes["vector"] if probes is not None and "vector" in probes else None
    probe_ve = None
    if probes is not None and "variance_explained" in probes:
        probe_ve = probes["variance_explained"].values
    elif vectors is not None and mom is not None:
        probe_ve = direction_persistence(mom, vectors, lag=lag)["variance_explained"].values
    if probe_ve is not None and "variance_explained" in cand:
        matched = variance_matched(probe_r["r"].reset_coords(drop=True), np.asarray(probe_ve, dtype=np.float64),
                                   cand["r"], cand["variance_explained"], n=n_match, stat=stat, threads=threads)
        matched.attrs.update(lag=lag, candidates=cand.attrs.get("population", ""))
        out["probe_matched"] = matched
    out["emotion_pcs"] = emotion_pcs(tokens["probe_act"], probe_vectors=vectors, moments=mom,
                                     candidates=cand if mom is not None else None, lag=lag, n=n_match,
                                     stat=stat, seed=seed, threads=threads)
    return out
