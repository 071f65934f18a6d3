"""The parameters of the pipeline's steps: each declared once, with its default, rule and help.

A :class:`Param` is the single source of a parameter's default (from
:mod:`emostats.defaults`), its check (:mod:`emostats._checks`), its help text
and its command-line flag (``--`` + the name with dashes). Steps list the
params they read; :func:`emostats.run`, the preset commands, the report's
methods and provenance sections and the docs all read this metadata.

The params used by several topics are defined here; a param used by one topic
only is defined in that topic's step module (e.g. ``n_boot`` in
:mod:`emostats.pipeline.steps.decay`).

Examples
--------
>>> LAG.flag, LAG.default
('--lag', 100)
>>> LAG.check(0)
Traceback (most recent call last):
...
emostats.errors.ArgumentError: lag must be >= 1 token, got 0
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _checks as C
from .. import defaults as D

__all__ = ["Param", "LAG", "MAX_LAG", "N_MATCHED", "MATCH_STAT", "ALPHA", "SEED", "THREADS", "ENGINE_PARAMS"]


@dataclass(frozen=True)
class Param:
    """One parameter of the pipeline.

    Parameters
    ----------
    name : str
        The keyword of :func:`emostats.run` and the ``param_<name>`` attribute of the results.
    default : object
        Its default (a constant of :mod:`emostats.defaults`).
    help : str
        One line for ``--help``, the docs and the report.
    kind : {"int", "float", "choice", "ints", "seed", "threads"}
        How the value is checked and parsed on the command line.
    minimum, maximum : int, optional
        Bounds of an ``int``.
    choices : tuple, optional
        The values of a ``choice``.
    unit : str
        What an ``int`` counts (said in the error), e.g. ``"token"``.
    aliases : tuple of str
        Older command-line flags still accepted (e.g. ``--n-match``).
    cli : bool
        Whether the preset commands expose it as an option.
    """

    name: str
    default: Any
    help: str
    kind: str = "int"
    minimum: "int | None" = None
    maximum: "int | None" = None
    choices: tuple = ()
    unit: str = ""
    aliases: tuple = ()
    cli: bool = True
    metavar: "str | None" = field(default=None, compare=False)

    @property
    def flag(self) -> str:
        """The command-line option, e.g. ``--max-lag``."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, label: "str | None" = None) -> Any:
        """The checked, normalised ``value``; :class:`~emostats.errors.ArgumentError` naming ``label``."""
        label = label or self.name
        if self.kind == "int":
            return C.check_int(value, label, minimum=self.minimum, maximum=self.maximum, unit=self.unit)
        if self.kind == "float":
            return C.check_fraction(value, label)
        if self.kind == "choice":
            return C.check_choice(value, label, self.choices)
        if self.kind == "ints":
            return None if value is None else C.check_ints(value, label, minimum=self.minimum)
        if self.kind == "seed":
            return C.check_seed(value, label)
        if self.kind == "threads":
            return C.check_threads(value, label)
        raise ValueError(f"unknown kind {self.kind!r} of parameter {self.name}")

    def parse(self, text: str) -> Any:
        """A command-line value (``ints`` are comma-separated) before :meth:`check`."""
        from ..errors import ArgumentError

        if self.kind == "ints":
            try:
                values = [int(k) for k in text.split(",") if k.strip()]
            except ValueError:
                values = None
            if values:
                return values
            raise ArgumentError(f"{self.flag} must be comma-separated integers such as 1,10,100, got {text!r}")
        if self.kind == "float":
            try:
                return float(text)
            except ValueError:
                raise ArgumentError(f"{self.flag} must be a number, got {text!r}") from None
        if self.kind == "choice":
            return text
        try:
            return int(text)
        except ValueError:
            raise ArgumentError(f"{self.flag} must be an integer, got {text!r}") from None

    def describe_default(self) -> str:
        if self.default is None:
            return "none"
        if isinstance(self.default, (list, tuple)):
            return ",".join(str(v) for v in self.default)
        return str(self.default)


def check_relations(values: "dict[str, Any]", label: "Callable[[str], str] | None" = None) -> None:
    """Checks between parameters: ``max_lag >= lag`` when both are in ``values``."""
    label = label or (lambda name: name)
    if "lag" in values and "max_lag" in values:
        C.check_lags(values["lag"], values["max_lag"], lag_name=label("lag"), max_lag_name=label("max_lag"))


LAG = Param("lag", D.LAG, "lag L of the persistence metrics (probes, random directions, SAE features), tokens",
            minimum=1, unit="token")
MAX_LAG = Param("max_lag", D.MAX_LAG, "largest lag of the lag profile and largest tau of the trajectories, tokens",
                minimum=1, unit="token")
N_MATCHED = Param("n_matched", D.N_MATCHED, "variance-matched neighbours per target (probes, PCs, SAE features)",
                  minimum=1, aliases=("--n-match",))
MATCH_STAT = Param("match_stat", D.MATCH_STAT, "statistic of the matched values subtracted from a probe, PC or SAE "
                   "feature", kind="choice", choices=D.STATS, aliases=("--stat",))
ALPHA = Param("alpha", D.ALPHA, "BH-FDR level of the steering and mention tests", kind="float")
SEED = Param("seed", D.SEED, "master seed; every random step derives its own from it and its name", kind="seed")
THREADS = Param("threads", None, "threads of the parallel kernels (results do not depend on it; default all)",
                kind="threads")

#: parameters of the engine itself (every preset has them)
ENGINE_PARAMS: "Sequence[Param]" = (SEED, THREADS)
