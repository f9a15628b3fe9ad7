"""``CloudSQLTable``: a batch is one ``COPY`` in one transaction (psycopg 3, asyncio).

Up to four batches are written at once, each on a connection of its own: while one waits for its
commit (a round trip and PostgreSQL's WAL flush), the next is already on its way, and
PostgreSQL flushes their commits together. Each connection is in autocommit mode, so the
``COPY`` statement is its own transaction: all or nothing, and committed before the server
reports it complete (PostgreSQL commits a statement's implicit transaction before its
CommandComplete), without the two extra round trips of BEGIN and COMMIT. Committed means
durable here: the server runs with ``fsync=on`` and ``synchronous_commit=on``. A row the table
refuses (a constraint, a value out of range) fails the whole COPY; PostgreSQL names its line,
which becomes the row's index in ``RowsRejected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bfctl.runtime.sinks.base import (
    RowsRejected,
    SinkSchemaError,
    SinkWriter,
    describe,
    local_path,
    table_columns,
)
from buildflow.io.gcp.cloud_sql_table import CloudSQLTable
from buildflow.storage import ddl
from buildflow.types.input_syntax import InputSyntax
from buildflow.types.schema import Column, values_converter

_COPY_LINE = re.compile(r"\bCOPY [^,]+, line (\d+)")
_COPY_COLUMN = re.compile(r"\bCOPY [^,]+, line \d+, column ([^:]+):")
# SQLSTATE classes about the data: 22 data exception, 23 integrity constraint violation.
_ROW_ERROR_CLASSES = ("22", "23")


def _row_index(error: psycopg.Error) -> int | None:
    context = error.diag.context or ""
    match = _COPY_LINE.search(context)
    return int(match.group(1)) - 1 if match else None


def _refusal(error: psycopg.Error) -> str:
    """PostgreSQL's message, with the column it names in the COPY's context: a value it could
    not read says only its type ('invalid input syntax for type bigint: "12.5"')."""
    message = error.diag.message_primary or str(error)
    column = _COPY_COLUMN.search(error.diag.context or "")
    return f"column {column.group(1)}: {message}" if column else message


class PostgresWriter(SinkWriter):
    input_syntax = InputSyntax.POSTGRES
    concurrent_writes = CloudSQLTable.writer_connections

    def __init__(
        self,
        *,
        host: str,
        port: int,
        database: str,
        user: str,
        password_file: Path,
        table: str,
        columns: list[Column],
        description: str,
    ) -> None:
        self._connect_args: dict[str, Any] = {"host": host, "port": int(port), "dbname": database, "user": user}
        self._password_file = password_file
        self.table = table
        self.columns = columns
        self.description = description
        names = ", ".join(ddl.quote(c.name) for c in columns)
        self._copy = f"COPY {ddl.quote(table)} ({names}) FROM STDIN"
        #: Connections no write is using (at most ``concurrent_writes``).
        self._idle: list[psycopg.AsyncConnection[Any]] = []

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        """An idle connection, else a new one."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        password = self._password_file.read_text().strip()
        return await psycopg.AsyncConnection.connect(
            **self._connect_args,
            password=password,
            connect_timeout=5,
            options="-c timezone=UTC",
            autocommit=True,
        )

    async def start(self) -> None:
        connection = await self._connect()
        async with connection.transaction():
            await connection.execute(ddl.create_table("postgres", self.table, self.columns))
            cursor = await connection.execute(ddl.existing_columns(self.table))
            existing = {name for (name,) in await cursor.fetchall()}
        self._idle.append(connection)
        missing = ddl.missing_columns(self.columns, existing)
        if missing:
            names = ", ".join(c.name for c in missing)
            raise SinkSchemaError(f"{self.description}: the table has no column {names}; run `bfctl apply` to add it")

    def converter_for(self, row_type: Any) -> Callable[[Any], tuple[Any, ...]]:
        """Rows become the COPY's values in column order (JSON columns wrapped for psycopg)."""
        return values_converter(self.columns, row_type, Jsonb, self.input_syntax)

    async def write(self, rows: list[tuple[Any, ...]]) -> None:
        connection = await self._connect()
        try:
            async with connection.cursor().copy(self._copy) as copy:
                # Rows formatted into the COPY's buffer directly; only a full buffer is awaited
                # (``write_row`` costs an await per row).
                formatter = copy.formatter
                for row in rows:
                    if data := formatter.write_row(row):
                        await copy.write(data)
        except psycopg.Error as e:
            if e.sqlstate and e.sqlstate[:2] in _ROW_ERROR_CLASSES:
                self._idle.append(connection)  # the COPY failed alone: the connection is fine
                index = _row_index(e)
                raise RowsRejected(_refusal(e), None if index is None else [index]) from None
            # Broken or in an unknown state, and the idle ones may be too (a restarted server):
            # the next write connects afresh.
            await self._close(connection, *self._take_idle())
            raise
        except asyncio.CancelledError:  # timed out mid-COPY: drop the connection without waiting
            connection.pgconn.finish()
            raise
        self._idle.append(connection)

    def _take_idle(self) -> list[psycopg.AsyncConnection[Any]]:
        idle, self._idle = self._idle, []
        return idle

    @staticmethod
    async def _close(*connections: psycopg.AsyncConnection[Any]) -> None:
        for connection in connections:
            with contextlib.suppress(psycopg.Error):
                await connection.close()

    async def stop(self) -> None:
        await self._close(*self._take_idle())


def postgres_writer(
    primitive: Any, out: Mapping[str, Any], schema: list[Column] | None, project_dir: Path
) -> PostgresWriter:
    """``Engine.POSTGRES``: the table, logging in as the sink user whose password file the outputs name."""
    return PostgresWriter(
        host=out["host"],
        port=int(out["port"]),
        database=out["database"],
        user=out["user"],
        password_file=local_path(out["password_file"], project_dir),
        table=out["table"],
        columns=table_columns(primitive, schema),
        description=describe(primitive, out),
    )
