"""DuckDB tables: ``DuckDBTable``, and on the local target ``AnalysisTable`` and the DuckDB
stand-in for ``BigQueryTable``. A batch is one appender flush: one statement, all or nothing,
committed (and its WAL synced) before ``write`` returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import orjson

from buildflow.storage import ddl
from buildflow.storage.duckdb_access import shared_database
from buildflow.types.input_syntax import InputSyntax
from buildflow.types.schema import Column, values_converter
from runtime.sinks.base import RowsRejected, SinkSchemaError, describe, local_path, table_columns
from runtime.sinks.bigquery import input_syntax_of
from runtime.sinks.threaded import ThreadedWriter


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# Errors about the rows, not the database: the batch is refused, the sink is fine.
_ROW_ERRORS = (duckdb.ConstraintException, duckdb.ConversionException, duckdb.DataError)


class DuckDBWriter(ThreadedWriter):
    def __init__(
        self,
        database: Path,
        table: str,
        columns: list[Column],
        description: str,
        input_syntax: InputSyntax = InputSyntax.PYTHON,
    ) -> None:
        super().__init__()
        self.input_syntax = input_syntax
        self.database = shared_database(database)
        self.table = table
        self.columns = columns
        self.description = description
        self._names = [c.name for c in columns]

    def open(self) -> None:
        with self.database.connection() as connection:
            connection.execute(ddl.create_table("duckdb", self.table, self.columns))
            existing = {name for (name,) in connection.execute(ddl.existing_columns(self.table)).fetchall()}
            missing = ddl.missing_columns(self.columns, existing)
        if missing:
            names = ", ".join(c.name for c in missing)
            raise SinkSchemaError(f"{self.description}: the table has no column {names}; run `bfctl apply` to add it")

    def converter_for(self, row_type: Any) -> Callable[[Any], tuple[Any, ...]]:
        """Rows become the appender's values in column order (JSON columns as JSON text)."""
        return values_converter(self.columns, row_type, _json_text, self.input_syntax)

    def write_blocking(self, rows: list[tuple[Any, ...]]) -> None:
        with self.database.connection() as connection:
            try:
                with connection.appender(self.table, columns=self._names) as appender:
                    appender.append_rows(rows)
            except _ROW_ERRORS as e:
                # DuckDB does not say which row: the collector finds it by writing them one by one.
                raise RowsRejected(str(e)) from None


def duckdb_writer(
    primitive: Any, out: Mapping[str, Any], schema: list[Column] | None, project_dir: Path
) -> DuckDBWriter:
    """``Engine.DUCKDB``: the table in the database file the outputs name; a stand-in for a
    BigQuery table reads values as BigQuery does."""
    columns = table_columns(primitive, schema)
    path = local_path(out["database"], project_dir)
    return DuckDBWriter(path, out["table"], columns, describe(primitive, out), input_syntax_of(primitive))
