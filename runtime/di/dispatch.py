"""Pipedream dispatcher results as nodes of a handler's dependency graph.

Each dispatcher function a handler needs becomes a PROCESS node of the flow's graph, so the
handler's compiled per-request plan runs it with the handler's other dependencies (each once
its own inputs are ready; sync ones in the request's shared trip to the thread pool, or, when
the dispatcher has an ``async_pool``, each in a trip of its own there, as ``acall`` does): no
second scheduler, no reflection per request. The request's path and query values of a name are the
call-time keyword arguments of that name; the dispatcher's function of that name then never runs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from bfctl.runtime.di.factories import Factory
from bfctl.runtime.di.graph import Arg, Graph, Node, RequestValue
from bfctl.runtime.errors import StartupError
from bfctl.runtime.parameters import Kind, Parameter, parameters
from buildflow.dependencies.scopes import Scope
from buildflow.pipedream import Dispatcher, UnresolvableDependency
from buildflow.pipedream.plan import is_async


class DispatcherResults:
    """The dispatcher results one handler asks for, as graph nodes (start-up only).

    ``given`` are the names the request provides (the handler's path and query parameters).
    """

    def __init__(self, dispatcher: Dispatcher, graph: Graph, owner: str) -> None:
        self._dispatcher = dispatcher
        self._graph = graph
        self._owner = owner
        self._nodes: dict[str, Node] = {}
        self.given: Collection[str] = ()

    def provides(self, name: str) -> bool:
        try:
            self._dispatcher.find_resource(name)
        except UnresolvableDependency:
            return False
        return True

    def node(self, name: str, chain: tuple[str, ...] = ()) -> Node:
        """The node computing ``name`` (one per handler, shared by everything in it that needs it)."""
        if name in self._nodes:
            return self._nodes[name]
        if name in chain:
            cycle = " -> ".join((*chain[chain.index(name) :], name))
            raise StartupError(f"{self._owner}: the dispatcher's functions depend on each other in a cycle: {cycle}")
        resource = self._dispatcher.find_resource(name)
        function = resource.function
        requirements = tuple(resource.requirements)
        owner = f"dispatcher function `{name}`"
        factory = Factory(
            _caller(function, requirements, self._dispatcher),
            owner,
            Scope.PROCESS,
            "await" if is_async(function) else "call",
            blocking=self._dispatcher.async_pool is not None,
            executor=self._dispatcher.async_pool,
        )
        node = Node(factory, Scope.PROCESS)
        positional = [p for p in parameters(function, f"{self._owner}: {owner}") if p.positional]
        for index, requirement in enumerate(requirements):
            param = positional[index] if index < len(positional) else None
            node.args.append(self._argument(requirement, param, (*chain, name)))
        self._nodes[name] = node
        return node

    def _argument(self, requirement: str, param: Parameter | None, chain: tuple[str, ...]) -> Arg:
        """A requirement: the request or a typed dependency by its parameter's kind (as a handler's),
        else by name the request's value or another result."""
        owner = f"dispatcher function `{chain[-1]}`"
        if param is not None and param.kind is Kind.REQUEST:
            assert param.source is not None
            return (requirement, param.source)
        if param is not None and param.kind is Kind.DEPENDENCY:
            return (requirement, self._graph.require(param.target, owner, Scope.PROCESS))
        if requirement in self.given:
            return (requirement, RequestValue(requirement))
        try:
            self._dispatcher.find_resource(requirement)
        except UnresolvableDependency as e:
            available = ", ".join(f"`{n}`" for n in sorted(set(e.available))) or "none"
            raise StartupError(
                f"{self._owner}: {owner} needs `{requirement}`, which nothing provides: it is not a path or "
                f"query parameter of the handler, a typed dependency (annotate the parameter with it), nor a "
                f"function of the dispatcher (it has {available})"
            ) from None
        return (requirement, self.node(requirement, chain))


def _caller(function: Callable[..., Any], requirements: tuple[str, ...], dispatcher: Dispatcher) -> Callable[..., Any]:
    """Call ``function`` with its requirements in order; what it raises goes through the error handlers
    of the dispatcher the flow uses (as ``call`` does: the handlers of the dispatcher called, whichever
    sub-dispatcher holds the function)."""
    if is_async(function):

        async def call_async(**kwargs: Any) -> Any:
            try:
                return await function(*[kwargs[r] for r in requirements])
            except Exception as e:
                return dispatcher.handle_errors(_reraise, e)  # the handlers' verdict: a result, or raised

        return call_async

    def call(**kwargs: Any) -> Any:
        return dispatcher.handle_errors(function, *[kwargs[r] for r in requirements])

    return call


def _reraise(error: Exception) -> Any:
    raise error
