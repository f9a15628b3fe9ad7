"""Targets that make the infrastructure a flow declares: one interface, one plan model."""

import importlib
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
    "TARGETS",
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
    "provider_class",
]


#: Each target's provider, as ``module:class``: a new target is a module of providers/ and one line here.
TARGETS: dict[str, str] = {
    "local": "bfctl.providers.local:LocalProvider",
    "gcp": "bfctl.providers.gcp:GCPProvider",
}


def provider_class(target: str) -> type[Provider]:
    """The provider of ``target``, its module imported (a target's module imports no cloud SDK);
    ``ValueError`` naming the targets for one that does not exist."""
    if target not in TARGETS:
        names = " and ".join(repr(name) for name in TARGETS)
        raise ValueError(f"unknown target {target!r}: the available targets are {names}")
    module, _, name = TARGETS[target].partition(":")
    found: type[Provider] = getattr(importlib.import_module(module), name)
    return found


def get_provider(target: str, project_dir: "str | os.PathLike[str]", stack: str = "dev", **options: Any) -> Provider:
    """The provider of ``target`` for a project and stack; ``options`` are its constructor's (the
    gcp target's ``project``, ``region``, ``ask_passphrase``; the local target takes none)."""
    return provider_class(target)(project_dir, stack, **options)
