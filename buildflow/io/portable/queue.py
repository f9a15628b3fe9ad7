"""``Queue``: messages published by one side and pulled by consumers (BuildFlow's
``buildflow.io.portable.queue``)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from buildflow.io.gcp.pubsub import GCPPubSubSubscription
from buildflow.io.portable.checks import NAME_CHECK_PROJECT, check_as
from buildflow.io.primitive import PortablePrimitive


@dataclasses.dataclass
class Queue(PortablePrimitive):
    """A Pub/Sub topic and its subscription, both named ``queue_id``: a sink publishes to the
    topic, a consumer pulls the subscription. Options are the subscription's."""

    queue_id: str

    # Options (``.options(...)``), GCPPubSubSubscription's defaults.
    ack_deadline_seconds = 600
    message_retention_duration = "1200s"
    batch_size = 1_000
    include_attributes = False

    resource_type: ClassVar[str] = "portable.Queue"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"queue_id"})
    option_defaults: ClassVar[dict[str, Any]] = {
        "ack_deadline_seconds": 600,
        "message_retention_duration": "1200s",
        "batch_size": 1_000,
        "include_attributes": False,
    }

    def __post_init__(self) -> None:
        self.validate()

    def options(self, **kwargs: Any) -> Queue:
        super().options(**kwargs)
        self.validate()
        return self

    def primitive_id(self) -> str:
        return f"queue:{self.queue_id}"

    def desired_properties(self) -> dict[str, Any]:
        return {"queue_id": self.queue_id, **self.subscription_options()}

    def subscription_options(self) -> dict[str, Any]:
        """The options of the subscription a target makes for the queue."""
        return {name: getattr(self, name) for name in self.option_defaults}

    def validate(self) -> None:
        check_as(
            self,
            lambda: GCPPubSubSubscription(NAME_CHECK_PROJECT, self.queue_id).options(**self.subscription_options()),
            ("subscription_name", "queue_id"),
        )
