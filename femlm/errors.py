"""The one exception type the command line turns into a one-line message."""


class FemlmError(ValueError):
    """A problem with the user's input or environment, not a bug in femlm.

    The CLI prints ``femlm: error: <message>`` and exits with status 2; the
    message must say what is wrong and, where possible, what to do about it.
    Any other exception is a bug and keeps its traceback. It subclasses
    ``ValueError`` so that library callers who caught the ``ValueError`` of a
    bad rate or strategy keep working.
    """
