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


def exit_on_user_error(fn, *args, **kwargs):
    """Call ``fn(*args, **kwargs)``; a :class:`BasicSRDenoiseError` prints ``error: <message>`` and exits with 2.

    Every command-line entry point goes through it, so a user mistake is one line, not a traceback.
    """
    import sys
    try:
        return fn(*args, **kwargs)
    except BasicSRDenoiseError as exc:
        print(f'error: {exc}', file=sys.stderr, flush=True)
        sys.exit(2)
