"""Benchmarks of `emostats run` and `emostats report` on a paper-scale synthetic study.

Full size (``EMOSTATS_BENCH_FULL=1``): 1,000,000 tokens x 171 probes, 100,000 SAE
features with k = 64, moments of a 7,168-dim hidden space (5,420 variance-matching
candidates + 1,000 sphere directions), 171 emotions x 16 steered samples of 200
tokens. Goals (issue 15): the whole run within 30 s on an idle 2-core machine, peak RSS
at most about 1.5x the bytes of the arrays it needs; report from results < 30 s. Each
step's wall (``s_<step>``) and CPU seconds (``cpu_<step>``) are reported. The top-k
eigenspaces of the 7,168-dim covariance are cached on disk after the first run
(:mod:`emostats.nullmodels.eigenspace`): set ``EMOSTATS_CACHE_DIR`` to an empty folder
to time a first run. Smoke mode uses a tiny study so that every test run exercises the
code path.

    EMOSTATS_BENCH_FULL=1 python -m pytest benchmarks/test_bench_run.py --benchmark-enable -s

Figures and the machine they came from: benchmarks/figures/run.md.
"""

import time

import pytest

from benchmarks.conftest import FULL, scale

SIZES = scale(
    dict(n_tokens=1_000_000, n_probes=171, n_features=100_000, k=64, hidden=7168, n_steer_emotions=171,
         n_steer_samples=16, n_baseline=16, n_offsets=200),
    dict(n_tokens=1200, n_probes=6, n_features=100, k=6, hidden=16, n_steer_emotions=4,
         n_steer_samples=4, n_baseline=4, n_offsets=110, turn_length=(200, 400)),
)
#: run parameters: the study's defaults at full scale, small counts in smoke mode
RUN = scale({}, dict(n_boot=5, n_random=50, n_candidates=100, n_perm=100, min_fires=20))
#: smoke mode reports a two-step results file (the code path, not the figures' cost)
REPORT_STEPS = scale(None, ["persistence", "summary"])


@pytest.fixture(scope="module")
def study_path(tmp_path_factory):
    from emostats import save, synth

    t0 = time.perf_counter()
    tree, _ = synth.make_study(seed=7, **SIZES)
    path = tmp_path_factory.mktemp("bench_run") / "study.nc"
    save(tree, path, compress=False)
    if FULL:
        print(f"\nsynthetic study made and saved in {time.perf_counter() - t0:.1f} s")
    return path


@pytest.fixture(scope="module")
def results_path(study_path, tmp_path_factory):
    from emostats import run, save

    res = run(study_path, progress=False, quiet=True, steps=REPORT_STEPS, **RUN)
    path = tmp_path_factory.mktemp("bench_results") / "results.nc"
    save(res, path)
    return path


def _pages(pdf):
    import re

    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))


def test_bench_run(benchmark, report, study_path):
    import emostats as es

    def once():
        return es.run(study_path, progress=False, quiet=True, **RUN)

    res = benchmark.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
    times = {k[len("time_"):]: float(v) for k, v in res.attrs.items() if k.startswith("time_")}
    cpu = {k: float(v) for k, v in res.attrs.items() if k.startswith("cpu_")}
    report(**{f"s_{k}": v for k, v in times.items()}, **cpu)
    # synthetic studies have no /tokens repeat_share (looping) nor a judge calibration; the bootstrap needs two conversations
    assert set(res.attrs["steps_skipped"].split()) <= {"looping", "bootstrap", "judge_calibration"}, res.attrs["steps_skipped"]


def test_bench_report_from_results(benchmark, report, results_path, tmp_path):
    from emostats.report import build_report

    counter = iter(range(100))

    def once():
        return build_report(results_path, tmp_path / f"r{next(counter)}", progress=False, quiet=True)

    t0 = time.perf_counter()
    written = benchmark.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
    report(s_report=time.perf_counter() - t0, n_figures=len(written["figures"]), n_pages=_pages(written["pdf"]))
    assert written["pdf"].stat().st_size > 0
