"""The interface between collectors and the places their rows go.

A collector gathers rows from concurrent requests into one batch and hands it to a writer;
``write`` returns only when the rows are durable (committed, flushed and fsynced, or
acknowledged by the service), so a request is answered 2xx only after that.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from buildflow.types.input_syntax import InputSyntax
from buildflow.types.schema import Column, row_converter, schema_from_type

Row = dict[str, Any]


class RowsRejected(Exception):
    """Some rows do not fit the sink (its schema, its constraints). Nothing of the batch was
    written; ``indexes`` are the positions of the offending rows in it, when known."""

    def __init__(self, message: str, indexes: list[int] | None = None) -> None:
        super().__init__(message)
        self.indexes = indexes


class SinkSchemaError(RuntimeError):
    """The destination table cannot take rows of the declared type (raised on start)."""


class SinkWriter(abc.ABC):
    """One per sink per worker; used from the worker's event loop only."""

    #: What the sink is, for messages and metrics (e.g. "CloudSQLTable my-project:db.notes.events").
    description: str = ""
    #: Whose input rules a value not of its column's type follows: the engine behind the sink.
    input_syntax: InputSyntax = InputSyntax.JSON
    #: Writes it takes at once (each on a connection of its own): while one waits for its
    #: commit, the next batch is already on its way.
    concurrent_writes: int = 1

    async def start(self) -> None:
        """Connect, and create the destination (table, file, topic) if it is missing."""

    def converter_for(self, row_type: Any) -> Callable[[Any], Any]:
        """What each object a handler returns becomes before it is queued for ``write``: a
        checked ``Row`` dict here; table writers take their column values directly."""
        return row_converter(row_type, self.input_syntax)

    @abc.abstractmethod
    async def write(self, rows: list[Any]) -> None:
        """Write every row (as ``converter_for`` made it) durably, or none: raise
        ``RowsRejected`` for rows that do not fit, any other exception when the sink cannot be
        reached (the client gets a 503)."""

    async def stop(self) -> None:
        """Release connections and files (called after the last batch was written)."""


#: Makes the writer of one sink: (its primitive, the outputs the target applied for it, the
#: columns of its rows or None for rows as they come, the project directory). One per engine,
#: in the engine's writer module; ``bfctl.runtime.sinks.WRITERS`` names them.
WriterFactory = Callable[[Any, Mapping[str, Any], list[Column] | None, Path], SinkWriter]


def sink_name(primitive: Any) -> str:
    """``CloudSQLTable my-project:db.notes.events``: the sink as messages name it."""
    return f"{type(primitive).__name__} {primitive.primitive_id()}"


def describe(primitive: Any, out: Mapping[str, Any]) -> str:
    """The sink's name, and what stands in for it on this target when something does."""
    stand_in = f" ({out['stand_in']})" if out.get("stand_in") else ""
    return sink_name(primitive) + stand_in


def local_path(value: str, project_dir: Path) -> Path:
    """A path from the outputs or the primitive; a relative one is in the project directory."""
    path = Path(value)
    return path if path.is_absolute() else project_dir / path


def table_columns(primitive: Any, schema: list[Column] | None) -> list[Column]:
    """The columns of a table sink: the rows' own, else the schema declared on the table."""
    if schema is not None:
        return schema
    if getattr(primitive, "schema", None) is not None:
        return schema_from_type(primitive.schema)
    raise TypeError(
        f"{sink_name(primitive)} has no columns: return a dataclass or "
        "pydantic model from the collector (annotate its return type), or give the table .options(schema=RowType)"
    )
