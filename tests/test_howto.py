"""The worked example of docs/how-to-add-a-step.md runs as written: a Kendall-tau step added by its
own module joins the registry, the persistence preset and the report, and gives scipy's numbers."""

import re
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

import emostats as es
from emostats.pipeline import registry
from emostats.report import sections

DOC = Path(__file__).resolve().parents[1] / "docs" / "how-to-add-a-step.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.fixture
def kendall_step(monkeypatch):
    """The page's analysis and step, registered for one test (the registry is restored after it)."""
    import emostats.persistence

    analysis, step_code, section_code = _blocks()
    ns = {}
    exec(analysis, ns)  # noqa: S102 - the documentation's own code
    monkeypatch.setattr(emostats.persistence, "kendall_persistence", ns["kendall_persistence"], raising=False)
    exec(step_code, {})  # noqa: S102
    new = registry._PENDING.pop()
    saved = dict(registry.STEPS)
    steps = sorted([*saved.values(), new], key=lambda s: s.order)
    registry.STEPS.clear()
    registry.STEPS.update({s.name: s for s in steps})
    section_ns = {}
    exec(section_code, section_ns)  # noqa: S102
    try:
        yield ns["kendall_persistence"], section_ns["_sec_kendall"]
    finally:
        registry.STEPS.clear()
        registry.STEPS.update(saved)
        sections._SECTIONS.pop("kendall", None)


def test_the_worked_example_runs(kendall_step, small_study):
    kendall_persistence, build_section = kendall_step
    assert "kendall" in registry.preset_steps("persistence")
    res = es.run(small_study, preset="persistence", lag=7, max_lag=20, n_boot=0, progress=False, quiet=True)
    assert "kendall" in res.children and res.attrs["param_lag"] == 7
    assert res["kendall"].attrs["step"] == "kendall"
    # scipy on the valid pairs, found here from the coordinates directly
    with es.open_study(small_study) as study:
        act = study["tokens"]["probe_act"].load()
    conv, turn = act["conversation"].values, act["turn"].values
    same = (conv[:-7] == conv[7:]) & (turn[:-7] == turn[7:])
    t = np.flatnonzero(same)
    x = act.values.astype(np.float64)
    expected = [kendalltau(x[t, j], x[t + 7, j], nan_policy="omit").statistic for j in range(x.shape[1])]
    np.testing.assert_allclose(res["kendall"]["tau"].values, expected, rtol=1e-12)
    assert int(res["kendall"]["n_pairs"]) == t.size
    sec = build_section(res, {})
    assert sec.title.startswith("Kendall-tau") and "Mean Kendall tau" in sec.blocks[0].text
    # a lag beyond every turn: no pairs, tau NaN (scipy warns that the samples are too small)
    with pytest.warns(Warning):
        empty = kendall_persistence(act, lag=10_000)
    assert int(empty["n_pairs"]) == 0 and np.isnan(empty["tau"].values).all()
