"""Steps of issue 14: within-turn persistence, the conversation bootstrap and the placebo nulls.

See ``docs/inference.md``. ``bootstrap`` and ``placebo`` run after every
step whose numbers they put intervals on, and read those steps' results when
they ran (``ctx.results.get``): a missing one leaves its rows without an
interval, said in the row's ``detail``, rather than skipping the step.
"""

from ... import defaults as D
from ..params import LAG, MATCH_STAT, N_MATCHED, THREADS, Param
from ..registry import step
from ._study import ACT, probe_act

N_BOOT_CI = Param("n_boot_ci", D.N_BOOT_CI, "bootstrap resamples (whole conversations) of the headline numbers",
                  minimum=1)
CI_METHOD = Param("ci_method", D.CI_METHOD, "interval of the summary's ci_low/ci_high (both are stored)",
                  kind="choice", choices=("percentile", "bca"))
N_PLACEBO = Param("n_placebo", D.N_PLACEBO, "placebo probe sets (and random spans) per kind", minimum=1)


@step("within_turn", "within-turn vs between-turn persistence", order=1.05, needs=ACT, params=(LAG, THREADS))
def within_turn(ctx):
    """Pooled and within-turn lag r of the probes (and of the stored null directions), between-turn share."""
    from ...inference.within import direction_within, within_turn_persistence

    ds = within_turn_persistence(probe_act(ctx), lag=ctx.params["lag"], threads=ctx.params["threads"])
    if ctx.has("conv_moments"):
        dw = direction_within(ctx.study, lag=ctx.params["lag"])
        for name, var in dw.data_vars.items():
            ds[f"direction_{name}"] = var
    return ds


def _rating_stat(ctx):
    return ctx.params.get("rating_stat", D.RATING_STAT)


@step("bootstrap", "conversation bootstrap of the headline numbers", order=11.5, needs=ACT,
      params=(LAG, N_BOOT_CI, CI_METHOD, N_MATCHED, MATCH_STAT, THREADS), random=True)
def bootstrap(ctx):
    """Intervals (whole conversations resampled) and conversation-level p of every headline number."""
    from ...inference.bootstrap import conversation_bootstrap

    return conversation_bootstrap(
        ctx.study, lag=ctx.params["lag"], n_boot=ctx.params["n_boot_ci"], seed=ctx.step_seed("bootstrap"),
        interval=ctx.params["ci_method"], candidates=ctx.results.get("candidates"),
        random=ctx.results.get("random_directions"), sae_persistence=ctx.results.get("sae_persistence"),
        min_fires=ctx.params.get("min_fires", D.MIN_FIRES), n_match=ctx.params["n_matched"],
        match_stat=ctx.params["match_stat"], rating_stat=_rating_stat(ctx), threads=ctx.params["threads"],
        progress=ctx.progress)


def _observed(ctx):
    """The study's numbers the placebo draws are compared with."""
    from ..._nan import nanmean

    obs = {}
    r = ctx.results
    if "persistence" in r:
        obs["probe_persistence"] = float(nanmean(r["persistence"]["r"].values))
    if "variance_matched" in r:
        obs["residual_mean"] = float(r["variance_matched"]["mean"])
        obs["residual_positive"] = float(r["variance_matched"]["n_positive"])
    if "emotion_pcs" in r and "rank_rho" in r["emotion_pcs"]:
        obs["pc_spearman"] = float(r["emotion_pcs"]["rank_rho"])
    if "sae_matched" in r:
        obs["sae_spearman"] = float(r["sae_matched"]["rho"])
    if "ratings" in r and "pair" in r["ratings"].coords:
        labels = [str(x) for x in r["ratings"]["pair"].values]
        for key, label in (("subspace_self_rating", "subspace_fraction:self_rating"),
                           ("subspace_text_rating", "subspace_fraction:text_rating")):
            if label in labels:
                obs[key] = float(r["ratings"]["rho"].sel(pair=label))
    return obs


@step("placebo", "placebo probe sets and random spans", order=11.6, needs=("moments", "probes/vector"),
      params=(LAG, N_PLACEBO, N_MATCHED, MATCH_STAT), random=True)
def placebo(ctx):
    """Random probe sets (isotropic, covariance-shaped, rotated copies of the probes) and random spans through the same chain, from /moments."""
    from ...inference.placebo import placebo_nulls

    return placebo_nulls(ctx.study, lag=ctx.params["lag"], n_draws=ctx.params["n_placebo"],
                         seed=ctx.step_seed("placebo"), candidates=ctx.results.get("candidates"),
                         observed=_observed(ctx), sae_matched=ctx.results.get("sae_matched"),
                         n_match=ctx.params["n_matched"], match_stat=ctx.params["match_stat"])
