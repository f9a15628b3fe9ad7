"""The outputs of resources a flow uses on gcp without managing them.

BuildFlow created only what a flow passed to ``app.manage(...)``; the tables, topics, buckets
and subscriptions its processors and dependencies merely use exist already. The stack does not
make them, so the outputs the runtime reads for them come from their identity. The program
(``bfctl.providers.gcp.program``) exports the same outputs for a resource it makes, with the values
the resource knows once made in place of the named ones. Pure data: no Pulumi here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from buildflow.io.gcp import (
    BigQueryDataset,
    BigQueryTable,
    CloudSQLDatabase,
    CloudSQLInstance,
    CloudSQLUser,
    GCPPubSubSubscription,
    GCPPubSubTopic,
    GCSBucket,
    GCSFileChangeStream,
)
from buildflow.io.primitive import Primitive
from buildflow.storage.engines import Engine


def _instance(p: CloudSQLInstance) -> dict[str, Any]:
    return {
        "connection_name": p.connection_name(),
        "instance_name": p.instance_name,
        "project": p.project_id,
        "region": p.region,
    }


def _database(p: CloudSQLDatabase) -> dict[str, Any]:
    return {
        "connection_name": p.instance.connection_name(),
        "database": p.database_name,
        "instance": p.instance.primitive_id(),
    }


def _user(p: CloudSQLUser) -> dict[str, Any]:
    return {"connection_name": p.instance.connection_name(), "user": p.user_name, "instance": p.instance.primitive_id()}


def _dataset(p: BigQueryDataset) -> dict[str, Any]:
    return {"dataset_id": p.dataset_name, "project": p.project_id}


def _table(p: BigQueryTable) -> dict[str, Any]:
    return {
        "engine": Engine.BIGQUERY.value,
        "table_id": p.table_id,
        "dataset_id": p.dataset.dataset_name,
        "project": p.dataset.project_id,
    }


def _bucket(p: GCSBucket) -> dict[str, Any]:
    return {
        "engine": Engine.GCS.value,
        "bucket_name": p.bucket_name,
        "bucket_url": p.bucket_url,
        "url": f"gs://{p.bucket_name}",
        "project": p.project_id,
    }


def _topic(p: GCPPubSubTopic) -> dict[str, Any]:
    return {
        "engine": Engine.PUBSUB.value,
        "topic": p.topic_id,
        "topic_id": p.topic_id,
        "topic_name": p.topic_name,
        "project": p.project_id,
    }


def _subscription(p: GCPPubSubSubscription) -> dict[str, Any]:
    return {
        "engine": Engine.PUBSUB.value,
        "subscription": p.subscription_id,
        "project": p.project_id,
        "ack_deadline_seconds": p.ack_deadline_seconds,
    }


def _notifications(p: GCSFileChangeStream) -> dict[str, Any]:
    return {**_subscription(p.subscription), "bucket": p.gcs_bucket.bucket_name, "notifications": True}


_DERIVED: dict[type, Callable[[Any], dict[str, Any]]] = {
    CloudSQLInstance: _instance,
    CloudSQLDatabase: _database,
    CloudSQLUser: _user,
    BigQueryDataset: _dataset,
    BigQueryTable: _table,
    GCSBucket: _bucket,
    GCPPubSubTopic: _topic,
    GCPPubSubSubscription: _subscription,
    GCSFileChangeStream: _notifications,
}


def named_outputs(primitive: Primitive) -> dict[str, Any]:
    """The outputs of a gcp ``primitive`` as its names and settings give them."""
    return _DERIVED[type(primitive)](primitive)


def existing_outputs(primitives: list[Primitive]) -> dict[str, dict[str, Any]]:
    """The outputs of ``primitives`` (gcp ones, portable ones already mapped) under their ids and
    the ids of the portable primitives they stand for; a type the target does not know has none."""
    outputs: dict[str, dict[str, Any]] = {}
    for primitive in primitives:
        derive = _DERIVED.get(type(primitive))
        if derive is None:
            continue
        for pid in (primitive.primitive_id(), *primitive.stands_for):
            outputs.setdefault(pid, {}).update(derive(primitive))
    return outputs


def made_or_named(made: Mapping[str, Any], primitive: Primitive, attribute: str, name: str) -> Any:
    """``attribute`` of the resource the program made for ``primitive``; ``name`` (its name or
    path) when the flow uses it without managing it: what refers to it names the one that exists."""
    resource = made.get(primitive.primitive_id())
    return getattr(resource, attribute) if resource is not None else name
