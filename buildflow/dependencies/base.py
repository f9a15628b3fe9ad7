"""BuildFlow's ``buildflow.dependencies.base``: its scopes and decorators, mapped onto ours.

BuildFlow wrapped a dependency in a ``Dependency`` object of a scope class; here
``@dependency`` marks the class or function itself, so the scope classes' names are kept
as functions that mark with their scope.
"""

from __future__ import annotations

from typing import TypeVar

from buildflow.dependencies.scopes import Scope, dependency
from buildflow.exceptions import InvalidDependencyHierarchyOrder

T = TypeVar("T")


def Dependency(dependency_fn: T, scope: Scope) -> T:
    """``dependency_fn`` marked as injectable with ``scope`` (BuildFlow's ``Dependency(fn, scope)``)."""
    return dependency(scope)(dependency_fn)


def ProcessScoped(dependency_fn: T) -> T:
    """``dependency_fn`` built once per request (``@dependency(Scope.PROCESS)``)."""
    return Dependency(dependency_fn, Scope.PROCESS)


def ReplicaScoped(dependency_fn: T) -> T:
    """``dependency_fn`` built once per worker (``@dependency(Scope.REPLICA)``)."""
    return Dependency(dependency_fn, Scope.REPLICA)


def GlobalScoped(dependency_fn: T) -> T:
    """``dependency_fn`` built once for the app (``@dependency(Scope.GLOBAL)``)."""
    return Dependency(dependency_fn, Scope.GLOBAL)


def NoScoped(dependency_fn: T) -> T:
    """``dependency_fn`` built wherever it is injected (``@dependency(Scope.NO_SCOPE)``)."""
    return Dependency(dependency_fn, Scope.NO_SCOPE)


__all__ = [
    "Dependency",
    "GlobalScoped",
    "InvalidDependencyHierarchyOrder",
    "NoScoped",
    "ProcessScoped",
    "ReplicaScoped",
    "Scope",
    "dependency",
]
