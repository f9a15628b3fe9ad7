"""Pipedream's API (``from pipedream import ...`` becomes ``from buildflow.pipedream import ...``), plus
``Dispatcher.acall`` on asyncio and ``Dispatcher.plan``, the compiled form other code reads."""

from buildflow.pipedream.dispatcher import Dispatcher, Resource
from buildflow.pipedream.exceptions import (
    CircularDependency,
    CircularDispatcherDependency,
    DuplicateFunction,
    IncompleteCall,
    PipedreamException,
    ResourceError,
    UnresolvableDependency,
)
from buildflow.pipedream.plan import Plan, Step

__all__ = [
    "CircularDependency",
    "CircularDispatcherDependency",
    "Dispatcher",
    "DuplicateFunction",
    "IncompleteCall",
    "PipedreamException",
    "Plan",
    "Resource",
    "ResourceError",
    "Step",
    "UnresolvableDependency",
]
