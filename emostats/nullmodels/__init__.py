"""Null models: random and variance-matched directions, emotion PCs (SPEC.md section 2, analyses 4-6).

What separates "emotion features persist" from "high-variance directions
persist". One module per purpose, every public name re-exported here:

- :mod:`~emostats.nullmodels.streamed`: :func:`moments`, the ``/moments`` group
  from raw activations in one streamed pass (also dask chunk by chunk);
- :mod:`~emostats.nullmodels.eigenspace`: the top-k eigenspaces of the
  activation covariance, computed once: stored in ``/moments``
  (:func:`store_eigenspace`, ``moments(..., eigenvectors=...)``) or cached
  (:func:`leading_eigenspace`);
- :mod:`~emostats.nullmodels.sphere`: :func:`random_directions`,
  :func:`random_direction_sweep`: unit vectors uniform on the sphere of the
  hidden space or of a top-k eigenspace;
- :mod:`~emostats.nullmodels.from_moments`: :func:`direction_persistence`,
  the lag persistence and variance explained of any directions, exactly from
  ``/moments`` (or read from ``/random``);
- :mod:`~emostats.nullmodels.matching`: :func:`variance_matched`, residual
  persistence above the ``n`` candidates nearest in variance explained, with
  one-sample tests;
- :mod:`~emostats.nullmodels.emotion_space`: :func:`emotion_pcs`, PCA of the
  probe activations, each PC's persistence, direction, variance explained and
  residual.

Examples
--------
>>> import numpy as np
>>> from emostats.nullmodels import direction_persistence, moments, random_directions
>>> acts = np.cumsum(np.random.default_rng(0).normal(size=(300, 4)), axis=0)
>>> mom = moments(acts, lags=[5], offsets=[0, 150, 300])
>>> res = direction_persistence(mom, random_directions(mom, 10, seed=1))
>>> res["r"].shape
(10,)
"""

from .eigenspace import (clear_eigenspace_cache, covariance_array, default_ks, leading_eigenspace, store_eigenspace,
                         sweep_k, top_eigenvectors)
from .emotion_space import emotion_pcs, pc_directions, pca_from_cov, probe_act_vectors
from .from_moments import DEFAULT_LAG, direction_persistence, quadratic_forms, select_lag
from .matching import nearest_by_variance, variance_matched
from .sphere import random_direction_sweep, random_directions, split_evenly
from .streamed import MomentAccumulator, moment_arrays, moments

__all__ = [
    "moments", "moment_arrays", "MomentAccumulator",
    "top_eigenvectors", "leading_eigenspace", "store_eigenspace", "clear_eigenspace_cache", "sweep_k",
    "covariance_array",
    "random_directions", "random_direction_sweep", "default_ks", "split_evenly",
    "direction_persistence", "quadratic_forms", "select_lag", "DEFAULT_LAG",
    "variance_matched", "nearest_by_variance",
    "emotion_pcs", "pca_from_cov", "pc_directions", "probe_act_vectors",
]
