"""On-disk verdicts of costly checks (issue 15): a large covariance is factorised once, not at every opening."""

import numpy as np

import emostats._validate_groups as vg


def test_psd_verdict_is_remembered_by_content(monkeypatch, tmp_path):
    rng = np.random.default_rng(3)
    monkeypatch.setenv("EMOSTATS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(vg, "PSD_CACHE_MIN", 8)
    calls = []
    real = np.linalg.cholesky
    monkeypatch.setattr(np.linalg, "cholesky", lambda a: calls.append(1) or real(a))
    a = rng.normal(size=(50, 12))
    cov = a.T @ a / 50
    assert vg._covariance("cov", cov) is None and calls == [1]
    assert len(list((tmp_path / "psd").iterdir())) == 1
    assert vg._covariance("cov", cov) is None and calls == [1]  # remembered: not factorised again
    other = cov + np.eye(12)
    assert vg._covariance("cov", other) is None and calls == [1, 1]  # other content: factorised
    bad = np.diag(np.r_[np.ones(11), -0.5])  # positive trace, not PSD: never remembered, refused every time
    assert "not positive semidefinite" in vg._covariance("cov", bad)
    assert "not positive semidefinite" in vg._covariance("cov", bad)
    assert calls == [1, 1, 1, 1] and len(list((tmp_path / "psd").iterdir())) == 2
    monkeypatch.setenv("EMOSTATS_CACHE_DIR", "off")
    assert vg._covariance("cov", cov) is None and calls == [1, 1, 1, 1, 1]  # off: always factorised
