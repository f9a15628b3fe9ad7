"""Pipedream's ``Dispatcher``: functions named by what they return, run by asking for a name.

A function's requirements are the names of other functions (or of keyword arguments given at
call time); ``call`` runs what a name needs, dependencies first. ``acall`` does the same on
asyncio, where Pipedream used a gevent pool: each function starts as soon as its own inputs
are ready, ``async def`` ones awaited, sync ones sharing a trip to a thread pool (or, given an
``async_pool``, each in a trip of its own there, independent ones at once).
"""

from __future__ import annotations

import concurrent.futures
import functools
import inspect
import itertools
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar, overload

from buildflow.pipedream.exceptions import (
    CircularDependency,
    DuplicateFunction,
    ResourceError,
    UnresolvableDependency,
)
from buildflow.pipedream.plan import Plan, Step, build_plan, is_async
from buildflow.pipedream.run import run_async, run_in_order, run_in_pool

F = TypeVar("F", bound=Callable[..., Any])


class Decorator(Protocol):
    """What ``add()``/``add("name")`` return: adds the function it decorates and returns it unchanged."""

    def __call__(self, func: F, /) -> F: ...


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_changes = itertools.count(1)


class _Generation:
    """Bumped by every change to any dispatcher: compiled plans remember it and recompile once it moves
    (a sub-dispatcher does not know the dispatchers it belongs to, and changes are rare)."""

    value = 0

    @classmethod
    def bump(cls) -> None:
        cls.value = next(_changes)


class Resource(NamedTuple):
    """What ``find_resource`` returns: the function and the names it is called with, in order."""

    function: Callable[..., Any]
    requirements: Sequence[str]


def _requirements(func: Callable[..., Any], requires: Sequence[str] | None) -> Sequence[str]:
    """``requires``, else ``func.requires``, else the names of ``func``'s positional parameters.

    As in Pipedream an empty list counts as not given; it is used only when the parameters
    cannot be read (a builtin function, say), where Pipedream failed.
    """
    attached: Sequence[str] | None = getattr(func, "requires", None)
    if chosen := requires or attached:
        return chosen
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        explicit = requires if requires is not None else attached
        if explicit is not None:
            return explicit
        raise TypeError(f"cannot read the parameters of {func!r}; add it with requires=[...]") from exc
    return tuple(p.name for p in signature.parameters.values() if p.kind in _POSITIONAL)


class Dispatcher:
    """A registry of named functions and the sub-dispatchers it also looks names up in.

    ``async_pool``: Pipedream took a gevent pool in which every function ran as a greenlet. Here it
    is a ``concurrent.futures.Executor`` (or None): ``call`` then runs the functions of each layer of
    the graph concurrently in it, and ``acall`` runs each sync function there as soon as its inputs
    are ready, independent ones at once (None: ``call`` runs everything in the calling thread;
    ``acall`` runs the sync functions that no async one separates in one trip to the event loop's
    default executor). A flow runs the dispatcher's functions as ``acall`` does.
    """

    def __init__(self, async_pool: concurrent.futures.Executor | None = None) -> None:
        if async_pool is not None and not isinstance(async_pool, concurrent.futures.Executor):
            raise TypeError(
                f"async_pool must be a concurrent.futures.Executor or None, not {type(async_pool).__name__}: "
                "Pipedream's gevent pools have no counterpart here; for concurrent I/O write async def "
                "functions and `await dispatcher.acall(...)`"
            )
        self.async_pool = async_pool
        self._resources: dict[str, Resource] = {}
        self._sub_dispatchers: list[Dispatcher] = []
        self._error_handlers: list[Callable[[Exception], Any]] = []
        self._plans: dict[tuple[str, frozenset[str]], Plan] = {}

    # -- adding functions ------------------------------------------------------------------------

    @overload
    def add(self, func: F, *, name: str | None = None, requires: Sequence[str] | None = None) -> F: ...

    @overload
    def add(
        self, func: str | None = None, *, name: str | None = None, requires: Sequence[str] | None = None
    ) -> Decorator: ...

    def add(
        self,
        func: Callable[..., Any] | str | None = None,
        *,
        name: str | None = None,
        requires: Sequence[str] | None = None,
    ) -> Any:
        """Add ``func`` and return it unchanged: ``@add``, ``@add()``, ``@add("name")``, ``@add(requires=[...])``.

        Requirements come from ``requires``, else the function's own ``requires`` attribute, else
        the names of its positional parameters; the function is called with their values in order.
        """
        if func is None or isinstance(func, str):
            chosen = name if name is not None else func

            def decorator(f: F) -> F:
                self.add_resource(f, name=chosen, requires=requires)
                return f

            return decorator
        self.add_resource(func, name=name, requires=requires)
        return func

    def add_resource(
        self, func: Callable[..., Any], name: str | None = None, requires: Sequence[str] | None = None
    ) -> str:
        """Add ``func`` under ``name`` (default: its ``__name__``) and return that name."""
        requirements = _requirements(func, requires)
        if not isinstance(requirements, list | tuple) or not all(isinstance(r, str) for r in requirements):
            raise TypeError(f"requires must be a list or tuple of names, not {requirements!r}")
        name = name or getattr(func, "__name__", None)
        if not isinstance(name, str):
            raise TypeError(f"{func!r} has no __name__; add it with name=...")
        if name in self._resources:
            raise DuplicateFunction(
                f"this dispatcher already has a function named {name!r}; add the new one with name=... "
                "or put it in another dispatcher"
            )
        self._resources[name] = Resource(func, requirements)
        _Generation.bump()
        return name

    @overload
    def wrap(
        self, func: Callable[..., Any], *, name: str | None = None, requires: Sequence[str] | None = None
    ) -> Callable[..., Any]: ...

    @overload
    def wrap(
        self, func: str | None = None, *, name: str | None = None, requires: Sequence[str] | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def wrap(
        self,
        func: Callable[..., Any] | str | None = None,
        *,
        name: str | None = None,
        requires: Sequence[str] | None = None,
    ) -> Any:
        """Like ``add``, but returns a function that runs through the dispatcher: called with keyword
        arguments, it resolves the missing ones by name (an ``async def`` function gives an async one).
        """

        def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            registered = self.add_resource(f, name=chosen, requires=requires)
            if is_async(f):

                async def run_async_wrapper(**kwargs: Any) -> Any:
                    return await self.acall(registered, **kwargs)

                return functools.update_wrapper(run_async_wrapper, f)

            def run_wrapper(**kwargs: Any) -> Any:
                return self.call(registered, **kwargs)

            return functools.update_wrapper(run_wrapper, f)

        if func is None or isinstance(func, str):
            chosen = name if name is not None else func
            return decorate
        chosen = name
        return decorate(func)

    def add_sub_dispatcher(self, other: Dispatcher) -> None:
        """Look up names this dispatcher lacks in ``other`` (and, recursively, its own sub-dispatchers)."""
        self._sub_dispatchers.append(other)
        _Generation.bump()

    def error_handler(self, func: F) -> F:
        """Add a handler, called with an exception a function raised (handlers in the order added).

        The first handler returning something that is not an exception supplies the function's
        result; if every handler returns an exception, the original one propagates; a handler that
        raises propagates its own. Handlers are this dispatcher's, whichever dispatcher holds the function.
        """
        self._error_handlers.append(func)
        return func

    # -- finding and resolving -------------------------------------------------------------------

    def find_resource(self, name: str) -> Resource:
        """The function named ``name`` here or in a sub-dispatcher (each dispatcher searched once)."""
        return self._find(name, None)

    def _find(self, name: str, needed_by: str | None) -> Resource:
        available: list[str] = []
        found = self._search(name, set(), available)
        if found is None:
            raise UnresolvableDependency(name, list(dict.fromkeys(available)), needed_by)
        return found

    def _search(self, name: str, tried: set[int], available: list[str]) -> Resource | None:
        tried.add(id(self))
        found = self._resources.get(name)
        if found is not None:
            return found
        available.extend(self._resources)
        for sub in self._sub_dispatchers:
            if id(sub) not in tried and (found := sub._search(name, tried, available)) is not None:
                return found
        return None

    def resolve_dependency_graph(self, name: str, resolved: Mapping[str, Any] | None = None) -> OrderedDict[str, Any]:
        """What ``call(name)`` would run, as an ordered mapping of name to ``Resource``.

        Names in ``resolved`` come first with their values, in their order, and are not looked up;
        then every needed function, dependencies before dependents (depth first, requirements in
        order). An ``OrderedDict`` passed as ``resolved`` is filled in place, as Pipedream did.
        """
        graph = resolved if isinstance(resolved, OrderedDict) else OrderedDict(resolved or {})
        self._walk(name, graph)
        return graph

    def _walk(self, name: str, graph: OrderedDict[str, Any]) -> None:
        """Depth-first post-order from ``name`` into ``graph``, with an explicit stack (no recursion limit)."""
        if name in graph:
            return
        path = [name]
        stack = [(name, (resource := self._find(name, None)), iter(resource.requirements))]
        while stack:
            current, resource, pending = stack[-1]
            for dep in pending:
                if dep in graph:
                    continue
                if dep in path:
                    cycle = " -> ".join([*path[path.index(dep) :], dep])
                    raise CircularDependency(f"circular dependency: {cycle}; one of these must stop needing the next")
                found = self._find(dep, current)
                path.append(dep)
                stack.append((dep, found, iter(found.requirements)))
                break
            else:
                stack.pop()
                path.pop()
                graph[current] = resource

    def plan(self, name: str, given: frozenset[str] = frozenset()) -> Plan:
        """The compiled plan of ``name`` when keyword arguments named ``given`` are passed (see ``Plan``).

        Cached per ``(name, given)``: the same object is returned until a dispatcher changes.
        Raises ``UnresolvableDependency`` or ``CircularDependency`` as ``call`` would.
        """
        given = frozenset(given)
        cached = self._plans.get((name, given))
        if cached is not None and cached.generation == _Generation.value:
            return cached
        generation = _Generation.value
        graph: OrderedDict[str, Any] = OrderedDict.fromkeys(sorted(given))
        self._walk(name, graph)
        steps = [
            Step(n, r.function, tuple(r.requirements), is_async(r.function)) for n, r in graph.items() if n not in given
        ]
        compiled = build_plan(name, given, steps, generation, concurrent_sync=self.async_pool is not None)
        self._plans[(name, given)] = compiled
        return compiled

    # -- calling ---------------------------------------------------------------------------------

    def call(self, name: str, **kwargs: Any) -> Any:
        """Run ``name`` and what it needs, dependencies first; return its result.

        A keyword argument is used instead of the function of that name, which then does not run.
        ``async def`` functions cannot run here (``ResourceError``): use ``acall``.
        """
        compiled = self.plan(name, frozenset(kwargs))
        if (step := compiled.first_async) is not None:
            raise ResourceError(
                f"{step.name!r} is an async def function, which call() cannot run: "
                f"use `await dispatcher.acall({name!r}, ...)`"
            )
        if self.async_pool is None:
            run_in_order(compiled.order, kwargs, self._recover)
        else:
            run_in_pool(compiled, kwargs, self._recover, self.async_pool)
        return kwargs[name]

    async def acall(self, name: str, **kwargs: Any) -> Any:
        """``call`` on asyncio: each function starts once its own inputs are ready, so the call takes
        its critical path; sync functions as the class's ``async_pool`` says."""
        compiled = self.plan(name, frozenset(kwargs))
        await run_async(compiled, kwargs, self._recover, self.async_pool)
        return kwargs[name]

    def handle_errors(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``func(*args, **kwargs)`` with its exception passed through the error handlers (Pipedream's method)."""
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            return self._recover(exc)

    def _recover(self, exc: Exception) -> Any:
        """The error handlers' verdict on ``exc``: the first non-exception a handler returns, else ``exc`` raised."""
        for handler in self._error_handlers:
            result = handler(exc)
            if not isinstance(result, Exception):
                return result
        raise exc
