"""Tables on the local target, all in DuckDB: ``DuckDBTable``, ``AnalysisTable``, and the
DuckDB stand-in for BigQuery (no BigQuery emulator works offline).

- ``BigQueryDataset``: the file ``<stack dir>/bigquery/<project>.<dataset>.duckdb``;
  ``BigQueryTable``: a table in it.
- ``AnalysisTable``: a table in ``<stack dir>/analysis.duckdb``.
- ``DuckDBTable``: a table in the user's file; destroy drops the table, and removes the file
  only when the stack created it and no table is left in it.

Tables are created from the declared schema (or by the first writer when none is declared);
a schema change adds the new columns (nullable, as BigQuery allows) and leaves others as they
are; a nested column whose type no longer fits its rows is an error naming the statement that
converts it. Files are opened through the sinks' lock, so apply waits for serving workers' turn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bfctl.providers.local.errors import LocalTargetError
from bfctl.providers.local.family import Family, forget
from bfctl.providers.state import ResourceState, State, record
from buildflow.io.duckdb import DuckDBTable
from buildflow.io.gcp import BigQueryDataset, BigQueryTable
from buildflow.io.portable import AnalysisTable
from buildflow.io.primitive import Primitive
from buildflow.io.sink import TableSchema
from buildflow.storage import ddl
from buildflow.storage.duckdb_types import mismatched_columns
from buildflow.storage.engines import Engine
from buildflow.types.bigquery_fields import bigquery_columns
from buildflow.types.schema import Column

DATASET = BigQueryDataset.resource_type
BIGQUERY_TABLE = BigQueryTable.resource_type
STAND_IN = "DuckDB stand-in for BigQuery"


@contextlib.contextmanager
def _open(path: Path) -> Iterator[Any]:
    """A connection for one step, released at once so workers get the file back."""
    from buildflow.storage.duckdb_access import shared_database

    database = shared_database(path)
    try:
        with database.connection() as connection:
            yield connection
    finally:
        database.release()


def _remove_database_file(path: Path) -> None:
    from buildflow.storage.duckdb_access import shared_database

    shared_database(path).remove()


def _tables(connection: Any) -> set[str]:
    query = "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
    return {name for (name,) in connection.execute(query).fetchall()}


class DuckDBFamily(Family):
    primitive_types = (BigQueryDataset, BigQueryTable, AnalysisTable, DuckDBTable)

    # -- where things are ----------------------------------------------------------------------
    def dataset_file(self, dataset: BigQueryDataset) -> Path:
        return self.root / "bigquery" / f"{dataset.project_id}.{dataset.dataset_name}.duckdb"

    def table_location(self, table: Primitive) -> tuple[Path, str]:
        """(database file, table name) of a table primitive."""
        if isinstance(table, BigQueryTable):
            return self.dataset_file(table.dataset), table.table_name
        if isinstance(table, AnalysisTable):
            return self.root / "analysis.duckdb", str(table.table_name)
        assert isinstance(table, DuckDBTable)
        return self.absolute(table.database), table.table

    # -- refresh ---------------------------------------------------------------------------------
    def refresh(self, state: State) -> None:
        for rec in [r for r in state.resources.values() if r.resource_type in self.resource_types]:
            if rec.resource_id not in state.resources:
                continue  # went with its dataset
            path = self.absolute(rec.private["database"])
            if not path.exists():
                forget(state, rec.resource_id)
            elif rec.resource_type != DATASET:
                with _open(path) as connection:
                    if rec.private["table"] not in _tables(connection):
                        del state.resources[rec.resource_id]
            if rec.resource_id in state.resources:
                rec.outputs["database"] = str(path)  # the project may have moved

    # -- apply -----------------------------------------------------------------------------------
    def put(self, state: State, primitive: Primitive) -> str:
        if isinstance(primitive, BigQueryDataset):
            path = self.dataset_file(primitive)
            with _open(path):
                pass  # creates the file
            made = {"engine": Engine.DUCKDB, "database": str(path), "stand_in": STAND_IN}
            record(state, primitive, primitive.desired_properties(), made, {"database": self.relative(path)})
            return f"{STAND_IN}: {self.relative(path)}"
        path, table = self.table_location(primitive)
        known = state.resources.get(primitive.primitive_id())
        made_file = known.private.get("made_file", False) if known else not path.exists()
        columns = (primitive.columns() if isinstance(primitive, TableSchema) else None) or []
        if isinstance(primitive, (BigQueryTable, AnalysisTable)):  # BigQuery's on gcp: nested as BigQuery nests
            columns = bigquery_columns(columns)
        with _open(path) as connection:
            message = self._ensure_table(connection, table, columns)
        outputs: dict[str, Any] = {"engine": Engine.DUCKDB, "database": str(path), "table": table}
        if isinstance(primitive, BigQueryTable):
            outputs["stand_in"] = STAND_IN
            message = f"{message} ({STAND_IN})"
        private = {"database": self.relative(path), "table": table, "made_file": made_file}
        record(state, primitive, primitive.desired_properties(), outputs, private)
        return message

    @staticmethod
    def _ensure_table(connection: Any, table: str, columns: list[Column]) -> str:
        if not columns:
            return "created when the first writer starts (no schema declared yet)"
        existing = {name for (name,) in connection.execute(ddl.existing_columns(table)).fetchall()}
        if not existing:
            connection.execute(ddl.create_table("duckdb", table, columns))
            return "created"
        mismatched = mismatched_columns(connection, table, columns)
        if mismatched:
            raise LocalTargetError(f"DuckDB table {table}: " + "; ".join(mismatched))
        added = ddl.missing_columns(columns, existing)
        for column in added:
            connection.execute(ddl.add_column("duckdb", table, column))
        return f"added column(s) {', '.join(c.name for c in added)}" if added else "exists"

    # -- delete ----------------------------------------------------------------------------------
    def delete(self, state: State, rec: ResourceState, doomed: set[str]) -> str:
        path = self.absolute(rec.private["database"])
        if rec.properties.get("destroy_protection"):
            raise LocalTargetError(
                f"{rec.resource_id} has destroy_protection=True: set .options(destroy_protection=False) "
                "and apply before destroying it"
            )
        if rec.resource_type == DATASET:
            _remove_database_file(path)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # the bigquery folder, when it was the last dataset
            del state.resources[rec.resource_id]
            return "deleted, with its tables"
        if any(p in doomed for p in rec.parents) or not path.exists():
            del state.resources[rec.resource_id]
            return "goes with its dataset"
        with _open(path) as connection:
            connection.execute(f"DROP TABLE IF EXISTS {ddl.quote(rec.private['table'])}")
            left = _tables(connection)
        del state.resources[rec.resource_id]
        if left or rec.resource_type == BIGQUERY_TABLE:
            return "dropped"
        if rec.resource_type == AnalysisTable.resource_type or rec.private.get("made_file"):
            _remove_database_file(path)
            return f"dropped; {self.relative(path)} removed (nothing else was in it)"
        return f"dropped; {self.relative(path)} kept (it was there before)"
