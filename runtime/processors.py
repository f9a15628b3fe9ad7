"""A processor's target (a function, an object with ``__call__``, or a class with ``process``)
made ready for a worker: endpoints, collectors and consumers build theirs the same way."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from bfctl.runtime.errors import StartupError
from buildflow.pipedream.plan import is_async


def process_fn(target: Any, owner: str, kind: str) -> tuple[bool, Callable[..., Any]]:
    """Whether ``target`` is a class-based processor, and the function that handles its input
    (the class's ``process``)."""
    is_class = inspect.isclass(target)
    if is_class and not callable(getattr(target, "process", None)):
        raise StartupError(f"{owner}: a class-based {kind} needs a `process` method")
    return is_class, target.process if is_class else target


async def built(target: type, loop: asyncio.AbstractEventLoop, pool: Executor) -> Any:
    """A class-based processor's instance for this worker, its ``setup()`` run."""
    instance = target()
    await call_hook(getattr(instance, "setup", None), loop, pool)
    return instance


async def call_hook(fn: Callable[[], Any] | None, loop: asyncio.AbstractEventLoop, pool: Executor) -> Any:
    """A class processor's `setup()` or `teardown()`, if it has one: awaited, or run in the thread pool."""
    if fn is None:
        return None
    if is_async(fn):
        return await fn()
    return await loop.run_in_executor(pool, fn)
