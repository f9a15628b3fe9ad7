"""What each target makes for the portable primitives of ``buildflow.io.portable``.

Providers plan ordinary primitives: before anything else, ``on_target`` replaces each portable
one with what its target makes for it, and refuses the primitives bfctl does not support
(AWS, Snowflake, ClickHouse).

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
primitive made for a portable one lists the portable's id in ``stands_for``; the target
records it (``bookkeeping``) and ``outputs_of`` gives its outputs under that id too. A
``Queue`` is stood for by its topic and its subscription: its outputs are both, merged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from buildflow.io.gcp import GCPPubSubSubscription, GCPPubSubTopic, GCSBucket, GCSFileChangeStream
from buildflow.io.local import LocalFileChangeStream
from buildflow.io.portable import AnalysisTable, Bucket, FileChangeStream, Queue, Topic
from buildflow.io.primitive import PortablePrimitive, Primitive
from buildflow.io.unsupported import unsupported_message
from buildflow.types.gcp import GCSChangeStreamEventType
from buildflow.types.local import FileChangeStreamEventType
from buildflow.types.portable import PortableFileChangeEventType

if TYPE_CHECKING:
    from bfctl.providers.base import Outputs, Provider
    from bfctl.providers.state import State

#: The project the local target's stand-ins are named in (the Pub/Sub emulator's).
LOCAL_PROJECT = "bfctl-local"
#: The private record of a made primitive naming the portable ids it stands for.
STANDS_FOR = "stands_for"

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


def on_target(provider: Provider, primitives: Sequence[Primitive]) -> list[Primitive]:
    """``primitives`` with each portable one replaced by what ``provider``'s target makes for it.

    Raises ``UnsupportedPrimitiveError`` for a primitive bfctl does not support.
    """
    from bfctl.providers.base import UnsupportedPrimitiveError  # providers.base calls this module

    for primitive in primitives:
        if (message := unsupported_message(primitive)) is not None:
            raise UnsupportedPrimitiveError(message)
    if not any(isinstance(p, PortablePrimitive) for p in primitives):
        return list(primitives)
    mapping: Callable[[Primitive], list[Primitive]] = to_local
    if provider.target == "gcp":
        from bfctl.providers.gcp.provider import GCPProvider

        assert isinstance(provider, GCPProvider)
        project, region = provider.settings(primitives).require_location()
        mapping = lambda p: to_gcp(p, project, region)  # noqa: E731 - one target's arguments bound
    return [made for primitive in primitives for made in mapping(primitive)]


def bookkeeping(primitive: Primitive) -> dict[str, Any]:
    """What a target records privately about ``primitive``: the portable ids it stands for."""
    return {STANDS_FOR: list(primitive.stands_for)} if primitive.stands_for else {}


def outputs_of(state: State) -> Outputs:
    """The outputs of every resource of ``state`` by its id, and by the portable ids it stands for."""
    outputs = {rid: dict(r.outputs) for rid, r in state.resources.items()}
    for record in state.resources.values():
        for portable_id in record.private.get(STANDS_FOR, []):
            outputs.setdefault(portable_id, {}).update(record.outputs)
    return outputs
