"""Exceptions that carry a one-line message meant for the user.

Every error a user can cause (a malformed study, a bad option, a missing group)
raises a subclass of :class:`EmostatsError`. The command line prints its message
on one line and exits with code 2, without a traceback.
"""

__all__ = ["EmostatsError", "StudyError", "MissingGroupError", "OutputExistsError"]


class EmostatsError(ValueError):
    """A user error with a one-line, self-explanatory message."""


class StudyError(EmostatsError):
    """The study file is not a valid emostats study (names group, variable, index)."""


class MissingGroupError(StudyError):
    """An analysis needs a group that the study does not have."""


class OutputExistsError(EmostatsError, FileExistsError):
    """An output file exists and ``force`` was not given."""
