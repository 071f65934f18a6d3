"""The one runner of the pipeline: :func:`run` (``es.run``) and :func:`execute`, used by every command.

The steps run in the order of :data:`~emostats.pipeline.registry.STEPS`. A step
whose study group or variable is missing, or that needs an earlier step which
was skipped, is skipped with one line naming what it needs; the line is also
kept in the results' root attrs (``skipped_<step>``). Each step stores the
Dataset its analysis returned as one group of the results; the root attrs carry
the provenance: emostats version, the input's sha256, the parameters the steps
read (``param_<name>``), the seed of every random step (``seed_<step>``), the
preset, and the seconds each step took (``time_<step>``: wall clock; ``cpu_<step>``: CPU
seconds of every thread of the process, the figure a loaded machine distorts least).

The same study and seed give the same results, bit for bit (timings and the
creation time aside), whichever preset ran a step: every random step draws from
``derive_seed(seed, step)`` and the Numba kernels give the same bits for any thread count.
Steps that use BLAS (PCA, moment products) inherit OpenBLAS's dependence on its own thread
count: on machines with different core counts those differ in the last bits (about 1e-13).
"""

import datetime
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .. import defaults as D
from .._results import RESULTS_MARKER, RESULTS_VERSION
from .._version import __version__
from ..errors import ArgumentError, EmostatsError
from .attrs import attr_value, storable
from .context import Context
from .display import Display
from .inputs import open_inputs
from .params import check_relations
from .registry import STEPS, all_params, params_of, select

__all__ = ["run", "execute", "check_params"]


def run(study: "str | Path | Sequence[str | Path] | xr.DataTree", lag: int = D.LAG, max_lag: int = D.MAX_LAG,
        seed: int = D.SEED, n_perm: int = D.N_PERM, n_random: int = D.N_RANDOM, n_candidates: int = D.N_CANDIDATES,
        k_sweep: "Sequence[int] | None" = None, n_matched: int = D.N_MATCHED, match_stat: str = D.MATCH_STAT,
        rating_stat: str = D.RATING_STAT, min_fires: int = D.MIN_FIRES, min_mentions: int = D.MIN_MENTIONS,
        alpha: float = D.ALPHA, n_boot: int = D.N_BOOT, steps: "Sequence[str] | str | None" = None,
        progress: bool = True, quiet: bool = False, threads: "int | None" = None, chunks: "dict | None" = None,
        *, preset: "str | None" = None, **params: Any) -> xr.DataTree:
    """Run every analysis that the study supports (or a preset's, or ``steps``); return the results.

    Parameters
    ----------
    study : str, Path, sequence of them, or xarray.DataTree
        A study file (validated on opening), the parts of a split study, or an
        opened study.
    lag : int
        The lag L of the persistence metrics (probes, random directions, SAE features).
    max_lag : int
        Largest lag of the lag profile and largest tau of the trajectories (>= lag).
    seed : int
        Master seed; each random step derives its own seed from it and its name
        (:func:`emostats.seeds.derive_seed`; recorded as ``seed_<step>`` in the root attrs).
    n_perm : int
        Permutations of the mention tests.
    n_random : int
        Random unit directions uniform on the sphere of the hidden space (Figure 3).
    n_candidates : int
        Candidate directions for variance matching, uniform on the spheres of the
        top-k eigenspaces of the covariance, spread evenly over ``k_sweep``.
    k_sweep : sequence of int, optional
        The k values; default ``emostats.nullmodels.default_ks``: 20 values
        spaced evenly in log scale from 1 to the hidden size.
    n_matched : int
        Variance-matched neighbours per target (probes, PCs, SAE features).
    match_stat : {"median", "mean"}
        Statistic of the matched neighbours subtracted from the target for probes,
        PCs and SAE features (the study used the median).
    rating_stat : {"mean", "median"}
        The same for the rating analyses (the study's Figure 10 used the mean).
    min_fires : int
        SAE features firing fewer times are excluded from firing persistence.
    min_mentions : int
        An emotion enters the mention tests when at least this many rated
        features' transcripts name it ("more than 4").
    alpha : float
        BH-FDR level of the steering and mention tests.
    n_boot : int
        Bootstrap resamples (over conversations) of the decay fits; 0 = none.
    steps : sequence of str, optional
        Run only these steps (and say so in the attrs); default all of the preset's.
    progress : bool
        Show a progress display on stderr when it is a terminal.
    quiet : bool
        Print nothing (skipped steps are still recorded in the attrs).
    threads : int, optional
        Threads of the parallel kernels (results do not depend on it).
    chunks : dict, optional
        Open a study path dask-backed with these chunks (e.g. ``{"token": 1_000_000}``)
        instead of reading it into memory once (the default); for studies larger
        than memory.
    preset : {"run", "persistence", "nullmodels"}, optional
        Run the steps of that command (:data:`emostats.pipeline.registry.PRESETS`); default all.
    **params
        Parameters of steps added later (see :func:`emostats.pipeline.registry.all_params`).

    Returns
    -------
    xarray.DataTree
        One group per analysis that ran; root attrs hold the provenance.

    Examples
    --------
    >>> import emostats as es
    >>> res = es.run(es.example_study(), steps=["persistence", "steering", "summary"], progress=False)
    >>> sorted(res.children)
    ['persistence', 'steering', 'summary']
    >>> res["summary"]["value"].sel(row="probe_persistence").item() == res["persistence"]["r"].mean().item()
    True
    >>> res.attrs["param_lag"], res.attrs["steps_run"]
    (100, 'persistence steering summary')
    """
    values = dict(lag=lag, max_lag=max_lag, seed=seed, n_perm=n_perm, n_random=n_random, n_candidates=n_candidates,
                  k_sweep=k_sweep, n_matched=n_matched, match_stat=match_stat, rating_stat=rating_stat,
                  min_fires=min_fires, min_mentions=min_mentions, alpha=alpha, n_boot=n_boot, threads=threads)
    unknown = [k for k in params if k not in all_params()]
    if unknown:
        raise ArgumentError(f"unknown parameter {unknown[0]!r}; the steps take {', '.join(all_params())}")
    values.update(params)
    return execute(study, values, steps=steps, preset=preset, progress=progress, quiet=quiet, chunks=chunks)


def check_params(values: "dict[str, Any]", selected: "Sequence[str]", label=None) -> "dict[str, Any]":
    """Every parameter checked (defaults filled in); relations checked among those ``selected`` steps read.

    ``label(name)`` names a parameter in the messages (the command line passes its flag).
    """
    known = all_params()
    label = label or (lambda name: name)
    out = dict(values)  # a value no step declares is passed on as given
    out.update({name: p.check(values.get(name, p.default), label(name)) for name, p in known.items()})
    used = params_of(selected)
    check_relations({k: v for k, v in out.items() if k in used}, label)
    return out


def execute(study, values: "dict[str, Any]", steps=None, preset: "str | None" = None, progress: bool = True,
            quiet: bool = False, chunks: "dict | None" = None, required: "Sequence[str]" = (),
            label=None) -> xr.DataTree:
    """Run the selected steps of the one engine (see :func:`run`).

    ``required`` steps must run: when one is skipped, its reason is raised as an
    :class:`~emostats.errors.EmostatsError` (the preset commands fail with it).
    """
    started, started_cpu = time.perf_counter(), time.process_time()
    selected = select(steps, preset)
    params = check_params(values, selected, label)
    times: "dict[str, float]" = {}
    tree, digest, files = open_inputs(study, chunks, times)  # after every check: no file left open on a bad option
    opened_here = not isinstance(study, xr.DataTree)
    try:
        ctx = Context(tree, params, params["seed"])
        attrs = _provenance(tree, digest, files, times, params, selected, preset)
        command = f"emostats {preset or 'run'}"
        ran = _run_steps(ctx, selected, attrs, progress, quiet, command, required)
        if opened_here:  # results in memory before the study file closes
            for ds in ctx.results.values():
                ds.load()
    finally:
        if opened_here:  # run(path) leaves no open file handle behind, whatever happens
            tree.close()
    attrs["steps_run"] = " ".join(ran)
    attrs["steps_skipped"] = " ".join(ctx.skipped)
    attrs["time_total"] = round(time.perf_counter() - started, 4)
    attrs["cpu_total"] = round(time.process_time() - started_cpu, 4)
    out = xr.DataTree.from_dict({f"/{k}": v for k, v in ctx.results.items()})
    out.attrs = attrs
    return out


def _provenance(tree, digest, files, times, params, selected, preset):
    attrs = {
        RESULTS_MARKER: RESULTS_VERSION,
        "title": "emostats results",
        "preset": preset or "run",
        "emostats_version": __version__,
        "input_sha256": digest,
        "input_files": ";".join(Path(f).name for f in files),
        "seed": int(params["seed"]),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "xarray": xr.__version__,
        **times,
    }
    for key in params_of(selected):
        attrs[f"param_{key}"] = attr_value(params[key])
    for key, value in tree.attrs.items():
        if key not in ("source_files",):
            attrs[f"study_{key}"] = attr_value(value)
    return attrs


def _missing(ctx, step):
    """The one-line reason why ``step`` cannot run, or None."""
    for dep in step.after:
        if dep in ctx.skipped:
            return f"needs the {dep} step, which was skipped ({ctx.skipped[dep]})"
        if dep not in ctx.results:
            return f"needs the {dep} step"
    for need in step.needs:
        choices = need if isinstance(need, tuple) else (need,)
        if not any(ctx.has(c) for c in choices):
            names = [("/" + c.strip("/")) for c in choices]
            if len(names) == 1:
                return f"needs {names[0]}, which this study does not have"
            return f"needs {' or '.join(names)}; this study has neither"
    return None


def _run_steps(ctx, selected, attrs, progress, quiet, command, required):
    """Run the selected steps in order, recording results, times, seeds and skips; the names that ran."""
    ran = []
    with Display(command, len(selected), progress, quiet) as display:
        ctx.progress = display.inner if display.progress is not None else None
        for name in selected:
            step = STEPS[name]
            reason = _missing(ctx, step)
            if reason is None:
                display.start(step)
                if step.random:
                    attrs[f"seed_{name}"] = ctx.step_seed(step.seed)
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    ds = step.func(ctx)
                except EmostatsError as exc:  # the data cannot support it (one line from the analysis)
                    ds, reason = None, str(exc).splitlines()[0]
                seconds = time.perf_counter() - t0
                attrs[f"time_{name}"] = round(seconds, 4)
                attrs[f"cpu_{name}"] = round(time.process_time() - c0, 4)  # every thread of the process
                if ds is not None:
                    ds = storable(ds)
                    ds.attrs.setdefault("title", step.title)
                    ds.attrs["step"] = name
                    ctx.results[name] = ds
                    ran.append(name)
                    display.done(step, seconds)
                    continue
            if name in required:
                raise EmostatsError(f"{name}: {reason}")
            ctx.skipped[name] = reason
            attrs[f"skipped_{name}"] = reason
            display.skip(step, reason)
    return ran
