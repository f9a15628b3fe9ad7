"""The sinks a worker writes to: one batcher per sink, shared by every collector and
``SinkDependencyBuilder`` dependency that writes to the same sink."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bfctl.runtime.batching import Batcher, BatchOptions
from bfctl.runtime.errors import StartupError
from bfctl.runtime.sinks import schema_or_none, writer_for
from buildflow.dependencies.sink import SinkPushers


class SinkRegistry:
    """Sinks a worker writes to; started with the worker, flushed and stopped with it."""

    def __init__(self, outputs: Any, project_dir: Path) -> None:
        self._outputs = outputs
        self._project_dir = project_dir
        self._declared: dict[str, tuple[Any, Any, BatchOptions]] = {}
        self.batchers: dict[str, Batcher] = {}
        #: Per sink, what each returned object becomes for its writer (compiled at start).
        self.converters: dict[str, Callable[[Any], Any]] = {}

    def declare(self, sink: Any, row_type: Any, options: BatchOptions) -> str:
        key = sink.primitive_id() if hasattr(sink, "primitive_id") else repr(sink)
        known = self._declared.get(key)
        if known is not None and known[1] is not None and row_type is not None and known[1] is not row_type:
            raise StartupError(f"sink {key} is written with two row types: {known[1]!r} and {row_type!r}")
        if known is None or known[1] is None:
            self._declared[key] = (sink, row_type, options)
        return key

    async def start(self) -> None:
        for key, (sink, row_type, options) in self._declared.items():
            schema = schema_or_none(row_type) if row_type is not None else None
            writer = writer_for(sink, schema, self._outputs, self._project_dir)
            batcher = Batcher(writer, options)
            await batcher.start()
            self.batchers[key] = batcher
            self.converters[key] = writer.converter_for(row_type)

    def pusher(self, key: str) -> Callable[[list[Any]], Awaitable[None]]:
        """``SinkDependencyBuilder``'s push: convert, then wait until the rows are durable."""
        if key not in self._declared:
            raise LookupError(f"no writer was declared for the sink {key!r}")

        async def push(items: list[Any]) -> None:
            convert = self.converters[key]
            await self.batchers[key].submit([convert(item) for item in items])

        return push

    def declare_dependencies(self, nodes: list[Any]) -> None:
        """Start writers for the sinks that ``SinkDependencyBuilder`` dependencies push to."""
        for node in nodes:
            sink = getattr(node.factory.target, "sink_primitive", None)
            if sink is not None:
                self.declare(sink, getattr(sink, "schema", None), BatchOptions())

    async def stop(self) -> None:
        for batcher in self.batchers.values():
            await batcher.stop()
        self.batchers.clear()


class RegistryPushers(SinkPushers):
    """The ``SinkPushers`` the runtime injects: each worker's own batchers, found at call time."""

    def __init__(self, registry: SinkRegistry) -> None:
        super().__init__()
        self._registry = registry

    def __getitem__(self, primitive_id: str) -> Callable[[list[Any]], Awaitable[None]]:
        return self._registry.pusher(primitive_id)
