"""Pipedream's exceptions, with its names and bases, so ``except`` clauses written for it still match.

``CircularDispatcherDependency``, ``ResourceError`` and ``IncompleteCall`` were exported by
Pipedream without being raised; they are kept for code that imports or catches them.
``ResourceError`` is raised here when ``call`` meets an ``async def`` function (see ``Dispatcher.call``).
"""

from __future__ import annotations

from collections.abc import Sequence


class PipedreamException(Exception):
    """The base of every error the dispatcher raises itself."""


class DuplicateFunction(PipedreamException):
    """A name is added twice to one dispatcher."""


class CircularDependency(PipedreamException):
    """A function needs, through its requirements, its own result."""


class CircularDispatcherDependency(PipedreamException):
    """Kept from Pipedream; a cycle of sub-dispatchers is walked once, not reported."""


class UnresolvableDependency(PipedreamException):
    """Nothing provides ``name``: neither a function of the dispatcher or its sub-dispatchers nor a keyword argument."""

    def __init__(self, name: str, available: Sequence[str], needed_by: str | None = None) -> None:
        self.name = name
        self.available = available
        self.needed_by = needed_by
        wanted = f"{name!r} (needed by {needed_by!r})" if needed_by else repr(name)
        names = ", ".join(repr(n) for n in available) or "none"
        super().__init__(
            f"no function named {wanted} in the dispatcher or its sub-dispatchers (available: {names}); "
            f"add one with @dispatcher.add or pass {name}=... when calling"
        )


class ResourceError(PipedreamException):
    """A function cannot be run the way it was asked to be."""


class IncompleteCall(PipedreamException):
    """Kept from Pipedream, which exported it without raising it."""


__all__ = [
    "CircularDependency",
    "CircularDispatcherDependency",
    "DuplicateFunction",
    "IncompleteCall",
    "PipedreamException",
    "ResourceError",
    "UnresolvableDependency",
]
