"""DuckDB tables: ``DuckDBTable``, and on the local target ``AnalysisTable`` and the DuckDB
stand-in for ``BigQueryTable``. A batch is one appender flush: one statement, all or nothing,
committed (and its WAL synced) before ``write`` returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson

from runtime.sinks import ddl
from runtime.sinks.ddl import SinkSchemaError
from runtime.sinks.base import Row, RowsRejected
from runtime.sinks.duckdb_access import shared_database
from buildflow.types.schema import Column, Kind
from runtime.sinks.threaded import ThreadedWriter

# Errors about the rows, not the database: the batch is refused, the sink is fine.
_ROW_ERRORS = (duckdb.ConstraintException, duckdb.ConversionException, duckdb.DataError)


def existing_columns(connection: Any, table: str) -> set[str]:
    rows = connection.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ?",
        [table],
    ).fetchall()
    return {name for (name,) in rows}


class DuckDBWriter(ThreadedWriter):
    def __init__(self, database: Path, table: str, columns: list[Column], description: str) -> None:
        super().__init__()
        self.database = shared_database(database)
        self.table = table
        self.columns = columns
        self.description = description
        self._names = [c.name for c in columns]
        self._json = [i for i, c in enumerate(columns) if c.kind is Kind.JSON]

    def open(self) -> None:
        with self.database.connection() as connection:
            connection.execute(ddl.create_table("duckdb", self.table, self.columns))
            missing = ddl.missing_columns(self.columns, existing_columns(connection, self.table))
        if missing:
            names = ", ".join(c.name for c in missing)
            raise SinkSchemaError(
                f"{self.description}: the table has no column {names}; run `bfctl apply` to add it"
            )

    def _values(self, row: Row) -> list[Any]:
        values = [row.get(name) for name in self._names]
        for i in self._json:
            if values[i] is not None:
                values[i] = orjson.dumps(values[i]).decode()
        return values

    def write_blocking(self, rows: list[Row]) -> None:
        values = [self._values(row) for row in rows]
        with self.database.connection() as connection:
            try:
                with connection.appender(self.table, columns=self._names) as appender:
                    appender.append_rows(values)
            except _ROW_ERRORS as e:
                # DuckDB does not say which row: the collector finds it by writing them one by one.
                raise RowsRejected(str(e)) from None
