"""A table in a DuckDB database file on this machine."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from buildflow.io.primitive import LocalPrimitive, PrimitiveValidationError
from buildflow.io.sink import TableSchema


@dataclasses.dataclass
class DuckDBTable(TableSchema, LocalPrimitive):
    """``table`` in the DuckDB file ``database`` (relative paths are relative to the project
    directory). The file is the user's: destroy drops only the table, and the file only when
    the stack created it and nothing else is left in it."""

    database: str
    table: str

    resource_type: ClassVar[str] = "duckdb.Table"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"database", "table"})
    option_defaults: ClassVar[dict[str, Any]] = {"schema": None}

    def __post_init__(self) -> None:
        self.validate()

    def primitive_id(self) -> str:
        return f"duckdb:{self.database}:{self.table}"

    def desired_properties(self) -> dict[str, Any]:
        return {"database": self.database, "table": self.table, "schema": self.schema_properties()}

    def validate(self) -> None:
        if not isinstance(self.database, str) or not self.database.strip() or "\x00" in self.database:
            raise PrimitiveValidationError(
                f"DuckDBTable: database must be the path of a .duckdb file, got {self.database!r}"
            )
        if not isinstance(self.table, str) or not self.table or any(ord(c) < 32 for c in self.table):
            raise PrimitiveValidationError(f"DuckDBTable: table must be a non-empty name, got {self.table!r}")
        self.check_schema()
