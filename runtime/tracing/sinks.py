"""The span of a sink write a request or message waits on: its rows, the sink and its writer,
and the group commit the rows joined (its number, rows and requests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bfctl.runtime.batching import Batcher, Commit
from bfctl.runtime.tracing.spans import child


def sink_write_span(batcher: Batcher) -> Callable[[list[Any]], Awaitable[Commit]]:
    """``batcher.submit`` in a ``sink write`` span."""
    writer = batcher.writer
    sink, engine = writer.description, type(writer).__name__

    async def submit(rows: list[Any], hold: bool = False) -> Commit:
        with child("sink write", {"bf.sink": sink, "bf.sink.writer": engine, "bf.rows": len(rows)}) as span:
            commit = await batcher.submit(rows, hold)
            if span is not None:
                number, batch_rows, requests = commit
                span.set("bf.commit", number)
                span.set("bf.commit.rows", batch_rows)
                span.set("bf.commit.requests", requests)
            return commit

    return submit
