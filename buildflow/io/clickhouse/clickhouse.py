"""``ClickhouseTable`` (BuildFlow's ``buildflow.io.clickhouse``): declared, not supported by bfctl."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from buildflow.io.primitive import LocalPrimitive
from buildflow.io.sink import TableSchema
from buildflow.io.unsupported import NotSupportedByBfctl


@dataclasses.dataclass
class ClickhouseTable(NotSupportedByBfctl, TableSchema, LocalPrimitive):
    """A ClickHouse table, with BuildFlow's constructor."""

    database: str
    table: str
    host: str
    username: str
    password: str

    destroy_protection = False

    family: ClassVar[str] = "ClickHouse"
    instead: ClassVar[str] = (
        "use AnalysisTable from buildflow.io.portable (DuckDB locally, BigQuery on gcp) or a DuckDBTable"
    )
    resource_type: ClassVar[str] = "clickhouse.Table"
    secret_properties: ClassVar[frozenset[str]] = frozenset({"password"})
    option_defaults: ClassVar[dict[str, Any]] = {"schema": None, "destroy_protection": False}

    def primitive_id(self) -> str:
        return f"clickhouse:{self.database}.{self.table}"

    def desired_properties(self) -> dict[str, Any]:
        return {"database": self.database, "table": self.table, "host": self.host, "username": self.username}
