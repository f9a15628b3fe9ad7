"""The error every family of the local target reports to users."""

from bfctl.providers.errors import ProviderError


class LocalTargetError(ProviderError):
    """The local target could not do something; the message says what to do about it."""
