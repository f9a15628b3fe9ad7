"""The interface between collectors and the places their rows go.

A collector gathers rows from concurrent requests into one batch and hands it to a writer;
``write`` returns only when the rows are durable (committed, flushed and fsynced, or
acknowledged by the service), so a request is answered 2xx only after that.
"""

from __future__ import annotations

import abc
from typing import Any

Row = dict[str, Any]


class RowsRejected(Exception):
    """Some rows do not fit the sink (its schema, its constraints). Nothing of the batch was
    written; ``indexes`` are the positions of the offending rows in it, when known."""

    def __init__(self, message: str, indexes: list[int] | None = None) -> None:
        super().__init__(message)
        self.indexes = indexes


class SinkWriter(abc.ABC):
    """One per sink per worker; used from the worker's event loop only."""

    #: What the sink is, for messages and metrics (e.g. "CloudSQLTable my-project:db.notes.events").
    description: str = ""

    async def start(self) -> None:
        """Connect, and create the destination (table, file, topic) if it is missing."""

    @abc.abstractmethod
    async def write(self, rows: list[Row]) -> None:
        """Write every row durably, or none: raise ``RowsRejected`` for rows that do not fit,
        any other exception when the sink cannot be reached (the client gets a 503)."""

    async def stop(self) -> None:
        """Release connections and files (called after the last batch was written)."""
