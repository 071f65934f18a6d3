"""emostats: statistics for the persistence of emotion features in language models.

>>> import emostats as es
>>> tree = es.open_study(es.example_study())

The public names are loaded lazily (on first use) so that ``import emostats``
and the command line stay fast: numba kernels and matplotlib load only when an
analysis that needs them runs. ``_PUBLIC`` maps each name to the module that
defines it; the ``TYPE_CHECKING`` block below imports the same names for readers
and type checkers. Code inside the package imports from the defining modules,
never through this map.
"""

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import ArgumentError, EmostatsError, MissingGroupError, OutputExistsError, StudyError

# public name -> module that defines it
_PUBLIC = {
    # study files
    "open_study": "io", "save": "io", "example_study": "io", "sha256": "io",
    "validate": "validation",
    "segment_offsets": "segments", "segments_of": "segments",
    # statistical core
    "permutation_test": "stats", "spearman": "stats", "pearson": "stats",
    "bh_fdr": "stats", "one_sample_tests": "stats", "to_table": "stats",
    # probe persistence
    "lag_persistence": "persistence", "lag_profile": "persistence",
    "trajectories": "persistence", "fit_decay": "decay", "affect_profile": "affect", "AffectState": "affect",
    # null models and geometry
    "random_directions": "nullmodels", "direction_persistence": "nullmodels",
    "moments": "nullmodels", "variance_matched": "nullmodels", "emotion_pcs": "nullmodels",
    "random_direction_sweep": "nullmodels",
    "subspace_fraction": "geometry", "cosine": "geometry",
    # SAE, steering, ratings
    "firing_persistence": "sae", "feature_density": "sae", "read_sparsity": "sae", "sae_matched": "sae",
    "steering_effect": "steering",
    "mention_tests": "ratings", "rating_analyses": "ratings",
    # statistics added to R's standard
    "kendall": "stats", "t_test": "stats", "p_adjust": "stats",
    # inference at the conversation level, probe meaning, looping turns
    "study_from_activations": "inference.activations",
    "ngram_repeat_share": "repetition", "persistence_by_looping": "repetition",
    # the whole study
    "run": "pipeline.engine",
}

if TYPE_CHECKING:  # the same names, eagerly, for readers and type checkers (tests check it mirrors _PUBLIC)
    from .io import example_study, open_study, save, sha256
    from .validation import validate
    from .segments import segment_offsets, segments_of
    from .stats import bh_fdr, one_sample_tests, pearson, permutation_test, spearman, to_table
    from .persistence import lag_persistence, lag_profile, trajectories
    from .decay import fit_decay
    from .affect import AffectState, affect_profile
    from .nullmodels import (direction_persistence, emotion_pcs, moments, random_direction_sweep,
                             random_directions, variance_matched)
    from .geometry import cosine, subspace_fraction
    from .sae import feature_density, firing_persistence, read_sparsity, sae_matched
    from .steering import steering_effect
    from .ratings import mention_tests, rating_analyses
    from .stats import kendall, p_adjust, t_test
    from .inference.activations import study_from_activations
    from .repetition import ngram_repeat_share, persistence_by_looping
    from .pipeline.engine import run

__all__ = sorted([*_PUBLIC, "__version__", "EmostatsError", "StudyError", "ArgumentError",
                  "MissingGroupError", "OutputExistsError"])


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'emostats' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
