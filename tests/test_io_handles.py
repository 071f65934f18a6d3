"""A caller's lazily opened handle to a study does not stay open beside emostats' own open of the file.

Seen in the extract tests: ``xr.open_datatree(path)`` kept lazily, then ``es.run(path)`` and
``es.open_study(path)`` in the same process, segfaulted inside netCDF-C when the first handle
was finalised. ``emostats.io`` now closes xarray's cached handles of a path before opening it;
xarray reopens them on the caller's next access.
"""

import numpy as np
import xarray as xr

import emostats as es
from emostats import synth


def _cached_paths():
    from xarray.backends.file_manager import FILE_CACHE

    return [str(key[1][0]) for key in list(FILE_CACHE.keys()) if len(key) > 1 and key[1]]


def test_open_study_closes_a_cached_handle_and_the_lazy_tree_still_reads(tmp_path):
    tree, _ = synth.make_study(n_tokens=800, n_probes=3, n_features=30, k=4, hidden=12, n_conversations=2,
                               turn_length=(100, 300), seed=4)
    path = tmp_path / "study.nc"
    es.save(tree, path)
    lazy = xr.open_datatree(path)
    first = lazy["tokens"]["probe_act"].values.copy()  # reading opens the file into xarray's cache
    assert str(path) in _cached_paths()
    study = es.open_study(path)
    assert str(path) not in _cached_paths()  # closed before emostats opened the file itself
    again = lazy["tokens"]["probe_act"].values  # the caller's tree reopens it on demand
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(study["tokens"]["probe_act"].values, first)
    lazy.close()
