"""Exceptions that carry a one-line message meant for the user.

Every error a user can cause (a malformed study, a bad option, a missing group)
raises a subclass of :class:`EmostatsError`. The command line prints its message
on one line and exits with code 2, without a traceback.

- :class:`StudyError`: the study *file* is not valid (names group, variable, index);
  :class:`MissingGroupError` when an analysis needs a group the study lacks.
- :class:`ArgumentError`: an argument of a function or an option of a command is
  bad (names the argument, what was found and what is expected); see
  :mod:`emostats._checks`.
- :class:`OutputExistsError`: an output exists and ``force`` was not given.
"""

__all__ = ["EmostatsError", "StudyError", "MissingGroupError", "ArgumentError", "OutputExistsError",
           "DegenerateWarning"]


class EmostatsError(ValueError):
    """A user error with a one-line, self-explanatory message."""


class StudyError(EmostatsError):
    """The study file is not a valid emostats study (names group, variable, index)."""


class MissingGroupError(StudyError):
    """An analysis needs a group that the study does not have."""


class ArgumentError(EmostatsError, ValueError):
    """A bad argument or option: names it, says what was found and what is expected."""


class OutputExistsError(EmostatsError, FileExistsError):
    """An output file exists and ``force`` was not given."""


class DegenerateWarning(RuntimeWarning):
    """Some results are NaN (constant or NaN input, too few values); the one-line message says which and how many."""
