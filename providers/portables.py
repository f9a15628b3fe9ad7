"""What each target makes for the portable primitives of ``buildflow.io.portable``.

Providers plan ordinary primitives: before anything else, ``Provider.on_target`` replaces each
portable one with what its target makes for it (``Provider.portables``: ``to_local`` or
``to_gcp``), and refuses the primitives bfctl does not support (AWS, Snowflake, ClickHouse).

=====================  ==========================================  ==============================================
portable               local                                       gcp (the stack's project and region)
=====================  ==========================================  ==============================================
``Topic(t)``           GCPPubSubTopic(bfctl-local, t)              GCPPubSubTopic(project, t)
``Queue(q)``           that topic, and its subscription ``q``      the same, in the project
``Bucket(b)``          GCSBucket(bfctl-local, b): a folder         GCSBucket(project, b) in the region
``FileChangeStream``   LocalFileChangeStream(file_path)            GCSFileChangeStream on GCSBucket(file_path)
``AnalysisTable``      itself (a DuckDB table)                     its BigQuery table (``to_gcp``) and dataset
=====================  ==========================================  ==============================================

The runtime finds a primitive's outputs by the id of the primitive the flow declares, so the
primitive made for a portable one lists the portable's id in ``stands_for``; the state records
it and ``bfctl.providers.state.outputs_of`` gives its outputs under that id too. A
``Queue`` is stood for by its topic and its subscription: its outputs are both, merged.
"""

from __future__ import annotations

from buildflow.io.gcp import GCPPubSubSubscription, GCPPubSubTopic, GCSBucket, GCSFileChangeStream
from buildflow.io.local import LocalFileChangeStream
from buildflow.io.portable import AnalysisTable, Bucket, FileChangeStream, Queue, Topic
from buildflow.io.primitive import Primitive
from buildflow.types.gcp import GCSChangeStreamEventType
from buildflow.types.local import FileChangeStreamEventType
from buildflow.types.portable import PortableFileChangeEventType

#: The project the local target's stand-ins are named in (the Pub/Sub emulator's).
LOCAL_PROJECT = "bfctl-local"

_LOCAL_EVENTS = {
    PortableFileChangeEventType.CREATED: FileChangeStreamEventType.CREATED,
    PortableFileChangeEventType.DELETED: FileChangeStreamEventType.DELETED,
}
_GCS_EVENTS = {
    PortableFileChangeEventType.CREATED: GCSChangeStreamEventType.OBJECT_FINALIZE,
    PortableFileChangeEventType.DELETED: GCSChangeStreamEventType.OBJECT_DELETE,
}


def _standing_for(portable: Primitive, made: Primitive) -> Primitive:
    made.stands_for = (*made.stands_for, portable.primitive_id())
    return made


def _queue(queue: Queue, project: str) -> list[Primitive]:
    topic = GCPPubSubTopic(project, queue.queue_id)
    subscription = GCPPubSubSubscription(project, queue.queue_id).options(topic=topic, **queue.subscription_options())
    return [_standing_for(queue, topic), _standing_for(queue, subscription)]


def to_local(primitive: Primitive) -> list[Primitive]:
    """What the local target makes for ``primitive`` (itself when it is not portable)."""
    if isinstance(primitive, Topic):
        return [_standing_for(primitive, GCPPubSubTopic(LOCAL_PROJECT, primitive.topic_id))]
    if isinstance(primitive, Queue):
        return _queue(primitive, LOCAL_PROJECT)
    if isinstance(primitive, Bucket):
        return [_standing_for(primitive, primitive.to_gcs(LOCAL_PROJECT))]
    if isinstance(primitive, FileChangeStream):
        events = [_LOCAL_EVENTS[e] for e in primitive.event_types]
        return [_standing_for(primitive, LocalFileChangeStream(primitive.file_path, events))]
    return [primitive]  # AnalysisTable included: the local target makes it in DuckDB


def to_gcp(primitive: Primitive, project: str, region: str) -> list[Primitive]:
    """What the gcp target makes for ``primitive`` in ``project`` and ``region`` (parents first)."""
    if isinstance(primitive, Topic):
        return [_standing_for(primitive, GCPPubSubTopic(project, primitive.topic_id))]
    if isinstance(primitive, Queue):
        return _queue(primitive, project)
    if isinstance(primitive, Bucket):
        return [_standing_for(primitive, primitive.to_gcs(project, region))]
    if isinstance(primitive, FileChangeStream):
        bucket = GCSBucket(project, primitive.file_path).options(bucket_region=region)
        stream = GCSFileChangeStream(bucket, [_GCS_EVENTS[e] for e in primitive.event_types])
        return [bucket, _standing_for(primitive, stream)]
    if isinstance(primitive, AnalysisTable):
        table = primitive.to_gcp(project)
        return [table.dataset, _standing_for(primitive, table)]
    return [primitive]
