"""Calibration of the conversation-level test on the null world (issue 14).

Fast version by default (40 small null studies); ``EMOSTATS_CALIBRATION=full``
runs 300 (the numbers in docs/inference.md).
"""

import os

import numpy as np
from scipy import stats

from emostats.inference._resample import jackknife_p, jackknife_weights
from emostats.inference.bootstrap import build_headlines
from emostats.synth import make_world

FULL = os.environ.get("EMOSTATS_CALIBRATION") == "full"
N = 300 if FULL else 40
G = 12


def test_conversation_test_holds_its_level_where_the_probe_test_does_not():
    cluster = naive = 0
    for s in range(N):
        tree, _ = make_world("null", seed=5000 + s, n_conversations=G)
        h, _ = build_headlines(tree, 10)
        est = h.evaluate(np.ones((1, G)))["residual_mean"][0]
        jack = h.evaluate(jackknife_weights(G))["residual_mean"]
        cluster += jackknife_p(est, jack) < 0.05
        res = h.probe_residuals(np.ones((1, G)))[0]
        naive += stats.ttest_1samp(res, 0).pvalue < 0.05
    mc = 3 * np.sqrt(0.05 * 0.95 / N)  # three Monte Carlo standard errors
    assert cluster / N <= 0.05 + mc, cluster / N
    assert naive / N > 0.05 + mc, naive / N  # the t-test over probes over-rejects (0.31 of 300 studies)
