"""BuildFlow 0.3 projects shaped like its documentation's walkthroughs: spreadsheets uploaded to
a bucket summed up into a BigQuery table whose rows hold nested records, and a watched folder
whose files become DuckDB rows holding lists of records. The plan names the nested types those
tables get, as BigQuery and DuckDB will show them."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import duckdb
import pytest
from support import make_project, run_bfctl, serving, wait_until

from bfctl.runtime.sinks.base import RowsRejected
from bfctl.runtime.sinks.pubsub import TopicLog

SALES = """
import csv
import dataclasses
import datetime
import io
from typing import List

import buildflow
from buildflow.io.gcp import BigQueryDataset, BigQueryTable, GCSBucket, GCSFileChangeStream
from buildflow.types.gcp import GCSFileChangeEvent


@dataclasses.dataclass
class Peak:
    at: datetime.datetime
    amount: int


@dataclasses.dataclass
class StoreDay:
    day: datetime.date
    store: str
    total: int
    best_hour: Peak
    hours: List[Peak]


uploads = GCSBucket(project_id="shop-analytics", bucket_name="till-exports").options(
    force_destroy=True, bucket_region="US"
)
exports = GCSFileChangeStream(gcs_bucket=uploads)
dataset = BigQueryDataset(project_id="shop-analytics", dataset_name="sales")
store_days = BigQueryTable(dataset=dataset, table_name="store_days").options(
    destroy_protection=False, schema=StoreDay
)

app = buildflow.Flow(flow_options=buildflow.FlowOptions(require_confirmation=False))
app.manage(uploads, exports, dataset, store_days)


@app.consumer(source=exports, sink=store_days)
def summarise(event: GCSFileChangeEvent) -> List[StoreDay]:
    days = {}
    for line in csv.DictReader(io.StringIO(event.blob.decode())):
        at = datetime.datetime.strptime(line["hour"], "%Y-%m-%d %H:%M:%S %Z")
        peak = Peak(at, int(line["amount"]))
        key = (at.date(), line["store"])
        if key not in days:
            days[key] = StoreDay(at.date(), line["store"], 0, peak, [])
        day = days[key]
        day.total += peak.amount
        day.hours.append(peak)
        if peak.amount > day.best_hour.amount:
            day.best_hour = peak
    return list(days.values())
"""

SCANS = """
import dataclasses
from typing import List

from buildflow import Flow
from buildflow.io.duckdb import DuckDBTable
from buildflow.io.local import LocalFileChangeStream
from buildflow.types.local import LocalFileChangeEvent


@dataclasses.dataclass
class Word:
    text: str
    count: int


@dataclasses.dataclass
class Scan:
    name: str
    words: List[Word]


app = Flow()


@app.consumer(
    source=LocalFileChangeStream(file_path="./scans"),
    sink=DuckDBTable(database="scans.duckdb", table="scanned"),
)
def read_scan(event: LocalFileChangeEvent) -> Scan:
    text = event.blob.decode().split()
    return Scan(event.file_path, [Word(w, text.count(w)) for w in sorted(set(text))])
"""


def _schema(plan: str) -> list[str]:
    """The ``schema:`` property of the one table in a plan."""
    [line] = [line for line in plan.splitlines() if line.strip().startswith("schema:")]
    return list(ast.literal_eval(line.split(":", 1)[1].strip()))


def test_plan_names_bigquery_records_of_nested_dataclasses(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = make_project(tmp_path / "sales", {"main.py": SALES})
    code, out = run_bfctl(["plan", "main:app"], project, bfctl_env)
    assert code == 0, out
    assert _schema(out) == [
        "day DATE",
        "store STRING",
        "total INTEGER",
        "best_hour RECORD(at TIMESTAMP, amount INTEGER)",
        "hours RECORD(at TIMESTAMP, amount INTEGER) REPEATED",
    ]


def test_plan_names_duckdb_struct_lists(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = make_project(tmp_path / "scans", {"main.py": SCANS})
    code, out = run_bfctl(["plan", "main:app"], project, bfctl_env)
    assert code == 0, out
    assert _schema(out) == ["name STRING", 'words STRUCT("text" VARCHAR, "count" BIGINT)[]']


def test_uploaded_spreadsheet_becomes_nested_rows(
    tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]
) -> None:
    """The walkthrough's loop: apply, serve, drop a CSV in the bucket, read the table."""
    project = make_project(tmp_path / "sales", {"main.py": SALES})
    destroyed.append(project)
    code, out = run_bfctl(["apply", "--yes", "main:app"], project, bfctl_env)
    assert code == 0, out
    bucket = project / ".buildflow/local/dev/gcs/till-exports"
    database = project / ".buildflow/local/dev/bigquery/shop-analytics.sales.duckdb"

    def rows() -> list[tuple]:
        try:
            with duckdb.connect(str(database), read_only=True) as db:
                query = "SELECT store, total, best_hour.amount, len(hours) FROM store_days ORDER BY store"
                return db.sql(query).fetchall()
        except duckdb.IOException:  # the server holds the file for a moment
            return []

    with serving(["--port", "0", "main:app"], project, bfctl_env) as server:
        (bucket / "monday.csv").write_text(
            "hour,store,amount\n"
            "2024-03-04 09:00:00 UTC,north,120\n"
            "2024-03-04 10:00:00 UTC,north,340\n"
            "2024-03-04 09:00:00 UTC,south,75\n",
            encoding="utf-8",
        )
        wait_until(lambda: len(rows()) == 2)
        assert server.stop() == 0
    assert rows() == [("north", 460, 340, 2), ("south", 75, 75, 1)]


HOOKS = """
from buildflow import Flow
from buildflow.io.gcp import GCPPubSubTopic
from buildflow.io.local import File, Pulse
from buildflow.types.portable import FileFormat

app = Flow()


class Greeting:
    def __init__(self, name: str):
        self.name = name

    def to_json(self):
        return {"greeting": "hi " + self.name}


class Beacon:
    def __init__(self, name: str):
        self.name = name

    def to_bytes(self):
        return ("beacon:" + self.name).encode()


@app.consumer(
    source=Pulse(["ada"], pulse_interval_seconds=0.2),
    sink=File(file_path="greetings.json", file_format=FileFormat.JSON),
)
async def greet(name: str) -> Greeting:
    return Greeting(name)


@app.consumer(
    source=Pulse(["lin"], pulse_interval_seconds=0.2),
    sink=GCPPubSubTopic(project_id="beacons-proj", topic_name="beacons"),
)
def beacon(name: str) -> Beacon:
    return Beacon(name)


@app.consumer(
    source=Pulse(["raw"], pulse_interval_seconds=0.2),
    sink=GCPPubSubTopic(project_id="beacons-proj", topic_name="raw"),
)
def raw(name: str) -> bytes:
    return name.encode() + b"!"
"""


def test_to_json_rows_fill_a_file_and_to_bytes_messages_go_as_made(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """A class with ``to_json`` (not a dataclass) is a row of a JSON file, and one with
    ``to_bytes`` (or ``bytes`` themselves) a message of exactly those bytes, as BuildFlow's
    converters made them."""
    project = make_project(tmp_path / "hooks", {"main.py": HOOKS})
    env = {**bfctl_env, "BFCTL_LOCAL_PUBSUB": "log"}
    log = project / ".buildflow/local/dev/pubsub/beacons-proj/beacons.jsonl"
    raw = log.with_name("raw.jsonl")

    def greetings() -> list[str]:
        return [line for f in project.glob("greetings-*.json") for line in f.read_text().splitlines()]

    with serving(["--port", "0", "main:app"], project, env) as server:
        wait_until(lambda: bool(greetings()) and all(f.exists() and f.read_bytes().endswith(b"\n") for f in (log, raw)))
        assert server.stop() == 0, server.output
    assert set(greetings()) == {'{"greeting":"hi ada"}'}
    assert set(log.read_bytes().splitlines()) == {b"beacon:lin"}
    assert set(raw.read_bytes().splitlines()) == {b"raw!"}


def test_topic_log_refuses_a_message_holding_a_newline(tmp_path: Path) -> None:
    """The log keeps a message a line: bytes with a newline would come back as two messages."""
    log = TopicLog(tmp_path / "beacons.jsonl")

    async def publish() -> None:
        await log.open()
        try:
            await log.publish([b"first", b"two\nlines"])
        finally:
            await log.close()

    with pytest.raises(RowsRejected, match="newline") as refused:
        asyncio.run(publish())
    assert refused.value.indexes == [1]
    assert log.path.read_bytes() == b""
