"""The report's sections, one topic per module, each found by the steps it renders.

A section module decorates ``build(results, figures) -> Section`` with
:func:`section`, naming the steps whose results it renders, and declares its
figures with :func:`emostats.report.figures.figure` beside it. :func:`load_sections`
imports every module of this package (no list to edit) and orders the sections
by the run order of their first step (``rank`` overrides it: the summary comes
first). :func:`section_for` finds the section of a step by the step's name.

Examples
--------
>>> from emostats.report.sections import load_sections, section_for
>>> [s.name for s in load_sections()][:2]
['summary', 'persistence']
>>> section_for("decay").name
'persistence'
"""

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ReportSection", "section", "load_sections", "section_for"]


@dataclass(frozen=True)
class ReportSection:
    """A section of the report: its ``build`` function, the steps it renders, its place."""

    name: str
    steps: tuple
    build: Callable
    rank: "float | None" = None

    def position(self) -> float:
        from ...pipeline import STEPS

        if self.rank is not None:
            return self.rank
        orders = [STEPS[s].order for s in self.steps if s in STEPS]
        return min(orders) if orders else float("inf")


_SECTIONS: "dict[str, ReportSection]" = {}
_LOADED: "list[ReportSection]" = []


def section(*steps: str, rank: "float | None" = None) -> Callable:
    """Decorator registering ``build(results, figures)`` as the section rendering ``steps``."""

    def register(build: Callable) -> Callable:
        name = build.__name__.removeprefix("_sec_")
        _SECTIONS[name] = ReportSection(name, tuple(steps), build, rank)
        return build

    return register


def load_sections() -> "list[ReportSection]":
    """Every section, in report order (importing this package's modules once)."""
    if not _LOADED:
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _LOADED.extend(sorted(_SECTIONS.values(), key=lambda s: (s.position(), s.name)))
    return _LOADED


def section_for(step: str) -> "ReportSection | None":
    """The section that renders ``step``, or None (a step without a section of its own)."""
    return next((s for s in load_sections() if step in s.steps), None)
