"""Steps that say whether the probes mean their words and whether the turns loop (issue 17).

- ``probe_check``: near-synonym and opposite probe pairs against all pairs, and the first
  probe PC against valence (:func:`emostats.probe_check.probe_check`); any study has it
  (cosines of ``/probes`` vectors, else correlations of ``/tokens`` activations).
- ``looping``: lag persistence over all turns, the non-looping and the looping turns
  (:func:`emostats.repetition.persistence_by_looping`), for studies whose extractor stored
  the per-turn n-gram repeat share ``/tokens`` ``repeat_share``.
"""

from ... import defaults as D
from ..params import LAG, THREADS, Param
from ..registry import step
from ._study import ACT, probe_act, probe_vectors

LOOP_THRESHOLD = Param("loop_threshold", D.LOOP_THRESHOLD, "a turn loops when more than this share of its "
                       "8-grams repeat an earlier 8-gram of the turn (/tokens repeat_share)", kind="float")


@step("probe_check", "do the probes mean their emotion words", order=1.05,
      needs=(("probes/vector", "tokens/probe_act"),), random=True)
def probe_check(ctx):
    """Near-synonym and opposite probe pairs against all pairs; the first probe PC against valence."""
    from ...probe_check import probe_check as check

    vectors = probe_vectors(ctx)
    if vectors is not None:
        return check(vectors, seed=ctx.step_seed("probe_check"))
    return check(probe_act=probe_act(ctx), seed=ctx.step_seed("probe_check"))


@step("looping", "persistence with and without looping turns", order=1.06,
      needs=(*ACT, "tokens/repeat_share"), params=(LAG, LOOP_THRESHOLD, THREADS), presets=("persistence",))
def looping(ctx):
    """Lag persistence over all turns, the non-looping turns and the looping turns."""
    from ...repetition import persistence_by_looping

    return persistence_by_looping(probe_act(ctx), ctx.study["tokens"]["repeat_share"], lag=ctx.params["lag"],
                                  threshold=ctx.params["loop_threshold"], threads=ctx.params["threads"])
