"""Targets that make the infrastructure a flow declares: one interface, one plan model."""

import os

from providers.base import (
    ApplyError,
    Outputs,
    Progress,
    Provider,
    StalePlanError,
    UnsupportedPrimitiveError,
    no_progress,
)
from providers.lock import LockInfo, StateLockedError
from providers.plan import Plan, PropertyChange, ResourceChange
from providers.state import State, StateStore

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


def get_provider(target: str, project_dir: "str | os.PathLike[str]", stack: str = "dev") -> Provider:
    """The provider of ``target`` (``local``; ``gcp`` comes later) for a project and stack."""
    if target == "local":
        from providers.local import LocalProvider

        return LocalProvider(project_dir, stack)
    raise ValueError(f"unknown target {target!r}: the available target is 'local'")
