"""Brute-force twins used to check the planted truth of emostats.synth.

Deliberately simple: valid pairs by comparing the coordinates of t and t + L,
Pearson r by two-pass NumPy, firing by a dense boolean (token x feature) matrix.
"""

import numpy as np


def valid_pairs(conversation, turn, lag):
    """Indices t with t + lag in the same (conversation, turn)."""
    conversation = np.asarray(conversation)
    turn = np.asarray(turn)
    n = conversation.size
    t = np.arange(max(0, n - lag))
    same = (conversation[t] == conversation[t + lag]) & (turn[t] == turn[t + lag])
    return t[same]


def pearson(a, b):
    """Pearson r of the columns of a and b (two-pass, float64)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def lag_r(x, conversation, turn, lag):
    """Pooled lag-``lag`` Pearson r of every column of x over valid pairs."""
    t = valid_pairs(conversation, turn, lag)
    x = np.asarray(x)
    return pearson(x[t], x[t + lag])


def fire_matrix(index, n_features):
    """Dense boolean (token, feature): feature f fires at token t when f is in row t."""
    index = np.asarray(index)
    fires = np.zeros((index.shape[0], n_features), dtype=bool)
    rows, slots = np.nonzero(index >= 0)
    fires[rows, index[rows, slots]] = True
    return fires


def firing_difference(index, conversation, turn, lag, n_features):
    """P(fire t+L | fire t) - P(fire t+L | not fire t) per feature, and the fire counts at t."""
    fires = fire_matrix(index, n_features)
    t = valid_pairs(conversation, turn, lag)
    a, b = fires[t], fires[t + lag]
    n_fire = a.sum(0)
    n_not = (~a).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = (a & b).sum(0) / n_fire - (~a & b).sum(0) / n_not
    return diff, n_fire
