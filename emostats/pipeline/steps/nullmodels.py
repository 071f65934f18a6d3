"""Steps of SPEC.md analyses 4-6: random directions, variance-matching candidates, residuals, emotion PCs."""

from ... import defaults as D
from ..params import LAG, MATCH_STAT, N_MATCHED, THREADS, Param
from ..registry import step
from ._study import ACT, moments, probe_act, probe_vectors

N_RANDOM = Param("n_random", D.N_RANDOM, "random unit directions uniform on the sphere of the hidden space "
                 "(Figure 3)", minimum=1)
N_CANDIDATES = Param("n_candidates", D.N_CANDIDATES, "variance-matching candidates from top-k eigenspaces, spread "
                     "evenly over the k sweep", minimum=1)
K_SWEEP = Param("k_sweep", None, "comma-separated k values of the top-k sweep (default: 20 log-spaced from 1 to "
                "the hidden size)", kind="ints", minimum=1, aliases=("--ks",), metavar="K,K,...")
NULL = ("nullmodels",)


@step("random_directions", "random directions on the sphere", order=4.0, needs=(("moments", "random"),),
      params=(LAG, N_RANDOM, THREADS), random=True, presets=NULL)
def random_directions(ctx):
    """Figure 3's null: directions uniform on the sphere of the hidden space (or /random)."""
    from ...nullmodels import direction_persistence, random_directions as uniform

    mom = moments(ctx)
    lag = ctx.params["lag"]
    if mom is None:
        ds = direction_persistence(ctx.study, lag=lag, threads=ctx.params["threads"])
        ds.attrs["population"] = "/random (activations dumped by the extractor)"
        return ds
    dirs = uniform(mom, ctx.params["n_random"], seed=ctx.step_seed("random_directions"))
    ds = direction_persistence(mom, dirs, lag=lag, threads=ctx.params["threads"])
    ds.attrs["population"] = "uniform on the unit sphere of the hidden space"
    return ds


@step("candidates", "top-k candidates for variance matching", order=4.1, needs=(("moments", "random"),),
      after=("random_directions",), params=(LAG, N_CANDIDATES, K_SWEEP, THREADS), random=True, presets=NULL)
def candidates(ctx):
    """Variance-matching candidates: uniform on the spheres of top-k eigenspaces, over a sweep of k."""
    from ...nullmodels import default_ks, direction_persistence, random_direction_sweep, split_evenly

    mom = moments(ctx)
    if mom is None:  # /random serves as both populations
        return ctx.results["random_directions"].copy()
    ks = ctx.params["k_sweep"] or default_ks(mom.sizes["hidden"]).tolist()
    dirs = random_direction_sweep(mom, ks=ks, n_per_k=split_evenly(ctx.params["n_candidates"], len(ks)),
                                  seed=ctx.step_seed("candidates"))
    ds = direction_persistence(mom, dirs, lag=ctx.params["lag"], threads=ctx.params["threads"])
    ds.attrs.update(population="uniform on the unit spheres of top-k eigenspaces of /moments cov", ks=list(ks))
    return ds


def _probe_variance(ctx):
    """The probes' variance explained: /probes variance_explained, else from the vectors and /moments."""
    from ...errors import MissingGroupError
    from ...nullmodels import direction_persistence

    if ctx.has("probes/variance_explained"):
        return ctx.study["probes"]["variance_explained"]
    if ctx.has("probes/vector") and ctx.has("moments"):
        return direction_persistence(moments(ctx), ctx.study["probes"]["vector"],
                                     lag=ctx.params["lag"])["variance_explained"]
    raise MissingGroupError("needs /probes/variance_explained, or /probes/vector with /moments, to match the "
                            "probes' variance explained")


@step("variance_matched", "residuals over variance-matched directions", order=5.0,
      needs=(("probes/variance_explained", "probes/vector"),), after=("persistence", "candidates"),
      params=(LAG, N_MATCHED, MATCH_STAT, THREADS), presets=NULL)
def variance_matched(ctx):
    """Each probe's persistence minus the statistic of its n nearest candidates in variance explained."""
    import numpy as np

    from ...nullmodels import variance_matched as matched

    r = ctx.results["persistence"]["r"].reset_coords(drop=True)
    ve = np.asarray(_probe_variance(ctx).values, dtype=np.float64)
    cand = ctx.results["candidates"]
    ds = matched(r, ve, cand["r"], cand["variance_explained"], n=ctx.params["n_matched"],
                 stat=ctx.params["match_stat"], threads=ctx.params["threads"])
    ds.attrs.update(lag=ctx.params["lag"], candidates=cand.attrs.get("population", ""))
    return ds


@step("emotion_pcs", "principal components of the emotion space", order=6.0, needs=ACT,
      params=(LAG, N_MATCHED, MATCH_STAT, THREADS), random=True, presets=NULL)
def emotion_pcs(ctx):
    """PCA of the probe activations; each PC's persistence, direction and variance-matched residual."""
    from ...nullmodels import emotion_pcs as pcs

    mom = moments(ctx)
    cand = ctx.results.get("candidates") if mom is not None else None
    return pcs(probe_act(ctx), probe_vectors=probe_vectors(ctx), moments=mom, candidates=cand,
               lag=ctx.params["lag"], n=ctx.params["n_matched"], stat=ctx.params["match_stat"],
               seed=ctx.step_seed("emotion_pcs"), threads=ctx.params["threads"])
