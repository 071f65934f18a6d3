"""Emotionality ratings of SAE features: the rating correlations (SPEC.md
analysis 9, the study's Figures 8 and 10) and the mention tests (analysis 10,
Figure 9).
"""

import numpy as np
import xarray as xr

from . import defaults as D
from .errors import MissingGroupError, StudyError
from .stats import bh_fdr, permutation_test, spearman
from .stats._common import check_seed

__all__ = ["mention_tests", "rating_analyses", "RATING_PAIRS"]

#: (x, y) of every Spearman correlation of :func:`rating_analyses`, in report order
RATING_PAIRS = (
    ("subspace_fraction", "self_rating"),
    ("subspace_fraction", "text_rating"),
    ("self_rating", "text_rating"),
    ("residual", "self_rating"),
    ("residual", "text_rating"),
    ("self_rating", "variance_explained"),
)
RATINGS = ("self_rating", "text_rating")


def _group(obj, name, needed):
    if isinstance(obj, xr.DataTree):
        if name not in obj.children:
            raise MissingGroupError(f"/{name}: group missing; this analysis needs {', '.join(needed)}")
        obj = obj[name].to_dataset()
    if not isinstance(obj, xr.Dataset):
        raise StudyError(f"expected the /{name} Dataset or a study DataTree, got {type(obj).__name__}")
    return obj


# --------------------------------------------------------------------------- mention tests
def mention_tests(evaluations, min_mentions=D.MIN_MENTIONS, n_perm=D.N_PERM, seed=D.SEED, alpha=D.ALPHA, *,
                  cosine=None,
                  threads=None):
    """Do features whose evaluation transcripts name an emotion align more with its probe?

    For every emotion named in at least ``min_mentions`` rated features'
    transcripts (the study's "more than 4"), a one-sided permutation test
    (alternative "greater", statistic mean(cosine | mentions) - mean(cosine |
    does not mention)) with :func:`emostats.permutation_test`, then BH-FDR over
    the emotions tested. Features with a NaN cosine are left out of that
    emotion's test and of its mention count. An emotion that every remaining
    feature mentions has no comparison group and is not tested.

    Parameters
    ----------
    evaluations : xarray.Dataset or xarray.DataTree
        The ``/evaluations`` group (or a study): ``mentions(rated_feature,
        emotion)`` 0/1 and ``cosine(rated_feature, emotion)``.
    min_mentions : int
        Smallest number of mentioning features for an emotion to be tested.
    n_perm : int
        Permutations per emotion (all labellings are enumerated when there are
        no more than ``n_perm``).
    seed : int or None
        Seed of the permutations (None: fresh entropy, recorded in attrs).
    alpha : float
        FDR level: significant means ``q <= alpha``.
    cosine : xarray.DataArray (rated_feature, emotion), optional
        Cosines to use instead of ``evaluations["cosine"]``.
    threads : int, optional
        Threads of the permutation kernel (results do not depend on it).

    Returns
    -------
    xarray.Dataset
        Over ``emotion``: ``effect`` (mean difference), ``p``, ``q``,
        ``neg_log10_q``, ``significant``, ``tested``, ``n_mentions``,
        ``mean_mentioning``, ``mean_other``, ``exact`` (NaN / False for the
        untested); scalars ``n_tested``, ``n_significant``, ``n_positive``
        (tested with effect > 0), ``n_significant_positive``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> cos = rng.normal(size=(40, 2))
    >>> men = (cos + rng.normal(size=(40, 2)) > 1).astype("int8")
    >>> ev = xr.Dataset({"mentions": (("rated_feature", "emotion"), men),
    ...                  "cosine": (("rated_feature", "emotion"), cos)}, coords={"emotion": ["joy", "fear"]})
    >>> res = mention_tests(ev, n_perm=999)
    >>> int(res["n_tested"]), bool((res["effect"] > 0).all())
    (2, True)
    """
    seed = check_seed(seed)
    ev = _group(evaluations, "evaluations", ("mentions(rated_feature, emotion)", "cosine(rated_feature, emotion)"))
    if "mentions" not in ev.data_vars:
        raise MissingGroupError("/evaluations: variable mentions missing; expected mentions(rated_feature, emotion) 0/1")
    if cosine is None:
        if "cosine" not in ev.data_vars:
            raise MissingGroupError("/evaluations: variable cosine missing; store cosine(rated_feature, emotion) "
                                    "or pass cosine= (e.g. emostats.cosine of decoders and probe vectors)")
        cosine = ev["cosine"]
    mentions = ev["mentions"]
    for name, da in (("mentions", mentions), ("cosine", cosine)):
        if set(da.dims) != {"rated_feature", "emotion"}:
            raise StudyError(f"/evaluations: {name} has dims {da.dims}, expected ('rated_feature', 'emotion')")
    mentions, cosine = xr.align(mentions.transpose("rated_feature", "emotion"),
                                cosine.transpose("rated_feature", "emotion"), join="exact")
    men = np.asarray(mentions.values)
    if men.size and not np.isin(men, (0, 1)).all():
        raise StudyError("/evaluations: mentions holds values other than 0/1; expected int8 0/1 per "
                         "(rated_feature, emotion)")
    men = men.astype(bool)
    cos = np.asarray(cosine.values, dtype=np.float64)
    n_emotions = men.shape[1]
    usable = ~np.isnan(cos)
    n_mentions = (men & usable).sum(axis=0)
    n_usable = usable.sum(axis=0)
    tested = (n_mentions >= min_mentions) & (n_mentions < n_usable)
    out = {key: np.full(n_emotions, np.nan) for key in ("effect", "p", "mean_mentioning", "mean_other")}
    exact = np.zeros(n_emotions, dtype=bool)
    for e in np.flatnonzero(tested):
        res = permutation_test(cos[:, e], men[:, e], alternative="greater", n_perm=n_perm, seed=seed,
                               threads=threads)
        out["effect"][e] = float(res["statistic"])
        out["p"][e] = float(res["p"])
        exact[e] = bool(res["exact"])
        keep = usable[:, e]
        out["mean_mentioning"][e] = cos[keep & men[:, e], e].mean()
        out["mean_other"][e] = cos[keep & ~men[:, e], e].mean()
    q = bh_fdr(out["p"], alpha=alpha)["q"].values if tested.any() else np.full(n_emotions, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        significant = q <= alpha
        neg_log10_q = -np.log10(q)
    positive = tested & (out["effect"] > 0)
    e = ("emotion",)
    return xr.Dataset(
        {
            "effect": (e, out["effect"], {"long_name": "mean cosine (mentioning) - mean cosine (not mentioning)"}),
            "p": (e, out["p"], {"long_name": "one-sided permutation p (greater)"}),
            "q": (e, q, {"long_name": "BH-FDR q over the emotions tested"}),
            "neg_log10_q": (e, neg_log10_q, {"long_name": "-log10 q"}),
            "significant": (e, significant, {"long_name": f"q <= {alpha}"}),
            "tested": (e, tested, {"long_name": f"mentioned by >= {min_mentions} features (and not all)"}),
            "n_mentions": (e, n_mentions.astype(np.int64), {"long_name": "rated features whose transcript names the emotion"}),
            "mean_mentioning": (e, out["mean_mentioning"], {"long_name": "mean cosine of mentioning features"}),
            "mean_other": (e, out["mean_other"], {"long_name": "mean cosine of the other features"}),
            "exact": (e, exact, {"long_name": "p from all labellings"}),
            "n_tested": ((), int(tested.sum()), {"long_name": "emotions tested"}),
            "n_significant": ((), int(significant.sum()), {"long_name": f"emotions with q <= {alpha}"}),
            "n_positive": ((), int(positive.sum()), {"long_name": "tested emotions with effect > 0"}),
            "n_significant_positive": ((), int((significant & positive).sum()),
                                       {"long_name": f"emotions with q <= {alpha} and effect > 0"}),
        },
        coords={"emotion": mentions["emotion"].values},
        attrs={"analysis": "mention_tests", "min_mentions": int(min_mentions), "n_perm": int(n_perm),
               "seed": int(seed), "alpha": float(alpha), "alternative": "greater",
               "statistic": "mean difference", "fdr": "BH over the emotions tested"},
    )


# --------------------------------------------------------------------------- rating analyses
def rating_analyses(features, persistence=None, n=D.N_MATCHED, stat=D.RATING_STAT, *, probe_vectors=None,
                    threads=None):
    """Spearman correlations of the SAE feature ratings (Figures 8 and 10).

    The correlations (:data:`RATING_PAIRS`, pairs with a NaN dropped, so over
    the rated features): subspace fraction with each rating; the two ratings
    with each other; residual persistence with each rating; self rating with
    variance explained. The residual is the firing persistence minus the
    ``stat`` (mean, as the study's Figure 10) of the ``n`` included features
    nearest in variance explained (the feature itself excluded; excluded
    features have no residual).

    Parameters
    ----------
    features : xarray.Dataset or xarray.DataTree
        ``/features`` with ``variance_explained``, ``subspace_fraction`` (or
        ``decoder`` and probe vectors) and ``self_rating`` and/or
        ``text_rating`` (NaN = unrated), or a study holding it.
    persistence : xarray.Dataset, optional
        :func:`emostats.firing_persistence` of the same features; without it
        the residual rows are NaN with ``n = 0``.
    n : int
        Matched features per target.
    stat : {"mean", "median"}
        Baseline statistic of the matched values.
    probe_vectors : xarray.DataArray (probe, hidden), optional
        For subspace fractions computed from decoders.
    threads : int, optional

    Returns
    -------
    xarray.Dataset
        Over ``pair`` (labels ``"x:y"``, coords ``x`` and ``y``): ``rho``, ``p``,
        ``p_method`` and ``n``; ``p`` is R's ``cor.test(method = "spearman")``
        default (see :func:`emostats.spearman`) and ``p_method`` says which
        rule applied at that pair's n. Over ``feature`` (the rated features only): ``self_rating``,
        ``text_rating``, ``subspace_fraction``, ``variance_explained``,
        ``residual``, ``persistence``. A rating that is missing gives NaN rows
        with ``n = 0``.

    Examples
    --------
    >>> from emostats import synth, firing_persistence
    >>> tree, _ = synth.make_study(n_tokens=4000, n_probes=6, n_features=200, k=8, hidden=24, seed=2,
    ...                            groups=["tokens", "features"])
    >>> res = rating_analyses(tree, firing_persistence(tree, min_fires=20), n=5)
    >>> str(res["pair"].values[0]), int(res["n"].sel(pair="self_rating:text_rating")) == res.sizes["feature"]
    ('subspace_fraction:self_rating', True)
    """
    from .feature_matching import aligned_to_table, feature_table, matched_residuals

    table = feature_table(features, probe_vectors)
    if not any(r in table for r in RATINGS):
        raise MissingGroupError("/features: neither self_rating nor text_rating is present; the rating "
                                "analyses need at least one rating per feature (NaN = unrated)")
    columns = {name: table[name] for name in table.data_vars}
    if persistence is not None:
        persistence = aligned_to_table(persistence, table)
        vm = matched_residuals(persistence, table, n=n, stat=stat, threads=threads)
        columns["residual"] = xr.DataArray(vm["residual"].values, dims="feature", coords={"feature": table["feature"]})
        columns["persistence"] = persistence["persistence"].astype(np.float64)
    rho, p, count, p_method = [], [], [], []
    for x, y in RATING_PAIRS:
        if x in columns and y in columns:
            # R's cor.test default: exact / AS 89 without ties up to n = 1290, else t
            sp = spearman(columns[x], columns[y], dim="feature")
            rho.append(float(sp["rho"]))
            p.append(float(sp["p"]))
            count.append(int(sp["n"]))
            p_method.append(str(sp["p_method"].values))
        else:
            rho.append(np.nan)
            p.append(np.nan)
            count.append(0)
            p_method.append("")
    rated = np.zeros(table.sizes["feature"], dtype=bool)
    for r in RATINGS:
        if r in columns:
            rated |= np.isfinite(columns[r].values)
    per_feature = {}
    for name in ("self_rating", "text_rating", "subspace_fraction", "variance_explained", "residual", "persistence"):
        values = columns[name].values[rated] if name in columns else np.full(int(rated.sum()), np.nan)
        long = {"residual": f"firing persistence minus {stat} of {n} variance-matched features"}.get(name, name.replace("_", " "))
        per_feature[name] = ("feature", values, {"long_name": long})
    labels = [f"{x}:{y}" for x, y in RATING_PAIRS]
    return xr.Dataset(
        {
            "rho": ("pair", np.array(rho), {"long_name": "Spearman rho"}),
            "p": ("pair", np.array(p), {"long_name": "two-sided p (R cor.test rule, see p_method)"}),
            "p_method": ("pair", np.array(p_method, dtype=str),
                         {"long_name": "how p was computed: exact (n <= 9), edgeworth (AS 89, n <= 1290, "
                                       "no ties) or t (t approximation: ties or n > 1290)"}),
            "n": ("pair", np.array(count, dtype=np.int64), {"long_name": "features with both values"}),
            **per_feature,
        },
        coords={"pair": labels, "x": ("pair", [x for x, _ in RATING_PAIRS]), "y": ("pair", [y for _, y in RATING_PAIRS]),
                "feature": table["feature"].values[rated]},
        attrs={"analysis": "rating_analyses", "n_match": int(n), "stat": stat,
               "p_rule": "R cor.test(method='spearman', exact=NULL, continuity=FALSE)",
               "n_rated": int(rated.sum()), "residual": "included features only; a feature never matches itself"},
    )
