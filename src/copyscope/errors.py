"""The one exception type users see: a single sentence naming the file and the problem."""


class CopyscopeError(Exception):
    """A problem with the user's input or environment, told in one clear sentence.

    The CLI prints the message and exits non-zero without a traceback (``--debug`` shows one).
    """
