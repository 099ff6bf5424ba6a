"""Exceptions that the command-line entry points print as one-line errors."""


class BasicSRDenoiseError(Exception):
    """Base class of the errors a user can cause (bad options, bad files).

    Entry points catch it and print ``error: <message>`` on one line, without a traceback.
    """


class OptionError(BasicSRDenoiseError, ValueError):
    """A bad option file, option key, option value or command-line override."""


class DataError(BasicSRDenoiseError, ValueError):
    """A missing, unreadable or unsuitable data file or folder."""


class CheckpointError(BasicSRDenoiseError, ValueError):
    """A checkpoint that cannot be loaded safely or does not fit the network."""
