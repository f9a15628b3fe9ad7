"""Exceptions users raise or catch; ``buildflow.exceptions.HTTPException`` as in BuildFlow."""

from buildflow.exceptions.exceptions import (
    DependencyCycleError,
    DependencyError,
    FlowDeclarationError,
    HTTPException,
    InvalidDependencyHierarchyOrder,
    WebSocketDisconnect,
)
from buildflow.io.primitive import PrimitiveValidationError

__all__ = [
    "DependencyCycleError",
    "DependencyError",
    "FlowDeclarationError",
    "HTTPException",
    "InvalidDependencyHierarchyOrder",
    "PrimitiveValidationError",
    "WebSocketDisconnect",
]
