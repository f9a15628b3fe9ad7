"""Injectable dependencies: ``@dependency(scope=Scope.X)`` on a class or function."""

from buildflow.dependencies.scopes import (
    DEFAULT_SCOPE,
    Scope,
    dependency,
    global_scoped,
    no_scoped,
    process_scoped,
    replica_scoped,
)

__all__ = [
    "DEFAULT_SCOPE",
    "Scope",
    "dependency",
    "global_scoped",
    "no_scoped",
    "process_scoped",
    "replica_scoped",
]
