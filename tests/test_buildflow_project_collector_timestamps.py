"""BuildFlow 0.3 projects shaped like the published collector starter: an HTTP collector whose
request dataclass has a ``datetime`` field, averaging readings into a BigQuery table (its DuckDB
stand-in locally). BuildFlow read request bodies with pydantic, so a client could send the time
as an ISO string or as a Unix timestamp (seconds, or milliseconds past 2e10, as a number or a
string of digits)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
from support import make_project, run_bfctl, serving

METER = """
import dataclasses
import datetime
from typing import List

from buildflow import Flow
from buildflow.io.gcp import BigQueryDataset, BigQueryTable


@dataclasses.dataclass
class Reading:
    meter: str
    taken_at: datetime.datetime
    samples: List[float]


@dataclasses.dataclass
class MeterRow:
    meter: str
    taken_at: datetime.datetime
    mean: float


readings = BigQueryDataset(project_id="meter-project", dataset_name="meters")
means = BigQueryTable(dataset=readings, table_name="means").options(schema=MeterRow)

app = Flow()
app.manage(readings, means)


@app.collector("/readings", "POST", sink=means)
def average(reading: Reading) -> MeterRow:
    return MeterRow(reading.meter, reading.taken_at, sum(reading.samples) / len(reading.samples))
"""

NOON = dt.datetime(2023, 11, 29, 12, 0, tzinfo=dt.UTC)


def test_a_collector_reads_unix_timestamps_into_datetime_fields(
    tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]
) -> None:
    project = make_project(
        tmp_path / "meters", {"main.py": METER, "buildflow.yaml": "app: meters\nentry_point: main:app\n"}
    )
    destroyed.append(project)
    assert run_bfctl(["apply", "--yes"], project, bfctl_env)[0] == 0
    seconds = int(NOON.timestamp())
    sent = {
        "iso": "2023-11-29T12:00:00Z",
        "seconds": seconds,
        "fraction": seconds + 0.25,
        "millis": seconds * 1000,
        "digits": str(seconds),
    }
    with serving(["--port", "0", "--no-access-log"], project, bfctl_env) as served:
        answers = {
            meter: served.call(
                "POST", "/readings", json.dumps({"meter": meter, "taken_at": at, "samples": [1, 3]}).encode()
            )
            for meter, at in sent.items()
        }
        refused = served.call(
            "POST", "/readings", json.dumps({"meter": "flag", "taken_at": True, "samples": [1]}).encode()
        )
        too_late = served.call(
            "POST", "/readings", json.dumps({"meter": "far", "taken_at": 1e20, "samples": [1]}).encode()
        )
        assert served.stop() == 0

    assert answers == dict.fromkeys(sent, (200, '{"success":true}'))
    assert refused[0] == too_late[0] == 422, (refused, too_late)
    assert json.loads(refused[1])["detail"][0]["loc"] == ["body", "taken_at"]
    database = project / ".buildflow/local/dev/bigquery/meter-project.meters.duckdb"
    with duckdb.connect(str(database), read_only=True) as db:
        stored = dict(db.execute("SELECT meter, taken_at FROM means").fetchall())
    assert {meter: at.astimezone(dt.UTC) for meter, at in stored.items()} == {
        **dict.fromkeys(sent, NOON),
        "fraction": NOON + dt.timedelta(seconds=0.25),
    }
