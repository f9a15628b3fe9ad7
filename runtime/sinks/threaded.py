"""Writers for sinks that only have a blocking API (files, DuckDB).

Their calls run one at a time on the writer's own thread, never on the event loop and never
concurrently, so a file or connection is used by one thread at a time.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bfctl.runtime.sinks.base import SinkWriter

T = TypeVar("T")


class ThreadedWriter(SinkWriter):
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bf-sink")

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        await self._call(self.open)

    async def write(self, rows: list[Any]) -> None:
        await self._call(self.write_blocking, rows)

    async def stop(self) -> None:
        try:
            await self._call(self.close)
        finally:
            self._executor.shutdown(wait=False)

    def open(self) -> None:
        """Prepare the destination (runs on the writer's thread)."""

    @abc.abstractmethod
    def write_blocking(self, rows: list[Any]) -> None:
        """``write`` on the writer's thread (rows as ``converter_for`` made them)."""

    def close(self) -> None:
        """Release what ``open`` took (runs on the writer's thread)."""
