"""Errors raised at the edges, turned by the CLI into one-line messages.

Each carries the exit code the command ends with: 2 for input the user can fix (the usage-error
convention), 3 for a run that stopped because its numbers stopped being numbers.
"""


class BirramError(Exception):
    """Base class for errors the user can fix (bad input, missing files, bad values)."""

    exit_code = 2


class DataError(BirramError):
    """A data file is missing, truncated, corrupt or has the wrong layout."""


class ConfigError(BirramError):
    """A configuration value, preset, method or dataset name is not allowed."""


class TrainingDiverged(BirramError):
    """A loss or parameter became NaN or infinite; the run stopped at the last good checkpoint."""

    exit_code = 3
