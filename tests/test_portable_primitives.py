"""Portable primitives (``buildflow.io.portable``) on both targets.

Locally: applied as their stand-ins with their outputs under the portable's id too, and a real
``bfctl serve`` writing into a portable Topic, Bucket and Queue, a consumer pulling the Queue
and another reading a portable FileChangeStream. On gcp: what the mapping makes, and a plan
through the CLI with the stand-in ``pulumi``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
from fakes import pulumi_path
from support import bfctl_run, serving, wait_until, write

from bfctl.providers.local import LocalProvider
from bfctl.providers.portables import to_gcp
from bfctl.runtime.app import FlowApp
from bfctl.runtime.errors import StartupError
from buildflow import Flow
from buildflow.io.gcp import (
    BigQueryDataset,
    BigQueryTable,
    GCPPubSubSubscription,
    GCPPubSubTopic,
    GCSBucket,
    GCSFileChangeStream,
)
from buildflow.io.portable import AnalysisTable, Bucket, FileChangeStream, Queue, Topic
from buildflow.storage.engines import Engine
from buildflow.types.gcp import GCSChangeStreamEventType
from buildflow.types.portable import FileFormat, PortableFileChangeEventType

FLOW = """
import dataclasses

from buildflow import Flow
from buildflow.io.local import File
from buildflow.io.portable import Bucket, FileChangeStream, Queue, Topic
from buildflow.types.portable import FileChangeEvent, FileFormat

app = Flow()
events = Topic("events")
reports = Bucket("reports", "rows/events.json", FileFormat.JSON)
jobs = Queue("jobs").options(ack_deadline_seconds=30)
inbox = FileChangeStream("inbox")
app.manage(events, reports, jobs, inbox)


@dataclasses.dataclass
class Event:
    n: int


@dataclasses.dataclass
class Arrival:
    name: str
    text: str


@app.collector("/events", method="POST", sink=events)
def to_topic(event: Event) -> Event:
    return event


@app.collector("/reports", method="POST", sink=reports)
def to_bucket(event: Event) -> Event:
    return event


@app.collector("/jobs", method="POST", sink=jobs)
def to_queue(event: Event) -> Event:
    return event


@app.consumer(source=jobs, sink=File("done/jobs.csv", FileFormat.CSV))
def work(job: Event) -> Event:
    return Event(job.n * 10)


@app.consumer(source=inbox, sink=File("done/arrivals.csv", FileFormat.CSV))
def arrived(event: FileChangeEvent) -> Arrival:
    return Arrival(event.file_path.rsplit("/", 1)[-1], event.blob.decode())
"""


@dataclasses.dataclass
class Score:
    player: str
    points: int


def csv_rows(folder: Path, pattern: str) -> list[dict[str, str]]:
    return [row for path in sorted(folder.glob(pattern)) for row in csv.DictReader(path.open())]


def test_local_apply_records_each_portable_under_its_own_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BFCTL_LOCAL_PUBSUB", "log")
    table = AnalysisTable("scores").options(schema=Score)
    portables = [Topic("events"), Queue("jobs"), Bucket("reports"), FileChangeStream("inbox"), table]
    provider = LocalProvider(tmp_path)
    plan = provider.plan(portables)
    assert [(c.resource_type, c.resource_id, c.action) for c in plan.changes] == [
        ("gcp.pubsub.Topic", "projects/bfctl-local/topics/events", "create"),
        ("gcp.pubsub.Topic", "projects/bfctl-local/topics/jobs", "create"),
        ("gcp.pubsub.Subscription", "bfctl-local/jobs", "create"),
        ("gcp.storage.Bucket", "gcs://reports", "create"),
        ("local.FileChangeStream", f"file-changes:{Path.cwd() / 'inbox'}", "create"),
        ("portable.AnalysisTable", "analysis_table:scores", "create"),
    ]
    outputs = provider.apply(plan)

    assert outputs["topic:events"] == outputs["projects/bfctl-local/topics/events"]
    assert outputs["topic:events"]["engine"] == Engine.LOG
    assert outputs["bucket:reports"]["engine"] == Engine.FOLDER
    assert outputs["bucket:reports"] == outputs["gcs://reports"]
    assert outputs["file-change-stream:inbox"]["engine"] == Engine.WATCH
    # a queue is its topic and its subscription: the subscription's record, and the topic's log
    queue, subscription = outputs["queue:jobs"], outputs["bfctl-local/jobs"]
    assert queue == {**outputs["projects/bfctl-local/topics/jobs"], **subscription}
    assert queue["log"] == outputs["projects/bfctl-local/topics/jobs"]["path"]
    assert provider.outputs() == outputs
    assert not provider.plan(portables).has_changes

    provider.destroy()
    assert provider.outputs() == {}


def test_a_topic_and_a_queue_of_one_name_share_the_topic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BFCTL_LOCAL_PUBSUB", "log")
    provider = LocalProvider(tmp_path)
    outputs = provider.apply(provider.plan([Topic("jobs"), Queue("jobs")]))
    topic = outputs["projects/bfctl-local/topics/jobs"]
    assert outputs["topic:jobs"] == topic
    assert outputs["queue:jobs"] == {**topic, **outputs["bfctl-local/jobs"]}


def test_a_consumer_of_a_topic_is_refused_with_what_to_use() -> None:
    flow = Flow()

    @flow.consumer(source=Topic("events"))
    def read(message: bytes) -> None:
        return None

    with pytest.raises(StartupError, match=r"a portable Topic is written to, not read; consume a Queue\('events'\)"):
        FlowApp(flow)


def test_serve_writes_into_portables_and_consumes_them(
    tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]
) -> None:
    write(tmp_path / "main.py", FLOW)
    destroyed.append(tmp_path)  # serving started the bucket's emulator
    (tmp_path / "inbox").mkdir()
    env = {**bfctl_env, "BFCTL_LOCAL_PUBSUB": "log"}
    with serving(["main:app", "--apply", "--port", "0", "--no-access-log"], tmp_path, env) as server:
        for n in range(3):
            for route in ("/events", "/reports", "/jobs"):
                assert server.call("POST", route, json.dumps({"n": n}).encode())[0] == 200
        (tmp_path / "inbox" / "hello.txt").write_text("hi there")

        done = tmp_path / "done"

        def consumed() -> bool:
            """every job and the file were consumed"""
            return len(csv_rows(done, "jobs*.csv")) == 3 and len(csv_rows(done, "arrivals*.csv")) == 1

        wait_until(consumed)
        assert server.stop() == 0

    stack = tmp_path / ".buildflow" / "local" / "dev"
    topic_log = stack / "pubsub" / "bfctl-local" / "events.jsonl"
    assert sorted(json.loads(line)["n"] for line in topic_log.read_text().splitlines()) == [0, 1, 2]
    objects = sorted((stack / "gcs" / "reports" / "rows").iterdir())
    assert sorted(json.loads(line)["n"] for o in objects for line in o.read_text().splitlines()) == [0, 1, 2]
    assert sorted(int(row["n"]) for row in csv_rows(tmp_path / "done", "jobs*.csv")) == [0, 10, 20]
    assert csv_rows(tmp_path / "done", "arrivals*.csv") == [{"name": "hello.txt", "text": "hi there"}]
    for written in objects:  # moved away, as destroy asks of a bucket that holds objects
        written.unlink()


QUEUE_FLOW = """
import dataclasses

from buildflow import Flow
from buildflow.io.local import File
from buildflow.io.portable import Queue
from buildflow.types.portable import FileFormat

app = Flow()
jobs = Queue("jobs")
app.manage(jobs)


@dataclasses.dataclass
class Job:
    n: int


@app.collector("/jobs", method="POST", sink=jobs)
def enqueue(job: Job) -> Job:
    return job


@app.consumer(source=jobs, sink=File("done/jobs.csv", FileFormat.CSV))
def work(job: Job) -> Job:
    return Job(job.n + 100)
"""


def test_a_queue_on_the_pubsub_emulator(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", QUEUE_FLOW)
    env = {**bfctl_env, "BFCTL_LOCAL_PUBSUB": "emulator"}
    with serving(["main:app", "--apply", "--port", "0", "--no-access-log"], tmp_path, env) as server:
        for n in range(5):
            assert server.call("POST", "/jobs", json.dumps({"n": n}).encode())[0] == 200

        def consumed() -> bool:
            """every job was pulled from the emulator's subscription and written"""
            return len(csv_rows(tmp_path / "done", "jobs*.csv")) == 5

        wait_until(consumed)
        assert server.stop() == 0
    assert sorted(int(row["n"]) for row in csv_rows(tmp_path / "done", "jobs*.csv")) == [100, 101, 102, 103, 104]
    assert bfctl_run(["destroy", "main:app", "--yes"], tmp_path, env).returncode == 0  # stops the emulator


def test_gcp_mapping_makes_ordinary_gcp_primitives() -> None:
    def made(portable: object) -> list[tuple[type, str, tuple[str, ...]]]:
        return [(type(p), p.primitive_id(), p.stands_for) for p in to_gcp(portable, "my-project", "europe-west1")]  # type: ignore[arg-type]  # a primitive

    assert made(Topic("events")) == [(GCPPubSubTopic, "projects/my-project/topics/events", ("topic:events",))]
    assert made(Queue("jobs")) == [
        (GCPPubSubTopic, "projects/my-project/topics/jobs", ("queue:jobs",)),
        (GCPPubSubSubscription, "my-project/jobs", ("queue:jobs",)),
    ]
    assert made(Bucket("reports")) == [(GCSBucket, "gcs://reports", ("bucket:reports",))]
    assert made(FileChangeStream("uploads")) == [
        (GCSBucket, "gcs://uploads", ()),
        (GCSFileChangeStream, "gcs://uploads/notifications", ("file-change-stream:uploads",)),
    ]
    assert made(AnalysisTable("scores")) == [
        (BigQueryDataset, "my-project.buildflow", ()),
        (BigQueryTable, "my-project.buildflow.scores", ("analysis_table:scores",)),
    ]

    subscription = to_gcp(Queue("jobs").options(ack_deadline_seconds=30, batch_size=10), "my-project", "eu")[1]
    assert isinstance(subscription, GCPPubSubSubscription)
    assert (subscription.ack_deadline_seconds, subscription.batch_size) == (30, 10)
    assert subscription.topic == GCPPubSubTopic("my-project", "jobs")

    bucket = to_gcp(Bucket("reports", "rows/a.csv", FileFormat.CSV), "my-project", "europe-west1")[0]
    assert isinstance(bucket, GCSBucket)
    assert (bucket.bucket_region, bucket.file_path, bucket.file_format) == (
        "europe-west1",
        "rows/a.csv",
        FileFormat.CSV,
    )
    kept = to_gcp(Bucket("reports").options(bucket_region="EU"), "my-project", "europe-west1")[0]
    assert isinstance(kept, GCSBucket) and kept.bucket_region == "EU"

    deleted = FileChangeStream("uploads", [PortableFileChangeEventType.DELETED])
    stream = to_gcp(deleted, "my-project", "europe-west1")[1]
    assert isinstance(stream, GCSFileChangeStream)
    assert stream.event_types == (GCSChangeStreamEventType.OBJECT_DELETE,)


def test_portable_names_are_checked_by_the_strictest_target() -> None:
    from buildflow.io.primitive import PrimitiveValidationError

    with pytest.raises(PrimitiveValidationError, match=r"^Topic: topic_id 'no' is not a valid Pub/Sub topic name"):
        Topic("no")
    with pytest.raises(PrimitiveValidationError, match=r"^Bucket: "):
        Bucket("Not A Bucket")
    with pytest.raises(PrimitiveValidationError, match=r"^Queue: queue_id 'q' is not a valid"):
        Queue("q")
    with pytest.raises(PrimitiveValidationError, match=r"^Queue: ack_deadline_seconds"):
        Queue("jobs").options(ack_deadline_seconds=5)
    with pytest.raises(PrimitiveValidationError, match=r"^FileChangeStream: event_types"):
        FileChangeStream("inbox", [PortableFileChangeEventType.UNKNOWN])


GCP_FLOW = """
from buildflow import Flow
from buildflow.io.portable import AnalysisTable, Bucket, FileChangeStream, Queue, Topic

app = Flow()
app.manage(Topic("events"), Queue("jobs"), Bucket("reports"), FileChangeStream("uploads"), AnalysisTable("scores"))
"""


def test_gcp_plan_makes_the_portables_in_the_stacks_project(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", GCP_FLOW)
    # the stand-in engine reports no steps: every declared primitive is listed, as unchanged
    preview = {"events": [{"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {}}}]}
    scenario = write(tmp_path / "scenario.json", json.dumps({"version": "3.200.0", "preview": preview}))
    env = {
        **bfctl_env,
        "PATH": pulumi_path(tmp_path / "bin"),
        "PULUMI_CONFIG_PASSPHRASE": "a passphrase",
        "FAKE_PULUMI_SCENARIO": str(scenario),
        "FAKE_PULUMI_LOG": str(tmp_path / "pulumi-calls.jsonl"),
    }
    args = ["plan", "main:app", "--target", "gcp", "--gcp-project", "my-project", "--gcp-region", "europe-west1"]
    result = bfctl_run([*args, "--json"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    changes = [(c["resource_type"], c["resource_id"]) for c in json.loads(result.stdout)["resources"]]
    assert changes == [
        ("gcp.pubsub.Topic", "projects/my-project/topics/events"),
        ("gcp.pubsub.Topic", "projects/my-project/topics/jobs"),
        ("gcp.pubsub.Subscription", "my-project/jobs"),
        ("gcp.storage.Bucket", "gcs://reports"),
        ("gcp.storage.Bucket", "gcs://uploads"),
        ("gcp.storage.Notification", "gcs://uploads/notifications"),
        ("gcp.bigquery.Dataset", "my-project.buildflow"),
        ("gcp.bigquery.Table", "my-project.buildflow.scores"),
    ]
    calls = [json.loads(line)["args"] for line in (tmp_path / "pulumi-calls.jsonl").read_text().splitlines()]
    assert any(call[:1] == ["preview"] for call in calls)


TOPIC_FLOW = """
from buildflow import Flow
from buildflow.io.portable import Topic

app = Flow()
app.manage(Topic("events"))
"""


def _topic_step(kind: str) -> dict[str, object]:
    """An engine event creating the Pulumi topic of ``Topic("events")`` in my-project."""
    urn = "urn:pulumi:dev::portables::gcp:pubsub/topic:Topic::projects/my-project/topics/events"
    state = {"type": "gcp:pubsub/topic:Topic", "urn": urn, "custom": True, "inputs": {"name": "events"}, "outputs": {}}
    return {kind: {"metadata": {"op": "create", "urn": urn, "type": state["type"], "new": state}, "planning": True}}


def test_gcp_apply_records_a_portables_outputs_under_its_id(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", TOPIC_FLOW)
    summary = {"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {"create": 1}}}
    exported = {"topic_id": "projects/my-project/topics/events", "topic_name": "events", "project": "my-project"}
    scenario = {
        "version": "3.200.0",
        "preview": {"events": [_topic_step("resourcePreEvent"), summary]},
        "up": {"events": [_topic_step("resourcePreEvent"), _topic_step("resOutputsEvent"), summary]},
        "outputs": {"projects/my-project/topics/events": exported},
    }
    env = {
        **bfctl_env,
        "PATH": pulumi_path(tmp_path / "bin"),
        "PULUMI_CONFIG_PASSPHRASE": "a passphrase",
        "FAKE_PULUMI_SCENARIO": str(write(tmp_path / "scenario.json", json.dumps(scenario))),
    }
    location = ["--gcp-project", "my-project", "--gcp-region", "europe-west1"]
    result = bfctl_run(["apply", "main:app", "--target", "gcp", "--yes", *location], tmp_path, env)
    assert result.returncode == 0, result.stderr

    from bfctl.providers.gcp.provider import GCPProvider

    outputs = GCPProvider(tmp_path, project="my-project", region="europe-west1").outputs()
    assert outputs["topic:events"] == outputs["projects/my-project/topics/events"] == exported
