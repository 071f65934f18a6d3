"""The statistical core: permutation tests, correlations, FDR and one-sample tests.

Every function takes xarray objects (or NumPy arrays) and returns an
``xarray.Dataset``; :func:`to_table` turns one into a tidy pandas table.
"""

from ._common import DegenerateWarning
from .correlation import pearson, spearman
from .multitest import bh_fdr
from .onesample import one_sample_tests
from .permutation import permutation_test
from .tables import to_table

__all__ = ["permutation_test", "spearman", "pearson", "bh_fdr", "one_sample_tests", "to_table",
           "DegenerateWarning"]
