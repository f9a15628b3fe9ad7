"""Where collectors' rows go: one batcher per sink per worker, shared by every collector and
``SinkDependencyBuilder`` dependency that writes to the same sink."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from buildflow.dependencies.sink import SinkPushers
from buildflow.processors import row_type_of
from runtime.batching import Batcher, BatchOptions
from runtime.errors import StartupError
from runtime.sinks.base import Row

_SUCCESS = b'{"success":true}'


class SinkRegistry:
    """Sinks a worker writes to; started with the worker, flushed and stopped with it."""

    def __init__(self, outputs: Any, project_dir: Path) -> None:
        self._outputs = outputs
        self._project_dir = project_dir
        self._declared: dict[str, tuple[Any, Any, BatchOptions]] = {}
        self.batchers: dict[str, Batcher] = {}

    def declare(self, sink: Any, row_type: Any, options: BatchOptions) -> str:
        key = sink.primitive_id() if hasattr(sink, "primitive_id") else repr(sink)
        known = self._declared.get(key)
        if known is not None and known[1] is not None and row_type is not None and known[1] is not row_type:
            raise StartupError(f"sink {key} is written with two row types: {known[1]!r} and {row_type!r}")
        if known is None or known[1] is None:
            self._declared[key] = (sink, row_type, options)
        return key

    async def start(self) -> None:
        if not self._declared:
            return
        from runtime.sinks import schema_or_none, writer_for

        for key, (sink, row_type, options) in self._declared.items():
            schema = schema_or_none(row_type) if row_type is not None else None
            batcher = Batcher(writer_for(sink, schema, self._outputs, self._project_dir), options)
            await batcher.start()
            self.batchers[key] = batcher

    def pusher(self, key: str) -> Callable[[list[Any]], Awaitable[None]]:
        """``SinkDependencyBuilder``'s push: convert, then wait until the rows are durable."""
        if key not in self._declared:
            raise LookupError(f"no writer was declared for the sink {key!r}")
        from runtime.sinks import row_converter

        convert = row_converter(self._declared[key][1])

        async def push(items: list[Any]) -> None:
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


class CollectorOutput:
    """Turns a collector's result into rows, hands them to its sink, and answers."""

    def __init__(self, registry: SinkRegistry, sink: Any, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        default_size = getattr(sink, "batch_size", None)  # BigQueryTable.options(batch_size=...)
        if isinstance(default_size, int) and "batch_size" not in options:
            options = {**options, "batch_size": default_size}
        try:
            batch_options = BatchOptions(**options)
        except (TypeError, ValueError) as e:
            raise StartupError(f"collector `{getattr(fn, '__name__', fn)}`: {e}") from None
        self.row_type = row_type_of(fn, sink)
        self._registry = registry
        # No sink (BuildFlow's ``Empty``): the rows are discarded, the answer is the same.
        self._key = None if sink is None else registry.declare(sink, self.row_type, batch_options)
        self._convert: Callable[[Any], Row] | None = None

    def start(self) -> None:
        if self._key is None:
            return
        from runtime.sinks import row_converter

        self._convert = row_converter(self.row_type)

    async def deliver(self, result: Any) -> web.StreamResponse:
        """Answer once the rows are durable; a row that does not fit, or a sink that cannot take
        rows, raises, and the handler's error mapping answers 422 or 503."""
        if result is None or self._key is None:
            rows: list[Row] = []
        elif isinstance(result, (list, tuple)):
            rows = [self._convert(r) for r in result]  # type: ignore[misc]
        else:
            rows = [self._convert(result)]  # type: ignore[misc]
        if rows:
            await self._registry.batchers[self._key].submit(rows)
        return web.Response(body=_SUCCESS, content_type="application/json")


class RegistryPushers(SinkPushers):
    """The ``SinkPushers`` the runtime injects: each worker's own batchers, found at call time."""

    def __init__(self, registry: SinkRegistry) -> None:
        super().__init__()
        self._registry = registry

    def __getitem__(self, primitive_id: str) -> Callable[[list[Any]], Awaitable[None]]:
        return self._registry.pusher(primitive_id)
