"""Writers and readers named by engine: each engine's factory is ``module:function``, imported
only when a sink or source on that engine is used (a cloud client is never loaded for nothing)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from buildflow.storage.engines import Engine


def load_factory(table: Mapping[Engine, str], engine: Any) -> Any | None:
    """The factory ``table`` names for ``engine`` (an ``Engine`` or its string from a state file),
    None for an engine it does not know."""
    try:
        spec = table[Engine(engine)]
    except (ValueError, KeyError):
        return None
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)
