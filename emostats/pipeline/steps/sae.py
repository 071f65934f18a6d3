"""Steps of SPEC.md analyses 7-8: SAE firing persistence, feature density, residuals against subspace fraction."""

from ... import defaults as D
from ..params import LAG, MATCH_STAT, N_MATCHED, THREADS, Param
from ..registry import step
from ._study import SAE

MIN_FIRES = Param("min_fires", D.MIN_FIRES, "SAE features firing fewer times are excluded from firing persistence",
                  minimum=0)


@step("sae_persistence", "SAE firing persistence", order=7.0, needs=SAE, params=(LAG, MIN_FIRES, THREADS))
def sae_persistence(ctx):
    """Per feature, P(fires at t + L | fires at t) - P(fires at t + L | does not fire at t)."""
    from ...sae import firing_persistence

    return firing_persistence(ctx.study, lag=ctx.params["lag"], min_fires=ctx.params["min_fires"],
                              threads=ctx.params["threads"])


@step("sae_density", "SAE feature density", order=7.1, needs=SAE, params=(THREADS,))
def sae_density(ctx):
    """How often each SAE feature fires."""
    from ...sae import feature_density

    return feature_density(ctx.study, threads=ctx.params["threads"])


@step("sae_matched", "SAE residuals against subspace fraction", order=7.2,
      needs=("features/variance_explained", ("features/subspace_fraction", "features/decoder")),
      after=("sae_persistence",), params=(N_MATCHED, MATCH_STAT, THREADS))
def sae_matched(ctx):
    """Residual firing persistence over variance-matched features, and its Spearman with subspace fraction."""
    from ...sae import sae_matched as matched

    return matched(ctx.results["sae_persistence"], ctx.study, n=ctx.params["n_matched"],
                   stat=ctx.params["match_stat"], threads=ctx.params["threads"])
