"""Steps of SPEC.md analyses 9-10: rating correlations and the mention tests."""

from ... import defaults as D
from ...errors import EmostatsError
from ..params import ALPHA, N_MATCHED, THREADS, Param
from ..registry import step

RATING_STAT = Param("rating_stat", D.RATING_STAT, "statistic of the matched values in the rating analyses "
                    "(the study's Figure 10: mean)", kind="choice", choices=D.STATS)
MIN_MENTIONS = Param("min_mentions", D.MIN_MENTIONS, "an emotion enters the mention tests when at least this many "
                     "rated features' transcripts name it", minimum=1)
N_PERM = Param("n_perm", D.N_PERM, "permutations of the mention tests", minimum=1)


@step("judge_calibration", "calibration of the judge that rated the features", order=8.9,
      needs=("evaluations/calibration_auc",))
def judge_calibration(ctx):
    """The calibration check the judge ran before any rating was written (``extract.evaluations``).

    Copies the check's numbers from ``/evaluations`` so that the report can say why a study
    has no ratings (a judge that fails calibration writes none) or how good its judge was.
    """
    import numpy as np
    import xarray as xr

    ev = ctx.group("evaluations")
    out = {}
    for name in ("calibration_auc", "calibration_spearman", "calibration_spearman_p", "calibration_passed"):
        if name in ev:
            out[name] = ((), np.asarray(ev[name].values)[()], dict(ev[name].attrs))
    if "calibration_label" in ev:
        labels = np.asarray(ev["calibration_label"].values)
        out["n_emotional"] = ((), int((labels == 1).sum()), {"long_name": "emotional calibration texts"})
        out["n_neutral"] = ((), int((labels == 0).sum()), {"long_name": "neutral calibration texts"})
    keep = ("judge_model", "calibration_threshold", "no_ratings_reason", "rating_method", "calibration_file")
    return xr.Dataset(out, attrs={k: ev.attrs[k] for k in keep if k in ev.attrs})


@step("ratings", "rating correlations", order=9.0, needs=(("features/self_rating", "features/text_rating"),),
      after=("sae_persistence",), params=(N_MATCHED, RATING_STAT, THREADS))
def ratings(ctx):
    """Spearman of subspace fraction, ratings, residual persistence and variance explained."""
    from ...ratings import rating_analyses

    persistence = ctx.results.get("sae_persistence")
    kwargs = dict(n=ctx.params["n_matched"], stat=ctx.params["rating_stat"], threads=ctx.params["threads"])
    try:
        return rating_analyses(ctx.study, persistence, **kwargs)
    except EmostatsError as exc:
        if persistence is None:
            raise
        # the residuals cannot be matched (e.g. no feature has valid pairs at this lag); the rating
        # correlations that do not involve them still stand
        ds = rating_analyses(ctx.study, None, **kwargs)
        ds.attrs["residual_skipped"] = str(exc).splitlines()[0]
        return ds


@step("mentions", "emotion words in evaluation transcripts", order=10.0, needs=("evaluations",),
      params=(MIN_MENTIONS, N_PERM, ALPHA, THREADS), random=True)
def mentions(ctx):
    """Permutation tests that features whose transcript names an emotion have a higher cosine with its probe."""
    from ...errors import MissingGroupError
    from ...geometry import cosine
    from ...ratings import mention_tests

    ev = ctx.group("evaluations")
    if ev.sizes.get("rated_feature", 0) == 0:
        why = ev.attrs.get("no_ratings_reason")
        raise MissingGroupError("/evaluations rates no feature" + (f" ({why})" if why else ""))
    cos = None
    if "cosine" not in ev:
        if not (ctx.has("features/decoder") and ctx.has("probes/vector")):
            raise MissingGroupError("needs /evaluations/cosine, or /features/decoder with /probes/vector to "
                                    "compute it")
        decoder = ctx.study["features"]["decoder"].sel(feature=ev["rated_feature"].values)
        cos = cosine(decoder.rename(feature="rated_feature"), ctx.study["probes"]["vector"])
        cos = cos.rename({d: "emotion" for d in cos.dims if d not in ("rated_feature",)})
        cos = cos.sel(emotion=ev["emotion"].values)
    return mention_tests(ev, min_mentions=ctx.params["min_mentions"], n_perm=ctx.params["n_perm"],
                         seed=ctx.step_seed("mentions"), alpha=ctx.params["alpha"], cosine=cos,
                         threads=ctx.params["threads"])
