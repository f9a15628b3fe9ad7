"""``AnalysisQuery`` on gcp: BigQuery's ``jobs.query``, then ``jobs.getQueryResults`` until the
job is done and every page is read (gcloud-aio-bigquery's ``Job``, on aiohttp, as the BigQuery
sink uses). A query text runs only once a dry run (free, nothing read) has said it is a
``SELECT``: the service's identity may write the datasets its sinks write to, so BigQuery itself
must say that the query cannot. Parameters go as typed named parameters; values come back as the same Python types
DuckDB gives locally (timestamps asked for as integer microseconds, so none is rounded).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bfctl.runtime.analysis.base import QueryHandle, Rows, parameter_type
from bfctl.runtime.sinks.base import describe
from bfctl.runtime.sinks.bigquery import table_name
from buildflow.dependencies.analysis import AnalysisQueryError

#: How long one call waits for the job on BigQuery's side before answering "not done yet".
WAIT_MS = 10_000
#: Query texts a handle remembers as dry-run SELECTs (parameters do not change a statement's type).
KNOWN_SELECTS = 256
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _timestamp(value: str) -> datetime.datetime:
    try:
        return _EPOCH + datetime.timedelta(microseconds=int(value))
    except ValueError:  # seconds as a float: an endpoint that ignored useInt64Timestamp
        return datetime.datetime.fromtimestamp(float(value), tz=datetime.UTC)


#: A cell's value by its field's type; types not named here (STRING, JSON, GEOGRAPHY, INTERVAL...) stay text.
_SCALARS: dict[str, Callable[[str], Any]] = {
    "INTEGER": int,
    "INT64": int,
    "FLOAT": float,
    "FLOAT64": float,
    "NUMERIC": decimal.Decimal,
    "BIGNUMERIC": decimal.Decimal,
    "BOOLEAN": lambda v: v == "true",
    "BOOL": lambda v: v == "true",
    "BYTES": base64.b64decode,
    "TIMESTAMP": _timestamp,
    "DATETIME": datetime.datetime.fromisoformat,
    "DATE": datetime.date.fromisoformat,
    "TIME": datetime.time.fromisoformat,
}


def _value(field: dict[str, Any], value: Any) -> Any:
    if value is None:
        return None
    if field.get("mode") == "REPEATED":
        item = {**field, "mode": "NULLABLE"}
        return [_value(item, cell["v"]) for cell in value]
    if field["type"] in ("RECORD", "STRUCT"):
        return record(field["fields"], value)
    return _SCALARS.get(field["type"], str)(value)


def record(fields: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any]:
    """One row of a query response (``{"f": [{"v": ...}]}``) as a dict of Python values."""
    return {field["name"]: _value(field, cell["v"]) for field, cell in zip(fields, row["f"], strict=True)}


def _parameter_value(value: Any) -> dict[str, Any]:
    if isinstance(value, (list, tuple)):
        return {"arrayValues": [_parameter_value(v) for v in value]}
    if isinstance(value, bool):
        return {"value": "true" if value else "false"}
    if isinstance(value, bytes):
        return {"value": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return {"value": value.isoformat()}
    return {"value": str(value)}


def query_parameters(params: dict[str, Any]) -> list[dict[str, Any]]:
    """``queryParameters`` of a ``jobs.query`` request."""
    return [
        {"name": name, "parameterType": parameter_type(name, value), "parameterValue": _parameter_value(value)}
        for name, value in params.items()
    ]


def _google_message(error: Exception) -> str:
    """The message of Google's error body (gcloud-aio puts ``reason: body`` in the exception)."""
    text = str(getattr(error, "message", error))
    _, _, body = text.partition(": ")
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return text


class BigQueryQuery(QueryHandle):
    """A BigQuery table; ``{table}`` is ```project.dataset.table```."""

    engine = "bigquery"
    marker = "@"

    def __init__(self, project: str, dataset: str, table: str, description: str, api_root: str | None = None) -> None:
        super().__init__(f"`{project}.{dataset}.{table}`", description)
        self.project = project
        self.api_root = api_root or None
        self._session: Any = None
        self._token: Any = None
        self._selects: set[str] = set()

    async def open(self) -> None:
        from aiohttp import ClientSession

        self._session = ClientSession()

    def _job(self, job_id: str | None = None, location: str | None = None) -> Any:
        from gcloud.aio.bigquery import Job

        job = Job(
            job_id,
            project=self.project,
            session=self._session,
            token=self._token,
            api_root=self.api_root,
            location=location,
        )
        self._token = job.token  # one token for every call (it refreshes itself)
        return job

    async def _check_select(self, query: dict[str, Any]) -> None:
        """Refuse a query BigQuery does not call a ``SELECT``, before it runs."""
        if query["query"] in self._selects:
            return
        dry_run = await self._job().insert({"configuration": {"dryRun": True, "query": query}})
        kind = dry_run.get("statistics", {}).get("query", {}).get("statementType")
        if kind != "SELECT":
            raise AnalysisQueryError(f"AnalysisQuery only reads: BigQuery says the query is a {kind} statement")
        if len(self._selects) >= KNOWN_SELECTS:
            self._selects.clear()
        self._selects.add(query["query"])

    async def run(self, sql: str, params: dict[str, Any]) -> Rows:
        from aiohttp import ClientResponseError

        query = {
            "query": sql,
            "useLegacySql": False,
            "parameterMode": "NAMED",
            "queryParameters": query_parameters(params),
        }
        request = {**query, "timeoutMs": WAIT_MS, "formatOptions": {"useInt64Timestamp": True}}
        try:
            await self._check_select(query)
            response = await self._job().query(request)
            rows: Rows = []
            while True:
                token = None
                if response.get("jobComplete"):
                    fields = response.get("schema", {}).get("fields", [])
                    rows.extend(record(fields, row) for row in response.get("rows", []))
                    token = response.get("pageToken")
                    if not token:
                        return rows
                reference = response["jobReference"]
                job = self._job(reference["jobId"], reference.get("location"))
                page = {"timeoutMs": WAIT_MS, "formatOptions.useInt64Timestamp": "true"}
                response = await job.get_query_results(params={**page, **({"pageToken": token} if token else {})})
        except ClientResponseError as e:
            raise AnalysisQueryError(
                f"BigQuery refused the query on {self.description}: {_google_message(e)}"
            ) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def bigquery_query(primitive: Any, out: Mapping[str, Any], project_dir: Path) -> QueryHandle:
    """The handle of a BigQuery table the target applied, or that exists already."""
    return BigQueryQuery(
        out["project"], out["dataset_id"], table_name(out), describe(primitive, out), out.get("api_root")
    )
