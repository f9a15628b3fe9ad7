"""Targets that make the infrastructure a flow declares: one interface, one plan model."""

import os
from typing import Any

from bfctl.providers.base import (
    ApplyError,
    Outputs,
    Progress,
    Provider,
    StalePlanError,
    no_progress,
)
from bfctl.providers.errors import UnsupportedPrimitiveError
from bfctl.providers.lock import LockInfo, StateLockedError
from bfctl.providers.plan import Plan, PropertyChange, ResourceChange
from bfctl.providers.state import State, StateStore

__all__ = [
    "ApplyError",
    "LockInfo",
    "Outputs",
    "Plan",
    "Progress",
    "PropertyChange",
    "Provider",
    "ResourceChange",
    "StalePlanError",
    "State",
    "StateLockedError",
    "StateStore",
    "UnsupportedPrimitiveError",
    "get_provider",
    "no_progress",
]


def get_provider(target: str, project_dir: "str | os.PathLike[str]", stack: str = "dev", **options: Any) -> Provider:
    """The provider of ``target`` (``local`` or ``gcp``) for a project and stack.

    ``options`` are the gcp target's (``project``, ``region``, ``ask_passphrase``); the local
    target takes none. Importing a target's module imports no cloud SDK.
    """
    if target == "local":
        from bfctl.providers.local import LocalProvider

        return LocalProvider(project_dir, stack)
    if target == "gcp":
        from bfctl.providers.gcp import GCPProvider

        return GCPProvider(project_dir, stack, **options)
    raise ValueError(f"unknown target {target!r}: the available targets are 'local' and 'gcp'")
