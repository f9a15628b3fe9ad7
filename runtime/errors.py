"""Errors the runtime reports before serving (the CLI prints them without a traceback)."""


class StartupError(Exception):
    """The flow cannot be served as declared; ``str()`` says what and where."""
