"""Errors raised at the edges, turned by the CLI into one-line messages with exit code 2."""


class BirramError(Exception):
    """Base class for errors the user can fix (bad input, missing files, bad values)."""


class DataError(BirramError):
    """A data file is missing, truncated, corrupt or has the wrong layout."""


class ConfigError(BirramError):
    """A configuration value, preset, method or dataset name is not allowed."""
