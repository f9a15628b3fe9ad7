"""BigQuery tables with nested rows, as BuildFlow's GCS-to-BigQuery walkthrough wrote them:
RECORD and REPEATED fields on gcp (the table Pulumi makes, the insertAll body the sink sends
to a local stand-in of the API), and the same STRUCT/LIST columns, input rules and SQL on the
local target's DuckDB stand-in."""

# The rows are annotated as BuildFlow's samples annotate them: typing.List, Optional and Dict.
# ruff: noqa: UP006, UP035, UP045

import asyncio
import contextlib
import csv
import dataclasses
import datetime
import io
import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Dict, List, Optional

import duckdb
import pytest
from aiohttp import web
from support import on_loopback

from bfctl.infra import declared_primitives
from bfctl.providers import get_provider
from bfctl.providers.base import ApplyError
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.dependencies.analysis import AnalysisQuery
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.gcp import BigQueryDataset, BigQueryTable
from buildflow.storage import ddl
from buildflow.types.bigquery_fields import bigquery_columns, table_schema
from buildflow.types.schema import schema_from_type

# pulumi_gcp's own modules warn about their deprecated members when imported
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_gcp.*")


# -- the flow: BuildFlow's walkthrough, with a list of records, a list of strings and a dict -------
@dataclasses.dataclass
class HourAggregate:
    hour: datetime.datetime
    stat: int


@dataclasses.dataclass
class Trend:
    slope: float
    peaks: List[int]


@dataclasses.dataclass
class AggregateWikiPageViews:
    date: datetime.date
    wiki: str
    title: str
    daily_page_views: int
    max_page_views_per_hour: HourAggregate
    min_page_views_per_hour: Optional[HourAggregate]
    hours: List[HourAggregate]
    editors: List[str]
    trend: Trend
    labels: Dict[str, str]


@dataclasses.dataclass
class Upload:
    csv: str
    note: str = ""


def _aggregate(upload: Upload) -> List[AggregateWikiPageViews]:
    """As the walkthrough's processor: views stay the CSV's strings, BigQuery reads them."""
    grouped: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in csv.DictReader(io.StringIO(upload.csv)):
        grouped.setdefault((row["wiki"], row["title"]), []).append(row)
    out = []
    for (wiki, title), rows in grouped.items():
        # naive, as the walkthrough's; BigQuery takes it as UTC
        hour = [datetime.datetime.strptime(r["datehour"], "%Y-%m-%d %H:%M:%S") for r in rows]  # noqa: DTZ007
        hours = [HourAggregate(at, r["views"]) for at, r in zip(hour, rows, strict=True)]
        ranked = sorted(hours, key=lambda h: float(h.stat))
        counts = [float(h.stat) for h in hours]
        out.append(
            AggregateWikiPageViews(
                date=hours[0].hour.date(),
                wiki=wiki,
                title=title,
                daily_page_views=int(sum(counts)),
                max_page_views_per_hour=ranked[-1],
                min_page_views_per_hour=ranked[0] if len(hours) > 1 else None,
                hours=hours,
                editors=[r["editor"] for r in rows],
                trend=Trend(
                    slope=(counts[-1] - counts[0]) / (len(counts) - 1) if len(counts) > 1 else math.nan,
                    peaks=[int(c) for c in sorted(counts, reverse=True)],
                ),
                labels={"source": "csv", **({"note": upload.note} if upload.note else {})},
            )
        )
    return out


def _flow() -> tuple[Flow, BigQueryDataset, BigQueryTable]:
    app = Flow()
    dataset = BigQueryDataset(project_id="my-project", dataset_name="wiki")
    table = BigQueryTable(dataset=dataset, table_name="page_views").options(
        destroy_protection=False, schema=AggregateWikiPageViews
    )
    app.manage(dataset, table)
    views = AnalysisQuery(table)

    @app.collector("/uploads", method="POST", sink=table)
    def collect(upload: Upload) -> List[AggregateWikiPageViews]:
        return _aggregate(upload)

    service = app.service()

    @service.endpoint("/hours", method="GET")
    async def per_hour(q: views) -> list[dict[str, Any]]:
        return await q.rows("SELECT title, h.stat AS stat FROM {table}, UNNEST(hours) AS h ORDER BY title, stat")

    @service.endpoint("/tops", method="GET")
    async def tops(q: views) -> list[dict[str, Any]]:
        sql = (
            "SELECT title, max_page_views_per_hour.stat AS top, min_page_views_per_hour.stat AS bottom, "
            "editor FROM {table}, UNNEST(editors) AS editor ORDER BY title, editor"
        )
        return await q.rows(sql)

    return app, dataset, table


CSV = """datehour,wiki,title,views,editor
2023-08-17 10:00:00,en,Python,120,ann
2023-08-17 11:00:00,en,Python,80,bob
2023-08-17 10:00:00,de,Berlin,7,cem
"""

HOUR = {"name": "hour", "type": "TIMESTAMP", "mode": "REQUIRED"}
STAT = {"name": "stat", "type": "INTEGER", "mode": "REQUIRED"}
#: The schema BuildFlow made for these rows (RECORD and REPEATED), with the dict as JSON.
SCHEMA = [
    {"name": "date", "type": "DATE", "mode": "REQUIRED"},
    {"name": "wiki", "type": "STRING", "mode": "REQUIRED"},
    {"name": "title", "type": "STRING", "mode": "REQUIRED"},
    {"name": "daily_page_views", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "max_page_views_per_hour", "type": "RECORD", "mode": "REQUIRED", "fields": [HOUR, STAT]},
    {"name": "min_page_views_per_hour", "type": "RECORD", "mode": "NULLABLE", "fields": [HOUR, STAT]},
    {"name": "hours", "type": "RECORD", "mode": "REPEATED", "fields": [HOUR, STAT]},
    {"name": "editors", "type": "STRING", "mode": "REPEATED"},
    {
        "name": "trend",
        "type": "RECORD",
        "mode": "REQUIRED",
        "fields": [
            {"name": "slope", "type": "FLOAT", "mode": "REQUIRED"},
            {"name": "peaks", "type": "INTEGER", "mode": "REPEATED"},
        ],
    },
    {"name": "labels", "type": "JSON", "mode": "REQUIRED"},
]


# -- gcp: the table ------------------------------------------------------------------------------
def test_the_gcp_table_has_record_and_repeated_fields_as_buildflow_made_them(monitor: Any) -> None:
    pytest.importorskip("pulumi_gcp")
    from gcp_mocks import run_program

    _, dataset, table = _flow()
    run_program([dataset, table])

    inputs = monitor.registered["my-project.wiki.page_views"]["inputs"]
    assert inputs["tableId"] == "page_views"
    assert json.loads(inputs["schema"]) == SCHEMA


def _nested(depth: int) -> type:
    """A record ``depth`` records deep: each level holds the next one as ``inner``."""
    inner: type = dataclasses.make_dataclass("Leaf", [("n", int)])
    for level in range(depth - 1):
        inner = dataclasses.make_dataclass(f"Level{level}", [("inner", inner)])
    return inner


Deepest = _nested(15)  # BigQuery's limit: 15 levels of RECORD
TooDeep = _nested(16)


@dataclasses.dataclass
class Node:
    label: str
    children: List["Node"]


@dataclasses.dataclass
class Cell:
    v: int


@dataclasses.dataclass
class WithDict:
    name: str
    extra: Dict[str, int]


@dataclasses.dataclass
class Unnestable:
    grid: List[List[int]]  # an ARRAY cannot hold an ARRAY
    sparse: List[Optional[Cell]]  # nor NULL
    loose: WithDict  # a part without a fixed shape
    tree: Node  # a record that contains itself
    deepest: Deepest  # type: ignore[valid-type]
    too_deep: TooDeep  # type: ignore[valid-type]


def test_what_bigquery_cannot_nest_stays_json_on_gcp_and_in_the_local_stand_in() -> None:
    fields = {f["name"]: f for f in table_schema(Unnestable)}
    assert {name: (f["type"], f["mode"]) for name, f in fields.items()} == {
        "grid": ("JSON", "REQUIRED"),
        "sparse": ("JSON", "REQUIRED"),
        "loose": ("JSON", "REQUIRED"),
        "tree": ("JSON", "REQUIRED"),
        "deepest": ("RECORD", "REQUIRED"),
        "too_deep": ("JSON", "REQUIRED"),
    }
    depth, level = 0, fields["deepest"]
    while level["type"] == "RECORD":
        depth, level = depth + 1, level["fields"][0]
    assert depth == 15 and level == {"name": "n", "type": "INTEGER", "mode": "REQUIRED"}

    # The stand-in keeps the same columns as JSON where DuckDB alone would nest them.
    types = {c.name: ddl.column_type("duckdb", c) for c in bigquery_columns(schema_from_type(Unnestable))}
    assert {n: t for n, t in types.items() if n != "deepest"} == dict.fromkeys(
        ["grid", "sparse", "loose", "tree", "too_deep"], "JSON"
    )
    assert types["deepest"].count("STRUCT(") == 15


def test_a_table_whose_json_column_becomes_a_record_is_a_replace_that_says_its_rows_are_lost() -> None:
    """The engine's preview of a table applied by an earlier version (``hours`` JSON): the
    provider forces a replace for the schema, since BigQuery's API refuses a type change."""
    from pulumi.automation import EngineEvent

    from bfctl.providers.gcp.events import StepCollector

    *_, table = _flow()
    urn = f"urn:pulumi:dev::flow::gcp:bigquery/table:Table::{table.primitive_id()}"
    old = [*SCHEMA[:6], {"name": "hours", "type": "JSON", "mode": "REQUIRED"}, *SCHEMA[7:]]
    metadata = {
        "op": "replace",
        "urn": urn,
        "type": "gcp:bigquery/table:Table",
        "provider": "",
        "old": {"inputs": {"schema": json.dumps(old), "tableId": "page_views"}},
        "new": {"inputs": {"schema": json.dumps(SCHEMA), "tableId": "page_views"}},
        "keys": ["schema"],
        "diffs": ["schema"],
        "detailedDiff": {"schema": {"diffKind": "update-replace", "inputDiff": True}},
    }
    steps = StepCollector()
    steps(EngineEvent.from_json({"resourcePreEvent": {"metadata": metadata}}))

    (change,) = steps.changes([table])
    assert change.action == "replace"
    assert [(p.name, p.forces_replace) for p in change.changes] == [("schema", True)]
    assert "the table is deleted and made again, and its rows are lost" in change.reason
    assert change.to_dict()["reason"] == change.reason  # in `bfctl plan --json` too


# -- gcp: the rows -------------------------------------------------------------------------------
#: Google's limit on an insertAll request.
MAX_REQUEST = 10 * 1024 * 1024


def _google_error(message: str) -> web.Response:
    body = {
        "error": {
            "code": 400,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": "invalid"}],
            "status": "INVALID_ARGUMENT",
        }
    }
    return web.json_response(body, status=400)


def _refusal(fields: list[dict[str, Any]], row: Any, path: str = "") -> str | None:
    """What BigQuery says of a row that does not fit ``fields``, or None."""
    if not isinstance(row, dict):
        return f"This field: {path or 'row'} is not a record."
    unknown = set(row) - {f["name"] for f in fields}
    if unknown:
        return f"no such field: {min(unknown)}."
    for field in fields:
        name = f"{path}{field['name']}"
        value = row.get(field["name"])
        if value is None:
            if field["mode"] == "REQUIRED":
                return f"Missing required field: {name}."
            continue
        values = value if field["mode"] == "REPEATED" else [value]
        if field["mode"] == "REPEATED" and not isinstance(value, list):
            return f"Field {name}: a repeated field takes an array."
        for item in values:
            problem = _value_refusal(field, item, name)
            if problem:
                return problem
    return None


def _value_refusal(field: dict[str, Any], value: Any, name: str) -> str | None:
    kind = field["type"]
    if value is None:
        return f"Field {name}: an array cannot hold null."
    if kind == "RECORD":
        return _refusal(field["fields"], value, name + ".")
    if kind == "INTEGER" and not (type(value) is int or (isinstance(value, str) and value.lstrip("-").isdigit())):
        return f"Cannot convert value to integer: {value!r} ({name})"
    if kind == "FLOAT" and not (
        isinstance(value, (int, float)) or value in ("NaN", "Infinity", "-Infinity") or _is_number(value)
    ):
        return f"Cannot convert value to floating point: {value!r} ({name})"
    if kind in ("STRING", "DATE", "TIMESTAMP", "JSON") and not isinstance(value, str):
        return f"This field: {name} is not a string."
    return None


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _no_bare_constants(token: str) -> Any:
    raise ValueError(token)


class InsertAll:
    """BigQuery's tabledata.insertAll for one table of ``SCHEMA``, answering as Google does:
    a body that is not strict JSON (NaN as a bare token) or is over 10 MB is a 400 with
    Google's error body; a row that does not fit is in ``insertErrors`` (the others "stopped")."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.stored: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def insert_all(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if len(raw) > MAX_REQUEST:
            return _google_error(f"Request payload size exceeds the limit: {MAX_REQUEST} bytes.")
        try:
            body = json.loads(raw, parse_constant=_no_bare_constants)
        except ValueError:
            return _google_error('Invalid JSON payload received. Unexpected token.\n": NaN')
        self.bodies.append(body)
        rows = [r["json"] for r in body["rows"]]
        problems = [_refusal(SCHEMA, row) for row in rows]
        if any(problems):
            errors = [
                {"index": i, "errors": [{"reason": "invalid", "message": p} if p else {"reason": "stopped"}]}
                for i, p in enumerate(problems)
            ]
            return web.json_response({"kind": "bigquery#tableDataInsertAllResponse", "insertErrors": errors})
        self.stored.extend(rows)
        return web.json_response({"kind": "bigquery#tableDataInsertAllResponse"})

    async def _start(self) -> tuple[web.AppRunner, str]:
        app = web.Application(client_max_size=4 * MAX_REQUEST)
        app.router.add_post("/bigquery/v2/projects/{p}/datasets/{d}/tables/{t}/insertAll", self.insert_all)
        runner, root = await on_loopback(app)
        return runner, root + "/bigquery/v2"

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        self._thread.start()
        runner, api_root = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        try:
            yield api_root
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


def _gcp_outputs(dataset: BigQueryDataset, table: BigQueryTable, api_root: str) -> ResourceOutputs:
    """What the gcp program exports for the two, pointed at the stand-in."""
    return ResourceOutputs(
        {
            dataset.primitive_id(): {"dataset_id": "wiki", "project": "my-project", "location": "US"},
            table.primitive_id(): {
                "engine": "bigquery",
                "table_id": table.table_id,
                "dataset_id": "wiki",
                "project": "my-project",
                "api_root": api_root,
            },
        },
        "gcp",
    )


def _hour(text: str, stat: str) -> dict[str, str]:
    return {"hour": f"2023-08-17T{text}:00+00:00", "stat": stat}


def test_rows_reach_insert_all_as_nested_json_with_bigquerys_values_inside() -> None:
    app, dataset, table = _flow()
    stand_in = InsertAll()
    with stand_in.serving() as api_root, TestClient(app, outputs=_gcp_outputs(dataset, table, api_root)) as client:
        response = client.post("/uploads", json={"csv": CSV})
        assert response.status_code == 200, response.text

    (body,) = stand_in.bodies
    assert body["skipInvalidRows"] is False and body["ignoreUnknownValues"] is False
    rows = {r["json"]["title"]: r["json"] for r in body["rows"]}
    assert rows["Python"] == {
        "date": "2023-08-17",
        "wiki": "en",
        "title": "Python",
        "daily_page_views": "200",
        "max_page_views_per_hour": _hour("10:00", "120"),  # a record is an object, INT64 a string in it too
        "min_page_views_per_hour": _hour("11:00", "80"),
        "hours": [_hour("10:00", "120"), _hour("11:00", "80")],  # a list of records is an array of objects
        "editors": ["ann", "bob"],
        "trend": {"slope": -40.0, "peaks": ["120", "80"]},
        "labels": '{"source":"csv"}',  # a JSON column is JSON text, as Google's client sends it
    }
    assert rows["Berlin"]["min_page_views_per_hour"] is None
    assert rows["Berlin"]["trend"] == {"slope": "NaN", "peaks": ["7"]}  # JSON has no NaN: Google's parser refuses it
    assert [r["title"] for r in stand_in.stored] == ["Python", "Berlin"]


def test_a_request_insert_all_refuses_outright_fails_alone_with_bigquerys_message() -> None:
    app, dataset, table = _flow()
    stand_in = InsertAll()
    huge = "x" * (MAX_REQUEST + 1)
    with stand_in.serving() as api_root:
        outputs = _gcp_outputs(dataset, table, api_root)
        with TestClient(app, outputs=outputs, max_body=4 * MAX_REQUEST) as client:
            refused = client.post("/uploads", json={"csv": CSV, "note": huge})
            fine = client.post("/uploads", json={"csv": CSV})
            bad_stat = client.post("/uploads", json={"csv": CSV.replace(",7,", ",7.5,")})

    assert refused.status_code == 422, refused.text
    assert "Request payload size exceeds the limit: 10485760 bytes." in refused.text
    assert fine.status_code == 200
    # BigQuery's INT64 takes no fraction, inside a record as at the top: refused before it is sent.
    assert bad_stat.status_code == 422 and "stat" in bad_stat.text and "7.5" in bad_stat.text, bad_stat.text
    assert [r["title"] for r in stand_in.stored] == ["Python", "Berlin"]


# -- local: the DuckDB stand-in ------------------------------------------------------------------
OLD_TABLE = (
    "CREATE TABLE page_views (date DATE NOT NULL, wiki VARCHAR NOT NULL, title VARCHAR NOT NULL, "
    "daily_page_views BIGINT NOT NULL, max_page_views_per_hour JSON NOT NULL, min_page_views_per_hour JSON, "
    "hours JSON NOT NULL, editors VARCHAR[], trend JSON NOT NULL, labels JSON NOT NULL)"
)
OLD_ROW = (
    "INSERT INTO page_views VALUES ('2023-08-16', 'fr', 'Paris', 5, "
    """'{"hour": "2023-08-16T09:00:00+00:00", "stat": 5}', NULL, """
    """'[{"hour": "2023-08-16T09:00:00+00:00", "stat": 5}]', ['dan'], '{"slope": 0.0, "peaks": [5]}', '{}')"""
)


def test_the_local_stand_in_nests_alike_and_the_same_unnest_sql_reads_it(tmp_path: Path) -> None:
    app, dataset, _ = _flow()
    provider = get_provider("local", tmp_path, "dev")
    made = provider.apply(provider.plan([dataset]))
    database = made[dataset.primitive_id()]["database"]
    with duckdb.connect(database) as connection:  # as an earlier version made the table: JSON columns
        connection.execute(OLD_TABLE)
        connection.execute(OLD_ROW)

    with pytest.raises(ApplyError) as refused:
        provider.apply(provider.plan(declared_primitives(app, "local")))
    message = str(refused.value)
    assert 'column hours is JSON, but its rows need STRUCT("hour" TIMESTAMP WITH TIME ZONE, stat BIGINT)[]' in message
    statements = [part for part in message.split("`")[1::2] if part.startswith("ALTER TABLE")]
    assert [s.split(" SET DATA TYPE ")[0] for s in statements] == [
        f'ALTER TABLE "page_views" ALTER "{name}"'
        for name in ("max_page_views_per_hour", "min_page_views_per_hour", "hours", "trend")
    ]
    with duckdb.connect(database) as connection:
        for statement in statements:
            connection.execute(statement)

    outputs = ResourceOutputs(provider.apply(provider.plan(declared_primitives(app, "local"))), "local")
    try:
        with TestClient(app, outputs=outputs) as client:
            assert client.post("/uploads", json={"csv": CSV}).status_code == 200
            # DuckDB alone would round 7.5 into the BIGINT; BigQuery refuses it, and so does its stand-in.
            bad_stat = client.post("/uploads", json={"csv": CSV.replace(",7,", ",7.5,")})
            assert bad_stat.status_code == 422 and "stat" in bad_stat.text, bad_stat.text
            assert client.get("/hours").json() == [
                {"title": "Berlin", "stat": 7},
                {"title": "Paris", "stat": 5},
                {"title": "Python", "stat": 80},
                {"title": "Python", "stat": 120},
            ]
            assert client.get("/tops").json() == [
                {"title": "Berlin", "top": 7, "bottom": None, "editor": "cem"},
                {"title": "Paris", "top": 5, "bottom": None, "editor": "dan"},
                {"title": "Python", "top": 120, "bottom": 80, "editor": "ann"},
                {"title": "Python", "top": 120, "bottom": 80, "editor": "bob"},
            ]
        with duckdb.connect(database, read_only=True) as connection:
            types = dict(
                connection.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'page_views'"
                ).fetchall()
            )
            (slope,) = connection.execute("SELECT trend.slope FROM page_views WHERE title = 'Berlin'").fetchone()
    finally:
        provider.destroy()
    assert types["hours"] == 'STRUCT("hour" TIMESTAMP WITH TIME ZONE, stat BIGINT)[]'
    assert types["trend"] == "STRUCT(slope DOUBLE, peaks BIGINT[])"
    assert (types["editors"], types["labels"]) == ("VARCHAR[]", "JSON")
    assert math.isnan(slope)
