"""Step of SPEC.md analysis 12: the study's closing paragraph as a table (see :mod:`emostats.pipeline.summary`)."""

from ..params import ALPHA, LAG
from ..registry import step


@step("summary", "the study's closing paragraph as a table", order=12.0, params=(LAG, ALPHA))
def summary(ctx):
    """One row per number of the study's closing paragraph, read from the steps that ran."""
    from ..summary import summary_table

    return summary_table(ctx.results, ctx.params, ctx.study, skipped=ctx.skipped)
