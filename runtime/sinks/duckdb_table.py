"""DuckDB tables: ``DuckDBTable``, and on the local target ``AnalysisTable`` and the DuckDB
stand-in for ``BigQueryTable``. A batch is one appender flush: one statement, all or nothing,
committed (and its WAL synced) before ``write`` returns. Nested records and lists are STRUCT
and LIST columns (``buildflow.storage.duckdb_types``); between batches the file is free for
readers (``buildflow.storage.duckdb_access``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import duckdb

from bfctl.runtime.sinks.base import RowsRejected, SinkSchemaError, describe, local_path, table_columns
from bfctl.runtime.sinks.bigquery import input_syntax_of
from bfctl.runtime.sinks.formats import json_text
from bfctl.runtime.sinks.threaded import ThreadedWriter
from buildflow.storage import ddl
from buildflow.storage.duckdb_access import share_with_user_code, shared_database
from buildflow.storage.duckdb_types import mismatched_columns, nested_type
from buildflow.types.bigquery_fields import bigquery_columns
from buildflow.types.input_syntax import InputSyntax
from buildflow.types.schema import Column, Kind, RowConversionError, values_converter


def _keep(value: Any) -> Any:
    return value


# Errors about the rows, not the database: the batch is refused, the sink is fine.
_ROW_ERRORS = (duckdb.ConstraintException, duckdb.ConversionException, duckdb.DataError)


class DuckDBWriter(ThreadedWriter):
    def __init__(
        self,
        database: Path,
        table: str,
        columns: list[Column],
        description: str,
        input_syntax: InputSyntax = InputSyntax.JSON,
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
            mismatched = mismatched_columns(connection, self.table, self.columns)
        if missing or mismatched:
            self.database.release()  # serving stops: the file is free for whoever fixes the table
        if missing:
            names = ", ".join(c.name for c in missing)
            raise SinkSchemaError(f"{self.description}: the table has no column {names}; run `bfctl apply` to add it")
        if mismatched:
            raise SinkSchemaError(f"{self.description}: " + "; ".join(mismatched))
        share_with_user_code(self.database.path)

    def converter_for(self, row_type: Any) -> Callable[[Any], tuple[Any, ...]]:
        """Rows become the appender's values in column order: nested records and lists as
        dicts and lists (adapted where the appender needs it), other JSON columns as JSON text."""
        nested = {i: nested_type(c) for i, c in enumerate(self.columns) if c.kind is Kind.JSON}
        if not any(nested.values()):
            return values_converter(self.columns, row_type, json_text, self.input_syntax)
        values = values_converter(self.columns, row_type, _keep, self.input_syntax)
        steps: list[tuple[int, str, Callable[[Any], Any]]] = []
        for i, found in nested.items():
            finish = json_text if found is None else found.adapt
            if finish is not None:
                steps.append((i, self.columns[i].name, finish))
        if not steps:
            return values

        def convert(obj: Any) -> tuple[Any, ...]:
            row = list(values(obj))
            for i, name, finish in steps:
                if row[i] is not None:
                    try:
                        row[i] = finish(row[i])
                    except ValueError as e:
                        raise RowConversionError(name, str(e)) from None
            return tuple(row)

        return convert

    def write_blocking(self, rows: list[tuple[Any, ...]]) -> None:
        with self.database.connection() as connection:
            try:
                with connection.appender(self.table, columns=self._names) as appender:
                    appender.append_rows(rows)
            except _ROW_ERRORS as e:
                # DuckDB does not say which row: the collector finds it by writing them one by one.
                raise RowsRejected(str(e)) from None

    def close(self) -> None:
        self.database.release()


def duckdb_writer(
    primitive: Any, out: Mapping[str, Any], schema: list[Column] | None, project_dir: Path
) -> DuckDBWriter:
    """``Engine.DUCKDB``: the table in the database file the outputs name; a stand-in for a
    BigQuery table reads values as BigQuery does."""
    columns = table_columns(primitive, schema)
    syntax = input_syntax_of(primitive)
    if syntax is InputSyntax.BIGQUERY:  # nested columns as BigQuery nests them
        columns = bigquery_columns(columns)
    path = local_path(out["database"], project_dir)
    return DuckDBWriter(path, out["table"], columns, describe(primitive, out), syntax)
