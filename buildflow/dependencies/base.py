"""BuildFlow's ``buildflow.dependencies.base``: its scopes and decorators, mapped onto ours.

BuildFlow wrapped a dependency in a ``Dependency`` object of a scope class; here
``@dependency`` marks the class or function itself, so the scope classes' names are kept
as functions that mark with their scope.
"""

from __future__ import annotations

from typing import TypeVar

from buildflow.dependencies.scopes import Scope, dependency, global_scoped, no_scoped, process_scoped, replica_scoped
from buildflow.exceptions import InvalidDependencyHierarchyOrder

T = TypeVar("T")


def Dependency(dependency_fn: T, scope: Scope) -> T:
    """``dependency_fn`` marked as injectable with ``scope`` (BuildFlow's ``Dependency(fn, scope)``)."""
    return dependency(scope)(dependency_fn)


#: BuildFlow's names for ``@dependency(Scope.X)``: once per request, per worker, for the app,
#: and wherever injected.
ProcessScoped = process_scoped
ReplicaScoped = replica_scoped
GlobalScoped = global_scoped
NoScoped = no_scoped


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
