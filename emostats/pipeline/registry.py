"""The step registry: every analysis of the pipeline declares itself here, from its own module.

A step module in :mod:`emostats.pipeline.steps` decorates its function with
:func:`step`; :func:`load_steps` imports every module of that package (no list
to edit), and :data:`STEPS` holds the steps in their ``order`` (SPEC.md section
2's analysis numbers). A preset (``emostats persistence``, ``nullmodels``,
``run``) is the set of steps that name it in ``presets`` (``run`` is all).

Examples
--------
>>> from emostats.pipeline.registry import STEPS, preset_steps
>>> preset_steps("persistence")
['persistence', 'looping', 'profile', 'trajectories', 'decay', 'decay_profile']
>>> STEPS["decay"].after, STEPS["decay"].seed
(('trajectories',), 'decay')
"""

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError
from .params import ENGINE_PARAMS, Param

__all__ = ["Step", "Preset", "step", "STEPS", "PRESETS", "PARAMS", "load_steps", "preset_steps", "params_of", "all_params",
           "select"]


@dataclass(frozen=True)
class Step:
    """One analysis of the pipeline.

    Attributes
    ----------
    name : str
        Group name of its results and key of :data:`STEPS`.
    title : str
        One line for the progress display and the results' ``title``.
    func : callable
        ``func(ctx) -> xarray.Dataset`` with ``ctx`` a :class:`~emostats.pipeline.context.Context`;
        an :class:`~emostats.errors.EmostatsError` it raises becomes a skip with its first line.
    order : float
        Position in the run (earlier steps it reads come first).
    needs : tuple
        Study variables as ``"group"`` or ``"group/variable"``; a tuple inside is a choice.
    after : tuple of str
        Earlier steps whose results it reads.
    params : tuple of Param
        The parameters it reads (``ctx.params[name]``); seed and threads come with every step.
    seed : str, optional
        Its seed stream (the step name for a random step): ``ctx.seed_of(step)`` is
        ``derive_seed(run seed, stream)``. None: not random.
    presets : tuple of str
        Commands besides ``emostats run`` that run it (``"persistence"``, ``"nullmodels"``).
    """

    name: str
    title: str
    func: Callable
    order: float
    needs: tuple = ()
    after: tuple = ()
    params: tuple = ()
    seed: "str | None" = None
    presets: tuple = ()
    doc: str = field(default="", repr=False, compare=False)

    @property
    def random(self) -> bool:
        return self.seed is not None


@dataclass(frozen=True)
class Preset:
    """A command that runs a subset of the steps: ``required`` steps must run, or the command fails."""

    name: str
    help: str
    required: tuple = ()


#: name -> Step, in run order (filled by :func:`load_steps`)
STEPS: "dict[str, Step]" = {}

#: the commands of the one engine; ``run`` has every step
PRESETS: "dict[str, Preset]" = {p.name: p for p in (
    Preset("run", "every analysis the study supports"),
    Preset("persistence", "lag persistence, lag profile, trajectories and decay fits (Figure 2)",
           required=("persistence",)),
    Preset("nullmodels", "probes against random and variance-matched directions; emotion PCs (Figures 3-5)",
           required=("random_directions",)),
)}

#: name -> Param of every parameter any loaded step declared, with the engine's (filled by :func:`load_steps`)
PARAMS: "dict[str, Param]" = {p.name: p for p in ENGINE_PARAMS}

_PENDING: "list[Step]" = []


def step(name: str, title: str, *, order: float, needs: Sequence = (), after: Sequence[str] = (),
         params: Sequence[Param] = (), random: bool = False, seed: "str | None" = None,
         presets: Sequence[str] = ()) -> Callable:
    """Decorator that registers ``func(ctx) -> Dataset`` as a step (see :class:`Step`).

    ``random=True`` gives the step the seed stream of its own name (or ``seed``).
    """

    def register(func: Callable) -> Callable:
        unknown = [p for p in presets if p not in PRESETS]
        if unknown:
            raise ValueError(f"step {name}: unknown preset {unknown[0]!r}; choose from {', '.join(PRESETS)}")
        _PENDING.append(Step(name, title, func, float(order), tuple(needs), tuple(after), tuple(params),
                             (seed or name) if random else None, tuple(presets), (func.__doc__ or "").strip()))
        return func

    return register


def load_steps(package: str = "emostats.pipeline.steps") -> "dict[str, Step]":
    """Import every module of ``package`` once and fill :data:`STEPS` (in ``order``)."""
    if STEPS:
        return STEPS
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
    steps = sorted(_PENDING, key=lambda s: s.order)
    seen: "dict[str, Step]" = {}
    params = PARAMS
    for s in steps:
        if s.name in seen:
            raise ValueError(f"two steps are named {s.name!r}")
        for dep in s.after:
            if dep not in seen:
                raise ValueError(f"step {s.name} reads step {dep!r}, which is not an earlier step")
        for p in s.params:
            if params.setdefault(p.name, p) != p:
                raise ValueError(f"step {s.name} declares parameter {p.name} differently from another step")
        seen[s.name] = s
    STEPS.update(seen)
    _PENDING.clear()
    return STEPS


def preset_steps(preset: str) -> "list[str]":
    """The steps of a preset, in run order."""
    if preset not in PRESETS:
        raise ArgumentError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    return [s.name for s in STEPS.values() if preset == "run" or preset in s.presets]


def params_of(steps: "Sequence[str]") -> "dict[str, Param]":
    """The parameters the steps read, plus the engine's (seed, threads), in first-use order."""
    out = {p.name: p for p in ENGINE_PARAMS}
    for name in steps:
        for p in STEPS[name].params:
            out.setdefault(p.name, p)
    return out


def all_params() -> "dict[str, Param]":
    """Every parameter of every step (and of the engine), in first-declared order."""
    out = dict(PARAMS)
    for p in params_of(list(STEPS)).values():
        out.setdefault(p.name, p)
    return out


def select(steps: "str | Sequence[str] | None" = None, preset: "str | None" = None) -> "list[str]":
    """The steps to run, in run order: ``steps`` (a subset), else the preset's, else all."""
    if steps is None:
        return preset_steps(preset or "run")
    steps = [steps] if isinstance(steps, str) else list(steps)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ArgumentError(f"unknown step {unknown[0]!r}; choose from {', '.join(STEPS)}")
    if not steps:
        raise ArgumentError(f"steps is empty; name at least one of {', '.join(STEPS)} (or pass None for all)")
    pool = set(preset_steps(preset)) if preset else set(STEPS)
    outside = [s for s in steps if s not in pool]
    if outside:
        raise ArgumentError(f"step {outside[0]!r} is not part of the {preset} preset; choose from "
                            f"{', '.join(s for s in STEPS if s in pool)}")
    return [s for s in STEPS if s in steps]


def describe(value: Any) -> str:
    """A parameter value as the command line would write it."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)
