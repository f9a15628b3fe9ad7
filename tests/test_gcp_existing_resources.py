"""What a BuildFlow project uses on gcp without passing it to ``app.manage(...)`` exists already:
the stack does not make it, the plan says it is expected, the service is given its outputs from
its names and its account the roles the flow needs on it. The program runs under Pulumi's mocks;
the plan through the CLI with the stand-in ``pulumi``."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("pulumi_gcp")

from fakes import pulumi_env
from gcp_mocks import RecordingMonitor, run_program
from support import bfctl_run, make_project

from bfctl.infra import deploy_request, outputs_for_serving, planned_primitives
from bfctl.providers.gcp.provider import GCPProvider
from bfctl.runtime.sinks import writer_for
from bfctl.runtime.sources import reader_for
from buildflow.dependencies import flow_dependencies
from buildflow.deployed import OUTPUTS_ENV

IMAGE = "us-central1-docker.pkg.dev/my-project/bfctl/clicks@sha256:" + "ab" * 32
TABLE, DATASET, SUBSCRIPTION = "my-project.analytics.clicks", "my-project.analytics", "my-project/clicks-sub"
TOPIC = "projects/pubsub-public-data/topics/clickstream"
REPORTS, UPLOADS = "gcs://my-reports", "gcs://my-uploads"
GCP = ("--target", "gcp", "--gcp-project", "my-project", "--gcp-region", "us-central1")

#: Written as BuildFlow's users wrote their flows: only the uploads bucket is passed to manage().
FLOW = """\
import dataclasses
from typing import Any, Dict

from buildflow import Flow
from buildflow.dependencies.bucket import BucketDependencyBuilder
from buildflow.io.gcp import BigQueryDataset, BigQueryTable, GCPPubSubSubscription, GCPPubSubTopic, GCSBucket


@dataclasses.dataclass
class Click:
    page: str
    user: str


app = Flow()
clicks = BigQueryTable(BigQueryDataset(project_id="my-project", dataset_name="analytics"), table_name="clicks")
subscription = GCPPubSubSubscription(project_id="my-project", subscription_name="clicks-sub").options(
    topic=GCPPubSubTopic(project_id="pubsub-public-data", topic_name="clickstream")
)
uploads = GCSBucket(project_id="my-project", bucket_name="my-uploads")
Reports = BucketDependencyBuilder(GCSBucket(project_id="my-project", bucket_name="my-reports"))
Uploads = BucketDependencyBuilder(uploads)
app.manage(uploads)


@app.collector(route="/clicks", method="POST", sink=clicks)
def collect(click: Click) -> Click:
    return click


@app.consumer(source=subscription, sink=clicks)
def store(message: Dict[str, Any]) -> Click:
    return Click(**message)


service = app.service()


@service.endpoint("/reports", method="GET")
def reports(reports: Reports, uploads: Uploads) -> list:
    return [blob.name for blob in reports.bucket.list_blobs()]
"""
MANAGED_TABLE = FLOW + "\napp.manage(clicks)\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(
        tmp_path / "clicks",
        {"main.py": FLOW, "managed.py": MANAGED_TABLE, "pyproject.toml": '[tool.buildflow]\napp = "main:app"\n'},
    )


def load(source: str, project: Path) -> types.SimpleNamespace:
    """The flow of ``source``, imported from a file of ``project`` as a module of its own."""
    name = f"flow_{hashlib.sha256(source.encode()).hexdigest()[:12]}"
    path = project / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return types.SimpleNamespace(flow=module.app, target=f"{name}:app")


def deployed(source: str, project: Path) -> tuple[list[Any], list[Any], Any]:
    """What ``bfctl apply --target gcp`` gives Pulumi for the flow: its stack's primitives, those it
    expects to exist, and the deployment."""
    loaded = load(source, project)
    provider = GCPProvider(project, project="my-project", region="us-central1", deploy=deploy_request(loaded, "gcp"))
    primitives, expected = planned_primitives(loaded.flow, provider)
    declared = [p for p, _ in provider.declared(primitives)]
    return declared, expected, provider.deployment(declared)


def service_outputs(monitor: RecordingMonitor) -> dict[str, Any]:
    envs = monitor.registered["service"]["inputs"]["template"]["containers"][0]["envs"]
    given = next(e["value"] for e in envs if e["name"] == OUTPUTS_ENV)
    outputs: dict[str, Any] = json.loads(given)["outputs"]
    return outputs


def grants(monitor: RecordingMonitor) -> dict[str, dict[str, Any]]:
    return {name: r["inputs"] for name, r in monitor.registered.items() if name.startswith("grant-")}


def test_unmanaged_sink_and_source_are_used_as_they_exist(monitor: RecordingMonitor, project: Path) -> None:
    declared, expected, deployment = deployed(FLOW, project)
    run_program(declared, project="my-project", deployment=deployment, image=IMAGE)

    assert [p.primitive_id() for p in declared] == [UPLOADS]
    assert {p.primitive_id() for p in expected} == {DATASET, TABLE, TOPIC, SUBSCRIPTION, REPORTS}
    made = {r["type"] for r in monitor.registered.values()}
    for kind in ("bigquery/table:Table", "bigquery/dataset:Dataset", "pubsub/subscription:", "pubsub/topic:Topic"):
        assert not any(kind in t for t in made), kind
    outputs = service_outputs(monitor)
    assert outputs[TABLE] == {
        "engine": "bigquery",
        "table_id": TABLE,
        "dataset_id": "analytics",
        "project": "my-project",
    }
    assert outputs[SUBSCRIPTION] == {
        "engine": "pubsub",
        "subscription": "projects/my-project/subscriptions/clicks-sub",
        "project": "my-project",
        "ack_deadline_seconds": 600,
    }
    flow = load(FLOW, project).flow  # the runtime builds its writer and reader from them
    assert type(writer_for(flow.collectors[0].sink_primitive, None, outputs, project)).__name__ == "BigQueryWriter"
    assert type(reader_for(flow.consumers[0].source_primitive, outputs, project)).__name__ == "PubSubReader"
    given = grants(monitor)
    editor = given["grant-bigquery.dataEditor-my-project.analytics"]
    assert (editor["datasetId"], editor["project"], editor["role"]) == (
        "analytics",
        "my-project",
        "roles/bigquery.dataEditor",
    )
    subscriber = given["grant-pubsub.subscriber-my-project-clicks-sub"]
    assert (subscriber["subscription"], subscriber["role"]) == ("clicks-sub", "roles/pubsub.subscriber")
    assert not [name for name in given if "pubsub-public-data" in name]  # the topic is only the subscription's


def test_a_managed_table_is_made_in_its_existing_dataset(monitor: RecordingMonitor, project: Path) -> None:
    declared, expected, deployment = deployed(MANAGED_TABLE, project)
    run_program(declared, project="my-project", deployment=deployment, image=IMAGE)

    assert {p.primitive_id() for p in declared} == {UPLOADS, TABLE}
    assert DATASET in {p.primitive_id() for p in expected} and TABLE not in {p.primitive_id() for p in expected}
    table = monitor.registered[TABLE]
    assert table["type"] == "gcp:bigquery/table:Table"
    assert (table["inputs"]["datasetId"], table["inputs"]["tableId"]) == ("analytics", "clicks")
    assert json.loads(table["inputs"]["schema"])[0]["name"] == "page"  # the handler's rows
    assert not [r for r in monitor.registered.values() if r["type"] == "gcp:bigquery/dataset:Dataset"]


def test_buckets_of_dependencies_get_object_user(monitor: RecordingMonitor, project: Path) -> None:
    declared, _, deployment = deployed(FLOW, project)
    run_program(declared, project="my-project", deployment=deployment, image=IMAGE)

    given = grants(monitor)
    buckets = {i["bucket"]: i["role"] for i in given.values() if "bucket" in i}
    assert buckets == {"my-reports": "roles/storage.objectUser", "my-uploads": "roles/storage.objectUser"}
    assert service_outputs(monitor)[REPORTS]["bucket_name"] == "my-reports"


def test_serving_gets_outputs_of_what_exists(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    monkeypatch.delenv(OUTPUTS_ENV, raising=False)
    stack = flow_dependencies._STACK  # serving says where the stack is: put back after
    for name in ("target", "find", "reading", "found", "missed"):
        monkeypatch.setattr(stack, name, getattr(stack, name))
    options = {"project": "my-project", "region": "us-central1"}

    nothing_managed = FLOW.replace("app.manage(uploads)\n", "")  # nothing to apply first

    outputs = outputs_for_serving(load(nothing_managed, project), "gcp", "dev", False, options)

    assert outputs[TABLE]["dataset_id"] == "analytics" and outputs[SUBSCRIPTION]["subscription"].endswith("/clicks-sub")
    assert outputs[REPORTS]["bucket_name"] == "my-reports"


def deleted(name: str, kind: str) -> dict[str, Any]:
    """The engine's event for a resource of the stack that the program no longer declares."""
    urn = f"urn:pulumi:dev::clicks::{kind}::{name}"
    old = {"type": kind, "urn": urn, "id": "x", "custom": True, "inputs": {}, "outputs": {}}
    return {"resourcePreEvent": {"metadata": {"op": "delete", "urn": urn, "type": kind, "old": old}, "planning": True}}


def scenario(tmp_path: Path, *events: dict[str, Any]) -> Path:
    """A stand-in preview reporting ``events``."""
    summary = {"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {}, "PolicyPacks": {}}}
    path = tmp_path / f"scenario-{len(events)}.json"
    path.write_text(json.dumps({"version": "3.200.0", "preview": {"events": [*events, summary]}}))
    return path


@pytest.fixture
def env(bfctl_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return pulumi_env(
        bfctl_env,
        tmp_path / "bin",
        PULUMI_CONFIG_PASSPHRASE="a passphrase",
        FAKE_PULUMI_SCENARIO=str(scenario(tmp_path)),
    )


def test_the_plan_says_what_is_expected_to_exist(project: Path, env: dict[str, str]) -> None:
    result = bfctl_run(["plan", *GCP], project, env)
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    for line in (
        f"BigQueryTable {TABLE} is used, not managed: expected to exist.",
        f"BigQueryDataset {DATASET} is used, not managed: expected to exist.",
        f"GCPPubSubSubscription {SUBSCRIPTION} is used, not managed: expected to exist.",
        f"GCSBucket {REPORTS} is used, not managed: expected to exist.",
    ):
        assert line in said

    managed = bfctl_run(["plan", *GCP, "managed:app"], project, env)
    assert managed.returncode == 0, managed.stderr
    assert f"BigQueryDataset {DATASET} is used, not managed" in managed.stdout + managed.stderr
    assert f"BigQueryTable {TABLE} is used" not in managed.stdout + managed.stderr


PORTABLE = """\
from buildflow import Flow
from buildflow.io.portable import Queue, Topic

app = Flow()


@app.consumer(source=Queue("jobs"), sink=Topic("events"))
def relay(job: dict) -> dict:
    return job
"""


def test_portable_source_and_sink_that_exist_get_their_roles(monitor: RecordingMonitor, project: Path) -> None:
    declared, expected, deployment = deployed(PORTABLE, project)
    run_program(declared, project="my-project", deployment=deployment, image=IMAGE)

    assert declared == [] and {p.primitive_id() for p in expected} == {"queue:jobs", "topic:events"}
    given = {(i["role"], i.get("subscription") or i.get("topic")) for i in grants(monitor).values()}
    assert given == {
        ("roles/pubsub.subscriber", "jobs"),
        ("roles/pubsub.publisher", "events"),
        ("roles/cloudtrace.agent", None),  # every service writes its traces
    }
    outputs = service_outputs(monitor)
    assert outputs["queue:jobs"]["subscription"] == "projects/my-project/subscriptions/jobs"
    assert outputs["topic:events"]["topic"] == "projects/my-project/topics/events"


def test_a_sink_an_earlier_apply_made_is_not_deleted_unsaid(project: Path, env: dict[str, str], tmp_path: Path) -> None:
    made_before = scenario(tmp_path, deleted(TABLE, "gcp:bigquery/table:Table"))
    result = bfctl_run(["plan", *GCP], project, {**env, "FAKE_PULUMI_SCENARIO": str(made_before)})

    assert result.returncode == 0, result.stderr
    assert f"delete    gcp.bigquery.Table  {TABLE}" in result.stdout
    said = " ".join((result.stdout + result.stderr).split())
    assert f"{TABLE} is used by the flow but no longer managed, so applying deletes it with its data" in said
    assert "pass it to app.manage(...) to keep it" in said


DASHBOARD = """\
import dataclasses

from buildflow import Flow
from buildflow.dependencies.analysis import AnalysisQuery
from buildflow.io.gcp import BigQueryDataset, BigQueryTable


@dataclasses.dataclass
class Click:
    page: str


app = Flow()
clicks = BigQueryTable(BigQueryDataset(project_id="my-project", dataset_name="analytics"), table_name="clicks")
daily = BigQueryTable(BigQueryDataset(project_id="warehouse", dataset_name="reporting"), table_name="daily")
Clicks = AnalysisQuery(clicks)
Daily = AnalysisQuery(daily)


@app.collector(route="/clicks", method="POST", sink=clicks)
def collect(click: Click) -> Click:
    return click


service = app.service()


@service.endpoint("/pages", method="GET")
async def pages(recent: Clicks, history: Daily) -> list:
    return await history.rows("SELECT page FROM {table}")
"""


def test_analysis_queries_run_jobs_and_only_read_what_no_sink_writes(monitor: RecordingMonitor, project: Path) -> None:
    declared, expected, deployment = deployed(DASHBOARD, project)
    run_program(declared, project="my-project", deployment=deployment, image=IMAGE)

    given = {(i["role"], i.get("datasetId") or i["project"]) for i in grants(monitor).values()}
    assert given == {
        ("roles/bigquery.dataEditor", "analytics"),  # a sink's dataset, queried too
        ("roles/bigquery.dataViewer", "reporting"),  # only queried
        ("roles/bigquery.jobUser", "my-project"),  # jobs.query runs in the table's project
        ("roles/bigquery.jobUser", "warehouse"),
        ("roles/cloudtrace.agent", "my-project"),  # every service writes its traces
    }
    assert "warehouse.reporting.daily" in {p.primitive_id() for p in expected}
    assert "warehouse.reporting.daily" in service_outputs(monitor)  # so the runtime can open it
