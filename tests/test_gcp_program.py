"""The gcp target's Pulumi program, run for real under Pulumi's unit-test mocks (offline).

The mocks run with ``preview=False``: in preview mode an output the mock does not return is
unknown, and an ``apply`` on it never runs, so an assertion inside it would check nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pulumi = pytest.importorskip("pulumi")
pytest.importorskip("pulumi_gcp")

from gcp_mocks import RecordingMonitor, run_program

from bfctl.infra import declared_primitives
from bfctl.loader import load_flow
from bfctl.providers.gcp import SUPPORTED
from bfctl.providers.gcp import program as gcp_program
from buildflow.io.gcp import (
    BigQueryDataset,
    BigQueryTable,
    CloudSQLDatabase,
    CloudSQLInstance,
    CloudSQLUser,
    GCPPubSubTopic,
    GCSBucket,
)
from buildflow.types.gcp import CloudSQLDatabaseVersion, CloudSQLInstanceSettings

# pulumi_gcp's own modules warn about their deprecated members when imported
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_gcp.*")

ROOT = Path(__file__).resolve().parents[1]
SECRET_SIG = "4dabf18193072939515e22adb298388d"
INSTANCE_T, DATABASE_T, USER_T = (
    "gcp:sql/databaseInstance:DatabaseInstance",
    "gcp:sql/database:Database",
    "gcp:sql/user:User",
)


@pytest.fixture
def notes_primitives() -> Iterator[list[Any]]:
    saved = list(sys.path)
    loaded = load_flow("main.py", ROOT / "examples" / "notes")
    yield declared_primitives(loaded.flow, "gcp")
    sys.path[:] = saved
    sys.modules.pop(loaded.module.__name__, None)


def test_notes_example_makes_instance_database_and_user(monitor: RecordingMonitor, notes_primitives: list) -> None:
    exports = run_program(notes_primitives)

    instance_id, db_id, user_id = "my-project:notes-db", "my-project:notes-db.notes", "my-project:notes-db/users/notes"
    assert {name: r["type"] for name, r in monitor.registered.items()} == {
        instance_id: INSTANCE_T,
        db_id: DATABASE_T,
        user_id: USER_T,
    }
    instance, db, user = (monitor.registered[n] for n in (instance_id, db_id, user_id))
    assert instance["inputs"] == {
        "name": "notes-db",
        "project": "my-project",
        "region": "us-central1",
        "databaseVersion": "POSTGRES_15",
        "settings": {"tier": "db-f1-micro", "edition": "ENTERPRISE"},
        "deletionProtection": True,  # on unless the flow turns it off; always set explicitly
    }
    assert db["inputs"] == {
        "name": "notes",
        "instance": "notes-db",
        "project": "my-project",
        "deletionPolicy": "ABANDON",
    }
    password = user["inputs"].pop("password")
    assert user["inputs"] == {
        "name": "notes",
        "instance": "notes-db",
        "project": "my-project",
        "deletionPolicy": "ABANDON",
    }
    # The password reaches the engine as a secret (encrypted in Pulumi's state), never as plain text.
    assert isinstance(password, dict) and password.get(SECRET_SIG) and password["value"] == "s3cret"
    # Children depend on the instance (through its name), so Pulumi creates it first and deletes it last.
    assert instance["dependencies"] == []
    assert db["dependencies"] == [instance["urn"]]
    assert user["dependencies"] == [instance["urn"]]
    # Cloud names are fixed, so a replaced resource must go before its successor comes.
    assert all(r["delete_before_replace"] for r in monitor.registered.values())
    assert exports == {
        instance_id: {
            "connection_name": "my-project:us-central1:notes-db",
            "public_ip": "203.0.113.7",
            "private_ip": "10.0.0.7",
            "instance_name": "notes-db",
            "project": "my-project",
            "region": "us-central1",
        },
        db_id: {"connection_name": "my-project:us-central1:notes-db", "database": "notes", "instance": instance_id},
        user_id: {"connection_name": "my-project:us-central1:notes-db", "user": "notes", "instance": instance_id},
    }


def test_user_password_output_is_secret(monitor: RecordingMonitor) -> None:
    instance = CloudSQLInstance(
        "db",
        "my-project",
        CloudSQLDatabaseVersion.POSTGRES_16,
        CloudSQLInstanceSettings(tier="db-f1-micro"),
        "europe-west1",
    )
    user = CloudSQLUser("app", "pw-1234", instance)
    found: dict[str, bool] = {}

    @pulumi.runtime.test
    def body() -> Any:
        made = gcp_program.declare([instance, user], gcp_program._Context())
        password = made[user.primitive_id()].password  # type: ignore[attr-defined]  # made[...] is a sql.User
        return pulumi.Output.from_input(asyncio.ensure_future(password.is_secret())).apply(
            lambda secret: found.update(secret=secret)
        )

    body()
    assert found == {"secret": True}


def test_options_and_engines_are_honoured(monitor: RecordingMonitor) -> None:
    instance = CloudSQLInstance(
        "shop-db",
        "my-project",
        CloudSQLDatabaseVersion.MYSQL_8_0,
        CloudSQLInstanceSettings(
            tier="db-n1-standard-1",
            ip_configuration={"ipv4_enabled": False, "private_network": "projects/p/global/networks/n"},
        ),
        "us-east1",
    ).options(deletion_protection=False)
    run_program([CloudSQLDatabase("shop", instance), instance])

    inputs = monitor.registered["my-project:shop-db"]["inputs"]
    assert inputs["deletionProtection"] is False
    # Nested settings reach the engine with Pulumi's names.
    assert inputs["settings"] == {
        "tier": "db-n1-standard-1",
        "ipConfiguration": {"ipv4Enabled": False, "privateNetwork": "projects/p/global/networks/n"},
        "edition": "ENTERPRISE",
    }
    # MySQL can drop databases with users in them: the child is deleted, not abandoned.
    assert "deletionPolicy" not in monitor.registered["my-project:shop-db.shop"]["inputs"]
    # Declared child-first, still registered parent-first.
    assert list(monitor.registered) == ["my-project:shop-db", "my-project:shop-db.shop"]


@pytest.mark.parametrize(
    ("version", "tier", "given", "edition"),
    [
        # Cloud SQL would pick ENTERPRISE_PLUS for these versions and refuse the tier.
        (CloudSQLDatabaseVersion.POSTGRES_16, "db-f1-micro", None, "ENTERPRISE"),
        (CloudSQLDatabaseVersion.POSTGRES_17, "db-custom-1-3840", None, "ENTERPRISE"),
        (CloudSQLDatabaseVersion.MYSQL_8_4, "db-g1-small", None, "ENTERPRISE"),
        (CloudSQLDatabaseVersion.POSTGRES_17, "db-perf-optimized-N-2", None, "ENTERPRISE_PLUS"),
        (CloudSQLDatabaseVersion.POSTGRES_15, "db-perf-optimized-N-4", "ENTERPRISE_PLUS", "ENTERPRISE_PLUS"),
    ],
)
def test_instance_edition_fits_its_tier(
    monitor: RecordingMonitor, version: str, tier: str, given: str | None, edition: str
) -> None:
    settings = CloudSQLInstanceSettings(tier=tier, edition=given)
    run_program([CloudSQLInstance("db", "my-project", version, settings, "us-central1")])

    assert monitor.registered["my-project:db"]["inputs"]["settings"] == {"tier": tier, "edition": edition}


@dataclasses.dataclass
class Event:
    name: str
    count: int
    tags: list[str]
    at: datetime.datetime | None = None


def test_sink_primitives_make_dataset_table_bucket_and_topic(monitor: RecordingMonitor) -> None:
    dataset = BigQueryDataset("my-project", "analytics")
    table = BigQueryTable(dataset, "events").options(schema=Event)
    bucket = GCSBucket("my-project", "my-events-bucket").options(force_destroy=True, bucket_region="EU")
    topic = GCPPubSubTopic("my-project", "events")

    exports = run_program([table, dataset, bucket, topic])

    registered = monitor.registered
    assert {n: r["type"] for n, r in registered.items()} == {
        "my-project.analytics": "gcp:bigquery/dataset:Dataset",
        "my-project.analytics.events": "gcp:bigquery/table:Table",
        "gcs://my-events-bucket": "gcp:storage/bucket:Bucket",
        "projects/my-project/topics/events": "gcp:pubsub/topic:Topic",
    }
    assert registered["my-project.analytics"]["inputs"] == {"datasetId": "analytics", "project": "my-project"}
    table_inputs = registered["my-project.analytics.events"]["inputs"]
    assert json.loads(table_inputs.pop("schema")) == [
        {"name": "name", "type": "STRING", "mode": "REQUIRED"},
        {"name": "count", "type": "INTEGER", "mode": "REQUIRED"},
        {"name": "tags", "type": "STRING", "mode": "REPEATED"},
        {"name": "at", "type": "TIMESTAMP", "mode": "NULLABLE"},
    ]
    assert table_inputs == {
        "datasetId": "analytics",
        "tableId": "events",
        "project": "my-project",
        "deletionProtection": False,  # pulumi-gcp defaults to true: always set from the flow
    }
    assert registered["my-project.analytics.events"]["dependencies"] == [registered["my-project.analytics"]["urn"]]
    assert registered["gcs://my-events-bucket"]["inputs"] == {
        "name": "my-events-bucket",
        "project": "my-project",
        "location": "EU",
        "forceDestroy": True,
        # secure-by-default organizations refuse a bucket without uniform access (412)
        "uniformBucketLevelAccess": True,
        "publicAccessPrevention": "enforced",
    }
    assert registered["projects/my-project/topics/events"]["inputs"] == {"name": "events", "project": "my-project"}
    assert exports == {
        "my-project.analytics": {"dataset_id": "analytics", "project": "my-project", "location": "US"},
        "my-project.analytics.events": {
            "engine": "bigquery",
            "table_id": "my-project.analytics.events",
            "dataset_id": "analytics",
            "project": "my-project",
        },
        "gcs://my-events-bucket": {
            "engine": "gcs",
            "bucket_name": "my-events-bucket",
            "bucket_url": "gcs://my-events-bucket",
            "url": "gs://my-events-bucket",
            "project": "my-project",
        },
        "projects/my-project/topics/events": {
            "engine": "pubsub",
            "topic": "projects/my-project/topics/events",
            "topic_id": "projects/my-project/topics/events",
            "topic_name": "events",
            "project": "my-project",
        },
    }


def test_every_supported_primitive_has_a_builder() -> None:
    assert set(SUPPORTED) == set(gcp_program._BUILDERS)


def test_a_portable_primitives_outputs_are_exported_under_its_own_id(monitor: RecordingMonitor) -> None:
    from bfctl.providers.portables import to_gcp
    from buildflow.io.portable import Queue

    queue = Queue("jobs")
    exports = run_program(to_gcp(queue, "my-project", "us-central1"))

    merged = exports[queue.primitive_id()]
    assert merged["engine"] == "pubsub"
    assert merged["topic"] == "projects/my-project/topics/jobs"  # the topic's, for writers
    assert merged["subscription"] == "projects/my-project/subscriptions/jobs"  # the subscription's, for readers
