"""The progress display of a run: a bar on stderr (see :class:`emostats._progress.StepProgress`) and one
line per skipped step."""

import sys

from .._progress import StepProgress

__all__ = ["Display"]


class Display:
    """Progress of ``n_steps`` steps under the name of ``command`` (``emostats run``, ``emostats persistence``)."""

    def __init__(self, command: str, n_steps: int, enabled: bool, quiet: bool):
        self.command = command
        self.quiet = quiet
        self.bar = StepProgress(command, n_steps, enabled and not quiet, width=44, transient=False)
        self.progress = self.bar.progress
        self.step = None

    def __enter__(self) -> "Display":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def start(self, step) -> None:
        self.step = step
        self.bar.step(f"{step.name}: {step.title}")

    def inner(self, done: int, total: int) -> None:
        """Progress inside a long step (e.g. bootstrap replicates): shown in the step's line."""
        self.bar.step(f"{self.step.name}: {self.step.title} ({done}/{total})")

    def done(self, step, seconds: float) -> None:
        self.bar.print(f"  {step.name:<18} {seconds:8.2f} s")
        self.bar.advance()

    def skip(self, step, reason: str) -> None:
        line = f"{self.command}: skipped {step.name}: {reason}"
        if self.bar.active:
            self.bar.print(line)
            self.bar.advance()
        elif not self.quiet:
            print(line, file=sys.stderr)
