"""A collector's answer: its result becomes rows for its sink, and the request is answered
once they are durable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bfctl.runtime.batching import Batcher, BatchOptions
from bfctl.runtime.errors import StartupError
from bfctl.runtime.sinks.registry import SinkRegistry
from bfctl.runtime.tracing.sinks import sink_write_span
from buildflow.processors import row_type_of

_SUCCESS = b'{"success":true}'


class CollectorOutput:
    """Turns a collector's result into rows, hands them to its sink, and answers."""

    def __init__(
        self,
        registry: SinkRegistry,
        sink: Any,
        fn: Callable[..., Any],
        options: dict[str, Any],
        role: str = "collector",
    ) -> None:
        default_size = getattr(sink, "batch_size", None)  # BigQueryTable.options(batch_size=...)
        if isinstance(default_size, int) and "batch_size" not in options:
            options = {**options, "batch_size": default_size}
        try:
            batch_options = BatchOptions(**options)
        except (TypeError, ValueError) as e:
            raise StartupError(f"{role} `{getattr(fn, '__name__', fn)}`: {e}") from None
        self.row_type = row_type_of(fn, sink)
        self._registry = registry
        # No sink (BuildFlow's ``Empty``): the rows are discarded, the answer is the same.
        self._key = None if sink is None else registry.declare(sink, self.row_type, batch_options)
        self._convert: Callable[[Any], Any] = _not_started
        #: The batcher's submit in a span, when the worker traces.
        self._submit: Callable[[list[Any]], Awaitable[Any]] | None = None

    def start(self, traced: bool = False) -> None:
        if self._key is None:
            return
        self._convert = self._registry.converters[self._key]  # compiled for this sink's writer
        if traced:
            self._submit = sink_write_span(self._registry.batchers[self._key])

    @property
    def batcher(self) -> Batcher | None:
        """The sink's batcher in this worker (None: the rows are discarded)."""
        return None if self._key is None else self._registry.batchers[self._key]

    def rows(self, result: Any) -> list[Any]:
        """What a handler returned as rows for the sink's writer: None is none, a list or tuple
        is flattened; raises ``RowConversionError`` for a row that does not fit."""
        if result is None or self._key is None:
            return []
        convert = self._convert
        return [convert(r) for r in result] if isinstance(result, (list, tuple)) else [convert(result)]

    async def deliver(self, result: Any) -> web.StreamResponse:
        """Answer once the rows are durable; a row that does not fit, or a sink that cannot take
        rows, raises, and the handler's error mapping answers 422 or 503."""
        rows = self.rows(result)
        if rows and self._key is not None:
            await (self._submit or self._registry.batchers[self._key].submit)(rows)
        return web.Response(body=_SUCCESS, content_type="application/json")


def _not_started(result: Any) -> Any:
    raise RuntimeError("CollectorOutput.start() was not called")
