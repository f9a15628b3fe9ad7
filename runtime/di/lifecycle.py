"""Building and tearing down the long-lived dependencies: GLOBAL once, REPLICA per worker."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Any

from bfctl.runtime.di.factories import Teardown, run_teardowns
from bfctl.runtime.di.graph import Node, walk
from bfctl.runtime.errors import DependencyStartupError
from buildflow.dependencies.scopes import Scope


class Lifecycle:
    def __init__(self, roots: list[Node]) -> None:
        ordered = walk(roots)
        self._by_scope = {scope: [n for n in ordered if n.scope is scope] for scope in (Scope.GLOBAL, Scope.REPLICA)}
        self._teardowns: dict[Scope, list[Teardown]] = {Scope.GLOBAL: [], Scope.REPLICA: []}
        self.global_built = False

    async def start(self, scope: Scope, loop: asyncio.AbstractEventLoop, pool: Executor | None) -> None:
        """Build every node of ``scope``; independent async ones concurrently.

        A dependency that raises is reported as :class:`DependencyStartupError`.
        """
        built: set[int] = set()
        pending = list(self._by_scope[scope])
        teardowns = self._teardowns[scope]
        while pending:
            ready = [
                n
                for n in pending
                if all(not isinstance(a, Node) or a.scope is not scope or id(a) in built for _, a in n.args)
            ]
            results = await asyncio.gather(
                *(self._build(n, loop, pool, teardowns) for n in ready), return_exceptions=True
            )
            for node, result in zip(ready, results, strict=True):
                if isinstance(result, Exception):
                    # Named here, where it is known which dependency failed; the cause keeps the user's frames.
                    raise DependencyStartupError(node.name, scope.name, result) from result
                if isinstance(result, BaseException):
                    raise result
                node.value = result
                built.add(id(node))
            pending = [n for n in pending if id(n) not in built]
        if scope is Scope.GLOBAL:
            self.global_built = True

    async def _build(
        self, node: Node, loop: asyncio.AbstractEventLoop, pool: Executor | None, teardowns: list[Teardown]
    ) -> Any:
        kwargs = {name: arg.value for name, arg in node.args if isinstance(arg, Node)}
        if node.factory.is_async:
            return await node.factory.create_async(kwargs, teardowns)
        return await loop.run_in_executor(pool, node.factory.create_sync, kwargs, teardowns)

    async def stop(self, scope: Scope, loop: asyncio.AbstractEventLoop, pool: Executor | None) -> None:
        await run_teardowns(self._teardowns[scope], lambda fn: loop.run_in_executor(pool, fn))
        if scope is Scope.GLOBAL:
            self.global_built = False
