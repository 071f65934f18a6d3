"""Inference a statistician can trust: conversation-level uncertainty and placebo nulls.

Tokens within a turn, turns within a conversation and probes measured on the
same turns are not independent; the unit of resampling here is the
*conversation*. Public names:

- :func:`conversation_bootstrap`: intervals (percentile, BCa) and a
  conversation-level p for every headline number, from per-conversation
  sufficient statistics (no second pass over tokens per replicate);
- :func:`within_turn_persistence`: pooled vs within-turn lag r and the
  between-turn share, for probes and stored directions;
- :func:`placebo_nulls`: random probe sets and random spans put through the
  same analyses, exactly from ``/moments``;
- :func:`study_from_activations`: a study, ``/conv_moments`` included, from
  per-token hidden activations.

See ``docs/inference.md``.
"""

from .activations import conversation_moments, study_from_activations
from .bootstrap import conversation_bootstrap
from .placebo import placebo_nulls
from .within import within_turn_persistence

__all__ = ["conversation_bootstrap", "within_turn_persistence", "placebo_nulls", "study_from_activations",
           "conversation_moments"]
