"""Plot functions of Figure 2 and the lag profile (issue 4): they draw what they are given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import emostats as es  # noqa: E402
from emostats.plots.persistence import plot_decay_fit, plot_lag_profile, plot_trajectories  # noqa: E402


@pytest.fixture(scope="module")
def act():
    from emostats import synth

    tree, _ = synth.make_study(n_tokens=8000, n_probes=5, n_features=0, k=4, hidden=16, groups=("tokens",), seed=4)
    return tree["tokens"]["probe_act"]


def test_trajectories_plot_has_one_line_per_bin(act):
    tr = es.trajectories(act, max_lag=40)
    ax = plot_trajectories(tr)
    lines = [l for l in ax.get_lines() if l.get_label().startswith("|z|")]
    assert len(lines) == 4
    np.testing.assert_allclose(lines[0].get_ydata(), tr["mean"].isel(bin=0).values)
    assert "tokens" in ax.get_xlabel() and "sd" in ax.get_ylabel()
    plt.close("all")


def test_lag_profile_plot_draws_the_probe_mean(act):
    prof = es.lag_profile(act, max_lag=30)
    fig, ax = plt.subplots()
    assert plot_lag_profile(prof, ax=ax, show_probes=True) is ax
    mean_line = next(l for l in ax.get_lines() if l.get_label().startswith("mean over 5"))
    np.testing.assert_allclose(mean_line.get_ydata(), prof.r.mean("probe").values)
    assert ax.get_xlabel() == "lag L (tokens)"
    plt.close(fig)


def test_decay_fit_plot_for_trajectories_and_mean_profile(act):
    tr = es.trajectories(act, max_lag=40)
    fit = es.fit_decay(tr, n_boot=0)
    ax = plot_decay_fit(tr, fit, log_x=True)
    labels = [l.get_label() for l in ax.get_lines() if not l.get_label().startswith("_")]
    assert len(labels) == 4 and all("half-lives" in t or "no fit" in t for t in labels)
    assert ax.get_xscale() == "log"
    prof = es.lag_profile(act, max_lag=40)
    fit = es.fit_decay(prof, average_probes=True, n_boot=0)
    ax = plot_decay_fit(prof, fit)
    fitted = [l for l in ax.get_lines() if "half-lives" in l.get_label()]
    np.testing.assert_allclose(fitted[0].get_ydata(), fit.fitted.values)
    plt.close("all")
