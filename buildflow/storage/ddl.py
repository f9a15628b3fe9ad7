"""SQL for tables made from sink columns: PostgreSQL (Cloud SQL) and DuckDB.

The runtime's writers create a missing table on start and the local target creates it on
apply; both use these statements, so the table is the same whoever made it. Each function
returns a statement; the caller runs it with its own driver (psycopg, pg8000 or DuckDB).
"""

from __future__ import annotations

from typing import Literal

from buildflow.types.input_syntax import POSTGRES_TYPES
from buildflow.types.schema import Column, Kind

Dialect = Literal["postgres", "duckdb"]


_TYPES: dict[Dialect, dict[Kind, str]] = {
    "postgres": POSTGRES_TYPES,
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


def literal(text: str) -> str:
    """A quoted SQL string (both dialects read backslashes literally in standard strings)."""
    return "'" + text.replace("'", "''") + "'"


def scalar_type(dialect: Dialect, kind: Kind) -> str:
    """The SQL type of one value of ``kind``."""
    return _TYPES[dialect][kind]


def column_type(dialect: Dialect, column: Column) -> str:
    """The SQL type of ``column``; a repeated column is an array of it. DuckDB keeps nested
    records and lists as STRUCT and LIST types, where the others keep JSON."""
    if dialect == "duckdb" and column.kind is Kind.JSON:
        from buildflow.storage.duckdb_types import nested_type  # it builds on this module

        nested = nested_type(column)
        if nested is not None:
            return nested.sql
    base = scalar_type(dialect, column.kind)
    return f"{base}[]" if column.repeated else base


def column_definition(dialect: Dialect, column: Column, *, added_later: bool = False) -> str:
    """``"name" type [NOT NULL]``; a column added to a table that has rows is always nullable."""
    required = not column.nullable and not column.repeated and not added_later
    return f"{quote(column.name)} {column_type(dialect, column)}{' NOT NULL' if required else ''}"


def create_table(dialect: Dialect, table: str, columns: list[Column]) -> str:
    """Create ``table`` unless it exists (a writer and an apply may race to make it)."""
    body = ", ".join(column_definition(dialect, c) for c in columns)
    return f"CREATE TABLE IF NOT EXISTS {quote(table)} ({body})"


def add_column(dialect: Dialect, table: str, column: Column) -> str:
    """Add a column declared after the table was made (nullable: the table may have rows)."""
    return f"ALTER TABLE {quote(table)} ADD COLUMN {column_definition(dialect, column, added_later=True)}"


def existing_columns(table: str, *, with_types: bool = False) -> str:
    """The query whose rows are the names of ``table``'s columns (with their types as the
    database spells them, when asked), none when it is missing.

    The same in both dialects: the table is looked up where an unqualified name is created
    (the current database's first schema on the search path, DuckDB's ``main``). The name is
    inlined as a literal because the three drivers that run it agree on no placeholder.
    """
    return (
        f"SELECT column_name{', data_type' if with_types else ''} FROM information_schema.columns "  # noqa: S608 - the name goes through literal()
        "WHERE table_catalog = current_database() AND table_schema = current_schema() "
        f"AND table_name = {literal(table)}"
    )


def missing_columns(columns: list[Column], existing: set[str]) -> list[Column]:
    """The declared columns a table does not have yet."""
    return [c for c in columns if c.name not in existing]
