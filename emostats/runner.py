"""Every analysis of a study in one call: :func:`run` returns a results DataTree.

The steps run in the order of :data:`STEPS` (SPEC.md section 2). A step whose
study group or variable is missing, or that needs an earlier step which was
skipped, is skipped with one line naming what it needs; the line is also kept in
the results' root attrs (``skipped_<step>``). Each step stores the Dataset that
its analysis returned as one group of the results; the root attrs carry the
provenance: emostats version, the input's sha256, every parameter, the seed of
every random step, and the seconds each step took.

The same study and seed give the same results, bit for bit (timings and the
creation time aside): every random step gets its own seed derived from ``seed``
and the step's name, and the kernels give the same bits for any thread count.
"""

import datetime
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from . import _checks as C
from . import defaults as D
from ._progress import StepProgress
from ._version import __version__
from .errors import ArgumentError, EmostatsError
from .seeds import derive_seed

__all__ = ["run", "STEPS", "Step", "is_results", "RESULTS_MARKER"]

#: root attribute that marks a results file (its value is the results format version)
RESULTS_MARKER = "emostats_results"


@dataclass
class Step:
    """One analysis of :func:`run`.

    ``needs`` lists study variables as ``"group"`` or ``"group/variable"``; a tuple
    inside it is a choice (any one will do). ``after`` lists earlier steps whose
    results this step reads.
    """

    name: str
    title: str
    func: object
    needs: tuple = ()
    after: tuple = ()
    random: bool = False
    doc: str = field(default="", repr=False)


# --------------------------------------------------------------------------- context


class _Context:
    """What the steps share: the study, the parameters, earlier results, the log."""

    def __init__(self, study, params, seed):
        self.study = study
        self.params = params
        self.seed = seed
        self.results = {}
        self.skipped = {}  # step -> why it was skipped
        self.progress = None  # callable(done, total) for long steps, or None

    def group(self, name):
        return self.study[name].to_dataset(inherit=False)

    def has(self, path):
        group, _, var = path.strip("/").partition("/")
        if group not in self.study.children:
            return False
        if not var:
            return True
        ds = self.study[group]
        return var in ds.data_vars or var in ds.coords

    def step_seed(self, name):
        """A seed for step ``name``: the same for the same run seed, different across steps."""
        return derive_seed(self.seed, name)


def _missing(ctx, step, skipped):
    """The one-line reason why ``step`` cannot run, or None."""
    for dep in step.after:
        if dep in skipped:
            return f"needs the {dep} step, which was skipped ({skipped[dep]})"
        if dep not in ctx.results:
            return f"needs the {dep} step"
    for need in step.needs:
        choices = need if isinstance(need, tuple) else (need,)
        if not any(ctx.has(c) for c in choices):
            names = " or ".join("/" + c.strip("/") for c in choices)
            return f"needs {names}, which this study does not have"
    return None


# --------------------------------------------------------------------------- attrs


def _attr_value(value):
    """A value NetCDF can store as an attribute (bools as 0/1, nesting as JSON)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if value is None:
        return "none"
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf" and value.ndim == 1:
        return value
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value):
        return np.asarray(value)
    try:
        return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    except (TypeError, ValueError):
        return str(value)


def _clean(ds):
    """A copy of ``ds`` whose attrs (and its variables') NetCDF can store."""
    ds = ds.copy()
    ds.attrs = {k: _attr_value(v) for k, v in ds.attrs.items()}
    for name in ds.variables:
        ds[name].attrs = {k: _attr_value(v) for k, v in ds[name].attrs.items()}
    return ds


def is_results(tree_or_attrs):
    """True when a DataTree (or its root attrs) is a results tree written by :func:`run`."""
    attrs = getattr(tree_or_attrs, "attrs", tree_or_attrs)
    return RESULTS_MARKER in attrs


# --------------------------------------------------------------------------- display


class _Display:
    """The run's progress bar (see :class:`emostats._progress.StepProgress`) and its one-line skip messages."""

    def __init__(self, n_steps, enabled, quiet):
        self.quiet = quiet
        self.bar = StepProgress("emostats run", n_steps, enabled and not quiet, width=44, transient=False)
        self.progress = self.bar.progress

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def start(self, step):
        self.step = step
        self.bar.step(f"{step.name}: {step.title}")

    def inner(self, done, total):
        """Progress inside a long step (e.g. bootstrap replicates): shown in the step's line."""
        self.bar.step(f"{self.step.name}: {self.step.title} ({done}/{total})")

    def done(self, step, seconds):
        self.bar.print(f"  {step.name:<18} {seconds:8.2f} s")
        self.bar.advance()

    def skip(self, step, reason):
        line = f"emostats run: skipped {step.name}: {reason}"
        if self.bar.active:
            self.bar.print(line)
            self.bar.advance()
        elif not self.quiet:
            print(line, file=sys.stderr)


# --------------------------------------------------------------------------- run


def _is_dask(tree):
    return any(var.chunks for node in tree.subtree for var in node.variables.values())


def _open(study, chunks, times):
    """(tree, sha256 or '', file names) of a path, several paths, or a DataTree.

    A study that is not dask-backed is read into memory once (every analysis
    would otherwise read the file again); a dask-backed one stays lazy.
    """
    from .io import open_study, sha256

    t0 = time.perf_counter()
    if isinstance(study, xr.DataTree):
        files = [p for p in str(study.attrs.get("source_files", "")).split(";") if p]
        tree = study
        if not _is_dask(tree):
            tree = tree.copy().load()  # the caller's tree stays as it was
    else:
        files = [str(p) for p in ([study] if isinstance(study, (str, Path)) else list(study))]
        tree = open_study(files if len(files) > 1 else files[0], chunks=chunks)
        if chunks is None:
            try:
                tree.load()
            except BaseException:
                tree.close()
                raise
    times["time_open"] = round(time.perf_counter() - t0, 4)
    t0 = time.perf_counter()
    digest = ""
    if files and all(Path(f).is_file() for f in files):
        digest = sha256(files if len(files) > 1 else files[0])
    times["time_sha256"] = round(time.perf_counter() - t0, 4)
    return tree, digest, files


def run(study, lag=D.LAG, max_lag=D.MAX_LAG, seed=D.SEED, n_perm=D.N_PERM, n_random=D.N_RANDOM,
        n_candidates=D.N_CANDIDATES, k_sweep=None, n_matched=D.N_MATCHED, match_stat=D.MATCH_STAT,
        rating_stat=D.RATING_STAT, min_fires=D.MIN_FIRES, min_mentions=D.MIN_MENTIONS, alpha=D.ALPHA,
        n_boot=D.N_BOOT, steps=None, progress=True, quiet=False, threads=None, chunks=None):
    """Run every analysis that the study supports; return the results as a DataTree.

    Parameters
    ----------
    study : str, Path, sequence of them, or xarray.DataTree
        A study file (validated on opening), the parts of a split study, or an
        opened study.
    lag : int
        The lag L of the persistence metrics (probes, random directions, SAE features).
    max_lag : int
        Largest lag of the lag profile and largest tau of the trajectories.
    seed : int
        Master seed; each random step derives its own seed from it (recorded as
        ``seed_<step>`` in the root attrs).
    n_perm : int
        Permutations of the mention tests.
    n_random : int
        Random unit directions uniform on the sphere of the hidden space (Figure 3).
    n_candidates : int
        Candidate directions for variance matching, uniform on the spheres of the
        top-k eigenspaces of the covariance, spread evenly over ``k_sweep``.
    k_sweep : sequence of int, optional
        The k values; default about 24 values spaced evenly in log scale from 1 to
        the hidden size.
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
        Bootstrap resamples (over conversations) of the decay fits.
    steps : sequence of str, optional
        Run only these steps (and say so in the attrs); default all of :data:`STEPS`.
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
    started = time.perf_counter()
    times = {}
    lag, max_lag = C.check_lags(lag, max_lag)
    params = dict(lag=lag, max_lag=max_lag, seed=C.check_seed(seed), n_perm=C.check_int(n_perm, "n_perm", minimum=1),
                  n_random=C.check_int(n_random, "n_random", minimum=1),
                  n_candidates=C.check_int(n_candidates, "n_candidates", minimum=1),
                  k_sweep=None if k_sweep is None else C.check_ints(k_sweep, "k_sweep", minimum=1),
                  n_matched=C.check_int(n_matched, "n_matched", minimum=1),
                  match_stat=C.check_choice(match_stat, "match_stat", D.STATS),
                  rating_stat=C.check_choice(rating_stat, "rating_stat", D.STATS),
                  min_fires=C.check_int(min_fires, "min_fires", minimum=0),
                  min_mentions=C.check_int(min_mentions, "min_mentions", minimum=1),
                  alpha=C.check_fraction(alpha, "alpha"), n_boot=C.check_int(n_boot, "n_boot", minimum=1),
                  threads=C.check_threads(threads))
    seed = params["seed"]
    selected = list(STEPS) if steps is None else _select(steps)
    tree, digest, files = _open(study, chunks, times)  # after every check: no file left open on a bad option
    opened_here = not isinstance(study, xr.DataTree)
    try:
        return _run_opened(tree, digest, files, times, params, selected, seed, progress, quiet, started,
                           opened_here)
    finally:
        if opened_here:  # run(path) leaves no open file handle behind, whatever happens
            tree.close()


def _run_opened(tree, digest, files, times, params, selected, seed, progress, quiet, started, opened_here):
    ctx = _Context(tree, params, seed)
    attrs = {
        RESULTS_MARKER: 1,
        "title": "emostats results",
        "emostats_version": __version__,
        "input_sha256": digest,
        "input_files": ";".join(Path(f).name for f in files),
        "seed": int(seed),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "xarray": xr.__version__,
        **times,
    }
    for key, value in params.items():
        attrs[f"param_{key}"] = _attr_value(value)
    for key, value in tree.attrs.items():
        if key not in ("source_files",):
            attrs[f"study_{key}"] = _attr_value(value)
    skipped, ran = {}, []
    _run_steps(ctx, selected, attrs, skipped, ran, progress, quiet)
    if opened_here:  # results in memory before the study file closes
        for ds in ctx.results.values():
            ds.load()
    attrs["steps_run"] = " ".join(ran)
    attrs["steps_skipped"] = " ".join(skipped)
    attrs["time_total"] = round(time.perf_counter() - started, 4)
    out = xr.DataTree.from_dict({f"/{k}": v for k, v in ctx.results.items()})
    out.attrs = attrs
    return out


def _run_steps(ctx, selected, attrs, skipped, ran, progress, quiet):
    """Run the selected steps in order, recording results, times, seeds and skips."""
    ctx.skipped = skipped  # the summary names the skipped steps behind its empty rows
    with _Display(len(selected), progress, quiet) as display:
        ctx.progress = display.inner if display.progress is not None else None
        for name in selected:
            step = STEPS[name]
            reason = _missing(ctx, step, skipped)
            if reason is None:
                display.start(step)
                if step.random:
                    attrs[f"seed_{name}"] = ctx.step_seed(name)
                t0 = time.perf_counter()
                try:
                    ds = step.func(ctx)
                except EmostatsError as exc:  # the data cannot support it (one line from the analysis)
                    ds, reason = None, str(exc).splitlines()[0]
                seconds = time.perf_counter() - t0
                attrs[f"time_{name}"] = round(seconds, 4)
                if ds is not None:
                    ds = _clean(ds)
                    ds.attrs.setdefault("title", step.title)
                    ds.attrs["step"] = name
                    ctx.results[name] = ds
                    ran.append(name)
                    display.done(step, seconds)
                    continue
            skipped[name] = reason
            attrs[f"skipped_{name}"] = reason
            display.skip(step, reason)


def _select(steps):
    steps = [steps] if isinstance(steps, str) else list(steps)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ArgumentError(f"unknown step {unknown[0]!r}; choose from {', '.join(STEPS)}")
    if not steps:
        raise ArgumentError(f"steps is empty; name at least one of {', '.join(STEPS)} (or pass None for all)")
    return [s for s in STEPS if s in steps]


def default_k_sweep(hidden, n=24):
    """About ``n`` distinct k values spaced evenly in log scale from 1 to ``hidden``.

    Examples
    --------
    >>> default_k_sweep(8, n=4)
    [1, 2, 4, 8]
    """
    ks = np.unique(np.round(np.geomspace(1, hidden, n)).astype(int))
    return [int(k) for k in ks]


# --------------------------------------------------------------------------- the steps
# Each step reads the study and earlier results through the public API only.


def _probe_act(ctx):
    return ctx.study["tokens"]["probe_act"]


def _probe_vectors(ctx):
    return ctx.study["probes"]["vector"] if ctx.has("probes/vector") else None


def _moments(ctx):
    return ctx.group("moments") if ctx.has("moments") else None


def _step_persistence(ctx):
    from . import lag_persistence

    return lag_persistence(_probe_act(ctx), lag=ctx.params["lag"], threads=ctx.params["threads"])


def _step_profile(ctx):
    from . import lag_profile

    return lag_profile(_probe_act(ctx), max_lag=ctx.params["max_lag"], threads=ctx.params["threads"])


def _step_trajectories(ctx):
    from . import trajectories

    return trajectories(_probe_act(ctx), max_lag=ctx.params["max_lag"], threads=ctx.params["threads"])


def _step_decay(ctx):
    """Decay fits of the trajectories (Figure 2 curves), bootstrapped over conversations."""
    from . import fit_decay

    return fit_decay(ctx.results["trajectories"], probe_act=_probe_act(ctx), n_boot=ctx.params["n_boot"],
                     seed=ctx.step_seed("decay"), threads=ctx.params["threads"], progress=ctx.progress)


def _step_decay_profile(ctx):
    """Decay fit of the lag profile averaged over probes, bootstrapped over conversations."""
    from . import fit_decay

    return fit_decay(ctx.results["profile"], average_probes=True, probe_act=_probe_act(ctx),
                     n_boot=ctx.params["n_boot"], seed=ctx.step_seed("decay_profile"), threads=ctx.params["threads"],
                     progress=ctx.progress)


def _step_random_directions(ctx):
    """Figure 3's null: directions uniform on the sphere of the hidden space (or /random)."""
    from . import direction_persistence, random_directions

    mom = _moments(ctx)
    lag = ctx.params["lag"]
    if mom is None:
        ds = direction_persistence(ctx.study, lag=lag, threads=ctx.params["threads"])
        ds.attrs["population"] = "/random (activations dumped by the extractor)"
        return ds
    dirs = random_directions(mom, ctx.params["n_random"], seed=ctx.step_seed("random_directions"))
    ds = direction_persistence(mom, dirs, lag=lag, threads=ctx.params["threads"])
    ds.attrs["population"] = "uniform on the unit sphere of the hidden space"
    return ds


def _step_candidates(ctx):
    """Variance-matching candidates: uniform on the spheres of top-k eigenspaces, over a sweep of k."""
    from .nullmodels import default_ks, direction_persistence, random_direction_sweep, split_evenly

    mom = _moments(ctx)
    if mom is None:  # /random serves as both populations
        return ctx.results["random_directions"].copy()
    ks = ctx.params["k_sweep"] or default_ks(mom.sizes["hidden"]).tolist()
    dirs = random_direction_sweep(mom, ks=ks, n_per_k=split_evenly(ctx.params["n_candidates"], len(ks)),
                                  seed=ctx.step_seed("candidates"))
    ds = direction_persistence(mom, dirs, lag=ctx.params["lag"], threads=ctx.params["threads"])
    ds.attrs.update(population="uniform on the unit spheres of top-k eigenspaces of /moments cov", ks=list(ks))
    return ds


def _probe_variance(ctx):
    """The probes' variance explained: /probes variance_explained, else from the vectors and /moments."""
    from .errors import MissingGroupError
    from .nullmodels import direction_persistence

    if ctx.has("probes/variance_explained"):
        return ctx.study["probes"]["variance_explained"]
    if ctx.has("probes/vector") and ctx.has("moments"):
        return direction_persistence(_moments(ctx), ctx.study["probes"]["vector"],
                                     lag=ctx.params["lag"])["variance_explained"]
    raise MissingGroupError("needs /probes/variance_explained, or /probes/vector with /moments, to match the "
                            "probes' variance explained")


def _step_variance_matched(ctx):
    from . import variance_matched

    r = ctx.results["persistence"]["r"].reset_coords(drop=True)
    ve = np.asarray(_probe_variance(ctx).values, dtype=np.float64)
    cand = ctx.results["candidates"]
    ds = variance_matched(r, ve, cand["r"], cand["variance_explained"], n=ctx.params["n_matched"],
                          stat=ctx.params["match_stat"], threads=ctx.params["threads"])
    ds.attrs["lag"] = ctx.params["lag"]
    return ds


def _step_emotion_pcs(ctx):
    from . import emotion_pcs

    mom = _moments(ctx)
    cand = ctx.results.get("candidates") if mom is not None else None
    return emotion_pcs(_probe_act(ctx), probe_vectors=_probe_vectors(ctx), moments=mom, candidates=cand,
                       lag=ctx.params["lag"], n=ctx.params["n_matched"], stat=ctx.params["match_stat"],
                       seed=ctx.step_seed("emotion_pcs"), threads=ctx.params["threads"])


def _step_sae_persistence(ctx):
    from . import firing_persistence

    return firing_persistence(ctx.study, lag=ctx.params["lag"], min_fires=ctx.params["min_fires"],
                              threads=ctx.params["threads"])


def _step_sae_density(ctx):
    from . import feature_density

    return feature_density(ctx.study, threads=ctx.params["threads"])


def _step_sae_matched(ctx):
    from .sae import sae_matched

    return sae_matched(ctx.results["sae_persistence"], ctx.study, n=ctx.params["n_matched"],
                       stat=ctx.params["match_stat"], threads=ctx.params["threads"])


def _step_ratings(ctx):
    from . import rating_analyses

    persistence = ctx.results.get("sae_persistence")
    kwargs = dict(n=ctx.params["n_matched"], stat=ctx.params["rating_stat"], threads=ctx.params["threads"])
    try:
        return rating_analyses(ctx.study, persistence, **kwargs)
    except EmostatsError as exc:
        if persistence is None:
            raise
        # the residuals cannot be matched (e.g. no feature has valid pairs at this lag); the rating
        # correlations that do not involve them still stand
        ds = rating_analyses(ctx.study, None, **kwargs)
        ds.attrs["residual_skipped"] = str(exc).splitlines()[0]
        return ds


def _step_mentions(ctx):
    from . import cosine, mention_tests
    from .errors import MissingGroupError

    ev = ctx.group("evaluations")
    cos = None
    if "cosine" not in ev:
        if not (ctx.has("features/decoder") and ctx.has("probes/vector")):
            raise MissingGroupError("needs /evaluations/cosine, or /features/decoder with /probes/vector to "
                                    "compute it")
        decoder = ctx.study["features"]["decoder"].sel(feature=ev["rated_feature"].values)
        cos = cosine(decoder.rename(feature="rated_feature"), ctx.study["probes"]["vector"])
        cos = cos.rename({d: "emotion" for d in cos.dims if d not in ("rated_feature",)})
        cos = cos.sel(emotion=ev["emotion"].values)
    return mention_tests(ev, min_mentions=ctx.params["min_mentions"], n_perm=ctx.params["n_perm"],
                         seed=ctx.step_seed("mentions"), alpha=ctx.params["alpha"], cosine=cos,
                         threads=ctx.params["threads"])


def _step_steering(ctx):
    from . import steering_effect

    return steering_effect(ctx.group("steering"), alpha=ctx.params["alpha"])


def _step_summary(ctx):
    from ._summary import summary_table

    return summary_table(ctx.results, ctx.params, ctx.study, skipped=ctx.skipped)


STEPS = {}


def _register(*steps):
    for step in steps:
        STEPS[step.name] = step


_ACT = ("tokens/probe_act",)
_SAE = ("tokens/sae_index", "features")
_register(
    Step("persistence", "lag persistence of the probes", _step_persistence, needs=_ACT),
    Step("profile", "lag profile r(L) of the probes", _step_profile, needs=_ACT),
    Step("trajectories", "trajectories by initial strength", _step_trajectories, needs=_ACT),
    Step("decay", "decay fits of the trajectories", _step_decay, after=("trajectories",), random=True),
    Step("decay_profile", "decay fit of the mean lag profile", _step_decay_profile, after=("profile",),
         random=True),
    Step("random_directions", "random directions on the sphere", _step_random_directions,
         needs=(("moments", "random"),), random=True),
    Step("candidates", "top-k candidates for variance matching", _step_candidates,
         needs=(("moments", "random"),), after=("random_directions",), random=True),
    Step("variance_matched", "residuals over variance-matched directions", _step_variance_matched,
         needs=(("probes/variance_explained", "probes/vector"),), after=("persistence", "candidates")),
    Step("emotion_pcs", "principal components of the emotion space", _step_emotion_pcs, needs=_ACT, random=True),
    Step("sae_persistence", "SAE firing persistence", _step_sae_persistence, needs=_SAE),
    Step("sae_density", "SAE feature density", _step_sae_density, needs=_SAE),
    Step("sae_matched", "SAE residuals against subspace fraction", _step_sae_matched,
         needs=("features/variance_explained", ("features/subspace_fraction", "features/decoder")),
         after=("sae_persistence",)),
    Step("ratings", "rating correlations", _step_ratings,
         needs=(("features/self_rating", "features/text_rating"),), after=("sae_persistence",)),
    Step("mentions", "emotion words in evaluation transcripts", _step_mentions, needs=("evaluations",),
         random=True),
    Step("steering", "causal effect of steering", _step_steering, needs=("steering",)),
    Step("summary", "the study's closing paragraph as a table", _step_summary),
)
