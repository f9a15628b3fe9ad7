"""SQL for tables made from sink columns: PostgreSQL (Cloud SQL) and DuckDB.

The runtime's writers create a missing table on start and the local target creates it on
apply; both use these statements, so the table is the same whoever made it.
"""

from __future__ import annotations

from typing import Literal

from buildflow.types.schema import Column, Kind

Dialect = Literal["postgres", "duckdb"]


class SinkSchemaError(RuntimeError):
    """The destination table cannot take rows of the declared type (raised on start)."""

_TYPES: dict[Dialect, dict[Kind, str]] = {
    "postgres": {
        Kind.STRING: "text",
        Kind.INTEGER: "bigint",
        Kind.FLOAT: "double precision",
        Kind.BOOLEAN: "boolean",
        Kind.TIMESTAMP: "timestamptz",
        Kind.DATE: "date",
        Kind.BYTES: "bytea",
        Kind.JSON: "jsonb",
    },
    "duckdb": {
        Kind.STRING: "VARCHAR",
        Kind.INTEGER: "BIGINT",
        Kind.FLOAT: "DOUBLE",
        Kind.BOOLEAN: "BOOLEAN",
        Kind.TIMESTAMP: "TIMESTAMPTZ",
        Kind.DATE: "DATE",
        Kind.BYTES: "BLOB",
        Kind.JSON: "JSON",
    },
}


def quote(identifier: str) -> str:
    """A quoted SQL identifier (both dialects quote with double quotes)."""
    return '"' + identifier.replace('"', '""') + '"'


def column_type(dialect: Dialect, column: Column) -> str:
    base = _TYPES[dialect][column.kind]
    return f"{base}[]" if column.repeated else base


def column_definition(dialect: Dialect, column: Column, *, added_later: bool = False) -> str:
    """``"name" type [NOT NULL]``; a column added to a table that has rows is always nullable."""
    required = not column.nullable and not column.repeated and not added_later
    return f"{quote(column.name)} {column_type(dialect, column)}{' NOT NULL' if required else ''}"


def create_table(dialect: Dialect, table: str, columns: list[Column]) -> str:
    body = ", ".join(column_definition(dialect, c) for c in columns)
    return f"CREATE TABLE IF NOT EXISTS {quote(table)} ({body})"


def add_column(dialect: Dialect, table: str, column: Column) -> str:
    return f"ALTER TABLE {quote(table)} ADD COLUMN {column_definition(dialect, column, added_later=True)}"


def missing_columns(columns: list[Column], existing: set[str]) -> list[Column]:
    """The declared columns a table does not have yet."""
    return [c for c in columns if c.name not in existing]
