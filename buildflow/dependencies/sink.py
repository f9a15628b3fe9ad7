"""``SinkDependencyBuilder``: let an endpoint write rows to a sink itself (BuildFlow's).

```python
events = SinkDependencyBuilder(AnalysisTable("events").options(schema=Event))

@service.endpoint("/track", method="POST")
async def track(event: Event, sink: events) -> str:
    await sink.push(event)        # returns once the row is durable in the sink
    return "ok"
```

Rows go through the same per-worker writer and group commit as collectors writing to that
sink, with the same guarantee: ``push`` returns only when the rows are durable, and raises
when they are not (the endpoint then answers an error, never a false success).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from buildflow.dependencies.scopes import Scope, dependency

#: Hands rows (records, models or dicts) to a sink's writer; returns once they are durable.
Push = Callable[[list[Any]], Awaitable[None]]


@dependency(Scope.GLOBAL)
class SinkPushers(Mapping[str, Push]):
    """The runtime's push function for each sink a worker writes to, by primitive id.

    Empty by default, so a flow can be built and tested without the runtime's writers; the
    runtime replaces it with one whose functions reach the current worker's writers.
    """

    def __init__(self, pushers: Mapping[str, Push] | None = None) -> None:
        self._pushers = dict(pushers or {})

    def __getitem__(self, primitive_id: str) -> Push:
        try:
            return self._pushers[primitive_id]
        except KeyError:
            raise LookupError(
                f"no writer was started for the sink {primitive_id!r}: the runtime starts one for every "
                "sink a SinkDependencyBuilder dependency or a collector uses"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._pushers)

    def __len__(self) -> int:
        return len(self._pushers)


def SinkDependencyBuilder(primitive: Any) -> type:
    """A REPLICA dependency with ``await dep.push(row)`` and ``await dep.push_batch(rows)``.

    Rows are dataclasses, pydantic models or dicts; with a declared schema
    (``.options(schema=RowType)``) the runtime checks them against its columns before they
    are queued (a row that does not fit makes the request a 422 naming the field).
    """
    primitive_id = primitive.primitive_id()

    @dependency(Scope.REPLICA)
    class SinkDependency:
        #: The sink; the runtime finds these dependencies by it and starts its writer.
        sink_primitive = primitive

        def __init__(self, pushers: SinkPushers) -> None:
            self._pushers = pushers
            self.primitive = primitive

        async def push(self, data: Any) -> None:
            """Write one row; returns once it is durable."""
            await self._pushers[primitive_id]([data])

        async def push_batch(self, batch: Iterable[Any]) -> None:
            """Write several rows together (all durable, or an error); returns once durable."""
            rows = list(batch)
            if rows:
                await self._pushers[primitive_id](rows)

    SinkDependency.__qualname__ = SinkDependency.__name__ = f"SinkDependency[{primitive_id}]"
    return SinkDependency


__all__ = ["Push", "SinkDependencyBuilder", "SinkPushers"]
