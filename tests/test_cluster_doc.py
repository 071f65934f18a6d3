"""The script of docs/cluster.md runs as written on a LocalCluster and gives the in-memory numbers."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed", reason="the dask extra is not installed (pip install 'emostats[dask]')")
pytest.importorskip("bokeh", reason="the dask extra is not installed (pip install 'emostats[dask]')")

DOC = Path(__file__).resolve().parents[1] / "docs" / "cluster.md"


def test_cluster_snippet_runs_and_matches_memory(tmp_path):
    import emostats as es
    from emostats import synth

    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1
    (tmp_path / "snippet.py").write_text(blocks[0])
    tree, _ = synth.make_study(n_tokens=12_000, n_probes=6, n_features=60, k=6, hidden=32, seed=3,
                               groups=["tokens", "features"])
    es.save(tree, tmp_path / "study.nc")
    run = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "dashboard: http" in run.stdout
    report = (tmp_path / "dask-report.html").read_text()
    assert "bokeh" in report.lower()  # performance_report rendered its plots (needs bokeh)
    got = es.open_study(tmp_path / "results.nc", validate=False)
    want = es.run(es.open_study(tmp_path / "study.nc"), steps=["persistence", "sae_persistence"], progress=False)
    for group, var in (("persistence", "r"), ("sae_persistence", "persistence")):
        np.testing.assert_allclose(got[group][var].values, want[group][var].values, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(got["sae_persistence"]["n_fires"].values, want["sae_persistence"]["n_fires"].values)
