"""``Empty``: the sink that keeps nothing (BuildFlow's default when a collector has no sink)."""

from __future__ import annotations

from bfctl.runtime.sinks.base import Row, SinkWriter


class EmptyWriter(SinkWriter):
    description = "Empty (rows are discarded)"

    async def write(self, rows: list[Row]) -> None:
        return None
