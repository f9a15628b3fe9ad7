"""``Topic``: a stream of messages, as a sink (BuildFlow's ``buildflow.io.portable.topic``)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from buildflow.io.gcp.pubsub import GCPPubSubTopic
from buildflow.io.portable.checks import NAME_CHECK_PROJECT, check_as
from buildflow.io.primitive import PortablePrimitive


@dataclasses.dataclass
class Topic(PortablePrimitive):
    """A Pub/Sub topic named ``topic_id`` on each target (locally the emulator's, or a log)."""

    topic_id: str

    resource_type: ClassVar[str] = "portable.Topic"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"topic_id"})

    def __post_init__(self) -> None:
        self.validate()

    def primitive_id(self) -> str:
        return f"topic:{self.topic_id}"

    def desired_properties(self) -> dict[str, Any]:
        return {"topic_id": self.topic_id}

    def validate(self) -> None:
        check_as(self, lambda: GCPPubSubTopic(NAME_CHECK_PROJECT, self.topic_id), ("topic_name", "topic_id"))
