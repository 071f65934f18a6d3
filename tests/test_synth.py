"""emostats.synth: determinism, format, and the planted truth checked by brute force."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import emostats as es
from emostats import synth
from emostats.cli import main as cli_main
from emostats.errors import EmostatsError
from tests.naive import synth as naive

SMALL = dict(n_tokens=3000, n_probes=10, n_features=120, k=6, hidden=32, n_steer_emotions=4,
             n_steer_samples=3, n_baseline=3, n_offsets=30, n_rated=40, random_directions=3)
#: a sampling-error band: |observed - expected| < Z_BAND * standard error
Z_BAND = 6.0


def _groups(tree):
    return {node.path: node.to_dataset(inherit=False) for node in tree.subtree if node.path != "/"}


def _assert_same(tree_a, tree_b):
    ga, gb = _groups(tree_a), _groups(tree_b)
    assert ga.keys() == gb.keys()
    for name in ga:
        xr.testing.assert_identical(ga[name], gb[name])


def _group_se(stat, conversation, n_groups=20):
    """Standard error of a pooled statistic from its spread over groups of conversations."""
    parts = np.stack([stat(conversation % n_groups == g) for g in range(n_groups)])
    n = np.isfinite(parts).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 10, np.nanstd(parts, 0, ddof=1) / np.sqrt(n), np.inf)


@pytest.fixture(scope="module")
def small():
    return synth.make_study(**SMALL, seed=3)


@pytest.fixture(scope="module")
def big_probes():
    """Long study for probe dynamics and moments (float64 so moments compare at 1e-9)."""
    return synth.make_study(n_tokens=400_000, n_probes=6, n_features=0, hidden=40, seed=11, lags=(1, 10, 100),
                            groups=("tokens", "moments", "probes", "random"), random_directions=4,
                            dtype="float64")


@pytest.fixture(scope="module")
def big_sae():
    return synth.make_study(n_tokens=300_000, n_probes=2, n_features=150, k=16, hidden=16, seed=5,
                            groups=("tokens", "features"), turn_length=(30, 600))


# ----------------------------------------------------------------------------- determinism, format
def test_same_seed_same_bits_different_seed_differs(small):
    tree, truth = small
    again, truth2 = synth.make_study(**SMALL, seed=3)
    _assert_same(tree, again)
    xr.testing.assert_identical(truth, truth2)
    other, _ = synth.make_study(**SMALL, seed=4)
    for group, var in (("tokens", "probe_act"), ("tokens", "sae_index"), ("steering", "steered_act"),
                       ("features", "subspace_fraction"), ("moments", "cov"), ("random", "random_act")):
        a, b = tree[group][var].values, other[group][var].values
        assert a.shape != b.shape or not np.array_equal(a, b), f"{group}/{var} did not change with the seed"


def test_thread_count_does_not_change_data():
    kwargs = dict(SMALL, n_tokens=5000, seed=8)
    one, _ = synth.make_study(**kwargs, threads=1)
    two, _ = synth.make_study(**kwargs, threads=2)
    _assert_same(one, two)


def test_group_subset_gives_the_same_data(small):
    tree, _ = small
    only, _ = synth.make_study(**SMALL, seed=3, groups=("tokens", "features"))
    assert set(only.children) == {"tokens", "features"}
    xr.testing.assert_identical(only["tokens"].to_dataset(), tree["tokens"].to_dataset())
    xr.testing.assert_identical(only["features"].to_dataset(), tree["features"].to_dataset())


def test_validates_and_round_trips_exactly(small, tmp_path):
    from emostats import open_study, save, validate

    tree, _ = small
    assert validate(tree) == []
    path = tmp_path / "s.nc"
    save(tree, path)
    back = open_study(path)
    _assert_same(tree, back)
    attrs = dict(back.attrs)
    attrs.pop("source_files", None)
    assert attrs == tree.attrs
    assert tree.attrs["emostats_format"] == 1 and tree.attrs["synthetic"] == 1
    assert tree.attrs["source"] == "emostats.synth"


def test_write_study_refuses_to_overwrite(tmp_path):
    path = tmp_path / "w.nc"
    synth.write_study(path, n_tokens=500, n_probes=3, n_features=20, k=3, hidden=12, n_offsets=5)
    before = path.read_bytes()
    with pytest.raises(EmostatsError, match="exists"):
        synth.write_study(path, n_tokens=500, n_probes=3, n_features=20, k=3, hidden=12, seed=9)
    assert path.read_bytes() == before
    synth.write_study(path, force=True, n_tokens=500, n_probes=3, n_features=20, k=3, hidden=12, seed=9)
    assert path.read_bytes() != before


def test_dims_dtypes_and_names(small):
    tree, truth = small
    tok = tree["tokens"]
    assert tok["probe_act"].dims == ("token", "probe") and tok["probe_act"].dtype == np.float32
    assert tok["sae_index"].dtype == np.int32 and tok["sae_value"].dtype == np.float32
    assert list(tok["probe"].values) == synth.probe_names(10)
    assert tree["moments"]["lag_cxy"].dims == ("lag", "hidden", "hidden_b")
    assert tree["moments"]["cov"].dtype == np.float64
    assert tree["steering"]["steered_act"].dims == ("emotion", "sample", "offset", "probe")
    assert set(tree["steering"]["emotion"].values) <= set(synth.probe_names(10))
    ev = tree["evaluations"]
    assert ev["mentions"].dtype == np.int8 and set(np.unique(ev["mentions"])) <= {0, 1}
    assert np.array_equal(tree["features"]["feature"].values, np.arange(120))
    import json

    summary = json.loads(tree.attrs["truth_json"])
    assert np.allclose(summary["w_slow"], truth["w_slow"].values, atol=1e-6)
    assert set(summary["steering"]) == set(tree["steering"]["emotion"].values)


def test_segments_are_contiguous_turns_in_range():
    tree, _ = synth.make_study(n_tokens=50_000, n_probes=2, n_features=0, hidden=8, turn_length=(20, 90),
                               n_conversations=30, groups=("tokens",), seed=2)
    tok = tree["tokens"]
    conv, turn, pos = tok["conversation"].values, tok["turn"].values, tok["position"].values
    new = np.r_[True, (conv[1:] != conv[:-1]) | (turn[1:] != turn[:-1])]
    starts = np.flatnonzero(new)
    lengths = np.diff(np.r_[starts, conv.size])
    assert np.all((lengths[:-1] >= 20) & (lengths[:-1] <= 90)) and 1 <= lengths[-1] <= 90
    assert np.array_equal(pos, np.arange(conv.size) - np.repeat(starts, lengths))
    assert len({(c, t) for c, t in zip(conv[starts], turn[starts])}) == starts.size
    assert np.unique(conv).size == 30 and np.all(np.diff(conv) >= 0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_probes=172), "n_probes=172"),
    (dict(n_probes=171, hidden=64), "hidden=64 is too small"),
    (dict(turn_length=(10, 5)), "turn_length"),
    (dict(groups=("tokens", "nonsense")), "nonsense"),
    (dict(n_tokens=0), "n_tokens"),
    (dict(lags=(5000,), turn_length=(10, 20)), "lag 5000"),
    (dict(random_directions=50), "random_directions=50"),
])
def test_bad_arguments_raise_one_line(kwargs, match):
    base = dict(n_tokens=1000, n_probes=4, n_features=10, k=2, hidden=16, n_offsets=5)
    base.update(kwargs)
    with pytest.raises(EmostatsError, match=match) as info:
        synth.make_study(**base)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- planted probe dynamics
@pytest.mark.parametrize("lag", [1, 10, 100])
def test_probe_lag_r_matches_closed_form(big_probes, lag):
    tree, truth = big_probes
    tok = tree["tokens"]
    x = tok["probe_act"].values
    conv, turn = tok["conversation"].values, tok["turn"].values
    observed = naive.lag_r(x, conv, turn, lag)
    expected = synth.expected_lag_r(truth, lag).values
    se = _group_se(lambda keep: naive.lag_r(x[keep], conv[keep], turn[keep], lag), conv)
    assert np.all(np.abs(observed - expected) < Z_BAND * se + 1e-3), (observed, expected, se)
    # the direction formula agrees with the per-probe closed form
    vectors = tree["probes"]["vector"].values
    assert np.allclose(synth.expected_direction_r(truth, vectors, lag), expected, rtol=1e-12)


def test_moments_are_the_sample_moments_of_the_probes(big_probes):
    tree, _ = big_probes
    tok, mom = tree["tokens"], tree["moments"]
    x = tok["probe_act"].values
    conv, turn = tok["conversation"].values, tok["turn"].values
    v = tree["probes"]["vector"].values
    quad = lambda c: np.einsum("ph,hk,pk->p", v, c, v)  # noqa: E731
    assert int(mom["n"]) == x.shape[0]
    np.testing.assert_allclose(mom["mean"].values @ v.T, x.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(quad(mom["cov"].values), x.var(0), rtol=1e-9)
    for i, lag in enumerate(mom["lag"].values):
        t = naive.valid_pairs(conv, turn, lag)
        assert int(mom["lag_n"][i]) == t.size
        np.testing.assert_allclose(mom["lag_mean_x"].values[i] @ v.T, x[t].mean(0), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(mom["lag_mean_y"].values[i] @ v.T, x[t + lag].mean(0), rtol=1e-9, atol=1e-9)
        cxx, cyy, cxy = (mom[k].values[i] for k in ("lag_cxx", "lag_cyy", "lag_cxy"))
        r_moments = quad(cxy) / np.sqrt(quad(cxx) * quad(cyy))
        np.testing.assert_allclose(r_moments, naive.lag_r(x, conv, turn, lag), rtol=1e-9, atol=1e-12)
    cov = mom["cov"].values
    assert np.array_equal(cov, cov.T) and np.array_equal(mom["lag_cxx"].values[0], mom["lag_cxx"].values[0].T)
    ve = quad(cov) / ((v * v).sum(1) * np.trace(cov))
    np.testing.assert_allclose(tree["probes"]["variance_explained"].values, ve, rtol=1e-9)


def test_random_directions_agree_with_moments(big_probes):
    tree, truth = big_probes
    rnd, mom, tok = tree["random"], tree["moments"], tree["tokens"]
    v = rnd["vector"].values
    np.testing.assert_allclose((v * v).sum(1), 1.0, rtol=1e-12)
    quad = lambda c: np.einsum("ph,hk,pk->p", v, c, v)  # noqa: E731
    cov = mom["cov"].values
    np.testing.assert_allclose(rnd["variance_explained"].values, quad(cov) / np.trace(cov), rtol=1e-9)
    # the noise part of /moments is at its expectation, so sample and moment r differ by sampling error only
    conv, turn = tok["conversation"].values, tok["turn"].values
    act = rnd["random_act"].values
    i = list(mom["lag"].values).index(100)
    r_moments = quad(mom["lag_cxy"].values[i]) / np.sqrt(quad(mom["lag_cxx"].values[i]) * quad(mom["lag_cyy"].values[i]))
    observed = naive.lag_r(act, conv, turn, 100)
    se = _group_se(lambda keep: naive.lag_r(act[keep], conv[keep], turn[keep], 100), conv)
    assert np.all(np.abs(observed - r_moments) < Z_BAND * se + 1e-3)
    assert np.all(np.abs(observed - synth.expected_direction_r(truth, v, 100)) < Z_BAND * se + 1e-3)
    assert np.allclose(act.var(0), quad(cov), rtol=0.1)


def test_emotion_probes_beat_variance_matched_directions():
    """The planted gap, checked like the paper: top-k random directions from /moments, 20 nearest in VE."""
    tree, truth = synth.make_study(n_tokens=60_000, n_probes=30, n_features=0, hidden=96, seed=4,
                                   groups=("tokens", "moments", "probes"))
    mom = tree["moments"]
    cov, cxx, cyy, cxy = (mom[k].values if k == "cov" else mom[k].values[0]
                          for k in ("cov", "lag_cxx", "lag_cyy", "lag_cxy"))
    evals, evecs = np.linalg.eigh(cov)
    evecs = evecs[:, ::-1]
    rng = np.random.default_rng(0)
    dirs = []
    for k in np.unique(np.geomspace(1, cov.shape[0], 15).round().astype(int)):
        u = rng.standard_normal((150, k))
        dirs.append(u @ evecs[:, :k].T)
    d = np.concatenate(dirs)
    d /= np.linalg.norm(d, axis=1, keepdims=True)

    def r_and_ve(vecs):
        q = lambda c: np.einsum("ph,hk,pk->p", vecs, c, vecs)  # noqa: E731
        return q(cxy) / np.sqrt(q(cxx) * q(cyy)), q(cov) / ((vecs * vecs).sum(1) * np.trace(cov))

    r_dir, ve_dir = r_and_ve(d)
    r_probe, ve_probe = r_and_ve(tree["probes"]["vector"].values)
    nearest = np.argsort(np.abs(ve_dir[None, :] - ve_probe[:, None]), axis=1)[:, :20]
    residual = r_probe - np.median(r_dir[nearest], axis=1)
    assert residual.mean() > 0.03 and (residual > 0).mean() > 0.75
    assert truth["residual_expected"].mean() > 0.03
    # and probes are more persistent than random unit vectors of the whole space
    v = rng.standard_normal((200, cov.shape[0]))
    assert r_probe.mean() > r_and_ve(v)[0].mean() + 0.02


# ----------------------------------------------------------------------------- planted SAE dynamics
def test_slots_hold_every_firing_that_was_not_dropped(big_sae):
    tree, truth = big_sae
    idx = tree["tokens"]["sae_index"].values
    filled = idx >= 0
    assert int(filled.sum()) == truth.attrs["sae_fired"] - truth.attrs["sae_dropped"]
    # filled slots come first, no id twice in a token, values positive exactly where filled
    assert np.all(filled[:, 1:] <= filled[:, :-1])
    s = np.sort(np.where(filled, idx, -1 - np.arange(idx.shape[1])), axis=1)
    assert np.all(s[:, 1:] != s[:, :-1])
    val = tree["tokens"]["sae_value"].values
    assert np.all((val > 0) == filled)
    # expected number of active features per token is k/2
    assert abs(filled.sum(1).mean() - idx.shape[1] / 2) < 0.5


@pytest.mark.parametrize("lag", [1, 20, 100])
def test_firing_difference_matches_markov_chain(big_sae, lag):
    tree, truth = big_sae
    tok = tree["tokens"]
    idx, conv, turn = tok["sae_index"].values, tok["conversation"].values, tok["turn"].values
    n_features = tree["features"].sizes["feature"]
    observed, n_fire = naive.firing_difference(idx, conv, turn, lag, n_features)
    expected = synth.expected_firing_persistence(truth, lag).values
    se = _group_se(lambda keep: naive.firing_difference(idx[keep], conv[keep], turn[keep], lag, n_features)[0], conv)
    ok = n_fire >= 2000
    assert ok.sum() > 50
    if lag <= 20:
        # per feature; at long lags a few long runs dominate a feature's estimate (heavy tails),
        # so there only the aggregate checks below are reliable
        assert np.all(np.abs(observed - expected)[ok] < Z_BAND * se[ok] + 2e-3)
    bias = (observed - expected)[ok]
    assert abs(bias.mean()) < 4 * bias.std() / np.sqrt(ok.sum()) + 1e-3
    assert np.corrcoef(observed[ok], expected[ok])[0, 1] > 0.9
    rate = naive.fire_matrix(idx, n_features).mean(0)
    assert np.corrcoef(rate, truth["firing_rate"].values)[0, 1] > 0.99


def test_features_table_relations(big_sae):
    tree, truth = big_sae
    from scipy.stats import spearmanr

    f = tree["features"]
    ve, sf = f["variance_explained"].values, f["subspace_fraction"].values
    assert np.isclose(ve.sum(), 0.6) and np.all((sf > 0) & (sf < 1))
    persistence = synth.expected_firing_persistence(truth, 100).values
    assert spearmanr(ve, persistence)[0] > 0.3
    # subspace fraction predicts persistence beyond variance explained (residual after regressing on log VE)
    design = np.c_[np.ones_like(ve), np.log(ve)]
    logit = np.log(persistence / (0.8 - persistence))
    resid = logit - design @ np.linalg.lstsq(design, logit, rcond=None)[0]
    assert spearmanr(sf, resid)[0] > 0.2
    rated = np.isfinite(f["self_rating"].values)
    assert np.array_equal(rated, np.isfinite(f["text_rating"].values))
    top = np.sort(np.argsort(-truth["firing_rate"].values, kind="stable")[:rated.sum()])
    assert np.array_equal(np.flatnonzero(rated), top)


def test_decoders_cosines_and_mentions():
    tree, truth = synth.make_study(n_tokens=2000, n_probes=40, n_features=4000, k=8, hidden=64, n_rated=2000,
                                   seed=6, groups=("features", "probes", "evaluations"))
    f, ev = tree["features"], tree["evaluations"]
    d = f["decoder"].values.astype(np.float64)
    vec = tree["probes"]["vector"].values
    basis = np.linalg.svd(vec, full_matrices=False)[2]
    frac = np.linalg.norm(d @ basis.T, axis=1) / np.linalg.norm(d, axis=1)
    np.testing.assert_allclose(frac, f["subspace_fraction"].values, atol=1e-6)
    rated = ev["rated_feature"].values
    cos = (d[rated] @ vec.T) / np.outer(np.linalg.norm(d[rated], axis=1), np.linalg.norm(vec, axis=1))
    np.testing.assert_allclose(ev["cosine"].values, cos, atol=1e-6)
    # planted association: mentioning features have higher cosine, for associated emotions only
    m = ev["mentions"].values.astype(bool)
    effect = np.array([cos[m[:, e], e].mean() - cos[~m[:, e], e].mean() if 5 <= m[:, e].sum() < m.shape[0]
                       else np.nan for e in range(cos.shape[1])])
    assoc = truth["mention_associated"].values
    assert np.nanmean(effect[assoc]) > 0.02
    assert np.nanmean(effect[assoc]) > np.nanmean(effect[~assoc]) + 0.02


# ----------------------------------------------------------------------------- planted steering
def test_steering_kinds_are_visible_in_means():
    tree, truth = synth.make_study(n_tokens=500, n_probes=12, n_features=0, hidden=32, n_steer_emotions=12,
                                   n_steer_samples=16, n_baseline=16, n_offsets=40, seed=7,
                                   groups=("steering",))
    st = tree["steering"]
    names = list(st["probe"].values)
    kinds = truth["steer_kind"].values
    assert {"elevated", "suppressed", "null"} <= set(kinds)
    for e, emotion in enumerate(st["emotion"].values):
        i = names.index(emotion)
        steered = st["steered_act"].values[e, :, :3, i].mean(1)
        base = st["baseline_act"].values[:, :3, i].mean(1)
        z = (steered.mean() - base.mean()) / np.sqrt(steered.var(ddof=1) / steered.size + base.var(ddof=1) / base.size)
        kind = kinds[e]
        if kind == "elevated":
            assert z > 3, (emotion, z)
        elif kind == "suppressed":
            assert z < -3, (emotion, z)
        else:
            assert abs(z) < 4.5, (emotion, z)
        shift = truth["steer_shift"].values[e]
        np.testing.assert_allclose(shift, truth["steer_amplitude"].values[e] * truth["steer_probe_sd"].values[e]
                                   * np.exp(-np.arange(40) / truth["steer_tau"].values[e]))


# ----------------------------------------------------------------------------- command line
def test_cli_writes_a_valid_study_and_refuses_to_overwrite(tmp_path, capsys):
    from emostats import validate
    from emostats.io import open_study

    out = tmp_path / "cli.nc"
    args = ["synth", "-o", str(out), "--tokens", "1500", "--probes", "5", "--features", "40", "--k", "4",
            "--hidden", "16", "--offsets", "10", "--seed", "2"]
    assert cli_main(args) == 0
    assert validate(open_study(out)) == []
    before = out.read_bytes()
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("emostats: error:") and "exists" in err[-1] and "--force" in err[-1]
    assert out.read_bytes() == before
    assert cli_main(args + ["--force", "--seed", "3"]) == 0
    assert out.read_bytes() != before


@pytest.mark.parametrize("extra", [["--tokens", "abc"], ["--k", "0"], ["--hidden", "8"], ["--bogus"],
                                   ["--probes", "500"]])
def test_cli_bad_options_exit_2_with_one_line(tmp_path, capsys, extra):
    out = tmp_path / "bad.nc"
    try:
        code = cli_main(["synth", "-o", str(out), *extra])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("emostats: error:")
    assert not out.exists()


def test_cli_process_has_no_traceback(tmp_path):
    out = tmp_path / "bad.nc"
    proc = subprocess.run([sys.executable, "-m", "emostats", "synth", "-o", str(out), "--hidden", "8"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "hidden=8 is too small" in proc.stderr
    assert not out.exists()


# ----------------------------------------------------------------------------- example, properties, edge cases
def test_example_args_make_a_valid_synthetic_study(tmp_path):
    # EXAMPLE_ARGS made the synthetic placeholder; they remain the documented small synthetic study
    out = tmp_path / "example.nc"
    assert cli_main(["synth", "-o", str(out), *synth.EXAMPLE_ARGS]) == 0
    tree = xr.open_datatree(out, engine="netcdf4").load()
    assert es.validate(tree) == []
    assert tree.attrs["synthetic"] == 1 and tree.attrs["source"] == "emostats.synth"


def test_shipped_example_is_the_real_model_study_the_readme_describes():
    from emostats.io import example_study, open_study

    tree = open_study(example_study())
    assert tree.attrs["source"] == "extract" and "SmolLM2" in str(tree.attrs["model"])
    tokens = tree["tokens"]
    assert tokens.sizes["probe"] == 171 and tokens.sizes["token"] >= 20_000 and tokens.sizes["slot"] >= 16
    assert len(np.unique(tokens["conversation"].values)) >= 20
    assert {"probes", "moments", "features", "steering"} <= set(tree.children)


def test_write_study_saves_the_truth_beside(tmp_path):
    truth = synth.write_study(tmp_path / "s.nc", truth_path=tmp_path / "truth.nc", n_tokens=800, n_probes=3,
                              n_features=30, k=3, hidden=12, n_offsets=5)
    back = xr.open_dataset(tmp_path / "truth.nc")
    xr.testing.assert_allclose(back["w_slow"], truth["w_slow"])
    assert list(back["steer_kind"].values) == list(truth["steer_kind"].values)


from hypothesis import given  # noqa: E402
from hypothesis import strategies as hs  # noqa: E402


@given(hs.lists(hs.floats(-(2.0 ** 100), 2.0 ** 100, width=32, allow_subnormal=False), min_size=1, max_size=50),
       hs.integers(1, 22))
def test_bitround_error_bound_and_idempotence(values, keep):
    x = np.asarray(values, dtype=np.float32)
    y = synth.bitround(x, keep)
    assert np.all(np.abs(y.astype(np.float64) - x) <= np.abs(x.astype(np.float64)) * 2.0 ** -(keep + 1))
    assert np.array_equal(synth.bitround(y, keep), y)
    assert np.all((y == 0) | (np.sign(y) == np.sign(x)))


@given(hs.integers(2, 3000), hs.integers(1, 50), hs.integers(0, 60), hs.one_of(hs.none(), hs.integers(1, 5)))
def test_segments_property(n_tokens, lo, extra, n_conv):
    from emostats.synth import _design

    hi = lo + extra
    n_seg_min = -(-n_tokens // hi)
    if n_conv is not None and n_conv > n_seg_min:
        n_conv = None
    offsets, conv, turn, pos = _design.make_segments(n_tokens, (lo, hi), n_conv, seed=1)
    lengths = np.diff(offsets)
    assert offsets[-1] == n_tokens and np.all(lengths >= 1) and np.all(lengths <= hi)
    assert np.all(lengths[:-1] >= lo)
    assert np.array_equal(pos, np.arange(n_tokens) - np.repeat(offsets[:-1], lengths))
    keys = set(zip(conv[offsets[:-1]], turn[offsets[:-1]]))
    assert len(keys) == lengths.size
    if n_conv is not None:
        assert np.unique(conv).size == n_conv


def test_markov_chains_with_length_one_segments_are_iid_bernoulli():
    """Every token a fresh stationary start: P(fire) = pi, independent of the previous token."""
    from emostats.synth import _sae

    n, F, k = 200_000, 4, 4
    offsets = np.arange(n + 1, dtype=np.int64)
    pi = np.array([0.05, 0.2, 0.5, 0.35])
    psi = np.array([0.0, 0.9, 0.99, 0.5])
    design = _sae.SaeDesign(pi=pi, alpha=pi * (1 - psi), beta=(1 - pi) * (1 - psi), value_scale=np.ones(F),
                            variance_explained=np.full(F, 0.1), subspace_fraction=np.full(F, 0.5),
                            emotionality=np.zeros(F), persistence=psi, lag=1, rated=np.arange(0),
                            self_rating=np.full(F, np.nan), text_rating=np.full(F, np.nan))
    index, value, fired, dropped = _sae.fill_slots(design, offsets, k, seed=3)
    fires = naive.fire_matrix(index, F)
    se = np.sqrt(pi * (1 - pi) / n)
    assert np.all(np.abs(fires.mean(0) - pi) < 5 * se)
    # no persistence across segments
    both = (fires[1:] & fires[:-1]).mean(0)
    assert np.all(np.abs(both - pi * pi) < 5 * np.sqrt(pi * pi / n) + 1e-3)
    assert dropped == 0 and fired == fires.sum()


def test_markov_chain_extremes_in_one_long_segment():
    """psi = 0 gives iid firing; a feature with pi = 0.5 and psi near 1 has long runs of mean 1/beta."""
    from emostats.synth import _sae

    n, F = 400_000, 2
    offsets = np.array([0, n], dtype=np.int64)
    pi = np.array([0.3, 0.5])
    psi = np.array([0.0, 0.98])
    design = _sae.SaeDesign(pi=pi, alpha=pi * (1 - psi), beta=(1 - pi) * (1 - psi), value_scale=np.ones(F),
                            variance_explained=np.full(F, 0.1), subspace_fraction=np.full(F, 0.5),
                            emotionality=np.zeros(F), persistence=psi, lag=1, rated=np.arange(0),
                            self_rating=np.full(F, np.nan), text_rating=np.full(F, np.nan))
    index, _, _, _ = _sae.fill_slots(design, offsets, 2, seed=4)
    fires = naive.fire_matrix(index, F)
    conv = np.zeros(n, dtype=int)
    diff, _ = naive.firing_difference(index, conv, conv, 1, F)
    assert abs(diff[0]) < 0.01 and abs(diff[1] - 0.98) < 0.01
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, fires[:, 1].astype(int), 0]) != 0))[::2]
    assert abs(runs.mean() - 1 / design.beta[1]) < 0.1 / design.beta[1]


# ----------------------------------------------------------------------------- calibration worlds, sufficient_study


def _toeplitz_within(phi, T, lag):
    """E Wxy, E Wxx of one turn by brute force: traces with the full AR(1) covariance and the centring matrix."""
    n = T - lag
    idx = np.arange(T)
    cov = phi ** np.abs(idx[:, None] - idx[None, :])
    centre = np.eye(n) - 1.0 / n
    X = np.eye(T)[:n]
    Y = np.eye(T)[lag:lag + n]
    return np.trace(centre @ X @ cov @ Y.T @ centre), np.trace(centre @ X @ cov @ X.T @ centre)


@pytest.mark.parametrize("phi,lengths,lag", [(0.7, [30], 4), (0.95, [12, 40, 7], 5), (0.2, [3, 3], 1)])
def test_world_within_sums_equal_the_brute_force_expectation(phi, lengths, lag):
    from emostats.synth._worlds import _within_sums

    exy, exx = _within_sums([phi], lengths, lag)
    ref = np.sum([_toeplitz_within(phi, T, lag) for T in lengths if T > lag], axis=0)
    np.testing.assert_allclose([exy[0], exx[0]], ref, rtol=1e-12)


def test_world_truth_within_is_the_many_turn_limit_of_the_estimator():
    """Over many turns of the study's length the within-turn r of one probe tends to world_truth's target."""
    from emostats.inference import within_turn_persistence

    tree, design = synth.make_world("planted", n_conversations=40, turns=30, turn_length=40, n_probes=2,
                                    n_random=20, n_candidates=40, seed=4)
    truth = synth.world_truth(tree, design, n_match=5)
    wt = within_turn_persistence(tree["tokens"]["probe_act"], lag=10)
    long_turns = float(np.mean(synth._worlds._population(design, design["vectors"])[1]))
    # 1,200 turns: standard error of the mean within r ~0.01; the long-turn value is off by > 0.1
    assert abs(float(wt["mean_r_within"]) - truth["probe_within"]) < 0.03
    assert abs(long_turns - truth["probe_within"]) > 0.1
    assert abs(float(wt["mean_r"]) - truth["probe_persistence"]) < 0.04


def test_sufficient_study_merges_to_its_moments_and_bootstraps():
    from emostats.inference import conversation_bootstrap
    from emostats.inference._merge import merge_weighted, r_from

    tree = synth.sufficient_study(n_conversations=5, n_tokens=3000, hidden=24, n_probes=4, n_random=10,
                                  n_candidates=30, turns=2, lag=10, latent=6, seed=2)
    assert es.validate(tree) == []
    cm = tree["conv_moments"].to_dataset()
    mom = tree["moments"].to_dataset()
    vec = xr.DataArray(cm["vector"].values.astype(np.float64), dims=("direction", "hidden"))
    dp = es.direction_persistence(mom, vec, lag=10)
    r = r_from(merge_weighted(cm["lag_moments"].values, np.ones((1, 5))))[0, 0]
    np.testing.assert_allclose(r, dp["r"].values, rtol=1e-9)
    # the per-conversation projection moments merge to the pooled variance of /moments
    n = cm["n_tokens"].values.astype(float)
    grand = (n[:, None] * cm["proj_mean"].values).sum(0) / n.sum()
    m2 = cm["proj_m2"].values.sum(0) + (n[:, None] * (cm["proj_mean"].values - grand) ** 2).sum(0)
    np.testing.assert_allclose(m2 / n.sum(), np.einsum("dh,hg,dg->d", vec.values, mom["cov"].values, vec.values),
                               rtol=1e-9)
    np.testing.assert_allclose(cm["hidden_m2_trace"].values.sum()
                               + (n * ((cm["hidden_mean"].values - mom["mean"].values) ** 2).sum(1)).sum(),
                               np.trace(mom["cov"].values) * n.sum(), rtol=1e-9)
    bs = conversation_bootstrap(tree, lag=10, n_boot=30, seed=1)
    assert np.isfinite(bs["ci_low"].sel(statistic=["probe_persistence", "residual_mean", "random_persistence"])).all()
    with pytest.raises(EmostatsError, match="tokens per turn"):
        synth.sufficient_study(n_conversations=5, n_tokens=100, lag=10)
