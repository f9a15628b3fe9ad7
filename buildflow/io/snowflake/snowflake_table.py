"""``SnowflakeTable`` (BuildFlow's ``buildflow.io.snowflake``): declared, not supported by bfctl."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from buildflow.io.primitive import Primitive
from buildflow.io.unsupported import NotSupportedByBfctl


@dataclasses.dataclass
class SnowflakeTable(NotSupportedByBfctl, Primitive):
    """A Snowflake table loaded from a staging bucket, with BuildFlow's constructor."""

    table: str
    database: str
    schema: str
    bucket: Any
    account: str | None
    user: str | None
    private_key: str | None
    snow_pipe: str | None = None
    snowflake_stage: str | None = None

    # Options (``.options(...)``), BuildFlow's defaults.
    flush_time_limit_secs = 60
    database_managed = True
    schema_managed = True
    snow_pipe_managed = True
    stage_managed = True
    table_schema = None

    family: ClassVar[str] = "Snowflake"
    instead: ClassVar[str] = "use AnalysisTable from buildflow.io.portable (DuckDB locally, BigQuery on gcp)"
    resource_type: ClassVar[str] = "snowflake.Table"
    secret_properties: ClassVar[frozenset[str]] = frozenset({"private_key"})
    option_defaults: ClassVar[dict[str, Any]] = {
        "database_managed": True,
        "schema_managed": True,
        "table_schema": None,
        "flush_time_limit_secs": 60,
    }

    def primitive_id(self) -> str:
        return f"{self.database}.{self.schema}.{self.table}"

    def desired_properties(self) -> dict[str, Any]:
        return {"database": self.database, "schema": self.schema, "table": self.table, "account": self.account}
