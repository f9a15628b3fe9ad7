"""A table in a DuckDB database file on this machine (one in MotherDuck is refused)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from buildflow.io.primitive import LocalPrimitive, PrimitiveValidationError
from buildflow.io.sink import TableSchema
from buildflow.io.unsupported import NotSupportedByBfctl

if TYPE_CHECKING:
    from buildflow.types.schema import Column

#: How DuckDB names a database held by MotherDuck, its cloud service.
MOTHERDUCK_PREFIX = "md:"


@dataclasses.dataclass
class DuckDBTable(TableSchema, LocalPrimitive):
    """``table`` in the DuckDB file ``database`` (relative paths are relative to the project
    directory). The file is the user's: destroy drops only the table, and the file only when
    the stack created it and nothing else is left in it."""

    database: str
    table: str
    #: BuildFlow 0.3.0 and 0.3.1 took MotherDuck's token here (0.3.2 read it from the environment).
    motherduck_token: str | None = dataclasses.field(default=None, repr=False)

    resource_type: ClassVar[str] = "duckdb.Table"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"database", "table"})
    option_defaults: ClassVar[dict[str, Any]] = {"schema": None}

    def __new__(cls, *args: Any, **kwargs: Any) -> DuckDBTable:  # noqa: PYI034 - may be the subclass
        """A ``md:`` database or a MotherDuck token makes a ``MotherDuckTable``, decided when the
        flow is built so that plan, apply and serve refuse it as other out-of-scope primitives."""
        database = kwargs.get("database", args[0] if args else None)
        token = kwargs.get("motherduck_token", args[2] if len(args) > 2 else None)
        in_motherduck = token is not None or (isinstance(database, str) and database.startswith(MOTHERDUCK_PREFIX))
        return super().__new__(MotherDuckTable if cls is DuckDBTable and in_motherduck else cls)

    def __post_init__(self) -> None:
        self.validate()

    def primitive_id(self) -> str:
        return f"duckdb:{self.database}:{self.table}"

    def desired_properties(self) -> dict[str, Any]:
        return {"database": self.database, "table": self.table, "schema": self.schema_properties()}

    def describe_column(self, column: Column) -> str:
        from buildflow.storage.duckdb_types import nested_type

        nested = nested_type(column)
        return column.describe(None if nested is None else nested.sql)

    def validate(self) -> None:
        if not isinstance(self.database, str) or not self.database.strip() or "\x00" in self.database:
            raise PrimitiveValidationError(
                f"DuckDBTable: database must be the path of a .duckdb file, got {self.database!r}"
            )
        if not isinstance(self.table, str) or not self.table or any(ord(c) < 32 for c in self.table):
            raise PrimitiveValidationError(f"DuckDBTable: table must be a non-empty name, got {self.table!r}")
        self.check_schema()


@dataclasses.dataclass
class MotherDuckTable(NotSupportedByBfctl, DuckDBTable):
    """A ``DuckDBTable`` whose database is in MotherDuck (``md:name``, or given a token), which
    BuildFlow reached over the network with a service token; bfctl keeps DuckDB files on this
    machine only."""

    family: ClassVar[str] = "MotherDuck"
    instead: ClassVar[str] = (
        "give DuckDBTable the path of a DuckDB file on this machine, or use AnalysisTable from "
        "buildflow.io.portable (DuckDB locally, BigQuery on gcp)"
    )
    resource_type: ClassVar[str] = "motherduck.Table"

    def primitive_id(self) -> str:
        """Without the connection options after ``?``, which may hold the service token."""
        return f"duckdb:{self.database.split('?', 1)[0]}:{self.table}"

    def desired_properties(self) -> dict[str, Any]:
        return {**super().desired_properties(), "database": self.database.split("?", 1)[0]}
