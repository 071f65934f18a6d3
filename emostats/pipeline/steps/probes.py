"""Steps of SPEC.md analyses 1-2: lag persistence, lag profile and trajectories of the probes."""

from ..params import LAG, MAX_LAG, THREADS
from ..registry import step
from ._study import ACT, probe_act

BOTH = ("persistence", "nullmodels")


@step("persistence", "lag persistence of the probes", order=1.0, needs=ACT, params=(LAG, THREADS), presets=BOTH)
def persistence(ctx):
    """Per probe, Pearson r between the activation at t and at t + L over valid pairs."""
    from ...persistence import lag_persistence

    return lag_persistence(probe_act(ctx), lag=ctx.params["lag"], threads=ctx.params["threads"])


@step("profile", "lag profile r(L) of the probes", order=1.1, needs=ACT, params=(LAG, MAX_LAG, THREADS),
      presets=("persistence",))
def profile(ctx):
    """The lag profile r(L), L = 0..max_lag, with the pairs at each L."""
    from ...persistence import lag_profile

    return lag_profile(probe_act(ctx), max_lag=ctx.params["max_lag"], threads=ctx.params["threads"])


@step("trajectories", "trajectories by initial strength", order=2.0, needs=ACT, params=(LAG, MAX_LAG, THREADS),
      presets=("persistence",))
def trajectories(ctx):
    """Mean sign-aligned z at t + tau by bin of initial strength |z_t| (Figure 2)."""
    from ...persistence import trajectories as trajectories_

    return trajectories_(probe_act(ctx), max_lag=ctx.params["max_lag"], threads=ctx.params["threads"])
