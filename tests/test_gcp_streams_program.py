"""Consumers' sources on gcp, run under Pulumi's mocks: subscriptions (with a dead-letter
policy and the Pub/Sub agent's rights), Cloud Storage notifications (topic, the storage
agent's publisher binding, subscription, notification), and a consuming flow's service."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("pulumi_gcp")

from gcp_mocks import PROJECT_NUMBER, RecordingMonitor, run_program

from bfctl.infra import declared_primitives
from bfctl.providers.gcp.deploy import deployment_of
from buildflow import Flow
from buildflow.io.gcp import GCPPubSubSubscription, GCPPubSubTopic, GCSBucket, GCSFileChangeStream
from buildflow.types.gcp import GCSChangeStreamEventType

IMAGE = "us-central1-docker.pkg.dev/my-project/bfctl/events@sha256:" + "ab" * 32
SUB, DEAD = "my-project/events-sub", "projects/my-project/topics/events-dead"


def urn_names(monitor: RecordingMonitor) -> dict[str, str]:
    return {r["urn"]: name for name, r in monitor.registered.items()}


def consuming_flow() -> tuple[Flow, list[Any]]:
    app = Flow()
    topic, dead = GCPPubSubTopic("my-project", "events"), GCPPubSubTopic("my-project", "events-dead")
    subscription = GCPPubSubSubscription("my-project", "events-sub").options(
        topic=topic, ack_deadline_seconds=30, max_delivery_attempts=5, dead_letter_topic=dead
    )
    files = GCSFileChangeStream(GCSBucket("my-project", "raw-files"), [GCSChangeStreamEventType.OBJECT_FINALIZE])
    app.manage(topic, dead, subscription, files.gcs_bucket, files)

    @app.consumer(source=subscription, min_replicas=0)
    def on_event(event: dict[str, Any]) -> None:
        return None

    @app.consumer(source=files, min_replicas=0)
    def on_file(event: Any) -> None:
        return None

    return app, declared_primitives(app, "gcp")


def test_a_subscription_with_its_dead_letter_policy_and_the_agents_rights(monitor: RecordingMonitor) -> None:
    _, primitives = consuming_flow()
    exports = run_program(primitives)

    sub = monitor.registered[SUB]
    assert sub["type"] == "gcp:pubsub/subscription:Subscription"
    inputs = sub["inputs"]
    assert (inputs["name"], inputs["project"], inputs["ackDeadlineSeconds"]) == ("events-sub", "my-project", 30)
    assert inputs["topic"] == "projects/my-project/topics/events-id"  # the topic resource's id
    assert inputs["messageRetentionDuration"] == "1200s" and inputs["enableExactlyOnceDelivery"] is False
    assert inputs["deadLetterPolicy"] == {"deadLetterTopic": f"{DEAD}-id", "maxDeliveryAttempts": 5}
    agent = f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
    publisher = monitor.registered[f"{SUB}/dead-letter-publisher"]["inputs"]
    subscriber = monitor.registered[f"{SUB}/dead-letter-subscriber"]["inputs"]
    assert (publisher["topic"], publisher["role"], publisher["member"]) == (
        "events-dead",
        "roles/pubsub.publisher",
        agent,
    )
    assert (subscriber["subscription"], subscriber["role"], subscriber["member"]) == (
        "events-sub",
        "roles/pubsub.subscriber",
        agent,
    )
    assert exports[SUB] == {
        "engine": "pubsub",
        "subscription": "projects/my-project/subscriptions/events-sub",
        "project": "my-project",
        "ack_deadline_seconds": 30,
    }


def test_bucket_notifications_are_made_after_their_subscription(monitor: RecordingMonitor) -> None:
    _, primitives = consuming_flow()
    exports = run_program(primitives)

    stream = "gcs://raw-files/notifications"
    notification = monitor.registered[stream]
    assert notification["type"] == "gcp:storage/notification:Notification"
    assert notification["inputs"] == {
        "bucket": "raw-files",
        "payloadFormat": "JSON_API_V1",
        "topic": "gcs://raw-files/notifications/topic-id",
        "eventTypes": ["OBJECT_FINALIZE"],
    }
    names = urn_names(monitor)
    after = {names[u] for u in notification["dependencies"] if u in names}
    assert {f"{stream}/storage-publisher", f"{stream}/subscription", "gcs://raw-files"} <= after
    assert monitor.registered[f"{stream}/topic"]["inputs"] == {"name": "raw-files_topic", "project": "my-project"}
    publisher = monitor.registered[f"{stream}/storage-publisher"]["inputs"]
    assert publisher["member"] == f"serviceAccount:service-{PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"
    assert publisher["role"] == "roles/pubsub.publisher"
    assert monitor.registered[f"{stream}/subscription"]["inputs"]["name"] == "raw-files_subscription"
    assert exports[stream] == {
        "engine": "pubsub",
        "subscription": "projects/my-project/subscriptions/raw-files_subscription",
        "project": "my-project",
        "bucket": "raw-files",
        "notifications": True,
        "ack_deadline_seconds": 600,
    }


def test_a_consuming_service_keeps_its_cpu_and_one_instance_and_may_pull(monitor: RecordingMonitor) -> None:
    flow, primitives = consuming_flow()
    deployment = deployment_of(
        flow, primitives, target="main:app", name="events-dev", project="my-project", region="us-central1",
        table={}, flags={},
    )  # fmt: skip
    assert deployment is not None
    run_program(primitives, project="my-project", deployment=deployment, image=IMAGE)

    template = monitor.registered["service"]["inputs"]["template"]
    assert template["scaling"]["minInstanceCount"] == 1  # the consumers asked for 0: a puller needs one
    assert template["containers"][0]["resources"]["cpuIdle"] is False
    roles = {
        name: (r["type"].split(":")[1], r["inputs"]["role"])
        for name, r in monitor.registered.items()
        if name.startswith("grant-")
    }
    assert roles == {
        "grant-pubsub.publisher-projects-my-project-topics-events": ("pubsub/topicIAMMember", "roles/pubsub.publisher"),
        "grant-pubsub.publisher-projects-my-project-topics-events-dead": (
            "pubsub/topicIAMMember",
            "roles/pubsub.publisher",
        ),
        "grant-pubsub.subscriber-my-project-events-sub": ("pubsub/subscriptionIAMMember", "roles/pubsub.subscriber"),
        "grant-pubsub.subscriber-gcs-raw-files-notifications": (
            "pubsub/subscriptionIAMMember",
            "roles/pubsub.subscriber",
        ),
        "grant-storage.objectViewer-gcs-raw-files": ("storage/bucketIAMMember", "roles/storage.objectViewer"),
        "grant-cloudtrace.agent-project": ("projects/iAMMember", "roles/cloudtrace.agent"),
    }
    assert monitor.registered["grant-pubsub.subscriber-gcs-raw-files-notifications"]["inputs"]["subscription"] == (
        "raw-files_subscription"
    )
