"""The default ``local`` target: everything on this machine, no cloud account, no Docker."""

from bfctl.providers.local.errors import LocalTargetError
from bfctl.providers.local.provider import LocalProvider

__all__ = ["LocalProvider", "LocalTargetError"]
