"""The one exception type the command line turns into a one-line message."""


class FemlmError(Exception):
    """A problem with the user's input or environment, not a bug in femlm.

    The CLI prints ``femlm: error: <message>`` and exits with status 2; the
    message must say what is wrong and, where possible, what to do about it.
    """
