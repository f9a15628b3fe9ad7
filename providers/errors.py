"""The base of errors a provider reports to users (the CLI prints the message, no traceback)."""


class ProviderError(RuntimeError):
    """Something about the target or its state stops the command; ``str()`` says what to do."""
