"""AnalysisQuery: the same SQL on DuckDB locally (a served flow writing and reading one table)
and on BigQuery's REST API (a local stand-in of jobs.query and getQueryResults)."""

import asyncio
import dataclasses
import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web
from support import on_loopback

from bfctl.infra import planned_primitives
from bfctl.providers import get_provider
from bfctl.runtime.analysis import RuntimeQueryOpener
from bfctl.runtime.analysis.base import prepare
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.dependencies.analysis import AnalysisQuery, AnalysisQueryError
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.duckdb import DuckDBTable
from buildflow.io.gcp import BigQueryDataset, BigQueryTable
from buildflow.io.portable import AnalysisTable


@dataclasses.dataclass
class Sale:
    item: str
    n: int
    at: datetime.datetime


def _flow() -> Flow:
    app = Flow()
    sales = AnalysisTable("sales").options(schema=Sale)
    query = AnalysisQuery(sales)

    @app.collector("/sales", method="POST", sink=sales, max_wait=0.002)
    def collect(sale: Sale) -> Sale:
        return sale

    service = app.service()

    @service.endpoint("/totals", method="GET")
    async def totals(q: query, least: int = 0) -> list[dict[str, Any]]:
        sql = "select item, sum(n) as n from {table} group by item having sum(n) >= @least order by item"
        return await q.rows(sql, {"least": least})

    @service.endpoint("/all", method="GET")
    def everything(q: query) -> list[Sale]:
        return q.sync.rows_as(Sale, "select * from {table} where item <> '{table}' order by n")

    @service.endpoint("/bigquery-only", method="GET")
    async def bigquery_only(q: query) -> str:
        try:
            await q.rows("select safe_divide(sum(n), 2) from {table}")
        except AnalysisQueryError as e:
            return str(e)
        return "ran"

    return app


def test_a_served_flow_reads_back_what_its_collector_wrote(tmp_path: Path) -> None:
    app = _flow()
    provider = get_provider("local", tmp_path, "dev")
    outputs = ResourceOutputs(provider.apply(provider.plan(planned_primitives(app, provider)[0])), "local")
    at = datetime.datetime(2026, 11, 27, 9, 30, tzinfo=datetime.UTC)
    try:
        with TestClient(app, outputs=outputs) as client:
            assert client.get("/totals").json() == []  # made by apply: readable before any row
            for item, n in [("tea", 2), ("cake", 1), ("tea", 3)]:
                sale = {"item": item, "n": n, "at": at.isoformat()}
                assert client.post("/sales", json=sale).json() == {"success": True}
            assert client.get("/totals").json() == [{"item": "cake", "n": 1}, {"item": "tea", "n": 5}]
            assert client.get("/totals", params={"least": 2}).json() == [{"item": "tea", "n": 5}]
            rows = client.get("/all").json()
            assert [(r["item"], r["n"]) for r in rows] == [("cake", 1), ("tea", 2), ("tea", 3)]
            assert datetime.datetime.fromisoformat(rows[0]["at"]) == at
            message = client.get("/bigquery-only").json()
            assert "does not know the function safe_divide" in message
            assert "on DuckDB locally and on BigQuery on gcp" in message
    finally:
        provider.destroy()


@pytest.mark.parametrize(
    ("sql", "params", "error"),
    [
        ("delete from {table}", None, "must start with `select` or `with`, not `delete`"),
        ("select 1; drop table {table}", None, "one statement at a time"),
        ("select * from {table} where n > @least", None, "uses @least but no parameter 'least'"),
        ("select 1", {"spare": 1}, "'spare' are not in the query"),
        ("select @x", {"x": None}, "'x' is None"),
        ("select @x", {"x": object()}, "'x' is a object"),
    ],
)
def test_what_no_engine_is_sent(sql: str, params: dict[str, Any] | None, error: str) -> None:
    with pytest.raises(AnalysisQueryError, match=error.replace("(", r"\(")):
        prepare(sql, params, '"t"', "$")


def test_placeholders_are_replaced_outside_strings_and_comments_only() -> None:
    sql = "select '@a {table}', \"@b\" from {table} -- @c {table}\nwhere x = @a;  /* end */"
    text, used = prepare(sql, {"a": 1}, "`p.d.t`", "@")
    assert text == "select '@a {table}', \"@b\" from `p.d.t` -- @c {table}\nwhere x = @a  /* end */"
    assert used == {"a": 1}


class BigQueryStandIn:
    """jobs.query answers "not done yet"; getQueryResults then gives two pages. A query that
    names a column ``nope`` is refused as BigQuery does (HTTP 400 with an error body). A dry run
    (jobs.insert) calls a query with ``delete`` in it a DELETE statement, any other a SELECT."""

    SCHEMA: ClassVar[dict[str, Any]] = {
        "fields": [
            {"name": "item", "type": "STRING", "mode": "NULLABLE"},
            {"name": "n", "type": "INTEGER", "mode": "NULLABLE"},
            {"name": "share", "type": "FLOAT", "mode": "NULLABLE"},
            {"name": "big", "type": "BOOLEAN", "mode": "NULLABLE"},
            {"name": "at", "type": "TIMESTAMP", "mode": "NULLABLE"},
            {"name": "tags", "type": "STRING", "mode": "REPEATED"},
        ]
    }
    PAGES: ClassVar[list[list[list[Any]]]] = [
        [["tea", "5", "0.75", "true", "1795771800000000", [{"v": "hot"}]]],
        [["cake", "1", "0.25", "false", None, []]],
    ]

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.pages_asked: list[dict[str, str]] = []
        self.dry_runs: list[dict[str, Any]] = []

    def _page(self, index: int) -> dict[str, Any]:
        rows = [{"f": [{"v": v} for v in row]} for row in self.PAGES[index]]
        page: dict[str, Any] = {"jobComplete": True, "schema": self.SCHEMA, "rows": rows}
        page["jobReference"] = {"projectId": "my-project", "jobId": "job-1", "location": "EU"}
        if index + 1 < len(self.PAGES):
            page["pageToken"] = str(index + 1)
        return page

    @staticmethod
    def _refusal(query: str) -> web.Response | None:
        if "nope" not in query:
            return None
        error = {"code": 400, "message": "Unrecognized name: nope at [1:8]", "status": "INVALID_ARGUMENT"}
        return web.json_response({"error": error}, status=400)

    async def dry_run(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.dry_runs.append(body)
        query = body["configuration"]["query"]["query"]
        kind = "DELETE" if "delete" in query.lower() else "SELECT"
        reference = {"projectId": "my-project", "location": "EU"}
        job = {"jobReference": reference, "statistics": {"query": {"statementType": kind}}}
        return self._refusal(query) or web.json_response({**job, "configuration": body["configuration"]})

    async def query(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"path": request.path, "body": body})
        refusal = self._refusal(body["query"])
        if refusal:
            return refusal
        reference = {"projectId": "my-project", "jobId": "job-1", "location": "EU"}
        return web.json_response({"jobComplete": False, "jobReference": reference})

    async def results(self, request: web.Request) -> web.Response:
        self.pages_asked.append({"path": request.path, **request.query})
        return web.json_response(self._page(int(request.query.get("pageToken", "0"))))


async def _serve(stand_in: BigQueryStandIn) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/bigquery/v2/projects/{p}/queries", stand_in.query)
    app.router.add_post("/bigquery/v2/projects/{p}/jobs", stand_in.dry_run)
    app.router.add_get("/bigquery/v2/projects/{p}/queries/{job}", stand_in.results)
    runner, root = await on_loopback(app)
    return runner, root + "/bigquery/v2"


def test_on_gcp_the_query_runs_on_bigquery_and_reads_every_page() -> None:
    table = BigQueryTable(BigQueryDataset("my-project", "analytics"), "sales")
    stand_in = BigQueryStandIn()

    async def run() -> tuple[list[dict[str, Any]], str]:
        runner, api_root = await _serve(stand_in)
        out = {"project": "my-project", "dataset_id": "analytics", "table_id": table.table_id, "api_root": api_root}
        handle = await RuntimeQueryOpener({table.primitive_id(): out}, Path.cwd()).open(table)
        try:
            rows = await handle.rows(
                "select * from {table} where n >= @least and item in unnest(@items)",
                {
                    "least": 1,
                    "items": ["tea", "cake"],
                },
            )
            with pytest.raises(AnalysisQueryError) as refused:
                await handle.rows("select nope from {table}")
        finally:
            await handle.close()
            await runner.cleanup()
        return rows, str(refused.value)

    rows, refused = asyncio.run(run())
    assert rows == [
        {
            "item": "tea",
            "n": 5,
            "share": 0.75,
            "big": True,
            "at": datetime.datetime(2026, 11, 27, 9, 30, tzinfo=datetime.UTC),
            "tags": ["hot"],
        },
        {"item": "cake", "n": 1, "share": 0.25, "big": False, "at": None, "tags": []},
    ]
    body = stand_in.requests[0]["body"]
    assert stand_in.requests[0]["path"] == "/bigquery/v2/projects/my-project/queries"
    assert body["query"] == "select * from `my-project.analytics.sales` where n >= @least and item in unnest(@items)"
    assert body["useLegacySql"] is False and body["parameterMode"] == "NAMED"
    assert body["queryParameters"] == [
        {"name": "least", "parameterType": {"type": "INT64"}, "parameterValue": {"value": "1"}},
        {
            "name": "items",
            "parameterType": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
            "parameterValue": {"arrayValues": [{"value": "tea"}, {"value": "cake"}]},
        },
    ]
    assert [p.get("pageToken") for p in stand_in.pages_asked] == [None, "1"]
    assert all(p["location"] == "EU" and p["path"].endswith("/queries/job-1") for p in stand_in.pages_asked)
    assert (
        refused
        == "BigQuery refused the query on BigQueryTable my-project.analytics.sales: Unrecognized name: nope at [1:8]"
    )


def test_on_bigquery_a_query_runs_only_once_a_dry_run_calls_it_a_select() -> None:
    table = BigQueryTable(BigQueryDataset("my-project", "analytics"), "sales")
    stand_in = BigQueryStandIn()
    hidden = "with gone as (delete from {table} where true returning n) select count(*) from gone"

    async def run() -> str:
        runner, api_root = await _serve(stand_in)
        out = {"project": "my-project", "dataset_id": "analytics", "table_id": table.table_id, "api_root": api_root}
        handle = await RuntimeQueryOpener({table.primitive_id(): out}, Path.cwd()).open(table)
        try:
            with pytest.raises(AnalysisQueryError) as refused:
                await handle.rows(hidden)
            for least in (1, 2):
                await handle.rows("select * from {table} where n >= @least", {"least": least})
        finally:
            await handle.close()
            await runner.cleanup()
        return str(refused.value)

    assert asyncio.run(run()) == "AnalysisQuery only reads: BigQuery says the query is a DELETE statement"
    assert [r["body"]["query"] for r in stand_in.requests] == [
        "select * from `my-project.analytics.sales` where n >= @least"
    ] * 2
    assert len(stand_in.dry_runs) == 2  # the refused one, then the select once for both runs
    checked = stand_in.dry_runs[1]["configuration"]
    assert checked["dryRun"] is True
    assert checked["query"]["queryParameters"] == [
        {"name": "least", "parameterType": {"type": "INT64"}, "parameterValue": {"value": "1"}}
    ]


def test_a_duckdb_table_nothing_applied_is_read_where_its_primitive_says(tmp_path: Path) -> None:
    """A ``DuckDBTable`` needs nothing applied, as for sinks; the applied outputs the runtime
    hands over (``ResourceOutputs``) answer ``in`` for a primitive they do not hold."""
    import duckdb

    database = tmp_path / "sales.duckdb"
    with duckdb.connect(str(database)) as conn:
        conn.execute("create table sales (item varchar, n integer)")
        conn.execute("insert into sales values ('tea', 5), ('cake', 1)")
    table = DuckDBTable(database=str(database), table="sales")
    outputs = ResourceOutputs({}, "local")
    assert table.primitive_id() not in outputs and outputs.get(table.primitive_id()) is None

    async def run() -> list[dict[str, Any]]:
        handle = await RuntimeQueryOpener(outputs, tmp_path).open(table)
        try:
            return await handle.rows("select item, n from {table} order by n desc")
        finally:
            await handle.close()

    assert asyncio.run(run()) == [{"item": "tea", "n": 5}, {"item": "cake", "n": 1}]
    with pytest.raises(LookupError, match=r"no applied infrastructure for 'my-project\.analytics\.sales'"):
        outputs[BigQueryTable(BigQueryDataset("my-project", "analytics"), "sales").primitive_id()]


def _sales_file(tmp_path: Path) -> Path:
    import duckdb

    database = tmp_path / "sales.duckdb"
    with duckdb.connect(str(database)) as conn:
        conn.execute("create table sales (item varchar, n integer)")
        conn.execute("insert into sales values ('tea', 5), ('cake', 1)")
    return database


def _rows(database: Path) -> list[tuple[Any, ...]]:
    from buildflow.storage.duckdb_access import duckdb_connection

    with duckdb_connection(database) as connection:
        return connection.execute("select item, n from sales order by n").fetchall()


# Statements a select can hide, and every other kind, none of which may change the file, make or
# read another file, or change the engine's settings.
_HOSTILE = [
    "with gone as (delete from {table} returning n) select count(*) from gone",
    "with moved as (update {table} set n = 0 returning n) select count(*) from moved",
    "with added as (insert into {table} values ('x', 9) returning n) select count(*) from added",
    "with gone as materialized (delete from {table} returning n) from gone",
    "select (with gone as (delete from {table} returning n) select count(*) from gone)",
    "select * from {table} where n in (with moved as (update {table} set n = 0 returning n) select n from moved)",
    "select * from query('delete from {table} returning n')",
    "delete from {table}",
    "drop table {table}",
    "create table copied as select * from {table}",
    "select 1; drop table {table}",
    "pragma enable_profiling",
    "copy {table} to '{out}/copied.csv'",
    "attach '{out}/other.duckdb' as other",
    "install httpfs",
    "load json",
    "set threads = 1",
    "checkpoint",
    "select * from read_text('/etc/hostname')",
    "select * from read_csv('/etc/passwd')",
    "select * from read_blob('/etc/hostname')",
    "select * from read_json_auto('/etc/hosts')",
    "select * from glob('/etc/*')",
    "select * from read_csv('{out}/mine.csv')",
]


@pytest.mark.parametrize("sql", _HOSTILE)
def test_a_query_can_neither_write_nor_reach_other_files(tmp_path: Path, sql: str) -> None:
    database = _sales_file(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.csv").write_text("a,b\n1,2\n")
    table = DuckDBTable(database=str(database), table="sales")

    async def run() -> None:
        handle = await RuntimeQueryOpener(ResourceOutputs({}, "local"), tmp_path).open(table)
        try:
            with pytest.raises(AnalysisQueryError):
                await handle.rows(sql.replace("{out}", str(out)))
            # the handle still reads afterwards, with the settings it had
            assert await handle.rows("select count(*) as n from {table}") == [{"n": 2}]
            assert await handle.rows("select current_setting('threads') as t") != [{"t": 1}]
        finally:
            await handle.close()

    asyncio.run(run())
    assert _rows(database) == [("cake", 1), ("tea", 5)]
    assert sorted(p.name for p in out.iterdir()) == ["mine.csv"]


def test_a_file_function_is_refused_with_what_a_query_may_read(tmp_path: Path) -> None:
    table = DuckDBTable(database=str(_sales_file(tmp_path)), table="sales")

    async def run() -> str:
        handle = await RuntimeQueryOpener(ResourceOutputs({}, "local"), tmp_path).open(table)
        try:
            with pytest.raises(AnalysisQueryError) as refused:
                await handle.rows("select * from read_csv('/etc/passwd')")
        finally:
            await handle.close()
        return str(refused.value)

    message = asyncio.run(run())
    assert message.startswith("AnalysisQuery reads only the tables of its database (sales.duckdb)")
    assert "/etc/passwd" in message


def test_request_values_reach_the_engine_as_parameters_only(tmp_path: Path) -> None:
    """Values a client sends that look like SQL, placeholders or file names match nothing and
    change nothing, while a collector writes to the same table in the same process."""
    app = _flow()
    query = AnalysisQuery(AnalysisTable("sales").options(schema=Sale))

    @app.service().endpoint("/find", method="GET")
    async def find(q: query, item: str) -> list[dict[str, Any]]:
        return await q.rows("select item, n from {table} where item = @item order by n", {"item": item})

    provider = get_provider("local", tmp_path, "dev")
    outputs = ResourceOutputs(provider.apply(provider.plan(planned_primitives(app, provider)[0])), "local")
    at = datetime.datetime(2026, 11, 27, 9, 30, tzinfo=datetime.UTC).isoformat()
    hostile = [
        "tea' or '1'='1",
        "x'; delete from sales; --",
        "{table}",
        "@item",
        "$item",
        "') union select * from read_csv('/etc/passwd') --",
        "/etc/passwd",
    ]
    try:
        with TestClient(app, outputs=outputs) as client:
            for n in range(1, 4):
                assert client.post("/sales", json={"item": "tea", "n": n, "at": at}).json() == {"success": True}
            for value in hostile:
                response = client.get("/find", params={"item": value})
                assert (response.status_code, response.json()) == (200, [])
                assert client.post("/sales", json={"item": value, "n": 0, "at": at}).json() == {"success": True}
                assert client.get("/find", params={"item": value}).json() == [{"item": value, "n": 0}]
            assert [r["n"] for r in client.get("/find", params={"item": "tea"}).json()] == [1, 2, 3]
    finally:
        provider.destroy()


def test_reads_and_writes_in_one_process_take_turns_on_the_file(tmp_path: Path) -> None:
    """The read-only attachment and the writers' cannot coexist in a process: each waits for
    the other's uses to end, and neither starves."""
    import threading

    from buildflow.storage.duckdb_access import duckdb_connection

    database = _sales_file(tmp_path)
    counts: list[int] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for n in range(200):
                with duckdb_connection(database) as connection:
                    connection.execute("insert into sales values ('w', ?)", [n])
        except BaseException as e:
            errors.append(e)

    def read() -> None:
        try:
            for _ in range(200):
                with duckdb_connection(database, read_only=True) as connection:
                    counts.append(connection.execute("select count(*) from sales").fetchone()[0])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(thread.is_alive() for thread in threads)
    assert len(counts) == 200 and counts == sorted(counts) and counts[-1] <= 202
    assert len(_rows(database)) == 202
