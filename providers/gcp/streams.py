"""The Pub/Sub side of consumers on gcp: subscriptions, and Cloud Storage notifications.

A subscription with a dead-letter topic needs Pub/Sub's own service agent to publish to that
topic and to subscribe to the subscription (it forwards the message and acks it there). A
bucket's notifications need the project's Cloud Storage service agent to publish to their topic.
Both agents are Google's, named by the project: their emails are looked up, never guessed.

Imported only when the gcp target runs: it imports pulumi and pulumi_gcp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pulumi
import pulumi_gcp as gcp

from bfctl.providers.gcp.existing import made_or_named, named_outputs
from buildflow.io.gcp import GCPPubSubSubscription, GCSFileChangeStream

Made = Mapping[str, pulumi.CustomResource]
Built = tuple[pulumi.CustomResource, dict[str, Any]]


def subscription(p: GCPPubSubSubscription, made: Made, opts: pulumi.ResourceOptions) -> Built:
    """A ``pubsub.Subscription`` with BuildFlow's settings, and its dead-letter policy when set."""
    assert p.topic is not None  # a managed subscription has one (the primitive checks)
    dead = p.dead_letter_topic
    policy = None
    if dead is not None:
        dead_id = made_or_named(made, dead, "id", dead.topic_id)
        policy = {"dead_letter_topic": dead_id, "max_delivery_attempts": p.max_delivery_attempts}
    r = gcp.pubsub.Subscription(
        p.primitive_id(),
        name=p.subscription_name,
        topic=made_or_named(made, p.topic, "id", p.topic.topic_id),
        project=p.project_id,
        ack_deadline_seconds=p.ack_deadline_seconds,
        message_retention_duration=p.message_retention_duration,
        enable_exactly_once_delivery=p.enable_exactly_once_delivery,
        dead_letter_policy=cast(Any, policy),
        opts=opts,
    )
    if dead is not None:
        agent = _pubsub_agent(p.project_id)
        gcp.pubsub.TopicIAMMember(
            f"{p.primitive_id()}/dead-letter-publisher",
            topic=made_or_named(made, dead, "name", dead.topic_name),
            project=dead.project_id,
            role="roles/pubsub.publisher",
            member=agent,
        )
        gcp.pubsub.SubscriptionIAMMember(
            f"{p.primitive_id()}/dead-letter-subscriber",
            subscription=r.name,
            project=p.project_id,
            role="roles/pubsub.subscriber",
            member=agent,
        )
    return r, named_outputs(p)


def notifications(p: GCSFileChangeStream, made: Made, opts: pulumi.ResourceOptions) -> Built:
    """The topic a bucket notifies, the agent's right to publish there, the notification, and
    the subscription a consumer pulls (BuildFlow's names: ``<bucket>_topic``, ``<bucket>_subscription``)."""
    project = p.gcs_bucket.project_id
    topic = gcp.pubsub.Topic(f"{p.primitive_id()}/topic", name=p.topic.topic_name, project=project, opts=opts)
    agent = gcp.storage.get_project_service_account_output(project=project)
    publisher = gcp.pubsub.TopicIAMMember(
        f"{p.primitive_id()}/storage-publisher",
        topic=topic.name,
        project=project,
        role="roles/pubsub.publisher",
        member=agent.email_address.apply(lambda email: f"serviceAccount:{email}"),
    )
    sub = p.subscription
    pulled = gcp.pubsub.Subscription(
        f"{p.primitive_id()}/subscription",
        name=sub.subscription_name,
        topic=topic.id,
        project=project,
        ack_deadline_seconds=sub.ack_deadline_seconds,
        message_retention_duration=sub.message_retention_duration,
        opts=opts,
    )
    r = gcp.storage.Notification(
        p.primitive_id(),
        bucket=made_or_named(made, p.gcs_bucket, "name", p.gcs_bucket.bucket_name),
        payload_format="JSON_API_V1",
        topic=topic.id,
        event_types=[e.name for e in p.event_types],
        # made last: no event is sent before its subscription exists to keep it
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[publisher, pulled])),
    )
    return r, named_outputs(p)


def _pubsub_agent(project: str) -> pulumi.Output[str]:
    number = gcp.organizations.get_project_output(project_id=project).number
    return number.apply(lambda n: f"serviceAccount:service-{n}@gcp-sa-pubsub.iam.gserviceaccount.com")
