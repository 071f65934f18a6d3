"""The runtime dependency list is exactly what the package imports; the metadata users look for is there."""

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: distribution name -> module name, where they differ
MODULE_OF = {"pyyaml": "yaml", "netcdf4": "netCDF4"}
#: imported only behind a guard by the optional extract command (the extract extra)
OPTIONAL = {"extract", "torch", "transformers"}


def _name(requirement):
    return re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower().replace("_", "-")


def _imports(folder):
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    # the header probe of emostats._fileguard runs netCDF4 in a child process from a source string
    if "import netCDF4" in (folder / "_fileguard.py").read_text():
        found.add("netCDF4")
    return found - set(sys.stdlib_module_names) - {"emostats"}


def test_runtime_dependencies_are_exactly_the_imports():
    declared = {MODULE_OF.get(_name(r), _name(r)) for r in PYPROJECT["project"]["dependencies"]}
    imported = _imports(ROOT / "emostats") - OPTIONAL
    assert declared == imported, (sorted(declared - imported), sorted(imported - declared))


def test_reference_libraries_only_in_the_test_extra():
    core = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    test = {_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]}
    assert {"pingouin", "statsmodels"} <= test and not {"pingouin", "statsmodels", "distributed"} & core
    assert {_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["dask"]} == {"distributed", "bokeh"}


def test_metadata():
    project = PYPROJECT["project"]
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(project["urls"])
    assert "Typing :: Typed" in project["classifiers"]
    assert (ROOT / "emostats" / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["emostats"]
