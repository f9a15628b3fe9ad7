"""``BigQueryTable`` on the gcp target: BigQuery's streaming ``insertAll`` (gcloud-aio-bigquery,
on aiohttp). A call that returns without ``insertErrors`` means BigQuery accepted every row.

With ``skipInvalidRows`` off, one bad row makes BigQuery refuse the whole call: the bad rows'
indexes go back in ``RowsRejected``, so the collector retries each request on its own and the
others still land. A value the API cannot read at all (the body is not JSON BigQuery parses) is
a 400 for the whole call: the collector retries each request on its own, so only the bad one fails.

Rows travel as Google's own client sends them: nested records as JSON objects and lists as
arrays (the table's RECORD and REPEATED fields, ``buildflow.types.bigquery_fields``), INT64
values as strings at every level (BigQuery may read a JSON number as a double, which loses
integers above 2**53), NaN and the infinities of FLOAT64 as strings (JSON has no such
numbers, so Google's parser refuses the bare tokens), and values of JSON columns as JSON text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from bfctl.runtime.sinks.base import Row, RowsRejected, SinkWriter, describe
from bfctl.runtime.sinks.formats import json_text
from buildflow.io.gcp import BigQueryTable
from buildflow.io.portable import AnalysisTable
from buildflow.types.bigquery_fields import RECORD, Field, table_fields
from buildflow.types.input_syntax import InputSyntax
from buildflow.types.schema import Column, Kind, schema_from_type, to_jsonable
from buildflow.types.value_steps import Step, each_field, each_item


class BigQueryWriter(SinkWriter):
    input_syntax = InputSyntax.BIGQUERY

    def __init__(
        self,
        project: str,
        dataset: str,
        table: str,
        description: str,
        api_root: str | None = None,
        fields: list[Field] | None = None,
    ) -> None:
        self.project, self.dataset, self.table = project, dataset, table
        self.description = description
        self.api_root = api_root
        self._json_row = _row_encoder(fields or [])
        self._table: Any = None

    async def start(self) -> None:
        from gcloud.aio.bigquery import Table

        self._table = Table(self.dataset, self.table, project=self.project, api_root=self.api_root or None)

    async def write(self, rows: list[Row]) -> None:
        from aiohttp import ClientResponseError

        try:
            response = await self._table.insert(
                [self._json_row(r) for r in rows], skip_invalid=False, ignore_unknown=False
            )
        except ClientResponseError as e:
            if e.status != 400:
                raise
            raise RowsRejected(f"BigQuery refused the rows: {_google_message(e.message)[:300]}") from None
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


def _google_message(text: str) -> str:
    """The message of Google's error body in ``"Bad Request: {body}"``, else the text."""
    try:
        return str(orjson.loads(text.split(": ", 1)[1])["error"]["message"])
    except (IndexError, KeyError, TypeError, orjson.JSONDecodeError):
        return text


def bigquery_writer(
    primitive: Any, out: Mapping[str, Any], schema: list[Column] | None, project_dir: Path
) -> BigQueryWriter:
    """``Engine.BIGQUERY``: the table the gcp target applied (BigQuery checks the rows' schema)."""
    declared = getattr(primitive, "schema", None)
    columns = schema if schema is not None else schema_from_type(declared) if declared is not None else []
    return BigQueryWriter(
        out["project"],
        out["dataset_id"],
        table_name(out),
        describe(primitive, out),
        out.get("api_root"),
        table_fields(columns),
    )


def _row_encoder(fields: list[Field]) -> Callable[[Row], dict[str, Any]]:
    """A checked row as insertAll's JSON: only the fields whose values need more than
    ``to_jsonable`` are walked."""
    convert = each_field([(f.name, step) for f in fields if (step := _encoder(f)) is not None])

    def encode(row: Row) -> dict[str, Any]:
        data: dict[str, Any] = convert(to_jsonable(row))
        return data

    return encode


def _encoder(field: Field) -> Step | None:
    """How a JSON value of ``field`` becomes what Google's client sends, or None: as it is."""
    one: Step | None
    if field.type == RECORD:
        parts = [(f.name, step) for f in field.fields if (step := _encoder(f)) is not None]
        one = each_field(parts) if parts else None
    else:
        one = _LEAF_ENCODERS.get(field.type)
    if one is None or field.mode != "REPEATED":
        return one
    return each_item(one)


def _int64(value: Any) -> Any:
    return str(value) if type(value) is int else value


def _float64(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    return value


_LEAF_ENCODERS: dict[str, Step] = {
    Kind.INTEGER.value: _int64,
    Kind.FLOAT.value: _float64,
    Kind.JSON.value: json_text,
}


def input_syntax_of(primitive: Any) -> InputSyntax:
    """BigQuery's input rules for the tables that are BigQuery's on gcp (``BigQueryTable``,
    ``AnalysisTable``) wherever they run, so a row their local stand-in takes is one BigQuery
    takes; a JSON reader's for other tables."""
    return InputSyntax.BIGQUERY if isinstance(primitive, (BigQueryTable, AnalysisTable)) else InputSyntax.JSON


def table_name(out: Mapping[str, Any]) -> str:
    """The table's own name: the gcp target exports ``table_id`` as ``project.dataset.table``."""
    return str(out["table_id"]).rsplit(".", 1)[-1]
