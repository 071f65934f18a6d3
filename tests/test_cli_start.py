"""What a command imports at start (issue 15): only what it uses.

``info`` and the preset commands without ``--chunks`` read the study into
memory, so dask (which xarray would import, with scipy.sparse, at its first
Variable) stays out of the process; the extractor's pipeline is imported only
by ``emostats extract``. Each check runs a fresh interpreter with
``-X importtime`` and reads the modules it imported.
"""

import re
import subprocess
import sys

import emostats as es


def _imported(*args):
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "emostats", *args], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    names = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", done.stderr, flags=re.M))
    assert "xarray" in names or args[0] == "--help", "importtime output was not parsed"
    return names, done


def test_info_imports_no_dask_no_scipy_no_extractor():
    names, done = _imported("info", str(es.example_study()))
    assert "segments:" in done.stdout
    assert not {n for n in names if n.split(".")[0] in ("dask", "scipy", "numba", "matplotlib")}
    assert not {n for n in names if n.startswith("extract")}


def test_help_imports_no_extractor_pipeline_but_extract_help_has_its_options():
    names, _ = _imported("--help")
    assert "extract.pipeline" not in names and "xarray" not in names
    done = subprocess.run([sys.executable, "-m", "emostats", "extract", "--help"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "--stage" in done.stdout


def test_chunks_still_uses_dask(tmp_path):
    out = tmp_path / "res.nc"
    done = subprocess.run([sys.executable, "-m", "emostats", "persistence", str(es.example_study()), "--chunks",
                           "5000", "--n-boot", "0", "-q", "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.stat().st_size > 0
