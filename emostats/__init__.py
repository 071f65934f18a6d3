"""emostats: statistics for the persistence of emotion features in language models.

>>> import emostats as es
>>> tree = es.open_study(es.example_study())

The public names are loaded lazily (on first use) so that ``import emostats``
and the command line stay fast: numba kernels and matplotlib load only when an
analysis that needs them runs.
"""

import importlib

from ._version import __version__
from .errors import EmostatsError, MissingGroupError, OutputExistsError, StudyError

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
    "random_direction_sweep": "nullmodels", "nullmodel_analysis": "nullmodels",
    "subspace_fraction": "geometry", "cosine": "geometry",
    # SAE, steering, ratings
    "firing_persistence": "sae", "feature_density": "sae", "sae_matched": "sae",
    "steering_effect": "steering",
    "mention_tests": "ratings", "rating_analyses": "ratings",
    # the whole study
    "run": "runner",
}

__all__ = sorted([*_PUBLIC, "__version__", "EmostatsError", "StudyError",
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
