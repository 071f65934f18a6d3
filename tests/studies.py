"""A tiny, hand-built valid study and the corpus of malformed variants of it.

Independent of :mod:`emostats.synth`, so the format tests do not depend on
the generator they check.
"""

import numpy as np
import xarray as xr

PROBES = ["afraid", "alarmed", "alert", "amazed"]


def tiny_study(seed=0):
    """A valid study with every group: 3 conversations x 2 turns, 4 probes."""
    rng = np.random.default_rng(seed)
    lengths = [5, 3, 4, 1, 6, 2]
    conv = np.repeat([0, 0, 1, 1, 2, 2], lengths)
    turn = np.repeat([1, 3, 1, 3, 1, 3], lengths)
    pos = np.concatenate([np.arange(n) for n in lengths])
    n, p, hidden, n_feat, k = len(conv), len(PROBES), 6, 10, 3
    sae = rng.integers(-1, n_feat, size=(n, k)).astype(np.int32)
    tokens = xr.Dataset(
        {
            "probe_act": (("token", "probe"), rng.normal(size=(n, p)).astype(np.float32)),
            "sae_index": (("token", "slot"), sae),
            "sae_value": (("token", "slot"), np.where(sae >= 0, rng.random((n, k)), 0).astype(np.float32)),
        },
        coords={"conversation": ("token", conv), "turn": ("token", turn), "position": ("token", pos),
                "probe": PROBES},
    )
    features = xr.Dataset(
        {"variance_explained": ("feature", rng.random(n_feat) * 0.01),
         "subspace_fraction": ("feature", rng.random(n_feat)),
         "self_rating": ("feature", np.where(np.arange(n_feat) < 5, rng.integers(0, 101, n_feat), np.nan)),
         "decoder": (("feature", "hidden"), rng.normal(size=(n_feat, hidden)))},
        coords={"feature": np.arange(n_feat)},
    )
    probes = xr.Dataset({"vector": (("probe", "hidden"), rng.normal(size=(p, hidden))),
                         "variance_explained": ("probe", rng.random(p) * 0.1)}, coords={"probe": PROBES})
    a = rng.normal(size=(hidden, hidden))
    cov = a @ a.T
    moments = xr.Dataset(
        {"mean": ("hidden", rng.normal(size=hidden)), "cov": (("hidden", "hidden_b"), cov), "n": 1000,
         "lag_n": ("lag", [500]), "lag_mean_x": (("lag", "hidden"), rng.normal(size=(1, hidden))),
         "lag_mean_y": (("lag", "hidden"), rng.normal(size=(1, hidden))),
         "lag_cxx": (("lag", "hidden", "hidden_b"), cov[None]), "lag_cyy": (("lag", "hidden", "hidden_b"), cov[None]),
         "lag_cxy": (("lag", "hidden", "hidden_b"), 0.3 * cov[None])},
        coords={"lag": [2]},
    )
    steering = xr.Dataset(
        {"steered_act": (("emotion", "sample", "offset", "probe"), rng.normal(size=(2, 3, 5, p))),
         "baseline_act": (("baseline_sample", "offset", "probe"), rng.normal(size=(4, 5, p)))},
        coords={"emotion": ["afraid", "amazed"], "offset": np.arange(5), "probe": PROBES},
    )
    evaluations = xr.Dataset(
        {"mentions": (("rated_feature", "emotion"), rng.integers(0, 2, size=(5, p)).astype(np.int8)),
         "cosine": (("rated_feature", "emotion"), rng.normal(size=(5, p)))},
        coords={"rated_feature": np.arange(5), "emotion": PROBES},
    )
    tree = xr.DataTree.from_dict({"/tokens": tokens, "/features": features, "/probes": probes,
                                  "/moments": moments, "/steering": steering, "/evaluations": evaluations})
    tree.attrs = {"emostats_format": 1, "model": "hand-built", "layer": 0, "source": "tests"}
    return tree


def _replace(tree, group, **changes):
    ds = tree[group].to_dataset(inherit=False)
    for name, value in changes.items():
        if value is None:
            ds = ds.drop_vars(name)
        else:
            ds = ds.assign({name: value}) if name not in ds.coords else ds.assign_coords({name: value})
    tree[group] = xr.DataTree(ds)
    return tree


def _set_attr(tree, **attrs):
    tree.attrs.update(attrs)
    for k, v in attrs.items():
        if v is None:
            tree.attrs.pop(k)
    return tree


def _tokens(tree):
    return tree["tokens"].to_dataset(inherit=False)


def malformed():
    """(name, tree, expected substring of a problem) for every rule of the format."""
    cases = []

    def add(name, mutate, expected):
        cases.append((name, mutate(tiny_study()), expected))

    add("format_missing", lambda t: _set_attr(t, emostats_format=None), "emostats_format missing")
    add("format_wrong", lambda t: _set_attr(t, emostats_format=2), "emostats_format is 2")
    add("tokens_missing", lambda t: xr.DataTree.from_dict(
        {"/features": t["features"].to_dataset(inherit=False)}, name=None), "/tokens: group missing")

    def split(t):
        conv = _tokens(t)["conversation"].values.copy()
        conv[-2:] = 0  # conversation 0 turn 3? make (0, 3) appear again at the end
        turn = _tokens(t)["turn"].values.copy()
        turn[-2:] = 3
        pos = _tokens(t)["position"].values.copy()
        pos[-2:] = [0, 1]
        return _replace(t, "tokens", conversation=("token", conv), turn=("token", turn), position=("token", pos))
    add("segment_split", split, "is not contiguous: it starts again at token 19")

    def position(t):
        pos = _tokens(t)["position"].values.copy()
        pos[6] = 7
        return _replace(t, "tokens", position=("token", pos))
    add("position_not_counting", position, "position at token 6 is 7; expected 1")
    add("position_float", lambda t: _replace(t, "tokens", position=("token", _tokens(t)["position"].values * 1.0)),
        "position has dtype float64")

    def sae_range(t):
        idx = _tokens(t)["sae_index"].values.copy()
        idx[4, 1] = 10
        return _replace(t, "tokens", sae_index=(("token", "slot"), idx))
    add("sae_index_out_of_range", sae_range, "sae_index at [4, 1] (token, slot) is 10; expected < n_features = 10")

    def sae_low(t):
        idx = _tokens(t)["sae_index"].values.copy()
        idx[2, 0] = -5
        return _replace(t, "tokens", sae_index=(("token", "slot"), idx))
    add("sae_index_below_minus_one", sae_low, "sae_index at [2, 0] (token, slot) is -5")
    add("sae_index_float", lambda t: _replace(t, "tokens", sae_index=(("token", "slot"),
                                                                     _tokens(t)["sae_index"].values.astype(float))),
        "sae_index has dtype float64")
    add("probe_names_duplicate", lambda t: _replace(t, "tokens", probe=["afraid", "alarmed", "afraid", "amazed"]),
        "probe name 'afraid' is not unique (again at probe index 2)")

    def nan(t):
        act = _tokens(t)["probe_act"].values.copy()
        act[3, 2] = np.nan
        act[8, 0] = np.inf
        return _replace(t, "tokens", probe_act=(("token", "probe"), act))
    add("probe_act_nan", nan, "probe_act has 2 NaN/inf values (first at index [3, 2]")
    add("probe_act_missing", lambda t: _replace(t, "tokens", probe_act=None), "variable probe_act missing")
    add("probe_act_int", lambda t: _replace(t, "tokens", probe_act=(("token", "probe"),
                                                                   np.zeros((21, 4), dtype=np.int32))),
        "probe_act has dtype int32")
    add("steering_probe_mismatch", lambda t: _replace(t, "steering", probe=["afraid", "alarmed", "alert", "bored"]),
        "/steering: probe at index 3 is 'bored'; expected 'amazed'")
    add("steering_unknown_emotion", lambda t: _replace(t, "steering", emotion=["afraid", "zesty"]),
        "/steering: emotion at index 1 is 'zesty'")
    add("probes_vector_dims", lambda t: _replace(t, "probes", vector=(("hidden", "probe"), np.zeros((6, 4)))),
        "/probes: vector has dims (hidden, probe); expected (probe, hidden)")
    add("hidden_mismatch", lambda t: _replace(t, "probes", vector=(("probe", "hidden"), np.zeros((4, 7)))),
        "dim hidden differs across groups")
    add("mentions_not_binary", lambda t: _replace(t, "evaluations", mentions=(
        ("rated_feature", "emotion"), np.full((5, 4), 2, dtype=np.int8))), "mentions at [0, 0] (rated_feature, emotion) is 2")
    add("rated_feature_unknown", lambda t: _replace(t, "evaluations", rated_feature=[0, 1, 2, 3, 99]),
        "rated_feature at index 4 is 99")
    add("moments_missing_cov", lambda t: _replace(t, "moments", cov=None), "/moments: variable cov missing")
    add("features_duplicate_id", lambda t: _replace(t, "features", feature=[0, 1, 2, 3, 4, 5, 6, 7, 8, 8]),
        "/features: feature id 8 is not unique")
    add("variance_explained_out_of_range", lambda t: _replace(
        t, "features", variance_explained=("feature", np.r_[np.zeros(9), 1.5])),
        "/features: variance_explained at feature index 9 is 1.5")
    return cases
