"""Exceptions that the CLI turns into one-line messages and a non-zero exit."""


class DeepPRSError(Exception):
    """Base class for errors deepprs reports to the user without a traceback."""


class InputError(DeepPRSError, ValueError):
    """Bad input: a missing, malformed or inconsistent file or argument.

    The message names the file (or flag) and says what to do.
    """
