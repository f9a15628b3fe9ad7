"""BigQuery primitives: a dataset, and a table in it that sinks write rows to."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import TYPE_CHECKING, Any, ClassVar

from buildflow.io.gcp.cloud_sql import _PROJECT_ID, _fail
from buildflow.io.primitive import GCPPrimitive, Primitive
from buildflow.io.sink import TableSchema

if TYPE_CHECKING:
    from buildflow.types.schema import Column

# BigQuery: dataset ids are letters, digits and underscores, at most 1,024 characters; table
# names at most 1,024 UTF-8 bytes of letters, marks, numbers, connectors, dashes and spaces.
_DATASET_NAME = re.compile(r"[A-Za-z0-9_]{1,1024}")
_MAX_TABLE_NAME_BYTES = 1024
_TABLE_NAME_CATEGORIES = ("L", "M", "N", "Pc", "Pd", "Zs")


def check_project_id(primitive: Primitive, project_id: Any) -> None:
    if not isinstance(project_id, str) or not _PROJECT_ID.fullmatch(project_id):
        _fail(
            primitive,
            f"project_id {project_id!r} is not a valid Google Cloud project id: 6 to 30 lowercase "
            "letters, digits or hyphens, starting with a letter, not ending with a hyphen",
        )


@dataclasses.dataclass
class BigQueryDataset(GCPPrimitive):
    """A BigQuery dataset (a container of tables)."""

    project_id: str
    dataset_name: str

    resource_type: ClassVar[str] = "gcp.bigquery.Dataset"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"project_id", "dataset_name"})

    def __post_init__(self) -> None:
        self.validate()

    def primitive_id(self) -> str:
        return f"{self.project_id}.{self.dataset_name}"

    def cloud_console_url(self) -> str:
        return (
            f"https://console.cloud.google.com/bigquery?project={self.project_id}"
            f"&ws=!1m4!1m3!3m2!1s{self.project_id}!2s{self.dataset_name}"
        )

    def desired_properties(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "dataset_name": self.dataset_name}

    def validate(self) -> None:
        check_project_id(self, self.project_id)
        if not isinstance(self.dataset_name, str) or not _DATASET_NAME.fullmatch(self.dataset_name):
            _fail(
                self,
                f"dataset_name {self.dataset_name!r} is not a valid BigQuery dataset name: use letters, "
                "digits and underscores only (e.g. 'analytics'), at most 1,024 characters",
            )


@dataclasses.dataclass
class BigQueryTable(TableSchema, GCPPrimitive):
    """A BigQuery table; as a sink its rows are the collector's return values."""

    dataset: BigQueryDataset
    table_name: str

    # Options (``.options(...)``); class attributes so the constructor stays BuildFlow's.
    destroy_protection = False
    batch_size = 10_000

    resource_type: ClassVar[str] = "gcp.bigquery.Table"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"dataset", "table_name"})
    option_defaults: ClassVar[dict[str, Any]] = {"destroy_protection": False, "schema": None, "batch_size": 10_000}

    def __post_init__(self) -> None:
        self.validate()

    def primitive_id(self) -> str:
        return f"{self.dataset.primitive_id()}.{self.table_name}"

    @property
    def table_id(self) -> str:
        """``project.dataset.table``, as BuildFlow named it."""
        return self.primitive_id()

    def cloud_console_url(self) -> str:
        d = self.dataset
        return (
            f"https://console.cloud.google.com/bigquery?project={d.project_id}"
            f"&ws=!1m5!1m4!4m3!1s{d.project_id}!2s{d.dataset_name}!3s{self.table_name}"
        )

    def desired_properties(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.primitive_id(),
            "table_name": self.table_name,
            "schema": self.schema_properties(),
            "destroy_protection": self.destroy_protection,
        }

    def describe_column(self, column: Column) -> str:
        from buildflow.types.bigquery_fields import table_fields

        return table_fields([column])[0].describe()

    def parents(self) -> list[Primitive]:
        return [self.dataset]

    def validate(self) -> None:
        if not isinstance(self.dataset, BigQueryDataset):
            _fail(self, f"dataset must be a BigQueryDataset, got {type(self.dataset).__name__}")
        check_table_name(self, self.table_name)
        if not isinstance(self.destroy_protection, bool):
            _fail(self, f"destroy_protection must be True or False, got {self.destroy_protection!r}")
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            _fail(self, f"batch_size must be a positive integer, got {self.batch_size!r}")
        self.check_schema()


def check_table_name(primitive: Primitive, name: Any) -> None:
    """BigQuery's table name rules (also used for the local tables that stand in for it)."""
    if not isinstance(name, str) or not name:
        _fail(primitive, f"table_name must be a non-empty string, got {name!r}")
    if len(name.encode()) > _MAX_TABLE_NAME_BYTES:
        _fail(primitive, f"table_name is longer than {_MAX_TABLE_NAME_BYTES} bytes")
    bad = sorted({c for c in name if not unicodedata.category(c).startswith(_TABLE_NAME_CATEGORIES)})
    if bad:
        _fail(
            primitive,
            f"table_name {name!r} has characters BigQuery refuses ({''.join(bad)!r}): use letters, "
            "digits, underscores, dashes or spaces",
        )
