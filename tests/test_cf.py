"""CF labels of the files emostats writes (emostats._cf via emostats.io.save)."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import emostats as es
from emostats._cf import CF_VERSION, cf_label, portable


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from emostats import synth
    tree, _ = synth.make_study(n_tokens=1500, n_probes=5, n_features=40, k=4, hidden=32, seed=1,
                               n_rated=10, n_steer_emotions=3, n_steer_samples=3, n_baseline=3, n_offsets=6,
                               random_directions=4)
    tree.attrs.update(model="/somewhere/on/this/machine/models/model.gguf",
                      command="python -m extract -o /somewhere/else/study.nc --model=/x/y/m.gguf --layer 3")
    path = tmp_path_factory.mktemp("cf") / "study.nc"
    es.save(tree, path)
    return path


def _variables(tree):
    for node in tree.subtree:
        ds = node.to_dataset(inherit=False)
        for name, var in ds.variables.items():
            yield node.path, name, var, name in ds.coords


def _open(path):
    """The tree in memory, its file closed (netCDF4-python below opens the same file)."""
    with xr.open_datatree(path) as tree:
        return tree.load()


def test_every_variable_and_coordinate_is_labelled(saved):
    tree = _open(saved)
    assert tree.attrs["Conventions"] == CF_VERSION == "CF-1.8"
    seen = 0
    for group, name, var, is_coord in _variables(tree):
        seen += 1
        assert var.attrs.get("long_name"), (group, name)
        numeric = var.dtype.kind in "fiu" and "flag_values" not in var.attrs and "dtype" not in var.encoding
        if var.dtype.kind == "f" or (numeric and is_coord):
            assert var.attrs.get("units") == "1", (group, name)
        if var.dtype.kind in "OUSb" or "flag_values" in var.attrs:
            assert "units" not in var.attrs, (group, name)
    assert seen >= 30


def test_sae_index_stays_int_with_minus_one_in_every_reader(saved):
    with xr.open_dataset(saved, group="tokens") as tokens:  # plain xarray, default decoding
        idx = tokens["sae_index"].load()
    assert idx.dtype == np.int32 and (idx.values == -1).any()
    assert "_FillValue" not in idx.attrs and "_FillValue" not in idx.encoding
    assert idx.attrs["flag_meanings"] == "empty_slot" and np.atleast_1d(idx.attrs["flag_values"]).tolist() == [-1]
    netCDF4 = pytest.importorskip("netCDF4")
    with netCDF4.Dataset(saved) as nc:  # netCDF4-python with its default auto-masking
        var = nc["tokens"]["sae_index"]
        assert "_FillValue" not in var.ncattrs()
        raw = var[:]
        assert raw.dtype == np.int32 and not np.ma.is_masked(raw)
        np.testing.assert_array_equal(np.ma.getdata(raw), idx.values)
    if "h5netcdf" in xr.backends.list_engines():  # in a child: h5py's HDF5 and netCDF4's in one process can crash
        code = ("import sys, numpy as np, xarray as xr\n"
                "with xr.open_dataset(sys.argv[1], group='tokens', engine='h5netcdf') as ds:\n"
                "    v = ds['sae_index']\n"
                "    print(v.dtype, int((v.values == -1).sum()), int(v.values.sum()))\n")
        out = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True, timeout=300)
        assert out.stdout.split() == ["int32", str(int((idx.values == -1).sum())), str(int(idx.values.sum()))], out.stderr
    study = es.open_study(saved)
    assert es.validate(study) == []
    study.close()


def test_no_machine_paths(saved):
    tree = _open(saved)
    assert tree.attrs["model"] == "model.gguf"
    assert tree.attrs["command"] == "python -m extract -o study.nc --model=m.gguf --layer 3"
    for node in tree.subtree:
        for value in node.attrs.values():
            assert "/somewhere" not in str(value)


def test_cf_label_keeps_writer_labels_and_copies():
    ds = xr.Dataset({"r": ("probe", [0.1, 0.2], {"long_name": "lag persistence", "units": "1"}),
                     "included": ("probe", [True, False]),
                     "mentions": (("rated_feature",), np.array([0, 1], dtype=np.int8))},
                    coords={"probe": ["a", "b"], "rated_feature": [3, 7]}, attrs={"Conventions": "ACDD-1.3"})
    out = cf_label(ds)
    assert out["r"].attrs["long_name"] == "lag persistence"
    assert out.attrs["Conventions"] == "CF-1.8, ACDD-1.3"
    assert "units" not in out["included"].attrs and "units" not in out["probe"].attrs
    assert out["rated_feature"].attrs["units"] == "1"
    assert out["mentions"].attrs["flag_meanings"] == "not_mentioned mentioned" and "units" not in out["mentions"].attrs
    assert "units" not in ds["included"].attrs and "Conventions" not in ds["r"].attrs  # input untouched
    assert cf_label(out).attrs["Conventions"] == "CF-1.8, ACDD-1.3"  # idempotent


def test_portable():
    assert portable("/a/b/c.nc") == "c.nc" and portable("x/c.nc") == "x/c.nc"


def _cfchecks():
    exe = shutil.which("cfchecks") or shutil.which("cfchecks", path=str(__import__("pathlib").Path(sys.executable).parent))
    if exe is None:
        pytest.skip("cfchecker is not installed (pip install cfchecker; it needs libudunits2)")
    try:
        import cfunits  # noqa: F401  (raises when the udunits2 C library is missing)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"cfchecker cannot run: {exc}")
    return exe


def test_cf_checker(saved, tmp_path):
    """cfchecker 4.1.0 (CF <= 1.8) on each group written as a file of its own: it reads only the root
    group of a file. Its one complaint, vlen string variables, is a limit of the checker: CF-1.8
    section 2.2 allows the netCDF-4 string type. The standard-name and area-type tables are local
    stand-ins (no variable uses a standard_name), so nothing is fetched."""
    exe = _cfchecks()
    netCDF4 = pytest.importorskip("netCDF4")
    table = tmp_path / "names.xml"
    table.write_text('<?xml version="1.0"?><standard_name_table><version_number>0</version_number>'
                     '<last_modified>none</last_modified></standard_name_table>')
    areas = tmp_path / "areas.xml"
    areas.write_text('<?xml version="1.0"?><table><version_number>0</version_number><date>none</date></table>')
    with netCDF4.Dataset(saved) as nc:
        groups = list(nc.groups)
        conventions = nc.getncattr("Conventions")
    for group in groups:
        one = tmp_path / f"{group}.nc"
        with xr.open_dataset(saved, group=group, decode_cf=False) as ds:
            ds = ds.load()
        ds.attrs["Conventions"] = conventions
        ds.to_netcdf(one, format="NETCDF4")
        out = subprocess.run([exe, "-v", "1.8", "-s", str(table), "-a", str(areas), "-r", str(areas), str(one)],
                             capture_output=True, text=True, timeout=300).stdout
        lines = [line for line in out.splitlines() if line.startswith(("ERROR:", "WARN:"))]
        other = [line for line in lines if "vlen types not supported" not in line]
        assert not other, (group, other)
        assert "Checking against CF Version CF-1.8" in out


def test_results_file_is_labelled(saved, tmp_path):
    results = es.run(saved, progress=False, quiet=True, n_random=50, n_candidates=100, n_boot=0,
                     n_perm=200)
    path = tmp_path / "results.nc"
    es.save(results, path)
    tree = _open(path)
    assert tree.attrs["Conventions"] == CF_VERSION
    assert tree.attrs["input_files"] == "study.nc"  # the input's name, not the folder it was in
    n = 0
    for group, name, var, _is_coord in _variables(tree):
        n += 1
        assert var.attrs.get("long_name"), (group, name)
        if var.dtype.kind == "f":
            assert var.attrs.get("units") == "1", (group, name)
    assert n > 100
