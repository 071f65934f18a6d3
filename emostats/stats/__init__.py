"""The statistical core: permutation tests, correlations, FDR and one-sample tests.

Every function takes xarray objects (or NumPy arrays) and returns an
``xarray.Dataset``; :func:`to_table` turns one into a tidy pandas table.
"""

from ._common import DegenerateWarning
from .correlation import kendall, pearson, spearman
from .multitest import bh_fdr, p_adjust
from .onesample import one_sample_tests
from .permutation import permutation_test
from .ttest import t_test
from .tables import to_table

__all__ = ["permutation_test", "spearman", "pearson", "kendall", "bh_fdr", "p_adjust", "t_test", "one_sample_tests",
           "to_table",
           "DegenerateWarning"]
