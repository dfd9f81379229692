"""Errors a user can see.

Each carries the exit code the CLI uses: 2 for a usage or spec problem (the
command or its configuration is wrong), 1 for data that fails a check. Messages
name the file, key or column and say what to do; they never contain a
patient's values or identifiers.
"""

from __future__ import annotations


class CohortlmError(Exception):
    """Base class for errors shown to users without a traceback."""

    exit_code = 2


class UsageError(CohortlmError):
    """The command was called wrongly (missing file, bad option)."""

    exit_code = 2


class SpecError(CohortlmError):
    """A study spec, policy or config file is invalid."""

    exit_code = 2


class DataError(CohortlmError):
    """The data does not satisfy what the study spec or a check requires."""

    exit_code = 1


class StepFailedError(CohortlmError):
    """A pipeline step failed (its own log says why)."""

    exit_code = 1
