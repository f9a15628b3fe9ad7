"""``BigQueryTable`` on the gcp target: BigQuery's streaming ``insertAll`` (gcloud-aio-bigquery,
on aiohttp). A call that returns without ``insertErrors`` means BigQuery accepted every row.

With ``skipInvalidRows`` off, one bad row makes BigQuery refuse the whole call: the bad rows'
indexes go back in ``RowsRejected``, so the collector retries each request on its own and the
others still land. INT64 values travel as JSON strings, as Google's own client sends them: BigQuery
may read a JSON number as a double, which loses integers above 2**53.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buildflow.io.gcp import BigQueryTable
from buildflow.io.portable import AnalysisTable
from buildflow.types.input_syntax import InputSyntax
from buildflow.types.schema import Column, Kind, schema_from_type, to_jsonable
from runtime.sinks.base import Row, RowsRejected, SinkWriter, describe


class BigQueryWriter(SinkWriter):
    input_syntax = InputSyntax.BIGQUERY

    def __init__(
        self,
        project: str,
        dataset: str,
        table: str,
        description: str,
        api_root: str | None = None,
        integer_columns: tuple[str, ...] = (),
    ) -> None:
        self.project, self.dataset, self.table = project, dataset, table
        self.description = description
        self.api_root = api_root
        self.integer_columns = integer_columns
        self._table: Any = None

    async def start(self) -> None:
        from gcloud.aio.bigquery import Table

        self._table = Table(self.dataset, self.table, project=self.project, api_root=self.api_root or None)

    def _json_row(self, row: Row) -> dict[str, Any]:
        data: dict[str, Any] = to_jsonable(row)
        for name in self.integer_columns:
            value = data.get(name)
            if type(value) is int:
                data[name] = str(value)
            elif isinstance(value, list):
                data[name] = [str(v) if type(v) is int else v for v in value]
        return data

    async def write(self, rows: list[Row]) -> None:
        response = await self._table.insert([self._json_row(r) for r in rows], skip_invalid=False, ignore_unknown=False)
        errors = (response or {}).get("insertErrors") or []
        if errors:
            bad = [e["index"] for e in errors if any(x.get("reason") != "stopped" for x in e.get("errors", []))]
            reasons = {
                x.get("message", x.get("reason", ""))
                for e in errors
                for x in e.get("errors", [])
                if x.get("reason") != "stopped"
            }
            raise RowsRejected(f"BigQuery refused {len(bad)} row(s): {'; '.join(sorted(reasons))[:300]}", bad)

    async def stop(self) -> None:
        if self._table is not None:
            await self._table.close()


def bigquery_writer(
    primitive: Any, out: Mapping[str, Any], schema: list[Column] | None, project_dir: Path
) -> BigQueryWriter:
    """``Engine.BIGQUERY``: the table the gcp target applied (BigQuery checks the rows' schema)."""
    declared = getattr(primitive, "schema", None)
    columns = schema if schema is not None else schema_from_type(declared) if declared is not None else []
    integers = tuple(c.name for c in columns if c.kind is Kind.INTEGER)
    return BigQueryWriter(
        out["project"], out["dataset_id"], table_name(out), describe(primitive, out), out.get("api_root"), integers
    )


def input_syntax_of(primitive: Any) -> InputSyntax:
    """BigQuery's input rules for the tables that are BigQuery's on gcp (``BigQueryTable``,
    ``AnalysisTable``) wherever they run, so a row their local stand-in takes is one BigQuery
    takes; no rules of their own for other tables."""
    return InputSyntax.BIGQUERY if isinstance(primitive, (BigQueryTable, AnalysisTable)) else InputSyntax.PYTHON


def table_name(out: Mapping[str, Any]) -> str:
    """The table's own name: the gcp target exports ``table_id`` as ``project.dataset.table``."""
    return str(out["table_id"]).rsplit(".", 1)[-1]
