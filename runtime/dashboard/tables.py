"""The latest rows of a sink's table on the local target, for the Data page: DuckDB tables read
through the writer's own database (a process may attach a DuckDB file once), PostgreSQL tables
on a connection of their own as the sink's user. Read only when a page asks."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bfctl.runtime.sinks.base import local_path
from buildflow.storage import ddl
from buildflow.storage.engines import Engine

if TYPE_CHECKING:
    from bfctl.runtime.sinks.base import SinkWriter

#: Rows shown per table.
LIMIT = 20

Rows = dict[str, list[Any]]


async def latest(writer: SinkWriter, outputs: Mapping[str, Any], project_dir: Path) -> Rows | None:
    """The table's last ``LIMIT`` rows, newest first; None when the sink is no local table."""
    engine = outputs.get("engine")
    if engine == Engine.DUCKDB:
        from bfctl.runtime.sinks.duckdb_table import DuckDBWriter

        assert isinstance(writer, DuckDBWriter)
        return await asyncio.to_thread(_duckdb, writer)
    if engine == Engine.POSTGRES and "password_file" in outputs:
        return await _postgres(outputs, project_dir)
    return None


def _duckdb(writer: Any) -> Rows:
    with writer.database.connection() as cursor:
        cursor.execute(f"SELECT * FROM {ddl.quote(writer.table)} ORDER BY rowid DESC LIMIT {LIMIT}")  # noqa: S608 - a quoted name
        return _rows([d[0] for d in cursor.description], cursor.fetchall())


async def _postgres(outputs: Mapping[str, Any], project_dir: Path) -> Rows:
    import psycopg

    password = local_path(outputs["password_file"], project_dir).read_text().strip()
    async with await psycopg.AsyncConnection.connect(
        host=outputs["host"],
        port=int(outputs["port"]),
        dbname=outputs["database"],
        user=outputs["user"],
        password=password,
        connect_timeout=5,
        autocommit=True,
    ) as connection:
        # the physical order: the latest rows of a table that is only appended to
        query = f"SELECT * FROM {ddl.quote(outputs['table'])} ORDER BY ctid DESC LIMIT {LIMIT}"  # noqa: S608
        cursor = await connection.execute(query)
        names = [c.name for c in cursor.description or ()]
        return _rows(names, await cursor.fetchall())


def _rows(columns: list[str], rows: list[Any]) -> Rows:
    return {"columns": columns, "rows": [[_shown(v) for v in row] for row in rows]}


def _shown(value: Any) -> Any:
    """A value as JSON shows it: dates, decimals, bytes and the rest as their text."""
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)
