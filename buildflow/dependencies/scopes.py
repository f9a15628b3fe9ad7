"""Dependency scopes and the ``@dependency`` marker.

Marking is pure data: the decorated class or function is returned unchanged (so type checkers
and IDEs keep seeing the real class) with its scope attached. The runtime reads the mark.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

SCOPE_ATTR = "__buildflow_scope__"
BLOCKING_ATTR = "__buildflow_blocking__"


class Scope(enum.Enum):
    """How long one built instance lives (BuildFlow 0.3 members and values)."""

    PROCESS = 1  # one per processed request, shared by everything in that request
    REPLICA = 2  # one per worker process, built when the worker starts
    GLOBAL = 3  # one for the whole app, built before workers start
    NO_SCOPE = 4  # never cached: a new instance wherever it is injected

    @classmethod
    def all(cls) -> list[Scope]:
        return [cls.PROCESS, cls.REPLICA, cls.GLOBAL]


#: Scope of a class or function used as a dependency without ``@dependency``.
DEFAULT_SCOPE = Scope.PROCESS


def _as_scope(scope: Scope | str) -> Scope:
    if isinstance(scope, Scope):
        return scope
    if isinstance(scope, str) and scope.upper() in Scope.__members__:
        return Scope[scope.upper()]
    valid = ", ".join(s.name for s in Scope)
    raise ValueError(f"Invalid scope `{scope}`. Valid scopes are {valid}")


@overload
def dependency(scope: Scope | str = ..., *, blocking: bool = ...) -> Callable[[T], T]: ...
@overload
def dependency(scope: T) -> T: ...


def dependency(scope: Any = DEFAULT_SCOPE, *, blocking: bool = False) -> Any:
    """Mark a class or function as injectable with ``scope``.

    Accepts ``@dependency(Scope.REPLICA)``, ``@dependency(scope="replica")`` and a bare
    ``@dependency`` (default scope, PROCESS).

    ``blocking=True`` (sync ones): it waits on I/O rather than using the CPU, so it is worth a trip
    to the thread pool of its own, at the same time as the request's other work. Otherwise the sync
    dependencies of a request share one trip, which costs less when they are quick.
    """
    if callable(scope) and not isinstance(scope, (Scope, str)):
        setattr(scope, SCOPE_ATTR, DEFAULT_SCOPE)
        return scope
    resolved = _as_scope(scope)

    def mark(target: T) -> T:
        if not callable(target):
            raise TypeError(f"@dependency needs a class or a function, got {target!r}")
        setattr(target, SCOPE_ATTR, resolved)
        if blocking:
            setattr(target, BLOCKING_ATTR, True)
        return target

    return mark


def scope_of(target: Any) -> Scope | None:
    """The declared scope of ``target``, or None when it was never marked."""
    return getattr(target, SCOPE_ATTR, None)


def is_blocking(target: Any) -> bool:
    """Whether ``target`` was marked ``@dependency(..., blocking=True)``."""
    return getattr(target, BLOCKING_ATTR, False) is True


process_scoped = dependency(Scope.PROCESS)
replica_scoped = dependency(Scope.REPLICA)
global_scoped = dependency(Scope.GLOBAL)
no_scoped = dependency(Scope.NO_SCOPE)
