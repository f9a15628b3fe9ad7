"""Pub/Sub: a topic; as a sink, each row is published as one JSON message."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar

from buildflow.io.gcp.bigquery import check_project_id
from buildflow.io.gcp.cloud_sql import _fail
from buildflow.io.primitive import GCPPrimitive

# Pub/Sub: 3-255 characters, starting with a letter; letters, digits and - _ . ~ + %; not "goog...".
_TOPIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._~+%-]{2,254}")


@dataclasses.dataclass
class GCPPubSubTopic(GCPPrimitive):
    """A Pub/Sub topic."""

    project_id: str
    topic_name: str

    resource_type: ClassVar[str] = "gcp.pubsub.Topic"
    replace_properties: ClassVar[frozenset[str]] = frozenset({"project_id", "topic_name"})

    def __post_init__(self) -> None:
        self.validate()

    def primitive_id(self) -> str:
        return self.topic_id

    @property
    def topic_id(self) -> str:
        """``projects/<project>/topics/<topic>``, the name the Pub/Sub API takes."""
        return f"projects/{self.project_id}/topics/{self.topic_name}"

    def cloud_console_url(self) -> str:
        return f"https://console.cloud.google.com/cloudpubsub/topic/detail/{self.topic_name}?project={self.project_id}"

    def desired_properties(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "topic_name": self.topic_name}

    def validate(self) -> None:
        check_project_id(self, self.project_id)
        name = self.topic_name
        if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name) or name.startswith("goog"):
            _fail(
                self,
                f"topic_name {name!r} is not a valid Pub/Sub topic name: 3 to 255 letters, digits or "
                "- _ . ~ + %, starting with a letter and not with 'goog'",
            )
