"""The Google APIs a stack enables: Resource Manager too whenever the stack reads or binds
through the project itself, which a new project has not enabled."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("pulumi_gcp")

from gcp_mocks import RecordingMonitor, run_program

from bfctl.infra import declared_primitives
from buildflow import Flow
from buildflow.io.gcp import GCPPubSubSubscription, GCPPubSubTopic

RESOURCE_MANAGER = "cloudresourcemanager.googleapis.com"


def enabled(monitor: RecordingMonitor) -> set[str]:
    return {r["inputs"]["service"] for r in monitor.registered.values() if r["type"] == "gcp:projects/service:Service"}


def subscribed(dead_letter: GCPPubSubTopic | None = None) -> list[Any]:
    app = Flow()
    topic = GCPPubSubTopic("my-project", "events")
    policy = {"dead_letter_topic": dead_letter, "max_delivery_attempts": 5} if dead_letter else {}
    subscription = GCPPubSubSubscription("my-project", "events-sub").options(topic=topic, **policy)
    app.manage(topic, subscription, *([dead_letter] if dead_letter else []))
    return declared_primitives(app, "gcp")


def test_a_dead_letter_policy_enables_resource_manager_for_the_project_number(monitor: RecordingMonitor) -> None:
    run_program(subscribed(GCPPubSubTopic("my-project", "events-dead")), project="my-project")

    assert enabled(monitor) == {"pubsub.googleapis.com", RESOURCE_MANAGER}


def test_a_subscription_without_one_needs_only_pubsub(monitor: RecordingMonitor) -> None:
    run_program(subscribed(), project="my-project")

    assert enabled(monitor) == {"pubsub.googleapis.com"}
