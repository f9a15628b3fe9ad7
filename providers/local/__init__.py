"""The default ``local`` target: everything on this machine, no cloud account, no Docker."""

from providers.local.postgres import LocalTargetError
from providers.local.provider import LocalProvider

__all__ = ["LocalProvider", "LocalTargetError"]
