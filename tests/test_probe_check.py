"""The probe sanity check against a slow reference, planted meaning, a null world and bad input."""

import itertools

import numpy as np
import pytest
import xarray as xr

from emostats.errors import ArgumentError
from emostats.probe_check import load_lexicon, probe_check, similarity_matrix

LEX = load_lexicon()
NAMES = sorted(LEX["valence"])


def _naive_cosine(v):
    n = len(v)
    out = np.empty((n, n))
    for i, j in itertools.product(range(n), range(n)):
        out[i, j] = float(np.dot(v[i], v[j]) / (np.sqrt(np.dot(v[i], v[i])) * np.sqrt(np.dot(v[j], v[j]))))
    return out


def _planted(rng, hidden=64, strength=1.0):
    """Vectors where synonyms share a component, opposites point apart and valence is a direction."""
    base = rng.standard_normal((len(NAMES), hidden))
    index = {n: i for i, n in enumerate(NAMES)}
    for a, b in LEX["synonyms"]:
        shared = rng.standard_normal(hidden)
        base[index[a]] += strength * shared
        base[index[b]] += strength * shared
    for a, b in LEX["opposites"]:
        shared = rng.standard_normal(hidden)
        base[index[a]] += strength * shared
        base[index[b]] -= strength * shared
    valence = np.array([LEX["valence"][n] for n in NAMES], dtype=float)
    base[:, 0] += 4 * strength * valence
    return base


def test_the_lexicon_covers_the_study_words():
    import importlib.resources

    words = importlib.resources.files("emostats").joinpath("data/emotions_171.txt").read_text().splitlines()
    assert set(LEX["valence"]) == {w.strip() for w in words if w.strip()}
    for a, b in LEX["synonyms"] + LEX["opposites"]:
        assert a in LEX["valence"] and b in LEX["valence"]


def test_cosines_and_pair_statistics_equal_a_slow_reference():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((len(NAMES), 16))
    s, _ = similarity_matrix(vectors=v)
    np.testing.assert_allclose(s, _naive_cosine(v), rtol=1e-10, atol=1e-12)
    ds = probe_check(v, names=NAMES, n_perm=50)
    index = {n: i for i, n in enumerate(NAMES)}
    all_vals = [s[i, j] for i in range(len(NAMES)) for j in range(i + 1, len(NAMES))]
    for kind, key in (("synonym", "synonyms"), ("opposite", "opposites")):
        vals = [s[index[a], index[b]] for a, b in LEX[key]]
        assert int(ds["n_pairs"].sel(kind=kind)) == len(vals)
        assert float(ds["mean"].sel(kind=kind)) == pytest.approx(np.mean(vals), rel=1e-12)
        pct = [100 * sum(x <= val for x in all_vals) / len(all_vals) for val in vals]
        assert float(ds["mean_percentile"].sel(kind=kind)) == pytest.approx(np.mean(pct), rel=1e-12)
    assert float(ds["all_mean"]) == pytest.approx(np.mean(all_vals), rel=1e-12)


def test_correlation_similarity_equals_numpy_corrcoef():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 5))
    s, what = similarity_matrix(probe_act=x)
    np.testing.assert_allclose(s, np.corrcoef(x.T), rtol=1e-10)
    assert "correlation" in what


def test_planted_meaning_is_found():
    v = _planted(np.random.default_rng(3))
    ds = probe_check(v, names=NAMES, n_perm=500)
    assert float(ds["p"].sel(kind="synonym")) < 0.01 and float(ds["z"].sel(kind="synonym")) > 1
    assert float(ds["p"].sel(kind="opposite")) < 0.01 and float(ds["z"].sel(kind="opposite")) < -1
    assert float(ds["valence_r"]) > 0.5 and float(ds["valence_p"]) < 0.01


def test_pc_orientation_follows_valence_whatever_the_sign_of_the_vectors():
    v = _planted(np.random.default_rng(4))
    a = probe_check(v, names=NAMES, n_perm=100)
    b = probe_check(-v, names=NAMES, n_perm=100)
    assert float(a["valence_r"]) == pytest.approx(float(b["valence_r"]), rel=1e-9)
    assert float(a["valence_r"]) >= 0


def test_null_world_rejects_at_about_the_nominal_rate():
    rng = np.random.default_rng(5)
    rejections = np.zeros(3)
    reps = 120
    for rep in range(reps):
        v = rng.standard_normal((len(NAMES), 24))
        ds = probe_check(v, names=NAMES, n_perm=99, seed=rep)
        rejections += [float(ds["p"].sel(kind="synonym")) <= 0.05, float(ds["p"].sel(kind="opposite")) <= 0.05,
                       float(ds["valence_p"]) <= 0.05]
    rate = rejections / reps
    # binomial sd at 0.05 over 120 reps is 0.02: allow 3 sd
    assert np.all(rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)), rate


def test_same_seed_same_numbers_and_dataarray_equals_numpy():
    v = np.random.default_rng(6).standard_normal((len(NAMES), 8))
    da = xr.DataArray(v, dims=("probe", "hidden"), coords={"probe": NAMES})
    a = probe_check(da, n_perm=100, seed=3)
    b = probe_check(v, names=NAMES, n_perm=100, seed=3)
    xr.testing.assert_identical(a, b)
    c = probe_check(v, names=NAMES, n_perm=100, seed=4)
    assert not np.array_equal(a["p"].values, c["p"].values) or not np.array_equal(a["valence_p"], c["valence_p"])


def test_too_few_pairs_is_nan_with_a_reason_and_unknown_words_are_counted():
    names = ["happy", "joyful", "bored", "alpha", "beta"]
    v = np.random.default_rng(7).standard_normal((5, 6))
    ds = probe_check(v, names=names, n_perm=20)
    assert int(ds["n_pairs"].sel(kind="synonym")) == 1
    assert np.isnan(float(ds["p"].sel(kind="synonym")))
    assert "at least 2" in str(ds["detail"].sel(kind="synonym").item())
    assert int(ds["n_missing"].sel(kind="synonym")) == len(LEX["synonyms"]) - 1


def test_zero_vector_is_left_out_not_a_crash():
    rng = np.random.default_rng(8)
    v = rng.standard_normal((len(NAMES), 8))
    v[NAMES.index("happy")] = 0
    ds = probe_check(v, names=NAMES, n_perm=20)
    assert np.isfinite(float(ds["mean"].sel(kind="synonym")))
    assert "happy" not in set(ds["pair_a"].values) | set(ds["pair_b"].values)


@pytest.mark.parametrize("bad, match", [
    (dict(vectors=np.full((3, 2), np.nan), names=["a", "b", "c"]), "NaN"),
    (dict(vectors=np.ones((3, 2)), names=["a", "b"]), "names"),
    (dict(vectors=np.ones(3), names=["a", "b", "c"]), "shape"),
    (dict(vectors=np.ones((3, 2))), "names"),
    (dict(vectors=np.ones((3, 2)), names=["a", "b", "c"], n_perm=0), "n_perm"),
])
def test_bad_input_is_one_line(bad, match):
    with pytest.raises(ArgumentError, match=match) as info:
        probe_check(**bad)
    assert "\n" not in str(info.value)


def test_the_run_step_equals_the_function_with_the_step_seed():
    import emostats as es
    from emostats.seeds import derive_seed

    res = es.run(es.example_study(), steps=["probe_check"], progress=False, seed=5)
    study = es.open_study(es.example_study())
    direct = probe_check(study["probes"]["vector"], seed=derive_seed(5, "probe_check"))
    for var in ("mean", "p", "valence_r", "valence_p", "similarity"):
        np.testing.assert_array_equal(res["probe_check"][var].values, direct[var].values)
