"""Step of SPEC.md analysis 11: the causal effect of steering."""

from ..params import ALPHA
from ..registry import step


@step("steering", "causal effect of steering", order=11.0, needs=("steering",), params=(ALPHA,))
def steering(ctx):
    """Per (emotion, offset): z of the steered contrast against baseline, BH-FDR across emotions."""
    from ...steering import steering_effect

    return steering_effect(ctx.group("steering"), alpha=ctx.params["alpha"])
