"""How to build one dependency: call, await, or step a generator, and how to tear it down."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from bfctl.runtime.parameters import describe
from buildflow.dependencies.scopes import DEFAULT_SCOPE, Scope, is_blocking, scope_of
from buildflow.pipedream.plan import is_async

log = logging.getLogger("buildflow.runtime")

#: A teardown step: (is_async, callable). Sync ones run off the event loop.
Teardown = tuple[bool, Callable[[], Any]]


@dataclasses.dataclass(eq=False)
class Factory:
    """Builds one dependency (``target``): how ``mode`` says to call it, with the arguments the graph gives."""

    target: Any
    name: str
    scope: Scope
    mode: str  # "call" | "await" | "async_init" | "gen" | "agen" | "value"
    #: A sync one built in a trip to the thread pool of its own (``executor``, else the worker's),
    #: at the same time as the request's other work, rather than in the request's shared trip.
    blocking: bool = False
    executor: Executor | None = None

    @property
    def is_async(self) -> bool:
        return self.mode in ("await", "async_init", "agen")

    @property
    def takes_arguments(self) -> bool:
        return self.mode != "value"

    def create_sync(self, kwargs: dict[str, Any], teardowns: list[Teardown]) -> Any:
        if self.mode == "value":
            return self.target
        value = self.target(**kwargs)
        if self.mode == "gen":
            gen = value
            value = next(gen)
            teardowns.append((False, lambda: _finish(gen, self.name)))
        else:
            _register_teardown_method(value, teardowns)
        return value

    async def create_async(self, kwargs: dict[str, Any], teardowns: list[Teardown]) -> Any:
        if self.mode == "await":
            value = await self.target(**kwargs)
        elif self.mode == "async_init":
            value = self.target.__new__(self.target)
            await value.__init__(**kwargs)
        else:  # agen
            agen = self.target(**kwargs)
            value = await agen.__anext__()
            teardowns.append((True, lambda: _afinish(agen, self.name)))
            return value
        _register_teardown_method(value, teardowns)
        return value


def _register_teardown_method(value: Any, teardowns: list[Teardown]) -> None:
    method = getattr(value, "teardown", None)
    if method is not None and callable(method) and not isinstance(value, type):
        teardowns.append((is_async(method), method))


def _finish(gen: Any, name: str) -> None:
    try:
        next(gen)
    except StopIteration:
        return
    log.error("dependency %s yielded more than once; only one yield is allowed", name)


async def _afinish(agen: Any, name: str) -> None:
    try:
        await agen.__anext__()
    except StopAsyncIteration:
        return
    log.error("dependency %s yielded more than once; only one yield is allowed", name)


def factory_for(target: Any, override: Any = dataclasses.MISSING) -> Factory:
    """The factory of a dependency, or of the override replacing it."""
    source = target if override is dataclasses.MISSING else override
    name = describe(target)
    if override is not dataclasses.MISSING and not (inspect.isclass(source) or inspect.isfunction(source)):
        return Factory(source, name, scope_of(target) or DEFAULT_SCOPE, "value")
    scope = scope_of(source) or scope_of(target) or DEFAULT_SCOPE
    if inspect.isclass(source):
        init = source.__init__
        mode = "async_init" if is_async(init) else "call"
    elif inspect.isasyncgenfunction(source):
        mode = "agen"
    elif inspect.isgeneratorfunction(source):
        mode = "gen"
    elif is_async(source):  # also an object whose ``__call__`` is ``async def``
        mode = "await"
    else:
        mode = "call"
    return Factory(source, name, scope, mode, blocking=is_blocking(source) or is_blocking(target))


async def run_teardowns(teardowns: list[Teardown], run_sync: Callable[[Callable[[], None]], Awaitable[None]]) -> None:
    """Run teardowns newest first; errors are logged so every teardown gets its turn.

    Consecutive sync teardowns share one trip to the thread pool.
    """
    batch: list[Callable[[], Any]] = []
    for awaited, step in reversed(teardowns):
        if awaited:
            if batch:
                await run_sync(_sync_batch(batch))
                batch = []
            try:
                await step()
            except Exception:
                log.exception("teardown of a dependency failed")
        else:
            batch.append(step)
    if batch:
        await run_sync(_sync_batch(batch))
    teardowns.clear()


def run_sync_teardowns(steps: list[Callable[[], Any]]) -> None:
    for step in steps:
        try:
            step()
        except Exception:
            log.exception("teardown of a dependency failed")


def _sync_batch(steps: list[Callable[[], Any]]) -> Callable[[], None]:
    return lambda: run_sync_teardowns(steps)
