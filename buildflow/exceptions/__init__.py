"""Exceptions users raise or catch; ``buildflow.exceptions.HTTPException`` as in BuildFlow."""

from buildflow.exceptions.exceptions import (
    DependencyCycleError,
    DependencyError,
    FlowDeclarationError,
    HTTPException,
    InvalidDependencyHierarchyOrder,
    WebSocketDisconnect,
)

__all__ = [
    "DependencyCycleError",
    "DependencyError",
    "FlowDeclarationError",
    "HTTPException",
    "InvalidDependencyHierarchyOrder",
    "WebSocketDisconnect",
]
