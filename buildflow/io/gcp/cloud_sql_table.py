"""A table in a managed Cloud SQL database, created from the collector's row type."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from buildflow.io.gcp.cloud_sql import CloudSQLDatabase, _check_identifier, _fail
from buildflow.io.primitive import GCPPrimitive, Primitive
from buildflow.io.sink import TableSchema


@dataclasses.dataclass
class CloudSQLTable(TableSchema, GCPPrimitive):
    """A PostgreSQL table in ``database``; collectors write their rows to it with ``COPY``."""

    database: CloudSQLDatabase
    table_name: str

    resource_type: ClassVar[str] = "gcp.sql.Table"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"database", "table_name"})
    option_defaults: ClassVar[dict[str, Any]] = {"schema": None}
    #: Connections each worker's writer holds at most: that many COPYs in flight at once.
    writer_connections: ClassVar[int] = 4

    def __post_init__(self) -> None:
        self.validate()

    def primitive_id(self) -> str:
        return f"{self.database.primitive_id()}.{self.table_name}"

    def cloud_console_url(self) -> str:
        return self.database.cloud_console_url()

    def desired_properties(self) -> dict[str, Any]:
        return {
            "database": self.database.primitive_id(),
            "table_name": self.table_name,
            "schema": self.schema_properties(),
        }

    def parents(self) -> list[Primitive]:
        return [self.database]

    def validate(self) -> None:
        if not isinstance(self.database, CloudSQLDatabase):
            _fail(self, f"database must be a CloudSQLDatabase, got {type(self.database).__name__}")
        _check_identifier(self, "table_name", self.table_name)
        if self.database.instance.engine != "postgres":
            _fail(self, f"tables are made on PostgreSQL instances only, not {self.database.instance.database_version}")
        self.check_schema()
