"""The dependency graph of a flow, built and checked once when the app starts.

Each dependency becomes a node; PROCESS, REPLICA and GLOBAL nodes are shared by everything
that needs them (one instance per request, worker or app), NO_SCOPE nodes are made anew for
every place that injects them and take the scope of that place.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Mapping

from buildflow.dependencies.scopes import Scope
from buildflow.exceptions import DependencyCycleError, InvalidDependencyHierarchyOrder
from runtime.errors import StartupError
from runtime.factories import Provider, provider_for
from runtime.injection import Source, dependency_target, describe, request_source, signature_of

#: A node's argument: a dependency node, or a per-request object.
Arg = tuple[str, "Node | Source"]


@dataclasses.dataclass(eq=False)
class Node:
    provider: Provider
    scope: Scope  # effective scope: PROCESS, REPLICA or GLOBAL
    args: list[Arg] = dataclasses.field(default_factory=list)
    value: Any = None  # the built instance, for REPLICA and GLOBAL nodes

    @property
    def name(self) -> str:
        return self.provider.name


class Graph:
    def __init__(self, overrides: Mapping[Any, Any] | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._shared: dict[Any, Node] = {}
        self._providers: dict[Any, Provider] = {}

    def _provider(self, target: Any) -> Provider:
        if target not in self._providers:
            override = dataclasses.MISSING
            for key in (target, describe(target), getattr(target, "__name__", None)):
                if key is not None and key in self._overrides:
                    override = self._overrides[key]
                    break
            self._providers[target] = provider_for(target, override)
        return self._providers[target]

    def require(self, target: Any, consumer: str, consumer_scope: Scope, chain: tuple[Provider, ...] = ()) -> Node:
        """The node for ``target`` as injected into ``consumer`` (with its sub-dependencies)."""
        provider = self._provider(target)
        if provider in chain:
            cycle = " -> ".join(p.name for p in (*chain[chain.index(provider):], provider))
            raise DependencyCycleError(f"Dependency cycle: {cycle}")
        if provider.scope is Scope.NO_SCOPE:
            return self._build(provider, consumer_scope, chain)
        if provider.scope.value < consumer_scope.value:
            raise InvalidDependencyHierarchyOrder(provider.name, provider.scope.name, consumer_scope.name, consumer)
        node = self._shared.get(target)
        if node is None:
            node = self._build(provider, provider.scope, chain)
            self._shared[target] = node
        return node

    def _build(self, provider: Provider, scope: Scope, chain: tuple[Provider, ...]) -> Node:
        node = Node(provider, scope)
        if not provider.takes_arguments:
            return node
        chain = (*chain, provider)
        for param, annotation in signature_of(provider.target, f"dependency `{provider.name}`"):
            node.args.extend(self.argument(param, annotation, provider.name, scope, chain))
        return node

    def argument(
        self, param: inspect.Parameter, annotation: Any, owner: str, scope: Scope, chain: tuple[Provider, ...]
    ) -> list[Arg]:
        """How one parameter of a dependency is filled (empty: leave it to its default)."""
        source = request_source(annotation)
        if source is not None:
            if scope is not Scope.PROCESS:
                raise InvalidDependencyHierarchyOrder(
                    f"{owner}.{param.name}", "PROCESS (the current request)", scope.name, owner
                )
            return [(param.name, source)]
        target = dependency_target(annotation)
        if target is not None:
            return [(param.name, self.require(target, owner, scope, chain))]
        if param.default is not inspect.Parameter.empty:
            return []
        shown = "no annotation" if annotation is inspect.Parameter.empty else f"annotation {annotation!r}"
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
