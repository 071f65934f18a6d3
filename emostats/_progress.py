"""One progress display for long commands: a rich bar on stderr when it is a terminal, else nothing."""

import sys

__all__ = ["StepProgress", "stop_all"]

#: bars being shown (stop_all ends them when a signal stops the command line)
_ACTIVE = set()


class StepProgress:
    """A rich progress bar of ``total`` steps on stderr, or a no-op when disabled or not a TTY.

    Parameters
    ----------
    title : str
        First description of the bar.
    total : int
        Number of steps.
    enabled : bool
        False turns the display off (``--no-progress``, ``--quiet``).
    width : int
        Width of the description column.
    transient : bool
        Remove the bar when done.

    Examples
    --------
    >>> with StepProgress("demo", 2, enabled=False) as bar:
    ...     bar.step("first"); bar.advance()
    >>> bar.active
    False
    """

    def __init__(self, title, total, enabled=True, width=34, transient=True):
        self.progress = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, \
                TimeElapsedColumn

            self.progress = Progress(SpinnerColumn(), TextColumn(f"{{task.description:<{width}}}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True),
                                     transient=transient)
            self.task = self.progress.add_task(title, total=total)

    @property
    def active(self):
        return self.progress is not None

    def __enter__(self):
        if self.active:
            self.progress.start()
            _ACTIVE.add(self)
        return self

    def __exit__(self, *exc):
        if self.active:
            _ACTIVE.discard(self)
            self.progress.stop()

    def step(self, text):
        """Describe the step now running."""
        if self.active:
            self.progress.update(self.task, description=text)

    def advance(self, n=1):
        if self.active:
            self.progress.advance(self.task, n)

    def print(self, line):
        """Print a line above the bar (only while the bar is shown)."""
        if self.active:
            self.progress.console.print(line, highlight=False, markup=False)

    def sub(self, text):
        """A callback ``(done, total)`` driving a second bar, or None when inactive."""
        if not self.active:
            return None
        task = self.progress.add_task(text, total=None)

        def update(done, total):
            self.progress.update(task, completed=done, total=total)

        return update


def stop_all():
    """End every bar being shown (the terminal gets its cursor back), e.g. before exiting on Ctrl-C."""
    for bar in list(_ACTIVE):
        _ACTIVE.discard(bar)
        try:
            bar.progress.stop()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
