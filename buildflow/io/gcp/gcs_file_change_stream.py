"""Changes of a bucket's objects, as a consumer's source (BuildFlow's import path
``buildflow.io.gcp.gcs_file_change_stream``).

On gcp the stack makes what Cloud Storage notifications need: the topic ``<bucket>_topic``, its
subscription ``<bucket>_subscription`` (with attributes) and the bucket's notification, and
lets the project's Cloud Storage service agent publish to the topic. On the local target the
events come from the bucket's folder, which holds the objects a GCS sink writes and those
uploaded through the client (the stack's Cloud Storage emulator serves that folder).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, ClassVar

from buildflow.io.gcp.pubsub import GCPPubSubSubscription, GCPPubSubTopic
from buildflow.io.gcp.storage import GCSBucket
from buildflow.io.primitive import GCPPrimitive, Primitive, PrimitiveValidationError
from buildflow.types.gcp import GCSChangeStreamEventType


@dataclasses.dataclass
class GCSFileChangeStream(GCPPrimitive):
    """The notifications of ``gcs_bucket`` for ``event_types``."""

    gcs_bucket: GCSBucket
    event_types: Iterable[GCSChangeStreamEventType] = (GCSChangeStreamEventType.OBJECT_FINALIZE,)

    resource_type: ClassVar[str] = "gcp.storage.Notification"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"bucket", "event_types"})

    def __post_init__(self) -> None:
        self.event_types = tuple(self.event_types)
        self.validate()

    def primitive_id(self) -> str:
        return f"{self.gcs_bucket.bucket_url}/notifications"

    @property
    def topic(self) -> GCPPubSubTopic:
        """The topic the bucket notifies (BuildFlow's name)."""
        return GCPPubSubTopic(self.gcs_bucket.project_id, f"{self.gcs_bucket.bucket_name}_topic")

    @property
    def subscription(self) -> GCPPubSubSubscription:
        """The subscription a consumer pulls the notifications from (BuildFlow's name and settings)."""
        return GCPPubSubSubscription(self.gcs_bucket.project_id, f"{self.gcs_bucket.bucket_name}_subscription").options(
            topic=self.topic, include_attributes=True
        )

    def parents(self) -> list[Primitive]:
        return [self.gcs_bucket]

    def desired_properties(self) -> dict[str, Any]:
        return {
            "bucket": self.gcs_bucket.bucket_name,
            "project_id": self.gcs_bucket.project_id,
            "event_types": sorted(e.name for e in self.event_types),
            "topic": self.topic.topic_id,
            "subscription": self.subscription.subscription_id,
        }

    def validate(self) -> None:
        if not isinstance(self.gcs_bucket, GCSBucket):
            raise PrimitiveValidationError(
                f"GCSFileChangeStream: gcs_bucket must be a GCSBucket, got {self.gcs_bucket!r}"
            )
        bad = [e for e in self.event_types if not isinstance(e, GCSChangeStreamEventType)]
        if bad or not self.event_types:
            raise PrimitiveValidationError(
                "GCSFileChangeStream: event_types must be GCSChangeStreamEventType members "
                f"({', '.join(m.name for m in GCSChangeStreamEventType)}), got {list(self.event_types)!r}"
            )
