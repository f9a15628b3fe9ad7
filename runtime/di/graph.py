"""The dependency graph of a flow, built and checked once when the app starts.

Each dependency becomes a node; PROCESS, REPLICA and GLOBAL nodes are shared by everything
that needs them (one instance per request, worker or app), NO_SCOPE nodes are made anew for
every place that injects them and take the scope of that place.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

from bfctl.runtime.di.factories import Factory, factory_for
from bfctl.runtime.errors import StartupError
from bfctl.runtime.parameters import Kind, Parameter, Source, describe, parameters
from buildflow.dependencies.scopes import Scope
from buildflow.exceptions import DependencyCycleError, InvalidDependencyHierarchyOrder


@dataclasses.dataclass(frozen=True)
class RequestValue:
    """A path or query value of the request, by name: a dispatcher function's call-time argument."""

    name: str


#: A node's argument: a dependency node, a per-request object, or a value the client sent.
Arg = tuple[str, "Node | Source | RequestValue"]


@dataclasses.dataclass(eq=False)
class Node:
    factory: Factory
    scope: Scope  # effective scope: PROCESS, REPLICA or GLOBAL
    args: list[Arg] = dataclasses.field(default_factory=list)
    value: Any = None  # the built instance, for REPLICA and GLOBAL nodes

    @property
    def name(self) -> str:
        return self.factory.name


class Graph:
    def __init__(self, overrides: Mapping[Any, Any] | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._shared: dict[Any, Node] = {}
        self._factories: dict[Any, Factory] = {}

    def _factory(self, target: Any) -> Factory:
        if target not in self._factories:
            override = dataclasses.MISSING
            for key in (target, describe(target), getattr(target, "__name__", None)):
                if key is not None and key in self._overrides:
                    override = self._overrides[key]
                    break
            self._factories[target] = factory_for(target, override)
        return self._factories[target]

    def require(self, target: Any, consumer: str, consumer_scope: Scope, chain: tuple[Factory, ...] = ()) -> Node:
        """The node for ``target`` as injected into ``consumer`` (with its sub-dependencies)."""
        factory = self._factory(target)
        if factory in chain:
            cycle = " -> ".join(f.name for f in (*chain[chain.index(factory) :], factory))
            raise DependencyCycleError(f"Dependency cycle: {cycle}")
        if factory.scope is Scope.NO_SCOPE:
            return self._build(factory, consumer_scope, chain)
        if factory.scope.value < consumer_scope.value:
            raise InvalidDependencyHierarchyOrder(factory.name, factory.scope.name, consumer_scope.name, consumer)
        node = self._shared.get(target)
        if node is None:
            node = self._build(factory, factory.scope, chain)
            self._shared[target] = node
        return node

    def _build(self, factory: Factory, scope: Scope, chain: tuple[Factory, ...]) -> Node:
        node = Node(factory, scope)
        if not factory.takes_arguments:
            return node
        chain = (*chain, factory)
        for param in parameters(factory.target, f"dependency `{factory.name}`"):
            node.args.extend(self.argument(param, factory.name, scope, chain))
        return node

    def argument(self, param: Parameter, owner: str, scope: Scope, chain: tuple[Factory, ...]) -> list[Arg]:
        """How one parameter of a dependency is filled: the request or a dependency; any other
        kind is left to its default (empty)."""
        if param.kind is Kind.REQUEST:
            assert param.source is not None
            if scope is not Scope.PROCESS:
                raise InvalidDependencyHierarchyOrder(
                    f"{owner}.{param.name}", "PROCESS (the current request)", scope.name, owner
                )
            return [(param.name, param.source)]
        if param.kind is Kind.DEPENDENCY:
            return [(param.name, self.require(param.target, owner, scope, chain))]
        if param.default is not inspect.Parameter.empty:
            return []
        shown = "no annotation" if param.annotation is inspect.Parameter.empty else f"annotation {param.annotation!r}"
        raise StartupError(
            f"{' -> '.join(p.name for p in chain) or owner}: parameter `{param.name}` ({shown}) cannot be injected; "
            "annotate it with a dependency class or function, or give it a default"
        )


def walk(nodes: list[Node]) -> list[Node]:
    """Every node reachable from ``nodes``, each after the nodes it needs."""
    seen: set[int] = set()
    order: list[Node] = []

    def visit(node: Node) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        for _, arg in node.args:
            if isinstance(arg, Node):
                visit(arg)
        order.append(node)

    for node in nodes:
        visit(node)
    return order
