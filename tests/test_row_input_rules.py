"""Rows are checked the way the sink's own engine checks them: a BigQuery table (and its local
DuckDB stand-in) reads what BigQuery's JSON input reads, a Cloud SQL table hands strings to
PostgreSQL, which reads them with its own input syntax; what the engine refuses is a 422 naming
the column and the value. The flows are written the way BuildFlow's walkthroughs wrote them."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime
import io
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Dict, List  # noqa: UP035 - as BuildFlow's samples annotate

import psycopg
import pytest
from support import cloud_sql_instance, on_loopback

from bfctl.providers.local import LocalProvider
from bfctl.providers.local.pubsub import MODE_VARIABLE
from bfctl.runtime.conversion import message_converter
from bfctl.runtime.sinks import writer_for
from bfctl.runtime.sources import Delivery
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.gcp import (
    BigQueryDataset,
    BigQueryTable,
    CloudSQLDatabase,
    CloudSQLTable,
    GCPPubSubSubscription,
    GCPPubSubTopic,
)
from buildflow.io.local import File
from buildflow.storage.duckdb_access import duckdb_connection
from buildflow.types.input_syntax import InputSyntax
from buildflow.types.portable import FileFormat
from buildflow.types.schema import RowConversionError, row_converter

UTC = datetime.UTC
WAIT = 30.0


@dataclasses.dataclass
class Typed:
    """One nullable column of each kind a value can be read into."""

    n: int | None = None
    f: float | None = None
    ok: bool | None = None
    at: datetime.datetime | None = None
    day: datetime.date | None = None
    raw: bytes | None = None
    name: str | None = None


def read(syntax: InputSyntax, field: str, value: Any) -> Any:
    return row_converter(Typed, syntax)({field: value})[field]


# -- BigQuery's JSON input, value by value ------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("n", "492235517438", 492235517438),
        ("n", "-7", -7),
        ("n", "+7", 7),
        ("n", "9223372036854775807", 2**63 - 1),
        ("n", 12.0, 12),
        ("f", "1.5", 1.5),
        ("f", "-2e3", -2000.0),
        ("f", ".5", 0.5),
        ("f", "Infinity", math.inf),
        ("f", "-Infinity", -math.inf),
        ("f", "inf", math.inf),
        ("ok", "true", True),
        ("ok", "FALSE", False),
        ("ok", "1", True),
        ("ok", "0", False),
        ("at", "2023-08-17T16:30:24-04:00", datetime.datetime(2023, 8, 17, 20, 30, 24, tzinfo=UTC)),
        ("at", "2023-08-17T16:30:24.37505-04:00", datetime.datetime(2023, 8, 17, 20, 30, 24, 375050, tzinfo=UTC)),
        ("at", "2023-08-17 16:30:24Z", datetime.datetime(2023, 8, 17, 16, 30, 24, tzinfo=UTC)),
        ("at", "2023-08-17 16:30:24", datetime.datetime(2023, 8, 17, 16, 30, 24, tzinfo=UTC)),
        ("at", "2023/8/17 6:30:24", datetime.datetime(2023, 8, 17, 6, 30, 24, tzinfo=UTC)),
        ("at", "2014-09-27 12:30:00.45-8:00", datetime.datetime(2014, 9, 27, 20, 30, 0, 450000, tzinfo=UTC)),
        ("at", "2014-09-27 12:30:00.123456 UTC", datetime.datetime(2014, 9, 27, 12, 30, 0, 123456, tzinfo=UTC)),
        ("at", "2014-09-27 12:30:00 America/Los_Angeles", datetime.datetime(2014, 9, 27, 19, 30, tzinfo=UTC)),
        ("at", "2023-08-17", datetime.datetime(2023, 8, 17, tzinfo=UTC)),
        ("at", 1692304224, datetime.datetime(2023, 8, 17, 20, 30, 24, tzinfo=UTC)),
        ("at", 1692304224.5, datetime.datetime(2023, 8, 17, 20, 30, 24, 500000, tzinfo=UTC)),
        ("day", "2023-08-17", datetime.date(2023, 8, 17)),
        ("day", "2023-8-7", datetime.date(2023, 8, 7)),
        ("raw", "aGVsbG8=", b"hello"),
    ],
)
def test_bigquery_reads_what_its_json_input_reads(field: str, value: Any, stored: Any) -> None:
    got = read(InputSyntax.BIGQUERY, field, value)
    assert got == stored and type(got) is type(stored)
    if isinstance(got, datetime.datetime):
        assert got.tzinfo is not None


def test_bigquery_reads_nan_for_float64() -> None:
    assert math.isnan(read(InputSyntax.BIGQUERY, "f", "NaN"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", "12.5"),
        ("n", 12.5),
        ("n", "1e3"),
        ("n", " 12"),
        ("n", ""),
        ("n", "9223372036854775808"),
        ("n", True),
        ("f", "1_000"),
        ("f", "one"),
        ("f", False),
        ("ok", "yes"),
        ("ok", "t"),
        ("ok", 1),
        ("at", "yesterday"),
        ("at", "2023-08-17T16:30"),
        ("at", "17/08/2023 16:30:24"),
        ("at", "2023-02-30 10:00:00"),
        ("at", "2023-08-17 16:30:24 Nowhere/Else"),
        ("at", True),
        ("day", "2023-08-17T00:00:00"),
        ("day", "08/17/2023"),
        ("day", datetime.datetime(2023, 8, 17, tzinfo=UTC)),
        ("raw", "not base64!"),
        ("raw", "aGVsbG8"),
    ],
)
def test_what_bigquery_refuses_is_refused_naming_the_column_the_value_and_what_it_takes(field: str, value: Any) -> None:
    with pytest.raises(RowConversionError) as refused:
        read(InputSyntax.BIGQUERY, field, value)
    message = str(refused.value)
    assert refused.value.field == field and repr(value)[:30] in message and "(BigQuery's " in message


def test_the_refusal_says_what_the_engine_takes() -> None:
    with pytest.raises(RowConversionError) as refused:
        read(InputSyntax.BIGQUERY, "n", "12.5")
    assert str(refused.value) == (
        "field `n`: expected an integer (BigQuery's INT64 takes an integer or a string of one), got str '12.5'"
    )


def test_postgres_gets_strings_as_text_and_other_sinks_keep_python_types() -> None:
    for field in ("n", "f", "ok", "at", "day", "raw"):
        assert read(InputSyntax.POSTGRES, field, " anything ") == " anything "  # PostgreSQL reads it
    with pytest.raises(RowConversionError, match=r"field `n`: .*PostgreSQL reads a bigint from text.*float 12.5"):
        read(InputSyntax.POSTGRES, "n", 12.5)
    with pytest.raises(RowConversionError, match="field `n`: expected an integer, got str '12'"):
        read(InputSyntax.PYTHON, "n", "12")
    assert read(InputSyntax.BIGQUERY, "n", "12") == 12


def test_a_repeated_column_reads_each_item() -> None:
    @dataclasses.dataclass
    class Tagged:
        counts: list[int]

    assert row_converter(Tagged, InputSyntax.BIGQUERY)(Tagged(["1", 2]))["counts"] == [1, 2]  # type: ignore[list-item]


def test_the_rules_are_the_sinks_own_and_chosen_when_its_writer_is_made(tmp_path: Path) -> None:
    dataset = BigQueryDataset("my-project", "analytics")
    table = BigQueryTable(dataset, "events").options(schema=Typed)
    outputs = {table.primitive_id(): {"engine": "duckdb", "database": str(tmp_path / "bq.duckdb"), "table": "t"}}
    stand_in = writer_for(table, None, outputs, tmp_path)
    file = writer_for(File(str(tmp_path / "out.json"), FileFormat.JSON), None, {}, tmp_path)
    gcp = writer_for(
        table, None, {table.primitive_id(): {"project": "p", "dataset_id": "d", "table_id": "p.d.t"}}, tmp_path
    )
    assert (stand_in.input_syntax, gcp.input_syntax, file.input_syntax) == (
        InputSyntax.BIGQUERY, InputSyntax.BIGQUERY, InputSyntax.JSON,
    )  # fmt: skip
    assert gcp.converter_for(Typed)(Typed(n="7"))["n"] == 7  # type: ignore[arg-type]


def test_on_gcp_int64_values_travel_as_strings_so_big_ones_keep_every_digit() -> None:
    """BigQuery may read a JSON number as a double: Google's client sends INT64 as a string."""
    from aiohttp import web

    @dataclasses.dataclass
    class Tweet:
        id: int
        replies: list[int]
        at: datetime.datetime

    table = BigQueryTable(BigQueryDataset("my-project", "social"), "tweets").options(schema=Tweet)
    received: list[Any] = []

    async def insert_all(request: web.Request) -> web.Response:
        received.extend(r["json"] for r in (await request.json())["rows"])
        return web.json_response({"kind": "bigquery#tableDataInsertAllResponse"})

    async def run() -> None:
        app = web.Application()
        app.router.add_post("/bigquery/v2/projects/{p}/datasets/{d}/tables/{t}/insertAll", insert_all)
        runner, root = await on_loopback(app)
        api_root = root + "/bigquery/v2"
        out = {"project": "my-project", "dataset_id": "social", "table_id": table.table_id, "api_root": api_root}
        writer = writer_for(table, None, {table.primitive_id(): out}, Path.cwd())
        convert = writer.converter_for(Tweet)
        await writer.start()
        await writer.write([convert(Tweet("9007199254740993", [2**53 + 1], "2023-08-17T16:30:24Z"))])  # type: ignore[arg-type]
        await writer.stop()
        await runner.cleanup()

    asyncio.run(run())
    assert received == [{"id": "9007199254740993", "replies": ["9007199254740993"], "at": "2023-08-17T16:30:24+00:00"}]


# -- a collector into a BigQuery table, on its local stand-in ---------------------------------
@dataclasses.dataclass
class PageViews:
    wiki: str
    title: str
    views: int
    datehour: datetime.datetime


@dataclasses.dataclass
class CsvUpload:
    text: str


def _csv(*rows: tuple[str, str, str, str]) -> dict[str, str]:
    lines = ["wiki,title,views,datehour", *(",".join(r) for r in rows)]
    return {"text": "\n".join(lines)}


@pytest.fixture(scope="module")
def bigquery_stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BigQueryTable, LocalProvider]]:
    dataset = BigQueryDataset("my-project", "walkthrough")
    table = BigQueryTable(dataset, "page_views").options(schema=PageViews)
    provider = LocalProvider(tmp_path_factory.mktemp("bigquery"), "dev")
    provider.apply(provider.plan([dataset, table]))
    yield table, provider
    provider.destroy()


def test_csv_strings_posted_to_a_collector_land_in_bigquery_as_int64_and_timestamp(
    bigquery_stand_in: tuple[BigQueryTable, LocalProvider],
) -> None:
    table, provider = bigquery_stand_in
    app = Flow()

    @app.collector("/views", method="POST", sink=table)
    def collect(upload: CsvUpload) -> List[PageViews]:  # noqa: UP006
        # As BuildFlow's CSV walkthrough: the CSV's strings go into the dataclass as they are.
        return [PageViews(**row) for row in csv.DictReader(io.StringIO(upload.text))]

    with TestClient(app, outputs=ResourceOutputs(provider.outputs())) as client:
        ok = client.post("/views", json=_csv(("en", "Main_Page", "492235517438", "2023-08-17T16:30:24-04:00")))
        assert ok.status_code == 200, ok.text
        bad_count = client.post("/views", json=_csv(("en", "Bad", "12.5", "2023-08-17T16:30:24Z")))
        bad_time = client.post("/views", json=_csv(("en", "Bad", "1", "yesterday")))

    assert bad_count.status_code == 422 and "`views`" in bad_count.json()["detail"]
    assert "str '12.5'" in bad_count.json()["detail"]
    assert bad_time.status_code == 422 and "`datehour`" in bad_time.json()["detail"]
    assert "str 'yesterday'" in bad_time.json()["detail"]
    database = provider.outputs()[table.primitive_id()]["database"]
    with duckdb_connection(Path(database)) as connection:
        stored = connection.execute(
            "SELECT title, views, typeof(views), epoch(datehour), typeof(datehour) FROM page_views"
        ).fetchall()
    at = datetime.datetime(2023, 8, 17, 20, 30, 24, tzinfo=UTC).timestamp()
    assert stored == [("Main_Page", 492235517438, "BIGINT", at, "TIMESTAMP WITH TIME ZONE")]


# -- a consumer of Pub/Sub messages into a BigQuery table (the taxi walkthrough) -----------------
@dataclasses.dataclass
class TaxiOutput:
    ride_id: str
    point_idx: int
    latitude: float
    longitude: float
    timestamp: datetime.datetime
    meter_reading: float
    meter_increment: float
    ride_status: str
    passenger_count: int


RIDES = [
    {
        "ride_id": f"ride-{i}",
        "point_idx": 2148 + i,
        "latitude": 40.74,
        "longitude": -73.98,
        "timestamp": f"2023-08-17T16:30:2{i}.37505-04:00",
        "meter_reading": 61,  # a JSON integer for a FLOAT64 column
        "meter_increment": 0.0287,
        "ride_status": "enroute",
        "passenger_count": 1,
    }
    for i in range(2)
]


def test_a_consumer_of_taxi_ride_messages_stores_them_in_bigquery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODE_VARIABLE, "log")
    topic = GCPPubSubTopic("my-project", "taxirides-realtime")
    subscription = GCPPubSubSubscription("my-project", "taxi_rides").options(topic=topic)
    table = BigQueryTable(BigQueryDataset("my-project", "taxi"), "rides").options(schema=TaxiOutput)
    provider = LocalProvider(tmp_path, "dev")
    provider.apply(provider.plan([topic, subscription, table.dataset, table]))
    outputs = ResourceOutputs(provider.outputs())

    async def publish() -> None:
        writer = writer_for(topic, None, outputs, tmp_path)
        await writer.start()
        await writer.write(RIDES)
        await writer.stop()

    asyncio.run(publish())
    seen: list[str] = []
    all_seen = threading.Event()
    app = Flow()
    app.manage(subscription, table)

    @app.consumer(source=subscription, sink=table)
    def process(element: Dict[str, Any]) -> TaxiOutput:  # noqa: UP006
        seen.append(element["ride_id"])
        if len(seen) >= len(RIDES):
            all_seen.set()
        return TaxiOutput(**element)

    with TestClient(app, outputs=outputs):
        assert all_seen.wait(WAIT), f"the consumer saw {seen} within {WAIT}s"
    database = provider.outputs()[table.primitive_id()]["database"]
    with duckdb_connection(Path(database)) as connection:
        stored = connection.execute(
            "SELECT ride_id, point_idx, epoch(timestamp), meter_reading FROM rides ORDER BY ride_id"
        ).fetchall()
    provider.destroy()
    first = datetime.datetime(2023, 8, 17, 20, 30, 20, 375050, tzinfo=UTC).timestamp()
    assert stored == [("ride-0", 2148, first, 61.0), ("ride-1", 2149, first + 1, 61.0)]
    # A handler taking the dataclass itself gets the timestamp read from its ISO string too.
    ride = message_converter(TaxiOutput)(
        Delivery(
            "ack",
            b'{"timestamp": "2023-08-17T16:30:24Z", "ride_id": "r", '
            b'"point_idx": 1, "latitude": 0, "longitude": 0, "meter_reading": 0, '
            b'"meter_increment": 0, "ride_status": "s", "passenger_count": 1}',
        )
    )
    assert ride.timestamp == datetime.datetime(2023, 8, 17, 16, 30, 24, tzinfo=UTC)


# -- a collector into a Cloud SQL table: PostgreSQL reads the strings ---------------------------
@dataclasses.dataclass
class Reading:
    sensor: str
    n: int
    ok: bool
    level: float
    at: datetime.datetime
    day: datetime.date


@dataclasses.dataclass
class RawReading:
    """What a form or a CSV file gives: every value a string."""

    sensor: str
    n: str
    ok: str
    level: str
    at: str
    day: str


@pytest.fixture(scope="module")
def cloud_sql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CloudSQLTable, ResourceOutputs, dict]]:
    project = tmp_path_factory.mktemp("cloud-sql")
    instance = cloud_sql_instance("readings-db")
    database = CloudSQLDatabase("plant", instance)
    table = CloudSQLTable(database, "readings").options(schema=Reading)
    provider = LocalProvider(project, "dev")
    outputs = provider.apply(provider.plan([instance, database, table]))
    out = outputs[database.primitive_id()]
    admin = next((project / ".buildflow").rglob("admin-password")).read_text().strip()
    dsn = {"host": out["host"], "port": out["port"], "dbname": "plant", "user": "buildflow_admin", "password": admin}
    yield table, ResourceOutputs(outputs, "local"), dsn
    provider.destroy()


def test_a_cloud_sql_table_takes_postgresql_input_syntax(
    cloud_sql: tuple[CloudSQLTable, ResourceOutputs, dict],
) -> None:
    table, outputs, dsn = cloud_sql
    app = Flow()

    @app.collector("/readings", method="POST", sink=table)
    def collect(raw: RawReading) -> Reading:
        return Reading(**dataclasses.asdict(raw))  # type: ignore[arg-type]  # strings, as read

    def post(client: TestClient, *values: str) -> Any:
        return client.post(
            "/readings", json=dict(zip(("sensor", "n", "ok", "level", "at", "day"), values, strict=True))
        )

    with TestClient(app, outputs=outputs) as client:
        for reading in [
            ("a", " 12 ", "yes", "NaN", "2023-08-17 16:30:24-04", "2023-8-7"),
            ("b", "-3", "t", "1e3", "2023-08-17T20:30:24Z", "2023-08-17"),
            ("c", "0", "off", "2.5", "2023-08-17T16:30:24.37505-04:00", "20230817"),
        ]:
            response = post(client, *reading)
            assert response.status_code == 200, response.text
        bad_n = post(client, "d", "12.5", "on", "1", "2023-08-17", "2023-08-17")
        bad_ok = post(client, "e", "1", "maybe", "1", "2023-08-17", "2023-08-17")

    assert bad_n.status_code == 422 and "column n" in bad_n.json()["detail"] and '"12.5"' in bad_n.json()["detail"]
    assert bad_ok.status_code == 422 and "column ok" in bad_ok.json()["detail"] and '"maybe"' in bad_ok.json()["detail"]
    with psycopg.connect(**dsn) as conn:
        stored = conn.execute("SELECT sensor, n, ok, level, at, day FROM readings ORDER BY sensor").fetchall()
    assert [r[:3] for r in stored] == [("a", 12, True), ("b", -3, True), ("c", 0, False)]
    assert math.isnan(stored[0][3]) and [r[3] for r in stored[1:]] == [1000.0, 2.5]
    assert [r[4] for r in stored] == [
        datetime.datetime(2023, 8, 17, 20, 30, 24, tzinfo=UTC),
        datetime.datetime(2023, 8, 17, 20, 30, 24, tzinfo=UTC),
        datetime.datetime(2023, 8, 17, 20, 30, 24, 375050, tzinfo=UTC),
    ]
    assert [r[5] for r in stored] == [datetime.date(2023, 8, 7), datetime.date(2023, 8, 17), datetime.date(2023, 8, 17)]


@dataclasses.dataclass
class RideOut:
    ride_id: int
    timestamp: datetime.datetime
    meter_reading: float


@pytest.mark.parametrize("file_format", [FileFormat.JSON, FileFormat.PARQUET])
def test_a_file_sink_writes_rows_made_from_json_as_buildflow_wrote_them(
    tmp_path: Path, file_format: FileFormat
) -> None:
    """BuildFlow's Pub/Sub-to-Parquet example built its row with ``RideOut(**element)``, the
    timestamp still ISO text: BuildFlow wrote it unchecked; here it is read as a JSON reader
    would, and what no reader would take is refused naming the field."""
    out = File(str(tmp_path / "rides" / "rides.out"), file_format)
    app = Flow()

    @app.collector("/rides", method="POST", sink=out)
    def ride(element: Dict[str, Any]) -> RideOut:  # noqa: UP006 - as BuildFlow samples annotate
        return RideOut(**element)

    with TestClient(app) as client:
        answer = client.post(
            "/rides", json={"ride_id": "7", "timestamp": "2023-08-17T16:30:24-04:00", "meter_reading": 12.5}
        )
        assert answer.json() == {"success": True}, answer.text
        refused = client.post("/rides", json={"ride_id": 8, "timestamp": "yesterday", "meter_reading": 1.0})
        assert refused.status_code == 422 and "timestamp" in refused.text and "yesterday" in refused.text

    [written] = list((tmp_path / "rides").iterdir())
    if file_format is FileFormat.PARQUET:
        import pyarrow.parquet as pq

        table = pq.read_table(written)
        assert str(table.schema.field("timestamp").type).startswith("timestamp")
        [row] = table.to_pylist()
    else:
        import json

        [row] = [json.loads(line) for line in written.read_text().splitlines()]
        row["timestamp"] = datetime.datetime.fromisoformat(row["timestamp"])
    assert row["ride_id"] == 7
    assert row["timestamp"] == datetime.datetime(2023, 8, 17, 20, 30, 24, tzinfo=UTC)
