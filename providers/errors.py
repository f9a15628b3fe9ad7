"""The errors a provider reports to users (the CLI prints the message, no traceback)."""

from buildflow.io.primitive import PrimitiveValidationError


class ProviderError(RuntimeError):
    """Something about the target or its state stops the command; ``str()`` says what to do."""


class UnsupportedPrimitiveError(PrimitiveValidationError):
    """The target cannot make this primitive (the message says why and what to use)."""
