"""A table for analytics, made by each target with its own engine."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from buildflow.io.gcp.bigquery import BigQueryDataset, BigQueryTable, check_table_name
from buildflow.io.primitive import PortablePrimitive, PrimitiveValidationError
from buildflow.io.sink import TableSchema

#: The dataset an AnalysisTable lands in on gcp unless the target says otherwise.
DEFAULT_DATASET = "buildflow"


@dataclasses.dataclass
class AnalysisTable(TableSchema, PortablePrimitive):
    """A DuckDB table on the local target, a BigQuery table on gcp (see ``to_gcp``)."""

    table_name: str | None = None

    resource_type: ClassVar[str] = "portable.AnalysisTable"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"table_name"})
    option_defaults: ClassVar[dict[str, Any]] = {"schema": None}

    def primitive_id(self) -> str:
        return f"analysis_table:{self.table_name}"

    def desired_properties(self) -> dict[str, Any]:
        return {"table_name": self.table_name, "schema": self.schema_properties()}

    def validate(self) -> None:
        if self.table_name is None:
            raise PrimitiveValidationError(
                "AnalysisTable: a managed table needs a name: AnalysisTable(table_name='events')"
            )
        check_table_name(self, self.table_name)
        self.check_schema()

    def to_gcp(self, project_id: str, dataset_name: str = DEFAULT_DATASET) -> BigQueryTable:
        """The BigQuery table this stands for on gcp, with the same schema."""
        self.validate()
        table = BigQueryTable(BigQueryDataset(project_id, dataset_name), str(self.table_name))
        table.schema = self.schema
        return table
