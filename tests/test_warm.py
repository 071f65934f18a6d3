"""emostats._kernels.warm: kernels compiled ahead in a child process are the ones the NumPy layer calls.

The child is useful only if it compiles the exact signatures the wrappers pass (dtypes,
layouts, int/bool/float scalars): otherwise the parent compiles again. So each topic's
warmer is run here first, then the wrappers are called on study-like inputs (float32
activations, as studies store them), and no kernel of the topic may gain a signature.
"""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from emostats._kernels import decay as kdecay
from emostats._kernels import lag as klag
from emostats._kernels import profile as kprofile
from emostats._kernels import trajectory as ktraj
from emostats._kernels import warm


def _signatures(module):
    return {name: set(obj.signatures) for name, obj in vars(module).items()
            if isinstance(obj, numba.core.registry.CPUDispatcher)}


def _grown(before, after):
    return {name: after[name] - before[name] for name in after if after[name] - before.get(name, set())}


def _study_like(n=3000, p=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)).astype(np.float32)
    offsets = np.array([0, 700, 1500, 2200, n], dtype=np.int64)
    return x, offsets


@pytest.mark.parametrize("threads", [1, 2])
def test_lag_and_trajectory_warmers_compile_what_the_wrappers_call(threads):
    from emostats import _lagstats

    for topic in ("lag", "trajectory"):
        warm.WARMERS[topic]()
    before = {**_signatures(klag), **_signatures(kprofile), **{f"t.{k}": v for k, v in _signatures(ktraj).items()}}
    x, offsets = _study_like()
    _lagstats.lag_moments(x, offsets, 100, threads=threads)
    _lagstats.profile_moments(x, offsets, 200, threads=threads)
    _lagstats.trajectory_sums(x, offsets, x.mean(0), x.std(0), max_lag=200, threads=threads)
    after = {**_signatures(klag), **_signatures(kprofile), **{f"t.{k}": v for k, v in _signatures(ktraj).items()}}
    # the entry kernels the warmer compiled gained nothing (helpers may be specialised inside them)
    for name in ("lag_range", "profile_range", "reference", "merge_arrays", "t.trajectory_range"):
        assert not after[name] - before[name], f"{name}: the wrapper used a signature the warmer did not compile"


def test_decay_warmer_compiles_what_fit_decay_calls():
    import xarray as xr

    from emostats.decay import fit_decay

    warm.WARMERS["decay"]()
    before = _signatures(kdecay)
    tau = np.arange(0, 201)
    rng = np.random.default_rng(1)
    curves = 0.1 + 0.5 * np.exp(-tau[None, :] / np.array([[5.0], [20.0], [60.0]])) \
        + 0.01 * rng.standard_normal((3, tau.size))
    da = xr.DataArray(curves, dims=("probe", "lag"), coords={"lag": tau})
    fit_decay(da)
    assert not _grown(before, _signatures(kdecay)).get("fit_range")


def test_firing_warmer_compiles_what_firing_counts_calls():
    from emostats._kernels import firing as kfiring
    from emostats.sae import firing_counts
    from tests.naive.inputs import sae_index

    warm.WARMERS["firing"]()
    before = _signatures(kfiring)
    index, offsets = sae_index(5000, 8, 300, seed=0)
    firing_counts(index, offsets, lag=100, n_features=300, threads=2)
    firing_counts(index.astype(np.int64), offsets, lag=3, threads=1)
    after = _signatures(kfiring)
    for name in ("firing_counts", "index_range", "n_valid_pairs"):
        assert not after[name] - before[name], f"{name}: a signature the warmer did not compile"


def test_topics_of_steps_in_first_use_order():
    assert warm.topics_of(["decay", "persistence", "trajectories", "profile"]) == ["decay", "lag", "trajectory"]
    assert warm.topics_of(["summary", "sae_density", "sae_persistence"]) == ["firing"]
    assert warm.topics_of(["summary"]) == []


def test_off_switch_and_unknown_topics(monkeypatch):
    monkeypatch.setenv("EMOSTATS_NO_PREWARM", "1")
    assert warm.start(["lag", "decay"]) == []
    monkeypatch.delenv("EMOSTATS_NO_PREWARM")
    assert warm.start(["lag", "no-such-topic"]) == []  # nothing to hand to a child
    assert warm.wait_for("decay") is False  # no child: the caller compiles as usual


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                    reason="the child is started only with two cores or more")
def test_child_fills_a_cold_cache_and_the_parent_then_loads_it(tmp_path):
    script = textwrap.dedent("""
        import os, sys
        from emostats._kernels import warm
        assert not warm.is_cached("trajectory")
        assert warm.start(["lag", "trajectory"], quiet=True) == ["trajectory"]
        assert warm.wait_for("trajectory", timeout=600), "the child did not cache the trajectory kernel"
        from emostats._kernels import trajectory
        from emostats import _lagstats
        import numpy as np
        x = np.random.default_rng(0).standard_normal((500, 3)).astype(np.float32)
        _lagstats.trajectory_sums(x, np.array([0, 200, 500]), x.mean(0), x.std(0), max_lag=20, threads=1)
        stats = trajectory.trajectory_range.stats
        print("hits", sum(stats.cache_hits.values()), "misses", sum(stats.cache_misses.values()))
    """)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "EMOSTATS_QUIET_COMPILE": "1"}
    env.pop("EMOSTATS_NO_PREWARM", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "hits 1 misses 0" in done.stdout, done.stdout  # loaded from the child's cache, not compiled again


def test_a_command_failing_on_its_study_prints_only_its_error(tmp_path):
    """With a cold cache the child starts before the study is opened; a bad study still gives one line."""
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"not a netcdf file at all\n" * 10)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("EMOSTATS_NO_PREWARM", None)
    env.pop("EMOSTATS_QUIET_COMPILE", None)
    done = subprocess.run([sys.executable, "-m", "emostats", "persistence", str(bad)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "bad.nc" in done.stderr
