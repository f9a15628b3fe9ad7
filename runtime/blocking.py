"""The blocking forms of a worker's async handles (``query.sync``), for sync
handlers, which run in the thread pool while the worker's loop does the I/O."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def wait_on_loop(loop: asyncio.AbstractEventLoop, call: Coroutine[Any, Any, T], instead: str) -> T:
    """Run ``call`` on the worker's ``loop`` from a handler's thread and wait for it; from the
    loop itself that would block it forever, so it is refused, saying to use ``instead``."""
    with contextlib.suppress(RuntimeError):  # RuntimeError: no loop runs in this thread
        if asyncio.get_running_loop() is loop:
            call.close()
            raise TypeError(f"this blocks the event loop: in an async handler, `{instead}`")
    return asyncio.run_coroutine_threadsafe(call, loop).result()
