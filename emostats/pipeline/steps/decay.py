"""Steps of SPEC.md analysis 3: decay fits of the trajectories and of the mean lag profile."""

from ... import defaults as D
from ..params import THREADS, Param
from ..registry import step
from ._study import probe_act

N_BOOT = Param("n_boot", D.N_BOOT, "bootstrap resamples (whole conversations) of the decay fits; 0 = none",
               minimum=0)


@step("decay", "decay fits of the trajectories", order=3.0, after=("trajectories",), params=(N_BOOT, THREADS),
      random=True, presets=("persistence",))
def decay(ctx):
    """Decay fits of the trajectories (Figure 2 curves), bootstrapped over conversations."""
    from ...decay import fit_decay

    return fit_decay(ctx.results["trajectories"], probe_act=probe_act(ctx), n_boot=ctx.params["n_boot"],
                     seed=ctx.step_seed("decay"), threads=ctx.params["threads"], progress=ctx.progress)


@step("decay_profile", "decay fit of the mean lag profile", order=3.1, after=("profile",), params=(N_BOOT, THREADS),
      random=True, presets=("persistence",))
def decay_profile(ctx):
    """Decay fit of the lag profile averaged over probes, bootstrapped over conversations."""
    from ...decay import fit_decay

    return fit_decay(ctx.results["profile"], average_probes=True, probe_act=probe_act(ctx),
                     n_boot=ctx.params["n_boot"], seed=ctx.step_seed("decay_profile"), threads=ctx.params["threads"],
                     progress=ctx.progress)
