"""Benchmarks of the inference steps (issue 14): the conversation bootstrap and the placebo nulls.

- bootstrap: 1,000 replicates of every headline number (whole conversations
  resampled), from per-conversation sufficient statistics: one pass over
  ``/tokens`` ``probe_act``, then no token is read again;
- placebo: 200 placebo probe sets per kind (isotropic and covariance-shaped, as
  the ``placebo`` step runs them), exactly from ``/moments``;
- storage: the bytes of ``/conv_moments``, the format addition that makes the
  null directions resamplable, against the issue's budget of about 2 GB.

Two scales. *Example*: the shipped example study (24 conversations, 171
probes; it has no ``/conv_moments``). *Paper*: 240 conversations, 1,000,000
tokens, hidden 7,168, 171 probes, 1,000 uniform + 5,420 candidate directions,
built by :func:`emostats.synth.sufficient_study` (the sufficient statistics
directly, from a latent process: a 1M x 7,168 token array would be 29 GB).
Smoke mode (``EMOSTATS_BENCH_FULL`` unset) runs every code path on a tiny
paper-shaped study in a few seconds and skips the example-scale runs; ``EMOSTATS_BENCH_FULL=1`` gives the figures of
docs/inference.md::

    EMOSTATS_BENCH_FULL=1 python -m pytest benchmarks/test_bench_inference.py --benchmark-enable -s
"""

import os
import time

import numpy as np
import pytest

from benchmarks.conftest import FULL, scale

#: paper scale (full) or a tiny study with the same structure (smoke)
PAPER = scale(
    dict(n_conversations=240, n_tokens=1_000_000, hidden=7168, n_probes=171, n_random=1000, n_candidates=5420,
         turns=10, lag=100, latent=64),
    dict(n_conversations=8, n_tokens=4000, hidden=48, n_probes=6, n_random=20, n_candidates=60, turns=2, lag=20,
         latent=8),
)
N_BOOT = scale(1000, 20)
N_DRAWS = scale(200, 8)
#: paper-scale placebo draws per kind actually run (``EMOSTATS_BENCH_PLACEBO_DRAWS``): the cost is one
#: eigendecomposition of /moments plus an exactly linear cost per draw, so fewer draws give the 200-draw figure
PAPER_DRAWS = int(os.environ.get("EMOSTATS_BENCH_PLACEBO_DRAWS", N_DRAWS))
EXAMPLE_LAG = 100


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


@pytest.fixture(scope="module")
def paper_study():
    from emostats.synth import sufficient_study

    t0 = time.perf_counter()
    tree = sufficient_study(seed=3, **PAPER)
    if FULL:
        print(f"\nsufficient statistics of the paper-scale study made in {time.perf_counter() - t0:.1f} s")
    return tree


@pytest.fixture(scope="module")
def example_study():
    import emostats as es

    study = es.open_study(es.example_study())
    yield study
    study.close()


def _candidates(tree, lag):
    """The candidates' r and variance explained from /moments (the ``candidates`` step's result)."""
    import xarray as xr

    import emostats as es

    cm = tree["conv_moments"].to_dataset(inherit=False)
    sel = np.flatnonzero(cm["population"].values == "candidate")
    vec = xr.DataArray(cm["vector"].values[sel].astype(np.float64), dims=("direction", "hidden"))
    return es.direction_persistence(tree["moments"].to_dataset(inherit=False), vec, lag=lag)


def _bootstrap(benchmark, report, study, lag, **kw):
    from emostats.inference import conversation_bootstrap
    from emostats.inference.bootstrap import build_headlines

    def once():
        return conversation_bootstrap(study, lag=lag, n_boot=N_BOOT, seed=1, **kw)

    load0 = _load()
    t0 = time.perf_counter()
    bs = benchmark.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
    total = time.perf_counter() - t0
    # the part of it that reads the study once: per-conversation sufficient statistics (warm, second call)
    t0 = time.perf_counter()
    build_headlines(study, lag, **kw)
    one_pass = time.perf_counter() - t0
    report(n_boot=N_BOOT, s_total=total, s_sufficient_statistics=one_pass, s_replicates=total - one_pass,
           load_1min=max(load0, _load()))
    return bs


def test_bench_bootstrap_paper_scale(benchmark, report, paper_study):
    bs = _bootstrap(benchmark, report, paper_study, PAPER["lag"])
    main = ["probe_persistence", "probe_within", "probe_minus_random", "residual_mean", "residual_within_mean",
            "pc_spearman"]
    sub = bs.sel(statistic=main)
    # every headline number this study defines has all its replicates and an interval around its estimate
    assert (sub["n_boot_ok"].values == N_BOOT).all(), sub["n_boot_ok"].values
    assert (sub["percentile_low"] <= sub["estimate"]).all() and (sub["estimate"] <= sub["percentile_high"]).all()
    assert "conv_moments" in str(sub["scope"].sel(statistic="residual_mean").values)


EXAMPLE_ONLY_FULL = pytest.mark.skipif(not FULL, reason="example scale: EMOSTATS_BENCH_FULL=1 (smoke mode runs the "
                                                           "same code paths on the tiny paper-shaped study)")


@EXAMPLE_ONLY_FULL
def test_bench_bootstrap_example(benchmark, report, example_study):
    from emostats import run

    # the example has no /conv_moments: the run's null populations are held fixed, as the bootstrap step does
    res = run(example_study, steps=["random_directions", "candidates"], progress=False, quiet=True)
    bs = _bootstrap(benchmark, report, example_study, EXAMPLE_LAG,
                    candidates=res["candidates"].to_dataset(inherit=False),
                    random=res["random_directions"].to_dataset(inherit=False))
    assert np.isfinite(float(bs["ci_low"].sel(statistic="residual_mean")))
    pp = bs.sel(statistic="probe_persistence")
    assert int(pp["n_boot_ok"]) == N_BOOT and pp["ci_low"] < pp["estimate"] < pp["ci_high"]


def _placebo(benchmark, report, study, lag, candidates):
    from emostats.inference import placebo_nulls
    from emostats.inference.placebo import KINDS

    def once():
        return placebo_nulls(study, lag=lag, n_draws=N_DRAWS, seed=1, candidates=candidates,
                             observed={"pc_spearman": 0.0})

    load0 = _load()
    t0 = time.perf_counter()
    pl = benchmark.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
    total = time.perf_counter() - t0
    report(n_draws_per_kind=N_DRAWS, kinds=len(KINDS), s_total=total, load_1min=max(load0, _load()))
    assert pl["draws"].shape == (len(KINDS), N_DRAWS, pl.sizes["statistic"])
    assert np.isfinite(pl["draws"].sel(statistic=["probe_persistence", "residual_mean"]).values).all()
    return pl


def test_bench_placebo_paper_scale(benchmark, report, paper_study):
    from emostats.inference.placebo import KINDS, _Prepared, placebo_probe_sets

    lag = PAPER["lag"]
    cand = _candidates(paper_study, lag)
    mom = paper_study["moments"].to_dataset(inherit=False)
    vec = paper_study["probes"]["vector"].values
    load0 = _load()
    t0 = time.perf_counter()
    prep = _Prepared(mom, lag)  # the eigenbasis of /moments: once per placebo step
    setup = time.perf_counter() - t0
    per_kind = {}

    def once():
        out = {}
        for kind in KINDS:
            t = time.perf_counter()
            out[kind] = placebo_probe_sets(mom, lag, np.linalg.norm(vec, axis=1),
                                           (cand["r"].values, cand["variance_explained"].values), kind=kind,
                                           n_draws=PAPER_DRAWS, seed=1, vectors=vec, prepared=prep)
            per_kind[kind] = (time.perf_counter() - t) / PAPER_DRAWS
        return out

    res = benchmark.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
    per_draw = float(np.mean(list(per_kind.values())))
    report(draws_run_per_kind=PAPER_DRAWS, s_setup=setup, **{f"s_per_draw_{k}": v for k, v in per_kind.items()},
           s_step_200_per_kind=setup + 200 * len(KINDS) * per_draw, load_1min=max(load0, _load()))
    for kind in KINDS:
        assert np.isfinite(res[kind]["probe_persistence"]).all() and np.isfinite(res[kind]["residual_mean"]).all()


@EXAMPLE_ONLY_FULL
def test_bench_placebo_example(benchmark, report, example_study):
    from emostats import run

    # the example's candidates as the run's candidates step measures them (uses /moments only)
    res = run(example_study, steps=["random_directions", "candidates"], progress=False, quiet=True)
    _placebo(benchmark, report, example_study, EXAMPLE_LAG, res["candidates"].to_dataset(inherit=False))


def conv_moments_bytes(n_conversations, hidden, n_directions, n_lags=1):
    """Bytes of the ``/conv_moments`` data variables and coordinates by the format's table (docs/inference.md)."""
    G, H, D, nl = n_conversations, hidden, n_directions, n_lags
    data = (D * H * 4                # vector float32
            + G * 6 * nl * D * 8     # lag_moments
            + G * 4 * nl * D * 8     # within_moments
            + G * 8                  # n_tokens
            + 2 * G * D * 8          # proj_mean, proj_m2
            + G * H * 8              # hidden_mean
            + G * 8                  # hidden_m2_trace
            + D * 8)                 # k
    return data


def _conv_moments_of_shape(G, H, D, rng):
    """A /conv_moments group of the given shape, laid out by the format's one constructor (random values)."""
    from emostats.inference.activations import conv_moments_dataset

    pop = np.array(["uniform"] * (D // 6) + ["candidate"] * (D - D // 6))
    f = rng.standard_normal
    return conv_moments_dataset(f((D, H)).astype(np.float32), pop, np.full(D, H), [PAPER["lag"]], np.arange(G),
                                f((G, 6, 1, D)), f((G, 4, 1, D)), np.full(G, 4000), f((G, D)), f((G, D)),
                                f((G, H)), f(G))


def test_conv_moments_storage(report, tmp_path, request):
    rng = np.random.default_rng(0)
    G, H, D = PAPER["n_conversations"], PAPER["hidden"], PAPER["n_random"] + PAPER["n_candidates"]
    cm = _conv_moments_of_shape(G, H, D, rng)
    expected = conv_moments_bytes(G, H, D, 1)
    numeric = sum(v.nbytes for k, v in cm.data_vars.items() if k != "population")
    assert numeric == expected, (numeric, expected)
    if not FULL:  # the group sufficient_study builds (through study_from_activations' layout) has those bytes too
        real = request.getfixturevalue("paper_study")["conv_moments"].to_dataset(inherit=False)
        assert sum(v.nbytes for k, v in real.data_vars.items() if k != "population") == expected
    path = tmp_path / "conv_moments.nc"
    cm.to_netcdf(path, engine="h5netcdf")
    on_disk = path.stat().st_size
    report(conversations=G, directions=D, hidden=H, bytes_in_memory=int(cm.nbytes), bytes_formula=int(expected),
           bytes_on_disk_uncompressed=int(on_disk), budget_bytes=int(2e9))
    assert on_disk < 2e9  # the storage budget (at paper scale; trivially at smoke size)
